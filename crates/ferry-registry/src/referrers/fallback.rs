//! Keeping the fallback tag of a subject: read the index, append the
//! entry (every other entry and field kept as read), write it, confirm it
//! stays; and manifest pushes that outlast a blob being rewritten.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use ferry_spec::media::MEDIA_TYPE_IMAGE_INDEX;
use oci_spec::distribution::ErrorCode;

use super::list::read_fallback;
use crate::api::PushedManifest;
use crate::client::{Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::retry::{RetryPolicy, retry_when};

/// How the fallback index is updated when the registry has no referrers API.
///
/// The distribution spec has no compare-and-swap for tags: a `PUT` simply
/// replaces what the tag pointed to. Two writers that read the index at the
/// same time each add their entry to what they read, and the later `PUT`
/// drops the earlier writer's entry. ferry narrows that window with
/// optimistic concurrency: after writing, it re-reads the tag `confirmations`
/// times, `settle` apart, and writes again (after a backoff) whenever its
/// entry is gone. What this cannot prevent: a writer whose read came before
/// our write and whose `PUT` arrives after our last confirmation (more than
/// `settle * confirmations` later) still erases our entry, and nobody
/// notices. Registries with the referrers API have no such race.
#[derive(Debug, Clone, Copy)]
pub struct FallbackPolicy {
    /// Read-modify-write attempts before giving up.
    pub attempts: u32,
    /// Delay between attempts (jittered, growing).
    pub backoff: RetryPolicy,
    /// Wait between writing and each confirming read.
    pub settle: Duration,
    /// Confirming reads that must all show the entry.
    pub confirmations: u32,
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        FallbackPolicy {
            attempts: 20,
            backoff: RetryPolicy {
                attempts: 20,
                base: Duration::from_millis(100),
                max: Duration::from_secs(3),
            },
            settle: Duration::from_millis(250),
            confirmations: 2,
        }
    }
}

/// A fallback index: read whole, written whole.
pub(crate) trait FallbackStore {
    /// The index document, or `None` when the tag does not exist.
    async fn read(&self) -> Result<Option<Value>>;
    /// Replaces the index.
    async fn write(&self, document: Vec<u8>) -> Result<()>;
}

/// The fallback tag of a subject on a registry (the origin: it is written).
pub(crate) struct RegistryTag<'a> {
    client: &'a Client,
    endpoint: &'a Endpoint,
    tag: &'a str,
}

impl<'a> RegistryTag<'a> {
    /// The tag `tag` of `endpoint`'s repository.
    pub(crate) fn new(client: &'a Client, endpoint: &'a Endpoint, tag: &'a str) -> Self {
        RegistryTag {
            client,
            endpoint,
            tag,
        }
    }
}

impl FallbackStore for RegistryTag<'_> {
    async fn read(&self) -> Result<Option<Value>> {
        read_fallback(self.client, self.endpoint, self.tag).await
    }

    async fn write(&self, document: Vec<u8>) -> Result<()> {
        put_manifest_through_blob_races(
            self.client,
            self.endpoint,
            self.tag,
            MEDIA_TYPE_IMAGE_INDEX,
            Bytes::from(document),
            &RetryPolicy::default(),
        )
        .await
        .map(|_| ())
    }
}

/// Error codes a manifest `PUT` gets when a blob or manifest it names is
/// momentarily unreadable on the registry.
const BLOB_RACE_CODES: [ErrorCode; 3] = [
    ErrorCode::DigestInvalid,
    ErrorCode::ManifestBlobUnknown,
    ErrorCode::BlobUnknown,
];

/// Attempts of a manifest `PUT` refused for [`BLOB_RACE_CODES`].
pub(crate) const BLOB_RACE_ATTEMPTS: u32 = 5;

/// True for a refusal that a blob being rewritten can cause.
fn is_blob_race(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Status {
            status: 400,
            body: Some(body),
            ..
        } if BLOB_RACE_CODES.iter().any(|code| body.code.is(code))
    )
}

/// `put_manifest`, retried when the registry claims a referenced blob is
/// unknown or invalid. docker-registry 2.8's filesystem driver rewrites a
/// repository's blob link in place, so while another client uploads the same
/// blob (every attach shares the empty config) a manifest naming it can be
/// refused with `DIGEST_INVALID`; a moment later the link is whole again. A
/// blob that is really missing still fails after [`BLOB_RACE_ATTEMPTS`].
pub(crate) async fn put_manifest_through_blob_races(
    client: &Client,
    endpoint: &Endpoint,
    reference: &str,
    media_type: &str,
    bytes: Bytes,
    backoff: &RetryPolicy,
) -> Result<PushedManifest> {
    let policy = RetryPolicy {
        attempts: BLOB_RACE_ATTEMPTS,
        ..*backoff
    };
    let action = format!(
        "{}: pushing manifest {reference} (a concurrent upload of a shared blob?)",
        endpoint.registry
    );
    retry_when(&policy, &action, is_blob_race, async || {
        client
            .put_manifest(endpoint, reference, media_type, bytes.clone())
            .await
    })
    .await
}

/// True when the index lists `digest`.
pub(crate) fn lists(document: &Value, digest: &str) -> bool {
    document
        .get("manifests")
        .and_then(Value::as_array)
        .is_some_and(|m| {
            m.iter()
                .any(|e| e.get("digest").and_then(Value::as_str) == Some(digest))
        })
}

/// `document` (or a new index) with `entry` appended; every other entry and
/// field is kept as read, so entries written by other tools survive.
fn with_entry(document: Option<Value>, entry: &Value) -> Value {
    let mut document = document.unwrap_or_else(|| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_IMAGE_INDEX,
            "manifests": [],
        })
    });
    if let Some(manifests) = document.get_mut("manifests").and_then(Value::as_array_mut) {
        manifests.push(entry.clone());
    }
    document
}

/// A document kept under a tag by read-modify-write (the fallback index, a
/// signature tag), with one addition to make.
pub(crate) trait TagUpdate {
    /// The document, or `None` when the tag does not exist.
    async fn read(&self) -> Result<Option<Value>>;
    /// True when `document` already holds the addition.
    fn holds(&self, document: &Value) -> bool;
    /// Writes `current` (as read) with the addition.
    async fn write_added(&self, current: Option<Value>) -> Result<()>;
}

/// Makes `update`'s addition unless the tag holds it, then confirms it
/// stays; see [`FallbackPolicy`]. Returns the attempts it took.
pub(crate) async fn update_tag_until_it_stays(
    update: &impl TagUpdate,
    what: &str,
    policy: &FallbackPolicy,
) -> Result<u32> {
    let attempts = policy.attempts.max(1);
    let backoff = RetryPolicy {
        attempts,
        ..policy.backoff
    };
    let action = format!("tag {what}");
    let mut made = 0;
    retry_when(
        &backoff,
        &action,
        |error| matches!(error, ClientError::Contended { .. }),
        async || {
            made += 1;
            let current = update.read().await?;
            if !current.as_ref().is_some_and(|d| update.holds(d)) {
                update.write_added(current).await?;
            }
            for _ in 0..policy.confirmations {
                tokio::time::sleep(policy.settle).await;
                if !update.read().await?.is_some_and(|d| update.holds(&d)) {
                    // A concurrent writer replaced the document.
                    return Err(ClientError::Contended {
                        what: what.to_string(),
                        attempts: made,
                    });
                }
            }
            Ok(made)
        },
    )
    .await
}

/// One descriptor to list in a fallback index.
struct FallbackEntry<'a, S> {
    store: &'a S,
    entry: &'a Value,
    digest: &'a str,
    what: &'a str,
}

impl<S: FallbackStore> TagUpdate for FallbackEntry<'_, S> {
    async fn read(&self) -> Result<Option<Value>> {
        self.store.read().await
    }

    fn holds(&self, document: &Value) -> bool {
        lists(document, self.digest)
    }

    async fn write_added(&self, current: Option<Value>) -> Result<()> {
        let updated = with_entry(current, self.entry);
        let bytes = ferry_spec::json::canonical_json(&updated)
            .map_err(|e| ClientError::encode(format!("the index for {}", self.what), e))?;
        self.store.write(bytes).await
    }
}

/// Adds `entry` (a descriptor) to the fallback index unless it is listed,
/// then confirms it stays listed; see [`FallbackPolicy`]. Returns the
/// attempts it took.
pub(crate) async fn add_to_fallback_index(
    store: &impl FallbackStore,
    what: &str,
    entry: &Value,
    policy: &FallbackPolicy,
) -> Result<u32> {
    let digest = entry
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::invalid_input("a referrer descriptor without a digest"))?;
    let update = FallbackEntry {
        store,
        entry,
        digest,
        what,
    };
    update_tag_until_it_stays(&update, what, policy).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    use ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST;
    use ferry_spec::oci::Digest;

    use crate::referrers::fixtures::{descriptor, digest};

    /// A tag whose writes land `lag` after they were computed, like a slow
    /// client racing others.
    struct RacyTag {
        document: RefCell<Option<Value>>,
        lag: Duration,
    }

    impl FallbackStore for RacyTag {
        async fn read(&self) -> Result<Option<Value>> {
            Ok(self.document.borrow().clone())
        }
        async fn write(&self, document: Vec<u8>) -> Result<()> {
            tokio::time::sleep(self.lag).await;
            *self.document.borrow_mut() = Some(serde_json::from_slice(&document).unwrap());
            Ok(())
        }
    }

    #[tokio::test]
    async fn concurrent_fallback_writers_all_end_up_listed() {
        let tag = RacyTag {
            document: RefCell::new(None),
            lag: Duration::from_millis(5),
        };
        let policy = FallbackPolicy {
            attempts: 50,
            backoff: RetryPolicy {
                attempts: 50,
                base: Duration::from_millis(1),
                max: Duration::from_millis(20),
            },
            settle: Duration::from_millis(20),
            confirmations: 2,
        };
        let entries: Vec<Value> = (0..8)
            .map(|n| serde_json::to_value(descriptor(n, Some("application/vnd.x"))).unwrap())
            .collect();
        let results = futures_util::future::join_all(
            entries
                .iter()
                .map(|e| add_to_fallback_index(&tag, "t", e, &policy)),
        )
        .await;
        let attempts: Vec<u32> = results.into_iter().map(|r| r.unwrap()).collect();
        assert!(
            attempts.iter().any(|a| *a > 1),
            "the writers raced (some had to retry): {attempts:?}"
        );
        let document = tag.document.borrow().clone().unwrap();
        for n in 0..8 {
            assert!(lists(&document, digest(n).as_ref()), "entry {n} lost");
        }
        assert_eq!(document["manifests"].as_array().unwrap().len(), 8);
        assert_eq!(document["mediaType"], MEDIA_TYPE_IMAGE_INDEX);
    }

    #[tokio::test]
    async fn an_entry_already_listed_is_not_written_again() {
        let entry = serde_json::to_value(descriptor(1, None)).unwrap();
        let existing = with_entry(None, &entry);
        let tag = RacyTag {
            document: RefCell::new(Some(existing.clone())),
            lag: Duration::ZERO,
        };
        let policy = FallbackPolicy {
            settle: Duration::ZERO,
            ..FallbackPolicy::default()
        };
        assert_eq!(
            add_to_fallback_index(&tag, "t", &entry, &policy)
                .await
                .unwrap(),
            1
        );
        assert_eq!(tag.document.borrow().clone().unwrap(), existing);
    }

    /// A tag that another writer keeps overwriting: ferry gives up with an error.
    struct Hostile;
    impl FallbackStore for Hostile {
        async fn read(&self) -> Result<Option<Value>> {
            Ok(None)
        }
        async fn write(&self, _document: Vec<u8>) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_tag_that_never_keeps_the_entry_fails_after_the_attempts() {
        let entry = serde_json::to_value(descriptor(1, None)).unwrap();
        let policy = FallbackPolicy {
            attempts: 3,
            backoff: RetryPolicy {
                attempts: 3,
                base: Duration::from_millis(1),
                max: Duration::from_millis(1),
            },
            settle: Duration::ZERO,
            confirmations: 1,
        };
        let err = add_to_fallback_index(&Hostile, "sha256-x", &entry, &policy)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Contended { attempts: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("sha256-x"));
    }

    /// A registry that answers manifest `PUT`s with `codes` in turn (an
    /// empty code: 201), one connection per request. Returns its address
    /// and a counter of the `PUT`s it saw.
    async fn scripted_registry(
        codes: Vec<&'static str>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let puts = std::sync::Arc::new(AtomicUsize::new(0));
        let seen = puts.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                let body_len = loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break Some((end + 4, len));
                    }
                };
                let Some((start, len)) = body_len else {
                    continue;
                };
                while request.len() < start + len {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..n]);
                }
                let index = seen.fetch_add(1, Ordering::SeqCst);
                let code = codes.get(index).copied().unwrap_or("");
                let response = if code.is_empty() {
                    "HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_string()
                } else {
                    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#);
                    format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (addr, puts)
    }

    async fn put_through(codes: Vec<&'static str>) -> (Result<Digest>, usize) {
        let (addr, puts) = scripted_registry(codes).await;
        let client = Client::new(crate::ClientOptions {
            plain_http: true,
            ..crate::ClientOptions::default()
        });
        let endpoint = Endpoint {
            registry: addr,
            repository: "r".into(),
        };
        let fast = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        };
        let result = put_manifest_through_blob_races(
            &client,
            &endpoint,
            "v1",
            MEDIA_TYPE_IMAGE_MANIFEST,
            Bytes::from_static(b"{}"),
            &fast,
        )
        .await
        .map(|pushed| pushed.digest);
        (result, puts.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test]
    async fn manifest_puts_outlast_a_blob_being_rewritten() {
        let (result, puts) = put_through(vec!["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"]).await;
        assert_eq!(result.unwrap(), ferry_spec::digest::sha256_digest(b"{}"));
        assert_eq!(puts, 3);

        let (result, puts) = put_through(vec!["DIGEST_INVALID"; 10]).await;
        let err = result.unwrap_err();
        assert!(err.to_string().contains("DIGEST_INVALID"), "{err}");
        assert_eq!(
            puts, BLOB_RACE_ATTEMPTS as usize,
            "a missing blob still fails"
        );

        let (result, puts) = put_through(vec!["MANIFEST_INVALID"]).await;
        assert!(result.unwrap_err().to_string().contains("MANIFEST_INVALID"));
        assert_eq!(puts, 1, "other refusals are not retried");
    }
}
