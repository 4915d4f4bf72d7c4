//! Plugin VMs on a worker thread.
//!
//! A [`Plugin`] (module + options + counters) is shared by all workers; each
//! worker holds a [`PluginInstance`] for it, which owns the worker's current
//! [`Vm`] and replaces it when it fails. A `Vm` is one wasmtime instance
//! with its root context; streams lend their data to it for each callback.
//! Background work of a VM (ticks, HTTP call answers, queue wake-ups) runs
//! as `spawn_local` tasks, so VMs must be used inside a tokio `LocalSet`.

use crate::abi::Action;
use crate::error::{LoadError, VmError};
use crate::host::{HostState, HttpCallRequest, HttpCallResponse, StreamSignal, StreamSlot};
use crate::plugin::{PluginInfo, PluginOptions, PluginStats};
use crate::runtime::{EPOCH_TICK, PluginModule};
use crate::stream::HttpStream;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::AbortHandle;
use wasmtime::{Instance, Store, Trap, TypedFunc, WasmParams, WasmResults};

/// What only the proxy can do for a plugin. The host knows nothing of
/// sockets: HTTP calls go through this boundary to the proxy's clusters.
pub trait ProxyBoundary {
    /// A check, callable from any thread, of whether a cluster exists
    /// (`proxy_http_call` to an unknown cluster answers `BadArgument`).
    fn cluster_exists(&self) -> Arc<dyn Fn(&str) -> bool + Send + Sync>;

    /// Sends an HTTP call to a cluster. Errors become an empty answer
    /// (no headers, no body), as in Envoy.
    fn http_call(
        &self,
        plugin: &str,
        request: HttpCallRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpCallResponse, String>>>>;
}

/// A plugin's module and options, shared by every worker.
pub struct Plugin {
    pub info: Arc<PluginInfo>,
    pub module: Arc<PluginModule>,
    pub stats: PluginStats,
}

impl Plugin {
    pub fn new(module: Arc<PluginModule>, options: PluginOptions) -> Arc<Plugin> {
        Arc::new(Plugin {
            info: Arc::new(options.into()),
            module,
            stats: PluginStats::default(),
        })
    }

    /// Compiles `bytes` and makes a plugin of it.
    pub fn load(
        runtime: &Arc<crate::Runtime>,
        bytes: &[u8],
        options: PluginOptions,
    ) -> Result<Arc<Plugin>, LoadError> {
        if options.memory_limit > runtime.max_memory {
            return Err(LoadError::MemoryLimit {
                module: options.name.clone(),
                limit: options.memory_limit,
                max: runtime.max_memory,
            });
        }
        let module = runtime.load(&options.name, bytes)?;
        Ok(Plugin::new(module, options))
    }
}

/// One plugin on one worker: its current VM, replaced after a failure.
pub struct PluginInstance {
    plugin: Arc<Plugin>,
    boundary: Rc<dyn ProxyBoundary>,
    current: RefCell<Option<Rc<Vm>>>,
}

impl PluginInstance {
    /// Starts the first VM (`proxy_on_vm_start`, `proxy_on_configure`);
    /// its failure is the plugin's load error.
    pub async fn start(
        plugin: Arc<Plugin>,
        boundary: Rc<dyn ProxyBoundary>,
    ) -> Result<Rc<PluginInstance>, VmError> {
        let vm = Vm::create(plugin.clone(), boundary.clone()).await?;
        Ok(Rc::new(PluginInstance {
            plugin,
            boundary,
            current: RefCell::new(Some(vm)),
        }))
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The VM for a new stream: the current one, or a fresh one when the
    /// current one failed.
    pub async fn vm(&self) -> Result<Rc<Vm>, VmError> {
        let current = self.current.borrow().clone();
        if let Some(vm) = current
            && !vm.broken.get()
        {
            return Ok(vm);
        }
        PluginStats::bump(&self.plugin.stats.restarts);
        tracing::warn!(plugin = %self.plugin.info.name, "replacing failed VM with a fresh instance");
        let vm = Vm::create(self.plugin.clone(), self.boundary.clone()).await?;
        *self.current.borrow_mut() = Some(vm.clone());
        Ok(vm)
    }
}

/// (context, token, headers, body size, trailers).
type HttpCallArgs = (i32, i32, i32, i32, i32);

#[derive(Clone)]
enum HeadersFn {
    V1(TypedFunc<(i32, i32), i32>),
    V2(TypedFunc<(i32, i32, i32), i32>),
}

struct Callbacks {
    on_context_create: TypedFunc<(i32, i32), ()>,
    on_vm_start: Option<TypedFunc<(i32, i32), i32>>,
    on_configure: Option<TypedFunc<(i32, i32), i32>>,
    on_tick: Option<TypedFunc<i32, ()>>,
    on_queue_ready: Option<TypedFunc<(i32, i32), ()>>,
    on_request_headers: Option<HeadersFn>,
    on_request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_response_headers: Option<HeadersFn>,
    on_response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_done: Option<TypedFunc<i32, i32>>,
    on_log: Option<TypedFunc<i32, ()>>,
    on_delete: Option<TypedFunc<i32, ()>>,
    on_http_call_response: Option<TypedFunc<HttpCallArgs, ()>>,
}

fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    plugin: &str,
    name: &'static str,
) -> Result<Option<TypedFunc<P, R>>, VmError> {
    match instance.get_func(&mut *store, name) {
        None => Ok(None),
        Some(f) => f
            .typed::<P, R>(&*store)
            .map(Some)
            .map_err(|e| VmError::BadExport {
                plugin: plugin.to_owned(),
                export: name,
                reason: format!("{e:#}"),
            }),
    }
}

fn headers_fn(
    instance: &Instance,
    store: &mut Store<HostState>,
    plugin: &str,
    name: &'static str,
) -> Result<Option<HeadersFn>, VmError> {
    let Some(f) = instance.get_func(&mut *store, name) else {
        return Ok(None);
    };
    if let Ok(t) = f.typed::<(i32, i32, i32), i32>(&*store) {
        return Ok(Some(HeadersFn::V2(t)));
    }
    f.typed::<(i32, i32), i32>(&*store)
        .map(|t| Some(HeadersFn::V1(t)))
        .map_err(|e| VmError::BadExport {
            plugin: plugin.to_owned(),
            export: name,
            reason: format!("{e:#}"),
        })
}

/// A stream phase handed to the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders { end_of_stream: bool },
    RequestBody { end_of_stream: bool },
    RequestTrailers,
    ResponseHeaders { end_of_stream: bool },
    ResponseBody { end_of_stream: bool },
    ResponseTrailers,
}

impl Phase {
    fn is_request(self) -> bool {
        matches!(
            self,
            Phase::RequestHeaders { .. } | Phase::RequestBody { .. } | Phase::RequestTrailers
        )
    }

    fn callback(self) -> &'static str {
        match self {
            Phase::RequestHeaders { .. } => "proxy_on_request_headers",
            Phase::RequestBody { .. } => "proxy_on_request_body",
            Phase::RequestTrailers => "proxy_on_request_trailers",
            Phase::ResponseHeaders { .. } => "proxy_on_response_headers",
            Phase::ResponseBody { .. } => "proxy_on_response_body",
            Phase::ResponseTrailers => "proxy_on_response_trailers",
        }
    }
}

/// How a phase ended for one filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Go on to the next filter.
    Continue,
    /// The filter keeps buffering the body (paused with more to come).
    Held,
    /// The filter sent a local reply (it is in the stream's data).
    LocalReply,
    /// The filter closed the stream.
    Closed,
}

struct VmInner {
    store: Store<HostState>,
    /// Shared so a callback can be borrowed while the store is mutably used.
    cb: Rc<Callbacks>,
}

/// One instance of a plugin's module on a worker.
pub struct Vm {
    inner: tokio::sync::Mutex<VmInner>,
    plugin: Arc<Plugin>,
    boundary: Rc<dyn ProxyBoundary>,
    this: Weak<Vm>,
    broken: Cell<bool>,
    next_context: Cell<u32>,
    tick: RefCell<Option<AbortHandle>>,
    tasks: RefCell<Vec<AbortHandle>>,
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(t) = self.tick.get_mut().take() {
            t.abort();
        }
        for t in self.tasks.get_mut().drain(..) {
            t.abort();
        }
    }
}

/// A stream's handle on a VM.
#[derive(Clone, Debug)]
pub struct StreamHandle {
    pub context_id: u32,
    signal: Arc<StreamSignal>,
}

const ROOT: u32 = 1;

impl Vm {
    /// Instantiates the module, creates the root context and runs
    /// `proxy_on_vm_start` and `proxy_on_configure`.
    pub async fn create(
        plugin: Arc<Plugin>,
        boundary: Rc<dyn ProxyBoundary>,
    ) -> Result<Rc<Vm>, VmError> {
        let info = plugin.info.clone();
        let name = info.name.clone();
        let runtime = plugin.module.runtime.clone();
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .envs(&info.env)
            .stdout(crate::wasi_log::LogStream::new(info.clone(), false))
            .stderr(crate::wasi_log::LogStream::new(info.clone(), true))
            .build_p1();
        let state = HostState::new(
            wasi,
            info.clone(),
            runtime.shared.clone(),
            boundary.cluster_exists(),
        );
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(info.callback_timeout));
        let instance = plugin
            .module
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| {
                if store.data().limiter.hit {
                    PluginStats::bump(&plugin.stats.memory_limit_hits);
                }
                VmError::Instantiate {
                    plugin: name.clone(),
                    reason: format!("{e:#}"),
                }
            })?;
        let memory =
            instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| VmError::Instantiate {
                    plugin: name.clone(),
                    reason: "the module exports no memory".into(),
                })?;
        let malloc =
            match typed::<i32, i32>(&instance, &mut store, &name, "proxy_on_memory_allocate")? {
                Some(f) => f,
                None => {
                    typed::<i32, i32>(&instance, &mut store, &name, "malloc")?.ok_or_else(|| {
                        VmError::Instantiate {
                            plugin: name.clone(),
                            reason: "the module exports no allocator".into(),
                        }
                    })?
                }
            };
        store.data_mut().memory = Some(memory);
        store.data_mut().malloc = Some(Arc::new(malloc));
        let (queue_tx, mut queue_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        store.data_mut().queue_notify = Some(queue_tx);
        let on_context_create = typed(&instance, &mut store, &name, "proxy_on_context_create")?
            .ok_or_else(|| VmError::BadExport {
                plugin: name.clone(),
                export: "proxy_on_context_create",
                reason: "missing".into(),
            })?;
        let cb = Callbacks {
            on_context_create,
            on_vm_start: typed(&instance, &mut store, &name, "proxy_on_vm_start")?,
            on_configure: typed(&instance, &mut store, &name, "proxy_on_configure")?,
            on_tick: typed(&instance, &mut store, &name, "proxy_on_tick")?,
            on_queue_ready: typed(&instance, &mut store, &name, "proxy_on_queue_ready")?,
            on_request_headers: headers_fn(
                &instance,
                &mut store,
                &name,
                "proxy_on_request_headers",
            )?,
            on_request_body: typed(&instance, &mut store, &name, "proxy_on_request_body")?,
            on_request_trailers: typed(&instance, &mut store, &name, "proxy_on_request_trailers")?,
            on_response_headers: headers_fn(
                &instance,
                &mut store,
                &name,
                "proxy_on_response_headers",
            )?,
            on_response_body: typed(&instance, &mut store, &name, "proxy_on_response_body")?,
            on_response_trailers: typed(
                &instance,
                &mut store,
                &name,
                "proxy_on_response_trailers",
            )?,
            on_done: typed(&instance, &mut store, &name, "proxy_on_done")?,
            on_log: typed(&instance, &mut store, &name, "proxy_on_log")?,
            on_delete: typed(&instance, &mut store, &name, "proxy_on_delete")?,
            on_http_call_response: typed(
                &instance,
                &mut store,
                &name,
                "proxy_on_http_call_response",
            )?,
        };
        let init = match typed::<(), ()>(&instance, &mut store, &name, "_initialize")? {
            Some(f) => Some(("_initialize", f)),
            None => typed::<(), ()>(&instance, &mut store, &name, "_start")?.map(|f| ("_start", f)),
        };
        let mut inner = VmInner {
            store,
            cb: Rc::new(cb),
        };
        if let Some((callback, f)) = init {
            inner.invoke(&plugin, callback, ROOT, &f, ()).await?;
        }
        let cb = inner.cb.clone();
        let create = &cb.on_context_create;
        inner
            .invoke(
                &plugin,
                "proxy_on_context_create",
                ROOT,
                create,
                (ROOT as i32, 0),
            )
            .await?;
        if let Some(f) = &cb.on_vm_start {
            let size = info.vm_configuration.len() as i32;
            if inner
                .invoke(&plugin, "proxy_on_vm_start", ROOT, f, (ROOT as i32, size))
                .await?
                == 0
            {
                return Err(VmError::StartRefused {
                    plugin: name,
                    reason: inner.store.data_mut().last_complaint.take(),
                });
            }
        }
        if let Some(f) = &cb.on_configure {
            let size = info.configuration.len() as i32;
            if inner
                .invoke(&plugin, "proxy_on_configure", ROOT, f, (ROOT as i32, size))
                .await?
                == 0
            {
                return Err(VmError::ConfigureRefused {
                    plugin: name,
                    reason: inner.store.data_mut().last_complaint.take(),
                });
            }
        }
        PluginStats::bump(&plugin.stats.vms_started);
        let vm = Rc::new_cyclic(|this| Vm {
            inner: tokio::sync::Mutex::new(inner),
            plugin,
            boundary,
            this: this.clone(),
            broken: Cell::new(false),
            next_context: Cell::new(ROOT + 1),
            tick: RefCell::new(None),
            tasks: RefCell::new(Vec::new()),
        });
        {
            let mut inner = vm.inner.try_lock().map_err(|_| VmError::Discarded {
                plugin: name.clone(),
            })?;
            vm.apply_effects(&mut inner);
        }
        let weak = vm.this.clone();
        let queue_task = tokio::task::spawn_local(async move {
            while let Some(id) = queue_rx.recv().await {
                let Some(vm) = weak.upgrade() else { return };
                vm.on_queue_ready(id).await;
            }
        });
        vm.tasks.borrow_mut().push(queue_task.abort_handle());
        Ok(vm)
    }

    /// Whether this VM failed and must not take new streams.
    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    fn fail(&self, inner: &mut VmInner, err: &VmError) {
        if self.broken.replace(true) {
            return;
        }
        tracing::error!(plugin = %self.plugin.info.name, "{err}; the VM is discarded");
        if let Some(t) = self.tick.borrow_mut().take() {
            t.abort();
        }
        for slot in inner.store.data().streams.values() {
            slot.signal.raise(StreamSignal::VM_FAILED);
        }
    }

    fn apply_effects(&self, inner: &mut VmInner) {
        let effects = std::mem::take(&mut inner.store.data_mut().effects);
        if let Some(period) = effects.tick_period {
            self.set_tick(period);
        }
        for (token, request) in effects.http_calls {
            let call = self.boundary.http_call(&self.plugin.info.name, request);
            let weak = self.this.clone();
            let task = tokio::task::spawn_local(async move {
                let answer = call.await;
                if let Some(vm) = weak.upgrade() {
                    vm.deliver_http_call(token, answer).await;
                }
            });
            let mut tasks = self.tasks.borrow_mut();
            tasks.retain(|t| !t.is_finished());
            tasks.push(task.abort_handle());
        }
    }

    fn set_tick(&self, period: Duration) {
        if let Some(t) = self.tick.borrow_mut().take() {
            t.abort();
        }
        if period.is_zero() {
            return;
        }
        let weak = self.this.clone();
        let task = tokio::task::spawn_local(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                interval.tick().await;
                let Some(vm) = weak.upgrade() else { return };
                if vm.broken.get() {
                    return;
                }
                vm.on_tick().await;
            }
        });
        *self.tick.borrow_mut() = Some(task.abort_handle());
    }

    /// Runs the root context's `proxy_on_tick` now, as the tick timer does
    /// (for test harnesses that drive time by hand; a filter's own period
    /// keeps running too).
    pub async fn tick(&self) {
        self.on_tick().await;
    }

    async fn on_tick(&self) {
        let mut inner = self.inner.lock().await;
        if self.broken.get() {
            return;
        }
        let cb = inner.cb.clone();
        if let Some(f) = &cb.on_tick {
            let r = inner
                .invoke(&self.plugin, "proxy_on_tick", ROOT, f, ROOT as i32)
                .await;
            let _ = self.settle(&mut inner, r);
        }
    }

    async fn on_queue_ready(&self, id: u32) {
        let mut inner = self.inner.lock().await;
        if self.broken.get() {
            return;
        }
        let cb = inner.cb.clone();
        if let Some(f) = &cb.on_queue_ready {
            let r = inner
                .invoke(
                    &self.plugin,
                    "proxy_on_queue_ready",
                    ROOT,
                    f,
                    (ROOT as i32, id as i32),
                )
                .await;
            let _ = self.settle(&mut inner, r);
        }
    }

    async fn deliver_http_call(&self, token: u32, answer: Result<HttpCallResponse, String>) {
        let mut inner = self.inner.lock().await;
        if self.broken.get() {
            return;
        }
        let st = inner.store.data_mut();
        let Some(owner) = st.http_call_owner.remove(&token) else {
            return;
        };
        if owner != ROOT && !st.streams.contains_key(&owner) {
            return;
        }
        let answer = answer.unwrap_or_else(|reason| {
            tracing::debug!(plugin = %self.plugin.info.name, token, "http call failed: {reason}");
            HttpCallResponse::default()
        });
        let args = (
            owner as i32,
            token as i32,
            answer.headers.len() as i32,
            answer.body.len() as i32,
            answer.trailers.len() as i32,
        );
        st.http_call_response = Some(answer);
        let cb = inner.cb.clone();
        if let Some(f) = &cb.on_http_call_response {
            let r = inner
                .invoke(&self.plugin, "proxy_on_http_call_response", owner, f, args)
                .await;
            let _ = self.settle(&mut inner, r);
        }
        inner.store.data_mut().http_call_response = None;
    }

    fn settle<T>(&self, inner: &mut VmInner, r: Result<T, VmError>) -> Result<T, VmError> {
        match r {
            Ok(v) => {
                self.apply_effects(inner);
                Ok(v)
            }
            Err(e) => {
                self.fail(inner, &e);
                Err(e)
            }
        }
    }

    /// Creates a stream context (`proxy_on_context_create(id, root)`).
    pub async fn open_stream(&self) -> Result<StreamHandle, VmError> {
        let mut inner = self.inner.lock().await;
        if self.broken.get() {
            return Err(VmError::Discarded {
                plugin: self.plugin.info.name.clone(),
            });
        }
        let id = self.next_context.get();
        self.next_context.set(id.wrapping_add(1).max(ROOT + 1));
        let signal = Arc::new(StreamSignal::default());
        inner.store.data_mut().streams.insert(
            id,
            StreamSlot {
                data: None,
                signal: signal.clone(),
            },
        );
        let cb = inner.cb.clone();
        let f = &cb.on_context_create;
        match inner
            .invoke(
                &self.plugin,
                "proxy_on_context_create",
                id,
                f,
                (id as i32, ROOT as i32),
            )
            .await
        {
            Ok(()) => Ok(StreamHandle {
                context_id: id,
                signal,
            }),
            Err(e) => {
                inner.store.data_mut().streams.remove(&id);
                self.fail(&mut inner, &e);
                Err(e)
            }
        }
    }

    /// Runs one phase of a stream. The data is lent to the VM for the
    /// callback and, when the filter pauses, until it resumes the stream,
    /// replies locally, or the VM fails; with `wait` false (a body chunk
    /// with more to come) a pause returns [`Outcome::Held`] at once.
    pub async fn call_stream(
        &self,
        handle: &StreamHandle,
        phase: Phase,
        data: Box<HttpStream>,
        wait: bool,
    ) -> (Option<Box<HttpStream>>, Result<Outcome, VmError>) {
        let ctx = handle.context_id;
        let mut inner = self.inner.lock().await;
        if self.broken.get() {
            return (
                Some(data),
                Err(VmError::Discarded {
                    plugin: self.plugin.info.name.clone(),
                }),
            );
        }
        let args = match phase {
            Phase::RequestHeaders { end_of_stream } => (data.request_headers.len(), end_of_stream),
            Phase::RequestBody { end_of_stream } => (data.request_body.len(), end_of_stream),
            Phase::RequestTrailers => (data.request_trailers.len(), false),
            Phase::ResponseHeaders { end_of_stream } => {
                (data.response_headers.len(), end_of_stream)
            }
            Phase::ResponseBody { end_of_stream } => (data.response_body.len(), end_of_stream),
            Phase::ResponseTrailers => (data.response_trailers.len(), false),
        };
        let (n, eos) = (args.0 as i32, i32::from(args.1));
        match inner.store.data_mut().streams.get_mut(&ctx) {
            Some(slot) => slot.data = Some(data),
            None => {
                return (
                    Some(data),
                    Err(VmError::Discarded {
                        plugin: self.plugin.info.name.clone(),
                    }),
                );
            }
        }
        handle.signal.take(u32::MAX);
        let cb = inner.cb.clone();
        let name = phase.callback();
        let result: Result<i32, VmError> = match phase {
            Phase::RequestHeaders { .. } | Phase::ResponseHeaders { .. } => {
                let f = if phase.is_request() {
                    &cb.on_request_headers
                } else {
                    &cb.on_response_headers
                };
                match f {
                    Some(HeadersFn::V2(f)) => {
                        inner
                            .invoke(&self.plugin, name, ctx, f, (ctx as i32, n, eos))
                            .await
                    }
                    Some(HeadersFn::V1(f)) => {
                        inner
                            .invoke(&self.plugin, name, ctx, f, (ctx as i32, n))
                            .await
                    }
                    None => Ok(0),
                }
            }
            Phase::RequestBody { .. } | Phase::ResponseBody { .. } => {
                let f = if phase.is_request() {
                    &cb.on_request_body
                } else {
                    &cb.on_response_body
                };
                match f {
                    Some(f) => {
                        inner
                            .invoke(&self.plugin, name, ctx, f, (ctx as i32, n, eos))
                            .await
                    }
                    None => Ok(0),
                }
            }
            Phase::RequestTrailers | Phase::ResponseTrailers => {
                let f = if phase.is_request() {
                    &cb.on_request_trailers
                } else {
                    &cb.on_response_trailers
                };
                match f {
                    Some(f) => {
                        inner
                            .invoke(&self.plugin, name, ctx, f, (ctx as i32, n))
                            .await
                    }
                    None => Ok(0),
                }
            }
        };
        let take = |inner: &mut VmInner| {
            inner
                .store
                .data_mut()
                .streams
                .get_mut(&ctx)
                .and_then(|s| s.data.take())
        };
        let action = match self.settle(&mut inner, result) {
            Ok(raw) => Action::from_raw(raw),
            Err(e) => return (take(&mut inner), Err(e)),
        };
        if action == Action::Continue {
            return (take(&mut inner), Ok(Outcome::Continue));
        }
        let has_reply = inner
            .store
            .data()
            .streams
            .get(&ctx)
            .and_then(|s| s.data.as_ref())
            .is_some_and(|d| d.local_reply.is_some());
        if has_reply {
            return (take(&mut inner), Ok(Outcome::LocalReply));
        }
        if !wait {
            return (take(&mut inner), Ok(Outcome::Held));
        }
        drop(inner);
        let resume = if phase.is_request() {
            StreamSignal::CONTINUE_REQUEST
        } else {
            StreamSignal::CONTINUE_RESPONSE
        };
        let mask =
            resume | StreamSignal::LOCAL_REPLY | StreamSignal::CLOSE | StreamSignal::VM_FAILED;
        let got = loop {
            let got = handle.signal.take(mask);
            if got != 0 {
                break got;
            }
            handle.signal.notify.notified().await;
        };
        let mut inner = self.inner.lock().await;
        let data = take(&mut inner);
        let outcome = if got & StreamSignal::VM_FAILED != 0 {
            Err(VmError::Discarded {
                plugin: self.plugin.info.name.clone(),
            })
        } else if got & StreamSignal::LOCAL_REPLY != 0
            && data.as_ref().is_some_and(|d| d.local_reply.is_some())
        {
            Ok(Outcome::LocalReply)
        } else if got & StreamSignal::CLOSE != 0 {
            Ok(Outcome::Closed)
        } else {
            Ok(Outcome::Continue)
        };
        (data, outcome)
    }

    /// Ends a stream on this VM: `proxy_on_done`, `proxy_on_log`,
    /// `proxy_on_delete`. `data` is the stream's data unless it is still
    /// parked in the VM (a stream dropped while paused).
    pub async fn close_stream(
        &self,
        handle: &StreamHandle,
        data: Option<Box<HttpStream>>,
    ) -> Option<Box<HttpStream>> {
        let ctx = handle.context_id;
        let mut inner = self.inner.lock().await;
        let Some(slot) = inner.store.data_mut().streams.get_mut(&ctx) else {
            return data;
        };
        if let Some(d) = data {
            slot.data = Some(d);
        }
        if !self.broken.get() {
            let callbacks = inner.cb.clone();
            let cb = (&callbacks.on_done, &callbacks.on_log, &callbacks.on_delete);
            if let Some(f) = cb.0 {
                let r = inner
                    .invoke(&self.plugin, "proxy_on_done", ctx, f, ctx as i32)
                    .await;
                let _ = self.settle(&mut inner, r);
            }
            if let (Some(f), false) = (cb.1, self.broken.get()) {
                let r = inner
                    .invoke(&self.plugin, "proxy_on_log", ctx, f, ctx as i32)
                    .await;
                let _ = self.settle(&mut inner, r);
            }
            if let (Some(f), false) = (cb.2, self.broken.get()) {
                let r = inner
                    .invoke(&self.plugin, "proxy_on_delete", ctx, f, ctx as i32)
                    .await;
                let _ = self.settle(&mut inner, r);
            }
        }
        inner
            .store
            .data_mut()
            .streams
            .remove(&ctx)
            .and_then(|s| s.data)
    }
}

fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

impl VmInner {
    async fn invoke<P, R>(
        &mut self,
        plugin: &Plugin,
        callback: &'static str,
        ctx: u32,
        f: &TypedFunc<P, R>,
        params: P,
    ) -> Result<R, VmError>
    where
        P: WasmParams + Sync,
        R: WasmResults + Sync,
    {
        self.store.data_mut().effective_context = ctx;
        self.store
            .set_epoch_deadline(deadline_ticks(plugin.info.callback_timeout));
        match f.call_async(&mut self.store, params).await {
            Ok(r) => Ok(r),
            Err(e) => {
                let name = plugin.info.name.clone();
                let err = if self.store.data().limiter.hit {
                    PluginStats::bump(&plugin.stats.memory_limit_hits);
                    VmError::MemoryLimit {
                        plugin: name,
                        callback,
                        limit: plugin.info.memory_limit,
                    }
                } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    PluginStats::bump(&plugin.stats.deadline_hits);
                    VmError::Deadline {
                        plugin: name,
                        callback,
                        timeout_ms: plugin.info.callback_timeout.as_millis() as u64,
                    }
                } else {
                    VmError::Trap {
                        plugin: name,
                        callback,
                        reason: format!("{e:#}"),
                    }
                };
                PluginStats::bump(&plugin.stats.traps);
                Err(err)
            }
        }
    }
}
