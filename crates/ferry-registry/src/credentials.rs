//! Credentials from Docker's `config.json`, shared with docker, oras and modctl.
//!
//! Lookup order for a registry: `credHelpers[registry]`, then `credsStore`,
//! then `auths`: `identitytoken`, else `auth` (base64 `user:password`), else
//! `username` and `password` (as Docker reads them).

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::error::{ClientError, ConfigFileError, HelperError, Result};

/// What a credential helper prints when it holds nothing for a server (the
/// helper protocol's own signal, which Docker checks the same way).
const CREDENTIALS_NOT_FOUND: &str = "credentials not found in native keychain";

/// A secret that never appears in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What ferry authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// User name and password (or a registry token used as password).
    Basic {
        /// User.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken`).
    IdentityToken(Secret),
}

/// Docker's client configuration file.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    document: Map<String, Value>,
}

/// The keys a registry may be stored under in `auths`.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.push("https://index.docker.io/v1/".to_string());
    }
    keys
}

/// The key ferry writes for a registry (Docker's legacy key for Docker Hub).
fn canonical_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".into()
        }
        other => other.to_string(),
    }
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir).join("config.json");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        PathBuf::from(home).join(".docker/config.json")
    }

    /// Loads the file at the default path; a missing file is empty.
    pub fn load_default() -> Result<DockerConfig> {
        Self::load(Self::default_path())
    }

    /// Credentials handed over in memory (a Kubernetes secret of type
    /// `kubernetes.io/dockerconfigjson`, or the older `dockercfg` whose
    /// document is the `auths` map itself), named `origin` in errors. Only
    /// `auths` is kept: `credsStore` and `credHelpers` would run programs
    /// the secret names.
    pub fn from_secret(origin: &str, bytes: &[u8]) -> Result<DockerConfig> {
        let path = PathBuf::from(origin);
        let document = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(config_error(path, ConfigFileError::NotAnObject)),
            Err(e) => return Err(config_error(path, ConfigFileError::Json(e))),
        };
        let auths = match document.get("auths") {
            Some(Value::Object(auths)) => auths.clone(),
            Some(_) => return Err(config_error(path, ConfigFileError::NotAnObject)),
            None => document,
        };
        let mut kept = Map::new();
        kept.insert("auths".to_string(), Value::Object(auths));
        Ok(DockerConfig {
            path,
            document: kept,
        })
    }

    /// One username and password for `registry`, in memory.
    pub fn with_login(registry: &str, username: &str, password: &Secret) -> DockerConfig {
        let mut config = DockerConfig {
            path: PathBuf::from("(request secrets)"),
            document: Map::new(),
        };
        config.insert_auth(canonical_key(registry), username, password);
        config
    }

    /// Loads a config file; a missing file is empty.
    pub fn load(path: PathBuf) -> Result<DockerConfig> {
        let document = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(config_error(path, ConfigFileError::NotAnObject)),
                Err(e) => return Err(config_error(path, ConfigFileError::Json(e))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(config_error(path, ConfigFileError::Read(e))),
        };
        Ok(DockerConfig { path, document })
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let helpers = self.document.get("credHelpers").and_then(Value::as_object);
        keys_for(registry)
            .iter()
            .find_map(|k| helpers.and_then(|h| h.get(k)).and_then(Value::as_str))
            .or_else(|| self.document.get("credsStore").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The credential for `registry`, if any is configured.
    pub fn credential_for(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(helper) = self.helper_for(registry) {
            return helper_get(&helper, &canonical_key(registry));
        }
        let Some(auths) = self.document.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let Some(entry) = keys_for(registry).iter().find_map(|k| auths.get(k)) else {
            return Ok(None);
        };
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credential::IdentityToken(Secret::new(token))));
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let invalid = || {
                config_error(
                    self.path.clone(),
                    ConfigFileError::InvalidAuth {
                        registry: registry.to_string(),
                    },
                )
            };
            let decoded = STANDARD
                .decode(auth)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(invalid)?;
            let (username, password) = decoded.split_once(':').ok_or_else(invalid)?;
            return Ok(Some(Credential::Basic {
                username: username.to_string(),
                password: Secret::new(password),
            }));
        }
        // Docker also reads the two fields written out.
        let field = |name| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        if let (Some(username), Some(password)) = (field("username"), field("password")) {
            return Ok(Some(Credential::Basic {
                username: username.to_string(),
                password: Secret::new(password),
            }));
        }
        Ok(None)
    }

    /// Records a login (through the credential helper when one is configured).
    pub fn store_login(&mut self, registry: &str, username: &str, password: &Secret) -> Result<()> {
        let key = canonical_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            let input = serde_json::json!({"ServerURL": key, "Username": username, "Secret": password.expose()});
            return run_helper(&helper, "store", &input.to_string()).map(|_| ());
        }
        self.insert_auth(key, username, password);
        self.save()
    }

    /// Sets `auths[key]` to Docker's `auth` field (base64 of `user:password`).
    fn insert_auth(&mut self, key: String, username: &str, password: &Secret) {
        let auth = STANDARD.encode(format!("{username}:{}", password.expose()));
        let auths = self
            .document
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(auths) = auths {
            auths.insert(key, serde_json::json!({ "auth": auth }));
        }
    }

    /// Records a login without saving it (to check credentials first).
    pub fn store_login_in_memory(&mut self, registry: &str, username: &str, password: &Secret) {
        self.insert_auth(canonical_key(registry), username, password);
        self.document.remove("credsStore");
        self.document.remove("credHelpers");
    }

    /// Forgets a login; false when there was none.
    pub fn remove_login(&mut self, registry: &str) -> Result<bool> {
        if let Some(helper) = self.helper_for(registry) {
            let erased = run_helper(&helper, "erase", &canonical_key(registry))?;
            return Ok(matches!(erased, HelperRun::Output(_)));
        }
        let mut removed = false;
        if let Some(Value::Object(auths)) = self.document.get_mut("auths") {
            for key in keys_for(registry) {
                removed |= auths.remove(&key).is_some();
            }
        }
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    /// Replaces the file durably, readable by its owner only.
    fn save(&self) -> Result<()> {
        let write_error = |e| config_error(self.path.clone(), ConfigFileError::Write(e));
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(write_error)?;
        let bytes = serde_json::to_vec_pretty(&Value::Object(self.document.clone()))
            .map_err(|e| config_error(self.path.clone(), ConfigFileError::Json(e)))?;
        ferry_spec::durable::write_file(
            &self.path,
            &bytes,
            None,
            ferry_spec::durable::PRIVATE_FILE_MODE,
        )
        .map_err(write_error)
    }
}

fn config_error(path: PathBuf, source: ConfigFileError) -> ClientError {
    ClientError::DockerConfig { path, source }
}

/// How a helper run ended.
enum HelperRun {
    /// It succeeded; its standard output.
    Output(String),
    /// It holds nothing for the server.
    NotFound,
}

fn run_helper(helper: &str, action: &'static str, input: &str) -> Result<HelperRun> {
    let failed = |source| ClientError::CredentialHelper {
        helper: helper.to_string(),
        action,
        source,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(HelperError::Run(e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| failed(HelperError::Run(e)))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(HelperError::Run(e)))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(HelperRun::Output(stdout));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stdout.trim() == CREDENTIALS_NOT_FOUND || stderr.trim() == CREDENTIALS_NOT_FOUND {
        return Ok(HelperRun::NotFound);
    }
    let said = stderr
        .trim()
        .lines()
        .next()
        .unwrap_or(stdout.trim())
        .to_string();
    Err(failed(HelperError::Failed(said)))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>> {
    let stdout = match run_helper(helper, "get", server)? {
        HelperRun::Output(out) => out,
        HelperRun::NotFound => return Ok(None),
    };
    let value: Value =
        serde_json::from_str(&stdout).map_err(|e| ClientError::CredentialHelper {
            helper: helper.to_string(),
            action: "get",
            source: HelperError::Output(e),
        })?;
    let username = value.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = value.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    if username == "<token>" {
        return Ok(Some(Credential::IdentityToken(Secret::new(secret))));
    }
    Ok(Some(Credential::Basic {
        username: username.to_string(),
        password: Secret::new(secret),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Credential::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn login_round_trip_through_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"other.io":{"auth":"eDp5"}},"psFormat":"keep"}"#,
        )
        .unwrap();
        let mut config = DockerConfig::load(path.clone()).unwrap();
        config
            .store_login("localhost:5000", "alice", &Secret::new("pw"))
            .unwrap();
        let again = DockerConfig::load(path.clone()).unwrap();
        assert_eq!(
            again.credential_for("localhost:5000").unwrap(),
            Some(Credential::Basic {
                username: "alice".into(),
                password: Secret::new("pw")
            })
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("psFormat"), "unrelated settings are kept");
        assert!(
            text.contains("YWxpY2U6cHc="),
            "auth is base64 user:password as docker writes it"
        );
        let mut config = again;
        assert!(config.remove_login("localhost:5000").unwrap());
        assert_eq!(
            DockerConfig::load(path)
                .unwrap()
                .credential_for("localhost:5000")
                .unwrap(),
            None
        );
    }

    #[test]
    fn username_and_password_fields_are_read_as_docker_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"r.io":{"username":"bob","password":"pw:x"},"half.io":{"username":"bob"},"both.io":{"auth":"YTpi","username":"c","password":"d"}}}"#,
        )
        .unwrap();
        let config = DockerConfig::load(path).unwrap();
        assert_eq!(
            config.credential_for("r.io").unwrap(),
            Some(Credential::Basic {
                username: "bob".into(),
                password: Secret::new("pw:x")
            })
        );
        assert_eq!(config.credential_for("half.io").unwrap(), None);
        assert_eq!(
            config.credential_for("both.io").unwrap(),
            Some(Credential::Basic {
                username: "a".into(),
                password: Secret::new("b")
            }),
            "auth wins over the separate fields, as in Docker"
        );
    }

    #[test]
    fn broken_configs_say_which_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(matches!(
            DockerConfig::load(path.clone()),
            Err(ClientError::DockerConfig {
                source: ConfigFileError::NotAnObject,
                ..
            })
        ));
        std::fs::write(&path, r#"{"auths":{"r.io":{"auth":"!!"}}}"#).unwrap();
        let error = DockerConfig::load(path.clone())
            .unwrap()
            .credential_for("r.io")
            .unwrap_err();
        assert!(error.to_string().contains("config.json"), "{error}");
        let cause = std::error::Error::source(&error).map(|s| s.to_string());
        assert!(cause.is_some_and(|c| c.contains("r.io")), "{error:?}");
    }

    #[test]
    fn saved_logins_are_private() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker/config.json");
        let mut config = DockerConfig::load(path.clone()).unwrap();
        config.store_login("r.io", "u", &Secret::new("p")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.json"], "no temporary file is left");
    }

    #[test]
    fn identity_tokens_and_docker_hub_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"r.io":{"identitytoken":"tok"}}}"#,
        )
        .unwrap();
        let config = DockerConfig::load(path).unwrap();
        assert!(matches!(
            config.credential_for("docker.io").unwrap(),
            Some(Credential::Basic { .. })
        ));
        assert_eq!(
            config.credential_for("r.io").unwrap(),
            Some(Credential::IdentityToken(Secret::new("tok")))
        );
    }
}
