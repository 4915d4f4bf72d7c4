//! The life of a request, top to bottom.
//!
//! 1. **Downstream head.** Pseudo headers and headers go into an
//!    [`HttpStream`]; hop-by-hop headers are dropped, `x-request-id` is
//!    generated when absent, `x-forwarded-for`/`-proto` are appended.
//! 2. **Request headers** run through the listener's filters in order
//!    (phase, then priority). Any filter may answer locally.
//! 3. **Route.** The upstream cluster is the `weft.cluster` property a
//!    filter wrote (the router), else the listener's `default_cluster`,
//!    else a 404 "no route".
//! 4. **Request body** streams through the filters chunk by chunk while the
//!    upstream request is in flight; a filter that pauses buffers it. When
//!    the router asked for retries the body is kept (up to a limit) so it
//!    can be replayed.
//! 5. **Upstream** with the per-request timeout and retry policy from the
//!    `weft.*` properties; failures become 503/504 local replies.
//! 6. **Response headers, body, trailers** run through the filters in
//!    reverse order, then go downstream; the stream ends with `on_log`
//!    on every filter and one access-log line.

use crate::access_log::{AccessRecord, LogFlags as Flags};
use crate::upstream::{UpstreamBody, UpstreamError};
use crate::worker::{ListenerCtx, WorkerGen};
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, HOST, HeaderName, HeaderValue, TE, TRANSFER_ENCODING, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Body, Incoming};
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use weft_wasm_host::{
    BodyFlow, ChainStream, ConnectionInfo, Flow, HeaderBlock, HttpStream, LocalReply, weft_props,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The downstream response body: `!Send` is fine, workers are single-threaded.
pub type ProxyBody = std::pin::Pin<Box<dyn Body<Data = Bytes, Error = BoxError>>>;

fn boxed<B: Body<Data = Bytes, Error = BoxError> + 'static>(b: B) -> ProxyBody {
    Box::pin(b)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1 and the usual non-standard ones),
/// as parsed names so removing them needs no parsing per request.
static HOP_BY_HOP: std::sync::LazyLock<[HeaderName; 8]> = std::sync::LazyLock::new(|| {
    [
        CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        http::header::PROXY_AUTHENTICATE,
        http::header::PROXY_AUTHORIZATION,
        TE,
        http::header::TRAILER,
        UPGRADE,
    ]
});

/// Largest request body kept for replay on retry.
const REPLAY_LIMIT: usize = 64 * 1024;

fn full(b: impl Into<Bytes>) -> ProxyBody {
    boxed(Full::new(b.into()).map_err(|never: Infallible| match never {}))
}

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    if headers.contains_key(CONNECTION) {
        // Headers the client named as hop-by-hop go too.
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for h in HOP_BY_HOP.iter() {
        headers.remove(h);
    }
    headers.remove(TRANSFER_ENCODING);
}

/// Serves one request.
pub async fn serve(
    worker: Rc<WorkerGen>,
    listener: Rc<ListenerCtx>,
    conn: Arc<ConnectionInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    listener.metrics.requests_active_inc();
    let (mut parts, body) = req.into_parts();
    let mut data = Box::new(HttpStream::default());
    let tls = conn.tls.is_some();
    fill_request(&mut data, &mut parts, conn, tls);
    let request_eos = body.is_end_stream();
    let record = AccessRecord::start(&data, started, listener.access.enabled());

    let mut chain = worker.chain_for(&listener.name).start(data).await;
    if let Some(reason) = &listener.unavailable {
        // A FAIL_CLOSE plugin whose module is not there yet.
        let mut reply = LocalReply::text(503, "plugin_unavailable", reason.to_string());
        reply
            .headers
            .push(("x-weft-plugin-unavailable".into(), "1".into()));
        let mut record = record;
        record.flags.plugin_failure = true;
        return Ok(local_response(reply, chain, record, &listener).await);
    }
    let result = match chain.request_headers(request_eos).await {
        Flow::LocalReply(reply) => Err(reply),
        Flow::Reset => Err(LocalReply::text(
            503,
            "filter_reset",
            "stream reset by a filter\n",
        )),
        Flow::Continue => Ok(()),
    };
    let response = match result {
        Err(reply) => local_response(reply, chain, record, &listener).await,
        Ok(()) => forward(&worker, &listener, chain, body, request_eos, record).await,
    };
    Ok(response)
}

fn fill_request(
    data: &mut HttpStream,
    parts: &mut http::request::Parts,
    conn: Arc<ConnectionInfo>,
    tls: bool,
) {
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop(&mut headers);
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    headers.remove(HOST);
    let scheme = if tls { "https" } else { "http" };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut block = HeaderBlock::new(headers);
    block.set_pseudo(":method", method_bytes(&parts.method));
    block.set_pseudo(":scheme", scheme);
    block.set_pseudo(":authority", authority);
    block.set_pseudo(":path", path.to_owned());
    let request_id = match block.map.get(&*X_REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let id = new_request_id();
            if let Ok(v) = HeaderValue::from_bytes(&id) {
                block.map.insert(X_REQUEST_ID.clone(), v);
            }
            // Lowercase hex digits and dashes: always UTF-8.
            String::from_utf8_lossy(&id).into_owned()
        }
    };
    if let Some(src) = conn.source {
        use std::io::Write;
        let mut buf = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let _ = write!(cursor, "{}", src.ip());
        let n = cursor.position() as usize;
        let ip = &buf[..n];
        let value = match block.map.get(&*X_FORWARDED_FOR) {
            Some(prev) => {
                let mut v = Vec::with_capacity(prev.len() + 2 + n);
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(ip);
                HeaderValue::from_bytes(&v)
            }
            None => HeaderValue::from_bytes(ip),
        };
        if let Ok(v) = value {
            block.map.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    block.map.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    data.request_headers = block;
    data.request_id = request_id;
    data.protocol = match parts.version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    data.start_time = Some(SystemTime::now());
    data.connection = conn;
}

static X_REQUEST_ID: std::sync::LazyLock<HeaderName> =
    std::sync::LazyLock::new(|| HeaderName::from_static("x-request-id"));
static X_FORWARDED_FOR: std::sync::LazyLock<HeaderName> =
    std::sync::LazyLock::new(|| HeaderName::from_static("x-forwarded-for"));
static X_FORWARDED_PROTO: std::sync::LazyLock<HeaderName> =
    std::sync::LazyLock::new(|| HeaderName::from_static("x-forwarded-proto"));

/// The request method as bytes, without an allocation for the usual ones.
fn method_bytes(m: &http::Method) -> Bytes {
    use http::Method;
    let s: &'static str = match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return Bytes::copy_from_slice(m.as_str().as_bytes()),
    };
    Bytes::from_static(s.as_bytes())
}

/// A random (version 4) UUID in its 36-character text form.
fn new_request_id() -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[usize::from(byte >> 4)];
        out[o + 1] = HEX[usize::from(byte & 0x0f)];
        o += 2;
    }
    out
}

/// A plain-text response from the proxy itself.
pub fn plain(status: u16, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

fn reply_response(reply: &LocalReply) -> Response<ProxyBody> {
    let mut resp = Response::new(full(reply.body.clone()));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

async fn local_response(
    reply: LocalReply,
    chain: ChainStream,
    mut record: AccessRecord,
    listener: &ListenerCtx,
) -> Response<ProxyBody> {
    if reply.details == "plugin_failed" {
        record.flags.plugin_failure = true;
    }
    let resp = reply_response(&reply);
    record.flags.local_reply = true;
    record.status = reply.status;
    record.bytes_sent = reply.body.len() as u64;
    let data = chain.finish().await;
    if let Some(d) = &data {
        record.route = d.property_str(weft_props::ROUTE_NAME).map(str::to_owned);
    }
    listener.finish(&record);
    resp
}

/// The retry and timeout policy the router wrote.
#[derive(Debug, Clone)]
struct Policy {
    timeout: Option<Duration>,
    attempts: u32,
    per_try_timeout: Option<Duration>,
    on_5xx: bool,
    on_reset: bool,
    on_connect_failure: bool,
    codes: Vec<u16>,
}

impl Policy {
    fn from(data: &HttpStream) -> Policy {
        let ms = |k: &str| {
            data.property_str(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        let on = data.property_str(weft_props::RETRY_ON).unwrap_or("");
        let has = |w: &str| on.split(',').any(|x| x.trim() == w);
        Policy {
            timeout: ms(weft_props::TIMEOUT_MS).filter(|d| !d.is_zero()),
            attempts: data
                .property_str(weft_props::RETRY_ATTEMPTS)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1u32)
                .clamp(1, 10),
            per_try_timeout: ms(weft_props::RETRY_PER_TRY_TIMEOUT_MS).filter(|d| !d.is_zero()),
            on_5xx: has("5xx"),
            on_reset: has("reset"),
            on_connect_failure: has("connect-failure"),
            codes: if has("retriable-status-codes") {
                data.property_str(weft_props::RETRY_CODES)
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|c| c.trim().parse().ok())
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn retry_status(&self, status: u16) -> bool {
        (self.on_5xx && status >= 500) || self.codes.contains(&status)
    }

    fn retry_error(&self, e: &UpstreamError) -> bool {
        (self.on_connect_failure || self.on_5xx) && e.is_connect_failure()
            || (self.on_reset || self.on_5xx) && e.is_reset()
    }
}

/// The upstream request for the stream's request headers. `take` moves the
/// header map out instead of copying it: only when no filter will look at
/// the request headers again and no retry will need them.
fn upstream_request(
    data: &mut HttpStream,
    body: UpstreamBody,
    take: bool,
) -> Result<Request<UpstreamBody>, LocalReply> {
    let req = &mut data.request_headers;
    let map = if take {
        std::mem::take(&mut req.map)
    } else {
        req.map.clone()
    };
    let method = req.pseudo_str(":method").unwrap_or("GET");
    let path = req.pseudo_str(":path").unwrap_or("/");
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(h) = builder.headers_mut() {
        *h = map;
        if let Some(authority) = req
            .pseudo(":authority")
            .and_then(|a| HeaderValue::from_bytes(a).ok())
        {
            h.insert(HOST, authority);
        }
        h.remove(TE);
        h.remove(UPGRADE);
    }
    builder.body(body).map_err(|e| {
        LocalReply::text(
            400,
            "bad_request",
            format!("request cannot be forwarded: {e}\n"),
        )
    })
}

async fn forward(
    worker: &Rc<WorkerGen>,
    listener: &Rc<ListenerCtx>,
    mut chain: ChainStream,
    body: Incoming,
    request_eos: bool,
    mut record: AccessRecord,
) -> Response<ProxyBody> {
    let cluster_name = chain
        .data()
        .property_str(weft_props::CLUSTER)
        .map(str::to_owned)
        .or_else(|| listener.default_cluster.clone());
    record.route = chain
        .data()
        .property_str(weft_props::ROUTE_NAME)
        .map(str::to_owned);
    let Some(cluster_name) = cluster_name else {
        return local_response(
            LocalReply::text(404, "no_route", "no route\n"),
            chain,
            record,
            listener,
        )
        .await;
    };
    record.cluster = Some(cluster_name.clone());
    let Some(cluster) = worker.clusters.get(&cluster_name) else {
        let reply = LocalReply::text(
            503,
            "unknown_cluster",
            format!("unknown cluster {cluster_name}\n"),
        );
        return local_response(reply, chain, record, listener).await;
    };
    let policy = Policy::from(chain.data());
    let hash_key = cluster
        .hash_header()
        .and_then(|h| chain.data().request_headers.map.get(h))
        .map(|v| v.as_bytes().to_vec());
    let limit = worker.buffer_limit;

    // Request body: straight through when no filter runs, collected when
    // it may be replayed, else pumped through the filters while the
    // upstream request is in flight.
    // A body is kept for replay only when its length is known and small;
    // otherwise the request streams and gets one attempt, as in Envoy.
    let declared_len = chain
        .data()
        .request_headers
        .map
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let replay = policy.attempts > 1 && declared_len.is_some_and(|n| n <= REPLAY_LIMIT);
    if policy.attempts > 1 && !replay && !request_eos {
        tracing::debug!("request body too large or of unknown length to replay: no retries");
    }
    let response = if !request_eos && !replay && chain.is_empty_chain() {
        let body: UpstreamBody = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
        let req = match upstream_request(chain.data_mut(), body, true) {
            Ok(r) => r,
            Err(reply) => {
                return local_response(reply, chain, record, listener).await;
            }
        };
        attempt(
            cluster,
            req,
            hash_key.as_deref(),
            policy.per_try_timeout.or(policy.timeout),
        )
        .await
    } else if request_eos || replay {
        let bytes = if request_eos {
            Bytes::new()
        } else {
            match collect_body(&mut chain, body, limit).await {
                Ok(b) => b,
                Err(reply) => {
                    return local_response(reply, chain, record, listener).await;
                }
            }
        };
        send_with_retries(
            cluster,
            &mut chain,
            &policy,
            hash_key.as_deref(),
            bytes,
            &mut record.flags,
        )
        .await
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(8);
        let body_stream = StreamBody::new(tokio_stream_from(rx));
        let req = match upstream_request(chain.data_mut(), body_stream.boxed_unsync(), false) {
            Ok(r) => r,
            Err(reply) => {
                return local_response(reply, chain, record, listener).await;
            }
        };
        let send = attempt(cluster, req, hash_key.as_deref(), policy.timeout);
        let pump = pump_request_body(&mut chain, body, tx, limit);
        let (resp, pumped) = futures_util::future::join(send, pump).await;
        if let Err(reply) = pumped {
            return local_response(reply, chain, record, listener).await;
        }
        resp
    };

    let upstream = match response {
        Ok(r) => r,
        Err(failure) => {
            record.flags.upstream_failure = true;
            return local_response(failure, chain, record, listener).await;
        }
    };
    record.upstream = Some(upstream.endpoint);
    chain.data_mut().upstream_address = Some(upstream.endpoint);
    respond(chain, upstream.response, record, listener.clone(), limit).await
}

/// Minimal stream adapter over an mpsc receiver.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn pump_request_body(
    chain: &mut ChainStream,
    mut body: Incoming,
    tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
    limit: usize,
) -> Result<(), LocalReply> {
    loop {
        let frame = match body.frame().await {
            None => {
                if let BodyFlow::Forward(b) = chain.request_body(Bytes::new(), true, limit).await
                    && !b.is_empty()
                {
                    let _ = tx.send(Ok(Frame::data(b))).await;
                }
                return Ok(());
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(Box::new(e))).await;
                return Ok(());
            }
            Some(Ok(f)) => f,
        };
        match frame.into_data() {
            Ok(data) => {
                chain.data_mut().request_size += data.len() as u64;
                let eos = body.is_end_stream();
                match chain.request_body(data, eos, limit).await {
                    BodyFlow::Forward(b) => {
                        if !b.is_empty() && tx.send(Ok(Frame::data(b))).await.is_err() {
                            return Ok(());
                        }
                    }
                    BodyFlow::Hold => {}
                    BodyFlow::LocalReply(r) => return Err(r),
                    BodyFlow::Reset => {
                        return Err(LocalReply::text(
                            503,
                            "filter_reset",
                            "stream reset by a filter\n",
                        ));
                    }
                }
                if eos {
                    return Ok(());
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    if let BodyFlow::Forward(b) =
                        chain.request_body(Bytes::new(), true, limit).await
                        && !b.is_empty()
                    {
                        let _ = tx.send(Ok(Frame::data(b))).await;
                    }
                    chain.data_mut().request_trailers = HeaderBlock::new(trailers);
                    match chain.request_trailers().await {
                        Flow::Continue => {}
                        Flow::LocalReply(r) => return Err(r),
                        Flow::Reset => {
                            return Err(LocalReply::text(
                                503,
                                "filter_reset",
                                "stream reset by a filter\n",
                            ));
                        }
                    }
                    let t = std::mem::take(&mut chain.data_mut().request_trailers.map);
                    let _ = tx.send(Ok(Frame::trailers(t))).await;
                    return Ok(());
                }
            }
        }
    }
}

/// Reads the whole request body through the filters (for replay).
async fn collect_body(
    chain: &mut ChainStream,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, LocalReply> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let pump = pump_request_body(chain, body, tx, limit);
    let collect = async {
        let mut out = BytesMut::new();
        while let Some(frame) = rx.recv().await {
            match frame {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        out.extend_from_slice(&d);
                    }
                }
                Err(e) => {
                    return Err(LocalReply::text(
                        400,
                        "downstream_body_error",
                        format!("request body: {e}\n"),
                    ));
                }
            }
        }
        Ok(out.freeze())
    };
    let (pumped, collected) = futures_util::future::join(pump, collect).await;
    pumped?;
    collected
}

async fn send_with_retries(
    cluster: &crate::upstream::Cluster,
    chain: &mut ChainStream,
    policy: &Policy,
    hash_key: Option<&[u8]>,
    body: Bytes,
    flags: &mut Flags,
) -> Result<crate::upstream::UpstreamResponse, LocalReply> {
    let deadline = policy.timeout.map(|t| Instant::now() + t);
    let mut last: Option<Result<crate::upstream::UpstreamResponse, LocalReply>> = None;
    for n in 0..policy.attempts {
        if n > 0 {
            flags.retried = true;
            // Jittered exponential backoff: 25ms * 2^n, ±50%.
            let base = 25u64 << (n - 1).min(6);
            let jitter = rand::random::<u64>() % base.max(1);
            tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
        }
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining.is_some_and(|r| r.is_zero()) {
            break;
        }
        let per_try = match (policy.per_try_timeout, remaining) {
            (Some(p), Some(r)) => Some(p.min(r)),
            (p, r) => p.or(r),
        };
        let b: UpstreamBody = Full::new(body.clone())
            .map_err(|never: Infallible| match never {})
            .boxed_unsync();
        let last_use = chain.is_empty_chain() && n + 1 == policy.attempts;
        let req = upstream_request(chain.data_mut(), b, last_use)?;
        match attempt_raw(cluster, req, hash_key, per_try).await {
            Ok(resp) => {
                let status = resp.response.status().as_u16();
                if n + 1 < policy.attempts && policy.retry_status(status) {
                    last = Some(Ok(resp));
                    continue;
                }
                return Ok(resp);
            }
            Err(e) => {
                let retry = policy.retry_error(&e.0) || e.1;
                let reply = failure_reply(&e.0, e.1, &cluster.name);
                if n + 1 < policy.attempts && retry {
                    last = Some(Err(reply));
                    continue;
                }
                return Err(reply);
            }
        }
    }
    last.unwrap_or_else(|| {
        Err(LocalReply::text(
            504,
            "upstream_timeout",
            "upstream request timeout\n",
        ))
    })
}

fn failure_reply(e: &UpstreamError, timed_out: bool, cluster: &str) -> LocalReply {
    if timed_out {
        return LocalReply::text(504, "upstream_timeout", "upstream request timeout\n");
    }
    if e.is_overloaded() {
        let mut r = LocalReply::text(
            503,
            "overloaded",
            format!("cluster {cluster} is overloaded\n"),
        );
        r.headers
            .push(("x-weft-overloaded".into(), Bytes::from_static(b"true")));
        return r;
    }
    tracing::debug!(cluster, "upstream failure: {e}");
    LocalReply::text(
        503,
        "upstream_failure",
        format!("upstream connect error or disconnect/reset before headers ({cluster})\n"),
    )
}

async fn attempt_raw(
    cluster: &crate::upstream::Cluster,
    req: Request<UpstreamBody>,
    hash_key: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<crate::upstream::UpstreamResponse, (UpstreamError, bool)> {
    let fut = cluster.send(req, hash_key);
    match timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r.map_err(|e| (e, false)),
            Err(_) => Err((
                UpstreamError::Timeout {
                    cluster: cluster.name.clone(),
                },
                true,
            )),
        },
        None => fut.await.map_err(|e| (e, false)),
    }
}

async fn attempt(
    cluster: &crate::upstream::Cluster,
    req: Request<UpstreamBody>,
    hash_key: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<crate::upstream::UpstreamResponse, LocalReply> {
    attempt_raw(cluster, req, hash_key, timeout)
        .await
        .map_err(|(e, t)| failure_reply(&e, t, &cluster.name))
}

/// Response phases, then the body downstream.
async fn respond(
    mut chain: ChainStream,
    response: Response<crate::upstream::ResponseBody>,
    mut record: AccessRecord,
    listener: Rc<ListenerCtx>,
    limit: usize,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    record.status = parts.status.as_u16();
    if chain.is_empty_chain() {
        let body = crate::access_log::Tracked::new(body, record, listener);
        return Response::from_parts(parts, boxed(body));
    }
    let eos = body.is_end_stream();
    {
        let data = chain.data_mut();
        let mut block = HeaderBlock::new(std::mem::take(&mut parts.headers));
        block.set_pseudo(":status", parts.status.as_str().to_owned());
        data.response_headers = block;
    }
    match chain.response_headers(eos).await {
        Flow::Continue => {}
        Flow::LocalReply(r) => {
            return local_response(r, chain, record, &listener).await;
        }
        Flow::Reset => {
            let r = LocalReply::text(502, "filter_reset", "response reset by a filter\n");
            return local_response(r, chain, record, &listener).await;
        }
    }
    {
        let data = chain.data_mut();
        if let Some(s) = data
            .response_headers
            .pseudo_str(":status")
            .and_then(|s| s.parse::<u16>().ok())
            && let Ok(code) = StatusCode::from_u16(s)
        {
            parts.status = code;
            record.status = s;
        }
        parts.headers = std::mem::take(&mut data.response_headers.map);
    }
    let pump = Pump {
        chain,
        eos_pending: body.is_end_stream(),
        body,
        record,
        listener,
        limit,
        sent: 0,
        ended: false,
        queued: None,
    };
    Response::from_parts(parts, boxed(FilteredBody::new(pump)))
}

/// One frame of the filtered response body, or `None` (with the pump
/// finished) at its end.
type Step = (Option<Box<Pump>>, Option<Result<Frame<Bytes>, BoxError>>);

/// The response body after its headers, run through the filters frame by
/// frame as hyper asks for it: no task and no channel, so a frame the
/// filters pass at once leaves in the same write as the headers.
struct Pump {
    chain: ChainStream,
    body: crate::upstream::ResponseBody,
    record: AccessRecord,
    listener: Rc<ListenerCtx>,
    limit: usize,
    sent: u64,
    /// The upstream body ended with its headers: the filters still get
    /// their end-of-stream call.
    eos_pending: bool,
    /// The upstream body is fully read.
    ended: bool,
    /// A frame to hand out before anything else (trailers after the last
    /// buffered data).
    queued: Option<Frame<Bytes>>,
}

impl Pump {
    async fn next(mut self: Box<Self>) -> Step {
        loop {
            if let Some(f) = self.queued.take() {
                return (Some(self), Some(Ok(f)));
            }
            if self.eos_pending {
                self.eos_pending = false;
                self.ended = true;
                if let Some(f) = self.last_chunk().await {
                    return (Some(self), Some(Ok(f)));
                }
                continue;
            }
            if self.ended {
                self.finish().await;
                return (None, None);
            }
            match self.body.frame().await {
                None => {
                    self.ended = true;
                    if let Some(f) = self.last_chunk().await {
                        return (Some(self), Some(Ok(f)));
                    }
                }
                Some(Err(e)) => {
                    self.record.flags.upstream_failure = true;
                    self.ended = true;
                    return (Some(self), Some(Err(Box::new(e))));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) => {
                        let eos = self.body.is_end_stream();
                        self.ended = eos;
                        match self.chain.response_body(d, eos, self.limit).await {
                            BodyFlow::Forward(b) if !b.is_empty() => {
                                self.sent += b.len() as u64;
                                return (Some(self), Some(Ok(Frame::data(b))));
                            }
                            BodyFlow::Forward(_) | BodyFlow::Hold => {}
                            BodyFlow::LocalReply(_) | BodyFlow::Reset => {
                                // Headers are already downstream: all we can do is reset.
                                self.record.flags.local_reply = true;
                                self.ended = true;
                                return (
                                    Some(self),
                                    Some(Err("response body rejected by a filter".into())),
                                );
                            }
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.ended = true;
                            let last = self.last_chunk().await;
                            self.chain.data_mut().response_trailers = HeaderBlock::new(trailers);
                            let _ = self.chain.response_trailers().await;
                            let t =
                                std::mem::take(&mut self.chain.data_mut().response_trailers.map);
                            match last {
                                Some(f) => {
                                    self.queued = Some(Frame::trailers(t));
                                    return (Some(self), Some(Ok(f)));
                                }
                                None => return (Some(self), Some(Ok(Frame::trailers(t)))),
                            }
                        }
                    }
                },
            }
        }
    }

    /// The filters' end-of-stream call on the response body; what they
    /// release (a buffered body) goes out.
    async fn last_chunk(&mut self) -> Option<Frame<Bytes>> {
        match self
            .chain
            .response_body(Bytes::new(), true, self.limit)
            .await
        {
            BodyFlow::Forward(b) if !b.is_empty() => {
                self.sent += b.len() as u64;
                Some(Frame::data(b))
            }
            _ => None,
        }
    }

    /// Ends the stream on every filter, then metrics and the access log.
    async fn finish(mut self: Box<Self>) {
        self.chain.data_mut().response_size = self.sent;
        self.record.bytes_sent = self.sent;
        let Pump {
            chain,
            mut record,
            listener,
            ..
        } = *self;
        if let Some(d) = chain.finish().await {
            record.route = d
                .property_str(weft_props::ROUTE_NAME)
                .map(str::to_owned)
                .or(record.route);
        }
        listener.finish(&record);
    }
}

enum PumpState {
    Idle(Box<Pump>),
    Running(std::pin::Pin<Box<dyn std::future::Future<Output = Step>>>),
    Done,
}

/// The downstream body of a filtered response (see [`Pump`]).
struct FilteredBody {
    state: PumpState,
}

impl FilteredBody {
    fn new(pump: Pump) -> Self {
        FilteredBody {
            state: PumpState::Idle(Box::new(pump)),
        }
    }
}

impl Body for FilteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, PumpState::Done) {
                PumpState::Idle(pump) => this.state = PumpState::Running(Box::pin(pump.next())),
                PumpState::Running(mut step) => match step.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = PumpState::Running(step);
                        return Poll::Pending;
                    }
                    Poll::Ready((Some(pump), item)) => {
                        this.state = PumpState::Idle(pump);
                        if item.is_some() {
                            return Poll::Ready(item);
                        }
                    }
                    Poll::Ready((None, _)) => return Poll::Ready(None),
                },
                PumpState::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, PumpState::Done)
    }
}

impl Drop for FilteredBody {
    fn drop(&mut self) {
        // The client went away, or hyper stopped after an error frame: the
        // stream still ends on every filter and is counted and logged.
        match std::mem::replace(&mut self.state, PumpState::Done) {
            PumpState::Idle(pump) => {
                tokio::task::spawn_local(pump.finish());
            }
            PumpState::Running(step) => {
                tokio::task::spawn_local(async move {
                    if let (Some(pump), _) = step.await {
                        pump.finish().await;
                    }
                });
            }
            PumpState::Done => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids() {
        let a = new_request_id();
        let text = std::str::from_utf8(&a).expect("ascii");
        assert_eq!(text.len(), 36);
        for (i, c) in text.char_indices() {
            match i {
                8 | 13 | 18 | 23 => assert_eq!(c, '-', "{text}"),
                14 => assert_eq!(c, '4', "{text}"),
                19 => assert!("89ab".contains(c), "{text}"),
                _ => assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{text}"),
            }
        }
        assert_ne!(a, new_request_id());
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
        assert_eq!(method_bytes(&http::Method::GET), Bytes::from_static(b"GET"));
        let custom = http::Method::from_bytes(b"PURGE").expect("method");
        assert_eq!(method_bytes(&custom), Bytes::from_static(b"PURGE"));
    }
}
