//! The `docker` transport's scopes: which are valid, and the order in which
//! an image looks them up.

use std::fmt;

use ferry_spec::Reference;
use ferry_spec::names::{digest_problem, parse_reference, repository_problem, tag_problem};

use super::identity::Identity;

/// The scope whose requirements apply to an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeMatch {
    /// A scope of the `docker` transport (`""` is the transport's default).
    Docker(String),
    /// The global `default`.
    Default,
}

impl fmt::Display for ScopeMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Docker(scope) => write!(f, "transports.docker[{scope:?}]"),
            Self::Default => f.write_str("default"),
        }
    }
}

/// The scopes that could apply to `image`, most specific first, as
/// containers/image orders them: the reference, the repository, each parent
/// namespace, the host, then `*.domain` wildcards of the host without port.
pub(super) fn lookup_order(image: &Reference) -> Vec<String> {
    let identity = Identity::of_image(image);
    let mut scopes = vec![identity.to_string()];
    let mut name = identity.name.as_str();
    loop {
        scopes.push(name.to_string());
        match name.rfind('/') {
            Some(slash) => name = &name[..slash],
            None => break,
        }
    }
    let mut domain = name.split(':').next().unwrap_or(name);
    while let Some(dot) = domain.find('.') {
        domain = &domain[dot + 1..];
        scopes.push(format!("*.{domain}"));
    }
    scopes
}

/// Why `scope` is not a scope of the `docker` transport, or `None`.
pub(super) fn docker_scope_problem(scope: &str) -> Option<String> {
    if scope.is_empty() {
        return None;
    }
    if let Some(domain) = scope.strip_prefix("*.") {
        return wildcard_problem(domain);
    }
    if scope.contains('*') {
        return Some(format!(
            "{scope:?}: a wildcard scope is `*.` followed by a domain (*.example.com)"
        ));
    }
    let (name, suffix) = split_tag_or_digest(scope);
    if matches!(suffix, Some(TagOrDigest::Digest(_))) && split_tag_or_digest(name).1.is_some() {
        return Some(format!(
            "{scope:?}: a scope names a tag or a digest, not both"
        ));
    }
    if let Some(problem) = namespace_problem(name) {
        return Some(problem);
    }
    match suffix {
        None => None,
        Some(TagOrDigest::Tag(tag)) => tag_problem(tag).or_else(|| hub_problem(name)),
        Some(TagOrDigest::Digest(digest)) => digest_problem(digest).or_else(|| hub_problem(name)),
    }
}

/// Why `prefix` is not a fully expanded `host[:port][/namespace...]`, or
/// `None`. Scopes without tag or digest and remapIdentity prefixes are this.
pub(super) fn namespace_problem(prefix: &str) -> Option<String> {
    let (host, path) = match prefix.split_once('/') {
        Some((host, path)) => (host, Some(path)),
        None => (prefix, None),
    };
    let looks_like_host = host.contains('.') || host.contains(':') || host == "localhost";
    if !looks_like_host {
        return Some(format!(
            "{prefix:?} does not start with a registry host: write it fully expanded (docker.io/library/busybox, not busybox)"
        ));
    }
    // parse_reference checks the host and says which rule it breaks; a host
    // it renames (index.docker.io) is not in the expanded form.
    match parse_reference(&format!("{host}/x")) {
        Err(error) => return Some(format!("{prefix:?}: {}", error.reason)),
        Ok(parsed) if parsed.registry() != host => {
            return Some(format!(
                "{prefix:?}: write the host as {:?}",
                parsed.registry()
            ));
        }
        Ok(_) => {}
    }
    path.and_then(repository_problem)
        .map(|problem| format!("{prefix:?}: {problem}"))
}

fn wildcard_problem(domain: &str) -> Option<String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (!domain.split('.').all(label_ok)).then(|| {
        format!(
            "\"*.{domain}\": a wildcard scope is `*.` followed by a domain (*.example.com), without port or path"
        )
    })
}

/// Docker Hub's one-component names live under `library/`: a full
/// reference scope without it would never match.
fn hub_problem(name: &str) -> Option<String> {
    let path = name.strip_prefix("docker.io/")?;
    (!path.contains('/'))
        .then(|| format!("{name:?} is not fully expanded: write docker.io/library/{path}"))
}

enum TagOrDigest<'a> {
    Tag(&'a str),
    Digest(&'a str),
}

/// Splits `name[:tag]` or `name@digest` (the name may keep a tag).
fn split_tag_or_digest(scope: &str) -> (&str, Option<TagOrDigest<'_>>) {
    if let Some((name, digest)) = scope.split_once('@') {
        return (name, Some(TagOrDigest::Digest(digest)));
    }
    let last_slash = scope.rfind('/').map_or(usize::MAX, |i| i);
    match scope.rfind(':') {
        // A colon before the first slash is the host's port.
        Some(colon) if last_slash != usize::MAX && colon > last_slash => {
            (&scope[..colon], Some(TagOrDigest::Tag(&scope[colon + 1..])))
        }
        _ => (scope, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order_goes_from_reference_to_wildcards() {
        let image = parse_reference("a.b.example.com:5000/ns1/ns2/m:v1").unwrap();
        assert_eq!(
            lookup_order(&image),
            [
                "a.b.example.com:5000/ns1/ns2/m:v1",
                "a.b.example.com:5000/ns1/ns2/m",
                "a.b.example.com:5000/ns1/ns2",
                "a.b.example.com:5000/ns1",
                "a.b.example.com:5000",
                "*.b.example.com",
                "*.example.com",
                "*.com",
            ]
        );
    }

    #[test]
    fn scope_validation() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for ok in [
            "".to_string(),
            "docker.io".into(),
            "docker.io/library".into(),
            "docker.io/openshift".into(),
            "docker.io/library/busybox:latest".into(),
            format!("r.example/ns/m@{digest}"),
            "localhost:5000/m:v1".into(),
            "*.example.com".into(),
        ] {
            assert_eq!(docker_scope_problem(&ok), None, "{ok}");
        }
        for (bad, why) in [
            ("busybox", "registry host"),
            (
                "index.docker.io/library/m",
                "write the host as \"docker.io\"",
            ),
            ("docker.io/busybox:latest", "docker.io/library/busybox"),
            ("r.example/Upper", "lowercase"),
            ("r.example/m:", "empty"),
            ("r.example/m@sha256:abc", "64 hex"),
            ("r.example/m:v1@sha256:abc", "not both"),
            ("example*.com", "wildcard"),
            ("*.example.com:5000", "wildcard"),
            ("*.example.com/ns", "wildcard"),
            ("r.example:99999/m", "port"),
        ] {
            let problem = docker_scope_problem(bad).unwrap_or_default();
            assert!(problem.contains(why), "{bad}: {problem}");
        }
    }
}
