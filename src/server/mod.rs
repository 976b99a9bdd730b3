//! Where connections come from and how they are served. For now: a TCP
//! listener with a thread per connection (the seed's threaded server) or a
//! single connection (oneshot), and stdin/stdout.

pub mod classic;
pub mod stdio;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use crate::connection::{Config, Connection};
use crate::daemon::log::Logger;
use crate::service::classic::ClassicService;

pub struct Server {
    listener: TcpListener,
    service: ClassicService,
    config: Config,
    log: Logger,
}

impl Server {
    pub fn new(
        listener: TcpListener,
        service: ClassicService,
        config: Config,
        log: Logger,
    ) -> Server {
        Server {
            listener,
            service,
            config,
            log,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts one connection and serves it in this thread.
    pub fn serve_one(&self) -> io::Result<()> {
        let (stream, peer) = self.listener.accept()?;
        self.log
            .info(format_args!("accepted {}:{}", peer.ip(), peer.port()));
        serve_tcp(stream, peer, &self.service, self.config.clone(), &self.log);
        self.log.info(format_args!("listener closed"));
        Ok(())
    }

    /// Accepts forever, one thread per connection.
    pub fn serve_threaded(&self) -> io::Result<()> {
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if is_transient(&error) => {
                    self.log.warning(format_args!("accept failed: {error}"));
                    continue;
                }
                Err(error) => return Err(error),
            };
            self.log
                .info(format_args!("accepted {}:{}", peer.ip(), peer.port()));
            let service = self.service.clone();
            let config = self.config.clone();
            let log = self.log.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("conn {peer}"))
                .spawn(move || serve_tcp(stream, peer, &service, config, &log));
            if let Err(error) = spawned {
                self.log
                    .error(format_args!("cannot start a thread for {peer}: {error}"));
            }
        }
    }
}

const ENOMEM: i32 = 12;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;

/// Errors of one accept that say nothing about the listener itself (a peer
/// that gave up, a momentary fd or memory shortage).
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(error.raw_os_error(), Some(EMFILE | ENFILE | ENOMEM))
}

fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    service: &ClassicService,
    config: Config,
    log: &Logger,
) {
    let _ = stream.set_nodelay(true);
    let halves = stream
        .try_clone()
        .and_then(|reader| Ok((reader, stream.try_clone()?)));
    let (reader, closer) = match halves {
        Ok(halves) => halves,
        Err(error) => {
            log.error(format_args!("cannot use the connection of {peer}: {error}"));
            return;
        }
    };
    let conn = Connection::new(
        Box::new(reader),
        Box::new(stream),
        Box::new(move || {
            let _ = closer.shutdown(std::net::Shutdown::Both);
        }),
        config,
    );
    serve_connection(
        &conn,
        &format!("[{}]:{}", peer.ip(), peer.port()),
        service,
        log,
    );
}

/// Serves one connection from welcome to goodbye.
pub fn serve_connection(
    conn: &Arc<Connection>,
    peer: &str,
    service: &ClassicService,
    log: &Logger,
) {
    match service.open(conn) {
        Ok(session) => conn.set_session(session),
        Err(error) => {
            log.error(format_args!("cannot start a session for {peer}: {error}"));
            conn.close();
            return;
        }
    }
    log.info(format_args!("welcome {peer}"));
    if let Err(error) = conn.serve_all() {
        log.warning(format_args!("{peer}: {error}"));
    }
    log.info(format_args!("goodbye {peer}"));
}
