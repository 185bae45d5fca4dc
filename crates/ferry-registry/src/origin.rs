//! URLs a registry names, and where credentials may follow them.
//!
//! A registry's answers name other URLs: an upload session's `Location`,
//! the next page in a `Link` header, a blob's redirect. They are resolved
//! here and nowhere else, by one rule: credentials (Basic or Bearer) go
//! only to the origin (scheme, host and port) they were issued for, and a
//! URL named over HTTPS may not lead to plain HTTP.

use reqwest::Url;
use reqwest::redirect::{Attempt, Policy};

/// Redirects followed before a request fails.
pub const MAX_REDIRECTS: usize = 10;

/// Same scheme, host and port (a default port counts as written).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Why a named URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NamedUrlError {
    /// Not a URL, even relative to the one that answered.
    #[error("{named:?} is not a URL: {reason}")]
    Invalid {
        /// What the registry sent.
        named: String,
        /// The parser's message.
        reason: String,
    },
    /// Neither `http` nor `https`.
    #[error("{0} is not an http or https URL")]
    Scheme(Url),
    /// Plain HTTP named over HTTPS.
    #[error("{0} would move from HTTPS to plain HTTP")]
    Downgrade(Url),
}

/// `named` (absolute, or relative to `answered`, the URL whose response
/// named it), refused when it is no HTTP URL or when it would take a
/// conversation held over HTTPS to plain HTTP.
pub(crate) fn resolve_named(answered: &Url, named: &str) -> Result<Url, NamedUrlError> {
    let resolved = answered
        .join(named.trim())
        .map_err(|e| NamedUrlError::Invalid {
            named: named.to_string(),
            reason: e.to_string(),
        })?;
    match resolved.scheme() {
        "https" => Ok(resolved),
        "http" if answered.scheme() == "http" => Ok(resolved),
        "http" => Err(NamedUrlError::Downgrade(resolved)),
        _ => Err(NamedUrlError::Scheme(resolved)),
    }
}

/// The redirect policy of every HTTP client: at most [`MAX_REDIRECTS`]
/// hops, never from HTTPS to plain HTTP. (reqwest itself drops the
/// `Authorization` header on a hop to another origin.)
pub(crate) fn redirect_policy() -> Policy {
    Policy::custom(judge_redirect)
}

fn judge_redirect(attempt: Attempt) -> reqwest::redirect::Action {
    match refuse_redirect(attempt.url(), attempt.previous()) {
        Some(reason) => attempt.error(reason),
        None => attempt.follow(),
    }
}

/// Why a redirect to `next` after `previous` (the original URL first) is
/// not followed, if it is not.
fn refuse_redirect(next: &Url, previous: &[Url]) -> Option<String> {
    if previous.len() >= MAX_REDIRECTS {
        return Some(format!("more than {MAX_REDIRECTS} redirects"));
    }
    let downgrade = next.scheme() != "https" && previous.iter().any(|url| url.scheme() == "https");
    downgrade.then(|| format!("a redirect from HTTPS to {next}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let registry = url("https://r.io/v2/");
        assert!(same_origin(
            &registry,
            &url("https://r.io:443/v2/m/blobs/uploads/1")
        ));
        assert!(!same_origin(&registry, &url("http://r.io/v2/")), "scheme");
        assert!(
            !same_origin(&registry, &url("https://r.io:5000/v2/")),
            "port"
        );
        assert!(
            !same_origin(&registry, &url("https://evil.example/v2/")),
            "host"
        );
        assert!(!same_origin(&registry, &url("https://r.io.evil.example/")));
        assert!(!same_origin(&registry, &url("https://r.io@evil.example/")));
        assert!(same_origin(
            &url("http://[::1]:5000/"),
            &url("http://[::1]:5000/x")
        ));
    }

    #[test]
    fn redirects_never_leave_https_and_stop_after_the_limit() {
        let https = url("https://r.io/v2/m/blobs/sha256:aa");
        let cdn = url("https://cdn.example/blob?signed=1");
        assert_eq!(refuse_redirect(&cdn, std::slice::from_ref(&https)), None);
        assert!(
            refuse_redirect(
                &url("http://cdn.example/blob"),
                std::slice::from_ref(&https)
            )
            .is_some()
        );
        assert!(
            refuse_redirect(&url("http://cdn.example/b"), &[https.clone(), cdn.clone()]).is_some(),
            "HTTPS anywhere before"
        );
        let plain = url("http://127.0.0.1:5000/v2/m/blobs/sha256:aa");
        assert_eq!(
            refuse_redirect(&url("http://127.0.0.2:5000/b"), &[plain]),
            None
        );
        let chain = vec![https; MAX_REDIRECTS];
        assert!(refuse_redirect(&cdn, &chain).is_some());
    }

    #[test]
    fn named_urls_resolve_against_the_answer_and_never_downgrade() {
        let answered = url("https://r.io/v2/m/blobs/uploads/");
        assert_eq!(
            resolve_named(&answered, "/v2/m/blobs/uploads/abc?state=1").unwrap(),
            url("https://r.io/v2/m/blobs/uploads/abc?state=1")
        );
        assert_eq!(
            resolve_named(&answered, "abc").unwrap(),
            url("https://r.io/v2/m/blobs/uploads/abc"),
            "relative to the URL that answered"
        );
        assert_eq!(
            resolve_named(&answered, "https://uploads.example/s/1").unwrap(),
            url("https://uploads.example/s/1")
        );
        assert!(matches!(
            resolve_named(&answered, "http://r.io/v2/m/blobs/uploads/abc"),
            Err(NamedUrlError::Downgrade(_))
        ));
        assert!(matches!(
            resolve_named(&answered, "//evil.example:80/x").map(|u| u.scheme().to_string()),
            Ok(scheme) if scheme == "https"
        ));
        assert!(matches!(
            resolve_named(&answered, "file:///etc/passwd"),
            Err(NamedUrlError::Scheme(_))
        ));
        let plain = url("http://127.0.0.1:5000/v2/m/blobs/uploads/");
        assert_eq!(
            resolve_named(&plain, "http://127.0.0.1:5001/up").unwrap(),
            url("http://127.0.0.1:5001/up")
        );
    }
}
