//! `ferry pack --push`: a model directory becomes an artifact on a registry
//! with nothing stored locally and every file read once.
//!
//! Planning, the config and the manifest are the store path's own
//! ([`ferry_store::pack::prepare`], [`Prepared::assemble`]), so the
//! manifest digest is the one `ferry pack` gives. Only where layer bytes go
//! differs: each layer is produced by a blocking thread (the file, or the
//! deterministic tar) into a bounded channel, hashed on the way, and sent as
//! one chunked `PATCH`; the closing `PUT ?digest=` carries the digest
//! computed while streaming, which the registry checks. A transient failure
//! starts that layer again in a new session, with the client's backoff.

use std::cell::Cell;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::runtime::Handle;

use ferry_spec::Reference;
use ferry_spec::digest::HashingWriter;
use ferry_spec::media::MEDIA_TYPE_IMAGE_MANIFEST;
use ferry_spec::oci::Digest;
use ferry_store::pack::layer::WrittenBlob;
use ferry_store::pack::{PackOptions, PlannedLayer, Prepared, Progress, prepare};

use crate::api::uploads::UploadStart;
use crate::bridge::{self, ChannelWriter};
use crate::client::{Access, Client, Endpoint};
use crate::error::{ClientError, Result};
use crate::progress::NoProgress;
use crate::request::RequestBody;
use crate::retry::retry_blocking_when;
use crate::transfer::reference_tail;
use crate::upload::BlobSource;

/// What a pack-and-push sent.
#[derive(Debug, Clone)]
pub struct PackPushed {
    /// The reference pushed.
    pub reference: String,
    /// The manifest digest (the one `ferry pack` gives for the same input).
    pub digest: Digest,
    /// Number of layers.
    pub layers: usize,
    /// Bytes of model content read.
    pub content_bytes: u64,
    /// Bytes of layers uploaded.
    pub uploaded_bytes: u64,
}

/// Packs `dir` and pushes it to `reference`. Blocking: call it from outside
/// the runtime `handle` belongs to (it drives the network through
/// `handle`, one thread per layer in flight, `concurrency` at most).
pub fn pack_and_push(
    handle: &Handle,
    client: &Client,
    dir: &Path,
    reference: &Reference,
    options: &PackOptions,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<PackPushed> {
    let prepared: Prepared = prepare(dir, reference, options)?;
    let plan = prepared.plan(options);
    progress.start(prepared.total_bytes(), prepared.file_count());
    let endpoint = Endpoint::of(reference);
    let written = push_layers(
        handle,
        client,
        &endpoint,
        &plan,
        options.preserve_metadata,
        concurrency,
        progress,
    )?;
    let assembled = prepared.assemble(reference, options, &plan, &written)?;
    handle.block_on(async {
        client
            .push_blob(
                &endpoint,
                &assembled.config,
                BlobSource::Bytes(Bytes::from(assembled.config_bytes.clone())),
                None,
                &NoProgress,
            )
            .await?;
        client
            .put_manifest(
                &endpoint,
                &reference_tail(reference),
                MEDIA_TYPE_IMAGE_MANIFEST,
                Bytes::from(assembled.manifest_bytes.clone()),
            )
            .await
    })?;
    Ok(PackPushed {
        reference: reference.whole(),
        digest: assembled.manifest.digest().clone(),
        layers: plan.len(),
        content_bytes: prepared.total_bytes(),
        uploaded_bytes: written.iter().map(|w| w.size).sum(),
    })
}

/// Uploads every planned layer, `concurrency` at a time; the first failure
/// stops the others from starting new layers.
fn push_layers(
    handle: &Handle,
    client: &Client,
    endpoint: &Endpoint,
    plan: &[PlannedLayer<'_>],
    preserve: bool,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<Vec<WrittenBlob>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<WrittenBlob>>>> =
        Mutex::new((0..plan.len()).map(|_| None).collect());
    let workers = concurrency.max(1).min(plan.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = plan.get(i) else {
                        return;
                    };
                    let result = push_layer(handle, client, endpoint, layer, preserve, progress);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut written = Vec::with_capacity(results.len());
    let mut first_error = None;
    for result in results {
        match result {
            Some(Ok(blob)) => written.push(blob),
            Some(Err(error)) => {
                first_error.get_or_insert(error);
            }
            None => {}
        }
    }
    match first_error {
        Some(error) => Err(error),
        None if written.len() == plan.len() => Ok(written),
        // Workers stop early only after a failure, which is reported above.
        None => Err(ClientError::Io {
            action: "uploading",
            path: "a layer".into(),
            source: std::io::Error::other("a layer upload stopped without a result"),
        }),
    }
}

/// Streams one layer into a new upload session while hashing it, then
/// closes the session with the digest. A transient network failure starts
/// the layer again in a new session (reading its files again).
fn push_layer(
    handle: &Handle,
    client: &Client,
    endpoint: &Endpoint,
    layer: &PlannedLayer<'_>,
    preserve: bool,
    progress: &dyn Progress,
) -> Result<WrittenBlob> {
    let action = format!("uploading layer {}", layer.filepath());
    // Only a failure inside a session starts a new one: the requests before
    // it were retried already.
    let in_session = Cell::new(false);
    let retryable = |error: &ClientError| in_session.get() && error.is_transient();
    retry_blocking_when(&client.options().retry, &action, retryable, || {
        push_layer_once(
            handle,
            client,
            endpoint,
            layer,
            preserve,
            progress,
            &in_session,
        )
    })
}

/// One session of [`push_layer`].
fn push_layer_once(
    handle: &Handle,
    client: &Client,
    endpoint: &Endpoint,
    layer: &PlannedLayer<'_>,
    preserve: bool,
    progress: &dyn Progress,
    in_session: &Cell<bool>,
) -> Result<WrittenBlob> {
    let access = Access::Push;
    in_session.set(false);
    let location = match handle.block_on(client.start_upload(endpoint, &access, None))? {
        UploadStart::Session(location) => location,
        UploadStart::Mounted => {
            return Err(ClientError::Invalid {
                registry: endpoint.registry.clone(),
                reason: "answered an upload start with 201 Created".into(),
            });
        }
    };
    in_session.set(true);
    let (tx, body) = bridge::channel();
    let (produced, consumer_gone, patched) = std::thread::scope(|scope| {
        let errors = tx.clone();
        let writer = ChannelWriter::new(tx);
        let consumer_gone = writer.closed_flag();
        let producer = scope.spawn(move || {
            let mut hashing = HashingWriter::new(writer);
            let result = layer
                .write_encoded_to(&mut hashing, preserve, progress)
                .map_err(ClientError::from)
                .and_then(|uncompressed| {
                    let (writer, digest, size) = hashing.finish();
                    writer
                        .finish()
                        .map_err(crate::error::io_error("uploading", layer.filepath()))?;
                    Ok(match uncompressed {
                        Some(u) => WrittenBlob {
                            digest,
                            size,
                            diff_id: u.digest,
                            uncompressed_size: u.size,
                            files: Vec::new(),
                        },
                        None => WrittenBlob::uncompressed(digest, size),
                    })
                });
            if let Err(error) = &result {
                // Make the request fail instead of ending a short body.
                let _ = errors.blocking_send(Err(std::io::Error::other(error.to_string())));
            }
            result
        });
        let patched = handle.block_on(client.patch_stream(endpoint, &location, &access, body));
        let produced = producer.join().unwrap_or_else(|_| {
            Err(ClientError::Io {
                action: "packing",
                path: layer.filepath().to_string(),
                source: std::io::Error::other("the packing thread panicked"),
            })
        });
        (produced, consumer_gone, patched)
    });
    let failure = match (produced, patched) {
        (Ok(blob), Ok(next)) => {
            handle.block_on(client.finish_upload(
                endpoint,
                &next,
                &access,
                &blob.digest,
                RequestBody::Empty,
            ))?;
            return Ok(blob);
        }
        // The files could not be read (or changed): that is the error,
        // not the aborted request it caused.
        (Err(error), _) if !consumer_gone.load(Ordering::Relaxed) => {
            handle.block_on(client.cancel_upload(endpoint, &location, &access));
            return Err(error);
        }
        (_, Err(error)) => error,
        (Err(error), Ok(_)) => error,
    };
    handle.block_on(client.cancel_upload(endpoint, &location, &access));
    Err(failure)
}
