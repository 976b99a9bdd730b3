//! The three programs: what `rpyc-classic`, `rpyc-serve` and
//! `rpyc-registry` do with their parsed command lines. The only users of
//! [`crate::cli`]: the layers below take plain values, never switches.

pub mod classic;
pub mod exit;
pub mod registry;
pub mod serve;
