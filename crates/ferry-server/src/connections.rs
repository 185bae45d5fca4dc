//! Caps on open connections, in total and per client (an IPv4 address or
//! an IPv6 /64, as for upload sessions): each accepted connection holds a
//! slot of both until it closes, so silent or slow clients cannot exhaust
//! the server's tasks and descriptors while hyper's timeouts run, and one
//! client cannot take every slot. A connection over the total cap waits
//! briefly for a slot, but only a few do: the others are closed at once.
//! Two limits hyper lacks are kept here too: a client that reads nothing
//! of a response for the idle limit is dropped, and so is a connection
//! with no request in flight and no bytes either way for that long (an
//! HTTP/2 client answering pings would otherwise keep its slot forever).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::routes::client_key;

/// How long a connection over the cap waits for a slot before it is closed:
/// long enough to ride out a burst, short enough not to pile up.
const WAIT_FOR_SLOT: Duration = Duration::from_secs(2);

/// The address a connection comes from.
pub trait PeerAddr {
    /// The peer's IP address, when the socket still knows it.
    fn peer_ip(&self) -> Option<IpAddr>;
}

impl PeerAddr for tokio::net::TcpStream {
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|addr| addr.ip())
    }
}

/// The slots connections take.
struct Slots {
    total: Arc<Semaphore>,
    /// Connections waiting for a slot, and how many may.
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Connections open per client key.
    per_client: Mutex<HashMap<IpAddr, usize>>,
    max_per_client: usize,
    wait_for_slot: Duration,
}

impl Slots {
    /// A slot of `client`'s share, unless it has them all.
    fn take_client_slot(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let mut per_client = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_client.entry(client).or_default();
        if *open >= self.max_per_client {
            return None;
        }
        *open += 1;
        Some(ClientSlot {
            slots: self.clone(),
            client,
        })
    }

    /// A place among the connections waiting for a slot, unless all are taken.
    fn take_waiting_place(self: &Arc<Self>) -> Option<WaitingPlace> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < self.max_waiting).then_some(waiting + 1)
            })
            .ok()
            .map(|_| WaitingPlace(self.clone()))
    }

    /// A slot of the total, waiting briefly (if a place to wait is free).
    async fn take_total_slot(self: &Arc<Self>) -> io::Result<OwnedSemaphorePermit> {
        if let Ok(permit) = self.total.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let Some(_place) = self.take_waiting_place() else {
            tracing::warn!("connection limit reached, and enough wait: closing a new connection");
            return Err(io::Error::other("connection limit reached"));
        };
        tokio::time::timeout(self.wait_for_slot, self.total.clone().acquire_owned())
            .await
            .map_err(|_| {
                tracing::warn!("connection limit reached: closing a new connection");
                io::Error::other("connection limit reached")
            })?
            .map_err(io::Error::other)
    }
}

/// One connection of a client, counted until dropped.
struct ClientSlot {
    slots: Arc<Slots>,
    client: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut per_client = self
            .slots
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(open) = per_client.get_mut(&self.client) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// One connection waiting for a slot, counted until dropped.
struct WaitingPlace(Arc<Slots>);

impl Drop for WaitingPlace {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An acceptor admitting at most `max` connections at a time, and
/// `max_per_client` per client, in front of `inner` (TLS, or none).
#[derive(Clone)]
pub struct ConnectionLimit<A> {
    inner: A,
    slots: Arc<Slots>,
    idle: Duration,
}

impl<A> ConnectionLimit<A> {
    /// Caps `inner` at `max` open connections and `max_per_client` per
    /// client (at least one each); up to an eighth of `max` more wait
    /// briefly for a slot; a write that cannot progress for `idle` fails,
    /// and a connection without requests or traffic for `idle` ends.
    pub fn new(inner: A, max: usize, max_per_client: usize, idle: Duration) -> Self {
        Self::with_wait(inner, max, max_per_client, idle, WAIT_FOR_SLOT)
    }

    fn with_wait(
        inner: A,
        max: usize,
        max_per_client: usize,
        idle: Duration,
        wait_for_slot: Duration,
    ) -> Self {
        let max = max.max(1);
        ConnectionLimit {
            inner,
            slots: Arc::new(Slots {
                total: Arc::new(Semaphore::new(max)),
                waiting: AtomicUsize::new(0),
                max_waiting: (max / 8).max(1),
                per_client: Mutex::default(),
                max_per_client: max_per_client.max(1),
                wait_for_slot,
            }),
            idle,
        }
    }
}

impl<A, I, S> Accept<I, S> for ConnectionLimit<A>
where
    A: Accept<I, S> + Clone + Send + 'static,
    A::Future: Send,
    I: PeerAddr + Send + 'static,
    S: Send + 'static,
{
    type Stream = Limited<A::Stream>;
    type Service = InFlight<A::Service>;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.inner.clone();
        let slots = self.slots.clone();
        let idle = self.idle;
        // Without an address (the socket is already gone) all such
        // connections share one share.
        let client = stream
            .peer_ip()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), client_key);
        Box::pin(async move {
            let Some(client_slot) = slots.take_client_slot(client) else {
                tracing::warn!(%client, "per-client connection limit reached: closing a new connection");
                return Err(io::Error::other("per-client connection limit reached"));
            };
            let permit = slots.take_total_slot().await?;
            let (stream, service) = inner.accept(stream, service).await?;
            let requests = Arc::new(AtomicUsize::new(0));
            Ok((
                Limited {
                    inner: stream,
                    _permit: permit,
                    _client_slot: client_slot,
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
    _client_slot: ClientSlot,
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum_server::accept::DefaultAcceptor;

    /// A connection from an address, with nothing to read or write.
    struct FakeConnection(IpAddr);

    impl PeerAddr for FakeConnection {
        fn peer_ip(&self) -> Option<IpAddr> {
            Some(self.0)
        }
    }

    type Accepted = io::Result<(Limited<FakeConnection>, InFlight<()>)>;

    fn accept(
        limit: &ConnectionLimit<DefaultAcceptor>,
        from: IpAddr,
    ) -> BoxFuture<'static, Accepted> {
        limit.accept(FakeConnection(from), ())
    }

    /// Accepts, or fails, within a bound far below `wait_for_slot`.
    async fn accept_now(limit: &ConnectionLimit<DefaultAcceptor>, from: IpAddr) -> Accepted {
        tokio::time::timeout(Duration::from_secs(30), accept(limit, from))
            .await
            .expect("the connection was kept waiting")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const FOREVER: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn one_client_gets_its_share_and_others_still_get_in() {
        let limit = ConnectionLimit::with_wait(DefaultAcceptor::new(), 16, 2, FOREVER, FOREVER);
        let mut open = Vec::new();
        for _ in 0..2 {
            open.push(accept_now(&limit, ip("10.0.0.1")).await.unwrap());
        }
        assert!(accept_now(&limit, ip("10.0.0.1")).await.is_err());
        open.push(accept_now(&limit, ip("10.0.0.2")).await.unwrap());
        // An IPv6 client owns its /64: a second address in it is the same client.
        open.push(accept_now(&limit, ip("2001:db8::1")).await.unwrap());
        open.push(accept_now(&limit, ip("2001:db8::2")).await.unwrap());
        assert!(accept_now(&limit, ip("2001:db8::ffff:3")).await.is_err());
        open.push(accept_now(&limit, ip("2001:db8:0:1::1")).await.unwrap());
        // A closed connection frees its client's slot.
        open.remove(0);
        open.push(accept_now(&limit, ip("10.0.0.1")).await.unwrap());
    }

    #[tokio::test]
    async fn only_a_few_connections_wait_for_a_slot() {
        // 8 slots: one connection may wait.
        let limit = ConnectionLimit::with_wait(DefaultAcceptor::new(), 8, 64, FOREVER, FOREVER);
        let mut open = Vec::new();
        for i in 0..8u8 {
            open.push(
                accept_now(&limit, IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
                    .await
                    .unwrap(),
            );
        }
        let waiter = tokio::spawn(accept(&limit, ip("10.0.1.1")));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while limit.slots.waiting.load(Ordering::Acquire) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the ninth never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Another one is closed at once instead of waiting too.
        assert!(accept_now(&limit, ip("10.0.1.2")).await.is_err());
        assert!(!waiter.is_finished());
        // The waiter gets the first slot that frees.
        open.pop();
        let accepted = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("the waiter never got the freed slot")
            .unwrap();
        assert!(accepted.is_ok());
    }
}
