//! Per-registry connection settings: scheme, TLS, mirrors.
//!
//! From `~/.config/ferry/registries.toml` (or `$XDG_CONFIG_HOME/ferry/`):
//!
//! ```toml
//! [[registry]]
//! location = "docker.io"              # a host, host:port, or host/namespace prefix
//! mirrors = ["mirror.internal:5000"]  # tried in order for every read, then the origin
//! plain-http = false
//! insecure = false                    # TLS without certificate verification
//! ca-file = "/etc/ssl/private-ca.pem"
//! ```
//!
//! Loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) are tried over
//! HTTPS first and fall back to plain HTTP, as Docker treats them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ClientError, ConfigFileError, Result};

/// One `[[registry]]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistryEntry {
    /// Host (with optional port) or `host/namespace` prefix this entry covers.
    pub location: String,
    /// Mirrors tried in order before the origin for every read (never for writes).
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Use HTTP instead of HTTPS.
    #[serde(default)]
    pub plain_http: bool,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure: bool,
    /// Extra CA certificate (PEM).
    pub ca_file: Option<PathBuf>,
}

/// The whole registries file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Entries.
    #[serde(default)]
    pub registry: Vec<RegistryEntry>,
}

impl RegistriesConfig {
    /// `$XDG_CONFIG_HOME/ferry/registries.toml`, else `~/.config/ferry/registries.toml`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir).join("ferry/registries.toml");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        PathBuf::from(home).join(".config/ferry/registries.toml")
    }

    /// Loads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<RegistriesConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ClientError::RegistriesConfig {
                    path: path.to_path_buf(),
                    source: ConfigFileError::Read(e),
                });
            }
        };
        toml::from_str(&text).map_err(|e| ClientError::RegistriesConfig {
            path: path.to_path_buf(),
            source: ConfigFileError::Toml(e),
        })
    }

    /// The most specific entry for `registry/repository`.
    pub fn entry_for(&self, registry: &str, repository: &str) -> Option<&RegistryEntry> {
        let full = format!("{registry}/{repository}");
        self.registry
            .iter()
            .filter(|e| {
                e.location == registry
                    || full == e.location
                    || full.starts_with(&format!("{}/", e.location.trim_end_matches('/')))
            })
            .max_by_key(|e| e.location.len())
    }
}

/// True for `localhost`, a loopback IP address (`127.0.0.0/8`, `::1`) and
/// `[::1]`, with or without a port. Addresses are parsed, never matched by
/// prefix: `127.evil.example` is a name that resolves anywhere.
pub fn is_loopback(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback(); // a bare address, `::1` included
    }
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, "")) => (ip, None),
            Some((ip, port)) => match port.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if host.starts_with('[') {
        return name.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host that serves a registry's API (`docker.io` is served elsewhere).
pub fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(is_loopback("127.0.0.2"), "all of 127.0.0.0/8");
        assert!(is_loopback("127.0.0.2:5000"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("LocalHost:5000"));
    }

    #[test]
    fn names_that_only_look_like_loopback_are_not() {
        for host in [
            "127.evil.example",
            "127.evil.example:5000",
            "127.0.0.1.nip.io",
            "127.0.0.1.nip.io:5000",
            "localhost.evil",
            "localhost.evil:5000",
            "evil-localhost",
            "[::1].evil",
            "[127.0.0.1]:5000",
            "127.0.0.1:",
            "127.0.0.1:x",
            "[::2]:5000",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn a_bad_file_names_itself_and_keeps_the_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registries.toml");
        std::fs::write(&path, "[[registry]]\nlocation = 'a'\nmirror = ['typo']\n").unwrap();
        let error = RegistriesConfig::load(&path).unwrap_err();
        assert!(
            matches!(
                &error,
                ClientError::RegistriesConfig {
                    source: ConfigFileError::Toml(_),
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("registries.toml"), "{error}");
        let parse = std::error::Error::source(&error)
            .and_then(std::error::Error::source)
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            parse.contains("mirror"),
            "the TOML error says what: {parse}"
        );
        assert!(RegistriesConfig::load(&dir.path().join("missing.toml")).is_ok());
    }

    #[test]
    fn most_specific_entry_wins() {
        let config: RegistriesConfig = toml::from_str(
            r#"
            [[registry]]
            location = "docker.io"
            mirrors = ["m1:5000", "m2:5000"]
            [[registry]]
            location = "docker.io/library"
            plain-http = true
            "#,
        )
        .unwrap();
        assert_eq!(
            config
                .entry_for("docker.io", "org/x")
                .unwrap()
                .mirrors
                .len(),
            2
        );
        assert!(
            config
                .entry_for("docker.io", "library/ubuntu")
                .unwrap()
                .plain_http
        );
        assert!(config.entry_for("quay.io", "x").is_none());
        assert!(toml::from_str::<RegistriesConfig>("[[registry]]\nlocation='a'\nbogus=1").is_err());
    }
}
