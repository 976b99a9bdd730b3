//! Writes the man pages and shell completions of `rpyc-classic` and
//! `rpyc-registry`, generated from their clap definitions so that they
//! never drift from `--help`. `debian/rules` runs it at package build time:
//!
//! ```sh
//! cargo run --example gen-docs -- target/docs
//! ```
//!
//! Output, laid out as the package installs it:
//! `man/rpyc-classic.8`, `bash/rpyc-classic`, `zsh/_rpyc-classic`,
//! `fish/rpyc-classic.fish`, and the same for `rpyc-registry`.

mod docs;
mod pages;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-docs OUTPUT-DIRECTORY");
        return ExitCode::from(64);
    };
    match docs::generate(&PathBuf::from(out)) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gen-docs: {error}");
            ExitCode::FAILURE
        }
    }
}
