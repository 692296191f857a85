//! The `walstore` command. All the work is in the library (`walstore_cli`), so tests can run
//! the same code on a simulated file system.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match walstore_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed; usage errors exit 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return std::process::ExitCode::from(code);
        }
    };
    let code = walstore_cli::run(&cli, walstore::Options::new());
    std::process::ExitCode::from(code as u8)
}
