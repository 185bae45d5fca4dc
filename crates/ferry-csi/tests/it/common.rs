//! A driver on a temporary socket, its clients, and the fixtures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_csi::proto::controller_client::ControllerClient;
use ferry_csi::proto::identity_client::IdentityClient;
use ferry_csi::proto::node_client::NodeClient;
use ferry_csi::proto::volume_capability::{AccessMode, AccessType, MountVolume, access_mode::Mode};
use ferry_csi::proto::{NodePublishVolumeRequest, NodeUnpublishVolumeRequest, VolumeCapability};
use ferry_csi::{Driver, DriverOptions, RegistrySettings};
use ferry_store::Store;
use ferry_store::pack::{PackOptions, pack};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint, Uri};

/// A driver serving on a socket in `root`, with its store in `root/store`.
pub struct Harness {
    pub driver: Arc<Driver>,
    pub store_root: PathBuf,
    pub socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ferry_csi::DriverError>>,
    channel: Channel,
}

impl Harness {
    /// Starts a driver over the store at `root/store` (kept across
    /// restarts), with `policy` as its signature policy.
    pub async fn start(root: &Path, policy: Option<PathBuf>) -> Harness {
        let store_root = root.join("store");
        let socket = root.join("plugin/csi.sock");
        let driver = Driver::new(DriverOptions {
            store_root: store_root.clone(),
            node_id: "node-a".into(),
            driver_name: "csi.ferry.dev".into(),
            // An empty policy file accepts anything: the machine's own
            // policy (if any) stays out of the tests.
            policy: Some(policy.unwrap_or_else(|| accept_anything(root))),
            registries: RegistrySettings::default(),
            concurrency: 4,
        })
        .expect("the driver starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let endpoint = format!("unix://{}", socket.display());
        let driver_for_server = Arc::clone(&driver);
        let task = tokio::spawn(async move {
            ferry_csi::serve(driver_for_server, &endpoint, async {
                let _ = stopped.await;
            })
            .await
        });
        let channel = connect(&socket).await;
        Harness {
            driver,
            store_root,
            socket,
            stop: Some(stop),
            task,
            channel,
        }
    }

    pub fn node(&self) -> NodeClient<Channel> {
        NodeClient::new(self.channel.clone())
    }

    pub fn identity(&self) -> IdentityClient<Channel> {
        IdentityClient::new(self.channel.clone())
    }

    pub fn controller(&self) -> ControllerClient<Channel> {
        ControllerClient::new(self.channel.clone())
    }

    pub fn store(&self) -> Store {
        Store::open(&self.store_root).expect("the store opens")
    }

    /// Stops the server (as SIGTERM does) and waits for it; the socket is
    /// gone after.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = &mut self.task;
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the driver stops within 10 s")
            .expect("the driver task")
            .expect("the driver stops cleanly");
        assert!(!self.socket.exists(), "the socket is removed");
    }
}

fn accept_anything(root: &Path) -> PathBuf {
    let path = root.join("accept-anything.json");
    std::fs::write(&path, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    path
}

/// A gRPC channel over the unix socket at `path`, once it accepts (a
/// stale socket left at the path refuses until the driver replaces it).
pub async fn connect(path: &Path) -> Channel {
    let mut last_error = None;
    for _ in 0..200 {
        let path = path.to_path_buf();
        let connected = Endpoint::try_from("http://localhost")
            .expect("an endpoint")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await;
        match connected {
            Ok(channel) => return channel,
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("connecting to the driver: {last_error:?}")
}

/// Writes a small model (`config.json`, `sub/README.md`, a weight file
/// whose bytes depend on `seed`) into `dir`.
pub fn write_model(dir: &Path, seed: u8) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("config.json"), format!("{{\"seed\":{seed}}}\n")).unwrap();
    std::fs::write(dir.join("sub/README.md"), format!("# model {seed}\n")).unwrap();
    std::fs::write(dir.join("model.bin"), vec![seed; 256 * 1024]).unwrap();
}

/// Packs a model made by [`write_model`] into `store` as `name`.
pub fn pack_model(store: &Store, scratch: &Path, name: &str, seed: u8) {
    let dir = scratch.join(format!("model-{seed}"));
    write_model(&dir, seed);
    pack(store, &dir, &name.parse().unwrap(), &PackOptions::default()).expect("pack");
}

pub fn capability(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

/// An inline volume as kubelet asks for it.
pub fn publish(
    volume_id: &str,
    target: &Path,
    attributes: &[(&str, &str)],
) -> NodePublishVolumeRequest {
    let mut context: HashMap<String, String> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    context.insert("csi.storage.k8s.io/ephemeral".into(), "true".into());
    context.insert("csi.storage.k8s.io/pod.name".into(), "pod".into());
    NodePublishVolumeRequest {
        volume_id: volume_id.into(),
        target_path: target.display().to_string(),
        volume_capability: Some(capability(Mode::SingleNodeReaderOnly)),
        volume_context: context,
        ..Default::default()
    }
}

pub fn unpublish(volume_id: &str, target: &Path) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: volume_id.into(),
        target_path: target.display().to_string(),
    }
}

/// A kubelet-like pods tree: `<root>/pods/<pod>/volumes/<name>`, the
/// parent created as kubelet does, the target left to the driver.
pub fn pod_target(root: &Path, pod: &str) -> PathBuf {
    let parent = root
        .join("pods")
        .join(pod)
        .join("volumes/kubernetes.io~csi");
    std::fs::create_dir_all(&parent).unwrap();
    parent.join("model")
}

/// Root, which real mounts need; a note (a failure under CI=true) without.
pub fn root() -> bool {
    ferry_testkit::require::require_root("the CSI driver mounts volumes")
}

/// `ferry serve` in process on loopback, over memory storage.
pub async fn registry() -> Registry {
    registry_with(None).await
}

/// A running in-process registry.
pub type Registry = (
    SocketAddr,
    tokio::task::JoinHandle<Result<(), ferry_server::ServerError>>,
);

/// [`registry`] that wants Basic auth for everything (`htpasswd`).
pub async fn registry_with(htpasswd: Option<PathBuf>) -> Registry {
    let storage = Arc::new(ferry_server::storage::memory::MemoryStorage::new());
    let mut config = ferry_server::ServerConfig::new("/nonexistent".into());
    config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.htpasswd = htpasswd;
    let handle = ferry_server::Handle::new();
    let task = tokio::spawn(ferry_server::serve_storage(storage, config, handle.clone()));
    let addr = tokio::time::timeout(Duration::from_secs(10), handle.listening())
        .await
        .expect("ferry serve listens within 10 s")
        .expect("ferry serve starts");
    (addr, task)
}

/// Pushes the store's `local` artifact to `destination`.
pub async fn push(store: &Store, local: &str, destination: &str) {
    push_as(store, local, destination, None).await;
}

/// [`push`] with credentials.
pub async fn push_as(
    store: &Store,
    local: &str,
    destination: &str,
    credentials: Option<ferry_registry::credentials::DockerConfig>,
) {
    let client = ferry_registry::Client::new(ferry_registry::ClientOptions {
        docker_config: credentials,
        ..ferry_registry::ClientOptions::default()
    });
    ferry_registry::transfer::push(
        &client,
        store,
        local,
        &destination.parse().unwrap(),
        4,
        &ferry_registry::progress::NoProgress,
    )
    .await
    .expect("push");
}

/// The regular files under `dir` with their contents.
pub fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut found = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                found.insert(rel, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    found
}
