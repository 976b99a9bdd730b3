//! The `rpyc-serve` daemon: a Python rpyc `Service` class behind every
//! serving mode of `rpyc-classic`.

use std::process::ExitCode;
use std::sync::Arc;

use super::classic::{check_hosted, run_hosted, stderr_is_the_client, Hosting, Loaded, RunError};
use super::exit;
use crate::cli::serve::ServeArgs;
use crate::service::python::{PythonService, ServiceSpec};

/// What the switches name, as the service loader takes it.
/// `rpyc-serve`, start to end.
pub fn main(program: &str) -> ExitCode {
    let args = match ServeArgs::parse_from(std::env::args_os()) {
        Ok(args) => args,
        Err(error) => return exit::bad_command_line(program, &error),
    };
    if args.server.check_config {
        return exit::check_outcome(program, check(&args));
    }
    let ran = run(&args);
    exit::run_outcome(program, ran, stderr_is_the_client(args.server.mode))
}

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
        Ok(Loaded {
            name: service.name().to_owned(),
            aliases: service.aliases().to_vec(),
            service: Arc::new(service),
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
