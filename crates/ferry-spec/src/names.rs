//! The name, tag and reference grammar of the distribution spec, shared by
//! the client (references users type) and the registry (names in URLs).
//!
//! Every check here says why input is refused, so a user who typed
//! `MiniLM` or `m:` learns which rule of the grammar it broke.

use oci_spec::distribution::Reference;

/// The longest repository name the distribution spec allows.
pub const MAX_REPOSITORY_LEN: usize = 255;
/// The longest tag the distribution spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// True for a repository name per the distribution spec:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// at most 255 characters.
pub fn is_valid_repository(name: &str) -> bool {
    repository_problem(name).is_none()
}

/// Why `name` is not a repository name, or `None` when it is one.
pub fn repository_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the repository name is empty".into());
    }
    if name.len() > MAX_REPOSITORY_LEN {
        return Some(format!(
            "the repository name is {} characters long; at most {MAX_REPOSITORY_LEN} are allowed",
            name.len()
        ));
    }
    name.split('/').find_map(component_problem)
}

fn component_problem(component: &str) -> Option<String> {
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return Some(
            "a repository name has an empty path component (`//`, or `/` at an end)".into(),
        );
    }
    if let Some(upper) = component.chars().find(char::is_ascii_uppercase) {
        return Some(format!(
            "repository names are lowercase: {component:?} contains {upper:?}"
        ));
    }
    if let Some(bad) = component
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "{bad:?} is not allowed in a repository name ({component:?}): use lowercase letters, digits and the separators . _ __ -"
        ));
    }
    if !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return Some(format!(
            "a repository path component starts and ends with a letter or digit: {component:?}"
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !ok {
            return Some(format!(
                "separator {separator:?} in {component:?} is not one of . _ __ or a run of -"
            ));
        }
    }
    None
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// True for a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    tag_problem(tag).is_none()
}

/// Why `tag` is not a tag, or `None` when it is one.
pub fn tag_problem(tag: &str) -> Option<String> {
    let bytes = tag.as_bytes();
    if bytes.is_empty() {
        return Some("the tag after ':' is empty".into());
    }
    if bytes.len() > MAX_TAG_LEN {
        return Some(format!(
            "the tag is {} characters long; at most {MAX_TAG_LEN} are allowed",
            bytes.len()
        ));
    }
    if !(bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_') {
        return Some(format!("a tag starts with a letter, digit or '_': {tag:?}"));
    }
    tag.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .map(|c| format!("{c:?} is not allowed in a tag ({tag:?}): use letters, digits, . _ -"))
}

/// Why `digest` (the part after `@`) is not a digest, or `None`.
pub fn digest_problem(digest: &str) -> Option<String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Some(format!(
            "a digest is ALGORITHM:HEX (sha256:<64 hex>); {digest:?} has no ':'"
        ));
    };
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Some(format!(
                "digest algorithm {algorithm:?} is not supported (sha256, sha384, sha512)"
            ));
        }
    };
    if hex.len() != expected {
        return Some(format!(
            "a {algorithm} digest has {expected} hex characters; {:?} has {}",
            hex,
            hex.len()
        ));
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Some(format!("a digest's hex is lowercase 0-9a-f: {hex:?}"));
    }
    None
}

/// A reference a user typed that the grammar refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// What was typed.
    pub input: String,
    /// Which rule it broke.
    pub reason: String,
}

/// Parses a reference (`[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`), normalized as
/// Docker does (`m` is `docker.io/library/m:latest`). An error names the rule
/// of the grammar the input breaks.
pub fn parse_reference(input: &str) -> Result<Reference, ReferenceError> {
    // Split and checked by hand rather than by oci-spec's parser: its
    // grammar regex takes tens of milliseconds to build, which `ferry mount`
    // of a short name would pay on every call.
    let parts = split_reference(input).map_err(|reason| ReferenceError {
        input: input.to_string(),
        reason,
    })?;
    // Docker's normalization: no host is Docker Hub, whose one-component
    // names live under `library/`; no tag and no digest is `latest`.
    let registry = match parts.host {
        None | Some("index.docker.io") => DOCKER_HUB,
        Some(host) => host,
    };
    let repository = if registry == DOCKER_HUB && !parts.repository.contains('/') {
        format!("library/{}", parts.repository)
    } else {
        parts.repository.to_string()
    };
    // `library/` can push a name past the limit only after normalization.
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(ReferenceError {
            input: input.to_string(),
            reason: format!(
                "the repository name {repository:?} is {} characters long; at most {MAX_REPOSITORY_LEN} are allowed",
                repository.len()
            ),
        });
    }
    let (registry, tag) = (registry.to_string(), parts.tag.map(str::to_string));
    Ok(match (tag, parts.digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag, digest.to_string())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.to_string()),
        (tag, None) => Reference::with_tag(registry, repository, tag.unwrap_or("latest".into())),
    })
}

/// Docker Hub, the registry of a reference without a host.
const DOCKER_HUB: &str = "docker.io";

/// A reference split by the grammar, every part valid.
struct ReferenceParts<'a> {
    host: Option<&'a str>,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Splits `input` the way the grammar does: `@` starts the digest, a `:`
/// after the last `/` starts the tag, and a first component with `.` or `:`
/// (or `localhost`) is a registry host. An error says which rule broke.
fn split_reference(input: &str) -> Result<ReferenceParts<'_>, String> {
    if input.is_empty() {
        return Err("the reference is empty".into());
    }
    if let Some((scheme, _)) = input.split_once("://") {
        return Err(format!(
            "a reference has no scheme: drop {:?}",
            format!("{scheme}://")
        ));
    }
    if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{c:?} is not allowed in a reference"));
    }
    let (name_and_tag, digest) = match input.split_once('@') {
        Some((left, digest)) => (left, Some(digest)),
        None => (input, None),
    };
    if let Some(reason) = digest.and_then(digest_problem) {
        return Err(reason);
    }
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if let Some(reason) = tag.and_then(tag_problem) {
        return Err(reason);
    }
    let (host, repository) = match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            if let Some(reason) = host_problem(host) {
                return Err(reason);
            }
            (Some(host), rest)
        }
        _ => (None, name),
    };
    if let Some(reason) = repository_problem(repository) {
        return Err(reason);
    }
    Ok(ReferenceParts {
        host,
        repository,
        tag,
        digest,
    })
}

fn host_problem(host: &str) -> Option<String> {
    let (hostname, port) = match host.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.parse::<u16>().is_err())
    {
        return Some(format!(
            "registry port {port:?} is not a number from 0 to 65535"
        ));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !hostname.split('.').all(label_ok) {
        return Some(format!(
            "registry host {hostname:?} is not a host name (letters, digits, '-', dot-separated)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_grammar() {
        for ok in ["a", "library/ubuntu", "a-b/c__d/e.f", "a--b", "x0/y1"] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "UP/x", "a/", "/a", "a//b", "a/../b", "a_", "a___b", "a.-b", "a b",
        ] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
        assert!(!is_valid_repository(&"a".repeat(256)));
    }

    #[test]
    fn tag_grammar() {
        assert!(is_valid_tag("v1.0_rc-2"));
        assert!(is_valid_tag("_x"));
        assert!(is_valid_tag(&"a".repeat(128)));
        for bad in ["", ".x", "-x", "a/b", "a+b", "ä"] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
        assert!(!is_valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn references_normalize_like_docker() {
        let r = parse_reference("m").unwrap();
        assert_eq!(r.whole(), "docker.io/library/m:latest");
        let r = parse_reference("localhost:5000/org/m:v1").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("localhost:5000", "org/m", Some("v1"))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = parse_reference(&format!("reg.example/m@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
    }

    #[test]
    fn normalization_matches_oci_spec() {
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let inputs = [
            "m".to_string(),
            "m:v1".into(),
            "org/m".into(),
            "a/b/c:t".into(),
            "index.docker.io/m".into(),
            "docker.io/org/m:v1".into(),
            "localhost/m".into(),
            "localhost:5000/org/m:v1.0_rc-1".into(),
            "reg.example/m".into(),
            "127.0.0.1:5000/a-b/c__d/e.f:tag".into(),
            format!("m@{digest}"),
            format!("reg.example:443/org/m:v2@{digest}"),
        ];
        for input in inputs {
            let ours = parse_reference(&input).unwrap();
            let theirs: Reference = input.parse().unwrap();
            assert_eq!(ours.whole(), theirs.whole(), "{input}");
            assert_eq!(
                (
                    ours.registry(),
                    ours.repository(),
                    ours.tag(),
                    ours.digest()
                ),
                (
                    theirs.registry(),
                    theirs.repository(),
                    theirs.tag(),
                    theirs.digest()
                ),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_references_say_which_rule_they_break() {
        let reason = |input: &str| parse_reference(input).unwrap_err().reason;
        assert!(
            reason("MiniLM").contains("lowercase"),
            "{}",
            reason("MiniLM")
        );
        assert!(reason("m:").contains("tag after ':' is empty"));
        assert!(reason("m@sha256:abc").contains("64 hex characters"));
        assert!(reason(&format!("m:{}", "t".repeat(130))).contains("130 characters"));
        assert!(reason("http://reg.example/m").contains("no scheme"));
        assert!(reason("reg.example:99999/m").contains("port"));
        assert!(reason("m@md5:abc").contains("not supported"));
        assert!(reason("").contains("empty"));
        // 251 characters become 259 under `library/`.
        let long = "a".repeat(251);
        assert!(
            reason(&long).contains("259 characters"),
            "{}",
            reason(&long)
        );
        assert!(long.parse::<Reference>().is_err(), "oci-spec agrees");
        assert!(reason("a//b").contains("empty path component"));
        let error = parse_reference("MiniLM").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid reference \"MiniLM\": ")
        );
    }
}
