//! The proxy side of the host boundary: `proxy_http_call` goes through the
//! worker's own clusters, like any request.

use crate::upstream::{ClusterSet, UpstreamBody};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use weft_wasm_host::{HeaderBlock, HttpCallRequest, HttpCallResponse, ProxyBoundary};

/// Largest HTTP-call answer body handed to a filter.
const MAX_CALL_BODY: usize = 4 << 20;

pub struct WorkerBoundary {
    clusters: Rc<ClusterSet>,
    names: Arc<HashSet<String>>,
}

impl WorkerBoundary {
    pub fn new(clusters: Rc<ClusterSet>, names: Arc<HashSet<String>>) -> Self {
        WorkerBoundary { clusters, names }
    }
}

impl ProxyBoundary for WorkerBoundary {
    fn cluster_exists(&self) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
        let names = self.names.clone();
        Arc::new(move |n: &str| names.contains(n))
    }

    fn http_call(
        &self,
        plugin: &str,
        request: HttpCallRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpCallResponse, String>>>> {
        let clusters = self.clusters.clone();
        let plugin = plugin.to_owned();
        Box::pin(async move {
            let cluster = clusters
                .get(&request.cluster)
                .ok_or_else(|| format!("plugin {plugin}: unknown cluster {}", request.cluster))?;
            let h = &request.headers;
            let mut builder = http::Request::builder()
                .method(h.pseudo_str(":method").unwrap_or("GET"))
                .uri(h.pseudo_str(":path").unwrap_or("/"));
            if let Some(headers) = builder.headers_mut() {
                *headers = h.map.clone();
                if let Some(a) = h
                    .pseudo(":authority")
                    .and_then(|a| http::HeaderValue::from_bytes(a).ok())
                {
                    headers.insert(http::header::HOST, a);
                }
            }
            let body: UpstreamBody = Full::new(request.body.clone())
                .map_err(|never: Infallible| match never {})
                .boxed_unsync();
            let req = builder
                .body(body)
                .map_err(|e| format!("plugin {plugin}: bad http call: {e}"))?;
            let send = async {
                let resp = cluster.send(req, None).await.map_err(|e| e.to_string())?;
                let (parts, body) = resp.response.into_parts();
                let collected = Limited::new(body, MAX_CALL_BODY)
                    .collect()
                    .await
                    .map_err(|e| format!("reading the answer: {e}"))?;
                let trailers = collected.trailers().cloned().unwrap_or_default();
                let body: Bytes = collected.to_bytes();
                let mut headers = HeaderBlock::new(parts.headers);
                headers.set_pseudo(":status", parts.status.as_str().to_owned());
                Ok::<_, String>(HttpCallResponse {
                    headers,
                    body,
                    trailers: HeaderBlock::new(trailers),
                })
            };
            let timeout = if request.timeout.is_zero() {
                std::time::Duration::from_secs(30)
            } else {
                request.timeout
            };
            match tokio::time::timeout(timeout, send).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
            }
        })
    }
}
