//! Progress on stderr: a bar on a terminal, nothing otherwise (a summary
//! line is printed by the command).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Draws a byte-count bar for pack.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar when stderr is a terminal and output is not quiet.
    pub fn new(quiet: bool, message: &str) -> Bar {
        let show =
            !quiet && std::io::stderr().is_terminal() && std::env::var_os("NO_PROGRESS").is_none();
        let bar = show.then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(message.to_string());
            bar
        });
        Bar { bar }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ferry_store::pack::Progress for Bar {
    fn start(&self, total_bytes: u64, _files: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total_bytes);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}
