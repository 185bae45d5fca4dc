//! Compressing layers while they are written: deterministic gzip (no
//! mtime, no file name) and zstd on every core, and the per-file choice of
//! `--compress auto`.
//!
//! zstd's output is identical for any number of workers >= 1 (but not for
//! the single-threaded mode), so ferry always uses at least one worker and
//! the digest does not depend on the machine. The uncompressed tar is
//! hashed on the way in: its digest is the layer's `diffId`.

use std::io::{self, Read, Seek, SeekFrom, Write};

use ferry_spec::digest::HashingWriter;
use ferry_spec::media::{Category, Encoding};
use ferry_spec::oci::Digest;

use crate::error::{Result, StoreError};
use crate::pack::Progress;
use crate::pack::layer::{PackedFile, WrittenBlob, tar_into};
use crate::pack::walk::SourceFile;
use crate::store::Store;

/// Default `--min-saving`: a weight file whose sample shrinks by less than
/// this percentage stays raw.
pub const DEFAULT_MIN_SAVING_PERCENT: u32 = 5;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Default gzip level.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Bytes sampled at the start and in the middle of a weight file.
const SAMPLE: u64 = 4 << 20;

/// `--compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressMode {
    /// Every layer uncompressed.
    #[default]
    None,
    /// gzip tar layers.
    Gzip,
    /// zstd tar layers.
    Zstd,
    /// zstd for text-like files, weights raw (unless `weights`).
    Auto,
}

/// How `pack` compresses layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressOptions {
    /// The mode.
    pub mode: CompressMode,
    /// Level (zstd 1..=22, default 3; gzip 0..=9, default 6).
    pub level: Option<i32>,
    /// Compress weights too, when a sample saves at least `min_saving_percent`.
    pub weights: bool,
    /// Minimum saving for a sampled weight file to be compressed.
    pub min_saving_percent: u32,
    /// zstd workers; 0 means one per core. Never changes the output.
    pub threads: u32,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            mode: CompressMode::None,
            level: None,
            weights: false,
            min_saving_percent: DEFAULT_MIN_SAVING_PERCENT,
            threads: 0,
        }
    }
}

/// The codec of one layer: encoding, level and zstd workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// `TarGzip` or `TarZstd` (anything else writes plain bytes).
    pub encoding: Encoding,
    /// Compression level.
    pub level: i32,
    /// zstd workers (at least 1).
    pub threads: u32,
}

impl CompressOptions {
    /// Checks the level against the codec's range.
    pub fn validate(&self) -> Result<()> {
        let range = match self.mode {
            CompressMode::Gzip => 0..=9,
            CompressMode::Zstd | CompressMode::Auto => 1..=22,
            CompressMode::None => return Ok(()),
        };
        match self.level {
            Some(level) if !range.contains(&level) => Err(StoreError::LevelOutOfRange {
                level,
                min: *range.start(),
                max: *range.end(),
            }),
            _ => Ok(()),
        }
    }

    fn encoding(&self) -> Option<Encoding> {
        match self.mode {
            CompressMode::None => None,
            CompressMode::Gzip => Some(Encoding::TarGzip),
            CompressMode::Zstd | CompressMode::Auto => Some(Encoding::TarZstd),
        }
    }

    fn codec(&self, encoding: Encoding) -> Codec {
        let level = self.level.unwrap_or(match encoding {
            Encoding::TarGzip => DEFAULT_GZIP_LEVEL as i32,
            _ => DEFAULT_ZSTD_LEVEL,
        });
        let threads = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
        } else {
            self.threads
        };
        Codec {
            encoding,
            level,
            threads: threads.max(1),
        }
    }

    /// The codec for one file of `category` (`None`: keep it uncompressed).
    /// Weights are compressed only with `weights`, and only when a sample
    /// of the file saves at least `min_saving_percent`.
    pub fn choose(&self, category: Category, file: &SourceFile) -> Option<Codec> {
        let encoding = self.encoding()?;
        if file.link_target.is_some() {
            return None;
        }
        let codec = self.codec(encoding);
        if category != Category::Weight {
            return Some(codec);
        }
        if !self.weights {
            return None;
        }
        // Readers refuse layers that expand more than the bomb limit; data
        // that compresses that well (zero padding) stays raw so every ferry
        // can read what ferry packs.
        let readable = 100.0 * (1.0 - 1.0 / crate::decompress::Limits::default().max_ratio as f64);
        match sample_saving(file, codec) {
            Ok(percent)
                if percent >= readable - 1.0
                    && file.metadata.len() > crate::decompress::RATIO_FLOOR =>
            {
                tracing::debug!(
                    "{} stays raw: sample saves {percent:.1}%, too much to tell from a bomb",
                    file.rel
                );
                None
            }
            Ok(percent) if percent >= f64::from(self.min_saving_percent) => Some(codec),
            Ok(percent) => {
                tracing::debug!("{} stays raw: sample saves {percent:.1}%", file.rel);
                None
            }
            Err(e) => {
                // The write will report the file's error; nothing is decided here.
                tracing::debug!("{}: cannot sample: {e}", file.rel);
                None
            }
        }
    }
}

/// Percentage saved by compressing the first 4 MiB and 4 MiB from the middle.
fn sample_saving(source: &SourceFile, codec: Codec) -> io::Result<f64> {
    let mut file = source.open().map_err(io::Error::other)?;
    let len = file.metadata()?.len();
    let mut sample = Vec::new();
    (&mut file).take(SAMPLE).read_to_end(&mut sample)?;
    if len > 2 * SAMPLE {
        file.seek(SeekFrom::Start(len / 2))?;
        (&mut file).take(SAMPLE).read_to_end(&mut sample)?;
    }
    if sample.is_empty() {
        return Ok(0.0);
    }
    let compressed = match codec.encoding {
        Encoding::TarGzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(codec.level.clamp(0, 9) as u32),
            );
            encoder.write_all(&sample)?;
            encoder.finish()?.len()
        }
        _ => zstd::bulk::compress(&sample, codec.level)?.len(),
    };
    Ok(100.0 * (1.0 - compressed as f64 / sample.len() as f64))
}

/// A writer that compresses into `W` (or passes bytes through).
pub enum Encoder<W: Write> {
    /// No compression.
    Plain(W),
    /// Deterministic gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd with at least one worker.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Starts compressing into `writer`.
    pub fn new(writer: W, codec: Codec) -> io::Result<Encoder<W>> {
        Ok(match codec.encoding {
            Encoding::TarGzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(
                        writer,
                        flate2::Compression::new(codec.level.clamp(0, 9) as u32),
                    ),
            ),
            Encoding::TarZstd => {
                let mut encoder = zstd::stream::write::Encoder::new(writer, codec.level)?;
                encoder.multithread(codec.threads.max(1))?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
            Encoding::Raw | Encoding::Tar => Encoder::Plain(writer),
        })
    }

    /// Ends the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// The uncompressed side of a compressed layer.
#[derive(Debug, Clone)]
pub struct Uncompressed {
    /// Digest of the uncompressed tar (the diffId).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// Writes the compressed tar of `files` into `writer`, hashing the
/// uncompressed tar on the way; returns the writer, that digest and each
/// file's.
pub fn compressed_tar_into<W: Write>(
    writer: W,
    files: &[&SourceFile],
    preserve: bool,
    codec: Codec,
    progress: &dyn Progress,
    target: &str,
) -> Result<(W, Uncompressed, Vec<PackedFile>)> {
    let encoder = Encoder::new(writer, codec).map_err(|source| StoreError::Compression {
        action: "starting",
        target: target.to_string(),
        source,
    })?;
    let (hashing, hashed) = tar_into(
        HashingWriter::new(encoder),
        files,
        preserve,
        progress,
        target,
    )?;
    let (encoder, digest, size) = hashing.finish();
    let writer = encoder.finish().map_err(|source| StoreError::Compression {
        action: "finishing",
        target: target.to_string(),
        source,
    })?;
    Ok((writer, Uncompressed { digest, size }, hashed))
}

/// Stores a compressed tar layer of `files`.
pub fn write_compressed_tar(
    store: &Store,
    files: &[&SourceFile],
    preserve: bool,
    codec: Codec,
    progress: &dyn Progress,
) -> Result<WrittenBlob> {
    let writer = store.blob_writer()?;
    let target = writer.temp_path().display().to_string();
    let (writer, uncompressed, hashed) =
        compressed_tar_into(writer, files, preserve, codec, progress, &target)?;
    let size = writer.written();
    let digest = writer.commit(None)?;
    Ok(WrittenBlob {
        digest,
        size,
        diff_id: uncompressed.digest,
        uncompressed_size: uncompressed.size,
        files: hashed,
    })
}

/// Streams a compressed tar layer into any writer (an upload), returning
/// the uncompressed side.
pub fn stream_compressed_tar(
    writer: &mut dyn Write,
    files: &[&SourceFile],
    preserve: bool,
    codec: Codec,
    progress: &dyn Progress,
) -> Result<Uncompressed> {
    let (_, uncompressed, _) =
        compressed_tar_into(writer, files, preserve, codec, progress, "the upload")?;
    Ok(uncompressed)
}
