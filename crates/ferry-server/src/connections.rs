//! A cap on open connections: each accepted connection holds a permit until
//! it closes, so silent or slow clients cannot exhaust the server's tasks
//! and descriptors while hyper's timeouts run. Two limits hyper lacks are
//! kept here too: a client that reads nothing of a response for the idle
//! limit is dropped, and so is a connection with no request in flight and
//! no bytes either way for that long (an HTTP/2 client answering pings
//! would otherwise keep its slot forever).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// How long a connection over the cap waits for a slot before it is closed:
/// long enough to ride out a burst, short enough not to pile up.
const WAIT_FOR_SLOT: Duration = Duration::from_secs(2);

/// An acceptor admitting at most `max` connections at a time, in front of
/// `inner` (TLS, or none).
#[derive(Clone)]
pub struct ConnectionLimit<A> {
    inner: A,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl<A> ConnectionLimit<A> {
    /// Caps `inner` at `max` open connections (at least one); a write that
    /// cannot progress for `idle` fails, and a connection without requests
    /// or traffic for `idle` ends.
    pub fn new(inner: A, max: usize, idle: Duration) -> Self {
        ConnectionLimit {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
            idle,
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
    type Service = InFlight<A::Service>;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.inner.clone();
        let slots = self.slots.clone();
        let idle = self.idle;
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
            let requests = Arc::new(AtomicUsize::new(0));
            Ok((
                Limited {
                    inner: stream,
                    _permit: permit,
                    idle,
                    write_deadline: None,
                    requests: requests.clone(),
                    last_traffic: Instant::now(),
                    idle_deadline: None,
                },
                InFlight {
                    inner: service,
                    requests,
                },
            ))
        })
    }
}

/// A connection holding its slot until dropped.
pub struct Limited<T> {
    inner: T,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    /// Armed while a write waits for the client to read.
    write_deadline: Option<Pin<Box<Sleep>>>,
    /// Requests of this connection being handled.
    requests: Arc<AtomicUsize>,
    last_traffic: Instant,
    /// Armed while a read waits for the client.
    idle_deadline: Option<Pin<Box<Sleep>>>,
}

impl<T> Limited<T> {
    /// Passes a write's outcome through; a write pending for longer than
    /// the idle limit becomes a `TimedOut` error.
    fn watch_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.write_deadline = None;
            self.last_traffic = Instant::now();
            return poll;
        }
        let idle = self.idle;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if deadline.as_mut().poll(cx).is_ready() {
            self.write_deadline = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("client read nothing for {idle:?}"),
            )));
        }
        Poll::Pending
    }

    /// True when the connection has had no request and no traffic for the
    /// idle limit; otherwise arranges to be polled again when it might.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle.is_zero() {
            return false;
        }
        loop {
            let wake_at = self.last_traffic + self.idle;
            let deadline = self
                .idle_deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(wake_at)));
            if deadline.deadline() != wake_at {
                deadline.as_mut().reset(wake_at);
            }
            if deadline.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.requests.load(Ordering::Acquire) == 0 {
                return true;
            }
            // A request is being handled: look again one idle period on.
            self.last_traffic = Instant::now();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > filled {
                    self.last_traffic = Instant::now();
                }
                Poll::Ready(result)
            }
            // Ending the read (end of stream) makes the server close the
            // connection as if the client had.
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Limited<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch_write(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_write(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch_write(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A connection's service, counting the requests it is handling (until
/// their response head is ready; a streaming body is traffic).
#[derive(Clone)]
pub struct InFlight<S> {
    inner: S,
    requests: Arc<AtomicUsize>,
}

/// Counts one request while it lives.
struct RequestGuard(Arc<AtomicUsize>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, R> Service<R> for InFlight<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.requests.fetch_add(1, Ordering::AcqRel);
        let guard = RequestGuard(self.requests.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(guard);
            response
        })
    }
}
