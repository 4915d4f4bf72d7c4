//! HTTP calls a filter dispatches (`proxy_http_call`), as the harness's
//! fake proxy sees them: recorded, then answered by a handler or held until
//! the test answers them.

use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use weft_wasm_host::{HeaderBlock, HttpCallRequest, HttpCallResponse, ProxyBoundary};

/// An HTTP call the filter dispatched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    /// The harness's number for the call (answer it with [`crate::Harness::answer`]).
    pub id: u64,
    /// The cluster it was sent to.
    pub cluster: String,
    /// Its headers, pseudo headers (`:method`, `:path`, `:authority`) first.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub trailers: Vec<(String, String)>,
    /// The timeout the filter asked for.
    pub timeout: Duration,
}

impl HttpCall {
    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to an HTTP call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub trailers: Vec<(String, String)>,
    /// A failed call (connection refused, timeout…): the filter gets an
    /// empty answer, as Envoy does.
    pub failure: Option<String>,
}

impl CallResponse {
    /// An answer with this status, no headers and no body.
    pub fn new(status: u16) -> Self {
        CallResponse {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            trailers: Vec::new(),
            failure: None,
        }
    }

    /// A call that failed for `reason`.
    pub fn failed(reason: impl Into<String>) -> Self {
        CallResponse {
            failure: Some(reason.into()),
            ..CallResponse::new(0)
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn trailer(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.trailers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The host's form of the answer; a header the host cannot carry makes
    /// the call fail with a reason naming it.
    fn into_host(self) -> Result<HttpCallResponse, String> {
        if let Some(reason) = self.failure {
            return Err(reason);
        }
        let mut headers = HeaderBlock::default();
        headers.set_pseudo(":status", self.status.to_string());
        for (k, v) in &self.headers {
            headers
                .add(k.as_bytes(), v.as_bytes())
                .map_err(|e| format!("answer header {k:?}: {e:?}"))?;
        }
        let mut trailers = HeaderBlock::default();
        for (k, v) in &self.trailers {
            trailers
                .add(k.as_bytes(), v.as_bytes())
                .map_err(|e| format!("answer trailer {k:?}: {e:?}"))?;
        }
        Ok(HttpCallResponse {
            headers,
            body: self.body,
            trailers,
        })
    }
}

pub(crate) type Handler = Rc<dyn Fn(&HttpCall) -> CallResponse>;

type Answer = Result<HttpCallResponse, String>;

/// Calls seen so far and those waiting for the test.
#[derive(Default)]
pub(crate) struct Calls {
    next_id: u64,
    pub all: Vec<HttpCall>,
    pub held: HashMap<u64, oneshot::Sender<Answer>>,
}

impl Calls {
    /// The id the next call will get.
    pub fn next_id(&self) -> u64 {
        self.next_id + 1
    }

    /// Whether a call numbered `from` or later waits for the test.
    pub fn held_since(&self, from: u64) -> bool {
        self.held.keys().any(|id| *id >= from)
    }
}

/// The fake proxy side of the harness: known clusters and HTTP calls.
pub(crate) struct Boundary {
    pub clusters: Option<Arc<Vec<String>>>,
    pub handler: Option<Handler>,
    pub calls: Rc<RefCell<Calls>>,
    /// Raised when a call is held, so a driven phase can report `Paused`.
    pub held: Rc<Notify>,
}

pub(crate) fn pairs(block: &HeaderBlock) -> Vec<(String, String)> {
    block
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

impl ProxyBoundary for Boundary {
    fn cluster_exists(&self) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
        match &self.clusters {
            None => Arc::new(|_: &str| true),
            Some(known) => {
                let known = known.clone();
                Arc::new(move |name: &str| known.iter().any(|k| k == name))
            }
        }
    }

    fn http_call(
        &self,
        _plugin: &str,
        request: HttpCallRequest,
    ) -> Pin<Box<dyn Future<Output = Answer>>> {
        let call = {
            let mut calls = self.calls.borrow_mut();
            calls.next_id += 1;
            let call = HttpCall {
                id: calls.next_id,
                cluster: request.cluster,
                headers: pairs(&request.headers),
                body: request.body,
                trailers: pairs(&request.trailers),
                timeout: request.timeout,
            };
            calls.all.push(call.clone());
            call
        };
        if let Some(handler) = &self.handler {
            let answer = handler(&call).into_host();
            return Box::pin(async move { answer });
        }
        let (tx, rx) = oneshot::channel();
        self.calls.borrow_mut().held.insert(call.id, tx);
        self.held.notify_one();
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the test harness went away".to_owned()))
        })
    }
}

/// Sends the test's answer to a held call.
pub(crate) fn answer(calls: &RefCell<Calls>, id: u64, response: CallResponse) -> bool {
    let Some(tx) = calls.borrow_mut().held.remove(&id) else {
        return false;
    };
    // The filter may have gone away meanwhile; then nobody is waiting.
    let _ = tx.send(response.into_host());
    true
}
