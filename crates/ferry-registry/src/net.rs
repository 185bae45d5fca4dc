//! What a failed connection means, read from the types of the errors in its
//! chain (never from their text): DNS failures come from ferry's own
//! resolver, refused connections from the OS error kind, TLS failures from
//! rustls's error.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::NetCause;

/// A host name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("DNS lookup of {host} failed")]
pub struct DnsFailure {
    /// The name looked up.
    pub host: String,
    /// The resolver's error.
    #[source]
    pub source: io::Error,
}

/// The system resolver (`getaddrinfo`, on tokio's blocking pool), whose
/// failures are [`DnsFailure`]s so they can be told apart from others.
#[derive(Debug, Default)]
pub(crate) struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.clone(), 0)).await;
            match found {
                Ok(found) => {
                    let addrs: Vec<SocketAddr> = found.collect();
                    Ok(Box::new(addrs.into_iter()) as Addrs)
                }
                Err(source) => Err(Box::new(DnsFailure { host, source }) as _),
            }
        })
    }
}

/// Every error in the chain of `error`. An `io::Error` wrapping another
/// error skips it in `source()`, so the wrapped error is visited instead.
fn chain<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut found = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        found.push(current);
        next = match current
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    found
}

/// The first `T` in the chain of `error`.
fn find<'a, T: StdError + 'static>(chain: &[&'a (dyn StdError + 'static)]) -> Option<&'a T> {
    chain.iter().find_map(|e| e.downcast_ref::<T>())
}

fn has_io_kind(chain: &[&(dyn StdError + 'static)], kinds: &[io::ErrorKind]) -> bool {
    chain.iter().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| kinds.contains(&io.kind()))
    })
}

/// Why a request could not be sent.
pub(crate) fn classify(error: &reqwest::Error) -> NetCause {
    let chain = chain(error);
    if find::<DnsFailure>(&chain).is_some() {
        return NetCause::Dns;
    }
    if let Some(tls) = find::<rustls::Error>(&chain) {
        return match tls {
            rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::InvalidCertRevocationList(_) => NetCause::Certificate,
            _ => NetCause::Tls,
        };
    }
    if has_io_kind(&chain, &[io::ErrorKind::ConnectionRefused]) {
        return NetCause::Refused;
    }
    let https = error.url().is_some_and(|url| url.scheme() == "https");
    if https
        && error.is_connect()
        && has_io_kind(
            &chain,
            &[io::ErrorKind::UnexpectedEof, io::ErrorKind::ConnectionReset],
        )
    {
        // Hung up on the TLS handshake: a plain-HTTP server does.
        return NetCause::Tls;
    }
    NetCause::Interrupted
}

/// True when an HTTPS failure means the server answered in something other
/// than TLS (a plain-HTTP registry): only then may a loopback registry be
/// retried over HTTP. A certificate problem or a TLS alert means it does
/// speak TLS, and a refused connection fails over HTTP as well.
pub(crate) fn speaks_no_tls(error: &reqwest::Error) -> bool {
    if classify(error) != NetCause::Tls {
        return false;
    }
    match find::<rustls::Error>(&chain(error)) {
        // Bytes that are no TLS record.
        Some(tls) => matches!(
            tls,
            rustls::Error::InvalidMessage(_)
                | rustls::Error::InappropriateMessage { .. }
                | rustls::Error::InappropriateHandshakeMessage { .. }
                | rustls::Error::PeerSentOversizedRecord
        ),
        // No TLS error at all: the server hung up on the handshake.
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send(url: &str) -> reqwest::Error {
        let http = reqwest::Client::builder()
            .dns_resolver(SystemResolver)
            .build()
            .unwrap();
        http.get(url).send().await.unwrap_err()
    }

    #[tokio::test]
    async fn refused_and_unresolvable_are_told_apart_by_type() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let refused = send(&format!("http://{addr}/v2/")).await;
        assert_eq!(classify(&refused), NetCause::Refused);
        assert!(!speaks_no_tls(&refused));

        let unknown = send("http://no-such-host.invalid/v2/").await;
        assert_eq!(classify(&unknown), NetCause::Dns);
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_failure_to_fall_back_from() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let error = send(&format!("https://{addr}/v2/")).await;
        assert_eq!(classify(&error), NetCause::Tls);
        assert!(speaks_no_tls(&error));
    }
}
