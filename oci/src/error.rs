//! The errors of this crate; each names the thing and the reason.

use std::path::PathBuf;
use std::time::Duration;

/// A cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cache record {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{digest:?} is not a sha256 digest (want sha256:<64 hex>)")]
    BadDigest { digest: String },
}

/// Fetching, pulling, pushing or inspecting a module failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("unsupported module source: {0}")]
    Unsupported(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry {registry}: authentication failed: {reason}")]
    Auth { registry: String, reason: String },
    #[error("{reference}: {reason}")]
    Registry { reference: String, reason: String },
    #[error("{reference}: registry unreachable: {reason}")]
    Unreachable { reference: String, reason: String },
    #[error("{reference}: gave up after {after:?} (total timeout)")]
    Timeout { reference: String, after: Duration },
    #[error(
        "{reference}: not a Wasm module image: config media type {config}, layer media types [{}] \
         (accepted: a layer application/wasm, application/vnd.module.wasm.content.layer.v1+wasm, \
         or one tar/tar.gz layer holding plugin.wasm)",
        layers.join(", ")
    )]
    UnsupportedMediaTypes {
        reference: String,
        config: String,
        layers: Vec<String>,
    },
    #[error("{reference}: {reason}")]
    Format { reference: String, reason: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{source_desc}: sha256 mismatch: the config pins {expected} but the module is {actual}"
    )]
    PinMismatch {
        source_desc: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: sha256 is required for http(s) modules")]
    MissingSha256 { url: String },
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("OCI layout {path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("registry settings: {0}")]
    Settings(String),
    /// A bad command-line argument.
    #[error("{0}")]
    Argument(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl FetchError {
    /// Whether the failure came from reaching the registry or server (and a
    /// cached copy may stand in), as opposed to bad input or bad content.
    pub fn is_remote_failure(&self) -> bool {
        matches!(
            self,
            FetchError::Auth { .. }
                | FetchError::Registry { .. }
                | FetchError::Unreachable { .. }
                | FetchError::Timeout { .. }
                | FetchError::Http { .. }
        )
    }
}
