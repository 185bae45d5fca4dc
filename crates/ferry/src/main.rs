//! The `ferry` command: AI models as OCI artifacts.

mod cli;
mod commands;
mod output;
mod progress;
mod size;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A peer that closes a socket mid-write must surface as an error on that
    // connection, never kill the process.
    // SAFETY: setting a signal disposition to SIG_IGN at startup, before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let cli = cli::Cli::parse();
    if cli.command.is_local_only() {
        // A closed stdout (`ferry ls | head -1`) ends ferry quietly, as it
        // does any Unix tool, instead of a panic in `println!`. Commands that
        // talk to a network keep SIGPIPE ignored: a peer hanging up must
        // not kill them.
        // SAFETY: no other thread exists yet.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(cli.verbose, cli.quiet);
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", output::error_chain(&error));
            if let Some(hint) = output::hint(&error) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the level set by `-v`/`-q`.
fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
