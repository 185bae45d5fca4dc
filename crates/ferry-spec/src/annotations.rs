//! Annotation keys ferry reads and writes, and the per-file metadata record.

use serde::{Deserialize, Serialize};

/// The file's path relative to the model root (ModelPack).
pub const FILEPATH: &str = "org.cncf.model.filepath";
/// Legacy spelling of [`FILEPATH`] (modctl before v0.2.0, and modctl
/// since 2026 for registries that know only the `cnai` identifiers).
pub const FILEPATH_LEGACY: &str = "org.cnai.model.filepath";
/// JSON file metadata (ModelPack).
pub const FILE_METADATA: &str = "org.cncf.model.file.metadata+json";
/// Legacy spelling of [`FILE_METADATA`], written with [`FILEPATH_LEGACY`].
pub const FILE_METADATA_LEGACY: &str = "org.cnai.model.file.metadata+json";

/// A layer's file metadata annotation, under either spelling.
pub fn file_metadata_json(
    annotations: &std::collections::HashMap<String, String>,
) -> Option<&String> {
    annotations
        .get(FILE_METADATA)
        .or_else(|| annotations.get(FILE_METADATA_LEGACY))
}
/// `"true"` when the layer's category was guessed by a heuristic (ModelPack).
pub const MEDIATYPE_UNTESTED: &str = "org.cncf.model.file.mediatype.untested";
/// The file name a runtime gives a mounted layer (CRI-O looks here first).
pub const TITLE: &str = "org.opencontainers.image.title";
/// Creation time of the artifact (RFC 3339).
pub const CREATED: &str = "org.opencontainers.image.created";
/// The source revision (a commit) the artifact was made from.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// Where the artifact's source lives (a URL).
pub const SOURCE: &str = "org.opencontainers.image.source";
/// The reference name of a manifest inside an OCI image layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// modctl keeps the whole Modelfile text here.
pub const MODELFILE: &str = "org.cncf.modctl.modelfile";
/// KitOps keeps the whole Kitfile (JSON) here in the ModelPack manifests
/// it writes; ferry does the same for what it packs from a Kitfile.
pub const KITOPS_KITFILE: &str = "ml.kitops.modelkit.kitfile";
/// ORAS marks directory layers that must be unpacked.
pub const ORAS_UNPACK: &str = "io.deis.oras.content.unpack";

/// The value of `org.cncf.model.file.metadata+json`.
///
/// Field names and types follow ModelPack; `mtime` is RFC 3339 and `typeflag`
/// the tar type flag byte (`0` regular file, `2` symlink, `5` directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    /// The file's base name.
    pub name: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner user id (0 unless metadata is preserved).
    pub uid: u32,
    /// Owner group id (0 unless metadata is preserved).
    pub gid: u32,
    /// Size in bytes of the file's content.
    pub size: u64,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// Tar type flag.
    pub typeflag: u8,
}

/// Tar type flag of a regular file.
pub const TYPEFLAG_REGULAR: u8 = b'0';
/// Tar type flag of a symbolic link.
pub const TYPEFLAG_SYMLINK: u8 = b'2';
/// Tar type flag of a directory.
pub const TYPEFLAG_DIRECTORY: u8 = b'5';
