//! The store's error type: every variant names the thing it is about and
//! keeps the error that caused it, so callers can match on what went wrong
//! and `source()` leads to the root cause.

use std::io;
use std::path::PathBuf;

/// Errors from the local store, packing and extraction.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // --- The store itself -------------------------------------------------
    /// An I/O error on a named path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What ferry was doing ("reading", "writing blob for", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `index.json` cannot be parsed.
    #[error("corrupt index {path}: {reason}")]
    CorruptIndex {
        /// Path of the index.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// A reference that is not in the store.
    #[error("{0}: not found in the store")]
    NotFound(String),
    /// A reference or digest that cannot be parsed.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// What the user typed.
        input: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A name in a layout that holds several manifests, none of them named.
    #[error("{location} holds {count} manifests: name one as {location}:NAME (names: {names})")]
    AmbiguousLayout {
        /// The layout as the user wrote it (`oci:PATH`).
        location: String,
        /// How many manifests it holds.
        count: usize,
        /// Their names, comma-separated.
        names: String,
    },
    /// A blob whose bytes do not hash to its name.
    #[error("blob {digest} is corrupt: content hashes to {actual}")]
    DigestMismatch {
        /// Expected digest.
        digest: String,
        /// Digest of the bytes found.
        actual: String,
    },
    /// A blob whose size differs from what its descriptor says.
    #[error("blob {digest} is {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: String,
        /// Bytes found.
        actual: u64,
        /// Bytes the descriptor declares.
        expected: u64,
    },
    /// A blob that goes on past the size its descriptor declares (read no
    /// further than one byte past it).
    #[error("blob {digest} is longer than the {expected} bytes the manifest says")]
    LongerThanDeclared {
        /// The blob.
        digest: String,
        /// Bytes the descriptor declares.
        expected: u64,
    },
    /// A stored document (manifest, config) that does not parse.
    #[error("invalid {what} {digest}: {reason}")]
    InvalidDocument {
        /// "manifest", "config", ...
        what: &'static str,
        /// Its digest.
        digest: String,
        /// Parser message.
        reason: String,
    },
    /// A document larger than ferry reads whole.
    #[error("{what} is {size} bytes, larger than the {limit}-byte limit for manifests and configs")]
    TooLarge {
        /// The blob or file.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Content that something outside the index (an active mount) uses.
    #[error("{what} is in use by {holders}")]
    InUse {
        /// The reference or digest that was to be removed.
        what: String,
        /// Who uses it ("the mount at /mnt/m", ...).
        holders: String,
    },
    /// What pins content (mount records) could not be read, so nothing may
    /// be deleted.
    #[error("reading what pins content: {source}")]
    PinsUnreadable {
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A document ferry built could not be serialized.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// "index.json", "manifest", "config", ...
        what: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A broken invariant inside ferry: a bug, never bad input.
    #[error("internal error: {0}")]
    Internal(&'static str),

    // --- Options and environment -----------------------------------------
    /// A compression level outside the codec's range.
    #[error("compression level {level} is out of range {min}..={max}")]
    LevelOutOfRange {
        /// The level asked for.
        level: i32,
        /// The codec's lowest level.
        min: i32,
        /// The codec's highest level.
        max: i32,
    },
    /// A layer encoding `pack` does not write.
    #[error("layer format {0} is not supported by pack (use raw or tar)")]
    UnsupportedLayerFormat(&'static str),
    /// A value that is not a media type.
    #[error("{what} {value:?} is not a media type (type/subtype)")]
    InvalidMediaType {
        /// "artifact type", "layer media type", ...
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// A generic artifact with the empty config and no artifact type.
    #[error(
        "an artifact without a config needs --artifact-type (the image spec requires artifactType with the empty config)"
    )]
    MissingArtifactType,
    /// An environment variable ferry reads holds an unusable value.
    #[error("{name}={value:?} is not {expected}")]
    InvalidEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be ("a positive integer", ...).
        expected: &'static str,
    },

    // --- Packing -------------------------------------------------------------
    /// A path that should be a directory is something else.
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A model directory with nothing to pack.
    #[error("{} contains no files to pack", .0.display())]
    NoFiles(PathBuf),
    /// A device node, fifo or socket in a model directory.
    #[error("{} is not a regular file, directory or symlink", .0.display())]
    SpecialFile(PathBuf),
    /// A symlink to a fifo, socket or device.
    #[error("{} links to {}, which is not a regular file or directory", path.display(), target.display())]
    SymlinkToSpecialFile {
        /// The symlink.
        path: PathBuf,
        /// Where it resolves.
        target: PathBuf,
    },
    /// A directory loop (through symlinks) while walking a model.
    #[error("filesystem loop at {}", .0.display())]
    FilesystemLoop(PathBuf),
    /// A path that is not UTF-8 (layer paths are annotations, hence text).
    #[error("{0:?} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    /// A path the walk found outside the directory it walked.
    #[error("{} is outside the model", .0.display())]
    OutsideModel(PathBuf),
    /// A symlink whose target cannot be resolved.
    #[error("symlink {} cannot be resolved: {source}", path.display())]
    BrokenSymlink {
        /// The symlink.
        path: PathBuf,
        /// Why it cannot be resolved.
        source: io::Error,
    },
    /// A symlink leaving the model directory (and, in a Hugging Face cache
    /// snapshot, its repository's `blobs/`).
    #[error(
        "symlink {} points outside {allowed} (to {}); --follow-symlinks packs what any link points to",
        path.display(),
        target.display()
    )]
    SymlinkEscapes {
        /// The symlink.
        path: PathBuf,
        /// Where it resolves.
        target: PathBuf,
        /// Where links may lead, in words.
        allowed: String,
    },
    /// A symlink followed out of the model directory to something other
    /// than a regular file.
    #[error(
        "symlink {} points outside the model directory to {}, which is not a regular file (only files are followed there)",
        path.display(),
        target.display()
    )]
    SymlinkOutsideNotAFile {
        /// The symlink.
        path: PathBuf,
        /// Where it resolves.
        target: PathBuf,
    },
    /// A Hugging Face cache lookup that found nothing usable (boxed: its
    /// lists of what is there would make every `Result` larger).
    #[error(transparent)]
    HfCache(Box<crate::pack::hf_cache::HfCacheError>),
    /// A symlink to a directory where only files can go (raw layers).
    #[error(
        "symlink {} points to a directory; raw layers hold files only (use --layer-format tar)",
        .0.display()
    )]
    SymlinkToDirectory(PathBuf),
    /// A symbolic link kept as a link while the files are to be signed.
    #[error(
        "{} is a symbolic link, which a model signature cannot cover (model signing's allow_symlinks is false); pack with the default raw layers, which store its target's bytes",
        .0.display()
    )]
    UnsignableSymlink(PathBuf),
    /// A file given to `pack --wasm` that is not a Wasm module or component.
    #[error("{} is not a valid wasm binary: {reason}", path.display())]
    InvalidWasm {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file whose size or mtime changed while it was read.
    #[error("{} changed while it was being packed", .0.display())]
    ChangedWhilePacking(PathBuf),
    /// `--link` could not hardlink a file into the store.
    #[error(
        "cannot hardlink {} into the store at {} (--link needs one filesystem): {source}",
        path.display(),
        store.display()
    )]
    Hardlink {
        /// The model file.
        path: PathBuf,
        /// The store root.
        store: PathBuf,
        /// The link(2) error.
        source: io::Error,
    },
    /// Writing a model file's bytes into a blob failed.
    #[error("writing blob for {} to {}: {source}", file.display(), blob.display())]
    BlobWrite {
        /// The model file being packed.
        file: PathBuf,
        /// The blob file being written.
        blob: PathBuf,
        /// The write error.
        source: io::Error,
    },
    /// Writing a tar layer failed.
    #[error("writing tar entry {entry} to {target}: {source}")]
    TarWrite {
        /// The entry being written.
        entry: String,
        /// The layer being written.
        target: String,
        /// The error.
        source: io::Error,
    },
    /// A compressor could not start or finish.
    #[error("{action} compression for {target}: {source}")]
    Compression {
        /// "starting", "finishing".
        action: &'static str,
        /// The layer.
        target: String,
        /// The encoder's error.
        source: io::Error,
    },
    /// An `--include`/`--exclude` pattern that is not a glob.
    #[error("invalid glob {pattern:?}: {source}")]
    InvalidGlob {
        /// The pattern.
        pattern: String,
        /// globset's error.
        source: globset::Error,
    },
    /// A Modelfile that does not parse.
    #[error("{}: {source}", path.display())]
    Modelfile {
        /// The Modelfile.
        path: PathBuf,
        /// The parser's error (names the line).
        source: ferry_spec::modelfile::ModelfileError,
    },
    /// A Kitfile that does not parse, or lists a path ferry cannot pack.
    #[error("{}: {source}", path.display())]
    Kitfile {
        /// The Kitfile.
        path: PathBuf,
        /// What is wrong.
        source: ferry_spec::kitfile::KitfileError,
    },
    /// `convert` to ModelPack of something that is not a ModelKit.
    #[error(
        "{input} is a {shape}, not a KitOps ModelKit: only ModelKits convert to ModelPack (any artifact converts to a directory: dir:PATH)"
    )]
    NotConvertible {
        /// The artifact.
        input: String,
        /// What it is.
        shape: &'static str,
    },
    /// A `.kitignore` larger than any reasonable one.
    #[error("{} is larger than {limit} bytes", path.display())]
    KitIgnoreTooLarge {
        /// The file.
        path: PathBuf,
        /// The most read.
        limit: u64,
    },
    /// A `.kitignore` line that is no valid pattern.
    #[error(".kitignore: {line:?} is not a valid pattern: {reason}")]
    KitIgnorePattern {
        /// The line.
        line: String,
        /// Why.
        reason: String,
    },
    /// A ModelKit layer that no Kitfile entry names.
    #[error(
        "ModelKit layer {layer} is named by no Kitfile entry: its files would have no path or category"
    )]
    ModelKitLayerUnlisted {
        /// The layer's digest.
        layer: String,
    },
    /// A ModelKit layer holding a file outside the Kitfile path it is for.
    #[error("ModelKit layer {layer} is {field} ({listed:?}) but holds {path:?}, outside that path")]
    ModelKitLayerStrays {
        /// The layer's digest.
        layer: String,
        /// Its Kitfile entry.
        field: String,
        /// The entry's path.
        listed: String,
        /// The file outside it.
        path: String,
    },
    /// Two layers of a ModelKit that place the same file.
    #[error("ModelKit layers {first} and {second} both hold {path:?}")]
    ModelKitPathTwice {
        /// The file.
        path: String,
        /// The layer that placed it first.
        first: String,
        /// The layer that placed it again.
        second: String,
    },
    /// A Kitfile path that names no file of the directory.
    #[error("{}: {field}: {listed:?} is not in the directory (a reference to another ModelKit is not followed)", path.display())]
    KitfilePathMissing {
        /// The Kitfile.
        path: PathBuf,
        /// Where in the Kitfile.
        field: String,
        /// The path as listed.
        listed: String,
    },
    /// A Modelfile glob that matches no file of the directory.
    #[error("{}: modelfile line {line}: glob {pattern:?} matches no file", path.display())]
    UnmatchedGlob {
        /// The Modelfile.
        path: PathBuf,
        /// Its line.
        line: usize,
        /// The glob.
        pattern: String,
    },
    /// The model config ferry built breaks the ModelPack schema (bad metadata).
    #[error(transparent)]
    InvalidConfig(#[from] ferry_spec::config::ConfigError),
    /// oci-spec refused the manifest ferry assembled.
    #[error("cannot build manifest: {0}")]
    BuildManifest(#[source] oci_spec::OciSpecError),

    // --- Extraction ----------------------------------------------------------
    /// A non-empty target without `--force`.
    #[error("{} is not empty (use --force to overwrite)", .0.display())]
    NotEmpty(PathBuf),
    /// A raw layer with no path to write it to.
    #[error("layer {digest} ({media_type}) has no file path annotation")]
    NoFilePath {
        /// The layer.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// A layer whose uncompressed digest is not the config's diffId.
    #[error(
        "layer {layer}: uncompressed content hashes to {actual}, the config's diffIds say {expected}"
    )]
    DiffIdMismatch {
        /// The layer's digest.
        layer: String,
        /// The uncompressed digest found.
        actual: String,
        /// The config's diffId.
        expected: String,
    },
    /// A tar entry that could escape the target or is not allowed there
    /// (`..`, absolute paths, links out of the root, device nodes).
    #[error("refusing {entry}: {reason}")]
    UnsafeEntry {
        /// The entry (`path "a/../b"`, `symlink "x"`, ...).
        entry: String,
        /// Why.
        reason: String,
    },
    /// A tar layer that cannot be read.
    #[error("invalid tar {part}: {source}")]
    InvalidTar {
        /// What could not be read ("layer", "entry path", ...).
        part: String,
        /// tar's error.
        source: io::Error,
    },
    /// A compressed layer that does not decode.
    #[error("layer {digest} ({encoding}): {source}")]
    Decode {
        /// The layer.
        digest: String,
        /// Its encoding (`tar+gzip`, ...).
        encoding: &'static str,
        /// The decoder's error.
        source: io::Error,
    },
    /// An error while unpacking a compressed layer, naming the layer.
    #[error("layer {digest} ({encoding}): {source}")]
    InLayer {
        /// The layer.
        digest: String,
        /// Its encoding (`tar+gzip`, ...).
        encoding: &'static str,
        /// What went wrong inside it.
        source: Box<StoreError>,
    },
    /// A layer that expands beyond the decompression limits.
    #[error(
        "layer {digest} expands beyond {allowed} bytes from {compressed} compressed bytes \
         (limits: ratio {max_ratio}:1 via FERRY_MAX_RATIO, {max_unpacked} bytes via FERRY_MAX_UNPACKED): \
         refusing a possible decompression bomb"
    )]
    DecompressionBomb {
        /// The layer.
        digest: String,
        /// Compressed bytes read when the limit was passed.
        compressed: u64,
        /// Uncompressed bytes it was allowed.
        allowed: u64,
        /// The ratio limit.
        max_ratio: u64,
        /// The absolute limit.
        max_unpacked: u64,
    },
}

impl StoreError {
    /// The error itself, or for [`StoreError::InLayer`] the error inside
    /// the layer: what to match on.
    pub fn innermost(&self) -> &StoreError {
        match self {
            StoreError::InLayer { source, .. } => source.innermost(),
            other => other,
        }
    }

    /// An [`StoreError::UnsafeEntry`] for `entry` (e.g. `path "a/../b"`).
    pub(crate) fn unsafe_entry(entry: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::UnsafeEntry {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches an action and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
