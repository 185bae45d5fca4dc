//! Helpers shared by the tests: a client tuned for tests, stores, pulls.

use std::time::Duration;

use ferry_registry::retry::RetryPolicy;
use ferry_registry::transfer::{self, Pulled};
use ferry_registry::{Client, ClientError, ClientOptions};
use ferry_spec::Reference;
use ferry_store::Store;
use tempfile::TempDir;

/// Options with quick retries, so failures show up in seconds.
pub fn options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(20),
            max: Duration::from_secs(5),
        },
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    }
}

/// A client with [`options`].
pub fn client() -> Client {
    Client::new(options())
}

/// A fresh store in its own temporary directory.
pub fn store() -> (TempDir, Store) {
    let dir = tempfile::Builder::new()
        .prefix("ferry-registry-it-")
        .tempdir()
        .expect("create temp dir");
    let store = Store::open(dir.path().join("store")).expect("open store");
    (dir, store)
}

/// Pulls `reference` with four blobs at a time.
pub async fn pull(
    client: &Client,
    store: &Store,
    reference: &Reference,
) -> Result<Pulled, ClientError> {
    transfer::pull(
        client,
        store,
        reference,
        None,
        4,
        &ferry_registry::progress::NoProgress,
    )
    .await
}

/// Parses a digest.
pub fn digest(text: &str) -> ferry_spec::oci::Digest {
    text.parse().expect("a valid digest")
}

/// Asserts the store holds `content` as a blob.
pub fn assert_blob(store: &Store, expected: &[u8]) {
    let d = digest(&crate::hostile::sha256(expected));
    assert!(store.has_blob(&d), "blob {d} should be in the store");
    let stored = std::fs::read(store.blob_path(&d)).expect("read blob");
    assert!(stored == expected, "blob {d} differs from what was served");
}

/// Names in `<store>/tmp`.
pub fn tmp_entries(store: &Store) -> Vec<String> {
    std::fs::read_dir(store.tmp_dir())
        .map(|entries| {
            entries
                .map(|e| {
                    e.expect("dir entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}
