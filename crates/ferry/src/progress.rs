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

/// Bars for pushes and pulls: total bytes across every blob.
pub struct TransferBar {
    bar: Option<ProgressBar>,
    bytes: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
}

impl TransferBar {
    /// A bar when stderr is a terminal and output is not quiet.
    pub fn new(quiet: bool, message: &str) -> TransferBar {
        let plain = Bar::new(quiet, message);
        TransferBar {
            bar: plain.bar,
            bytes: 0.into(),
            total: 0.into(),
        }
    }

    /// Bytes moved.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ferry_registry::progress::TransferProgress for TransferBar {
    fn blob_started(&self, _digest: &ferry_spec::oci::Digest, size: u64) {
        let total = self
            .total
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed)
            + size;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }
    fn advanced(&self, _digest: &ferry_spec::oci::Digest, bytes: u64) {
        self.bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}
