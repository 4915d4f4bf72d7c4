//! The store data of one VM ([`HostState`]) and every proxy-wasm hostcall,
//! registered on one [`wasmtime::Linker`] shared by all VMs.
//!
//! Hostcalls never trust the guest: every pointer and length is checked
//! against the guest's memory (→ `InvalidMemoryAccess`), every allocation
//! the guest answers is checked before the host writes into it, and no
//! hostcall can block. Effects that need the proxy's event loop (HTTP
//! calls, tick changes) are queued in [`Effects`] and carried out by the VM
//! wrapper once the callback returns.

use crate::abi::{self, Status, buffer, map, stream_type};
use crate::headers::HeaderBlock;
use crate::plugin::PluginInfo;
use crate::shared::{Metric, MetricKind, SharedState};
use crate::stream::{HttpStream, LocalReply};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use wasmtime::{Caller, Linker, Memory, ResourceLimiter, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;

/// Signals from the VM to a stream that waits on a paused phase.
#[derive(Default, Debug)]
pub struct StreamSignal {
    pub(crate) notify: Notify,
    pub(crate) flags: AtomicU32,
}

impl StreamSignal {
    pub(crate) const CONTINUE_REQUEST: u32 = 1;
    pub(crate) const CONTINUE_RESPONSE: u32 = 2;
    pub(crate) const LOCAL_REPLY: u32 = 4;
    pub(crate) const CLOSE: u32 = 8;
    pub(crate) const VM_FAILED: u32 = 16;

    pub(crate) fn raise(&self, flag: u32) {
        self.flags.fetch_or(flag, Ordering::AcqRel);
        self.notify.notify_one();
    }

    pub(crate) fn take(&self, mask: u32) -> u32 {
        self.flags.fetch_and(!mask, Ordering::AcqRel) & mask
    }
}

pub(crate) struct StreamSlot {
    /// The stream's data while it is lent to this VM.
    pub data: Option<Box<HttpStream>>,
    pub signal: Arc<StreamSignal>,
}

/// The answer to an HTTP call, visible during `proxy_on_http_call_response`.
#[derive(Debug, Default, Clone)]
pub struct HttpCallResponse {
    pub headers: HeaderBlock,
    pub body: Bytes,
    pub trailers: HeaderBlock,
}

/// An HTTP call a filter asked for (`proxy_http_call`).
#[derive(Debug, Clone)]
pub struct HttpCallRequest {
    pub cluster: String,
    pub headers: HeaderBlock,
    pub body: Bytes,
    pub trailers: HeaderBlock,
    pub timeout: Duration,
}

/// Work queued by hostcalls for the VM wrapper to carry out.
#[derive(Default)]
pub(crate) struct Effects {
    pub http_calls: Vec<(u32, HttpCallRequest)>,
    pub tick_period: Option<Duration>,
}

/// Caps a VM's linear memory and remembers that the cap was hit.
pub(crate) struct MemoryLimiter {
    pub max: usize,
    pub hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded (the module asked for {desired})",
                self.max
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Per-VM store data.
pub struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) plugin: Arc<PluginInfo>,
    pub(crate) shared: Arc<SharedState>,
    pub(crate) memory: Option<Memory>,
    /// The guest's allocator. Behind an `Arc` so a hostcall can hold it
    /// while lending the store to it (a `TypedFunc` clone costs a type
    /// registry reference).
    pub(crate) malloc: Option<std::sync::Arc<TypedFunc<i32, i32>>>,
    pub(crate) root_context_id: u32,
    pub(crate) effective_context: u32,
    pub(crate) streams: HashMap<u32, StreamSlot>,
    pub(crate) http_call_response: Option<HttpCallResponse>,
    pub(crate) http_call_owner: HashMap<u32, u32>,
    pub(crate) next_token: u32,
    pub(crate) effects: Effects,
    pub(crate) metrics: Vec<Arc<Metric>>,
    pub(crate) queue_notify: Option<UnboundedSender<u32>>,
    pub(crate) status: (u32, Vec<u8>),
    pub(crate) cluster_known: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// Buffers visible in the current callback.
    pub(crate) vm_configuration: Bytes,
    pub(crate) plugin_configuration: Bytes,
    pub(crate) done_called: bool,
    /// The last warning or error the plugin logged (explains a refusal).
    pub(crate) last_complaint: Option<String>,
}

impl HostState {
    pub(crate) fn new(
        wasi: WasiP1Ctx,
        plugin: Arc<PluginInfo>,
        shared: Arc<SharedState>,
        cluster_known: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    ) -> Self {
        HostState {
            wasi,
            limiter: MemoryLimiter {
                max: plugin.memory_limit,
                hit: false,
            },
            vm_configuration: plugin.vm_configuration.clone(),
            plugin_configuration: plugin.configuration.clone(),
            plugin,
            shared,
            memory: None,
            malloc: None,
            root_context_id: 1,
            effective_context: 1,
            streams: HashMap::new(),
            http_call_response: None,
            http_call_owner: HashMap::new(),
            next_token: 0,
            effects: Effects::default(),
            metrics: Vec::new(),
            queue_notify: None,
            status: (0, Vec::new()),
            cluster_known,
            done_called: false,
            last_complaint: None,
        }
    }

    pub(crate) fn current_stream(&self) -> Option<&HttpStream> {
        self.streams
            .get(&self.effective_context)
            .and_then(|s| s.data.as_deref())
    }

    fn current_stream_mut(&mut self) -> Option<&mut HttpStream> {
        self.streams
            .get_mut(&self.effective_context)
            .and_then(|s| s.data.as_deref_mut())
    }

    fn header_map(&self, mt: i32) -> Result<&HeaderBlock, Status> {
        match mt {
            map::HTTP_CALL_RESPONSE_HEADERS => self
                .http_call_response
                .as_ref()
                .map(|r| &r.headers)
                .ok_or(Status::NotFound),
            map::HTTP_CALL_RESPONSE_TRAILERS => self
                .http_call_response
                .as_ref()
                .map(|r| &r.trailers)
                .ok_or(Status::NotFound),
            map::GRPC_INITIAL_METADATA | map::GRPC_TRAILING_METADATA => Err(Status::NotFound),
            _ => {
                let s = self.current_stream().ok_or(Status::NotFound)?;
                match mt {
                    map::REQUEST_HEADERS => Ok(&s.request_headers),
                    map::REQUEST_TRAILERS => Ok(&s.request_trailers),
                    map::RESPONSE_HEADERS => Ok(&s.response_headers),
                    map::RESPONSE_TRAILERS => Ok(&s.response_trailers),
                    _ => Err(Status::BadArgument),
                }
            }
        }
    }

    fn header_map_mut(&mut self, mt: i32) -> Result<&mut HeaderBlock, Status> {
        match mt {
            map::HTTP_CALL_RESPONSE_HEADERS => self
                .http_call_response
                .as_mut()
                .map(|r| &mut r.headers)
                .ok_or(Status::NotFound),
            map::HTTP_CALL_RESPONSE_TRAILERS => self
                .http_call_response
                .as_mut()
                .map(|r| &mut r.trailers)
                .ok_or(Status::NotFound),
            map::GRPC_INITIAL_METADATA | map::GRPC_TRAILING_METADATA => Err(Status::NotFound),
            _ => {
                let s = self.current_stream_mut().ok_or(Status::NotFound)?;
                match mt {
                    map::REQUEST_HEADERS => Ok(&mut s.request_headers),
                    map::REQUEST_TRAILERS => Ok(&mut s.request_trailers),
                    map::RESPONSE_HEADERS => Ok(&mut s.response_headers),
                    map::RESPONSE_TRAILERS => Ok(&mut s.response_trailers),
                    _ => Err(Status::BadArgument),
                }
            }
        }
    }

    fn buffer(&self, bt: i32) -> Result<&[u8], Status> {
        match bt {
            buffer::VM_CONFIGURATION => Ok(&self.vm_configuration),
            buffer::PLUGIN_CONFIGURATION => Ok(&self.plugin_configuration),
            buffer::HTTP_CALL_RESPONSE_BODY => self
                .http_call_response
                .as_ref()
                .map(|r| r.body.as_ref())
                .ok_or(Status::NotFound),
            buffer::REQUEST_BODY => {
                Ok(&self.current_stream().ok_or(Status::NotFound)?.request_body)
            }
            buffer::RESPONSE_BODY => {
                Ok(&self.current_stream().ok_or(Status::NotFound)?.response_body)
            }
            buffer::DOWNSTREAM_DATA
            | buffer::UPSTREAM_DATA
            | buffer::GRPC_RECEIVE
            | buffer::CALL_DATA => Err(Status::NotFound),
            _ => Err(Status::BadArgument),
        }
    }

    fn signal(&self, ctx: u32) -> Option<&Arc<StreamSignal>> {
        self.streams.get(&ctx).map(|s| &s.signal)
    }
}

fn range(mem: &[u8], ptr: i32, len: i32) -> Result<std::ops::Range<usize>, Status> {
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    if end > mem.len() {
        return Err(Status::InvalidMemoryAccess);
    }
    Ok(start..end)
}

fn read(mem: &[u8], ptr: i32, len: i32) -> Result<&[u8], Status> {
    Ok(&mem[range(mem, ptr, len)?])
}

fn write(mem: &mut [u8], ptr: i32, data: &[u8]) -> Result<(), Status> {
    let r = range(mem, ptr, data.len() as i32)?;
    mem[r].copy_from_slice(data);
    Ok(())
}

type Ctx<'a> = Caller<'a, HostState>;

fn split<'a>(caller: &'a mut Ctx<'_>) -> Result<(&'a mut [u8], &'a mut HostState), Status> {
    let memory = caller.data().memory.ok_or(Status::InternalFailure)?;
    Ok(memory.data_and_store_mut(caller))
}

fn code(r: Result<(), Status>) -> i32 {
    match r {
        Ok(()) => Status::Ok as i32,
        Err(s) => s as i32,
    }
}

/// Hands `data` to the guest: allocates with the module's allocator,
/// copies, and writes the pointer and length to the return slots.
async fn hand_over(
    caller: &mut Ctx<'_>,
    data: &[u8],
    ret_ptr: i32,
    ret_size: i32,
) -> Result<(), Status> {
    // Check the return slots before calling into the guest.
    {
        let (mem, _) = split(caller)?;
        range(mem, ret_ptr, 4)?;
        range(mem, ret_size, 4)?;
    }
    let addr = if data.is_empty() {
        0
    } else {
        let malloc = caller
            .data()
            .malloc
            .clone()
            .ok_or(Status::InternalFailure)?;
        let addr = malloc
            .call_async(&mut *caller, data.len() as i32)
            .await
            .map_err(|_| Status::InternalFailure)?;
        let (mem, _) = split(caller)?;
        if addr == 0 {
            return Err(Status::InvalidMemoryAccess);
        }
        write(mem, addr, data)?;
        addr
    };
    let (mem, _) = split(caller)?;
    write(mem, ret_ptr, &(addr as u32).to_le_bytes())?;
    write(mem, ret_size, &(data.len() as u32).to_le_bytes())?;
    Ok(())
}

async fn give(
    caller: &mut Ctx<'_>,
    r: Result<Vec<u8>, Status>,
    ret_ptr: i32,
    ret_size: i32,
) -> i32 {
    match r {
        Ok(data) => code(hand_over(caller, &data, ret_ptr, ret_size).await),
        Err(s) => s as i32,
    }
}

fn emit_log(plugin: &PluginInfo, ctx: u32, level: i32, msg: &str) {
    let name = plugin.name.as_str();
    match abi::LogLevel::from_raw(level) {
        Some(abi::LogLevel::Trace) => tracing::trace!(plugin = name, context_id = ctx, "{msg}"),
        Some(abi::LogLevel::Debug) => tracing::debug!(plugin = name, context_id = ctx, "{msg}"),
        Some(abi::LogLevel::Info) => tracing::info!(plugin = name, context_id = ctx, "{msg}"),
        Some(abi::LogLevel::Warn) => tracing::warn!(plugin = name, context_id = ctx, "{msg}"),
        _ => tracing::error!(plugin = name, context_id = ctx, "{msg}"),
    }
    plugin.log_sink.record(level, msg);
}

macro_rules! wrap_async {
    ($linker:expr, $names:expr, $name:literal, |$caller:ident, $args:tt : $ty:ty| $body:block) => {
        $names.push($name);
        $linker.func_wrap_async("env", $name, |mut $caller: Ctx<'_>, $args: $ty| {
            Box::new(async move {
                let $caller = &mut $caller;
                $body
            })
        })?;
    };
}

/// The `env` names the host provides (for load-time import checks).
pub(crate) fn add_hostcalls(linker: &mut Linker<HostState>) -> wasmtime::Result<Vec<&'static str>> {
    let mut names: Vec<&'static str> = Vec::new();
    macro_rules! wrap {
        ($name:literal, $f:expr) => {
            names.push($name);
            linker.func_wrap("env", $name, $f)?;
        };
    }

    wrap!("proxy_log", |mut c: Ctx<'_>,
                        level: i32,
                        ptr: i32,
                        len: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let msg = String::from_utf8_lossy(read(mem, ptr, len)?);
            emit_log(&st.plugin, st.effective_context, level, &msg);
            if level >= abi::LogLevel::Warn as i32 {
                st.last_complaint = Some(msg.chars().take(1024).collect());
            }
            Ok(())
        })();
        code(r)
    });
    wrap!("proxy_get_log_level", |mut c: Ctx<'_>, ret: i32| -> i32 {
        let level = abi::LogLevel::from_tracing() as u32;
        code(split(&mut c).and_then(|(mem, _)| write(mem, ret, &level.to_le_bytes())))
    });
    wrap!("proxy_get_current_time_nanoseconds", |mut c: Ctx<'_>,
                                                 ret: i32|
     -> i32 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        code(split(&mut c).and_then(|(mem, _)| write(mem, ret, &now.to_le_bytes())))
    });
    wrap!("proxy_set_tick_period_milliseconds", |mut c: Ctx<'_>,
                                                 period: i32|
     -> i32 {
        c.data_mut().effects.tick_period = Some(Duration::from_millis(period as u32 as u64));
        Status::Ok as i32
    });

    // Buffers.
    wrap_async!(linker, names, "proxy_get_configuration", |c,
                                                           (rp, rs): (
        i32,
        i32
    )| {
        let data = c.data().plugin_configuration.to_vec();
        give(c, Ok(data), rp, rs).await
    });
    wrap_async!(linker, names, "proxy_get_buffer_bytes", |c,
                                                          (
        bt,
        start,
        max,
        rp,
        rs,
    ): (
        i32,
        i32,
        i32,
        i32,
        i32
    )| {
        let r = c.data().buffer(bt).map(|b| {
            let start = (start as u32 as usize).min(b.len());
            let end = start.saturating_add(max as u32 as usize).min(b.len());
            b[start..end].to_vec()
        });
        give(c, r, rp, rs).await
    });
    wrap!("proxy_get_buffer_status", |mut c: Ctx<'_>,
                                      bt: i32,
                                      len_ptr: i32,
                                      flags_ptr: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let len = st.buffer(bt)?.len() as u32;
            write(mem, len_ptr, &len.to_le_bytes())?;
            write(mem, flags_ptr, &0u32.to_le_bytes())
        })();
        code(r)
    });
    wrap!("proxy_set_buffer_bytes", |mut c: Ctx<'_>,
                                     bt: i32,
                                     start: i32,
                                     size: i32,
                                     ptr: i32,
                                     len: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let data = read(mem, ptr, len)?;
            let limit = st.plugin.buffer_limit;
            let target = match bt {
                buffer::REQUEST_BODY => {
                    &mut st
                        .current_stream_mut()
                        .ok_or(Status::NotFound)?
                        .request_body
                }
                buffer::RESPONSE_BODY => {
                    &mut st
                        .current_stream_mut()
                        .ok_or(Status::NotFound)?
                        .response_body
                }
                buffer::HTTP_CALL_RESPONSE_BODY
                | buffer::VM_CONFIGURATION
                | buffer::PLUGIN_CONFIGURATION => {
                    return Err(Status::BadArgument);
                }
                _ => return Err(Status::NotFound),
            };
            let start = (start as u32 as usize).min(target.len());
            let end = start.saturating_add(size as u32 as usize).min(target.len());
            if target.len() - (end - start) + data.len() > limit {
                return Err(Status::BadArgument);
            }
            let tail = target.split_off(end);
            target.truncate(start);
            target.extend_from_slice(data);
            target.extend_from_slice(&tail);
            Ok(())
        })();
        code(r)
    });

    // Header maps.
    wrap_async!(linker, names, "proxy_get_header_map_pairs", |c,
                                                              (
        mt,
        rp,
        rs,
    ): (
        i32,
        i32,
        i32
    )| {
        let r = c.data().header_map(mt).map(|m| m.serialize());
        give(c, r, rp, rs).await
    });
    wrap!("proxy_set_header_map_pairs", |mut c: Ctx<'_>,
                                         mt: i32,
                                         ptr: i32,
                                         len: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let pairs = abi::deserialize_pairs(read(mem, ptr, len)?).ok_or(Status::BadArgument)?;
            st.header_map_mut(mt)?.set_all(&pairs)
        })();
        code(r)
    });
    wrap_async!(linker, names, "proxy_get_header_map_value", |c,
                                                              (
        mt,
        kp,
        ks,
        rp,
        rs,
    ): (
        i32,
        i32,
        i32,
        i32,
        i32
    )| {
        let r = (|| {
            let (mem, st) = split(c)?;
            let key = read(mem, kp, ks)?;
            st.header_map(mt)?
                .get(key)
                .map(|v| v.into_owned())
                .ok_or(Status::NotFound)
        })();
        give(c, r, rp, rs).await
    });
    wrap!("proxy_add_header_map_value", |mut c: Ctx<'_>,
                                         mt: i32,
                                         kp: i32,
                                         ks: i32,
                                         vp: i32,
                                         vs: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let (key, value) = (read(mem, kp, ks)?, read(mem, vp, vs)?);
            st.header_map_mut(mt)?.add(key, value)
        })();
        code(r)
    });
    wrap!("proxy_replace_header_map_value", |mut c: Ctx<'_>,
                                             mt: i32,
                                             kp: i32,
                                             ks: i32,
                                             vp: i32,
                                             vs: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let (key, value) = (read(mem, kp, ks)?, read(mem, vp, vs)?);
            st.header_map_mut(mt)?.replace(key, value)
        })();
        code(r)
    });
    wrap!("proxy_remove_header_map_value", |mut c: Ctx<'_>,
                                            mt: i32,
                                            kp: i32,
                                            ks: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let key = read(mem, kp, ks)?;
            st.header_map_mut(mt)?.remove(key);
            Ok(())
        })();
        code(r)
    });
    wrap!("proxy_get_header_map_size", |mut c: Ctx<'_>,
                                        mt: i32,
                                        ret: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let m = st.header_map(mt)?;
            let size: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
            write(mem, ret, &(size as u32).to_le_bytes())
        })();
        code(r)
    });

    // Properties.
    wrap_async!(linker, names, "proxy_get_property", |c,
                                                      (pp, ps, rp, rs): (
        i32,
        i32,
        i32,
        i32
    )| {
        let r = (|| {
            let (mem, st) = split(c)?;
            let raw = read(mem, pp, ps)?;
            let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
            let path: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            crate::props::get(st, &path).ok_or(Status::NotFound)
        })();
        give(c, r, rp, rs).await
    });
    wrap!("proxy_set_property", |mut c: Ctx<'_>,
                                 pp: i32,
                                 ps: i32,
                                 vp: i32,
                                 vs: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let raw = read(mem, pp, ps)?;
            let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
            let path = std::str::from_utf8(raw)
                .map_err(|_| Status::BadArgument)?
                .replace('\0', ".");
            if path.is_empty() {
                return Err(Status::BadArgument);
            }
            let value = Bytes::copy_from_slice(read(mem, vp, vs)?);
            let s = st.current_stream_mut().ok_or(Status::NotFound)?;
            s.properties.insert(path, value);
            Ok(())
        })();
        code(r)
    });

    // Shared data and queues.
    wrap_async!(linker, names, "proxy_get_shared_data", |c,
                                                         (
        kp,
        ks,
        rp,
        rs,
        cas_ptr,
    ): (
        i32,
        i32,
        i32,
        i32,
        i32
    )| {
        let r = (|| {
            let (mem, st) = split(c)?;
            let key = read(mem, kp, ks)?;
            range(mem, cas_ptr, 4)?;
            let (value, cas) = st
                .shared
                .get(&st.plugin.vm_id, key)
                .ok_or(Status::NotFound)?;
            write(mem, cas_ptr, &cas.to_le_bytes())?;
            Ok(value)
        })();
        give(c, r, rp, rs).await
    });
    wrap!("proxy_set_shared_data", |mut c: Ctx<'_>,
                                    kp: i32,
                                    ks: i32,
                                    vp: i32,
                                    vs: i32,
                                    cas: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let (key, value) = (read(mem, kp, ks)?, read(mem, vp, vs)?);
            st.shared.set(&st.plugin.vm_id, key, value, cas as u32)
        })();
        code(r)
    });
    wrap!("proxy_register_shared_queue", |mut c: Ctx<'_>,
                                          np: i32,
                                          ns: i32,
                                          ret: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let name = std::str::from_utf8(read(mem, np, ns)?).map_err(|_| Status::BadArgument)?;
            range(mem, ret, 4)?;
            let owner = st.queue_notify.clone().ok_or(Status::InternalFailure)?;
            let id = st.shared.register_queue(&st.plugin.vm_id, name, owner);
            write(mem, ret, &id.to_le_bytes())
        })();
        code(r)
    });
    wrap!("proxy_resolve_shared_queue", |mut c: Ctx<'_>,
                                         vp: i32,
                                         vs: i32,
                                         np: i32,
                                         ns: i32,
                                         ret: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let vm_id = std::str::from_utf8(read(mem, vp, vs)?).map_err(|_| Status::BadArgument)?;
            let name = std::str::from_utf8(read(mem, np, ns)?).map_err(|_| Status::BadArgument)?;
            let vm_id = if vm_id.is_empty() {
                st.plugin.vm_id.as_str()
            } else {
                vm_id
            };
            let id = st
                .shared
                .resolve_queue(vm_id, name)
                .ok_or(Status::NotFound)?;
            write(mem, ret, &id.to_le_bytes())
        })();
        code(r)
    });
    wrap_async!(linker, names, "proxy_dequeue_shared_queue", |c,
                                                              (
        id,
        rp,
        rs,
    ): (
        i32,
        i32,
        i32
    )| {
        let r = c.data().shared.dequeue(id as u32);
        give(c, r, rp, rs).await
    });
    wrap!("proxy_enqueue_shared_queue", |mut c: Ctx<'_>,
                                         id: i32,
                                         vp: i32,
                                         vs: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            st.shared.enqueue(id as u32, read(mem, vp, vs)?)
        })();
        code(r)
    });

    // Stream control.
    fn resume(st: &mut HostState, which: i32) -> Result<(), Status> {
        let ctx = st.effective_context;
        let flag = match which {
            stream_type::HTTP_REQUEST => StreamSignal::CONTINUE_REQUEST,
            stream_type::HTTP_RESPONSE => StreamSignal::CONTINUE_RESPONSE,
            stream_type::DOWNSTREAM | stream_type::UPSTREAM => return Err(Status::Unimplemented),
            _ => return Err(Status::BadArgument),
        };
        st.signal(ctx).ok_or(Status::NotFound)?.raise(flag);
        Ok(())
    }
    wrap!("proxy_continue_request", |mut c: Ctx<'_>| -> i32 {
        code(resume(c.data_mut(), stream_type::HTTP_REQUEST))
    });
    wrap!("proxy_continue_response", |mut c: Ctx<'_>| -> i32 {
        code(resume(c.data_mut(), stream_type::HTTP_RESPONSE))
    });
    wrap!("proxy_continue_stream", |mut c: Ctx<'_>,
                                    which: i32|
     -> i32 {
        code(resume(c.data_mut(), which))
    });
    wrap!("proxy_close_stream", |mut c: Ctx<'_>, which: i32| -> i32 {
        let st = c.data_mut();
        let r = match which {
            stream_type::HTTP_REQUEST | stream_type::HTTP_RESPONSE => st
                .signal(st.effective_context)
                .map(|s| s.raise(StreamSignal::CLOSE))
                .ok_or(Status::NotFound),
            stream_type::DOWNSTREAM | stream_type::UPSTREAM => Err(Status::Unimplemented),
            _ => Err(Status::BadArgument),
        };
        code(r)
    });
    wrap!("proxy_send_local_response", |mut c: Ctx<'_>,
                                        status: i32,
                                        dp: i32,
                                        ds: i32,
                                        bp: i32,
                                        bs: i32,
                                        hp: i32,
                                        hs: i32,
                                        grpc: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let details = String::from_utf8_lossy(read(mem, dp, ds)?).into_owned();
            let body = Bytes::copy_from_slice(read(mem, bp, bs)?);
            let pairs = abi::deserialize_pairs(read(mem, hp, hs)?).ok_or(Status::BadArgument)?;
            let mut headers = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                let k = std::str::from_utf8(k).map_err(|_| Status::BadArgument)?;
                headers.push((k.to_ascii_lowercase(), Bytes::copy_from_slice(v)));
            }
            let status = u16::try_from(status)
                .ok()
                .filter(|s| (200..600).contains(s))
                .ok_or(Status::BadArgument)?;
            let ctx = st.effective_context;
            let slot = st.streams.get_mut(&ctx).ok_or(Status::NotFound)?;
            let data = slot.data.as_deref_mut().ok_or(Status::NotFound)?;
            data.local_reply = Some(LocalReply {
                status,
                details,
                body,
                headers,
                grpc_status: (grpc >= 0).then_some(grpc as u32),
            });
            slot.signal.raise(StreamSignal::LOCAL_REPLY);
            Ok(())
        })();
        code(r)
    });
    wrap!("proxy_clear_route_cache", |_c: Ctx<'_>| -> i32 {
        Status::Ok as i32
    });

    // HTTP calls.
    fn http_call(c: &mut Ctx<'_>, args: [i32; 10]) -> Result<(), Status> {
        let [up, us, hp, hs, bp, bs, tp, ts, timeout, ret] = args;
        let (mem, st) = split(c)?;
        let cluster = std::str::from_utf8(read(mem, up, us)?)
            .map_err(|_| Status::BadArgument)?
            .to_owned();
        let pairs = abi::deserialize_pairs(read(mem, hp, hs)?).ok_or(Status::BadArgument)?;
        let mut headers = HeaderBlock::default();
        headers.set_all(&pairs)?;
        let body = Bytes::copy_from_slice(read(mem, bp, bs)?);
        let pairs = abi::deserialize_pairs(read(mem, tp, ts)?).ok_or(Status::BadArgument)?;
        let mut trailers = HeaderBlock::default();
        trailers.set_all(&pairs)?;
        range(mem, ret, 4)?;
        // Envoy requires these three pseudo headers.
        for required in [":method", ":path", ":authority"] {
            if headers.pseudo(required).is_none() {
                return Err(Status::BadArgument);
            }
        }
        if !(st.cluster_known)(&cluster) {
            return Err(Status::BadArgument);
        }
        st.next_token = st.next_token.wrapping_add(1).max(1);
        let token = st.next_token;
        st.http_call_owner.insert(token, st.effective_context);
        let timeout = Duration::from_millis(timeout as u32 as u64);
        st.effects.http_calls.push((
            token,
            HttpCallRequest {
                cluster,
                headers,
                body,
                trailers,
                timeout,
            },
        ));
        write(mem, ret, &token.to_le_bytes())
    }
    wrap!("proxy_http_call", |mut c: Ctx<'_>,
                              a: i32,
                              b: i32,
                              d: i32,
                              e: i32,
                              f: i32,
                              g: i32,
                              h: i32,
                              i: i32,
                              t: i32,
                              r: i32|
     -> i32 {
        code(http_call(&mut c, [a, b, d, e, f, g, h, i, t, r]))
    });
    wrap!("proxy_dispatch_http_call", |mut c: Ctx<'_>,
                                       a: i32,
                                       b: i32,
                                       d: i32,
                                       e: i32,
                                       f: i32,
                                       g: i32,
                                       h: i32,
                                       i: i32,
                                       t: i32,
                                       r: i32|
     -> i32 {
        code(http_call(&mut c, [a, b, d, e, f, g, h, i, t, r]))
    });

    // gRPC: present so modules that import it load; not implemented yet.
    wrap!("proxy_grpc_call", |_c: Ctx<'_>,
                              _a: i32,
                              _b: i32,
                              _d: i32,
                              _e: i32,
                              _f: i32,
                              _g: i32,
                              _h: i32,
                              _i: i32,
                              _j: i32,
                              _k: i32,
                              _t: i32,
                              _r: i32|
     -> i32 {
        Status::Unimplemented as i32
    });
    wrap!("proxy_grpc_stream", |_c: Ctx<'_>,
                                _a: i32,
                                _b: i32,
                                _d: i32,
                                _e: i32,
                                _f: i32,
                                _g: i32,
                                _h: i32,
                                _i: i32,
                                _r: i32|
     -> i32 {
        Status::Unimplemented as i32
    });
    wrap!("proxy_grpc_send", |_c: Ctx<'_>,
                              _t: i32,
                              _p: i32,
                              _s: i32,
                              _e: i32|
     -> i32 {
        Status::Unimplemented as i32
    });
    wrap!("proxy_grpc_cancel", |_c: Ctx<'_>, _t: i32| -> i32 {
        Status::Unimplemented as i32
    });
    wrap!("proxy_grpc_close", |_c: Ctx<'_>, _t: i32| -> i32 {
        Status::Unimplemented as i32
    });
    wrap_async!(linker, names, "proxy_get_status", |c,
                                                    (code_ptr, mp, ms): (
        i32,
        i32,
        i32
    )| {
        let (status, msg) = c.data().status.clone();
        let r = split(c).and_then(|(mem, _)| write(mem, code_ptr, &status.to_le_bytes()));
        match r {
            Ok(()) => give(c, Ok(msg), mp, ms).await,
            Err(s) => s as i32,
        }
    });

    // Contexts.
    wrap!("proxy_set_effective_context", |mut c: Ctx<'_>,
                                          ctx: i32|
     -> i32 {
        let st = c.data_mut();
        let ctx = ctx as u32;
        if ctx == st.root_context_id || st.streams.contains_key(&ctx) {
            st.effective_context = ctx;
            Status::Ok as i32
        } else {
            Status::BadArgument as i32
        }
    });
    wrap!("proxy_done", |mut c: Ctx<'_>| -> i32 {
        c.data_mut().done_called = true;
        Status::Ok as i32
    });
    wrap!("proxy_call_foreign_function", |_c: Ctx<'_>,
                                          _np: i32,
                                          _ns: i32,
                                          _ap: i32,
                                          _as: i32,
                                          _rp: i32,
                                          _rs: i32|
     -> i32 {
        // No foreign functions are registered.
        Status::NotFound as i32
    });

    // Metrics.
    wrap!("proxy_define_metric", |mut c: Ctx<'_>,
                                  kind: i32,
                                  np: i32,
                                  ns: i32,
                                  ret: i32|
     -> i32 {
        let r = (|| {
            let (mem, st) = split(&mut c)?;
            let kind = match kind {
                0 => MetricKind::Counter,
                1 => MetricKind::Gauge,
                2 => MetricKind::Histogram,
                _ => return Err(Status::BadArgument),
            };
            let name = std::str::from_utf8(read(mem, np, ns)?).map_err(|_| Status::BadArgument)?;
            range(mem, ret, 4)?;
            let metric = st.shared.metrics.define(&st.plugin.name, name, kind)?;
            let id = match st.metrics.iter().position(|m| Arc::ptr_eq(m, &metric)) {
                Some(i) => i,
                None => {
                    st.metrics.push(metric);
                    st.metrics.len() - 1
                }
            };
            write(mem, ret, &(id as u32 + 1).to_le_bytes())
        })();
        code(r)
    });
    fn metric(st: &HostState, id: i32) -> Result<&Arc<Metric>, Status> {
        (id as u32 as usize)
            .checked_sub(1)
            .and_then(|i| st.metrics.get(i))
            .ok_or(Status::NotFound)
    }
    wrap!("proxy_increment_metric", |c: Ctx<'_>,
                                     id: i32,
                                     offset: i64|
     -> i32 {
        code(metric(c.data(), id).and_then(|m| m.increment(offset)))
    });
    wrap!("proxy_record_metric", |c: Ctx<'_>,
                                  id: i32,
                                  value: i64|
     -> i32 {
        code(metric(c.data(), id).map(|m| m.record(value as u64)))
    });
    wrap!("proxy_get_metric", |mut c: Ctx<'_>,
                               id: i32,
                               ret: i32|
     -> i32 {
        let r = (|| {
            let value = metric(c.data(), id)?.get()?;
            let (mem, _) = split(&mut c)?;
            write(mem, ret, &value.to_le_bytes())
        })();
        code(r)
    });
    Ok(names)
}
