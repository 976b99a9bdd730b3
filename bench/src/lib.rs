//! `rpycd-bench`: rpycd against Python rpyc 6.0.2, side by side in one run
//! on one machine, with what the loopback allows as the ceiling (issue 9).
//!
//! - [`client`]: a minimal RPyC classic client on [`rpycd::connection`];
//! - [`load`]: N connections in bounded loops, latency percentiles;
//! - [`ceiling`]: zero-cost servers (a ping echo that never decodes, a UDP
//!   responder, a raw loopback stream) that bound what any server can do;
//! - [`servers`]: starting ours and Python's servers on loopback ports;
//! - [`registry`]: registry clients (UDP and TCP) in bounded loops;
//! - [`compare`]: the interleaved run and its workloads; [`report`]: the
//!   table, the JSON file and the chart; [`workloads`]: what is measured.
//!
//! Absolute figures from a shared 2-core machine are noise; ratios of ours
//! to Python's measured in the same run are what the harness is for. Every
//! address used is on the loopback, and every loop is bounded in time and
//! in count.

pub mod bulk;
pub mod ceiling;
pub mod client;
pub mod compare;
pub mod cost;
pub mod cpu;
pub mod load;
pub mod png;
pub mod registry;
pub mod report;
pub mod servers;
pub mod workloads;

use thiserror::Error;

use rpycd::connection::ConnError;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection: {0}")]
    Conn(#[from] ConnError),
    #[error("the server raised {0}")]
    Remote(String),
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    #[error("{0}")]
    Setup(String),
}

pub type Result<T> = std::result::Result<T, BenchError>;

/// Raises this process's open-file limit to its hard limit: a thousand idle
/// connections need a thousand sockets here, and the servers started from
/// here inherit the limit for theirs.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            // a failure leaves the old limit, and the memory workload
            // reports the connections it could not open
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
