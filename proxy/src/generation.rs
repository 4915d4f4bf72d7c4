//! A generation: one validated configuration with its plugins compiled and
//! configured and its clusters resolved into settings. Generations are
//! immutable and shared by all workers; a reload builds a new one and only
//! swaps it in when every part of it loaded.

use crate::metrics::ListenerMetrics;
use crate::upstream::{ClusterSettings, SharedClusterState};
use bytes::Bytes;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use weft_config::Config;
use weft_wasm_host::{
    FailStrategy, HttpCallRequest, HttpCallResponse, NodeInfo, Plugin, PluginInstance,
    PluginOptions, ProxyBoundary, Runtime,
};

/// Limits of one listener.
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    pub max_request_headers_size: usize,
    pub request_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub http2_max_concurrent_streams: u32,
    pub http2_max_pending_reset_streams: usize,
}

/// A listener in one generation. Its TLS settings and limits are read
/// when a connection is accepted, so a reload changes them for new
/// connections (certificate rotation); its socket belongs to the workers.
pub struct ListenerSpec {
    pub name: String,
    pub address: std::net::SocketAddr,
    pub default_cluster: Option<String>,
    pub tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
    pub limits: Arc<ListenerLimits>,
    /// Open connections across workers, carried over to the next
    /// generation while the listener stays.
    pub open_connections: Arc<std::sync::atomic::AtomicUsize>,
    /// When the listener is new in this generation: one socket per worker,
    /// bound by the server (`SO_REUSEPORT`); each worker takes one.
    pub sockets: Mutex<Vec<std::net::TcpListener>>,
}

/// A plugin loaded for a generation.
pub struct LoadedPlugin {
    pub plugin: Arc<Plugin>,
    pub listeners: Option<Vec<String>>,
    pub source: String,
}

/// Listener metrics live across generations.
#[derive(Default)]
pub struct MetricsBook {
    listeners: Mutex<HashMap<String, Arc<ListenerMetrics>>>,
}

impl MetricsBook {
    pub fn listener(&self, name: &str) -> Arc<ListenerMetrics> {
        self.listeners
            .lock()
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}

pub struct Generation {
    pub id: u64,
    pub config: Arc<Config>,
    pub config_json: serde_json::Value,
    pub plugins: Vec<LoadedPlugin>,
    pub skipped_plugins: Vec<(String, String)>,
    pub listeners: Vec<ListenerSpec>,
    pub cluster_settings: Vec<ClusterSettings>,
    pub cluster_state: Arc<SharedClusterState>,
    pub cluster_names: Arc<HashSet<String>>,
    pub buffer_limit: usize,
    metrics: Arc<MetricsBook>,
}

impl Generation {
    /// Binds a socket per worker for every listener that is new in this
    /// generation (or moved to another address) and carries the connection
    /// counts of those that stay. A listener that cannot bind fails the
    /// whole generation, so the previous one keeps serving.
    pub fn bind_listeners(
        &mut self,
        previous: Option<&Generation>,
        workers: usize,
    ) -> Result<(), GenerationError> {
        for spec in &mut self.listeners {
            let kept = previous.and_then(|p| {
                p.listeners
                    .iter()
                    .find(|o| o.name == spec.name && o.address == spec.address)
            });
            if let Some(old) = kept {
                spec.open_connections = old.open_connections.clone();
                continue;
            }
            let mut sockets = Vec::with_capacity(workers);
            for _ in 0..workers {
                let socket = crate::worker::bind_reuseport(spec.address).map_err(|e| {
                    GenerationError::Listener {
                        listener: spec.name.clone(),
                        reason: format!("cannot bind {}: {e}", spec.address),
                    }
                })?;
                sockets.push(socket);
            }
            *spec.sockets.lock() = sockets;
            tracing::info!(listener = %spec.name, address = %spec.address, tls = spec.tls.is_some(), "listening");
        }
        Ok(())
    }

    pub fn listener_metrics(&self, name: &str) -> Arc<ListenerMetrics> {
        self.metrics.listener(name)
    }
}

/// Errors building a generation; each names the part and the reason.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("plugin {plugin}: {reason}")]
    Plugin { plugin: String, reason: String },
    #[error("cluster {cluster}: {reason}")]
    Cluster { cluster: String, reason: String },
    #[error("listener {listener}: {reason}")]
    Listener { listener: String, reason: String },
}

/// Reads a plugin's module from its source.
pub fn fetch_module(spec: &weft_config::PluginSpec) -> Result<(Vec<u8>, String), GenerationError> {
    let err = |reason: String| GenerationError::Plugin {
        plugin: spec.name.clone(),
        reason,
    };
    match spec.source() {
        weft_config::ModuleSource::File(path) => {
            let bytes = std::fs::read(&path)
                .map_err(|e| err(format!("cannot read module {}: {e}", path.display())))?;
            Ok((bytes, format!("file://{}", path.display())))
        }
        _ => Err(err(format!(
            "url {}: only file:// modules are supported by this build (oci://, oci-layout:// and http(s):// come with OCI support)",
            spec.url
        ))),
    }
}

/// A boundary for validating plugins on the control thread: clusters are
/// known by name, HTTP calls fail (no traffic flows during validation).
struct ValidationBoundary {
    names: Arc<HashSet<String>>,
}

impl ProxyBoundary for ValidationBoundary {
    fn cluster_exists(&self) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
        let names = self.names.clone();
        Arc::new(move |n: &str| names.contains(n))
    }

    fn http_call(
        &self,
        _plugin: &str,
        _request: HttpCallRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpCallResponse, String>>>>
    {
        Box::pin(async {
            Err("no HTTP calls while the configuration is being validated".to_owned())
        })
    }
}

/// Builds generations from configurations.
pub struct Loader {
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<MetricsBook>,
}

impl Loader {
    /// Loads every plugin (compile, `on_vm_start`, `on_configure` on a
    /// validation VM) and maps the clusters. Must run inside a `LocalSet`.
    pub async fn build(&self, config: Config, id: u64) -> Result<Generation, Vec<GenerationError>> {
        let mut errors = Vec::new();
        let cluster_names: Arc<HashSet<String>> =
            Arc::new(config.clusters.iter().map(|c| c.name.clone()).collect());
        let mut cluster_settings = Vec::new();
        for c in &config.clusters {
            match crate::settings::cluster(c) {
                Ok(s) => cluster_settings.push(s),
                Err(reason) => errors.push(GenerationError::Cluster {
                    cluster: c.name.clone(),
                    reason,
                }),
            }
        }
        let node = NodeInfo {
            name: config.node.name.clone(),
            namespace: config.node.namespace.clone(),
            labels: config
                .node
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let boundary: Rc<dyn ProxyBoundary> = Rc::new(ValidationBoundary {
            names: cluster_names.clone(),
        });
        let mut plugins = Vec::new();
        let mut skipped = Vec::new();
        for spec in weft_config::plugin_order(&config.plugins) {
            let name = spec.name.clone();
            let fail_open = matches!(spec.fail_strategy, weft_config::FailStrategy::FailOpen);
            let loaded = async {
                let (bytes, source) = fetch_module(spec)?;
                if let Some(want) = &spec.sha256 {
                    let got = hex::encode(Sha256::digest(&bytes));
                    if !got.eq_ignore_ascii_case(want) {
                        return Err(GenerationError::Plugin {
                            plugin: name.clone(),
                            reason: format!(
                                "sha256 mismatch: the config pins {want} but the module is {got}"
                            ),
                        });
                    }
                }
                let mut opts = PluginOptions::new(name.clone());
                opts.root_id = spec.plugin_name.clone().unwrap_or_default();
                opts.vm_id = name.clone();
                opts.configuration = if spec.plugin_config.is_null() {
                    Bytes::new()
                } else {
                    Bytes::from(serde_json::to_vec(&spec.plugin_config).unwrap_or_default())
                };
                opts.env = spec.env_pairs();
                opts.fail_strategy = if fail_open {
                    FailStrategy::FailOpen
                } else {
                    FailStrategy::FailClose
                };
                opts.memory_limit = spec.limits.memory as usize;
                opts.callback_timeout = spec.limits.callback_timeout;
                opts.buffer_limit = config.buffer_limit as usize;
                opts.node = node.clone();
                let plugin = Plugin::load(&self.runtime, &bytes, opts).map_err(|e| {
                    GenerationError::Plugin {
                        plugin: name.clone(),
                        reason: strip_prefix(&e.to_string(), &name),
                    }
                })?;
                PluginInstance::start(plugin.clone(), boundary.clone())
                    .await
                    .map_err(|e| GenerationError::Plugin {
                        plugin: name.clone(),
                        reason: strip_prefix(&e.to_string(), &name),
                    })?;
                Ok(LoadedPlugin {
                    plugin,
                    listeners: spec.listeners.clone(),
                    source,
                })
            }
            .await;
            match loaded {
                Ok(p) => plugins.push(p),
                Err(e) if fail_open => {
                    tracing::warn!("{e}; the plugin is FAIL_OPEN, so it is skipped");
                    skipped.push((name, e.to_string()));
                }
                Err(e) => errors.push(e),
            }
        }
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let tls = match &l.tls {
                Some(t) => match crate::settings::acceptor(l, t) {
                    Ok(a) => Some(Arc::new(a)),
                    Err(e) => {
                        errors.push(GenerationError::Listener {
                            listener: l.name.clone(),
                            reason: e.to_string(),
                        });
                        continue;
                    }
                },
                None => None,
            };
            listeners.push(ListenerSpec {
                name: l.name.clone(),
                address: l.address,
                default_cluster: l.default_cluster.clone(),
                tls,
                limits: Arc::new(crate::settings::listener_limits(l)),
                open_connections: Arc::default(),
                sockets: Mutex::new(Vec::new()),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let cluster_state = Arc::new(SharedClusterState::new(&cluster_settings));
        Ok(Generation {
            id,
            config_json: config.redacted_json(),
            buffer_limit: config.buffer_limit as usize,
            config: Arc::new(config),
            plugins,
            skipped_plugins: skipped,
            listeners,
            cluster_settings,
            cluster_state,
            cluster_names,
            metrics: self.metrics.clone(),
        })
    }
}

fn strip_prefix(msg: &str, name: &str) -> String {
    msg.strip_prefix(&format!("plugin {name}: "))
        .unwrap_or(msg)
        .to_owned()
}
