//! Exit codes, the part of the command-line contract scripts test first.

use std::fmt::Display;
use std::process::ExitCode;

use clap::CommandFactory;
use clap::error::ErrorKind;

use crate::cli::Cli;

/// What `ferry` exits with (documented in the README's "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what it was asked.
    Ok,
    /// 1: an error (unreachable registry, missing artifact, I/O, ...).
    Error,
    /// 2: the command line is wrong (clap's code for usage errors).
    Usage,
    /// 3: the command ran and found problems (fsck: corrupt or missing blobs).
    Problems,
    /// 1 from `ferry scan`: dangerous or invalid files (or suspicious ones
    /// under `--strict`), as picklescan answers.
    Findings,
    /// 2 from `ferry scan`: the scan itself failed, as picklescan answers.
    ScanFailed,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(match exit {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::Problems => 3,
            Exit::Findings => 1,
            Exit::ScanFailed => 2,
        })
    }
}

/// A usage error found after parsing (values that only make sense
/// together), formatted as clap formats its own: the message, the
/// subcommand's usage line, and exit code 2 when `main` sees it.
pub fn usage_error(subcommand: &[&str], message: impl Display) -> anyhow::Error {
    let mut command = Cli::command();
    // Building propagates the full name (`ferry index create`) to the usage line.
    command.build();
    for name in subcommand {
        match command.find_subcommand(name) {
            Some(next) => command = next.clone(),
            None => break,
        }
    }
    anyhow::Error::new(command.error(ErrorKind::ValueValidation, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_name_the_subcommand_and_exit_2() {
        let error = usage_error(
            &["index", "create"],
            "two --platform values for one --manifest",
        );
        let clap_error = error
            .downcast_ref::<clap::Error>()
            .expect("a usage error is a clap error");
        assert_eq!(clap_error.exit_code(), 2);
        let text = clap_error.render().to_string();
        assert!(text.contains("two --platform values"), "{text}");
        assert!(text.contains("Usage: ferry index create"), "{text}");
    }
}
