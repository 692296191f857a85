//! The `walstore` command. All the work is in the library (`walstore_cli`), so tests can run
//! the same code on a simulated file system.

use clap::Parser;
use std::process::ExitCode;
use walstore_cli::{Backend, Cli, Exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; usage errors go to stderr and exit 2.
            let exit = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return ExitCode::from(exit.code());
        }
    };
    ExitCode::from(walstore_cli::run(&cli, &Backend::real()).code())
}
