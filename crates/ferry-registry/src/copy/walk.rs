//! The walk of a copy: what a manifest references (child manifests of an
//! index, blobs of a manifest) before the manifest, then referrers.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};

use futures_util::{StreamExt, TryStreamExt, stream};

use ferry_spec::oci::{Digest, ImageIndex, ImageManifest};

use super::destination::Destination;
use super::source::Source;
use super::{MAX_INDEX_DEPTH, MAX_REFERRER_DEPTH};
use crate::api::FetchedManifest;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::progress::TransferProgress;
use crate::transfer::{blobs_of, is_index};
use crate::upload::BlobOutcome;

/// What a copy has moved so far.
#[derive(Debug, Clone, Default)]
pub(super) struct Stats {
    pub manifests: usize,
    pub referrers: usize,
    pub sent: usize,
    pub mounted: usize,
    pub present: usize,
    pub bytes: u64,
}

/// One copy in progress.
pub(super) struct Run<'a> {
    pub client: &'a Client,
    pub src: &'a Source,
    pub dst: &'a Destination,
    pub mount_from: Option<String>,
    pub progress: &'a dyn TransferProgress,
    concurrency: usize,
    /// Manifests already copied (or being copied).
    seen: Mutex<HashSet<Digest>>,
    stats: Mutex<Stats>,
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

impl<'a> Run<'a> {
    pub(super) fn new(
        client: &'a Client,
        src: &'a Source,
        dst: &'a Destination,
        mount_from: Option<String>,
        concurrency: usize,
        progress: &'a dyn TransferProgress,
    ) -> Run<'a> {
        Run {
            client,
            src,
            dst,
            mount_from,
            progress,
            concurrency,
            seen: Mutex::new(HashSet::new()),
            stats: Mutex::new(Stats::default()),
        }
    }

    pub(super) fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True the first time a manifest digest is seen.
    pub(super) fn seen_first(&self, digest: Digest) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest)
    }

    /// Copies what `document` references (blobs, or child manifests with
    /// theirs); not `document` itself.
    /// `depth` counts the indexes above `document`.
    pub(super) fn copy_tree(&'a self, document: &'a FetchedManifest, depth: usize) -> Boxed<'a> {
        Box::pin(async move {
            let what = format!("manifest {}", document.digest);
            let invalid = |e: serde_json::Error| ClientError::Invalid {
                registry: "the source".into(),
                reason: format!("{what}: {e}"),
            };
            if is_index(&document.media_type) {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(ClientError::Invalid {
                        registry: "the source".into(),
                        reason: format!("{what}: indexes nested more than {MAX_INDEX_DEPTH} deep"),
                    });
                }
                let index: ImageIndex = serde_json::from_slice(&document.bytes).map_err(invalid)?;
                for child in index.manifests() {
                    if !self.seen_first(child.digest().clone()) {
                        continue;
                    }
                    let fetched = self.src.manifest(self.client, child).await?;
                    self.copy_tree(&fetched, depth + 1).await?;
                    self.dst
                        .put_manifest(self.client, &fetched, child, None)
                        .await?;
                    self.stats().manifests += 1;
                }
                return Ok(());
            }
            let manifest: ImageManifest =
                serde_json::from_slice(&document.bytes).map_err(invalid)?;
            let blobs = blobs_of(&manifest);
            let outcomes: Vec<BlobOutcome> = stream::iter(blobs.iter())
                .map(|descriptor| self.dst.put_blob(self, descriptor))
                .buffer_unordered(self.concurrency)
                .try_collect()
                .await?;
            let mut stats = self.stats();
            for outcome in outcomes {
                match outcome {
                    BlobOutcome::Sent(bytes) => {
                        stats.sent += 1;
                        stats.bytes += bytes;
                    }
                    BlobOutcome::Mounted => stats.mounted += 1,
                    BlobOutcome::Present => stats.present += 1,
                }
            }
            Ok(())
        })
    }

    /// Copies the cosign `.sig` tag of `subject`, when the source has one:
    /// `source_name` and `destination_name` are its names in layouts.
    pub(super) async fn copy_signature_tag(
        &self,
        subject: &Digest,
        source_name: Option<&str>,
        destination_name: Option<&str>,
    ) -> Result<()> {
        let Some(tag) = ferry_spec::signature::signature_tag(subject) else {
            return Ok(());
        };
        let name_in = |root: Option<&str>| signature_entry_name(root, &tag);
        let Some((fetched, descriptor)) = self
            .src
            .signature_manifest(self.client, &tag, &name_in(source_name))
            .await?
        else {
            return Ok(());
        };
        if self.seen_first(fetched.digest.clone()) {
            self.copy_tree(&fetched, 0).await?;
        }
        self.dst
            .put_signature_tag(
                self.client,
                &fetched,
                &descriptor,
                &tag,
                &name_in(destination_name),
            )
            .await?;
        self.stats().manifests += 1;
        Ok(())
    }

    /// Copies the referrers of `subject`, then theirs.
    pub(super) fn copy_referrers(&'a self, subject: Digest, depth: usize) -> Boxed<'a> {
        Box::pin(async move {
            if depth >= MAX_REFERRER_DEPTH {
                tracing::warn!(
                    "referrers deeper than {MAX_REFERRER_DEPTH} levels below {subject} are not copied"
                );
                return Ok(());
            }
            for referrer in self.src.referrers(self.client, &subject).await? {
                if !self.seen_first(referrer.digest().clone()) {
                    continue;
                }
                let fetched = self.src.manifest(self.client, &referrer).await?;
                self.copy_tree(&fetched, 0).await?;
                self.dst
                    .put_manifest(self.client, &fetched, &referrer, Some(&subject))
                    .await?;
                {
                    let mut stats = self.stats();
                    stats.manifests += 1;
                    stats.referrers += 1;
                }
                self.copy_referrers(referrer.digest().clone(), depth + 1)
                    .await?;
            }
            Ok(())
        })
    }
}

/// The name of a signature tag in a layout: beside a full reference
/// (`host/repo:v1`, as the store names things) the same repository with
/// the signature tag, else the bare tag (as skopeo names things).
fn signature_entry_name(root: Option<&str>, tag: &str) -> String {
    root.filter(|name| name.contains('/'))
        .and_then(|name| ferry_store::index::normalize_reference(name).ok())
        .map(|reference| {
            ferry_spec::Reference::with_tag(
                reference.registry().to_string(),
                reference.repository().to_string(),
                tag.to_string(),
            )
            .whole()
        })
        .unwrap_or_else(|| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_names_follow_the_root_name() {
        assert_eq!(
            signature_entry_name(Some("localhost:5000/m:v1"), "sha256-a.sig"),
            "localhost:5000/m:sha256-a.sig"
        );
        assert_eq!(
            signature_entry_name(Some("v1"), "sha256-a.sig"),
            "sha256-a.sig"
        );
        assert_eq!(signature_entry_name(None, "sha256-a.sig"), "sha256-a.sig");
    }
}
