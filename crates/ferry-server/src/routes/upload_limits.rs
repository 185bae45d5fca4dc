//! Caps on open upload sessions, in total and per client address: each
//! session holds disk space and a slot until it is finished, cancelled or
//! expired, so an anonymous client cannot open them without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{RegistryError, RegistryResult};

/// How many upload sessions may be open.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// In total (default 1024).
    pub max_sessions: usize,
    /// Per client address (default 64).
    pub max_sessions_per_client: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_sessions: 1024,
            max_sessions_per_client: 64,
        }
    }
}

/// The sessions this server opened, by owner. Sessions found on disk after
/// a restart are not counted; they expire as usual.
#[derive(Debug, Default)]
pub struct SessionTracker {
    limits: UploadLimits,
    lifetime: Duration,
    state: Mutex<Owners>,
}

#[derive(Debug, Default)]
struct Owners {
    by_session: HashMap<String, IpAddr>,
    per_client: HashMap<IpAddr, usize>,
}

impl SessionTracker {
    /// A tracker enforcing `limits`, for sessions living `lifetime`.
    pub fn new(limits: UploadLimits, lifetime: Duration) -> SessionTracker {
        SessionTracker {
            limits,
            lifetime,
            state: Mutex::default(),
        }
    }

    /// How long a session may take bytes after it started.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Refuses `client` a new session when a cap is reached (cheap check
    /// before any storage work; [`SessionTracker::register`] decides).
    pub fn admit(&self, client: IpAddr) -> RegistryResult<()> {
        let owners = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.check(&owners, client)
    }

    fn check(&self, owners: &Owners, client: IpAddr) -> RegistryResult<()> {
        if owners.by_session.len() >= self.limits.max_sessions {
            return Err(RegistryError::too_many(format!(
                "the registry has {} upload sessions open: finish or cancel some",
                self.limits.max_sessions
            )));
        }
        if owners.per_client.get(&client).copied().unwrap_or(0)
            >= self.limits.max_sessions_per_client
        {
            return Err(RegistryError::too_many(format!(
                "this client has {} upload sessions open: finish or cancel some",
                self.limits.max_sessions_per_client
            )));
        }
        Ok(())
    }

    /// Counts session `id` for `client`, unless a cap was reached meanwhile.
    pub fn register(&self, id: &str, client: IpAddr) -> RegistryResult<()> {
        let mut owners = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.check(&owners, client)?;
        owners.by_session.insert(id.to_string(), client);
        *owners.per_client.entry(client).or_default() += 1;
        Ok(())
    }

    /// Stops counting session `id` (finished, cancelled, expired, gone).
    pub fn release(&self, id: &str) {
        let mut owners = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(client) = owners.by_session.remove(id) else {
            return;
        };
        if let Some(count) = owners.per_client.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                owners.per_client.remove(&client);
            }
        }
    }

    /// Sessions counted.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_session
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn caps_per_client_and_in_total_are_freed_on_release() {
        let tracker = SessionTracker::new(
            UploadLimits {
                max_sessions: 3,
                max_sessions_per_client: 2,
            },
            Duration::from_secs(3600),
        );
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        tracker.register("a1", a).unwrap();
        tracker.register("a2", a).unwrap();
        assert!(tracker.admit(a).is_err());
        assert!(tracker.register("a3", a).is_err());
        tracker.register("b1", b).unwrap();
        // Total cap: b has one, but the registry is full.
        let error = tracker.admit(b).unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        tracker.release("a1");
        tracker.release("a1"); // twice is harmless
        assert_eq!(tracker.open(), 2);
        tracker.admit(a).unwrap();
        tracker.register("a3", a).unwrap();
    }
}
