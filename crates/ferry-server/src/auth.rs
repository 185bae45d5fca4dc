//! Who may do what: htpasswd (bcrypt) Basic auth, anonymous pulls, read-only.
//!
//! bcrypt is slow on purpose, so it runs on the blocking pool, a few at a
//! time (a slot is held exactly while bcrypt runs, even when the request is
//! gone); a success is remembered for a while (keyed by a hash of user and
//! password, compared in constant time), and requests with the same
//! credentials arriving while they are verified wait for that outcome
//! rather than verify again; every attempt costs the work of
//! the file's highest bcrypt cost, so timing tells no user name; and an
//! attempt counts against its client from the moment it starts, so a
//! client with `max_failures` failed or running attempts is told to wait
//! (429) before any more verifications are spent on it.

use std::collections::{BTreeMap, HashMap};
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
use tokio::sync::{Semaphore, watch};

use crate::error::RegistryError;

/// Limits on the cost of password checks.
#[derive(Debug, Clone)]
pub struct AuthLimits {
    /// bcrypt verifications running at once (default 2); others wait.
    pub concurrent_verifications: usize,
    /// Failed or still running logins from one client within
    /// `failure_window` before it is refused with 429 (default 10).
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

/// The password hashes of an htpasswd file, and the stand-in hashes that
/// make every attempt cost the same bcrypt work.
struct Users {
    /// User → bcrypt hash.
    hashes: HashMap<String, String>,
    /// The highest cost in the file: what every attempt costs.
    max_cost: u32,
    /// Cost → a hash of a fixed password at that cost, for every cost from
    /// the file's lowest to its highest.
    dummies: BTreeMap<u32, String>,
}

impl Users {
    fn load(path: &Path) -> Result<Users, HtpasswdError> {
        let hashes = load_htpasswd(path)?;
        let costs = || hashes.values().filter_map(|h| bcrypt_cost(h));
        let max_cost = costs().max().unwrap_or(bcrypt::DEFAULT_COST);
        let min_cost = costs().min().unwrap_or(max_cost);
        let dummies = (min_cost..=max_cost)
            .map(|cost| Ok((cost, bcrypt::hash("ferry: no such user", cost)?)))
            .collect::<Result<_, bcrypt::BcryptError>>()?;
        Ok(Users {
            hashes,
            max_cost,
            dummies,
        })
    }

    /// The hashes to verify a password against, the first the one that
    /// decides; together they cost 2^max_cost bcrypt rounds whoever `user`
    /// is: a known user of cost c also pays dummies of costs c..max, which
    /// add up to 2^max - 2^c; an unknown one pays the max-cost dummy.
    fn plan(&self, user: &str) -> (Vec<String>, bool) {
        let max_dummy = || {
            self.dummies
                .get(&self.max_cost)
                .cloned()
                .unwrap_or_default()
        };
        let Some(hash) = self.hashes.get(user) else {
            return (vec![max_dummy()], false);
        };
        let mut hashes = vec![hash.clone()];
        match bcrypt_cost(hash) {
            Some(cost) => hashes.extend(
                self.dummies
                    .range(cost..self.max_cost)
                    .map(|(_, h)| h.clone()),
            ),
            // Not a hash bcrypt can use: it fails at once, so pay it all.
            None => hashes.push(max_dummy()),
        }
        (hashes, true)
    }
}

/// Per client: failures in the current window, and attempts running.
struct ClientAttempts {
    since: Instant,
    failures: u32,
    running: u32,
}

/// Attempts per client, shared with the verifications running for them.
struct Throttle {
    max_attempts: u32,
    window: Duration,
    tracked_clients: usize,
    clients: Mutex<HashMap<IpAddr, ClientAttempts>>,
}

impl Throttle {
    fn new(limits: &AuthLimits) -> Throttle {
        Throttle {
            max_attempts: limits.max_failures.max(1),
            window: limits.failure_window,
            tracked_clients: limits.tracked_clients.max(1),
            clients: Mutex::default(),
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, ClientAttempts>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an attempt by `client` as running, or says how long it must
    /// wait when its failures and running attempts reach the limit:
    /// counted before verifying, so concurrent attempts cannot all pass.
    fn begin(self: &Arc<Self>, client: IpAddr) -> Result<Attempt, Duration> {
        let mut clients = self.clients();
        if !clients.contains_key(&client) && clients.len() >= self.tracked_clients {
            self.make_room(&mut clients);
        }
        let now = Instant::now();
        let entry = clients.entry(client).or_insert(ClientAttempts {
            since: now,
            failures: 0,
            running: 0,
        });
        let elapsed = now.saturating_duration_since(entry.since);
        if elapsed >= self.window {
            entry.since = now;
            entry.failures = 0;
        }
        if entry.failures.saturating_add(entry.running) >= self.max_attempts {
            let wait = self
                .window
                .saturating_sub(now.saturating_duration_since(entry.since));
            return Err(wait.max(Duration::from_secs(1)));
        }
        entry.running += 1;
        Ok(Attempt {
            throttle: self.clone(),
            client,
            finished: false,
        })
    }

    /// Forgets clients whose window is over and that have nothing running;
    /// when that is not enough, the one whose window started first.
    fn make_room(&self, clients: &mut HashMap<IpAddr, ClientAttempts>) {
        clients.retain(|_, c| c.running > 0 || c.since.elapsed() < self.window);
        if clients.len() >= self.tracked_clients
            && let Some(oldest) = clients
                .iter()
                .min_by_key(|(_, c)| (c.running > 0, c.since))
                .map(|(ip, _)| *ip)
        {
            clients.remove(&oldest);
        }
    }

    fn finish(&self, client: IpAddr, failed: bool) {
        let mut clients = self.clients();
        let entry = clients.entry(client).or_insert(ClientAttempts {
            since: Instant::now(),
            failures: 0,
            running: 0,
        });
        entry.running = entry.running.saturating_sub(1);
        if failed {
            entry.failures = entry.failures.saturating_add(1);
        }
        if entry.running == 0 && entry.failures == 0 {
            clients.remove(&client);
        }
    }
}

/// One running attempt of a client; ends as a success or a failure, or,
/// dropped before any verification ran, as neither.
struct Attempt {
    throttle: Arc<Throttle>,
    client: IpAddr,
    finished: bool,
}

impl Attempt {
    fn end(mut self, verified: bool) {
        self.finished = true;
        self.throttle.finish(self.client, !verified);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.finished {
            self.throttle.finish(self.client, false);
        }
    }
}

/// Successes remembered: user → hash of the password last verified for
/// them, and until when. One entry per user of the htpasswd file.
struct CredentialCache {
    entries: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    lifetime: Duration,
}

impl CredentialCache {
    fn holds(&self, user: &str, key: &[u8; 32]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(user)
            .is_some_and(|(cached, until)| Instant::now() < *until && bool::from(cached.ct_eq(key)))
    }

    fn remember(&self, user: String, key: [u8; 32]) {
        let until = Instant::now() + self.lifetime;
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user, (key, until));
    }
}

/// Verifications running, by credential key, with where their outcome
/// will appear.
type Pending = Mutex<HashMap<[u8; 32], watch::Receiver<Option<bool>>>>;

/// A verification other requests with the same credentials wait for; its
/// entry goes when it is dropped (a request dropped before bcrypt started
/// leaves its followers to try again).
struct PendingVerification {
    pending: Arc<Pending>,
    key: [u8; 32],
    outcome: watch::Sender<Option<bool>>,
}

impl PendingVerification {
    fn publish(&self, verified: bool) {
        self.outcome.send_replace(Some(verified));
    }
}

impl Drop for PendingVerification {
    fn drop(&mut self) {
        // Only this verification inserts or removes its key.
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// What a request does about credentials not in the cache.
enum Role {
    /// Waits for the outcome of the same credentials being verified.
    Follow(watch::Receiver<Option<bool>>),
    /// Verifies them, counted as an attempt of its client.
    Lead(PendingVerification, Attempt),
}

/// What the verifications did, for the tests.
#[derive(Default)]
struct VerificationCounters {
    /// Attempts verified.
    attempts: AtomicU64,
    /// bcrypt rounds spent, 2^cost per hash verified.
    work: AtomicU64,
    /// Set by a test to keep verifications from finishing.
    #[cfg(test)]
    hold: std::sync::atomic::AtomicBool,
}

/// Access rules for every request.
pub struct Access {
    users: Option<Users>,
    anonymous_pull: bool,
    read_only: bool,
    limits: AuthLimits,
    verifying: Arc<Semaphore>,
    verified: Arc<CredentialCache>,
    pending: Arc<Pending>,
    throttle: Arc<Throttle>,
    counters: Arc<VerificationCounters>,
}

impl Default for Access {
    /// Anyone may do anything.
    fn default() -> Self {
        let limits = AuthLimits::default();
        Access {
            users: None,
            anonymous_pull: false,
            read_only: false,
            verifying: Arc::new(Semaphore::new(limits.concurrent_verifications)),
            throttle: Arc::new(Throttle::new(&limits)),
            verified: Arc::new(CredentialCache {
                entries: Mutex::default(),
                lifetime: limits.cache_lifetime,
            }),
            pending: Arc::default(),
            limits,
            counters: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("users", &self.users.as_ref().map(|u| u.hashes.len()))
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
        let users = htpasswd.map(Users::load).transpose()?;
        Ok(Access {
            users,
            anonymous_pull,
            read_only,
            verifying: Arc::new(Semaphore::new(limits.concurrent_verifications.max(1))),
            throttle: Arc::new(Throttle::new(&limits)),
            verified: Arc::new(CredentialCache {
                entries: Mutex::default(),
                lifetime: limits.cache_lifetime,
            }),
            pending: Arc::default(),
            limits,
            counters: Arc::default(),
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
        let key = credential_key(&user, &password);
        loop {
            if self.verified.holds(&user, &key) {
                return Ok(());
            }
            match self.role(client, key)? {
                Role::Follow(mut outcome) => match outcome.wait_for(Option::is_some).await {
                    Ok(verified) if *verified == Some(true) => return Ok(()),
                    Ok(_) => return Err(RegistryError::unauthorized()),
                    // The leading request went away before verifying.
                    Err(_) => continue,
                },
                Role::Lead(lead, attempt) => {
                    let (hashes, known) = users.plan(&user);
                    let verified = self
                        .verify(attempt, lead, user, password, hashes, known)
                        .await?;
                    return if verified {
                        Ok(())
                    } else {
                        Err(RegistryError::unauthorized())
                    };
                }
            }
        }
    }

    /// Follows a verification of `key` already running, or leads one when
    /// the throttle lets `client` try.
    fn role(&self, client: IpAddr, key: [u8; 32]) -> Result<Role, RegistryError> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(outcome) = pending.get(&key) {
            return Ok(Role::Follow(outcome.clone()));
        }
        let attempt = self
            .throttle
            .begin(client)
            .map_err(|wait| RegistryError::too_many_requests().with_retry_after(wait))?;
        let (outcome, receiver) = watch::channel(None);
        pending.insert(key, receiver);
        let lead = PendingVerification {
            pending: self.pending.clone(),
            key,
            outcome,
        };
        Ok(Role::Lead(lead, attempt))
    }

    /// Verifies `password` against `hashes[0]` (and spends the rest), on
    /// the blocking pool when a slot is free. The slot, the attempt and the
    /// outcome go with the work: a dropped request frees no slot early, its
    /// failure is still counted, and its followers still learn the outcome.
    async fn verify(
        &self,
        attempt: Attempt,
        lead: PendingVerification,
        user: String,
        password: String,
        hashes: Vec<String>,
        known: bool,
    ) -> Result<bool, RegistryError> {
        let slot = self
            .verifying
            .clone()
            .acquire_owned()
            .await
            .map_err(RegistryError::internal)?;
        let counters = self.counters.clone();
        let cache = self.verified.clone();
        tokio::task::spawn_blocking(move || {
            // Declared first, dropped last: after the outcome is recorded.
            let _slot = slot;
            counters.attempts.fetch_add(1, Ordering::Relaxed);
            #[cfg(test)]
            while counters.hold.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut verified = false;
            for (i, hash) in hashes.iter().enumerate() {
                if let Some(cost) = bcrypt_cost(hash) {
                    counters.work.fetch_add(1u64 << cost, Ordering::Relaxed);
                }
                let matched = bcrypt::verify(&password, hash).unwrap_or(false);
                if i == 0 {
                    verified = matched && known;
                }
            }
            attempt.end(verified);
            if verified {
                cache.remember(user, lead.key);
            }
            lead.publish(verified);
            drop(lead);
            verified
        })
        .await
        .map_err(RegistryError::internal)
    }

    /// Attempts verified so far.
    #[cfg(test)]
    fn verification_count(&self) -> u64 {
        self.counters.attempts.load(Ordering::Relaxed)
    }

    /// bcrypt rounds spent so far.
    #[cfg(test)]
    fn verification_work(&self) -> u64 {
        self.counters.work.load(Ordering::Relaxed)
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

/// The cost of a `$2b$NN$...` hash, when bcrypt accepts it.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$')
        .nth(2)?
        .parse()
        .ok()
        .filter(|cost| (4..=31).contains(cost))
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
            let attempt = access
                .throttle
                .begin(IpAddr::V4(std::net::Ipv4Addr::from(i)))
                .unwrap();
            attempt.end(false);
        }
        assert!(access.throttle.clients().len() <= 8);
    }

    /// Failures and running attempts of `client`.
    fn attempts_of(access: &Access, client: IpAddr) -> (u32, u32) {
        access
            .throttle
            .clients()
            .get(&client)
            .map_or((0, 0), |c| (c.failures, c.running))
    }

    /// Waits (boundedly) until `done` holds.
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A client that drops its request (an HTTP/2 stream reset) while
    /// bcrypt runs frees no slot early and is still charged the failure.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_request_keeps_its_slot_and_its_failure() {
        let (_dir, path) = htpasswd();
        let limits = AuthLimits {
            concurrent_verifications: 1,
            ..AuthLimits::default()
        };
        let access = Arc::new(Access::with_limits(Some(&path), false, false, limits).unwrap());
        access.counters.hold.store(true, Ordering::Release);
        let request = {
            let access = access.clone();
            tokio::spawn(async move {
                access
                    .check(&basic("alice", "wrong"), &Method::PUT, CLIENT)
                    .await
            })
        };
        eventually("bcrypt started", || access.verification_count() == 1).await;
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        // bcrypt is still running (held): its slot stays taken.
        assert_eq!(access.verifying.available_permits(), 0);
        assert_eq!(attempts_of(&access, CLIENT), (0, 1));
        access.counters.hold.store(false, Ordering::Release);
        eventually("the slot is freed", || {
            access.verifying.available_permits() == 1
        })
        .await;
        assert_eq!(attempts_of(&access, CLIENT), (1, 0));
    }

    /// Concurrent guesses from one client all start before any fails: each
    /// counts as it starts, so no more than the limit are verified.
    #[tokio::test]
    async fn concurrent_guesses_are_throttled_as_they_start() {
        let (_dir, path) = htpasswd();
        let limits = AuthLimits {
            max_failures: 3,
            ..AuthLimits::default()
        };
        let access = Access::with_limits(Some(&path), false, false, limits).unwrap();
        let guesses: Vec<HeaderMap> = (0..20)
            .map(|i| basic("alice", &format!("wrong{i}")))
            .collect();
        let results = futures_util::future::join_all(
            guesses
                .iter()
                .map(|guess| access.check(guess, &Method::PUT, CLIENT)),
        )
        .await;
        assert_eq!(access.verification_count(), 3);
        let throttled = results
            .iter()
            .filter(|r| {
                r.as_ref()
                    .is_err_and(|e| e.status == axum::http::StatusCode::TOO_MANY_REQUESTS)
            })
            .count();
        assert_eq!(throttled, 17);
        assert_eq!(attempts_of(&access, CLIENT), (3, 0));
    }

    /// A client's parallel requests with the same credentials (its cached
    /// success expired) share one verification: not throttled, not
    /// verified again.
    #[tokio::test]
    async fn the_same_credentials_at_once_are_verified_once() {
        let (_dir, path) = htpasswd();
        let limits = AuthLimits {
            max_failures: 3,
            ..AuthLimits::default()
        };
        let access = Access::with_limits(Some(&path), false, false, limits).unwrap();
        let right = basic("alice", "secret");
        let results = futures_util::future::join_all(
            (0..20).map(|_| access.check(&right, &Method::PUT, CLIENT)),
        )
        .await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(access.verification_count(), 1);
        // The same wrong password at once fails for all, verified once.
        let wrong = basic("alice", "wrong");
        let results = futures_util::future::join_all(
            (0..20).map(|_| access.check(&wrong, &Method::PUT, CLIENT)),
        )
        .await;
        assert!(results.iter().all(|r| {
            r.as_ref()
                .is_err_and(|e| e.status == axum::http::StatusCode::UNAUTHORIZED)
        }));
        assert_eq!(access.verification_count(), 2);
        assert!(access.pending.lock().unwrap().is_empty());
    }

    /// A known user of a lower bcrypt cost than the file's highest costs
    /// what an unknown user does: response time tells no names.
    #[tokio::test]
    async fn known_and_unknown_users_cost_the_same_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let cheap = bcrypt::hash("secret", 4).unwrap();
        let dear = bcrypt::hash("secret", 7).unwrap();
        std::fs::write(&path, format!("alice:{cheap}\nbob:{dear}\n")).unwrap();
        let access = Access::new(Some(&path), false, false).unwrap();
        let mut costs = Vec::new();
        for (user, password) in [
            ("mallory", "secret"),
            ("alice", "wrong"),
            ("bob", "wrong"),
            ("alice", "secret"),
        ] {
            let before = access.verification_work();
            let _ = access
                .check(&basic(user, password), &Method::PUT, CLIENT)
                .await;
            costs.push(access.verification_work() - before);
        }
        assert_eq!(costs, [1 << 7; 4], "mallory, alice, bob, alice's success");
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
