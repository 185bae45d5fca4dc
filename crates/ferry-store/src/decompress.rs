//! Decompressing layers while they are read, with decompression-bomb limits.
//!
//! Every reader of layers (`extract`, `pull --extract`, `fetch`, `mount`)
//! goes through [`crate::extract::place_layer_from_reader`], which wraps a
//! gzip or zstd layer in [`decoder`] and a [`Bounded`] reader: at no point
//! may a layer have expanded beyond [`Limits::max_ratio`] times the
//! compressed bytes actually read so far (counted under the decoder by a
//! [`CountingReader`], never taken from the descriptor), nor beyond
//! [`Limits::max_unpacked`] bytes.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use ferry_spec::config::ModelPackConfig;
use ferry_spec::digest::HashingReader;
use ferry_spec::media::{self, Encoding};
use ferry_spec::oci::{Descriptor, Digest, ImageManifest};

use crate::error::{Result, StoreError};
use crate::extract::{Extracted, unpack_tar};
use crate::store::Store;

/// Environment variable overriding [`Limits::max_ratio`].
pub const ENV_MAX_RATIO: &str = "FERRY_MAX_RATIO";
/// Environment variable overriding [`Limits::max_unpacked`] (bytes, or with
/// a `K`, `M`, `G` or `T` suffix in powers of 1024).
pub const ENV_MAX_UNPACKED: &str = "FERRY_MAX_UNPACKED";
/// Environment variable overriding [`Limits::max_zstd_window_log`].
pub const ENV_MAX_ZSTD_WINDOW_LOG: &str = "FERRY_MAX_ZSTD_WINDOW_LOG";

/// Below this many uncompressed bytes the ratio is not enforced: layers of
/// repetitive text (configs, indexes, tokenizers) legitimately compress very
/// well, and a bomb is stopped after at most this much output.
pub const RATIO_FLOOR: u64 = 64 << 20;

/// How far a compressed layer may expand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes allowed per compressed byte read (default 100).
    pub max_ratio: u64,
    /// Uncompressed bytes allowed per layer (default 1 TiB).
    pub max_unpacked: u64,
    /// The largest zstd window a layer may ask for, as a power of two
    /// (default 27: 128 MiB, what `zstd --long` writes and the zstd CLI
    /// decodes without being told). A frame header alone makes the decoder
    /// allocate its window, so a few bytes could otherwise cost 2 GiB per
    /// layer being unpacked.
    pub max_zstd_window_log: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ratio: 100,
            max_unpacked: 1 << 40,
            max_zstd_window_log: 27,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `FERRY_MAX_RATIO`, `FERRY_MAX_UNPACKED`
    /// and `FERRY_MAX_ZSTD_WINDOW_LOG`; an unparsable value is an error, not
    /// ignored.
    pub fn from_env() -> Result<Limits> {
        let mut limits = Limits::default();
        if let Ok(value) = std::env::var(ENV_MAX_RATIO) {
            limits.max_ratio = value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|r| *r > 0)
                .ok_or_else(|| StoreError::InvalidEnv {
                    name: ENV_MAX_RATIO,
                    value: value.clone(),
                    expected: "a positive integer",
                })?;
        }
        if let Ok(value) = std::env::var(ENV_MAX_UNPACKED) {
            limits.max_unpacked = parse_size(&value).ok_or_else(|| StoreError::InvalidEnv {
                name: ENV_MAX_UNPACKED,
                value: value.clone(),
                expected: "a size (e.g. 1099511627776 or 1T)",
            })?;
        }
        if let Ok(value) = std::env::var(ENV_MAX_ZSTD_WINDOW_LOG) {
            limits.max_zstd_window_log = value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|log| (10..=31).contains(log))
                .ok_or_else(|| StoreError::InvalidEnv {
                    name: ENV_MAX_ZSTD_WINDOW_LOG,
                    value: value.clone(),
                    expected: "a power of two from 10 to 31 (27 is 128 MiB)",
                })?;
        }
        Ok(limits)
    }

    /// Uncompressed bytes a layer may have produced once `compressed`
    /// compressed bytes of it were read.
    pub fn allowed(&self, compressed: u64) -> u64 {
        compressed
            .saturating_mul(self.max_ratio)
            .max(RATIO_FLOOR)
            .min(self.max_unpacked)
    }
}

/// `1099511627776`, `1T`, `1 TiB`, `512G`: K, M, G, T are powers of 1024, as
/// in the command line's sizes.
fn parse_size(value: &str) -> Option<u64> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(value.trim())
        .ok()
}

/// A reader of decompressed bytes for `encoding` (`TarGzip`, `TarZstd`);
/// `Raw` and `Tar` pass the bytes through. A zstd frame asking for a window
/// above `limits.max_zstd_window_log` fails to decode.
pub fn decoder<'a, R: Read + 'a>(
    encoding: Encoding,
    reader: R,
    limits: &Limits,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match encoding {
        Encoding::Raw | Encoding::Tar => Box::new(reader),
        // Multi-member gzip (pigz, concatenated streams) is one stream.
        Encoding::TarGzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Encoding::TarZstd => {
            let mut decoder = zstd::stream::read::Decoder::new(reader)?;
            decoder.window_log_max(limits.max_zstd_window_log)?;
            Box::new(decoder)
        }
    })
}

/// Counts the bytes read through it: put under a decoder, it says how much
/// compressed input has really been consumed (a descriptor's size is a
/// claim, and a bomb claims a large one).
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> CountingReader<R> {
    /// Wraps `inner`, counting from 0.
    pub fn new(inner: R) -> CountingReader<R> {
        CountingReader {
            inner,
            count: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The running count, readable while the reader is inside a decoder.
    pub fn count(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.count)
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Cuts a decompressed stream off as soon as it holds more than `limits`
/// allow for the compressed bytes read so far; the failure is recorded in
/// a flag so the caller can report it clearly even when a tar parser
/// wrapped the I/O error.
pub struct Bounded<R> {
    inner: R,
    read: u64,
    limits: Limits,
    compressed: Arc<AtomicU64>,
    tripped: Arc<AtomicBool>,
}

impl<R: Read> Bounded<R> {
    /// Wraps `inner`, the output of a decoder reading through the
    /// [`CountingReader`] whose count is `compressed`.
    pub fn new(inner: R, limits: Limits, compressed: Arc<AtomicU64>) -> Bounded<R> {
        Bounded {
            inner,
            read: 0,
            limits,
            compressed,
            tripped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag set when the limit was hit.
    pub fn tripped(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.tripped)
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n as u64);
        let allowed = self.limits.allowed(self.compressed.load(Ordering::Relaxed));
        if self.read > allowed {
            self.tripped.store(true, Ordering::SeqCst);
            return Err(io::Error::other(format!(
                "layer expands beyond {allowed} bytes"
            )));
        }
        Ok(n)
    }
}

/// The error for a layer that hit the limits.
pub fn bomb_error(digest: &str, compressed: u64, limits: &Limits) -> StoreError {
    StoreError::DecompressionBomb {
        digest: digest.to_string(),
        compressed,
        allowed: limits.allowed(compressed),
        max_ratio: limits.max_ratio,
        max_unpacked: limits.max_unpacked,
    }
}

/// The uncompressed digest of each layer that `manifest`'s config declares
/// (see [`declared_diff_ids`]), read from the store.
pub fn diff_ids(store: &Store, manifest: &ImageManifest) -> Result<Option<Vec<Digest>>> {
    let config = manifest.config();
    if !declares_diff_ids(config.media_type().as_ref()) {
        return Ok(None);
    }
    let bytes = store.read_document(config.digest())?;
    declared_diff_ids(config, &bytes, manifest.layers().len())
}

/// True for the configs that declare diffIds: ModelPack's, OCI's and
/// Docker's image configs. Other artifacts' configs (empty, tool-specific)
/// declare none, and only blob digests are checked for them.
pub fn declares_diff_ids(config_media_type: &str) -> bool {
    config_media_type == media::MEDIA_TYPE_MODEL_CONFIG
        || config_media_type == media::MEDIA_TYPE_IMAGE_CONFIG
        || config_media_type == media::MEDIA_TYPE_DOCKER_IMAGE_CONFIG
}

/// The diffIds the config `bytes` (described by `config`) declares, one per
/// layer: a ModelPack config's `modelfs.diffIds`, an image config's
/// `rootfs.diff_ids`; `None` for configs that declare none. Every reader of
/// layers (extract, `pull --extract`, `fetch`, mount) checks them.
pub fn declared_diff_ids(
    config: &Descriptor,
    bytes: &[u8],
    layers: usize,
) -> Result<Option<Vec<Digest>>> {
    /// Only what is checked, so any valid image config parses.
    #[derive(serde::Deserialize)]
    struct ImageConfig {
        rootfs: RootFs,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        diff_ids: Vec<Digest>,
    }
    let media_type = config.media_type().to_string();
    let invalid = |reason: String| StoreError::InvalidDocument {
        what: "config",
        digest: config.digest().to_string(),
        reason,
    };
    let ids = if media_type == media::MEDIA_TYPE_MODEL_CONFIG {
        let parsed: ModelPackConfig =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        parsed.modelfs.diff_ids
    } else if declares_diff_ids(&media_type) {
        let parsed: ImageConfig =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        parsed.rootfs.diff_ids
    } else {
        return Ok(None);
    };
    if ids.len() != layers {
        return Err(invalid(format!(
            "{} diffIds for {layers} layers",
            ids.len()
        )));
    }
    Ok(Some(ids))
}

/// Decompressed bytes travel between the threads in chunks of this size,
/// at most [`PIPELINE_DEPTH`] of them queued: memory stays bounded.
const PIPELINE_CHUNK: usize = 1 << 20;
const PIPELINE_DEPTH: usize = 4;

/// Unpacks a compressed tar layer read from `reader` into `root` within
/// `limits`, returning what was placed and the uncompressed digest (the
/// whole decompressed stream is read, past the tar's end marker).
///
/// Two threads share the work: this one reads (and, in the caller, hashes)
/// the compressed bytes and decompresses them; a second one hashes the
/// uncompressed stream and writes the files. Decompression stops as soon
/// as the limits are passed or the writer fails.
pub fn unpack_compressed(
    layer: &Descriptor,
    encoding: Encoding,
    reader: &mut dyn Read,
    root: &Path,
    limits: &Limits,
) -> Result<(Extracted, Digest)> {
    let digest = layer.digest().to_string();
    let counting = CountingReader::new(reader);
    let compressed = counting.count();
    let decoded = decoder(encoding, counting, limits).map_err(|source| StoreError::Decode {
        digest: digest.clone(),
        encoding: encoding.suffix(),
        source,
    })?;
    let mut bounded = Bounded::new(decoded, *limits, Arc::clone(&compressed));
    let tripped = bounded.tripped();
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(PIPELINE_DEPTH);
    let result = std::thread::scope(|scope| {
        let consumer = scope.spawn(move || -> Result<(Extracted, Digest)> {
            let mut hashing = HashingReader::new(ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            });
            let placed = unpack_tar(root, &mut hashing)?;
            io::copy(&mut hashing, &mut io::sink()).map_err(|e| StoreError::Io {
                action: "decompressing",
                path: root.to_path_buf(),
                source: e,
            })?;
            Ok((placed, hashing.finish().0))
        });
        loop {
            let mut chunk = vec![0u8; PIPELINE_CHUNK];
            match fill(&mut bounded, &mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx.send(Ok(chunk)).is_err() {
                        break; // the writer stopped: its error is the one to report
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
        drop(tx);
        consumer.join().unwrap_or(Err(StoreError::Internal(
            "the thread unpacking a layer panicked",
        )))
    });
    if tripped.load(Ordering::SeqCst) {
        return Err(bomb_error(
            &digest,
            compressed.load(Ordering::Relaxed),
            limits,
        ));
    }
    // A truncated or corrupt stream surfaces as an I/O error of the file
    // being written: name the layer so the cause is clear.
    result.map_err(|source| StoreError::InLayer {
        digest: digest.clone(),
        encoding: encoding.suffix(),
        source: Box::new(source),
    })
}

/// Reads until `buf` is full or the stream ends.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The receiving end of the pipeline as a reader; the sender hanging up
/// is the end of the stream.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("2K"), Some(2048));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("1 TiB"), Some(1 << 40));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("-1"), None);
    }

    #[test]
    fn bounded_reader_stops_past_the_limit() {
        let data = [0u8; 100];
        let limits = Limits {
            max_ratio: 1,
            max_unpacked: 50,
            ..Limits::default()
        };
        let mut reader = Bounded::new(&data[..], limits, Arc::new(AtomicU64::new(1 << 40)));
        let flag = reader.tripped();
        assert!(io::copy(&mut reader, &mut io::sink()).is_err());
        assert!(flag.load(Ordering::SeqCst));
    }

    #[test]
    fn the_ratio_follows_the_compressed_bytes_read_not_a_claim() {
        // 1 compressed byte read so far allows the floor; a claim of a large
        // compressed size has no say.
        let limits = Limits {
            max_ratio: 100,
            max_unpacked: 1 << 40,
            ..Limits::default()
        };
        let compressed = Arc::new(AtomicU64::new(1));
        let mut reader = Bounded::new(io::repeat(0), limits, Arc::clone(&compressed));
        let flag = reader.tripped();
        let mut sink = io::sink();
        let copied = io::copy(&mut (&mut reader).take(RATIO_FLOOR), &mut sink).unwrap();
        assert_eq!(copied, RATIO_FLOOR, "the floor is always allowed");
        assert!(
            reader.read(&mut [0u8; 1]).is_err(),
            "one byte past the floor"
        );
        assert!(flag.load(Ordering::SeqCst));

        // As more compressed input is read, more output is allowed.
        compressed.store(RATIO_FLOOR, Ordering::Relaxed);
        let mut reader = Bounded::new(io::repeat(0), limits, Arc::clone(&compressed));
        let copied = io::copy(&mut (&mut reader).take(2 * RATIO_FLOOR), &mut sink).unwrap();
        assert_eq!(copied, 2 * RATIO_FLOOR);
    }

    #[test]
    fn the_counting_reader_counts_what_passed() {
        let mut reader = CountingReader::new(&[1u8; 300][..]);
        let count = reader.count();
        let mut buf = [0u8; 128];
        assert_eq!(reader.read(&mut buf).unwrap(), 128);
        assert_eq!(count.load(Ordering::Relaxed), 128);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 300);
    }

    #[test]
    fn allowed_uses_ratio_floor_and_cap() {
        let limits = Limits {
            max_ratio: 10,
            max_unpacked: 1 << 30,
            ..Limits::default()
        };
        assert_eq!(limits.allowed(1), RATIO_FLOOR);
        assert_eq!(limits.allowed(10 << 20), 100 << 20);
        assert_eq!(limits.allowed(200 << 20), 1 << 30);
    }
}
