//! cosign signatures found, attached, appended and carried, against
//! `ferry serve` in process (with the referrers API), Debian's
//! docker-registry 2.8 (without it: the fallback tag) and the hostile
//! registry (oversized and malformed signature documents).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use ferry_registry::copy::{CopyOptions, Location, copy};
use ferry_registry::progress::NoProgress;
use ferry_registry::referrers::fallback_tag;
use ferry_registry::signatures::{
    MAX_BUNDLE_BYTES, MAX_PAYLOAD_BYTES, MAX_SIGNATURES, SignatureCandidate,
    append_legacy_signature, attach_bundle, find_signatures, local_signatures, pull_signatures,
    store_bundle_referrer, store_legacy_signature,
};
use ferry_registry::upload::BlobSource;
use ferry_registry::{Client, ClientError, Endpoint};
use ferry_spec::Reference;
use ferry_spec::media::{MEDIA_TYPE_EMPTY, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST};
use ferry_spec::oci::{Descriptor, Digest, MediaType};
use ferry_spec::signature::{
    BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, COSIGN_SIGNATURE, SIMPLESIGNING_MEDIA_TYPE,
    signature_tag,
};
use ferry_store::Store;
use tempfile::TempDir;

use crate::common::{client, digest, store};
use crate::hostile::{Hostile, HugeBody};

const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";
const MIB: u64 = 1024 * 1024;
const BUNDLE: &[u8] =
    br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{}}"#;
const SIG_ONE: &str = "c2lnbmF0dXJlLW9uZQ==";
const SIG_TWO: &str = "c2lnbmF0dXJlLXR3bw==";

// ---------------------------------------------------------------------------
// Registries
// ---------------------------------------------------------------------------

/// A running registry on loopback, stopped when dropped.
enum Registry {
    /// `ferry serve` in process, over memory storage.
    Ferry {
        addr: SocketAddr,
        task: tokio::task::JoinHandle<Result<(), ferry_server::ServerError>>,
    },
    /// docker-registry 2.8 as a child process.
    Distribution {
        addr: String,
        child: Child,
        _dir: TempDir,
    },
}

impl Drop for Registry {
    fn drop(&mut self) {
        match self {
            Registry::Ferry { task, .. } => task.abort(),
            Registry::Distribution { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Registry {
    async fn ferry() -> Registry {
        let storage = Arc::new(ferry_server::storage::memory::MemoryStorage::new());
        let mut config = ferry_server::ServerConfig::new("/nonexistent".into());
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let handle = ferry_server::Handle::new();
        let task = tokio::spawn(ferry_server::serve_storage(storage, config, handle.clone()));
        let addr = tokio::time::timeout(Duration::from_secs(10), handle.listening())
            .await
            .expect("ferry serve listens within 10 s")
            .expect("ferry serve starts");
        Registry::Ferry { addr, task }
    }

    /// docker-registry on a free port; `None` after a note when it is not
    /// installed (a failure under `CI=true`).
    fn distribution() -> Option<Registry> {
        if !ferry_testkit::require::require(
            "docker-registry (Debian's distribution 2.8)",
            Path::new(DOCKER_REGISTRY).is_file(),
        ) {
            return None;
        }
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                    dir.path().join("storage").display()
                ),
            )
            .expect("write docker-registry config");
            let child = Command::new(DOCKER_REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let mut registry = Registry::Distribution {
                addr: addr.clone(),
                child,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(&addr).is_ok() {
                    return Some(registry);
                }
                if let Registry::Distribution { child, .. } = &mut registry
                    && let Ok(Some(_)) = child.try_wait()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("docker-registry did not start on any of 5 ports");
    }

    fn host(&self) -> String {
        match self {
            Registry::Ferry { addr, .. } => addr.to_string(),
            Registry::Distribution { addr, .. } => addr.clone(),
        }
    }

    fn endpoint(&self, repository: &str) -> Endpoint {
        Endpoint {
            registry: self.host(),
            repository: repository.into(),
        }
    }

    fn reference(&self, name: &str) -> Reference {
        format!("{}/{name}", self.host())
            .parse()
            .expect("a valid reference")
    }
}

/// `ferry serve`, then docker-registry when it is there.
async fn every_registry() -> Vec<Registry> {
    let mut registries = vec![Registry::ferry().await];
    registries.extend(Registry::distribution());
    registries
}

// ---------------------------------------------------------------------------
// Content
// ---------------------------------------------------------------------------

/// Pushes a small artifact (empty config, one layer) as `tag`; returns its
/// manifest digest.
async fn seed_subject(client: &Client, endpoint: &Endpoint, tag: &str) -> Digest {
    let layer_bytes = Bytes::from(format!("weights of {tag}"));
    let config = Descriptor::new(
        MediaType::EmptyJSON,
        2,
        ferry_spec::digest::sha256_digest(b"{}"),
    );
    let layer = Descriptor::new(
        MediaType::from("application/vnd.cncf.model.weight.v1.raw"),
        layer_bytes.len() as u64,
        ferry_spec::digest::sha256_digest(&layer_bytes),
    );
    for (descriptor, bytes) in [(&config, Bytes::from_static(b"{}")), (&layer, layer_bytes)] {
        client
            .push_blob(
                endpoint,
                descriptor,
                BlobSource::Bytes(bytes),
                None,
                &NoProgress,
            )
            .await
            .expect("push a blob");
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "artifactType": "application/vnd.example.model",
        "config": config,
        "layers": [layer],
    });
    client
        .put_manifest(
            endpoint,
            tag,
            MEDIA_TYPE_IMAGE_MANIFEST,
            Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        )
        .await
        .expect("push the subject")
        .digest
}

/// The cosign payload naming `manifest` in `repository`.
fn payload(repository: &str, manifest: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{repository}"}},"image":{{"docker-manifest-digest":"{manifest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

fn bundles(found: &[SignatureCandidate]) -> Vec<&[u8]> {
    found
        .iter()
        .filter_map(|c| match c {
            SignatureCandidate::Bundle { bytes, .. } => Some(bytes.as_slice()),
            SignatureCandidate::Legacy { .. } => None,
        })
        .collect()
}

fn legacy(found: &[SignatureCandidate]) -> Vec<(&[u8], &str)> {
    found
        .iter()
        .filter_map(|c| match c {
            SignatureCandidate::Legacy {
                payload,
                signature_b64,
                ..
            } => Some((payload.as_slice(), signature_b64.as_str())),
            SignatureCandidate::Bundle { .. } => None,
        })
        .collect()
}

/// The manifest under `manifest`'s `.sig` tag.
async fn sig_manifest(client: &Client, endpoint: &Endpoint, manifest: &Digest) -> (Digest, Value) {
    let fetched = client
        .manifest(endpoint, &signature_tag(manifest).unwrap())
        .await
        .expect("the .sig tag exists");
    (
        fetched.digest,
        serde_json::from_slice(&fetched.bytes).unwrap(),
    )
}

// ---------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_attached_is_found_with_the_referrers_api_and_the_fallback_tag() {
    let client = client();
    for registry in every_registry().await {
        let endpoint = registry.endpoint("models/m");
        let subject = seed_subject(&client, &endpoint, "v1").await;
        let referrer = attach_bundle(
            &client,
            &registry.reference("models/m:v1"),
            BUNDLE,
            COSIGN_SIGN_PREDICATE,
        )
        .await
        .expect("attach the bundle");
        let again = attach_bundle(
            &client,
            &registry.reference("models/m:v1"),
            BUNDLE,
            COSIGN_SIGN_PREDICATE,
        )
        .await
        .unwrap();
        assert_eq!(referrer, again, "the same bundle is the same referrer");

        let found = find_signatures(&client, &endpoint, &subject).await.unwrap();
        assert_eq!(
            found,
            vec![SignatureCandidate::Bundle {
                referrer: referrer.clone(),
                bytes: BUNDLE.to_vec(),
                predicate_type: Some(COSIGN_SIGN_PREDICATE.to_string()),
            }],
            "one bundle, exactly as attached"
        );
        let manifest: Value = serde_json::from_slice(
            &client
                .manifest(&endpoint, referrer.as_ref())
                .await
                .unwrap()
                .bytes,
        )
        .unwrap();
        assert_eq!(manifest["artifactType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_EMPTY);
        assert_eq!(manifest["subject"]["digest"], subject.to_string());
        assert_eq!(
            manifest["annotations"]["dev.sigstore.bundle.content"],
            "dsse-envelope"
        );
        assert_eq!(
            manifest["annotations"]["dev.sigstore.bundle.predicateType"],
            "https://sigstore.dev/cosign/sign/v1"
        );

        let fallback = client.manifest(&endpoint, &fallback_tag(&subject)).await;
        match registry {
            Registry::Ferry { .. } => assert!(
                matches!(fallback, Err(ClientError::NotFound(_))),
                "the referrers API needs no fallback tag"
            ),
            Registry::Distribution { .. } => {
                let index: Value = serde_json::from_slice(&fallback.unwrap().bytes).unwrap();
                let listed = index["manifests"].as_array().unwrap();
                assert_eq!(listed.len(), 1, "listed once in the fallback tag");
                assert_eq!(listed[0]["digest"], referrer.to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Legacy .sig tags
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_appends_keep_earlier_signatures_in_order_and_repeat_harmlessly() {
    let client = client();
    for registry in every_registry().await {
        let endpoint = registry.endpoint("models/m");
        let subject = seed_subject(&client, &endpoint, "v1").await;
        let signed = payload(&format!("{}/models/m", registry.host()), &subject);
        append_legacy_signature(&client, &endpoint, &subject, &signed, SIG_ONE)
            .await
            .unwrap();
        append_legacy_signature(&client, &endpoint, &subject, &signed, SIG_TWO)
            .await
            .unwrap();
        let (before, document) = sig_manifest(&client, &endpoint, &subject).await;
        let layers = document["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "two appends, two layers");
        assert_eq!(layers[0]["annotations"][COSIGN_SIGNATURE], SIG_ONE);
        assert_eq!(layers[1]["annotations"][COSIGN_SIGNATURE], SIG_TWO);
        assert_eq!(layers[0]["mediaType"], SIMPLESIGNING_MEDIA_TYPE);

        append_legacy_signature(&client, &endpoint, &subject, &signed, SIG_ONE)
            .await
            .unwrap();
        let (after, _) = sig_manifest(&client, &endpoint, &subject).await;
        assert_eq!(before, after, "an identical append changes nothing");

        let found = find_signatures(&client, &endpoint, &subject).await.unwrap();
        assert_eq!(
            legacy(&found),
            vec![(signed.as_slice(), SIG_ONE), (signed.as_slice(), SIG_TWO)]
        );
        let SignatureCandidate::Legacy {
            tag_repository,
            layer,
            ..
        } = &found[0]
        else {
            panic!("a legacy candidate");
        };
        assert_eq!(tag_repository, &format!("{}/models/m", registry.host()));
        assert_eq!(layer, &ferry_spec::digest::sha256_digest(&signed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_manifest_has_no_candidates() {
    let client = client();
    let registry = Registry::ferry().await;
    let endpoint = registry.endpoint("m");
    let subject = seed_subject(&client, &endpoint, "v1").await;
    let found = find_signatures(&client, &endpoint, &subject).await;
    assert_eq!(
        found.unwrap(),
        Vec::new(),
        "a missing .sig tag is not an error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_of_another_digest_under_this_tag_is_still_a_candidate() {
    let client = client();
    let registry = Registry::ferry().await;
    let endpoint = registry.endpoint("m");
    let subject = seed_subject(&client, &endpoint, "v1").await;
    let other = seed_subject(&client, &endpoint, "v2").await;
    let of_other = payload("elsewhere/m", &other);
    append_legacy_signature(&client, &endpoint, &subject, &of_other, SIG_ONE)
        .await
        .unwrap();
    let found = find_signatures(&client, &endpoint, &subject).await.unwrap();
    assert_eq!(legacy(&found), vec![(of_other.as_slice(), SIG_ONE)]);
}

/// A `.sig` manifest on the hostile registry with `layers`.
fn put_sig(registry: &Hostile, subject: &Digest, layers: Vec<Value>) {
    let config = registry.put_blob("m", Bytes::from_static(b"{}"));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": layers,
    });
    registry.put_manifest(
        "m",
        &signature_tag(subject).unwrap(),
        Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        MEDIA_TYPE_IMAGE_MANIFEST,
    );
}

fn simplesigning(digest: &str, size: u64, signature: &str) -> Value {
    json!({
        "mediaType": SIMPLESIGNING_MEDIA_TYPE,
        "digest": digest,
        "size": size,
        "annotations": {COSIGN_SIGNATURE: signature},
    })
}

fn hostile_endpoint(registry: &Hostile) -> Endpoint {
    Endpoint {
        registry: registry.registry(),
        repository: "m".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_that_are_not_simple_signatures_are_ignored() {
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    let signed = payload("x/m", &subject);
    let payload_digest = registry.put_blob("m", Bytes::from(signed.clone()));
    let other = registry.put_blob("m", Bytes::from_static(b"an attestation"));
    put_sig(
        &registry,
        &subject,
        vec![
            json!({"mediaType": "application/vnd.in-toto+json", "digest": other, "size": 14,
                   "annotations": {COSIGN_SIGNATURE: SIG_TWO}}),
            simplesigning(&payload_digest, signed.len() as u64, SIG_ONE),
            // A simple-signing layer without a signature is no candidate.
            json!({"mediaType": SIMPLESIGNING_MEDIA_TYPE, "digest": payload_digest, "size": signed.len()}),
        ],
    );
    let found = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .unwrap();
    assert_eq!(legacy(&found), vec![(signed.as_slice(), SIG_ONE)]);
    assert!(
        registry.requests("GET", &other).is_empty(),
        "the other layer is never read"
    );
}

// ---------------------------------------------------------------------------
// Hostile signature documents
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_payload_is_refused_unread() {
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    let big = vec![b'x'; MAX_PAYLOAD_BYTES as usize + 1];
    let big_digest = registry.put_blob("m", Bytes::from(big.clone()));
    put_sig(
        &registry,
        &subject,
        vec![simplesigning(&big_digest, big.len() as u64, SIG_ONE)],
    );
    let error = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .expect_err("a payload over the limit is refused");
    assert!(
        error.to_string().contains(&MAX_PAYLOAD_BYTES.to_string()),
        "the error names the limit: {error}"
    );
    assert!(
        registry.requests("GET", &big_digest).is_empty(),
        "never downloaded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_larger_than_its_descriptor_is_refused() {
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    let signed = payload("x/m", &subject);
    let payload_digest = registry.put_blob("m", Bytes::from(signed.clone()));
    registry.with(|s| {
        s.faults
            .extra_bytes
            .insert(payload_digest.clone(), 10 * MIB as usize)
    });
    put_sig(
        &registry,
        &subject,
        vec![simplesigning(&payload_digest, signed.len() as u64, SIG_ONE)],
    );
    let error = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .expect_err("more bytes than declared are refused");
    assert!(matches!(error, ClientError::Integrity { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_signatures_are_refused_before_any_is_read() {
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    let layers = (0..=MAX_SIGNATURES)
        .map(|i| {
            let content = format!("payload {i}");
            let d = registry.put_blob("m", Bytes::from(content.clone()));
            simplesigning(&d, content.len() as u64, SIG_ONE)
        })
        .collect();
    put_sig(&registry, &subject, layers);
    registry.clear_log();
    let error = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .expect_err("more than the limit is refused");
    assert!(
        error
            .to_string()
            .contains(&format!("more than {MAX_SIGNATURES}")),
        "{error}"
    );
    assert!(
        registry.requests("GET", "/blobs/").is_empty(),
        "no payload read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_signature_manifest_is_a_clear_error_not_a_hang() {
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    let huge = 512 * MIB;
    registry.with(|s| {
        s.faults.huge_body = Some(HugeBody {
            path_contains: ".sig".into(),
            status: 200,
            content_type: MEDIA_TYPE_IMAGE_MANIFEST.into(),
            prefix: Bytes::from_static(br#"{"schemaVersion":2,"layers":["#),
            size: huge,
            with_length: false,
        })
    });
    let error = tokio::time::timeout(
        Duration::from_secs(60),
        find_signatures(&client(), &hostile_endpoint(&registry), &subject),
    )
    .await
    .expect("no hang")
    .expect_err("a manifest over 4 MiB is refused");
    assert!(
        matches!(error, ClientError::Integrity { .. }) && error.to_string().contains(".sig"),
        "the error names the tag: {error}"
    );
    let sent = registry.huge_sent();
    assert!(sent < 64 * MIB, "{sent} of {huge} bytes were sent");
}

/// A bundle referrer of `subject` listed in the hostile registry's
/// fallback tag (it has no referrers API), its layer declared `size`.
fn put_bundle_referrer(registry: &Hostile, subject: &Digest, layer: &str, size: u64) {
    let config = registry.put_blob("m", Bytes::from_static(b"{}"));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": MEDIA_TYPE_EMPTY, "digest": config, "size": 2},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": layer, "size": size}],
        "subject": {"mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "digest": subject.to_string(), "size": 1},
    });
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let size = bytes.len();
    let referrer = registry.put_manifest("m", "referrer", bytes, MEDIA_TYPE_IMAGE_MANIFEST);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_IMAGE_INDEX,
        "manifests": [{"mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "digest": referrer, "size": size,
                       "artifactType": BUNDLE_MEDIA_TYPE}],
    });
    registry.put_manifest(
        "m",
        &fallback_tag(subject),
        Bytes::from(serde_json::to_vec(&index).unwrap()),
        MEDIA_TYPE_IMAGE_INDEX,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_bundle_layer_is_refused_unread() {
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    let big = vec![b' '; MAX_BUNDLE_BYTES as usize + 1];
    let big_digest = registry.put_blob("m", Bytes::from(big.clone()));
    put_bundle_referrer(&registry, &subject, &big_digest, big.len() as u64);
    let error = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .expect_err("a bundle over the limit is refused");
    assert!(
        error.to_string().contains(&MAX_BUNDLE_BYTES.to_string()),
        "the error names the limit: {error}"
    );
    assert!(
        registry.requests("GET", &big_digest).is_empty(),
        "never downloaded"
    );

    // Found through the fallback tag when it is within the limit.
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    let bundle = registry.put_blob("m", Bytes::from_static(BUNDLE));
    put_bundle_referrer(&registry, &subject, &bundle, BUNDLE.len() as u64);
    let found = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .unwrap();
    assert_eq!(bundles(&found), vec![BUNDLE]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_signatures_are_refused_before_anything_is_written() {
    let client = client();
    let registry = Registry::ferry().await;
    let endpoint = registry.endpoint("m");
    let subject = seed_subject(&client, &endpoint, "v1").await;
    let big = vec![b'x'; MAX_BUNDLE_BYTES as usize + 1];
    let error = attach_bundle(
        &client,
        &registry.reference("m:v1"),
        &big,
        COSIGN_SIGN_PREDICATE,
    )
    .await
    .expect_err("a bundle over the limit is refused");
    assert!(
        matches!(error, ClientError::InvalidInput { .. }),
        "{error:?}"
    );
    let error = append_legacy_signature(&client, &endpoint, &subject, &big, SIG_ONE)
        .await
        .expect_err("a payload over the limit is refused");
    assert!(
        matches!(error, ClientError::InvalidInput { .. }),
        "{error:?}"
    );
    let error = append_legacy_signature(&client, &endpoint, &subject, b"p", "not base64!")
        .await
        .expect_err("a signature that is not base64 is refused");
    assert!(error.to_string().contains("base64"), "{error}");
    assert_eq!(
        find_signatures(&client, &endpoint, &subject).await.unwrap(),
        Vec::new(),
        "nothing was written"
    );
}

// ---------------------------------------------------------------------------
// The store, push, pull, copy
// ---------------------------------------------------------------------------

/// Packs a one-file artifact into `store` as `name`; returns its manifest digest.
fn local_artifact(store: &Store, dir: &Path, name: &Reference) -> Digest {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("weights.bin"), b"local weights").unwrap();
    ferry_store::pack::pack(
        store,
        &model,
        name,
        &ferry_store::pack::PackOptions::default(),
    )
    .expect("pack")
    .manifest_digest
}

/// Signs `manifest` in the store both ways; returns the payload.
fn sign_locally(store: &Store, name: &Reference, manifest: &Digest) -> Vec<u8> {
    store_bundle_referrer(store, manifest, BUNDLE, COSIGN_SIGN_PREDICATE).expect("store a bundle");
    let signed = payload(
        &format!("{}/{}", name.registry(), name.repository()),
        manifest,
    );
    store_legacy_signature(store, name, manifest, &signed, SIG_ONE).expect("store a signature");
    store_legacy_signature(store, name, manifest, &signed, SIG_ONE).expect("idempotent");
    signed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_made_before_the_first_push_arrive_with_it() {
    let client = client();
    for registry in every_registry().await {
        let (dir, store) = store();
        let name = registry.reference("models/m:v1");
        let manifest = local_artifact(&store, dir.path(), &name);
        let signed = sign_locally(&store, &name, &manifest);
        let local = local_signatures(&store, &name, &manifest).unwrap();
        assert_eq!(bundles(&local), vec![BUNDLE]);
        assert_eq!(legacy(&local), vec![(signed.as_slice(), SIG_ONE)]);

        let pushed =
            ferry_registry::transfer::push(&client, &store, &name.whole(), &name, 2, &NoProgress)
                .await
                .expect("push");
        assert_eq!(pushed.signatures.bundles, 1);
        assert_eq!(pushed.signatures.legacy, 1);
        let endpoint = registry.endpoint("models/m");
        let remote = find_signatures(&client, &endpoint, &manifest)
            .await
            .unwrap();
        assert_eq!(bundles(&remote), vec![BUNDLE], "the referrer arrived");
        assert_eq!(
            legacy(&remote),
            vec![(signed.as_slice(), SIG_ONE)],
            "the .sig tag arrived"
        );

        // A signature made after the push goes with the next push, and the
        // registry's own signatures stay.
        append_legacy_signature(&client, &endpoint, &manifest, &signed, SIG_TWO)
            .await
            .unwrap();
        let later = b"a later payload".to_vec();
        store_legacy_signature(&store, &name, &manifest, &later, SIG_TWO).unwrap();
        ferry_registry::transfer::push(&client, &store, &name.whole(), &name, 2, &NoProgress)
            .await
            .expect("push again");
        let remote = find_signatures(&client, &endpoint, &manifest)
            .await
            .unwrap();
        assert_eq!(
            legacy(&remote),
            vec![
                (signed.as_slice(), SIG_ONE),
                (signed.as_slice(), SIG_TWO),
                (later.as_slice(), SIG_TWO)
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_signatures_land_in_the_store() {
    let client = client();
    for registry in every_registry().await {
        let endpoint = registry.endpoint("models/m");
        let subject = seed_subject(&client, &endpoint, "v1").await;
        let name = registry.reference("models/m:v1");
        attach_bundle(&client, &name, BUNDLE, COSIGN_SIGN_PREDICATE)
            .await
            .unwrap();
        let signed = payload("x/models/m", &subject);
        append_legacy_signature(&client, &endpoint, &subject, &signed, SIG_ONE)
            .await
            .unwrap();

        let (_dir, store) = store();
        crate::common::pull(&client, &store, &name).await.unwrap();
        let moved = pull_signatures(&client, &store, &name, &subject)
            .await
            .unwrap();
        assert_eq!((moved.bundles, moved.legacy), (1, 1));
        let local = local_signatures(&store, &name, &subject).unwrap();
        assert_eq!(bundles(&local), vec![BUNDLE]);
        assert_eq!(legacy(&local), vec![(signed.as_slice(), SIG_ONE)]);
        let again = pull_signatures(&client, &store, &name, &subject)
            .await
            .unwrap();
        assert_eq!(again, moved);
        assert_eq!(
            local_signatures(&store, &name, &subject).unwrap().len(),
            2,
            "pulling again adds nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_copy_carries_bundles_and_the_sig_tag() {
    let client = client();
    let source = Registry::ferry().await;
    let mut destinations = vec![Registry::ferry().await];
    destinations.extend(Registry::distribution());
    let endpoint = source.endpoint("models/m");
    let subject = seed_subject(&client, &endpoint, "v1").await;
    attach_bundle(
        &client,
        &source.reference("models/m:v1"),
        BUNDLE,
        COSIGN_SIGN_PREDICATE,
    )
    .await
    .unwrap();
    let signed = payload("x/models/m", &subject);
    append_legacy_signature(&client, &endpoint, &subject, &signed, SIG_ONE)
        .await
        .unwrap();
    let options = CopyOptions {
        recursive: true,
        concurrency: 2,
    };
    let from = Location::Registry(source.reference("models/m:v1"));
    let layout = tempfile::tempdir().unwrap();
    let layout_location =
        Location::parse(&format!("oci:{}:v1", layout.path().join("l").display())).unwrap();
    for destination in &destinations {
        // Registry to registry.
        let to = Location::Registry(destination.reference("copied/m:v1"));
        copy(&client, &from, &to, &options, &NoProgress)
            .await
            .unwrap();
        let found = find_signatures(&client, &destination.endpoint("copied/m"), &subject)
            .await
            .unwrap();
        assert_eq!(bundles(&found), vec![BUNDLE]);
        assert_eq!(legacy(&found), vec![(signed.as_slice(), SIG_ONE)]);

        // Registry to layout, then layout to registry.
        copy(&client, &from, &layout_location, &options, &NoProgress)
            .await
            .unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.path().join("l/index.json")).unwrap())
                .unwrap();
        let names: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .collect();
        let tag = signature_tag(&subject).unwrap();
        assert!(names.contains(&tag.as_str()), "{names:?}");
        let to = Location::Registry(destination.reference("relayed/m:v1"));
        copy(&client, &layout_location, &to, &options, &NoProgress)
            .await
            .unwrap();
        let found = find_signatures(&client, &destination.endpoint("relayed/m"), &subject)
            .await
            .unwrap();
        assert_eq!(bundles(&found), vec![BUNDLE]);
        assert_eq!(legacy(&found), vec![(signed.as_slice(), SIG_ONE)]);
    }
    // A copy without --recursive leaves signatures behind.
    let to = Location::Registry(destinations[0].reference("plain/m:v1"));
    let plain = CopyOptions {
        recursive: false,
        concurrency: 2,
    };
    copy(&client, &from, &to, &plain, &NoProgress)
        .await
        .unwrap();
    let found = find_signatures(&client, &destinations[0].endpoint("plain/m"), &subject)
        .await
        .unwrap();
    assert_eq!(found, Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_legacy_appends_all_land() {
    let client = client();
    for registry in every_registry().await {
        let endpoint = registry.endpoint("m");
        let subject = seed_subject(&client, &endpoint, "v1").await;
        let payloads: Vec<Vec<u8>> = (0..4)
            .map(|i| format!("payload {i}").into_bytes())
            .collect();
        let appends = payloads
            .iter()
            .map(|p| append_legacy_signature(&client, &endpoint, &subject, p, SIG_ONE));
        for result in futures_util::future::join_all(appends).await {
            result.expect("every append succeeds");
        }
        let found = find_signatures(&client, &endpoint, &subject).await.unwrap();
        let mut landed: Vec<&[u8]> = legacy(&found).into_iter().map(|(p, _)| p).collect();
        landed.sort();
        let expected: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        assert_eq!(landed, expected, "no append lost another's signature");
    }
}

#[test]
fn concurrent_local_appends_all_land() {
    let (dir, store) = store();
    let name: Reference = "localhost:5000/m:v1".parse().unwrap();
    let manifest = local_artifact(&store, dir.path(), &name);
    std::thread::scope(|scope| {
        for i in 0..8 {
            let (store, name, manifest) = (&store, &name, &manifest);
            scope.spawn(move || {
                let payload = format!("payload {i}").into_bytes();
                store_legacy_signature(store, name, manifest, &payload, SIG_ONE).unwrap();
            });
        }
    });
    let found = local_signatures(&store, &name, &manifest).unwrap();
    assert_eq!(
        legacy(&found).len(),
        8,
        "no append lost another's signature"
    );
    let sig_name = format!("localhost:5000/m:{}", signature_tag(&manifest).unwrap());
    assert!(store.resolve(&sig_name).is_ok(), "named {sig_name}");
}

#[test]
fn the_store_refuses_bad_signatures_and_keeps_its_index() {
    let (dir, store) = store();
    let name: Reference = "localhost:5000/m:v1".parse().unwrap();
    let manifest = local_artifact(&store, dir.path(), &name);
    let index_before = std::fs::read(store.index_path()).unwrap();
    let big = vec![b'x'; MAX_BUNDLE_BYTES as usize + 1];
    let error = store_bundle_referrer(&store, &manifest, &big, COSIGN_SIGN_PREDICATE).unwrap_err();
    assert!(error.to_string().contains("bundle"), "{error}");
    let error = store_legacy_signature(&store, &name, &manifest, &big, SIG_ONE).unwrap_err();
    assert!(error.to_string().contains("payload"), "{error}");
    let error = store_legacy_signature(&store, &name, &manifest, b"p", "%%%").unwrap_err();
    assert!(error.to_string().contains("base64"), "{error}");
    let absent = ferry_spec::digest::sha256_digest(b"not in the store");
    let error = store_bundle_referrer(&store, &absent, BUNDLE, COSIGN_SIGN_PREDICATE).unwrap_err();
    assert!(error.to_string().contains(absent.digest()), "{error}");
    assert_eq!(
        std::fs::read(store.index_path()).unwrap(),
        index_before,
        "the index is untouched"
    );
    assert_eq!(
        local_signatures(&store, &name, &manifest).unwrap(),
        Vec::new()
    );

    // A signature naming another digest, stored under this one's tag, is
    // still returned: judging it is the verifier's job.
    let of_other = payload("localhost:5000/m", &absent);
    store_legacy_signature(&store, &name, &manifest, &of_other, SIG_ONE).unwrap();
    let found = local_signatures(&store, &name, &manifest).unwrap();
    assert_eq!(legacy(&found), vec![(of_other.as_slice(), SIG_ONE)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sig_tag_that_is_not_an_image_manifest_is_a_clear_error() {
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    let index = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX, "manifests": []});
    let tag = signature_tag(&subject).unwrap();
    registry.put_manifest(
        "m",
        &tag,
        Bytes::from(serde_json::to_vec(&index).unwrap()),
        MEDIA_TYPE_IMAGE_INDEX,
    );
    let error = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .expect_err("an index under the .sig tag is refused");
    let text = error.to_string();
    assert!(
        text.contains(&tag) && text.contains("not an image manifest"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_that_are_not_bundles_of_this_manifest_are_skipped() {
    let registry = Hostile::start("127.0.0.1").await;
    let subject = digest(&registry.seed("m", "v1", &[("w", b"w".to_vec())]).manifest);
    // The fallback tag lists a referrer whose manifest names another subject.
    let elsewhere = ferry_spec::digest::sha256_digest(b"another manifest");
    let bundle = registry.put_blob("m", Bytes::from_static(BUNDLE));
    put_bundle_referrer(&registry, &elsewhere, &bundle, BUNDLE.len() as u64);
    let listing = client()
        .manifest(&hostile_endpoint(&registry), &fallback_tag(&elsewhere))
        .await
        .unwrap();
    registry.put_manifest(
        "m",
        &fallback_tag(&subject),
        listing.bytes.clone(),
        MEDIA_TYPE_IMAGE_INDEX,
    );
    // And a referrer that is listed but gone.
    let mut index: Value = serde_json::from_slice(&listing.bytes).unwrap();
    index["manifests"][0]["digest"] = json!(ferry_spec::digest::sha256_digest(b"gone").to_string());
    registry.put_manifest(
        "m",
        &fallback_tag(&subject),
        Bytes::from(serde_json::to_vec(&index).unwrap()),
        MEDIA_TYPE_IMAGE_INDEX,
    );
    let found = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .unwrap();
    assert_eq!(found, Vec::new(), "a gone referrer is skipped");

    let mixed = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX,
                       "manifests": [serde_json::from_slice::<Value>(&listing.bytes).unwrap()["manifests"][0]]});
    registry.put_manifest(
        "m",
        &fallback_tag(&subject),
        Bytes::from(serde_json::to_vec(&mixed).unwrap()),
        MEDIA_TYPE_IMAGE_INDEX,
    );
    let found = find_signatures(&client(), &hostile_endpoint(&registry), &subject)
        .await
        .unwrap();
    assert_eq!(
        found,
        Vec::new(),
        "a bundle of another subject is not this one's"
    );
    assert!(
        registry.requests("GET", &bundle).is_empty(),
        "its layer is never read"
    );
}
