//! What each command prints with `--json`: one `Serialize` type per
//! command, the stable contract scripts rely on (the README's "Output").
//! Every field is always present (`null` when it does not apply); field
//! names are camelCase; byte counts say what they count (`sentBytes`,
//! `freedBytes`, ...).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// `ferry init --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitReport {
    /// The Modelfile written.
    pub modelfile: PathBuf,
    /// Files it lists.
    pub files: usize,
    /// Files per Modelfile directive (`model`, `config`, `code`, `doc`, `dataset`).
    pub declared: BTreeMap<&'static str, usize>,
    /// The metadata detected (`null` where nothing was found).
    pub metadata: ferry_spec::modelfile::ModelFacts,
}

/// `ferry pack --json` (also with `--generic` and `--push`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackReport {
    /// The full reference.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// The manifest's artifactType.
    pub artifact_type: Option<String>,
    /// Number of layers.
    pub layers: usize,
    /// Bytes of files read.
    pub content_bytes: u64,
    /// Bytes of layers uploaded (`--push`), else `null`.
    pub sent_bytes: Option<u64>,
    /// The referrer holding the model signature (`--sign-key`), else `null`.
    pub model_signature: Option<String>,
    /// Wall time.
    pub seconds: f64,
}

/// One row of `ferry ls --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedArtifact {
    /// The full reference (`<none>` for an unnamed entry).
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// Manifest, config and layers, in bytes.
    pub size: u64,
    /// Creation time (RFC 3339), when recorded.
    pub created: Option<String>,
}

/// `ferry inspect --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectReport {
    /// The full reference (`null` when looked up by digest).
    pub reference: Option<String>,
    /// The manifest digest.
    pub digest: String,
    /// The manifest's artifactType, else its config's media type.
    pub artifact_type: String,
    /// The config document (`null` when it is not JSON).
    pub config: serde_json::Value,
    /// The layers, in manifest order.
    pub layers: Vec<InspectedLayer>,
}

/// One layer of `ferry inspect --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectedLayer {
    /// Its file path (filepath, then title annotation).
    pub path: Option<String>,
    /// ModelPack category (`weight`, `config`, ...), for ModelPack media types.
    pub category: Option<&'static str>,
    /// `raw`, `tar`, `tar+gzip`, `tar+zstd`, for ModelPack media types.
    pub encoding: Option<&'static str>,
    /// The media type.
    pub media_type: String,
    /// The blob digest.
    pub digest: String,
    /// The blob size.
    pub size: u64,
    /// Classified by ferry's heuristic rather than declared.
    pub untested: bool,
}

/// `ferry tag --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagReport {
    /// The new full reference.
    pub reference: String,
    /// The manifest digest it names.
    pub digest: String,
    /// The reference or digest it was tagged from, as given.
    pub source: String,
}

/// One row of `ferry rm --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedArtifact {
    /// The reference or digest, as given.
    pub reference: String,
    /// Index entries removed.
    pub entries: usize,
    /// Blobs deleted.
    pub blobs: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// `ferry prune --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// Nothing was removed, only listed.
    pub dry_run: bool,
    /// Blobs removed (or that would be).
    pub blobs: Vec<String>,
    /// Leftover temporary files removed.
    pub temp_files: Vec<PathBuf>,
    /// Volume layer cache entries removed.
    pub layer_cache: Vec<String>,
    /// Bytes freed (or that would be).
    pub freed_bytes: u64,
}

/// `ferry fsck --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsckReport {
    /// Nothing corrupt or missing (after repairs, with `--repair`).
    pub clean: bool,
    /// Blobs re-hashed.
    pub checked: usize,
    /// Bytes re-hashed.
    pub checked_bytes: u64,
    /// Blobs whose content does not match their digest.
    pub corrupt: Vec<String>,
    /// Blobs the index needs that are absent.
    pub missing: Vec<String>,
    /// Blobs nothing references (`ferry prune` removes them).
    pub unreferenced: Vec<String>,
    /// Leftover temporary files (`ferry prune` removes them).
    pub leftovers: usize,
    /// Why index.json cannot be read, if it cannot.
    pub index_error: Option<String>,
    /// Artifacts that need a corrupt or missing blob.
    pub damaged: Vec<DamagedArtifact>,
    /// What `--repair` did for each damaged artifact (empty without it).
    pub repairs: Vec<Repair>,
}

/// An artifact `fsck` found damaged.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DamagedArtifact {
    /// Its full reference (`null` for an unnamed entry).
    pub reference: Option<String>,
    /// Its manifest digest.
    pub digest: String,
    /// Its corrupt or missing blobs.
    pub blobs: Vec<String>,
}

/// What `fsck --repair` did for one damaged artifact.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Repair {
    /// Its full reference (`null` for an unnamed entry).
    pub reference: Option<String>,
    /// Its manifest digest.
    pub digest: String,
    /// Its blobs were fetched again from its registry.
    pub refetched: bool,
    /// Blobs fetched.
    pub received_blobs: usize,
    /// Why it could not be fetched, when it could not.
    pub error: Option<String>,
    /// The command that fetches it once the registry is reachable, when the
    /// repair failed and the artifact has a name.
    pub command: Option<String>,
}

/// `ferry convert --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConvertReport {
    /// The source as given.
    pub source: String,
    /// What the source is (`KitOps ModelKit`, `ModelPack`, `OCI artifact`).
    pub source_kind: &'static str,
    /// The new reference, or the directory.
    pub destination: String,
    /// The new manifest's digest (a conversion to ModelPack).
    pub digest: Option<String>,
    /// One entry per file.
    pub files: Vec<ConvertedFileReport>,
    /// Kitfile fields without a ModelPack field, kept in the `ml.kitops.modelkit.kitfile` annotation.
    pub kept_in_annotation: Vec<String>,
}

/// One file of `ferry convert --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConvertedFileReport {
    /// Path relative to the root.
    pub path: String,
    /// Media type of the source layer.
    pub from: String,
    /// Media type of the new layer (to ModelPack).
    pub to: Option<String>,
    /// What was done.
    pub action: String,
}

/// `ferry extract --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractReport {
    /// The full reference (`null` when extracted by digest).
    pub reference: Option<String>,
    /// The manifest digest.
    pub digest: String,
    /// The target directory.
    pub dir: PathBuf,
    /// Files, links and directories created.
    pub entries: usize,
    /// Bytes of file content written.
    pub written_bytes: u64,
}

/// `ferry fetch --json` and `ferry pull --extract --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchReport {
    /// The full reference.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// The target directory.
    pub dir: PathBuf,
    /// The path of each layer written, in manifest order.
    pub layers: Vec<String>,
    /// Layers the filters left out.
    pub skipped_layers: usize,
    /// Files, links and directories created.
    pub entries: usize,
    /// Bytes of file content written.
    pub written_bytes: u64,
    /// Bytes downloaded.
    pub received_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Blob counts of a push.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedBlobs {
    /// Blobs uploaded (or mounted from another repository of the registry).
    pub sent: usize,
    /// Blobs the registry already had.
    pub present: usize,
}

/// Blob counts of a copy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopiedBlobs {
    /// Blobs whose bytes were uploaded.
    pub sent: usize,
    /// Blobs mounted from another repository of the same registry.
    pub mounted: usize,
    /// Blobs the destination already had.
    pub present: usize,
}

/// `ferry push --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// The destination's full reference.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// Blob counts.
    pub blobs: PushedBlobs,
    /// Bytes uploaded.
    pub sent_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Blob counts of a download.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedBlobs {
    /// Blobs downloaded.
    pub received: usize,
    /// Blobs the store already had.
    pub present: usize,
}

/// `ferry pull --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    /// The full reference it is stored under.
    pub reference: String,
    /// The manifest digest (the platform's, when the tag names an index).
    pub digest: String,
    /// Blob counts.
    pub blobs: ReceivedBlobs,
    /// Bytes downloaded.
    pub received_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// `ferry copy --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// The source, as given.
    pub source: String,
    /// The destination, as given.
    pub destination: String,
    /// The root manifest's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Manifests written (root, an index's children, referrers).
    pub manifests: usize,
    /// Referrers copied.
    pub referrers: usize,
    /// Blob counts.
    pub blobs: CopiedBlobs,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// `ferry attach --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachReport {
    /// The referrer, `REGISTRY/REPO@DIGEST`.
    pub reference: String,
    /// The referrer manifest's digest.
    pub digest: String,
    /// Its artifactType.
    pub artifact_type: String,
    /// What it refers to.
    pub subject: Subject,
    /// The registry indexed it through the referrers API.
    pub referrers_api: bool,
    /// The fallback tag ferry updated instead, if any.
    pub fallback_tag: Option<String>,
    /// Read-modify-write attempts on the fallback tag, if any.
    pub fallback_attempts: Option<u32>,
}

/// The subject of an attached referrer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// The reference, as resolved.
    pub reference: String,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// `ferry discover --json` (with and without `--tree`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverReport {
    /// The subject, `REGISTRY/REPO@DIGEST`.
    pub reference: String,
    /// Its digest.
    pub digest: String,
    /// `referrers-api` or `fallback-tag` (`null` with `--tree`, which may use both).
    pub source: Option<&'static str>,
    /// The referrers (with `--tree`, each with its own).
    pub referrers: Vec<Referrer>,
}

/// One referrer in `ferry discover --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Its artifactType.
    pub artifact_type: Option<String>,
    /// Its annotations, sorted.
    pub annotations: BTreeMap<String, String>,
    /// Its referrers (`--tree` only; else empty).
    pub referrers: Vec<Referrer>,
    /// Shown higher up the tree already (a cycle), so not descended.
    pub repeated: bool,
    /// Not descended: the depth or size limit was reached.
    pub truncated: bool,
}

/// `ferry index create --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexReport {
    /// The index's full reference.
    pub reference: String,
    /// Its digest.
    pub digest: String,
    /// The manifests it lists.
    pub manifests: Vec<IndexedManifest>,
}

/// One manifest of an index.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexedManifest {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Its artifactType.
    pub artifact_type: Option<String>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
}

/// A volume in `ferry mount --json`, `ferry umount --json` and `ferry mounts --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// The mount point.
    pub target: PathBuf,
    /// The subpath mounted, `null` for the whole volume.
    pub subpath: Option<String>,
    /// `ro` or `rw`.
    pub access: &'static str,
    /// `overlay`, `hardlink` or `copy`.
    pub method: &'static str,
    /// Mounted `noexec`.
    pub noexec: bool,
    /// Base first, then stacked artifacts (later wins).
    pub artifacts: Vec<VolumeArtifact>,
    /// Layer cache keys in use, bottom first.
    pub layers: Vec<String>,
    /// When it was mounted (RFC 3339).
    pub created: String,
    /// The record's id.
    pub id: String,
}

/// One artifact of a volume.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeArtifact {
    /// The reference as resolved, or the digest given.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
}

impl From<&ferry_mount::MountRecord> for Volume {
    fn from(record: &ferry_mount::MountRecord) -> Volume {
        Volume {
            target: record.target.clone(),
            subpath: record.subpath.clone(),
            access: record.access.as_str(),
            method: record.method.as_str(),
            noexec: record.noexec,
            artifacts: record
                .artifacts
                .iter()
                .map(|a| VolumeArtifact {
                    reference: a.reference.clone(),
                    digest: a.digest.clone(),
                })
                .collect(),
            layers: record.layers.clone(),
            created: record.created.clone(),
            id: record.id.clone(),
        }
    }
}

/// `ferry mount --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MountReport {
    /// The volume.
    pub volume: Volume,
    /// Layer cache entries built now.
    pub cache_built: usize,
    /// Layer cache entries reused.
    pub cache_reused: usize,
    /// Why ferry built a tree instead of mounting, when it fell back.
    pub fallback: Option<String>,
}

/// `ferry umount --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UmountReport {
    /// The volume that is gone.
    pub volume: Volume,
    /// Changed entries copied with `--keep-changes`, else `null`.
    pub kept_changes: Option<usize>,
    /// Device nodes, fifos and sockets in the changes that were not kept.
    pub skipped_special: usize,
}

/// `ferry serve gc --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Nothing was removed, only listed.
    pub dry_run: bool,
    /// Manifests removed (or that would be).
    pub manifests: Vec<String>,
    /// Repository links removed.
    pub links: usize,
    /// Blobs removed.
    pub blobs: Vec<String>,
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// `ferry key generate --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyGenerateReport {
    /// The encrypted private key written (mode 0600).
    pub private_key: PathBuf,
    /// The public key written.
    pub public_key: PathBuf,
    /// The key's algorithm and fingerprint.
    pub key: ferry_sign::KeyDescription,
}

/// `ferry sign-model --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignModelReport {
    /// The model directory.
    pub model: PathBuf,
    /// The signature written.
    pub signature: PathBuf,
    /// Files signed.
    pub files: usize,
    /// `sha256:<hex>` over the files' digests (the statement's subject).
    pub root_digest: String,
    /// The signing key's algorithm and fingerprint.
    pub key: ferry_sign::KeyDescription,
}

/// `ferry verify-model --json` (printed only when verification succeeds).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyModelReport {
    /// The model directory.
    pub model: PathBuf,
    /// The signature verified.
    pub signature: PathBuf,
    /// Always `true` (a failure exits 1 with the reason on stderr).
    pub verified: bool,
    /// The model name the signer recorded.
    pub model_name: String,
    /// Files the signature covers, all present and unchanged.
    pub files: usize,
    /// `sha256:<hex>` root digest.
    pub root_digest: String,
    /// The paths the signer left out.
    pub ignore_paths: Vec<String>,
    /// The key that verified it.
    pub key: ferry_sign::KeyDescription,
}

/// `ferry sign --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignReport {
    /// The artifact signed.
    pub reference: String,
    /// Its manifest digest, what the signatures cover.
    pub digest: String,
    /// `store` or `registry`: where the signatures were written.
    pub location: &'static str,
    /// What was written: `bundle <referrer digest>`, `legacy <tag>`.
    pub signatures: Vec<String>,
    /// The signing key's public half.
    pub key: ferry_sign::KeyDescription,
}

/// `ferry verify --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The artifact verified.
    pub reference: String,
    /// Its manifest digest.
    pub digest: String,
    /// `store` or `registry`: where the signatures were read.
    pub location: &'static str,
    /// True when at least one signature verified.
    pub verified: bool,
    /// Every signature found, with its verdict.
    pub signatures: Vec<SignatureCheck>,
}

/// One signature in `ferry verify --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureCheck {
    /// `bundle` or `legacy` (signatures of the manifest), `model` (an
    /// OpenSSF model signature of the files), or `scan` (a signed scan
    /// report, verified only when it found nothing).
    pub format: &'static str,
    /// The referrer manifest (bundle, model) or the `.sig` layer (legacy).
    pub digest: String,
    /// It verified with one of the keys, for this digest and repository.
    pub verified: bool,
    /// The key that verified it, else `null`.
    pub key: Option<String>,
    /// The identity it names, when it verified and names one.
    pub docker_reference: Option<String>,
    /// How many files a verified model signature covers, else `null`.
    pub files: Option<usize>,
    /// What a model signature was compared with: `the artifact` (its
    /// layers) or the `--files` directory; `null` for the other formats.
    pub checked_against: Option<String>,
    /// Why it did not verify, else `null`.
    pub problem: Option<String>,
}
