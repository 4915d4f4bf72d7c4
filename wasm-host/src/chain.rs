//! A filter chain: the plugins of a listener, run over one stream phase by
//! phase — request phases in order, response phases in reverse order —
//! with pause/resume, body buffering, local replies and fail strategies.

use crate::error::VmError;
use crate::plugin::{FailStrategy, PluginStats};
use crate::stream::{HttpStream, LocalReply};
use crate::vm::{Outcome, Phase, PluginInstance, StreamHandle, Vm};
use bytes::{Bytes, BytesMut};
use std::rc::Rc;

/// The plugins one listener runs, in order.
#[derive(Clone, Default)]
pub struct FilterChain {
    filters: Vec<Rc<PluginInstance>>,
}

/// How a headers or trailers phase ended.
#[derive(Debug)]
pub enum Flow {
    Continue,
    /// Answer the client with this instead.
    LocalReply(LocalReply),
    /// A filter closed the stream: reset it.
    Reset,
}

/// How a body chunk fared.
#[derive(Debug)]
pub enum BodyFlow {
    /// Forward these bytes (possibly rewritten, possibly empty).
    Forward(Bytes),
    /// A filter buffers the body; nothing to forward yet.
    Hold,
    LocalReply(LocalReply),
    Reset,
}

enum Step {
    Continue,
    Hold,
    Reply(LocalReply),
    Reset,
}

struct Slot {
    vm: Option<(Rc<Vm>, StreamHandle)>,
    instance: Rc<PluginInstance>,
    request_buffer: BytesMut,
    response_buffer: BytesMut,
}

impl FilterChain {
    pub fn new(filters: Vec<Rc<PluginInstance>>) -> Self {
        FilterChain { filters }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Opens a stream context on every plugin's current VM.
    pub async fn start(&self, data: Box<HttpStream>) -> ChainStream {
        let mut stream = ChainStream {
            slots: Vec::with_capacity(self.filters.len()),
            data: Some(data),
            failure: None,
            closed: false,
        };
        for instance in &self.filters {
            let opened = match instance.vm().await {
                Ok(vm) => vm.open_stream().await.map(|h| (vm, h)),
                Err(e) => Err(e),
            };
            let vm = match opened {
                Ok(v) => Some(v),
                Err(e) => {
                    if stream.failure.is_none() {
                        stream.failure = fail_reply(instance, &e);
                    }
                    None
                }
            };
            stream.slots.push(Slot {
                vm,
                instance: instance.clone(),
                request_buffer: BytesMut::new(),
                response_buffer: BytesMut::new(),
            });
        }
        stream
    }
}

/// Applies the plugin's fail strategy to an error: the local reply of
/// FAIL_CLOSE, or `None` for FAIL_OPEN (skip the plugin).
fn fail_reply(instance: &PluginInstance, err: &VmError) -> Option<LocalReply> {
    let plugin = instance.plugin();
    match plugin.info.fail_strategy {
        FailStrategy::FailClose => {
            PluginStats::bump(&plugin.stats.fail_closed);
            tracing::warn!(plugin = %plugin.info.name, "{err}; failing the stream closed (503)");
            Some(LocalReply::text(
                503,
                "plugin_failed",
                format!("plugin {} is unavailable\n", plugin.info.name),
            ))
        }
        FailStrategy::FailOpen => {
            PluginStats::bump(&plugin.stats.fail_opened);
            tracing::warn!(plugin = %plugin.info.name, "{err}; skipping the plugin for this stream (fail open)");
            None
        }
    }
}

/// One stream going through a chain.
pub struct ChainStream {
    slots: Vec<Slot>,
    data: Option<Box<HttpStream>>,
    failure: Option<LocalReply>,
    closed: bool,
}

impl ChainStream {
    /// The stream's data (headers, properties…) between phases.
    pub fn data(&self) -> &HttpStream {
        self.data
            .as_deref()
            .expect("stream data is present between phases")
    }

    pub fn data_mut(&mut self) -> &mut HttpStream {
        self.data
            .as_deref_mut()
            .expect("stream data is present between phases")
    }

    /// True when no filter runs on this stream (bodies can bypass the chain).
    pub fn is_empty_chain(&self) -> bool {
        self.failure.is_none() && self.slots.iter().all(|s| s.vm.is_none())
    }

    async fn step(&mut self, i: usize, phase: Phase, wait: bool) -> Step {
        let Some((vm, handle)) = self.slots[i].vm.clone() else {
            return Step::Continue;
        };
        let Some(data) = self.data.take() else {
            return Step::Reset;
        };
        let (data, outcome) = vm.call_stream(&handle, phase, data, wait).await;
        self.data = data;
        if self.data.is_none() {
            // Cannot happen unless the VM lost the data; end the stream.
            return Step::Reset;
        }
        match outcome {
            Ok(Outcome::Continue) => match self.data_mut().local_reply.take() {
                Some(reply) => Step::Reply(reply),
                None => Step::Continue,
            },
            Ok(Outcome::Held) => Step::Hold,
            Ok(Outcome::LocalReply) => match self.data_mut().local_reply.take() {
                Some(reply) => Step::Reply(reply),
                None => Step::Continue,
            },
            Ok(Outcome::Closed) => Step::Reset,
            Err(e) => {
                self.slots[i].vm = None;
                match fail_reply(&self.slots[i].instance, &e) {
                    Some(reply) => Step::Reply(reply),
                    None => Step::Continue,
                }
            }
        }
    }

    fn order(&self, request: bool) -> Vec<usize> {
        let n = self.slots.len();
        if request {
            (0..n).collect()
        } else {
            (0..n).rev().collect()
        }
    }

    async fn headers_like(&mut self, phase: Phase, request: bool) -> Flow {
        if let Some(reply) = self.failure.take() {
            return Flow::LocalReply(reply);
        }
        for i in self.order(request) {
            match self.step(i, phase, true).await {
                Step::Continue | Step::Hold => {}
                Step::Reply(r) => return Flow::LocalReply(r),
                Step::Reset => return Flow::Reset,
            }
        }
        Flow::Continue
    }

    /// `proxy_on_request_headers` on every filter, in order.
    pub async fn request_headers(&mut self, end_of_stream: bool) -> Flow {
        self.headers_like(Phase::RequestHeaders { end_of_stream }, true)
            .await
    }

    /// `proxy_on_request_trailers` on every filter, in order.
    pub async fn request_trailers(&mut self) -> Flow {
        self.headers_like(Phase::RequestTrailers, true).await
    }

    /// `proxy_on_response_headers`, in reverse order.
    pub async fn response_headers(&mut self, end_of_stream: bool) -> Flow {
        self.headers_like(Phase::ResponseHeaders { end_of_stream }, false)
            .await
    }

    /// `proxy_on_response_trailers`, in reverse order.
    pub async fn response_trailers(&mut self) -> Flow {
        self.headers_like(Phase::ResponseTrailers, false).await
    }

    /// Runs a request body chunk through the filters. A filter that pauses
    /// before the end of the body buffers it: it sees the accumulated body
    /// on its next call, as in Envoy.
    pub async fn request_body(
        &mut self,
        chunk: Bytes,
        end_of_stream: bool,
        limit: usize,
    ) -> BodyFlow {
        self.body(chunk, end_of_stream, limit, true).await
    }

    /// Same for the response body, in reverse order.
    pub async fn response_body(
        &mut self,
        chunk: Bytes,
        end_of_stream: bool,
        limit: usize,
    ) -> BodyFlow {
        self.body(chunk, end_of_stream, limit, false).await
    }

    async fn body(
        &mut self,
        chunk: Bytes,
        end_of_stream: bool,
        limit: usize,
        request: bool,
    ) -> BodyFlow {
        let mut carry = chunk;
        for i in self.order(request) {
            if self.slots[i].vm.is_none() {
                continue;
            }
            let buffered = {
                let slot = &mut self.slots[i];
                let buf = if request {
                    &mut slot.request_buffer
                } else {
                    &mut slot.response_buffer
                };
                if buf.len() + carry.len() > limit {
                    let plugin = &slot.instance.plugin().info.name;
                    let (status, what) = if request {
                        (413, "request")
                    } else {
                        (500, "response")
                    };
                    tracing::warn!(
                        plugin = %plugin,
                        limit,
                        "{what} body exceeds the buffer limit of {limit} bytes while plugin {plugin} buffers it"
                    );
                    let body = if request {
                        "request body too large\n"
                    } else {
                        "response body too large\n"
                    };
                    return BodyFlow::LocalReply(LocalReply::text(
                        status,
                        "buffer_limit_exceeded",
                        body,
                    ));
                }
                buf.extend_from_slice(&carry);
                std::mem::take(buf)
            };
            {
                let data = self.data_mut();
                if request {
                    data.request_body = buffered;
                } else {
                    data.response_body = buffered;
                }
            }
            let phase = if request {
                Phase::RequestBody { end_of_stream }
            } else {
                Phase::ResponseBody { end_of_stream }
            };
            let step = self.step(i, phase, end_of_stream).await;
            let body = {
                let data = self.data_mut();
                std::mem::take(if request {
                    &mut data.request_body
                } else {
                    &mut data.response_body
                })
            };
            match step {
                Step::Continue => carry = body.freeze(),
                Step::Hold => {
                    let slot = &mut self.slots[i];
                    *(if request {
                        &mut slot.request_buffer
                    } else {
                        &mut slot.response_buffer
                    }) = body;
                    return BodyFlow::Hold;
                }
                Step::Reply(r) => return BodyFlow::LocalReply(r),
                Step::Reset => return BodyFlow::Reset,
            }
        }
        BodyFlow::Forward(carry)
    }

    /// Ends the stream on every VM (`on_done`, `on_log`, `on_delete`) and
    /// gives back its data.
    pub async fn finish(mut self) -> Option<Box<HttpStream>> {
        self.closed = true;
        let mut data = self.data.take();
        for slot in &mut self.slots {
            if let Some((vm, handle)) = slot.vm.take() {
                data = vm.close_stream(&handle, data).await;
            }
        }
        data
    }
}

impl Drop for ChainStream {
    fn drop(&mut self) {
        if self.closed || self.slots.iter().all(|s| s.vm.is_none()) {
            return;
        }
        // The stream went away mid-flight (client gone, timeout): end it on
        // every VM in the background so contexts and parked data are freed.
        let slots: Vec<_> = self.slots.iter_mut().filter_map(|s| s.vm.take()).collect();
        let mut data = self.data.take();
        tokio::task::spawn_local(async move {
            for (vm, handle) in slots {
                data = vm.close_stream(&handle, data.take()).await;
            }
        });
    }
}
