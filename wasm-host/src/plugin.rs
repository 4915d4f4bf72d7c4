//! What a plugin is, independent of any VM: its identity, configuration,
//! limits and failure policy, plus counters shared by all its VMs.

use bytes::Bytes;
use parking_lot::Mutex;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What happens to a stream when its plugin cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailStrategy {
    /// Answer the stream with a 503 naming the plugin.
    #[default]
    FailClose,
    /// Skip the plugin for that stream.
    FailOpen,
}

/// The node a proxy runs as (`node.*` properties).
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    pub namespace: String,
    pub labels: Vec<(String, String)>,
}

/// Everything needed to run a plugin, as the proxy's config describes it.
#[derive(Clone, Debug)]
pub struct PluginOptions {
    /// The plugin's name (log field, metric label, errors).
    pub name: String,
    /// The root id handed to the module (`pluginName` in a WasmPlugin).
    pub root_id: String,
    /// VMs with one vm id share shared-data and queue namespaces.
    pub vm_id: String,
    /// `pluginConfig`, as JSON bytes.
    pub configuration: Bytes,
    /// `vmConfig` configuration bytes (`proxy_on_vm_start`).
    pub vm_configuration: Bytes,
    /// WASI environment (`vmConfig.env`).
    pub env: Vec<(String, String)>,
    pub fail_strategy: FailStrategy,
    /// Cap on a VM's linear memory.
    pub memory_limit: usize,
    /// Wall-clock deadline of one callback.
    pub callback_timeout: Duration,
    /// Per-stream body buffering limit.
    pub buffer_limit: usize,
    pub node: NodeInfo,
    /// Keep the plugin's log lines in memory (for tests and the SDK harness).
    pub capture_logs: bool,
}

impl PluginOptions {
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        PluginOptions {
            root_id: String::new(),
            vm_id: name.clone(),
            name,
            configuration: Bytes::new(),
            vm_configuration: Bytes::new(),
            env: Vec::new(),
            fail_strategy: FailStrategy::FailClose,
            memory_limit: 64 << 20,
            callback_timeout: Duration::from_millis(100),
            buffer_limit: 1 << 20,
            node: NodeInfo::default(),
            capture_logs: false,
        }
    }
}

/// Log lines a plugin wrote, kept when `capture_logs` is set.
#[derive(Debug, Default)]
pub struct LogSink {
    enabled: bool,
    lines: Mutex<Vec<(i32, String)>>,
}

impl LogSink {
    pub(crate) fn record(&self, level: i32, msg: &str) {
        if self.enabled {
            self.lines.lock().push((level, msg.to_owned()));
        }
    }

    /// The captured lines (level, message).
    pub fn lines(&self) -> Vec<(i32, String)> {
        self.lines.lock().clone()
    }
}

/// Immutable plugin facts visible to every VM of the plugin.
#[derive(Debug)]
pub struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub configuration: Bytes,
    pub vm_configuration: Bytes,
    pub env: Vec<(String, String)>,
    pub fail_strategy: FailStrategy,
    pub memory_limit: usize,
    pub callback_timeout: Duration,
    pub buffer_limit: usize,
    pub node: NodeInfo,
    pub log_sink: LogSink,
}

impl From<PluginOptions> for PluginInfo {
    fn from(o: PluginOptions) -> Self {
        PluginInfo {
            name: o.name,
            root_id: o.root_id,
            vm_id: o.vm_id,
            configuration: o.configuration,
            vm_configuration: o.vm_configuration,
            env: o.env,
            fail_strategy: o.fail_strategy,
            memory_limit: o.memory_limit,
            callback_timeout: o.callback_timeout,
            buffer_limit: o.buffer_limit,
            node: o.node,
            log_sink: LogSink {
                enabled: o.capture_logs,
                lines: Mutex::new(Vec::new()),
            },
        }
    }
}

/// Counters of one plugin across all workers.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub traps: AtomicU64,
    pub deadline_hits: AtomicU64,
    pub memory_limit_hits: AtomicU64,
    pub restarts: AtomicU64,
    pub fail_closed: AtomicU64,
    pub fail_opened: AtomicU64,
    pub vms_started: AtomicU64,
}

impl PluginStats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
