//! The `rpyc-serve` daemon: a Python rpyc `Service` class behind every
//! serving mode of `rpyc-classic`.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use super::classic::{check_hosted, run_hosted, stderr_is_the_client, Hosting, Loaded, RunError};
use super::Program;
use crate::cli::serve::ServeArgs;
use crate::cli::CliError;
use crate::service::python::authenticator::PythonAuthenticator;
use crate::service::python::hosted::{PythonService, ServiceSpec};

/// `rpyc-serve`, start to end.
pub fn main(program: &str) -> ExitCode {
    super::start::<ServeProgram>(program)
}

/// The `rpyc-serve` program.
pub struct ServeProgram;

impl Program for ServeProgram {
    type Args = ServeArgs;
    type Error = RunError;

    fn parse(args: Vec<OsString>) -> Result<ServeArgs, CliError> {
        ServeArgs::parse_from(args)
    }

    fn checks_only(args: &ServeArgs) -> bool {
        args.server.check_config
    }

    fn check(args: &ServeArgs) -> Result<(), RunError> {
        check(args)
    }

    fn run(args: &ServeArgs) -> Result<(), RunError> {
        run(args)
    }

    fn stderr_is_the_client(args: &ServeArgs) -> bool {
        stderr_is_the_client(args.server.mode)
    }
}

/// What the switches name, as the service loader takes it.
pub fn spec_of(args: &ServeArgs) -> ServiceSpec {
    ServiceSpec {
        class: args.service.service.clone(),
        paths: args.service.paths.clone(),
        config: args.protocol_config(),
    }
}

/// Imports the service (so a typo in its name is reported before anything
/// is bound) and serves it until the server stops.
pub fn run(args: &ServeArgs) -> Result<(), RunError> {
    hosting(args, |hosting| run_hosted(&args.server, hosting))
}

/// What `--check-config` checks: everything start-up opens before it
/// binds, and the service imported and its class checked.
pub fn check(args: &ServeArgs) -> Result<(), RunError> {
    hosting(args, |hosting| check_hosted(&args.server, hosting))
}

/// Calls `with` on how rpyc-serve hosts the service `args` name.
fn hosting(
    args: &ServeArgs,
    with: impl FnOnce(&Hosting<'_>) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let spec = spec_of(args);
    let load = || {
        let service = PythonService::load(&spec).map_err(RunError::Load)?;
        let authenticator = args
            .service
            .authenticator
            .as_deref()
            .map(|name| PythonAuthenticator::load(name, &spec.paths, args.server.handshake_timeout))
            .transpose()
            .map_err(RunError::Load)?;
        Ok(Loaded {
            name: service.name().to_owned(),
            aliases: service.aliases().to_vec(),
            service: Arc::new(service),
            authenticator,
        })
    };
    with(&Hosting {
        program: "rpyc-serve",
        log_name: "rpyc-serve",
        load: &load,
        exposure: "anyone who can reach it can use the service without authentication",
        // validated when the switches were parsed
        sync_request_timeout: args.sync_request_timeout().ok(),
    })
}
