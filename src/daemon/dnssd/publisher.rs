//! Publishing a server's TCP ports through Avahi, in a process of its own.
//!
//! zbus runs threads of its own, and a forking server's process must keep
//! one thread (see `server`): so the publisher is a child forked before the
//! server starts any thread, which lives as long as the server. It keeps
//! the offers published: it waits for Avahi when Avahi is not there (one
//! warning), publishes again when `avahi-daemon` restarts or its host name
//! changes, and renames an offer when Avahi reports that its name is
//! taken on the network. SIGTERM (from the server when it stops, from
//! systemd, or on the server's death) withdraws them and ends it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getppid, ForkResult, Pid};
use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

use super::avahi::{self, group_state, server_state, Avahi};
use super::{Offer, SERVICE_TYPE};
use crate::daemon::log::Logger;
use crate::sync::lock;

/// How long a stopping server waits for the publisher to withdraw.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(3);

/// The publishing process, from the server's side.
pub struct Publisher {
    pid: Pid,
}

impl Publisher {
    /// Forks the publisher of `offers`. Call it while the process has one
    /// thread: the child takes no lock another thread could have held.
    /// `None` (logged) if it cannot be forked: the server serves on.
    pub fn start(offers: Vec<Offer>, log: &Logger) -> Option<Publisher> {
        if offers.is_empty() {
            return None;
        }
        let parent = nix::unistd::getpid();
        // SAFETY: the caller guarantees this is the process's only thread;
        // the child runs Rust code only and leaves by `_exit`.
        match unsafe { fork() } {
            Ok(ForkResult::Parent { child }) => Some(Publisher { pid: child }),
            Ok(ForkResult::Child) => {
                let code = publish_until_stopped(parent, &offers, log);
                // SAFETY: ends the child without running the parent's atexit
                // handlers or destructors (CPython's among them)
                unsafe { libc::_exit(code) }
            }
            Err(error) => {
                log.warning(format_args!(
                    "DNS-SD: cannot start the publisher ({error}); not publishing"
                ));
                None
            }
        }
    }

    /// Withdraws the offers: tells the publisher to stop and waits for it.
    pub fn stop(self) {
        // a forking server's reaping may have collected it already
        if !matches!(
            waitpid(self.pid, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        ) {
            return;
        }
        let _ = kill(self.pid, Signal::SIGTERM);
        let deadline = Instant::now() + WITHDRAW_TIMEOUT;
        while Instant::now() < deadline {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
                _ => return,
            }
        }
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// How many names an offer tries before the publisher gives up.
const MAX_RENAMES: usize = 32;

/// Avahi's answer to a name another program published first.
fn is_collision(error: &zbus::Error) -> bool {
    matches!(error, zbus::Error::MethodError(name, _, _)
        if name.as_str() == "org.freedesktop.Avahi.CollisionError")
}

/// What is published now, for the withdrawal at the end.
type Published = Arc<Mutex<Option<(Connection, OwnedObjectPath)>>>;

/// The publisher's life: signals are taken here, publishing runs in a
/// thread. The exit code.
fn publish_until_stopped(parent: Pid, offers: &[Offer], log: &Logger) -> i32 {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(signal);
    }
    // blocked before any thread starts, so every thread has them blocked
    // and the inherited handlers (the server's) never run here
    if signals.thread_block().is_err() {
        return 1;
    }
    // SAFETY: prctl with these arguments only sets a flag of this process
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    if getppid() != parent {
        return 0;
    }
    let published: Published = Arc::default();
    {
        let offers = offers.to_vec();
        let log = log.clone();
        let published = Arc::clone(&published);
        let spawned = std::thread::Builder::new()
            .name("dnssd".into())
            .spawn(move || keep_published(&offers, &log, &published));
        if spawned.is_err() {
            return 1;
        }
    }
    loop {
        match signals.wait() {
            Ok(Signal::SIGHUP) => log.reopen(),
            Ok(_) => break,
            Err(_) => continue,
        }
    }
    if let Some((bus, group)) = lock(&published).take() {
        let _ = Avahi { bus: &bus }.free(group.as_str());
    }
    0
}

/// What the publishing thread hears of.
enum Event {
    /// `org.freedesktop.Avahi` got an owner (true) or lost it.
    AvahiOwner(bool),
    ServerState(i32),
    GroupState {
        group: String,
        state: i32,
        error: String,
    },
}

fn keep_published(offers: &[Offer], log: &Logger, published: &Published) {
    let Some((bus, events)) = avahi::connect(listen, log, "not publishing") else {
        return;
    };
    let mut state = State {
        offers,
        log,
        avahi: Avahi { bus: &bus },
        names: Vec::new(),
        group: None,
        committed: false,
        established: false,
    };
    match avahi::is_running(&bus) {
        Ok(true) => state.publish(published),
        Ok(false) => log.warning(format_args!(
            "DNS-SD: Avahi is not running (no {} on the system bus); publishing once it starts",
            avahi::BUS_NAME
        )),
        Err(error) => log.warning(format_args!(
            "DNS-SD: cannot ask the system bus for Avahi ({error}); publishing once it starts"
        )),
    }
    for event in events {
        match event {
            Event::AvahiOwner(true) => {
                log.info(format_args!("DNS-SD: Avahi started; publishing"));
                state.forget(published);
                state.publish(published);
            }
            Event::AvahiOwner(false) => {
                log.warning(format_args!(
                    "DNS-SD: Avahi stopped; publishing again once it is back"
                ));
                state.forget(published);
            }
            Event::ServerState(server_state::RUNNING) if !state.committed => {
                state.publish(published);
            }
            Event::ServerState(server_state::COLLISION | server_state::REGISTERING) => {
                // the host name is changing: what was published names it
                state.withdraw();
            }
            Event::ServerState(_) => {}
            Event::GroupState {
                group,
                state: group_state,
                error,
            } => {
                if state.group.as_ref().map(|path| path.as_str()) == Some(group.as_str()) {
                    state.group_changed(group_state, &error, published);
                }
            }
        }
    }
}

/// The publisher's view of Avahi: the names chosen, and the entry group
/// that holds them while published.
struct State<'a> {
    offers: &'a [Offer],
    log: &'a Logger,
    avahi: Avahi<'a>,
    /// Each offer's instance name, once chosen (renamed on collisions).
    names: Vec<String>,
    group: Option<OwnedObjectPath>,
    /// The offers are in the group and committed (published or on the way).
    committed: bool,
    /// Avahi said they are published (logged once).
    established: bool,
}

impl State<'_> {
    /// Publishes the offers, if Avahi runs (else its RUNNING state
    /// will ask again).
    fn publish(&mut self, published: &Published) {
        match self.avahi.state() {
            Ok(server_state::RUNNING) => {}
            Ok(_) => return,
            Err(error) => {
                self.log
                    .warning(format_args!("DNS-SD: cannot ask Avahi its state ({error})"));
                return;
            }
        }
        if self.names.is_empty() {
            let host = match self.avahi.host_name() {
                Ok(host) => host,
                Err(error) => {
                    self.log.warning(format_args!(
                        "DNS-SD: cannot ask Avahi the host name ({error})"
                    ));
                    return;
                }
            };
            self.names = self
                .offers
                .iter()
                .enumerate()
                .map(|(nth, offer)| offer.instance_name(&host, nth))
                .collect();
        }
        let group = match self.group.clone() {
            Some(group) => group,
            None => match self.avahi.entry_group_new() {
                Ok(group) => group,
                Err(error) => {
                    self.log.warning(format_args!(
                        "DNS-SD: Avahi refused an entry group ({error}); not publishing"
                    ));
                    return;
                }
            },
        };
        self.group = Some(group.clone());
        *lock(published) = Some((self.avahi.bus.clone(), group.clone()));
        self.established = false;
        for _ in 0..MAX_RENAMES {
            let refused = match self.add_all(group.as_str()) {
                Ok(()) => {
                    self.committed = true;
                    return;
                }
                Err(refused) => *refused,
            };
            match refused {
                // a name another program on this machine has published
                (Some(nth), error) if is_collision(&error) => {
                    self.rename(nth);
                    let _ = self.avahi.reset(group.as_str());
                }
                (_, error) => {
                    self.log.warning(format_args!(
                        "DNS-SD: Avahi refused the offers ({error}); not publishing"
                    ));
                    self.withdraw();
                    return;
                }
            }
        }
        self.log.warning(format_args!(
            "DNS-SD: every name tried is taken; not publishing"
        ));
        self.withdraw();
    }

    /// Adds every offer to `group` and commits it; on failure, which
    /// offer Avahi refused (if one did) and why.
    fn add_all(&self, group: &str) -> Result<(), Box<(Option<usize>, zbus::Error)>> {
        for (nth, (offer, name)) in self.offers.iter().zip(&self.names).enumerate() {
            self.avahi
                .add_service(group, name, SERVICE_TYPE, offer.port, &offer.txt())
                .map_err(|error| Box::new((Some(nth), error)))?;
        }
        self.avahi
            .commit(group)
            .map_err(|error| Box::new((None, error)))
    }

    /// The next name Avahi offers for offer `nth`, said in the log.
    fn rename(&mut self, nth: usize) {
        let name = &self.names[nth];
        let other = self
            .avahi
            .alternative_service_name(name)
            .unwrap_or_else(|_| format!("{name} #{}", nth + 2));
        self.log.warning(format_args!(
            "DNS-SD: the name \"{name}\" is taken on the network; publishing as \"{other}\""
        ));
        self.names[nth] = other;
    }

    fn group_changed(&mut self, state: i32, error: &str, published: &Published) {
        match state {
            group_state::ESTABLISHED if !self.established => {
                self.established = true;
                for (offer, name) in self.offers.iter().zip(&self.names) {
                    self.log.info(format_args!(
                        "DNS-SD: published \"{name}\" ({SERVICE_TYPE}, port {}, aliases {})",
                        offer.port,
                        offer.aliases.join(",")
                    ));
                }
            }
            group_state::COLLISION => {
                // Avahi does not say which name another host has: all move on
                for nth in 0..self.names.len() {
                    self.rename(nth);
                }
                if let Some(group) = &self.group {
                    let _ = self.avahi.reset(group.as_str());
                }
                self.publish(published);
            }
            group_state::FAILURE => {
                self.log.warning(format_args!(
                    "DNS-SD: Avahi could not publish the offers: {error}"
                ));
            }
            _ => {}
        }
    }

    /// Takes the offers back, keeping the group for the next publishing.
    fn withdraw(&mut self) {
        if let Some(group) = &self.group {
            let _ = self.avahi.reset(group.as_str());
        }
        self.committed = false;
        self.established = false;
        // the host name may change: the names are made again from it
        self.names.clear();
    }

    /// Avahi went away: its groups went with it.
    fn forget(&mut self, published: &Published) {
        self.group = None;
        self.committed = false;
        self.established = false;
        self.names.clear();
        *lock(published) = None;
    }
}

/// Follows Avahi coming and going, and its entry groups' and server's
/// state changes, into the returned channel.
fn listen(bus: &Connection) -> zbus::Result<mpsc::Receiver<Event>> {
    let (sender, events) = mpsc::channel();
    let to_owner = sender.clone();
    avahi::follow_owner(bus, move |running| {
        to_owner.send(Event::AvahiOwner(running)).is_ok()
    })?;
    let states = avahi::signals(None, Some("StateChanged"))?;
    avahi::follow(bus, states, 256, "dnssd-avahi", move |message| {
        let header = message.header();
        let path = header
            .path()
            .map(|path| path.to_string())
            .unwrap_or_default();
        let interface = header
            .interface()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let Ok((state, error)) = message.body().deserialize::<(i32, String)>() else {
            return true;
        };
        let event = match interface.as_str() {
            "org.freedesktop.Avahi.Server" => Event::ServerState(state),
            "org.freedesktop.Avahi.EntryGroup" => Event::GroupState {
                group: path,
                state,
                error,
            },
            _ => return true,
        };
        sender.send(event).is_ok()
    })?;
    Ok(events)
}
