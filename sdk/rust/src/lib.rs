//! `weft-sdk`: helpers for writing weft filters in Rust, on top of the
//! upstream [`proxy_wasm`] crate (which stays the SDK: contexts, headers,
//! bodies, HTTP calls, ticks, shared data, queues, metrics). This crate
//! adds what every weft filter otherwise writes by hand:
//!
//! - [`config`]: the plugin configuration (`pluginConfig`, JSON) parsed
//!   into your own `serde` type, with errors that name the field path
//!   (`rules[0].weight: invalid type: …`), and a one-call way to log the
//!   error with the plugin's name and refuse the configuration.
//! - [`weft`]: the `weft.*` properties that steer the proxy — upstream
//!   cluster, route name, request timeout, retry policy — with typed
//!   setters and getters.
//! - [`attributes`]: typed readers for the request, connection and plugin
//!   attributes the host exposes (`request.path`, `source.address`, the
//!   mTLS peer's URI SAN, …), decoded from the host's encodings.
//!
//! Every function that needs the host calls `proxy_wasm::hostcalls`, so it
//! only works inside a filter running in a proxy-wasm host; the decoding
//! and encoding underneath is plain Rust and is unit-tested on the build
//! machine. To test a whole filter in-process against weft's real host,
//! see the `weft-filter-test` crate.
//!
//! ```ignore
//! use proxy_wasm::traits::{Context, RootContext};
//!
//! #[derive(serde::Deserialize, Default)]
//! struct Config { header: String }
//!
//! struct Root { config: Config }
//! impl Context for Root {}
//! impl RootContext for Root {
//!     fn on_configure(&mut self, _size: usize) -> bool {
//!         match weft_sdk::config::load::<Config>() {
//!             Ok(c) => { self.config = c; true }
//!             Err(e) => weft_sdk::config::report(&e), // logs at warn, returns false
//!         }
//!     }
//! }
//! ```

pub mod attributes;
pub mod config;
pub mod weft;

pub use proxy_wasm;

/// A property the host refused or sent in an unexpected encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    /// The hostcall failed (`proxy_get_property` / `proxy_set_property`).
    #[error("property {path}: the host answered {status}")]
    Host { path: String, status: String },
    /// The value's bytes are not in the expected encoding.
    #[error("property {path}: {reason}")]
    Malformed { path: String, reason: String },
}

impl PropertyError {
    pub(crate) fn host(path: &str, status: proxy_wasm::types::Status) -> Self {
        PropertyError::Host {
            path: path.to_owned(),
            status: format!("{status:?}"),
        }
    }
}

/// Splits a dotted property name into the path segments the ABI takes
/// (`weft.retry.on` → `["weft", "retry", "on"]`).
pub fn property_path(dotted: &str) -> Vec<&str> {
    dotted.split('.').collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn property_paths_split_on_dots() {
        assert_eq!(
            super::property_path("weft.retry.per_try_timeout_ms"),
            ["weft", "retry", "per_try_timeout_ms"]
        );
        assert_eq!(super::property_path("plugin_name"), ["plugin_name"]);
    }
}
