//! Progress on stderr: a bar on a terminal, nothing otherwise (a summary
//! line is printed by the command).

use std::io::IsTerminal;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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

/// Bars for pushes and pulls: one per blob in flight, with its rate, above
/// a total bar; nothing when stderr is not a terminal (the command prints a
/// one-line summary instead).
pub struct TransferBar {
    multi: Option<MultiProgress>,
    bar: Option<ProgressBar>,
    layers: Mutex<HashMap<String, ProgressBar>>,
    bytes: AtomicU64,
    total: AtomicU64,
    message: String,
}

impl TransferBar {
    /// Bars when stderr is a terminal and output is not quiet.
    pub fn new(quiet: bool, message: &str) -> TransferBar {
        let plain = Bar::new(quiet, message);
        let multi = plain.bar.as_ref().map(|bar| {
            let multi = MultiProgress::new();
            multi.add(bar.clone());
            multi
        });
        TransferBar {
            multi,
            bar: plain.bar,
            layers: Mutex::new(HashMap::new()),
            bytes: 0.into(),
            total: 0.into(),
            message: message.to_string(),
        }
    }

    /// Bytes moved.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Removes the bars.
    pub fn finish(&self) {
        for (_, layer) in self
            .layers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            layer.finish_and_clear();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ferry_registry::progress::TransferProgress for TransferBar {
    fn connections(&self, in_use: usize) {
        if let Some(bar) = &self.bar {
            // The total bar's rate is the aggregate over every connection.
            bar.set_message(match in_use {
                0 => self.message.clone(),
                1 => format!("{} (1 connection)", self.message),
                n => format!("{} ({n} connections)", self.message),
            });
        }
    }
    fn blob_started(&self, digest: &ferry_spec::oci::Digest, size: u64) {
        let total = self.total.fetch_add(size, Ordering::Relaxed) + size;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
        if let (Some(multi), Some(total_bar)) = (&self.multi, &self.bar) {
            let layer = multi.insert_before(total_bar, ProgressBar::new(size));
            let style = ProgressStyle::with_template(
                "  {prefix} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            layer.set_style(style);
            layer.set_prefix(crate::output::short_digest(digest.as_ref()));
            self.layers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(digest.to_string(), layer);
        }
    }
    fn advanced(&self, digest: &ferry_spec::oci::Digest, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
        if let Some(layer) = self
            .layers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest.to_string())
        {
            layer.inc(bytes);
        }
    }
    fn blob_done(&self, digest: &ferry_spec::oci::Digest) {
        if let Some(layer) = self
            .layers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&digest.to_string())
        {
            layer.finish_and_clear();
        }
    }
}
