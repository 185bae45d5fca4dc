//! A cap on open connections: each accepted connection holds a permit until
//! it closes, so silent or slow clients cannot exhaust the server's tasks
//! and descriptors while hyper's timeouts run. A connection whose client
//! reads nothing of a response for the stall limit is ended too (hyper has
//! no write timeout).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// How long a connection over the cap waits for a slot before it is closed:
/// long enough to ride out a burst, short enough not to pile up.
const WAIT_FOR_SLOT: Duration = Duration::from_secs(2);

/// An acceptor admitting at most `max` connections at a time, in front of
/// `inner` (TLS, or none).
#[derive(Clone)]
pub struct ConnectionLimit<A> {
    inner: A,
    slots: Arc<Semaphore>,
    write_stall: Duration,
}

impl<A> ConnectionLimit<A> {
    /// Caps `inner` at `max` open connections (at least one); a write that
    /// cannot progress for `write_stall` fails.
    pub fn new(inner: A, max: usize, write_stall: Duration) -> Self {
        ConnectionLimit {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
            write_stall,
        }
    }
}

impl<A, I, S> Accept<I, S> for ConnectionLimit<A>
where
    A: Accept<I, S> + Clone + Send + 'static,
    A::Future: Send,
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Limited<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.inner.clone();
        let slots = self.slots.clone();
        let write_stall = self.write_stall;
        Box::pin(async move {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => tokio::time::timeout(WAIT_FOR_SLOT, slots.acquire_owned())
                    .await
                    .map_err(|_| {
                        tracing::warn!("connection limit reached: closing a new connection");
                        io::Error::other("connection limit reached")
                    })?
                    .map_err(io::Error::other)?,
            };
            let (stream, service) = inner.accept(stream, service).await?;
            Ok((
                Limited {
                    inner: stream,
                    _permit: permit,
                    write_stall,
                    stalled_since: None,
                },
                service,
            ))
        })
    }
}

/// A connection holding its slot until dropped.
pub struct Limited<T> {
    inner: T,
    _permit: OwnedSemaphorePermit,
    write_stall: Duration,
    /// Armed while a write waits for the client to read.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<T> Limited<T> {
    /// Passes a write's outcome through; a write pending for longer than
    /// the stall limit becomes a `TimedOut` error.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled_since = None;
            return poll;
        }
        let write_stall = self.write_stall;
        let deadline = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(write_stall)));
        if deadline.as_mut().poll(cx).is_ready() {
            self.stalled_since = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("client read nothing for {write_stall:?}"),
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Limited<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
