//! The `ferry` command: AI models as OCI artifacts.

mod cli;
mod commands;
mod exit;
mod hint;
mod output;
mod parse;
mod progress;
mod report;
mod size;

use std::process::ExitCode;

use clap::Parser;

use crate::exit::Exit;

fn main() -> ExitCode {
    // A peer that closes a socket mid-write must surface as an error on that
    // connection, never kill the process.
    // SAFETY: setting a signal disposition to SIG_IGN at startup, before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // clap exits 2 on usage errors (0 for --help and --version).
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
        Ok(exit) => exit.into(),
        Err(error) => match error.downcast::<clap::Error>() {
            // A usage error found after parsing: printed as clap prints its own.
            Ok(usage) => usage.exit(),
            Err(error) => {
                eprintln!("error: {}", output::error_chain(&error));
                if let Some(hint) = hint::hint(&error) {
                    eprintln!("hint: {hint}");
                }
                Exit::Error.into()
            }
        },
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
        .with_ansi(output::stderr_colors())
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
