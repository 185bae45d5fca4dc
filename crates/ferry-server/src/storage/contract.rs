//! The [`Storage`] contract, checked against every backend.

use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use ferry_spec::digest::DigestHasher;
use ferry_spec::oci::{Digest, DigestAlgorithm};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::Notify;

use super::fs::FsStorage;
use super::memory::MemoryStorage;
use super::{ByteStream, ReferrerDescriptor, Storage, StorageError, StoredManifest};

/// Runs `check` on a fresh filesystem backend and a fresh memory backend.
async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(Box<dyn Storage>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    check(Box::new(FsStorage::open(dir.path()).unwrap())).await;
    check(Box::new(MemoryStorage::new())).await;
}

/// A session lifetime no test reaches.
const LONG: Duration = Duration::from_secs(24 * 3600);

fn digest(algorithm: DigestAlgorithm, bytes: &[u8]) -> Digest {
    let mut hasher = DigestHasher::new(&algorithm).unwrap();
    hasher.update(bytes);
    hasher.finish()
}

fn body(chunks: &[&'static [u8]]) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
    Box::pin(futures_util::stream::iter(chunks))
}

async fn push(storage: &dyn Storage, repo: &str, bytes: &'static [u8]) -> Digest {
    let digest = digest(DigestAlgorithm::Sha256, bytes);
    let id = storage.upload_start(repo).await.unwrap();
    storage
        .upload_append(repo, &id, Some(0), body(&[bytes]), LONG)
        .await
        .unwrap();
    storage.upload_finish(repo, &id, &digest).await.unwrap();
    digest
}

async fn read_all(
    storage: &dyn Storage,
    repo: &str,
    digest: &Digest,
    start: u64,
    len: u64,
) -> Vec<u8> {
    let blob = storage.blob_open(repo, digest).await.unwrap().unwrap();
    let chunks: Vec<Bytes> = blob
        .read(start, len)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

#[tokio::test]
async fn uploads_are_verified_and_read_back_in_ranges() {
    on_every_backend(|storage| async move {
        let storage = &*storage;
        let content: &'static [u8] = b"hello, registry";
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let digest = digest(algorithm, content);
            let id = storage.upload_start("r").await.unwrap();
            // Appends must start where the session is.
            let at = storage
                .upload_append("r", &id, Some(0), body(&[b"hello", b", "]), LONG)
                .await
                .unwrap();
            assert_eq!(at, 7);
            assert!(matches!(
                storage
                    .upload_append("r", &id, Some(3), body(&[b"x"]), LONG)
                    .await,
                Err(StorageError::OutOfOrder(7))
            ));
            storage
                .upload_append("r", &id, None, body(&[b"registry"]), LONG)
                .await
                .unwrap();
            assert_eq!(storage.upload_offset("r", &id).await.unwrap(), Some(15));
            // Another repository cannot see or finish the session.
            assert_eq!(storage.upload_offset("other", &id).await.unwrap(), None);
            assert!(matches!(
                storage.upload_finish("other", &id, &digest).await,
                Err(StorageError::NotFound)
            ));
            assert_eq!(storage.upload_finish("r", &id, &digest).await.unwrap(), 15);
            assert_eq!(storage.upload_offset("r", &id).await.unwrap(), None);

            assert!(storage.blob_linked("r", &digest).await.unwrap());
            assert!(!storage.blob_linked("other", &digest).await.unwrap());
            assert!(storage.blob_open("other", &digest).await.unwrap().is_none());
            let blob = storage.blob_open("r", &digest).await.unwrap().unwrap();
            assert_eq!(blob.size(), 15);
            assert!(blob.read(10, 6).await.is_err(), "a range past the end");
            assert_eq!(read_all(storage, "r", &digest, 0, 15).await, content);
            assert_eq!(read_all(storage, "r", &digest, 7, 8).await, b"registry");
        }
    })
    .await;
}

#[tokio::test]
async fn a_mismatched_upload_stores_nothing() {
    on_every_backend(|storage| async move {
        let storage = &*storage;
        let claimed = digest(DigestAlgorithm::Sha256, b"what was promised");
        let id = storage.upload_start("r").await.unwrap();
        storage
            .upload_append("r", &id, None, body(&[b"something else"]), LONG)
            .await
            .unwrap();
        let actual = digest(DigestAlgorithm::Sha256, b"something else");
        assert!(matches!(
            storage.upload_finish("r", &id, &claimed).await,
            Err(StorageError::DigestMismatch(d)) if d == actual
        ));
        assert!(!storage.blob_known(&claimed).await.unwrap());
        assert!(!storage.blob_known(&actual).await.unwrap());
        assert!(storage.blobs().await.unwrap().is_empty());
        assert_eq!(storage.upload_offset("r", &id).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_failing_body_keeps_what_arrived() {
    on_every_backend(|storage| async move {
        let storage = &*storage;
        let id = storage.upload_start("r").await.unwrap();
        let failing: ByteStream = Box::pin(
            futures_util::stream::iter([Ok(Bytes::from_static(b"abc"))]).chain(
                futures_util::stream::iter([Err(io::Error::from(io::ErrorKind::TimedOut))]),
            ),
        );
        assert!(matches!(
            storage.upload_append("r", &id, None, failing, LONG).await,
            Err(StorageError::Body(e)) if e.kind() == io::ErrorKind::TimedOut
        ));
        assert_eq!(storage.upload_offset("r", &id).await.unwrap(), Some(3));
        assert!(storage.upload_cancel("r", &id).await.unwrap());
        assert!(!storage.upload_cancel("r", &id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn sessions_expire_by_age() {
    on_every_backend(|storage| async move {
        let storage = &*storage;
        let id = storage.upload_start("r").await.unwrap();
        assert_eq!(
            storage
                .expire_sessions(Duration::from_secs(3600), Duration::from_secs(3600))
                .await
                .unwrap()
                .len(),
            0
        );
        assert_eq!(storage.upload_offset("r", &id).await.unwrap(), Some(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            storage
                .expire_sessions(Duration::from_millis(1), Duration::from_secs(3600))
                .await
                .unwrap(),
            vec![id.clone()]
        );
        assert_eq!(storage.upload_offset("r", &id).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn busy_sessions_expire_at_their_lifetime() {
    on_every_backend(|storage| async move {
        let storage = &*storage;
        let id = storage.upload_start("r").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let chunk: ByteStream =
            Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(b"abc"))]));
        storage
            .upload_append("r", &id, None, chunk, LONG)
            .await
            .unwrap();
        // Just touched, so not idle; but started over a second ago.
        let idle = Duration::from_secs(3600);
        assert!(
            storage
                .expire_sessions(idle, Duration::from_secs(3600))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            storage
                .expire_sessions(idle, Duration::from_millis(500))
                .await
                .unwrap(),
            vec![id.clone()]
        );
        assert_eq!(storage.upload_offset("r", &id).await.unwrap(), None);
    })
    .await;
}

/// One chunk, then nothing ever again (a client trickling its body);
/// `polled` is told once the append reads past the chunk.
fn stalled_after(chunk: &'static [u8], polled: Arc<Notify>) -> ByteStream {
    let first = futures_util::stream::iter([Ok(Bytes::from_static(chunk))]);
    let then = futures_util::stream::poll_fn(move |_| {
        polled.notify_one();
        Poll::Pending
    });
    Box::pin(first.chain(then))
}

#[tokio::test]
async fn expiry_skips_a_session_a_stalled_body_holds() {
    on_every_backend(|storage| async move {
        let storage = &*storage;
        let id = storage.upload_start("r").await.unwrap();
        let polled = Arc::new(Notify::new());
        // Boxed, so that dropping it ends the request.
        let mut append = Box::pin(storage.upload_append(
            "r",
            &id,
            None,
            stalled_after(b"abc", polled.clone()),
            LONG,
        ));
        tokio::select! {
            result = &mut append => panic!("a stalled append ended: {:?}", result.err()),
            () = polled.notified() => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let tiny = Duration::from_millis(1);
        let expired =
            tokio::time::timeout(Duration::from_secs(30), storage.expire_sessions(tiny, tiny))
                .await
                .expect("expiry waited on a session a client holds")
                .unwrap();
        assert!(
            expired.is_empty(),
            "a busy session was removed under its append"
        );
        // Once the request is gone, the next sweep removes it.
        drop(append);
        assert_eq!(
            storage.expire_sessions(tiny, tiny).await.unwrap(),
            vec![id.clone()]
        );
        assert_eq!(storage.upload_offset("r", &id).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn an_append_ends_when_its_session_reaches_its_lifetime() {
    on_every_backend(|storage| async move {
        let storage = &*storage;
        let id = storage.upload_start("r").await.unwrap();
        let polled = Arc::new(Notify::new());
        let trickled = stalled_after(b"abc", polled);
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            storage.upload_append("r", &id, None, trickled, Duration::from_millis(300)),
        )
        .await
        .expect("a trickled append kept its session past its lifetime");
        assert!(matches!(result, Err(StorageError::Expired)), "{result:?}");
        assert_eq!(storage.upload_offset("r", &id).await.unwrap(), None);

        // A session already past its lifetime takes nothing and is removed.
        let id = storage.upload_start("r").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let result = storage
            .upload_append("r", &id, None, body(&[b"late"]), Duration::from_millis(1))
            .await;
        assert!(matches!(result, Err(StorageError::Expired)), "{result:?}");
        assert_eq!(storage.upload_offset("r", &id).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn listings_and_deletes_for_gc() {
    on_every_backend(|storage| async move {
        let storage = &*storage;
        let blob = push(storage, "a/b", b"layer").await;
        let manifest_bytes = Bytes::from_static(br#"{"schemaVersion":2}"#);
        let manifest = StoredManifest {
            digest: digest(DigestAlgorithm::Sha256, &manifest_bytes),
            bytes: manifest_bytes.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        };
        storage
            .manifest_put("a/b", &manifest, Some("v1"))
            .await
            .unwrap();
        storage
            .manifest_put("a/b", &manifest, Some("v2"))
            .await
            .unwrap();
        let referrer = ReferrerDescriptor {
            media_type: manifest.media_type.clone(),
            digest: blob.clone(),
            size: 5,
            artifact_type: Some("application/x.sig".into()),
            annotations: None,
        };
        storage
            .referrer_add("a/b", &manifest.digest, &referrer)
            .await
            .unwrap();
        push(storage, "c", b"other").await;

        assert_eq!(storage.repositories().await.unwrap(), ["a/b", "c"]);
        assert_eq!(
            storage.manifests("a/b").await.unwrap(),
            std::slice::from_ref(&manifest.digest)
        );
        assert_eq!(storage.tags("a/b").await.unwrap().unwrap(), ["v1", "v2"]);
        assert_eq!(storage.tags("nope").await.unwrap(), None);
        assert_eq!(
            storage.tag_get("a/b", "v1").await.unwrap(),
            Some(manifest.digest.clone())
        );
        let links = storage.blob_links("a/b").await.unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].digest, blob);
        assert!(links[0].modified.elapsed().unwrap_or_default() < Duration::from_secs(60));
        let mut sizes: Vec<(String, u64)> = storage
            .blobs()
            .await
            .unwrap()
            .into_iter()
            .map(|b| (b.digest.to_string(), b.size))
            .collect();
        sizes.sort();
        let mut expected = vec![
            (blob.to_string(), 5),
            (manifest.digest.to_string(), manifest_bytes.len() as u64),
            (digest(DigestAlgorithm::Sha256, b"other").to_string(), 5),
        ];
        expected.sort();
        assert_eq!(sizes, expected);
        assert_eq!(
            storage.referrers("a/b", &manifest.digest).await.unwrap(),
            [referrer]
        );

        // Deleting a manifest takes its tags; the content stays until deleted.
        assert!(
            storage
                .manifest_delete("a/b", &manifest.digest)
                .await
                .unwrap()
        );
        assert!(
            !storage
                .manifest_delete("a/b", &manifest.digest)
                .await
                .unwrap()
        );
        assert_eq!(
            storage.tags("a/b").await.unwrap().unwrap(),
            Vec::<String>::new()
        );
        assert!(
            storage
                .manifest_get("a/b", &manifest.digest)
                .await
                .unwrap()
                .is_none()
        );
        storage
            .referrer_remove("a/b", &manifest.digest, &blob)
            .await
            .unwrap();
        assert!(
            storage
                .referrers("a/b", &manifest.digest)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(storage.blob_known(&manifest.digest).await.unwrap());
        assert!(storage.blob_delete(&manifest.digest).await.unwrap());
        assert!(!storage.blob_delete(&manifest.digest).await.unwrap());

        // A link survives its content; a mount of missing content is refused.
        assert!(storage.blob_delete(&blob).await.unwrap());
        assert!(storage.blob_open("a/b", &blob).await.unwrap().is_none());
        assert!(matches!(
            storage.blob_link("c", &blob).await,
            Err(StorageError::NotFound)
        ));
        assert!(storage.blob_unlink("a/b", &blob).await.unwrap());
        assert!(storage.blob_links("a/b").await.unwrap().is_empty());
    })
    .await;
}
