//! The registry's serving loop: one thread, one poll loop over the registry's sockets, the TCP
//! connections still sending their request, the signal pipe, the watchdog
//! and the pruning timer. An answer is a table lookup: nothing here waits
//! on a client, so one loop serves every client at once.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::answer::Registry;
use super::budget::{Limits as BudgetLimits, ReplyBudget};
use super::sockets::Sockets;
use super::tcp::Clients;
use crate::daemon::notify::Notifier;
use crate::daemon::signals::{Event, Signals};
use crate::protocol::registry::{Request, MAX_LIST_REPLY};

/// Datagrams or connections taken per socket per wake-up, so that signals
/// and timers are seen even under a flood.
const BATCH: usize = 256;
/// The largest UDP payload: a datagram is read whole to tell oversize
/// requests from malformed ones.
const MAX_DATAGRAM: usize = 65536;

/// How often the whole table is pruned: entries outlive the timeout by at
/// most this much even if nobody queries their name.
pub fn prune_interval(timeout: Duration) -> Duration {
    timeout.clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Serves `registry` on `sockets` until SIGINT or SIGTERM, pruning the
/// table every `prune_every`.
pub fn serve(
    sockets: Sockets,
    registry: &Registry,
    signals: &Signals,
    notifier: &Notifier,
    prune_every: Duration,
) -> io::Result<()> {
    let log = registry.log().clone();
    sockets.set_nonblocking()?;
    let mut clients = Clients::default();
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut budget = ReplyBudget::new(BudgetLimits::default(), Instant::now());
    notifier.ready(&registry.status());
    let watchdog = notifier.watchdog_interval();
    let mut last_ping = Instant::now();
    let mut last_prune = Instant::now();
    let interrupted = loop {
        let mut wake = last_prune + prune_every;
        if let Some(interval) = watchdog {
            wake = wake.min(last_ping + interval);
        }
        if let Some(deadline) = clients.next_deadline() {
            wake = wake.min(deadline);
        }
        let socket_fds = sockets.fds();
        let client_fds = clients.fds();
        let (ready, signalled) = wait_for(
            &[&socket_fds, &client_fds],
            signals.fd(),
            wake.saturating_duration_since(Instant::now()),
        )?;
        drop((socket_fds, client_fds));
        if watchdog.is_some_and(|interval| last_ping.elapsed() >= interval) {
            notifier.watchdog();
            last_ping = Instant::now();
        }
        if last_prune.elapsed() >= prune_every {
            registry.prune();
            last_prune = Instant::now();
        }
        let mut stop = None;
        // (the pipe is read only when it has something: a read per query
        // that finds nothing was a third of the registry's system calls)
        let events = if signalled {
            signals.take()
        } else {
            Vec::new()
        };
        for event in events {
            match event {
                Event::Interrupt => stop = Some(true),
                Event::Terminate => stop = stop.or(Some(false)),
                Event::Hangup => log.reopen(),
                Event::Child => {}
            }
        }
        if let Some(interrupted) = stop {
            break interrupted;
        }
        // connections accepted earlier sent earlier: they go first
        clients.serve(&ready[1], registry);
        for &index in &ready[0] {
            match &sockets {
                Sockets::Udp(list) => {
                    serve_datagrams(&list[index], registry, &mut budget, &mut buffer)
                }
                Sockets::Tcp(list) => clients.accept(&list[index], registry, BATCH),
            }
        }
    };
    notifier.stopping();
    if interrupted {
        log.warning(format_args!("keyboard interrupt!"));
    } else {
        log.info(format_args!("terminating"));
    }
    drop(sockets);
    log.info(format_args!("listener closed"));
    if !clients.is_empty() {
        // whole requests are answered on arrival: these had sent none yet
        log.info(format_args!(
            "closing {} connection(s) that sent no whole request",
            clients.len()
        ));
    }
    drop(clients);
    log.info(format_args!("server has terminated"));
    Ok(())
}

/// Polls the groups of descriptors and the signal pipe for up to `wait`;
/// returns, for each group, the indexes of the readable descriptors, and
/// whether the signal pipe is readable (or the poll was interrupted).
fn wait_for(
    groups: &[&[BorrowedFd<'_>]; 2],
    signal: BorrowedFd<'_>,
    wait: Duration,
) -> io::Result<([Vec<usize>; 2], bool)> {
    let mut fds: Vec<PollFd<'_>> = groups
        .iter()
        .flat_map(|group| group.iter())
        .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
        .collect();
    fds.push(PollFd::new(signal, PollFlags::POLLIN));
    // rounded up: a poll that wakes a hair early would spin until the timer
    let millis = wait.as_millis().saturating_add(1);
    let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
    let interrupted = match poll(&mut fds, timeout) {
        Ok(_) => false,
        Err(nix::errno::Errno::EINTR) => true,
        Err(error) => return Err(error.into()),
    };
    let readable: Vec<bool> = fds
        .iter()
        .map(|fd| fd.revents().is_some_and(|events| !events.is_empty()))
        .collect();
    let split = groups[0].len();
    let indexes = |start: usize, end: usize| -> Vec<usize> {
        (start..end)
            .filter(|&index| readable.get(index).copied().unwrap_or(false))
            .map(|index| index - start)
            .collect()
    };
    let signalled = interrupted || readable.last().copied().unwrap_or(false);
    Ok((
        [indexes(0, split), indexes(split, split + groups[1].len())],
        signalled,
    ))
}

/// Answers the datagrams waiting on `socket`, each through the same socket,
/// so that the reply comes from the port the client wrote to, and within
/// what the source's [`ReplyBudget`] allows.
fn serve_datagrams(
    socket: &UdpSocket,
    registry: &Registry,
    budget: &mut ReplyBudget,
    buffer: &mut [u8],
) {
    for _ in 0..BATCH {
        let (length, peer) = match socket.recv_from(buffer) {
            Ok(received) => received,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            // ICMP errors of earlier replies surface here; the socket is fine
            Err(_) => continue,
        };
        let Some(data) = buffer.get(..length) else {
            continue;
        };
        match Request::decode(data) {
            Ok(request) => {
                let allowed = budget.admit(peer.ip(), length, Instant::now());
                if let Some(reply) = registry.answer(request, peer, MAX_LIST_REPLY, allowed) {
                    budget.spend(peer.ip(), reply.len());
                    // a client that went away is no concern of the registry's
                    let _ = socket.send_to(&reply, peer);
                }
            }
            Err(error) => registry.reject(&error, peer),
        }
    }
}

/// `[0.0.0.0]:18811`, as the classic server writes its addresses.
pub fn bracketed(addr: SocketAddr) -> String {
    format!("[{}]:{}", addr.ip(), addr.port())
}
