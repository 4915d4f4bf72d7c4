//! `weft-filter-test`: test a proxy-wasm filter in-process against weft's
//! real Wasm host (`weft-wasm-host`), with plain `#[test]` functions.
//!
//! A [`Harness`] loads a compiled `.wasm`, configures it as weft would
//! (`pluginConfig`, `vmConfig.env`, root id) and starts its VM on a
//! current-thread tokio runtime inside a `LocalSet` that it owns, so every
//! call below is synchronous. A [`Stream`] is one HTTP stream through the
//! filter: feed it request/response headers, bodies and trailers and read
//! back what the filter did — an [`Outcome`] per phase, headers, the
//! `weft.*` and other properties it wrote, the body bytes it let through.
//! HTTP calls the filter dispatches are recorded and either answered by a
//! handler ([`HarnessBuilder::on_http_call`]) or held until the test
//! answers them ([`Harness::answer`], then [`Stream::resume`]). The plugin's
//! log lines and metrics are readable too.
//!
//! ```no_run
//! use weft_filter_test::{Harness, Outcome, build_workspace_filter};
//! # fn main() -> Result<(), weft_filter_test::HarnessError> {
//! let wasm = build_workspace_filter("weft-filter-header-rewrite")?;
//! let h = Harness::load(wasm)
//!     .config(serde_json::json!({"rules": [{
//!         "requestHeaderModifier": {"set": [{"name": "x-env", "value": "test"}]}
//!     }]}))
//!     .start()?;
//! let mut s = h.stream();
//! assert_eq!(s.request_headers(&[(":path", "/x")])?, Outcome::Continue);
//! assert_eq!(s.request_header("x-env").as_deref(), Some("test"));
//! # Ok(()) }
//! ```
//!
//! # Time
//! The host drives `proxy_on_tick` from a real-time timer at the period the
//! filter sets; [`Harness::tick`] fires one by hand (a test that advances
//! time tick by tick), and [`Harness::run_for`] lets the timer's ticks run
//! while no phase is in flight. A phase that waits for a tick (a delayed
//! request) returns once a tick resumed it. Every wait is bounded by the phase timeout
//! (10 s by default, [`HarnessBuilder::phase_timeout`]).
//!
//! # Sharing
//! All harnesses of a test process share one host runtime (compiled modules
//! are cached by digest). Filter metrics and shared data are keyed by the
//! plugin's name and vm id, so tests that assert on them should give their
//! plugin a name of their own ([`HarnessBuilder::name`]).

mod calls;
mod wasm_build;

pub use calls::{CallResponse, HttpCall};
pub use wasm_build::{build_package, build_workspace_filter, workspace_root};
pub use weft_wasm_host::{ConnectionInfo, TlsInfo, weft_props};

use bytes::{Bytes, BytesMut};
use calls::{Boundary, Calls, Handler};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, LocalSet};
use weft_wasm_host::shared::MetricKind;
use weft_wasm_host::{
    BodyFlow, ChainStream, FailStrategy, FilterChain, Flow, HeaderBlock, HttpStream, LoadError,
    LocalReply, Plugin, PluginInstance, PluginOptions, PluginStats, Runtime, RuntimeOptions,
    VmError,
};

/// Everything that can go wrong in a harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot read the filter {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the wasm runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The VM did not start, or `on_configure` refused the configuration.
    #[error(transparent)]
    Start(#[from] VmError),
    #[error("header {name:?}: {reason}")]
    BadHeader { name: String, reason: String },
    #[error("{phase} did not finish within {timeout:?}")]
    Timeout {
        phase: &'static str,
        timeout: Duration,
    },
    #[error("{phase} is still in flight (paused); answer its HTTP calls and call resume()")]
    InFlight { phase: &'static str },
    #[error("nothing to resume: no phase is in flight")]
    NothingToResume,
    #[error("the stream is gone ({0})")]
    StreamGone(&'static str),
    #[error("no held HTTP call has id {0} (already answered, or answered by a handler)")]
    UnknownCall(u64),
    #[error("the filter's phase task panicked: {0}")]
    Panicked(String),
    #[error("building {package} for wasm32-wasip1: {reason}")]
    Build { package: String, reason: String },
}

/// A local reply the filter sent (`proxy_send_local_response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The details the filter gave (`response.code_details`).
    pub details: String,
    pub grpc_status: Option<u32>,
}

impl Reply {
    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl From<LocalReply> for Reply {
    fn from(r: LocalReply) -> Self {
        Reply {
            status: r.status,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect(),
            body: r.body,
            details: r.details,
            grpc_status: r.grpc_status,
        }
    }
}

/// How a phase ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The stream goes on (for a body chunk: bytes were let through, see
    /// [`Stream::forwarded_request_body`]).
    Continue,
    /// A body chunk with more to come was kept by the filter (it buffers).
    Buffered,
    /// The filter paused and waits for HTTP calls the test has not answered
    /// yet ([`Harness::pending_calls`]); answer them and [`Stream::resume`].
    Paused,
    /// The filter answered the client itself.
    LocalReply(Reply),
    /// The filter closed the stream.
    Reset,
}

impl Outcome {
    /// The local reply, if that is how the phase ended.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Outcome::LocalReply(r) => Some(r),
            _ => None,
        }
    }
}

/// A plugin log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl LogLevel {
    fn from_raw(v: i32) -> LogLevel {
        match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => LogLevel::Critical,
        }
    }
}

/// A line the plugin logged (`proxy_log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// A metric the plugin defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricValue {
    Counter(u64),
    Gauge(i64),
    /// Per-bucket counts (bounds in `weft_wasm_host::shared::HISTOGRAM_BOUNDS`,
    /// then +Inf) and the sum.
    Histogram {
        buckets: Vec<u64>,
        sum: u64,
    },
}

fn runtime() -> Result<Arc<Runtime>, HarnessError> {
    static RT: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(RuntimeOptions::default()).map_err(|e| e.to_string()))
        .clone()
        .map_err(HarnessError::Runtime)
}

enum Source {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

/// Configures a [`Harness`] before its VM starts.
pub struct HarnessBuilder {
    source: Source,
    options: PluginOptions,
    clusters: Option<Vec<String>>,
    handler: Option<Handler>,
    phase_timeout: Duration,
    connection: ConnectionInfo,
}

impl HarnessBuilder {
    /// `pluginConfig`, as JSON.
    pub fn config(mut self, config: serde_json::Value) -> Self {
        self.options.configuration = Bytes::from(config.to_string());
        self
    }

    /// The plugin configuration as raw bytes (malformed input on purpose).
    pub fn config_bytes(mut self, bytes: impl Into<Bytes>) -> Self {
        self.options.configuration = bytes.into();
        self
    }

    /// The VM configuration (`proxy_on_vm_start`).
    pub fn vm_config(mut self, bytes: impl Into<Bytes>) -> Self {
        self.options.vm_configuration = bytes.into();
        self
    }

    /// A WASI environment variable (`vmConfig.env`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.env.push((key.into(), value.into()));
        self
    }

    /// The plugin's name (log lines, metrics, `plugin_name`); the vm id
    /// follows it. Defaults to the file's stem.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.options.vm_id = name.clone();
        self.options.name = name;
        self
    }

    /// The root id (`pluginName` in a WasmPlugin).
    pub fn root_id(mut self, id: impl Into<String>) -> Self {
        self.options.root_id = id.into();
        self
    }

    /// Skip the plugin when it fails instead of answering 503.
    pub fn fail_open(mut self) -> Self {
        self.options.fail_strategy = FailStrategy::FailOpen;
        self
    }

    /// The per-callback deadline (100 ms by default, as in weft).
    pub fn callback_timeout(mut self, d: Duration) -> Self {
        self.options.callback_timeout = d;
        self
    }

    /// The body buffering limit (1 MiB by default).
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.options.buffer_limit = bytes;
        self
    }

    /// The proxy's node name (`node.name`).
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.options.node.name = name.into();
        self
    }

    /// Declares a cluster HTTP calls may go to. Without any declared
    /// cluster, every name is accepted; once one is declared, a call to an
    /// undeclared cluster is refused by the host (`BadArgument`).
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.clusters.get_or_insert_with(Vec::new).push(name.into());
        self
    }

    /// Answers every HTTP call at once with `f`. Without a handler, calls
    /// are held until [`Harness::answer`].
    pub fn on_http_call(mut self, f: impl Fn(&HttpCall) -> CallResponse + 'static) -> Self {
        self.handler = Some(Rc::new(f));
        self
    }

    /// How long a phase may take before the harness gives up (10 s).
    pub fn phase_timeout(mut self, d: Duration) -> Self {
        self.phase_timeout = d;
        self
    }

    /// The downstream connection every stream starts with (change it per
    /// stream with [`Stream::set_connection`]).
    pub fn connection(mut self, info: ConnectionInfo) -> Self {
        self.connection = info;
        self
    }

    /// Compiles the module, starts its VM (`proxy_on_vm_start`,
    /// `proxy_on_configure`) and returns the harness. A refused
    /// configuration is [`HarnessError::Start`].
    pub fn start(self) -> Result<Harness, HarnessError> {
        let bytes = match self.source {
            Source::Bytes(b) => b,
            Source::Path(path) => {
                std::fs::read(&path).map_err(|source| HarnessError::Read { path, source })?
            }
        };
        let runtime = runtime()?;
        let mut options = self.options;
        options.capture_logs = true;
        let plugin = Plugin::load(&runtime, &bytes, options)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HarnessError::Runtime(format!("tokio: {e}")))?;
        let local = LocalSet::new();
        let calls = Rc::new(RefCell::new(Calls::default()));
        let held = Rc::new(Notify::new());
        let boundary = Rc::new(Boundary {
            clusters: self.clusters.map(Arc::new),
            handler: self.handler,
            calls: calls.clone(),
            held: held.clone(),
        });
        let instance = local.block_on(&rt, PluginInstance::start(plugin.clone(), boundary))?;
        Ok(Harness {
            chain: FilterChain::new(vec![instance.clone()]),
            instance,
            plugin,
            runtime,
            calls,
            held,
            phase_timeout: self.phase_timeout,
            connection: Arc::new(self.connection),
            streams: Cell::new(0),
            local,
            rt,
        })
    }
}

/// A filter loaded into weft's host, ready to run streams.
pub struct Harness {
    chain: FilterChain,
    instance: Rc<PluginInstance>,
    plugin: Arc<Plugin>,
    runtime: Arc<Runtime>,
    calls: Rc<RefCell<Calls>>,
    held: Rc<Notify>,
    phase_timeout: Duration,
    connection: Arc<ConnectionInfo>,
    streams: Cell<u64>,
    // Dropped last: the VMs' tasks live in the LocalSet on this runtime.
    local: LocalSet,
    rt: tokio::runtime::Runtime,
}

fn default_options(name: &str) -> PluginOptions {
    PluginOptions::new(name)
}

impl Harness {
    /// Starts configuring a harness for the `.wasm` at `path` (read at
    /// [`HarnessBuilder::start`]).
    pub fn load(path: impl AsRef<Path>) -> HarnessBuilder {
        let path = path.as_ref().to_path_buf();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("filter")
            .replace('_', "-");
        Self::builder(Source::Path(path), &name)
    }

    /// Starts configuring a harness for a module given as bytes.
    pub fn from_bytes(name: &str, bytes: impl Into<Vec<u8>>) -> HarnessBuilder {
        Self::builder(Source::Bytes(bytes.into()), name)
    }

    fn builder(source: Source, name: &str) -> HarnessBuilder {
        HarnessBuilder {
            source,
            options: default_options(name),
            clusters: None,
            handler: None,
            phase_timeout: Duration::from_secs(10),
            connection: ConnectionInfo {
                id: 1,
                source: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))),
                destination: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))),
                tls: None,
            },
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.plugin.info.name
    }

    /// The host's plugin (info, stats).
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Opens a new stream (`proxy_on_context_create`). Its request id is
    /// `test-N`, its protocol `HTTP/1.1`.
    pub fn stream(&self) -> Stream<'_> {
        let n = self.streams.get() + 1;
        self.streams.set(n);
        let data = Box::new(HttpStream {
            connection: self.connection.clone(),
            request_id: format!("test-{n}"),
            protocol: "HTTP/1.1",
            start_time: Some(SystemTime::now()),
            ..HttpStream::default()
        });
        let chain = self.local.block_on(&self.rt, self.chain.start(data));
        Stream {
            h: self,
            chain: Some(chain),
            inflight: None,
            forwarded_request: BytesMut::new(),
            forwarded_response: BytesMut::new(),
        }
    }

    /// Every HTTP call the filter dispatched so far, answered or not.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.calls.borrow().all.clone()
    }

    /// The HTTP calls held for the test to answer.
    pub fn pending_calls(&self) -> Vec<HttpCall> {
        let calls = self.calls.borrow();
        calls
            .all
            .iter()
            .filter(|c| calls.held.contains_key(&c.id))
            .cloned()
            .collect()
    }

    /// Answers a held HTTP call; the filter's `on_http_call_response` runs
    /// when the runtime is next driven ([`Stream::resume`], a phase, or
    /// [`Harness::run_for`]).
    pub fn answer(&self, id: u64, response: CallResponse) -> Result<(), HarnessError> {
        if calls::answer(&self.calls, id, response) {
            Ok(())
        } else {
            Err(HarnessError::UnknownCall(id))
        }
    }

    /// Fires the plugin's `proxy_on_tick` now (whatever period it set), then
    /// lets the runtime settle what the tick started (a resumed stream, a
    /// dispatched call).
    pub fn tick(&self) -> Result<(), HarnessError> {
        self.local.block_on(&self.rt, async {
            let vm = self.instance.vm().await?;
            vm.tick().await;
            tokio::task::yield_now().await;
            Ok::<_, HarnessError>(())
        })
    }

    /// Lets the runtime run for `d` of real time (ticks, call answers,
    /// queue wake-ups) with no phase in flight.
    pub fn run_for(&self, d: Duration) {
        self.local.block_on(&self.rt, tokio::time::sleep(d));
    }

    /// The plugin's log lines so far.
    pub fn logs(&self) -> Vec<LogLine> {
        self.plugin
            .info
            .log_sink
            .lines()
            .into_iter()
            .map(|(level, message)| LogLine {
                level: LogLevel::from_raw(level),
                message,
            })
            .collect()
    }

    /// Whether some log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.logs().iter().any(|l| l.message.contains(text))
    }

    /// A metric the plugin defined, by name.
    pub fn metric(&self, name: &str) -> Option<MetricValue> {
        let metric = self
            .runtime
            .shared()
            .metrics
            .snapshot()
            .into_iter()
            .find(|m| m.plugin == self.plugin.info.name && m.name == name)?;
        Some(match metric.kind {
            MetricKind::Counter => MetricValue::Counter(metric.get().unwrap_or(0)),
            MetricKind::Gauge => MetricValue::Gauge(metric.get().unwrap_or(0) as i64),
            MetricKind::Histogram => {
                let (buckets, sum) = metric.histogram();
                MetricValue::Histogram { buckets, sum }
            }
        })
    }

    /// A shared-data value of the plugin's vm id.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.runtime
            .shared()
            .get(&self.plugin.info.vm_id, key.as_bytes())
            .map(|(v, _)| v)
    }

    /// Times the plugin's VM trapped, overran its deadline or memory.
    pub fn traps(&self) -> u64 {
        PluginStats::get(&self.plugin.stats.traps)
    }
}

enum Step {
    Headers(Flow),
    Body(BodyFlow, bool),
}

struct InFlight {
    phase: &'static str,
    join: JoinHandle<(ChainStream, Step)>,
    /// The first call id this phase may have dispatched.
    first_call: u64,
}

/// Lets a phase task run as far as it can without waiting on anything
/// (bounded: 32 scheduler turns).
async fn settle<T>(join: &JoinHandle<T>) {
    for _ in 0..32 {
        if join.is_finished() {
            return;
        }
        tokio::task::yield_now().await;
    }
}

enum Driven {
    Done(Box<Result<(ChainStream, Step), tokio::task::JoinError>>),
    Paused(JoinHandle<(ChainStream, Step)>),
    TimedOut(JoinHandle<(ChainStream, Step)>),
}

/// One HTTP stream through the filter. Dropping it ends the stream
/// (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`), as
/// [`Stream::finish`] does.
pub struct Stream<'h> {
    h: &'h Harness,
    chain: Option<ChainStream>,
    inflight: Option<InFlight>,
    forwarded_request: BytesMut,
    forwarded_response: BytesMut,
}

fn block(
    pairs: &[(&str, &str)],
    defaults: &[(&'static str, &str)],
) -> Result<HeaderBlock, HarnessError> {
    let mut b = HeaderBlock::default();
    for (name, value) in defaults {
        if !pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            b.set_pseudo(name, Bytes::copy_from_slice(value.as_bytes()));
        }
    }
    for (k, v) in pairs {
        b.add(k.as_bytes(), v.as_bytes())
            .map_err(|e| HarnessError::BadHeader {
                name: (*k).to_owned(),
                reason: format!("not a valid header (the host says {e:?})"),
            })?;
    }
    Ok(b)
}

const REQUEST_DEFAULTS: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "http"),
    (":authority", "example.test"),
    (":path", "/"),
];
const RESPONSE_DEFAULTS: [(&str, &str); 1] = [(":status", "200")];

impl Stream<'_> {
    fn chain(&mut self, phase: &'static str) -> Result<&mut ChainStream, HarnessError> {
        if let Some(f) = &self.inflight {
            return Err(HarnessError::InFlight { phase: f.phase });
        }
        self.chain.as_mut().ok_or(HarnessError::StreamGone(phase))
    }

    /// The stream's data (headers, properties…) as the host holds it.
    pub fn data(&self) -> Option<&HttpStream> {
        self.chain.as_ref().map(|c| c.data())
    }

    /// Replaces the downstream connection (client address, TLS/mTLS facts)
    /// before the first phase.
    pub fn set_connection(&mut self, info: ConnectionInfo) -> Result<(), HarnessError> {
        self.chain("set_connection")?.data_mut().connection = Arc::new(info);
        Ok(())
    }

    fn run<F, Fut>(&mut self, phase: &'static str, f: F) -> Result<Outcome, HarnessError>
    where
        F: FnOnce(ChainStream) -> Fut,
        Fut: Future<Output = (ChainStream, Step)> + 'static,
    {
        self.chain(phase)?;
        let Some(chain) = self.chain.take() else {
            return Err(HarnessError::StreamGone(phase));
        };
        let first_call = self.h.calls.borrow().next_id();
        let join = self.h.local.spawn_local(f(chain));
        self.drive(phase, join, first_call)
    }

    fn drive(
        &mut self,
        phase: &'static str,
        join: JoinHandle<(ChainStream, Step)>,
        first_call: u64,
    ) -> Result<Outcome, HarnessError> {
        let h = self.h;
        // Calls held from earlier phases or streams do not make this one paused.
        let pending = || h.calls.borrow().held_since(first_call);
        let driven = h.local.block_on(&h.rt, async {
            let mut join = join;
            let deadline = tokio::time::sleep(h.phase_timeout);
            tokio::pin!(deadline);
            // Let the phase run as far as it can before looking at calls.
            settle(&join).await;
            if !join.is_finished() && pending() {
                return Driven::Paused(join);
            }
            loop {
                tokio::select! {
                    r = &mut join => return Driven::Done(Box::new(r)),
                    _ = h.held.notified() => {
                        settle(&join).await;
                        if !join.is_finished() && pending() {
                            return Driven::Paused(join);
                        }
                    }
                    _ = &mut deadline => return Driven::TimedOut(join),
                }
            }
        });
        match driven {
            Driven::Paused(join) => {
                self.inflight = Some(InFlight {
                    phase,
                    join,
                    first_call,
                });
                Ok(Outcome::Paused)
            }
            Driven::TimedOut(join) => {
                join.abort();
                // Let the aborted task drop (its stream ends in the background).
                h.local.block_on(&h.rt, tokio::task::yield_now());
                Err(HarnessError::Timeout {
                    phase,
                    timeout: h.phase_timeout,
                })
            }
            Driven::Done(done) => {
                let (chain, step) = (*done).map_err(|e| HarnessError::Panicked(e.to_string()))?;
                self.chain = Some(chain);
                Ok(match step {
                    Step::Headers(Flow::Continue) => Outcome::Continue,
                    Step::Headers(Flow::LocalReply(r)) | Step::Body(BodyFlow::LocalReply(r), _) => {
                        Outcome::LocalReply(r.into())
                    }
                    Step::Headers(Flow::Reset) | Step::Body(BodyFlow::Reset, _) => Outcome::Reset,
                    Step::Body(BodyFlow::Hold, _) => Outcome::Buffered,
                    Step::Body(BodyFlow::Forward(bytes), request) => {
                        if request {
                            self.forwarded_request.extend_from_slice(&bytes);
                        } else {
                            self.forwarded_response.extend_from_slice(&bytes);
                        }
                        Outcome::Continue
                    }
                })
            }
        }
    }

    /// Continues the phase that returned [`Outcome::Paused`], once its
    /// HTTP calls are answered.
    pub fn resume(&mut self) -> Result<Outcome, HarnessError> {
        let Some(InFlight {
            phase,
            join,
            first_call,
        }) = self.inflight.take()
        else {
            return Err(HarnessError::NothingToResume);
        };
        self.drive(phase, join, first_call)
    }

    fn headers_phase(
        &mut self,
        phase: &'static str,
        pairs: &[(&str, &str)],
        end_of_stream: bool,
        request: bool,
    ) -> Result<Outcome, HarnessError> {
        let defaults: &[(&str, &str)] = if request {
            &REQUEST_DEFAULTS
        } else {
            &RESPONSE_DEFAULTS
        };
        let b = block(pairs, defaults)?;
        let data = self.chain(phase)?.data_mut();
        if request {
            data.request_headers = b;
        } else {
            data.response_headers = b;
        }
        self.run(phase, move |mut c| async move {
            let flow = if request {
                c.request_headers(end_of_stream).await
            } else {
                c.response_headers(end_of_stream).await
            };
            (c, Step::Headers(flow))
        })
    }

    /// Request headers with a body to follow. Missing pseudo headers get
    /// defaults: `:method GET`, `:scheme http`, `:authority example.test`,
    /// `:path /`.
    pub fn request_headers(&mut self, headers: &[(&str, &str)]) -> Result<Outcome, HarnessError> {
        self.headers_phase("request headers", headers, false, true)
    }

    /// Request headers that end the request (no body).
    pub fn request_headers_end(
        &mut self,
        headers: &[(&str, &str)],
    ) -> Result<Outcome, HarnessError> {
        self.headers_phase("request headers", headers, true, true)
    }

    /// Response headers with a body to follow (`:status` defaults to 200).
    pub fn response_headers(&mut self, headers: &[(&str, &str)]) -> Result<Outcome, HarnessError> {
        self.headers_phase("response headers", headers, false, false)
    }

    /// Response headers that end the response.
    pub fn response_headers_end(
        &mut self,
        headers: &[(&str, &str)],
    ) -> Result<Outcome, HarnessError> {
        self.headers_phase("response headers", headers, true, false)
    }

    fn body_phase(
        &mut self,
        phase: &'static str,
        chunk: Bytes,
        end_of_stream: bool,
        request: bool,
    ) -> Result<Outcome, HarnessError> {
        let limit = self.h.plugin.info.buffer_limit;
        self.run(phase, move |mut c| async move {
            let flow = if request {
                c.request_body(chunk, end_of_stream, limit).await
            } else {
                c.response_body(chunk, end_of_stream, limit).await
            };
            (c, Step::Body(flow, request))
        })
    }

    /// A request body chunk; `end_of_stream` marks the last one.
    pub fn request_body(
        &mut self,
        chunk: impl Into<Bytes>,
        end_of_stream: bool,
    ) -> Result<Outcome, HarnessError> {
        self.body_phase("request body", chunk.into(), end_of_stream, true)
    }

    /// A response body chunk.
    pub fn response_body(
        &mut self,
        chunk: impl Into<Bytes>,
        end_of_stream: bool,
    ) -> Result<Outcome, HarnessError> {
        self.body_phase("response body", chunk.into(), end_of_stream, false)
    }

    fn trailers_phase(
        &mut self,
        phase: &'static str,
        pairs: &[(&str, &str)],
        request: bool,
    ) -> Result<Outcome, HarnessError> {
        let b = block(pairs, &[])?;
        let data = self.chain(phase)?.data_mut();
        if request {
            data.request_trailers = b;
        } else {
            data.response_trailers = b;
        }
        self.run(phase, move |mut c| async move {
            let flow = if request {
                c.request_trailers().await
            } else {
                c.response_trailers().await
            };
            (c, Step::Headers(flow))
        })
    }

    pub fn request_trailers(&mut self, trailers: &[(&str, &str)]) -> Result<Outcome, HarnessError> {
        self.trailers_phase("request trailers", trailers, true)
    }

    pub fn response_trailers(
        &mut self,
        trailers: &[(&str, &str)],
    ) -> Result<Outcome, HarnessError> {
        self.trailers_phase("response trailers", trailers, false)
    }

    fn text(block: &HeaderBlock, name: &str) -> Option<String> {
        block
            .get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// A request header as the filter left it (several values joined with
    /// `,`); pseudo headers too (`:path`).
    pub fn request_header(&self, name: &str) -> Option<String> {
        Self::text(&self.data()?.request_headers, name)
    }

    /// Shorthand for [`Stream::request_header`].
    pub fn header(&self, name: &str) -> Option<String> {
        self.request_header(name)
    }

    /// A response header as the filter left it.
    pub fn response_header(&self, name: &str) -> Option<String> {
        Self::text(&self.data()?.response_headers, name)
    }

    /// Every request header, pseudo headers first.
    pub fn request_header_list(&self) -> Vec<(String, String)> {
        self.data()
            .map(|d| calls::pairs(&d.request_headers))
            .unwrap_or_default()
    }

    /// Every response header, pseudo headers first.
    pub fn response_header_list(&self) -> Vec<(String, String)> {
        self.data()
            .map(|d| calls::pairs(&d.response_headers))
            .unwrap_or_default()
    }

    /// A property the filter wrote, as text (`weft.cluster`).
    pub fn property(&self, path: &str) -> Option<String> {
        self.data()?.property_str(path).map(str::to_owned)
    }

    /// A property the filter wrote, as bytes.
    pub fn property_bytes(&self, path: &str) -> Option<Bytes> {
        self.data()?.properties.get(path).cloned()
    }

    /// Request body bytes the filter let through so far.
    pub fn forwarded_request_body(&self) -> &[u8] {
        &self.forwarded_request
    }

    /// Response body bytes the filter let through so far.
    pub fn forwarded_response_body(&self) -> &[u8] {
        &self.forwarded_response
    }

    /// Ends the stream (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`).
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        let h = self.h;
        if let Some(f) = self.inflight.take() {
            f.join.abort();
            h.local.block_on(&h.rt, tokio::task::yield_now());
        }
        if let Some(chain) = self.chain.take() {
            let timeout = h.phase_timeout;
            h.local.block_on(&h.rt, async move {
                // Bounded like every phase; a stuck VM is left behind.
                let _ = tokio::time::timeout(timeout, chain.finish()).await;
            });
        }
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        self.end();
    }
}
