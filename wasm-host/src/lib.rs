//! `weft-wasm-host`: a proxy-wasm host (ABI 0.2.1, 0.2.0 and 0.1.0) on
//! wasmtime, with WASI preview 1 from `wasmtime-wasi`.
//!
//! # The life of a plugin
//! 1. [`Runtime::load`] compiles a module once per digest (cached on disk
//!    when a cache directory is set) and checks it: a known ABI marker
//!    export, every import provided, a memory and an allocator.
//! 2. [`Plugin`] pairs the module with its [`PluginOptions`] (config,
//!    vmConfig env, fail strategy, memory cap, callback deadline) and is
//!    shared by all workers.
//! 3. On each worker thread, [`PluginInstance::start`] instantiates a
//!    [`Vm`]: `_initialize`, the root context, `proxy_on_vm_start`,
//!    `proxy_on_configure` (false refuses the plugin).
//! 4. Per HTTP stream, [`FilterChain::start`] opens a stream context on
//!    each VM (parent: the root context); the proxy then drives the phases
//!    ([`ChainStream::request_headers`] … [`ChainStream::finish`], which
//!    runs `proxy_on_done`, `proxy_on_log` and `proxy_on_delete`).
//! 5. A VM that traps, overruns its deadline (epoch interruption) or its
//!    memory cap is discarded; the stream in flight gets the plugin's fail
//!    strategy and the next stream gets a fresh VM.
//!
//! # The boundary with the proxy
//! The host knows nothing about sockets. The proxy owns the
//! [`HttpStream`] data (headers as [`http::HeaderMap`], bodies, the
//! connection's [`ConnectionInfo`]) and lends it to one VM at a time, and it
//! implements [`ProxyBoundary`] for what only it can do: dispatch an HTTP
//! call to a named cluster. VMs are `!Send` and live on current-thread
//! runtimes inside a `tokio::task::LocalSet`.
//!
//! # Properties filters can read and write
//! Envoy's attribute names with Envoy's encodings: `request.*`,
//! `response.*`, `source.*`, `destination.*`, `connection.*`,
//! `upstream.*`, `plugin_name`, `plugin_root_id`, `plugin_vm_id`, `node.*`.
//! Any path a filter sets is kept on the stream; the proxy reads the
//! `weft.*` namespace (see [`weft_props`]).

mod abi;
mod chain;
mod error;
mod headers;
mod host;
mod plugin;
mod props;
mod runtime;
pub mod shared;
mod stream;
mod vm;
mod wasi_log;

pub use abi::{AbiVersion, LogLevel, deserialize_pairs, serialize_pairs};
pub use chain::{BodyFlow, ChainStream, FilterChain, Flow};
pub use error::{LoadError, VmError};
pub use headers::HeaderBlock;
pub use host::{HttpCallRequest, HttpCallResponse};
pub use plugin::{FailStrategy, NodeInfo, PluginInfo, PluginOptions, PluginStats};
pub use runtime::{PluginModule, Runtime, RuntimeOptions};
pub use stream::{ConnectionInfo, HttpStream, LocalReply, TlsInfo};
pub use vm::{Outcome, Phase, Plugin, PluginInstance, ProxyBoundary, StreamHandle, Vm};

/// The `weft.*` properties filters write and the proxy reads (UTF-8 text).
pub mod weft_props {
    /// Name of the cluster the request goes to.
    pub const CLUSTER: &str = "weft.cluster";
    /// Name of the route that matched (access log, metrics).
    pub const ROUTE_NAME: &str = "weft.route.name";
    /// Whole-request timeout in milliseconds.
    pub const TIMEOUT_MS: &str = "weft.timeout_ms";
    /// Attempts in all (1 = no retry).
    pub const RETRY_ATTEMPTS: &str = "weft.retry.attempts";
    /// Per-attempt timeout in milliseconds.
    pub const RETRY_PER_TRY_TIMEOUT_MS: &str = "weft.retry.per_try_timeout_ms";
    /// Comma-separated: `5xx`, `reset`, `connect-failure`, `retriable-status-codes`.
    pub const RETRY_ON: &str = "weft.retry.on";
    /// Comma-separated status codes for `retriable-status-codes`.
    pub const RETRY_CODES: &str = "weft.retry.codes";
}
