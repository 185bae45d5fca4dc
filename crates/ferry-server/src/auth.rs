//! Who may do what: htpasswd (bcrypt) Basic auth, anonymous pulls, read-only.
//!
//! bcrypt is slow on purpose, so it runs on the blocking pool, a few at a
//! time; a success is remembered for a while (keyed by a hash of user and
//! password, compared in constant time); an unknown user costs the same
//! verification as a known one; and a client that keeps failing is told to
//! wait (429) before any more verifications are spent on it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::RegistryError;

/// Limits on the cost of password checks.
#[derive(Debug, Clone)]
pub struct AuthLimits {
    /// bcrypt verifications running at once (default 2); others wait.
    pub concurrent_verifications: usize,
    /// Failed logins from one client within `failure_window` before it is
    /// refused with 429 (default 10).
    pub max_failures: u32,
    /// The window failures are counted in, and how long a throttled client
    /// waits (default 60 s).
    pub failure_window: Duration,
    /// How long a verified password is remembered (default 5 min).
    pub cache_lifetime: Duration,
    /// Clients whose failures are tracked at once (default 4096).
    pub tracked_clients: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            concurrent_verifications: 2,
            max_failures: 10,
            failure_window: Duration::from_secs(60),
            cache_lifetime: Duration::from_secs(300),
            tracked_clients: 4096,
        }
    }
}

/// Access rules for every request.
pub struct Access {
    users: Option<HashMap<String, String>>,
    anonymous_pull: bool,
    read_only: bool,
    limits: AuthLimits,
    /// Verified against for unknown users, so they cost what known ones do.
    dummy_hash: String,
    verifying: Arc<Semaphore>,
    /// User → hash of the password last verified for them, and until when.
    verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    /// Client → (start of its failure window, failures in it).
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    verifications: Arc<AtomicU64>,
}

impl Default for Access {
    /// Anyone may do anything.
    fn default() -> Self {
        let limits = AuthLimits::default();
        Access {
            users: None,
            anonymous_pull: false,
            read_only: false,
            dummy_hash: String::new(),
            verifying: Arc::new(Semaphore::new(limits.concurrent_verifications)),
            limits,
            verified: Mutex::default(),
            failures: Mutex::default(),
            verifications: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("users", &self.users.as_ref().map(|u| u.len()))
            .field("anonymous_pull", &self.anonymous_pull)
            .field("read_only", &self.read_only)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Why an htpasswd file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not `user:bcrypt-hash`.
    #[error("{path} line {line}: expected user:bcrypt-hash ($2a$, $2b$ or $2y$)")]
    Line {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
    },
    /// The stand-in hash for unknown users could not be made.
    #[error("preparing password checks: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
}

impl Access {
    /// Rules from the server flags, with default [`AuthLimits`].
    pub fn new(
        htpasswd: Option<&Path>,
        anonymous_pull: bool,
        read_only: bool,
    ) -> Result<Access, HtpasswdError> {
        Access::with_limits(htpasswd, anonymous_pull, read_only, AuthLimits::default())
    }

    /// Rules from the server flags and the given limits.
    pub fn with_limits(
        htpasswd: Option<&Path>,
        anonymous_pull: bool,
        read_only: bool,
        limits: AuthLimits,
    ) -> Result<Access, HtpasswdError> {
        let users = htpasswd.map(load_htpasswd).transpose()?;
        let dummy_hash = match &users {
            Some(users) => {
                let cost = users.values().filter_map(|h| bcrypt_cost(h)).max();
                bcrypt::hash("ferry: no such user", cost.unwrap_or(bcrypt::DEFAULT_COST))?
            }
            None => String::new(),
        };
        Ok(Access {
            users,
            anonymous_pull,
            read_only,
            dummy_hash,
            verifying: Arc::new(Semaphore::new(limits.concurrent_verifications.max(1))),
            limits,
            verified: Mutex::default(),
            failures: Mutex::default(),
            verifications: Arc::default(),
        })
    }

    /// Allows or refuses a request from `client`.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        method: &Method,
        client: IpAddr,
    ) -> Result<(), RegistryError> {
        let is_read = matches!(*method, Method::GET | Method::HEAD);
        if self.read_only && !is_read {
            return Err(RegistryError::unsupported("the registry is read-only"));
        }
        let Some(users) = &self.users else {
            return Ok(());
        };
        if is_read && self.anonymous_pull {
            return Ok(());
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return Err(RegistryError::unauthorized());
        };
        if let Some(wait) = self.throttled(client) {
            return Err(RegistryError::too_many_requests().with_retry_after(wait));
        }
        let key = credential_key(&user, &password);
        if self.cached(&user, &key) {
            return Ok(());
        }
        let (hash, known) = match users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let verified = self.verify(password, hash).await? && known;
        if verified {
            self.remember(user, key);
            Ok(())
        } else {
            self.record_failure(client);
            Err(RegistryError::unauthorized())
        }
    }

    /// One bcrypt verification, on the blocking pool, when a slot is free.
    async fn verify(&self, password: String, hash: String) -> Result<bool, RegistryError> {
        let _slot = self
            .verifying
            .acquire()
            .await
            .map_err(RegistryError::internal)?;
        let counter = self.verifications.clone();
        tokio::task::spawn_blocking(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
        .await
        .map_err(RegistryError::internal)
    }

    fn cached(&self, user: &str, key: &[u8; 32]) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified
            .get(user)
            .is_some_and(|(cached, until)| Instant::now() < *until && bool::from(cached.ct_eq(key)))
    }

    /// One entry per user of the htpasswd file: bounded by the file.
    fn remember(&self, user: String, key: [u8; 32]) {
        let until = Instant::now() + self.limits.cache_lifetime;
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user, (key, until));
    }

    /// How long `client` must wait, when it has failed too often.
    fn throttled(&self, client: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (since, count) = failures.get(&client)?;
        let elapsed = since.elapsed();
        (*count >= self.limits.max_failures && elapsed < self.limits.failure_window)
            .then(|| self.limits.failure_window - elapsed)
    }

    fn record_failure(&self, client: IpAddr) {
        let window = self.limits.failure_window;
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(&client) && failures.len() >= self.limits.tracked_clients {
            failures.retain(|_, (since, _)| since.elapsed() < window);
            if failures.len() >= self.limits.tracked_clients
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (since, _))| *since)
                    .map(|(ip, _)| *ip)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(client).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= window {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// bcrypt verifications run so far.
    #[cfg(test)]
    fn verification_count(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

/// The user and password of a Basic Authorization header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = raw.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// What a verified password is remembered by: never the password itself.
fn credential_key(user: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(user.as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

/// The cost of a `$2b$NN$...` hash.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

fn load_htpasswd(path: &Path) -> Result<HashMap<String, String>, HtpasswdError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Io {
        path: display.clone(),
        source,
    })?;
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || HtpasswdError::Line {
            path: display.clone(),
            line: i + 1,
        };
        let (user, hash) = line.split_once(':').ok_or_else(bad)?;
        if user.is_empty() || !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            return Err(bad());
        }
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_parsed_or_refused() {
        assert_eq!(
            basic_credentials(&basic("user", "pa:ss")),
            Some(("user".into(), "pa:ss".into()))
        );
        let mut headers = HeaderMap::new();
        for bad in [
            "Basic ***",
            "Bearer dXNlcjpwYXNz",
            "Basic",
            "Basic dXNlcg==",
        ] {
            headers.insert(header::AUTHORIZATION, bad.parse().unwrap());
            assert_eq!(basic_credentials(&headers), None, "{bad}");
        }
        headers.insert(header::AUTHORIZATION, "basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(
            basic_credentials(&headers),
            Some(("user".into(), "pass".into()))
        );
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OTHER_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    /// An htpasswd file with alice:secret (bcrypt cost 4).
    fn htpasswd() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        (dir, path)
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let encoded = STANDARD.encode(format!("{user}:{password}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        headers
    }

    fn code(result: Result<(), RegistryError>) -> Option<crate::error::ErrorCode> {
        result.unwrap_err().code
    }

    #[tokio::test]
    async fn basic_auth_with_bcrypt_and_anonymous_pull() {
        let (_dir, path) = htpasswd();
        let access = Access::new(Some(&path), true, false).unwrap();
        let none = HeaderMap::new();
        assert!(access.check(&none, &Method::GET, CLIENT).await.is_ok());
        assert!(access.check(&none, &Method::PUT, CLIENT).await.is_err());
        let right = basic("alice", "secret");
        assert!(access.check(&right, &Method::PUT, CLIENT).await.is_ok());
        assert_eq!(
            code(
                access
                    .check(&basic("alice", "wrong"), &Method::PUT, CLIENT)
                    .await
            ),
            Some(crate::error::ErrorCode::Unauthorized)
        );
        std::fs::write(&path, "bob:plaintext\n").unwrap();
        assert!(Access::new(Some(&path), false, false).is_err());
    }

    #[tokio::test]
    async fn unknown_and_known_users_cost_one_verification_each() {
        let (_dir, path) = htpasswd();
        let access = Access::new(Some(&path), false, false).unwrap();
        let before = access.verification_count();
        let unknown = access
            .check(&basic("mallory", "secret"), &Method::PUT, CLIENT)
            .await;
        assert_eq!(code(unknown), Some(crate::error::ErrorCode::Unauthorized));
        assert_eq!(access.verification_count(), before + 1);
        let wrong = access
            .check(&basic("alice", "wrong"), &Method::PUT, CLIENT)
            .await;
        assert_eq!(code(wrong), Some(crate::error::ErrorCode::Unauthorized));
        assert_eq!(access.verification_count(), before + 2);
        // A right password is verified once, then remembered.
        for _ in 0..3 {
            access
                .check(&basic("alice", "secret"), &Method::PUT, CLIENT)
                .await
                .unwrap();
        }
        assert_eq!(access.verification_count(), before + 3);
    }

    #[tokio::test]
    async fn a_remembered_password_lets_no_other_password_in() {
        let (_dir, path) = htpasswd();
        let access = Access::new(Some(&path), false, false).unwrap();
        access
            .check(&basic("alice", "secret"), &Method::PUT, CLIENT)
            .await
            .unwrap();
        let verified = access.verification_count();
        for wrong in ["wrong", "secret ", "", "SECRET"] {
            let result = access
                .check(&basic("alice", wrong), &Method::PUT, CLIENT)
                .await;
            assert_eq!(
                code(result),
                Some(crate::error::ErrorCode::Unauthorized),
                "{wrong:?}"
            );
        }
        // Each wrong password was verified, none answered from the cache.
        assert_eq!(access.verification_count(), verified + 4);
        // A remembered success expires.
        let limits = AuthLimits {
            cache_lifetime: Duration::ZERO,
            ..AuthLimits::default()
        };
        let access = Access::with_limits(Some(&path), false, false, limits).unwrap();
        for _ in 0..2 {
            access
                .check(&basic("alice", "secret"), &Method::PUT, CLIENT)
                .await
                .unwrap();
        }
        assert_eq!(access.verification_count(), 2);
    }

    #[tokio::test]
    async fn repeated_failures_from_one_client_are_throttled() {
        let (_dir, path) = htpasswd();
        let limits = AuthLimits {
            max_failures: 3,
            ..AuthLimits::default()
        };
        let access = Access::with_limits(Some(&path), false, false, limits).unwrap();
        let wrong = basic("alice", "wrong");
        for _ in 0..3 {
            let result = access.check(&wrong, &Method::PUT, CLIENT).await;
            assert_eq!(code(result), Some(crate::error::ErrorCode::Unauthorized));
        }
        let verified = access.verification_count();
        // Now refused before any verification, right password or not.
        for headers in [&wrong, &basic("alice", "secret")] {
            let error = access
                .check(headers, &Method::PUT, CLIENT)
                .await
                .unwrap_err();
            assert_eq!(error.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
            assert!(error.retry_after.is_some_and(|d| d > Duration::ZERO));
        }
        assert_eq!(access.verification_count(), verified);
        // Another client is not affected.
        access
            .check(&basic("alice", "secret"), &Method::PUT, OTHER_CLIENT)
            .await
            .unwrap();
    }

    /// On a single-threaded runtime, other tasks keep running while a
    /// password is verified: bcrypt is not on the async thread.
    #[tokio::test(flavor = "current_thread")]
    async fn verification_leaves_the_async_thread_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 10).unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        let access = Arc::new(Access::new(Some(&path), false, false).unwrap());
        let checking = {
            let access = access.clone();
            tokio::spawn(async move {
                access
                    .check(&basic("alice", "wrong"), &Method::PUT, CLIENT)
                    .await
            })
        };
        let mut turns = 0u64;
        while !checking.is_finished() {
            tokio::task::yield_now().await;
            turns += 1;
        }
        assert!(checking.await.unwrap().is_err());
        assert_eq!(access.verification_count(), 1);
        // Inline bcrypt would finish within the first turn.
        assert!(turns > 2, "the runtime was blocked while verifying");
    }

    #[test]
    fn the_failure_table_stays_bounded() {
        let limits = AuthLimits {
            tracked_clients: 8,
            ..AuthLimits::default()
        };
        let access = Access::with_limits(None, false, false, limits).unwrap();
        for i in 0..100u32 {
            access.record_failure(IpAddr::V4(std::net::Ipv4Addr::from(i)));
        }
        assert!(access.failures.lock().unwrap().len() <= 8);
    }

    #[tokio::test]
    async fn read_only_refuses_writes() {
        let access = Access::new(None, false, true).unwrap();
        let none = HeaderMap::new();
        assert!(access.check(&none, &Method::GET, CLIENT).await.is_ok());
        assert_eq!(
            code(access.check(&none, &Method::DELETE, CLIENT).await),
            Some(crate::error::ErrorCode::Unsupported)
        );
    }
}
