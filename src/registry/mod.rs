//! The registry: a bonjour-like agent where servers register their service
//! names and port and clients ask where a service is (rpyc 6.0.2
//! `rpyc/utils/registry.py`). Its wire format is [`crate::protocol::registry`],
//! shared by the registry server and the registrar that `rpyc-classic
//! --register` runs.

/// How a registry is reached: UDP (found by broadcast) or TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// rpyc's name for it, as its switches take it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

pub mod answer;
pub mod budget;
pub mod discovered;
pub mod event_loop;
pub mod registrar;
pub mod sockets;
pub mod source;
pub mod table;
pub mod tcp;
pub mod throttle;
