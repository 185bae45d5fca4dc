//! Command-line arguments, parsed into plain values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_registry::platform::Platform;

use crate::parse;

/// ferry: pack, store, move and mount AI models as OCI artifacts (CNCF ModelPack).
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// Store root (default: $FERRY_HOME, else $XDG_DATA_HOME/ferry, else ~/.local/share/ferry).
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr; no progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a Modelfile describing a model directory.
    Init(InitArgs),
    /// Pack a model directory into a ModelPack artifact in the store (any files with --generic, a Wasm module with --wasm).
    Pack(Box<PackArgs>),
    /// List the artifacts in the store.
    Ls(JsonFlag),
    /// Show an artifact's layers, config or manifest.
    Inspect(InspectArgs),
    /// Give an artifact another name.
    Tag(TagArgs),
    /// Remove a name (a tag untags; a digest removes every name of that manifest).
    Rm(RmArgs),
    /// Delete blobs no name reaches and leftovers of interrupted writes.
    Prune(PruneArgs),
    /// Re-hash every blob and check that every referenced blob is present.
    Fsck(FsckArgs),
    /// Write an artifact's files into a directory.
    Extract(ExtractArgs),
    /// Convert an artifact in the store: a KitOps ModelKit into ModelPack, or any artifact into a plain directory (dir:PATH), saying what happened to each file.
    Convert(ConvertArgs),
    /// Run the embedded OCI registry (distribution spec v1.1).
    Serve(Box<ServeArgs>),
    /// Push an artifact from the store to a registry.
    Push(PushArgs),
    /// Pull an artifact from a registry into the store (or, with --extract, its files into a directory).
    Pull(PullArgs),
    /// Copy an artifact between registries, OCI layouts (oci:PATH[:TAG]) and layout archives (oci-archive:FILE[:TAG]).
    Copy(CopyArgs),
    /// Download some files of an artifact on a registry into a directory (by path glob or category).
    Fetch(FetchArgs),
    /// Store credentials for a registry in Docker's config.json.
    Login(LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(LogoutArgs),
    /// Attach files to an artifact on a registry as a referrer (OCI 1.1 `subject`).
    Attach(Box<AttachArgs>),
    /// List the referrers of an artifact on a registry.
    Discover(DiscoverArgs),
    /// Build image indexes on a registry.
    Index(IndexArgs),
    /// Mount an artifact (or several, stacked) as a volume.
    Mount(Box<MountArgs>),
    /// Unmount a volume made by `ferry mount`, discarding its writes.
    Umount(UmountArgs),
    /// List the volumes ferry mounted (and clean records of vanished ones).
    Mounts(JsonFlag),
    /// Manage signing keys (cosign's format).
    Key(KeyArgs),
    /// Sign a model directory (OpenSSF model signing v1.0: a model.sig bundle).
    SignModel(SignModelArgs),
    /// Sign an artifact (in the store, else on its registry) with a cosign key.
    Sign(Box<SignArgs>),
    /// Verify an artifact's cosign signatures (in the store, else on its registry).
    Verify(Box<VerifyArgs>),
    /// Verify a model directory against its model signature.
    VerifyModel(VerifyModelArgs),
    /// Run the Kubernetes CSI driver (a node and controller plugin on a unix socket).
    Csi(Box<CsiArgs>),
    /// Scan model files (a file, a directory or an artifact) for unsafe content.
    Scan(Box<ScanArgs>),
}

impl Command {
    /// Commands that only touch local files (no sockets).
    pub fn is_local_only(&self) -> bool {
        match self {
            Command::Pack(args) => return !args.push,
            Command::Fsck(args) => return !args.repair,
            _ => {}
        }
        matches!(
            self,
            Command::Init(_)
                | Command::Pack(_)
                | Command::Ls(_)
                | Command::Inspect(_)
                | Command::Tag(_)
                | Command::Rm(_)
                | Command::Prune(_)
                | Command::Fsck(_)
                | Command::Extract(_)
                | Command::Umount(_)
                | Command::Mounts(_)
                | Command::Key(_)
                | Command::SignModel(_)
                | Command::VerifyModel(_)
        )
    }
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// A file, a directory, or an artifact (in the store, else on its registry).
    pub target: String,
    /// Suspicious files (globals neither known safe nor known dangerous) fail too.
    #[arg(long)]
    pub strict: bool,
    /// With --json, list safe files too.
    #[arg(long)]
    pub all: bool,
    /// Sign the report with --key and attach it to the artifact (in the
    /// store, or on its registry) as a referrer: what `ferry verify` and a
    /// policy's `scanned` requirement check.
    #[arg(long, requires = "key")]
    pub attach: bool,
    /// The private key that signs an attached report.
    #[arg(long, value_name = "FILE", requires = "attach")]
    pub key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct CsiArgs {
    /// The gRPC endpoint kubelet and the sidecars talk to.
    #[arg(
        long,
        value_name = "unix:///PATH",
        default_value = "unix:///csi/csi.sock"
    )]
    pub endpoint: String,
    /// This node's name (NodeGetInfo); usually from the downward API.
    #[arg(long, value_name = "NAME", env = "KUBE_NODE_NAME")]
    pub node_id: String,
    /// The driver name registered with Kubernetes (the CSIDriver object's).
    #[arg(long, value_name = "NAME", default_value = "csi.ferry.dev")]
    pub driver_name: String,
    /// A Docker config.json with registry credentials (e.g. a mounted Secret);
    /// a publish request's own secrets take its place.
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// Which signatures content must have before it comes in.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// containers-policy.json to enforce (default: ~/.config/ferry/policy.json,
    /// else /etc/containers/policy.json; none at all accepts anything).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

impl TransportArgs {
    /// How large blobs are split across connections.
    pub fn ranges(&self) -> ferry_registry::RangeOptions {
        ferry_registry::RangeOptions {
            connections_per_blob: usize::from(self.connections_per_blob),
            max_connections: usize::from(self.max_connections),
            split_below: match self.split_below {
                0 => u64::MAX,
                mb => mb.saturating_mul(1_000_000),
            },
            ..ferry_registry::RangeOptions::default()
        }
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Args)]
pub struct TransportArgs {
    /// Use plain HTTP (no TLS).
    #[arg(long)]
    pub plain_http: bool,
    /// Use TLS without verifying certificates.
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA certificate (PEM) in addition to the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Blobs transferred at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Connections one large blob (64 MiB and more) is downloaded over, each
    /// fetching its own byte ranges; 1 turns ranged downloads off.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections_per_blob: u16,
    /// Blob downloads in flight at once across all blobs (whole blobs and ranges).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_connections: u16,
    /// A large blob's first range is a probe: at this many MB/s or more over
    /// one connection (a LAN), the rest comes over that connection; slower,
    /// it is split across connections. 0 always splits.
    #[arg(long, value_name = "MB_PER_S", default_value_t = 100)]
    pub split_below: u64,
    /// Registries config (mirrors, per-registry TLS); default ~/.config/ferry/registries.toml.
    #[arg(long, value_name = "FILE")]
    pub registries_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The artifact in the store.
    pub reference: String,
    /// Where to push it (default: the same reference).
    pub destination: Option<String>,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The artifact to pull.
    pub reference: String,
    /// Platform to choose from an index (os/arch[/variant]); default: this machine.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse::platform)]
    pub platform: Option<Platform>,
    /// Write the artifact's files (with their modes) into DIR instead of the
    /// store; nothing is kept in the store.
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,
    /// With --extract: write into a non-empty directory, replacing files.
    #[arg(long, requires = "extract")]
    pub force: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Locations:\n  REGISTRY/REPO[:TAG|@DIGEST]   a registry (docker:// prefix accepted)\n  oci:PATH[:TAG]                an OCI image layout directory; TAG is the ref.name annotation\n                                (may be a full reference, e.g. oci:DIR:localhost:5000/m:v1)\n  oci-archive:FILE[:TAG]        a tar of an OCI image layout"
)]
pub struct CopyArgs {
    /// Where the artifact is.
    pub source: String,
    /// Where it goes; without a tag, a layout or archive names it with the source's tag.
    pub destination: String,
    /// Also copy its referrers (signatures, SBOMs, attachments), recursively.
    #[arg(short, long)]
    pub recursive: bool,
    /// For a registry source: the containers-policy.json to enforce.
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("filter").required(true).multiple(true).args(["include", "category"])))]
pub struct FetchArgs {
    /// The artifact on a registry.
    pub reference: String,
    /// Fetch layers whose file path matches GLOB (`**` crosses directories;
    /// a glob without `/` also matches a file name at any depth); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Fetch layers of these categories (weight, config, doc, code, dataset);
    /// with --include, layers matching either are fetched.
    #[arg(long, value_name = "CATEGORY", value_delimiter = ',')]
    pub category: Vec<ferry_spec::media::Category>,
    /// Target directory.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Write into a non-empty directory, replacing files.
    #[arg(long)]
    pub force: bool,
    /// Platform to choose from an index (os/arch[/variant]); default: this machine.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse::platform)]
    pub platform: Option<Platform>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host (e.g. registry.example.com, localhost:5000).
    pub registry: String,
    /// User name.
    #[arg(short, long)]
    pub username: String,
    /// Read the password from stdin; without it ferry asks on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host.
    pub registry: String,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub action: Option<ServeAction>,
    /// Address to listen on; loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: std::net::SocketAddr,
    /// Registry storage (default: $FERRY_HOME/registry).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// htpasswd file with bcrypt hashes: require Basic auth.
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// With --htpasswd: let anyone pull; pushes still need credentials.
    #[arg(long)]
    pub anonymous_pull: bool,
    /// Refuse every write.
    #[arg(long)]
    pub read_only: bool,
    /// TLS certificate (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long a client may send nothing before its request is dropped (e.g. 60s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse::duration)]
    pub idle_timeout: Duration,
    /// How long a whole manifest upload may take (e.g. 60s).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse::duration)]
    pub manifest_timeout: Duration,
    /// Connections open at once; more wait briefly, then are closed.
    #[arg(long, value_name = "N", default_value = "1024", value_parser = parse::positive)]
    pub max_connections: usize,
    /// Connections open at once per client address (IPv6: per /64); more are closed.
    #[arg(long, value_name = "N", default_value = "64", value_parser = parse::positive)]
    pub max_connections_per_client: usize,
    /// How long an unfinished upload is kept in total (e.g. 24h, 30m).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse::duration)]
    pub upload_ttl: Duration,
    /// How long an upload that receives nothing is kept (e.g. 15m).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse::duration)]
    pub upload_idle_ttl: Duration,
    /// Upload sessions open at once, in total.
    #[arg(long, value_name = "N", default_value = "1024", value_parser = parse::positive)]
    pub max_uploads: usize,
    /// Upload sessions open at once per client address.
    #[arg(long, value_name = "N", default_value = "64", value_parser = parse::positive)]
    pub max_uploads_per_client: usize,
}

#[derive(Debug, Subcommand)]
pub enum ServeAction {
    /// Remove blobs and manifests nothing references.
    Gc(GcArgs),
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Registry storage (default: $FERRY_HOME/registry).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Only report.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove manifests no tag reaches.
    #[arg(long)]
    pub delete_untagged: bool,
    /// Leave blobs younger than this (pushes in progress), e.g. 1h, 30m.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse::duration)]
    pub grace: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an ECDSA P-256 key pair: the private key encrypted as cosign
    /// writes it (password from COSIGN_PASSWORD, else asked on the terminal).
    Generate(KeyGenerateArgs),
}

#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// Where to write the encrypted private key (mode 0600).
    #[arg(long, value_name = "FILE", default_value = "cosign.key")]
    pub output_key: PathBuf,
    /// Where to write the public key.
    #[arg(long, value_name = "FILE", default_value = "cosign.pub")]
    pub output_pub: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which of cosign's signature formats to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignatureFormat {
    /// A Sigstore bundle v0.3 referrer (cosign v3's default).
    Bundle,
    /// A layer of the `sha256-<hex>.sig` tag (what podman and CRI-O verify).
    Legacy,
    /// Both.
    Both,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The artifact: in the local store when it is there, else on its registry.
    pub reference: String,
    /// The private key: cosign's encrypted format (password from
    /// COSIGN_PASSWORD, else asked on the terminal) or an unencrypted PEM.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Signature format.
    #[arg(long, value_enum, default_value = "bundle")]
    pub format: SignatureFormat,
    /// Annotation the signature carries (repeatable).
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE", value_parser = parse::annotation)]
    pub annotations: Vec<(String, String)>,
    /// Sign on the registry even when the store has the artifact.
    #[arg(long)]
    pub remote: bool,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The artifact: in the local store when it is there, else on its registry.
    pub reference: String,
    /// A public key (PEM) a signature may be made with; repeatable.
    #[arg(long, value_name = "FILE", required = true)]
    pub key: Vec<PathBuf>,
    /// Annotation a signature must carry (repeatable).
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE", value_parser = parse::annotation)]
    pub annotations: Vec<(String, String)>,
    /// Verify on the registry even when the store has the artifact.
    #[arg(long)]
    pub remote: bool,
    /// Check the model signatures attached to the artifact against the
    /// files in DIR (what a user has in front of them: an extracted copy, a
    /// mount); only model signatures count then.
    #[arg(long, value_name = "DIR")]
    pub files: Option<PathBuf>,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SignModelArgs {
    /// The model directory.
    pub dir: PathBuf,
    /// The private key: cosign's encrypted format (password from
    /// COSIGN_PASSWORD, else asked on the terminal) or an unencrypted PEM.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Where to write the signature (default: DIR/model.sig).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// Leave this path (relative to DIR) out of the signature; repeatable.
    #[arg(long, value_name = "PATH")]
    pub ignore: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyModelArgs {
    /// The model directory.
    pub dir: PathBuf,
    /// The signature (default: DIR/model.sig).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// A public key (PEM) the signature may be made with; repeatable.
    #[arg(long, value_name = "FILE", required = true)]
    pub key: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The model directory.
    pub dir: PathBuf,
    /// Where to write the Modelfile (default: DIR/Modelfile).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite an existing Modelfile.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LayerFormat {
    /// The file's bytes (`*.v1.raw`); mountable without unpacking.
    Raw,
    /// A single-file tar archive (`*.v1.tar`).
    Tar,
}

#[derive(Debug, Args)]
// Exactly one source: a directory, a Hugging Face cache model, or a Wasm module.
#[command(group(clap::ArgGroup::new("source").required(true).args(["dir", "from_hf_cache", "wasm"])))]
pub struct PackArgs {
    /// The model directory (a Hugging Face cache snapshot directory too).
    pub dir: Option<PathBuf>,
    /// Pack a model from the Hugging Face hub cache instead of DIR: ORG/NAME
    /// at REV, a commit hash (or a unique prefix of one) or a ref name
    /// (default: main). The cache is $HF_HUB_CACHE, else
    /// $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
    /// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
    /// Name, revision and source URL come from the cache path unless given.
    #[arg(long, value_name = "ORG/NAME[@REV]", value_parser = parse::hf_request)]
    pub from_hf_cache: Option<ferry_store::pack::hf_cache::Request>,
    /// Follow symbolic links that leave DIR when they name a regular file,
    /// packing its content under the link's name (links inside DIR behave
    /// as without it). Without it such a link is an error, except in a
    /// Hugging Face cache snapshot, whose links may lead into that
    /// repository's blobs/. Risk: a link in an untrusted tree can then pack
    /// any file you can read (keys, tokens) into the artifact.
    #[arg(long)]
    pub follow_symlinks: bool,
    /// The reference to store the artifact under (e.g. `registry.example.com/org/model:v1`).
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub reference: String,
    /// A Modelfile (default: DIR/Modelfile when present).
    #[arg(short = 'f', long = "file", value_name = "MODELFILE")]
    pub modelfile: Option<PathBuf>,
    /// Also pack files matching GLOB that are skipped by default (`**` supported).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files matching GLOB (`**` supported).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Layer encoding for single files.
    #[arg(long, value_enum, default_value = "raw")]
    pub layer_format: LayerFormat,
    /// Bundle files smaller than SIZE (e.g. 64KiB) into one tar layer per category.
    #[arg(long, value_name = "SIZE", value_parser = parse::size)]
    pub bundle_small: Option<u64>,
    /// Keep uid, gid and mtime from disk (not reproducible across machines).
    #[arg(long)]
    pub preserve_metadata: bool,
    /// Creation time (RFC 3339); default: $SOURCE_DATE_EPOCH if set, else none.
    #[arg(long, value_name = "RFC3339", value_parser = parse::rfc3339)]
    pub created: Option<String>,
    /// Hardlink weights into the store instead of copying (same filesystem;
    /// the source must not be modified afterwards; `ferry fsck` detects it;
    /// group and other lose write permission on linked files).
    #[arg(long)]
    pub link: bool,
    /// Sign the packed files with this private key (an OpenSSF model
    /// signature, hashed while packing) and attach it to the artifact as a
    /// referrer; `ferry verify REF --files DIR` checks it. Not with --push:
    /// pack, then push (the signature travels with the artifact).
    #[arg(long, value_name = "KEY", conflicts_with = "push")]
    pub sign_key: Option<PathBuf>,
    /// Pack even when `ferry scan` finds a dangerous file (a pickle that
    /// runs code on load, ...); suspicious and malformed files only warn.
    #[arg(long)]
    pub allow_unsafe: bool,
    /// Pack any files as a generic OCI artifact (one raw layer per file),
    /// not a ModelPack model.
    #[arg(long, conflicts_with_all = [
        "modelfile", "bundle_small", "layer_format", "preserve_metadata", "compress", "level",
        "compress_weights", "min_saving", "name", "family", "arch", "format", "param_size",
        "precision", "quantization", "model_version", "license", "author",
    ])]
    pub generic: bool,
    /// Pack one WebAssembly module or component as a Wasm OCI artifact (the
    /// CNCF TAG Runtime layout that wkg and runwasi's shims read): one layer
    /// holding FILE's bytes (application/wasm, or see --wasm-layer-type;
    /// titled with the file name) and an application/vnd.wasm.config.v0+json config
    /// whose platform is read from the binary: a core module is wasip1/wasm,
    /// a component wasip2/wasm with its imported and exported interfaces.
    /// `ferry index create` lists it beside native images. Takes no DIR;
    /// --author and --created fill the config (created defaults to
    /// $SOURCE_DATE_EPOCH, else the Unix epoch, so packs are reproducible).
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "dir", "from_hf_cache", "follow_symlinks", "generic", "include", "exclude", "sign_key", "allow_unsafe", "push",
        "modelfile", "bundle_small", "layer_format", "preserve_metadata", "compress", "level",
        "compress_weights", "min_saving", "name", "family", "arch", "format", "param_size",
        "precision", "quantization", "model_version", "license",
    ])]
    pub wasm: Option<PathBuf>,
    /// With --wasm: the layer's media type: `wasm` (application/wasm, the
    /// layout's; wkg, oci-wasm, runwasi) or `wasm-to-oci`
    /// (application/vnd.wasm.content.layer.v1+wasm; wasm-to-oci, Spin)
    /// [default: wasm].
    #[arg(long, value_enum, value_name = "TYPE", conflicts_with_all = ["dir", "from_hf_cache"])]
    pub wasm_layer_type: Option<WasmLayerTypeArg>,
    /// With --generic: the manifest's artifactType (required without --config).
    #[arg(long, value_name = "TYPE", requires = "generic")]
    pub artifact_type: Option<String>,
    /// With --generic: a config blob and its media type.
    #[arg(long, value_name = "FILE:MEDIATYPE", requires = "generic", value_parser = parse::config_file)]
    pub config: Option<ferry_store::pack::generic::ConfigFile>,
    /// With --generic: the layers' media type [default: application/octet-stream].
    #[arg(long, value_name = "TYPE", requires = "generic")]
    pub media_type: Option<String>,
    /// Layer compression. `none` (the default) writes every file as a raw
    /// layer, which every consumer reads (CRI-O image volumes, ORAS, modctl);
    /// `auto` compresses text-like files (configs, tokenizers, code, docs,
    /// datasets) into tar+zstd layers and keeps weights raw; `zstd`/`gzip`
    /// compress every layer. Compressed layers need ferry (or a runtime
    /// that unpacks tar layers) to read.
    #[arg(long, value_enum, default_value = "none")]
    pub compress: CompressArg,
    /// Compression level (zstd 1-22, default 3; gzip 0-9, default 6).
    #[arg(long, value_name = "N")]
    pub level: Option<i32>,
    /// Compress weights too, each only when a sample of it (first 4 MiB and
    /// 4 MiB from the middle) shrinks by at least --min-saving.
    #[arg(long)]
    pub compress_weights: bool,
    /// Minimum saving, in percent, for a sampled weight file to be compressed.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = ferry_store::compress::DEFAULT_MIN_SAVING_PERCENT,
        value_parser = clap::value_parser!(u32).range(0..=100)
    )]
    pub min_saving: u32,
    /// Push to the registry REF names while packing: layers are hashed as
    /// they upload, every file is read once, nothing is stored locally.
    #[arg(long, conflicts_with_all = ["generic", "link"])]
    pub push: bool,
    #[command(flatten)]
    pub transport: TransportArgs,
    #[command(flatten)]
    pub metadata: MetadataArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressArg {
    /// No compression.
    None,
    /// tar+gzip layers.
    Gzip,
    /// tar+zstd layers.
    Zstd,
    /// zstd for text-like files, weights raw.
    Auto,
}

#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// Model name.
    #[arg(long)]
    pub name: Option<String>,
    /// Model family (e.g. llama).
    #[arg(long)]
    pub family: Option<String>,
    /// Architecture (e.g. transformer).
    #[arg(long)]
    pub arch: Option<String>,
    /// Weight format (e.g. safetensors).
    #[arg(long)]
    pub format: Option<String>,
    /// Parameter count (e.g. 7B).
    #[arg(long)]
    pub param_size: Option<String>,
    /// Precision (e.g. bfloat16).
    #[arg(long)]
    pub precision: Option<String>,
    /// Quantization (e.g. gptq).
    #[arg(long)]
    pub quantization: Option<String>,
    /// Model version.
    #[arg(long = "version", id = "model_version", value_name = "VERSION")]
    pub model_version: Option<String>,
    /// SPDX license (repeatable).
    #[arg(long)]
    pub license: Vec<String>,
    /// Author (repeatable).
    #[arg(long)]
    pub author: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Reference or digest.
    pub reference: String,
    /// Print the raw config blob.
    #[arg(long, conflicts_with = "manifest")]
    pub config: bool,
    /// Print the raw manifest blob.
    #[arg(long)]
    pub manifest: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Existing reference or digest.
    pub source: String,
    /// New reference.
    pub target: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// References or digests.
    #[arg(required = true)]
    pub references: Vec<String>,
    /// Remove even what a mounted volume uses (the volume keeps working).
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove blobs that only mounted volumes still use.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Delete corrupt blobs and fetch what damaged artifacts lack again from
    /// the registry their reference names.
    #[arg(long)]
    pub repair: bool,
    /// How to reach registries (with --repair).
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Reference or digest.
    pub reference: String,
    /// Target directory.
    pub dir: PathBuf,
    /// Write into a non-empty directory, replacing files.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The artifact to convert: a reference or digest in the store (`ferry pull` it first).
    pub source: String,
    /// A reference to store the ModelPack artifact under, or `dir:PATH` for a plain directory (what `extract` writes: a layout Hugging Face loaders read).
    pub destination: String,
    /// With dir:PATH: write into a non-empty directory, replacing files.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The artifact to attach to (its manifest becomes the `subject`).
    pub reference: String,
    /// Files to attach, one layer each, titled with the file name.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The attached artifact's type (e.g. application/spdx+json).
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: String,
    /// Manifest annotation (repeatable).
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE", value_parser = parse::annotation)]
    pub annotations: Vec<(String, String)>,
    /// Media type of the layers.
    #[arg(long, value_name = "TYPE", default_value = "application/octet-stream")]
    pub media_type: String,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The artifact whose referrers to list.
    pub reference: String,
    /// Only referrers of this artifactType (with --tree: the first level).
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// Also list referrers of referrers, as a tree.
    #[arg(long)]
    pub tree: bool,
    /// With --tree: levels to descend.
    #[arg(long, default_value_t = 8, requires = "tree", value_parser = clap::value_parser!(u8).range(1..=64))]
    pub depth: u8,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    pub action: IndexAction,
}

#[derive(Debug, Subcommand)]
pub enum IndexAction {
    /// Push a multi-platform image index listing manifests of one repository.
    Create(IndexCreateArgs),
}

#[derive(Debug, Args)]
pub struct IndexCreateArgs {
    /// Where to push the index (a tag).
    pub reference: String,
    /// A manifest to list: a reference in the same repository, or a digest (repeatable).
    #[arg(long = "manifest", short = 'm', required = true, value_name = "REF")]
    pub manifests: Vec<String>,
    /// Platform (os/arch[/variant]) of each --manifest, in the same order;
    /// default: from each manifest's image config (or Wasm config: wasip1/wasm, wasip2/wasm).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]", value_parser = parse::platform)]
    pub platforms: Vec<Platform>,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// When `ferry mount` pulls (Kubernetes' `pullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    /// Pull only what the store lacks (`IfNotPresent`).
    Missing,
    /// Always ask the registry (`Always`).
    Always,
    /// Never pull; fail if the store lacks it (`Never`).
    Never,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// The artifact: a reference or digest.
    pub reference: String,
    /// The mount point (created when missing).
    pub target: PathBuf,
    /// Mount only this directory or file of the volume.
    #[arg(long, value_name = "PATH")]
    pub subpath: Option<String>,
    /// Writable: changes stay private to this mount and are discarded at umount.
    #[arg(long)]
    pub rw: bool,
    /// Forbid executing anything from the volume.
    #[arg(long)]
    pub noexec: bool,
    /// Another artifact on top of the first (repeatable; a later one's file wins).
    #[arg(long = "stack", value_name = "REF")]
    pub stack: Vec<String>,
    /// When to pull from the registry.
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: PullPolicy,
    /// Platform to pull from an index (os/arch[/variant]); default: this machine.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse::platform)]
    pub platform: Option<Platform>,
    /// Build the volume as a tree of hardlinks (or copies with --rw) instead of mounting.
    #[arg(long)]
    pub no_mount: bool,
    /// Mount only the layers whose path matches GLOB (repeatable; `**`
    /// crosses directories, a glob without `/` matches a file name).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out the layers whose path matches GLOB (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point.
    pub target: PathBuf,
    /// Copy what was written to a read-write volume into DIR (a new directory) first.
    #[arg(long, value_name = "DIR")]
    pub keep_changes: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--wasm-layer-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WasmLayerTypeArg {
    /// application/wasm
    Wasm,
    /// application/vnd.wasm.content.layer.v1+wasm
    WasmToOci,
}
