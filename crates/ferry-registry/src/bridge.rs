//! Moving bytes between async streams and blocking code, with bounded memory.
//!
//! Network bodies are async streams; the store, the extractor and the tar
//! writer are synchronous. Between them sits a channel of at most
//! [`DEPTH`] chunks of up to [`CHUNK`] bytes, so no blob is ever held whole.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use ferry_spec::oci::Digest;

use crate::error::{ClientError, Result};
use crate::progress::TransferProgress;

/// A stream of blob bytes; an `Err` item aborts whoever consumes it.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A [`ByteStream`] that may borrow (the client, say): polled by whoever
/// holds it, never handed to another task or thread.
pub type BlobStream<'a> = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + 'a>>;

/// Chunks in flight between a producer and a consumer.
pub(crate) const DEPTH: usize = 4;

/// Largest chunk a [`ChannelWriter`] sends.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A channel's sending half, for blocking producers.
pub(crate) type ChunkSender = mpsc::Sender<io::Result<Bytes>>;

/// A bounded channel whose receiving half is a [`ByteStream`].
pub(crate) fn channel() -> (ChunkSender, ByteStream) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (tx, receiver_stream(rx))
}

fn receiver_stream(rx: mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A `Write` for blocking code that hands chunks to an async consumer.
/// Must not be used on a runtime thread (it blocks while the channel is full).
pub(crate) struct ChannelWriter {
    tx: ChunkSender,
    buffer: Vec<u8>,
    closed: Arc<AtomicBool>,
}

impl ChannelWriter {
    /// Writes into `tx`.
    pub(crate) fn new(tx: ChunkSender) -> ChannelWriter {
        ChannelWriter {
            tx,
            buffer: Vec::with_capacity(CHUNK),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Set once the consumer went away (a write then failed because of it).
    pub(crate) fn closed_flag(&self) -> Arc<AtomicBool> {
        self.closed.clone()
    }

    /// Sends what is buffered; dropping the writer afterwards ends the stream.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send_buffer()
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            self.closed.store(true, Ordering::Relaxed);
            io::Error::new(io::ErrorKind::BrokenPipe, "the receiving side stopped")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() >= CHUNK {
            self.send_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

/// Runs `consume` on a blocking thread, reading `stream` through a `Read`
/// (tokio's `SyncIoBridge`), while bytes are counted for `progress` on the
/// async side. A failure of the stream is reported as such, not as the
/// consumer's failure to read.
pub(crate) async fn consume_blocking<T, F>(
    stream: BlobStream<'_>,
    digest: &Digest,
    progress: &dyn TransferProgress,
    consume: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Read) -> Result<T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let worker = tokio::task::spawn_blocking(move || {
        let mut reader = SyncIoBridge::new(StreamReader::new(receiver_stream(rx)));
        consume(&mut reader)
    });
    let pump = async move {
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    let n = chunk.len() as u64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        // The consumer stopped; its result says why.
                        return Ok(());
                    }
                    progress.advanced(digest, n);
                }
                Err(error) => {
                    let copy = io::Error::new(error.kind(), error.to_string());
                    let _ = tx.send(Err(error)).await;
                    return Err(copy);
                }
            }
        }
        Ok(())
    };
    let (pumped, worked) = tokio::join!(pump, worker);
    let worked = worked.map_err(|e| ClientError::Io {
        action: "running the blocking task for",
        path: format!("blob {digest}"),
        source: io::Error::other(e.to_string()),
    })?;
    match pumped {
        Err(source) => Err(ClientError::Io {
            action: "receiving",
            path: format!("blob {digest}"),
            source,
        }),
        Ok(()) => worked,
    }
}

/// A stream of `len` bytes of a local file from `offset` (a blob in a
/// layout, or an entry inside a tar archive).
pub(crate) async fn file_stream(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> Result<ByteStream> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(crate::error::io_error("reading", path.display()))?;
    if offset > 0 {
        file.seek(io::SeekFrom::Start(offset))
            .await
            .map_err(crate::error::io_error("reading", path.display()))?;
    }
    Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file.take(len),
        CHUNK,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_blocking_consumer_sees_every_byte_in_order() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<io::Result<Bytes>> = data
            .chunks(7777)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream: ByteStream = Box::pin(futures_util::stream::iter(chunks));
        let digest = ferry_spec::digest::sha256_digest(&data);
        let got = consume_blocking(stream, &digest, &NoProgress, |reader| {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map_err(|e| ClientError::Io {
                action: "reading",
                path: "test".into(),
                source: e,
            })?;
            Ok(out)
        })
        .await
        .unwrap();
        assert!(got == data, "bytes differ after the bridge");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failing_stream_is_reported_as_the_stream_failure() {
        let items: Vec<io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("connection reset")),
        ];
        let stream: ByteStream = Box::pin(futures_util::stream::iter(items));
        let digest = ferry_spec::digest::sha256_digest(b"abc");
        let error = consume_blocking(stream, &digest, &NoProgress, |reader| {
            let mut out = Vec::new();
            let _ = reader.read_to_end(&mut out);
            Ok(out)
        })
        .await
        .unwrap_err();
        assert!(error.to_string().contains("connection reset"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_channel_writer_streams_what_blocking_code_writes() {
        let (tx, mut stream) = channel();
        let producer = tokio::task::spawn_blocking(move || {
            let mut writer = ChannelWriter::new(tx);
            for i in 0..100u8 {
                writer.write_all(&vec![i; 10_000]).unwrap();
            }
            writer.finish().unwrap();
        });
        let mut received = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= CHUNK);
            received.extend_from_slice(&chunk);
        }
        producer.await.unwrap();
        assert_eq!(received.len(), 1_000_000);
        assert_eq!(received[999_999], 99);
        assert_eq!(received[0], 0);
    }
}
