//! The `rpyc-classic` daemon: from parsed switches to a serving server.

use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;

use thiserror::Error;

use super::{serve_connection, stdio, Server};
use crate::cli::classic::{ClassicArgs, Mode};
use crate::cli::exit;
use crate::connection::{Config, Connection};
use crate::daemon::log::Logger;
use crate::service::classic::{ClassicService, ServiceError};

#[derive(Debug, Error)]
pub enum RunError {
    #[error("mode {0} is not implemented yet")]
    Unimplemented(&'static str),
    #[error("cannot listen on [{host}]:{port}: {source}")]
    Bind {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("cannot take stdin/stdout: {0}")]
    Stdio(std::io::Error),
    #[error("listener failed: {0}")]
    Listener(std::io::Error),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Unimplemented(_) | RunError::Bind { .. } => exit::UNAVAILABLE,
            RunError::Service(_) | RunError::Stdio(_) | RunError::Listener(_) => exit::SOFTWARE,
        }
    }
}

/// Serves as the switches say until the server stops.
pub fn run(args: &ClassicArgs) -> Result<(), RunError> {
    let config = Config {
        limits: crate::protocol::frame::Limits {
            max_frame_size: usize::try_from(args.max_message_size).unwrap_or(usize::MAX),
            max_payload_size: usize::try_from(args.max_message_size).unwrap_or(usize::MAX),
        },
        ..Config::default()
    };
    match args.mode {
        Mode::Stdio => serve_stdio(config),
        Mode::Threaded => {
            let (server, log) = listen(args, config)?;
            server.serve_threaded().map_err(RunError::Listener)?;
            log.info(format_args!("server has terminated"));
            Ok(())
        }
        Mode::Oneshot => {
            let (server, _log) = listen(args, config)?;
            let addr = server.local_addr().map_err(RunError::Listener)?;
            // rpyc 6's banner, which its own tests read to find the port
            println!("rpyc-oneshot\n{}\t{}", addr.ip(), addr.port());
            server.serve_one().map_err(RunError::Listener)
        }
        Mode::Forking => Err(RunError::Unimplemented("forking")),
        Mode::Threadpool => Err(RunError::Unimplemented("threadpool")),
    }
}

fn listen(args: &ClassicArgs, config: Config) -> Result<(Server, Logger), RunError> {
    let host = args.effective_host().to_owned();
    let port = args.effective_port();
    let bind_error = |source| RunError::Bind {
        host: host.clone(),
        port,
        source,
    };
    // the first address the name resolves to in the requested family, as
    // rpyc's getaddrinfo(...)[0] does
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(bind_error)?
        .find(|addr| addr.is_ipv6() == args.ipv6)
        .ok_or_else(|| {
            bind_error(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                "no address of that family",
            ))
        })?;
    let listener = TcpListener::bind(addr).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let log = Logger::stderr(format!("SLAVE/{}", local.port()), args.quiet);
    let service = ClassicService::new()?;
    log.info(format_args!(
        "server started on [{}]:{}",
        local.ip(),
        local.port()
    ));
    Ok((Server::new(listener, service, config, log.clone()), log))
}

fn serve_stdio(config: Config) -> Result<(), RunError> {
    let stdio = stdio::take().map_err(RunError::Stdio)?;
    let service = ClassicService::new()?;
    let closer = stdio.closer;
    let conn: Arc<Connection> = Connection::new(
        Box::new(stdio.reader),
        Box::new(stdio.writer),
        Box::new(move || stdio::shutdown(&closer)),
        config,
    );
    serve_connection(&conn, "stdio", &service, &Logger::silent());
    Ok(())
}
