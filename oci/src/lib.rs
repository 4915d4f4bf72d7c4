//! weft-oci: Wasm filters as OCI artifacts — push, pull, inspect, verify
//! and cache them, and fetch a plugin's module from any of its sources.
//!
//! # Sources
//!
//! [`ModuleFetcher::fetch`] takes a plugin's [`weft_config::ModuleSource`]:
//!
//! * `oci://REGISTRY/REPO[:TAG|@sha256:HEX]` — an image in an OCI registry;
//! * `oci-layout://PATH[:TAG|@sha256:HEX]` — a local OCI image layout
//!   directory (`oci-layout`, `index.json` whose entries carry an
//!   `org.opencontainers.image.ref.name` annotation, `blobs/sha256/…`);
//! * `https://…` / `http://…` — a plain download; the plugin's `sha256` is
//!   then required;
//! * `file://PATH` or a bare path.
//!
//! A `sha256` pin (hex of the Wasm bytes) is checked for every source; a
//! mismatch is refused with both digests in the error.
//!
//! # Formats
//!
//! [`RegistryClient::push_wasm`] writes the CNCF Wasm OCI artifact: config
//! `application/vnd.wasm.config.v0+json`, one layer `application/wasm`,
//! annotations `org.opencontainers.image.{title,version,source,created}`.
//! Pulling also accepts Istio's OCI variant (one layer
//! `application/vnd.module.wasm.content.layer.v1+wasm`) and its
//! Docker-compatible variant (one tar or tar.gz layer holding
//! `plugin.wasm`); the variant is detected from the manifest ([`media`]),
//! anything else is refused with an error naming the media types found. In a
//! multi-platform index the `wasi`/`wasm` entry is chosen (or the only one).
//!
//! # Cache
//!
//! [`Cache`] lives in the `oci` folder of weft's cache directory (the
//! config's `cache_dir` or `--cache-dir`, else the user's cache directory
//! `/weft`, see [`default_cache_dir`]; [`FetchSettings::from_config`]):
//!
//! ```text
//! blobs/sha256/<hex>        Wasm modules, named by the sha256 of their bytes
//! manifests/sha256/<hex>    one JSON record per pulled manifest (format, media types, annotations, module digest)
//! refs/<hex>.json           reference → manifest digest resolutions, with the time they were made
//! tmp/                      files being written (renamed into place when complete)
//! ```
//!
//! Every write goes to a temporary file renamed into place, so a crash never
//! leaves a partial blob, and the cache survives restarts. Reads touch a
//! blob's modification time; when the blobs exceed the size bound the least
//! recently used are evicted. A tag's resolution is trusted for a TTL
//! (default 5 minutes) under `IfNotPresent`; `Always` re-resolves every
//! time (blobs are immutable, so an unchanged digest is never downloaded
//! again). Concurrent fetches of the same reference in one process are
//! coalesced: one downloads, the others wait and read the cache.
//!
//! # Authentication and transport
//!
//! HTTPS by default; plain HTTP only for hosts marked `plain_http` in
//! `registries` (or `--plain-http` on the command line). Credentials, first
//! match wins: the `registries` entry (`username` + `password_file`), then
//! Docker's `config.json` (`auths.<host>.auth` base64 `user:password`, or
//! `username`/`password`; path from the settings, else `$DOCKER_CONFIG`,
//! else `~/.docker/config.json`), else anonymous. Basic and bearer-token
//! (registry token service) challenges are handled by `oci-client`.
//! Secrets are never printed: [`Credentials`] redacts itself. Registry
//! calls are retried with exponential backoff on transport errors and 5xx
//! answers, within a total timeout.
//!
//! # Failure semantics
//!
//! A failed registry pull (unreachable, timed out, refused, auth error)
//! of a reference that was pulled before is served from the cache: the
//! [`FetchedModule`] then has `from_cache: true` and a `note` naming the
//! failure, the digest served and when it was pulled. Integrity failures
//! (unsupported media types, digest or sha256 pin mismatch) are never
//! papered over.

pub mod auth;
pub mod cache;
pub mod cli;
mod error;
pub mod fetch;
pub mod layout;
pub mod media;
pub mod reference;
pub mod registry;

pub use auth::{Credentials, DockerConfig};
pub use cache::{Cache, CacheEntry, CacheOptions, PruneReport};
pub use error::{CacheError, FetchError};
pub use fetch::{FetchSettings, FetchStats, FetchedModule, ModuleFetcher};
pub use media::ArtifactFormat;
pub use reference::ImageRef;
pub use registry::{
    ClientSettings, Inspection, LayerInfo, PulledModule, PushOutcome, RegistryClient,
};

use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The default cache directory: the user's cache directory + `/weft`
/// (e.g. `~/.cache/weft`), or `./.weft-cache` when there is none.
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .map(|d| d.join("weft"))
        .unwrap_or_else(|| PathBuf::from(".weft-cache"))
}

/// Installs rustls' `ring` crypto provider as the process default (the
/// HTTP client is built without a provider of its own, so weft stays on
/// one TLS stack). Harmless when one is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
