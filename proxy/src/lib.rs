//! `weft-proxy`: the data plane. Thread-per-core workers serve HTTP/1.1
//! and HTTP/2 (h2c and ALPN over TLS) with hyper, run every request through
//! the listener's proxy-wasm filters (`weft-wasm-host`), and forward it to
//! the upstream cluster the filters chose. The proxy has no features of its
//! own: routing, authz, rewrites are filters.
//!
//! Map: [`server`] (start-up, reload, drain) → [`worker`] (threads,
//! listeners, connections) → [`life`] (the life of a request, top to
//! bottom) → [`upstream`] (clusters, load balancing, pools, health). A
//! [`generation::Generation`] is one loaded configuration; [`admin`]
//! serves metrics and state; [`discovery`] follows a controller's plugin
//! snapshots (`weft run --controller`).

pub mod access_log;
pub mod admin;
pub mod boundary;
pub mod discovery;
pub mod generation;
pub mod life;
pub mod metrics;
pub mod scaffold;
pub mod server;
pub mod settings;
pub mod tls;
pub mod upstream;
pub mod worker;
