//! The `weft.*` properties a filter writes to steer the proxy: which
//! cluster the request goes to, the route's name (access log, metrics),
//! the whole-request timeout and the retry policy. Values are UTF-8 text;
//! durations are whole milliseconds. The proxy reads them once the request
//! headers have gone through every filter.
//!
//! The names are defined here (filters never depend on the host); the
//! `weft-filter-test` crate checks that they equal the host's.

use crate::PropertyError;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Name of the cluster the request goes to.
pub const CLUSTER: &str = "weft.cluster";
/// Name of the route that matched (access log, metrics).
pub const ROUTE_NAME: &str = "weft.route.name";
/// Whole-request timeout in milliseconds (`0`: none).
pub const TIMEOUT_MS: &str = "weft.timeout_ms";
/// Attempts in all (1 = no retry; the proxy clamps to 1–10).
pub const RETRY_ATTEMPTS: &str = "weft.retry.attempts";
/// Per-attempt timeout in milliseconds (`0`: none).
pub const RETRY_PER_TRY_TIMEOUT_MS: &str = "weft.retry.per_try_timeout_ms";
/// Comma-separated [`RetryOn`] conditions.
pub const RETRY_ON: &str = "weft.retry.on";
/// Comma-separated status codes retried under
/// [`RetryOn::RetriableStatusCodes`].
pub const RETRY_CODES: &str = "weft.retry.codes";

/// Every `weft.*` property name, in the order above.
pub const ALL: [&str; 7] = [
    CLUSTER,
    ROUTE_NAME,
    TIMEOUT_MS,
    RETRY_ATTEMPTS,
    RETRY_PER_TRY_TIMEOUT_MS,
    RETRY_ON,
    RETRY_CODES,
];

/// A condition under which the proxy retries a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryOn {
    /// Any 5xx answer (`5xx`).
    FiveXx,
    /// The upstream reset the connection (`reset`).
    Reset,
    /// No connection could be made (`connect-failure`).
    ConnectFailure,
    /// An answer whose status is in [`RetryPolicy::codes`]
    /// (`retriable-status-codes`).
    RetriableStatusCodes,
}

impl RetryOn {
    /// The name the proxy reads.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryOn::FiveXx => "5xx",
            RetryOn::Reset => "reset",
            RetryOn::ConnectFailure => "connect-failure",
            RetryOn::RetriableStatusCodes => "retriable-status-codes",
        }
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A retry condition name the proxy does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown retry condition {0:?} (expected 5xx, reset, connect-failure or retriable-status-codes)"
)]
pub struct UnknownRetryOn(pub String);

impl FromStr for RetryOn {
    type Err = UnknownRetryOn;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "5xx" => RetryOn::FiveXx,
            "reset" => RetryOn::Reset,
            "connect-failure" => RetryOn::ConnectFailure,
            "retriable-status-codes" => RetryOn::RetriableStatusCodes,
            other => return Err(UnknownRetryOn(other.to_owned())),
        })
    }
}

/// How the proxy retries a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub attempts: u32,
    /// Deadline of each attempt.
    pub per_try_timeout: Option<Duration>,
    pub retry_on: Vec<RetryOn>,
    /// Status codes retried; [`RetryOn::RetriableStatusCodes`] is added to
    /// the written conditions when this is not empty.
    pub codes: Vec<u16>,
}

impl Default for RetryPolicy {
    /// Three attempts on 5xx, reset and connect failure.
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            per_try_timeout: None,
            retry_on: vec![RetryOn::FiveXx, RetryOn::Reset, RetryOn::ConnectFailure],
            codes: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// The properties (name, text) that carry this policy.
    pub fn to_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(RETRY_ATTEMPTS, self.attempts.to_string())];
        if let Some(t) = self.per_try_timeout {
            out.push((RETRY_PER_TRY_TIMEOUT_MS, millis(t)));
        }
        let mut on = self.retry_on.clone();
        if !self.codes.is_empty() && !on.contains(&RetryOn::RetriableStatusCodes) {
            on.push(RetryOn::RetriableStatusCodes);
        }
        let on: Vec<&str> = on.iter().map(|c| c.as_str()).collect();
        out.push((RETRY_ON, on.join(",")));
        if !self.codes.is_empty() {
            let codes: Vec<String> = self.codes.iter().map(u16::to_string).collect();
            out.push((RETRY_CODES, codes.join(",")));
        }
        out
    }
}

/// A duration as the proxy reads it: whole milliseconds, rounded up so a
/// sub-millisecond timeout does not become "none".
pub fn millis(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    ms.to_string()
}

fn set(name: &str, value: &str) -> Result<(), PropertyError> {
    proxy_wasm::hostcalls::set_property(crate::property_path(name), Some(value.as_bytes()))
        .map_err(|s| PropertyError::host(name, s))
}

fn get(name: &str) -> Result<Option<String>, PropertyError> {
    crate::attributes::string(name)
}

/// Sends the request to this cluster (`weft.cluster`).
pub fn set_cluster(cluster: &str) -> Result<(), PropertyError> {
    set(CLUSTER, cluster)
}

/// The cluster a filter chose so far.
pub fn cluster() -> Result<Option<String>, PropertyError> {
    get(CLUSTER)
}

/// Names the route (`weft.route.name`).
pub fn set_route_name(name: &str) -> Result<(), PropertyError> {
    set(ROUTE_NAME, name)
}

/// The route name a filter set so far.
pub fn route_name() -> Result<Option<String>, PropertyError> {
    get(ROUTE_NAME)
}

/// The whole-request timeout (`weft.timeout_ms`); `Duration::ZERO`
/// switches it off.
pub fn set_timeout(timeout: Duration) -> Result<(), PropertyError> {
    set(TIMEOUT_MS, &millis(timeout))
}

/// Writes every property of a retry policy.
pub fn set_retry_policy(policy: &RetryPolicy) -> Result<(), PropertyError> {
    for (name, value) in policy.to_properties() {
        set(name, &value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dotted_weft_paths() {
        for name in ALL {
            assert!(name.starts_with("weft."), "{name}");
        }
    }

    #[test]
    fn retry_policy_properties() {
        let p = RetryPolicy {
            attempts: 4,
            per_try_timeout: Some(Duration::from_millis(250)),
            retry_on: vec![RetryOn::FiveXx, RetryOn::Reset],
            codes: vec![409, 429],
        };
        assert_eq!(
            p.to_properties(),
            vec![
                (RETRY_ATTEMPTS, "4".to_owned()),
                (RETRY_PER_TRY_TIMEOUT_MS, "250".to_owned()),
                (RETRY_ON, "5xx,reset,retriable-status-codes".to_owned()),
                (RETRY_CODES, "409,429".to_owned()),
            ]
        );
        let d = RetryPolicy::default().to_properties();
        assert_eq!(
            d,
            vec![
                (RETRY_ATTEMPTS, "3".to_owned()),
                (RETRY_ON, "5xx,reset,connect-failure".to_owned()),
            ]
        );
    }

    #[test]
    fn retry_conditions_round_trip() {
        for c in [
            RetryOn::FiveXx,
            RetryOn::Reset,
            RetryOn::ConnectFailure,
            RetryOn::RetriableStatusCodes,
        ] {
            assert_eq!(c.as_str().parse::<RetryOn>(), Ok(c));
        }
        let e = "gateway-error".parse::<RetryOn>().unwrap_err();
        assert!(e.to_string().contains("\"gateway-error\""), "{e}");
    }

    #[test]
    fn durations_are_whole_milliseconds_rounded_up() {
        assert_eq!(millis(Duration::from_secs(2)), "2000");
        assert_eq!(millis(Duration::from_micros(1500)), "2");
        assert_eq!(millis(Duration::from_nanos(1)), "1");
        assert_eq!(millis(Duration::ZERO), "0");
    }
}
