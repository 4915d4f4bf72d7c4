//! A generation: one validated configuration with its plugins compiled and
//! configured and its clusters resolved into settings. Generations are
//! immutable and shared by all workers; a reload builds a new one and only
//! swaps it in when every part of it loaded.

use crate::metrics::ListenerMetrics;
use crate::upstream::{ClusterSettings, SharedClusterState};
use bytes::Bytes;
use parking_lot::Mutex;
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
    /// Istio's `match`: the listener ports it applies to.
    pub traffic: Vec<weft_config::TrafficSelector>,
    pub source: String,
    /// Set when the module came from the cache because its registry could
    /// not be reached.
    pub note: Option<String>,
    pub fetched_at: std::time::SystemTime,
}

/// A plugin whose module could not be fetched (registry or server down)
/// and is not cached: with FAIL_CLOSE, the streams of its listeners get a
/// 503 naming it; with FAIL_OPEN they skip it. The server retries.
#[derive(Clone, Debug)]
pub struct PendingPlugin {
    pub name: String,
    pub url: String,
    pub fail_close: bool,
    pub listeners: Option<Vec<String>>,
    pub traffic: Vec<weft_config::TrafficSelector>,
    pub error: String,
    pub attempted_at: std::time::SystemTime,
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
    pub pending_plugins: Vec<PendingPlugin>,
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
    /// `--cache-dir`, over the config's `cache_dir`.
    pub cache_dir: Option<std::path::PathBuf>,
    /// A module that cannot be fetched is an error (`weft validate`),
    /// rather than a pending plugin (`weft run`).
    pub strict_fetch: bool,
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
        let mut pending = Vec::new();
        let fetcher = if config.plugins.is_empty() {
            None
        } else {
            let settings = weft_oci::FetchSettings::from_config(&config, self.cache_dir.clone());
            match weft_oci::ModuleFetcher::new(settings) {
                Ok(f) => Some(f),
                Err(e) => {
                    return Err(vec![GenerationError::Plugin {
                        plugin: "*".into(),
                        reason: format!("cannot set up module fetching: {e}"),
                    }]);
                }
            }
        };
        for spec in weft_config::plugin_order(&config.plugins) {
            let name = spec.name.clone();
            let fail_open = matches!(spec.fail_strategy, weft_config::FailStrategy::FailOpen);
            // The module: a registry or server that cannot be reached (and
            // nothing cached) leaves the plugin pending, not the config bad.
            let fetched = match &fetcher {
                Some(f) => f.fetch_plugin(spec).await,
                None => continue,
            };
            let module = match fetched {
                Ok(m) => m,
                Err(e) if e.is_remote_failure() && !self.strict_fetch => {
                    tracing::warn!(plugin = %name, url = %spec.url, "module not available, will retry: {e}");
                    pending.push(PendingPlugin {
                        name: name.clone(),
                        url: spec.url.clone(),
                        fail_close: !fail_open,
                        listeners: spec.listeners.clone(),
                        traffic: spec.traffic.clone(),
                        error: e.to_string(),
                        attempted_at: std::time::SystemTime::now(),
                    });
                    continue;
                }
                Err(e) => {
                    let e = GenerationError::Plugin {
                        plugin: name.clone(),
                        reason: e.to_string(),
                    };
                    if fail_open {
                        tracing::warn!("{e}; the plugin is FAIL_OPEN, so it is skipped");
                        skipped.push((name, e.to_string()));
                    } else {
                        errors.push(e);
                    }
                    continue;
                }
            };
            if let Some(note) = &module.note {
                tracing::warn!(plugin = %name, "{note}");
            }
            let loaded = async {
                let bytes = module.bytes;
                let source = module.source_desc;
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
                Ok::<_, GenerationError>(LoadedPlugin {
                    plugin,
                    listeners: spec.listeners.clone(),
                    traffic: spec.traffic.clone(),
                    source,
                    note: module.note,
                    fetched_at: std::time::SystemTime::now(),
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
            pending_plugins: pending,
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
