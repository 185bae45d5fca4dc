//! `ferry copy`: an artifact moves between registries, OCI image layouts
//! (`oci:PATH[:TAG]`) and layout tarballs (`oci-archive:FILE[:TAG]`).
//!
//! The walk ([`walk`]) is the same for every pair: the root manifest (an
//! index brings its child manifests), every blob streamed from the source
//! ([`source`]) to the destination ([`destination`]) and verified on the
//! way, child manifests before their parents, the root last under its name;
//! with `recursive`, then the root's referrers (and theirs). Between two
//! repositories of one registry, blobs are mounted, not sent. A registry
//! source is read through its mirrors; a registry destination is the origin.

mod destination;
mod source;
mod walk;

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use ferry_spec::Reference;
use ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST;
use ferry_spec::oci::{Descriptor, Digest, MediaType};
use ferry_store::index::normalize_reference;
use ferry_store::layout::split_path_and_tag;

use crate::api::FetchedManifest;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::progress::TransferProgress;

use destination::Destination;
use source::Source;
use walk::Run;

/// Levels of referrers-of-referrers a recursive copy follows.
pub const MAX_REFERRER_DEPTH: usize = 8;

/// Levels of indexes inside indexes a copy follows: a source can nest
/// them as deep as it likes, each level a request and a frame held.
pub const MAX_INDEX_DEPTH: usize = 8;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A repository on a registry (`host/repo:tag`, `host/repo@sha256:...`).
    Registry(Reference),
    /// An OCI image layout directory; the tag is a `ref.name` annotation.
    Layout {
        /// The layout's root.
        path: PathBuf,
        /// The name of the manifest in `index.json`.
        tag: Option<String>,
    },
    /// A tar of an OCI image layout.
    Archive {
        /// The tar file.
        path: PathBuf,
        /// The name of the manifest in its `index.json`.
        tag: Option<String>,
    },
}

impl Location {
    /// Parses `oci:PATH[:TAG]`, `oci-archive:FILE[:TAG]` or a registry
    /// reference (optionally prefixed `docker://`).
    pub fn parse(input: &str) -> Result<Location> {
        let local = |rest: &str, kind: &str| -> Result<(PathBuf, Option<String>)> {
            let (path, tag) = split_path_and_tag(rest);
            if path.as_os_str().is_empty() {
                return Err(ClientError::invalid_input(format!(
                    "{input:?}: {kind} needs a path ({kind}PATH[:TAG])"
                )));
            }
            Ok((path, tag))
        };
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, tag) = local(rest, "oci-archive:")?;
            return Ok(Location::Archive { path, tag });
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            let (path, tag) = local(rest, "oci:")?;
            return Ok(Location::Layout { path, tag });
        }
        let reference = input.strip_prefix("docker://").unwrap_or(input);
        Ok(Location::Registry(normalize_reference(reference)?))
    }

    /// The name the artifact has here, if any.
    pub fn tag(&self) -> Option<String> {
        match self {
            Location::Registry(reference) => reference.tag().map(str::to_string),
            Location::Layout { tag, .. } | Location::Archive { tag, .. } => tag.clone(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local =
            |f: &mut fmt::Formatter<'_>, kind: &str, path: &PathBuf, tag: &Option<String>| {
                write!(f, "{kind}:{}", path.display())?;
                match tag {
                    Some(tag) => write!(f, ":{tag}"),
                    None => Ok(()),
                }
            };
        match self {
            Location::Registry(reference) => f.write_str(&reference.whole()),
            Location::Layout { path, tag } => local(f, "oci", path, tag),
            Location::Archive { path, tag } => local(f, "oci-archive", path, tag),
        }
    }
}

/// What `copy` is told.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Also copy referrers (signatures, SBOMs), recursively, and the root's
    /// cosign `.sig` tag.
    pub recursive: bool,
    /// Blobs moved at once (an archive destination takes one at a time).
    pub concurrency: usize,
}

/// What a copy moved.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The source, as given.
    pub source: String,
    /// The destination, as given.
    pub destination: String,
    /// Digest of the root manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Manifests written (root, children of an index, referrers).
    pub manifests: usize,
    /// Referrers copied.
    pub referrers: usize,
    /// Blobs whose bytes were sent.
    pub sent: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
    /// Blobs the destination already had.
    pub present: usize,
    /// Bytes sent.
    pub bytes: u64,
}

/// Copies the artifact at `source` to `destination`.
pub async fn copy(
    client: &Client,
    source: &Location,
    destination: &Location,
    options: &CopyOptions,
    progress: &dyn TransferProgress,
) -> Result<Copied> {
    // The source must resolve before anything is created at the destination.
    let (src, root) = Source::open(client, source).await?;
    if let Location::Registry(reference) = destination
        && let Some(wanted) = reference.digest()
        && wanted != root.digest.as_ref()
    {
        return Err(ClientError::Integrity {
            what: destination.to_string(),
            reason: format!("the source manifest is {}", root.digest),
        });
    }
    let dst = Destination::open(destination).await?;
    let mount_from = match (src.registry(), dst.registry()) {
        (Some(from), Some(to))
            if from.registry == to.registry && from.repository != to.repository =>
        {
            Some(from.repository.clone())
        }
        _ => None,
    };
    let concurrency = match dst {
        Destination::Archive(_) => 1,
        _ => options.concurrency.max(1),
    };
    let run = Run::new(client, &src, &dst, mount_from, concurrency, progress);
    let root_descriptor = descriptor_of(&root);
    run.seen_first(root.digest.clone());
    run.copy_tree(&root, 0).await?;
    let name = destination.tag().or_else(|| source.tag());
    dst.put_root(client, &root, &root_descriptor, name.as_deref())
        .await?;
    run.stats().manifests += 1;
    if options.recursive {
        run.copy_referrers(root.digest.clone(), 0).await?;
        let source_name = source.tag().or_else(|| destination.tag());
        run.copy_signature_tag(&root.digest, source_name.as_deref(), name.as_deref())
            .await?;
    }
    let stats = run.stats().clone();
    drop(run);
    dst.finish().await?;
    Ok(Copied {
        source: source.to_string(),
        destination: destination.to_string(),
        digest: root.digest,
        media_type: root.media_type,
        manifests: stats.manifests,
        referrers: stats.referrers,
        sent: stats.sent,
        mounted: stats.mounted,
        present: stats.present,
        bytes: stats.bytes,
    })
}

/// The descriptor of a fetched manifest, with its `artifactType`.
fn descriptor_of(document: &FetchedManifest) -> Descriptor {
    let mut descriptor = Descriptor::new(
        MediaType::from(document.media_type.as_str()),
        document.bytes.len() as u64,
        document.digest.clone(),
    );
    let artifact_type = serde_json::from_slice::<Value>(&document.bytes)
        .ok()
        .and_then(|v| v.get("artifactType")?.as_str().map(str::to_string));
    descriptor.set_artifact_type(artifact_type.map(|t| MediaType::from(t.as_str())));
    descriptor
}

/// The media type of manifest bytes: their `mediaType`, else the
/// descriptor's, else an image manifest.
fn media_type_of(bytes: &[u8], descriptor: Option<&Descriptor>) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .or_else(|| descriptor.map(|d| d.media_type().to_string()))
        .unwrap_or_else(|| MEDIA_TYPE_IMAGE_MANIFEST.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_each_kind() {
        assert_eq!(
            Location::parse("oci:/no/such/layout:v1").unwrap(),
            Location::Layout {
                path: "/no/such/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Location::parse("oci:/no/such/artifacts:localhost:5000/m:v1").unwrap(),
            Location::Layout {
                path: "/no/such/artifacts".into(),
                tag: Some("localhost:5000/m:v1".into())
            }
        );
        assert_eq!(
            Location::parse("oci-archive:/no/such/m.tar").unwrap(),
            Location::Archive {
                path: "/no/such/m.tar".into(),
                tag: None
            }
        );
        let Location::Registry(reference) =
            Location::parse("docker://localhost:5000/m:v2").unwrap()
        else {
            panic!("a registry reference");
        };
        assert_eq!(reference.whole(), "localhost:5000/m:v2");
        assert!(matches!(
            Location::parse("oci:"),
            Err(ClientError::InvalidInput { .. })
        ));
        assert!(Location::parse("Not A Reference").is_err());
    }

    #[test]
    fn locations_print_as_they_parse() {
        for text in [
            "oci:/no/such/layout:v1",
            "oci-archive:/no/such/m.tar",
            "localhost:5000/m:v1",
        ] {
            assert_eq!(Location::parse(text).unwrap().to_string(), text);
        }
    }
}
