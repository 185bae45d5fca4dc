//! The one way the client retries: exponential backoff with full jitter,
//! honouring `Retry-After`, counting failures in a row. Requests, resumed
//! downloads, chunked and streamed uploads, manifest pushes racing a blob
//! and fallback-tag updates all go through [`Backoff`].

use std::time::Duration;

use rand::RngExt;

use crate::error::{ClientError, Result};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total (first try included).
    pub attempts: u32,
    /// Delay before the first retry.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// One attempt only: for a request whose body cannot be sent twice.
    pub fn once() -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `attempt` (1-based): `base * 2^(attempt-1)`
    /// with full jitter, capped, or the server's `Retry-After` when it gave one.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max);
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max);
        let jitter: f64 = rand::rng().random_range(0.5..1.0);
        cap.mul_f64(jitter)
    }
}

/// Failures in a row of one operation, and the waits between them.
#[derive(Debug)]
pub(crate) struct Backoff<'a> {
    policy: RetryPolicy,
    action: &'a str,
    failures: u32,
}

impl<'a> Backoff<'a> {
    /// Starts counting for `action` (named in the log when it retries).
    pub(crate) fn new(policy: RetryPolicy, action: &'a str) -> Backoff<'a> {
        Backoff {
            policy,
            action,
            failures: 0,
        }
    }

    /// Records `error`; when `retryable` and the policy allows another
    /// attempt, logs that it retries (and how often it will) and returns
    /// the delay to wait first.
    pub(crate) fn next_delay(&mut self, error: &ClientError, retryable: bool) -> Option<Duration> {
        self.failures += 1;
        if !retryable || self.failures >= self.policy.attempts {
            return None;
        }
        let delay = self.policy.delay(self.failures, error.retry_after());
        tracing::warn!(
            "{}: {error}; retrying in {:.1}s (attempt {} of {})",
            self.action,
            delay.as_secs_f64(),
            self.failures + 1,
            self.policy.attempts
        );
        Some(delay)
    }

    /// Waits before the next attempt after `error`; false when there is
    /// none (`error` is not `retryable`, or the attempts are spent).
    pub(crate) async fn wait(&mut self, error: &ClientError, retryable: bool) -> bool {
        match self.next_delay(error, retryable) {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }

    /// The operation moved forward: the budget is for failures in a row.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Runs `attempt` until it succeeds, fails in a way `retryable` refuses, or
/// the policy's attempts are spent; the last error is returned.
pub(crate) async fn retry_when<T>(
    policy: &RetryPolicy,
    action: &str,
    retryable: impl Fn(&ClientError) -> bool,
    mut attempt: impl AsyncFnMut() -> Result<T>,
) -> Result<T> {
    let mut backoff = Backoff::new(*policy, action);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                let again = retryable(&error);
                if !backoff.wait(&error, again).await {
                    return Err(error);
                }
            }
        }
    }
}

/// [`retry_when`] for transient failures.
pub(crate) async fn retry<T>(
    policy: &RetryPolicy,
    action: &str,
    attempt: impl AsyncFnMut() -> Result<T>,
) -> Result<T> {
    retry_when(policy, action, ClientError::is_transient, attempt).await
}

/// [`retry_when`] for blocking callers (threads outside the runtime): the
/// wait blocks the calling thread.
pub(crate) fn retry_blocking_when<T>(
    policy: &RetryPolicy,
    action: &str,
    retryable: impl Fn(&ClientError) -> bool,
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut backoff = Backoff::new(*policy, action);
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(error) => match backoff.next_delay(&error, retryable(&error)) {
                Some(delay) => std::thread::sleep(delay),
                None => return Err(error),
            },
        }
    }
}

/// Parses `Retry-After` given in seconds (the HTTP-date form is treated as absent).
pub(crate) fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let seconds: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::NetCause;

    #[test]
    fn delays_grow_and_stay_capped() {
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let d1 = p.delay(1, None);
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        let d4 = p.delay(4, None);
        assert!(d4 >= Duration::from_millis(400) && d4 <= Duration::from_millis(800));
        assert!(p.delay(30, None) <= Duration::from_secs(1));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(1)
        );
        let header = reqwest::header::HeaderValue::from_static("2");
        assert_eq!(
            parse_retry_after(Some(&header)),
            Some(Duration::from_secs(2))
        );
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        }
    }

    fn dropped() -> ClientError {
        ClientError::Unreachable {
            registry: "r".into(),
            cause: NetCause::Interrupted,
            source: "reset".into(),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_attempts() {
        let mut calls = 0;
        let result: Result<()> = retry(&fast(4), "t", async || {
            calls += 1;
            Err(dropped())
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 4);

        let mut calls = 0;
        let result = retry(&fast(4), "t", async || {
            calls += 1;
            if calls < 3 { Err(dropped()) } else { Ok(calls) }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let mut calls = 0;
        let result: Result<()> = retry(&fast(4), "t", async || {
            calls += 1;
            Err(ClientError::Unreachable {
                registry: "r".into(),
                cause: NetCause::Refused,
                source: "refused".into(),
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a refused connection is not retried");
    }

    #[test]
    fn progress_resets_the_budget() {
        let mut backoff = Backoff::new(fast(3), "t");
        assert!(backoff.next_delay(&dropped(), true).is_some());
        assert!(backoff.next_delay(&dropped(), true).is_some());
        assert!(backoff.next_delay(&dropped(), true).is_none(), "spent");
        backoff.reset();
        assert!(backoff.next_delay(&dropped(), true).is_some());
        assert!(backoff.next_delay(&dropped(), false).is_none());
    }

    #[test]
    fn blocking_callers_retry_too() {
        let mut calls = 0;
        let result = retry_blocking_when(&fast(3), "t", ClientError::is_transient, || {
            calls += 1;
            if calls < 2 { Err(dropped()) } else { Ok(()) }
        });
        assert!(result.is_ok());
        assert_eq!(calls, 2);
    }
}
