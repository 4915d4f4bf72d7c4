//! A small real HTTP client (hyper) for tests: HTTP/1.1 and h2c.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;

/// A response as a test sees it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Sends one request over a fresh connection (HTTP/1.1, or h2c with
/// prior knowledge when `h2` is set).
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    h2: bool,
) -> Result<Reply, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
    let authority = uri.authority().ok_or("url has no authority")?.clone();
    let mut builder = http::Request::builder().method(method).uri(if h2 {
        uri.clone()
    } else {
        uri.path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .map_err(|e| format!("{e}"))?
    });
    // A test may name its own host (e.g. to exercise host matching).
    let own_host = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    if !h2 && !own_host {
        builder = builder.header(http::header::HOST, authority.as_str());
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder
        .body(Full::new(body.into()))
        .map_err(|e| e.to_string())?;
    rt().block_on(async move {
        let stream = tokio::net::TcpStream::connect(authority.as_str())
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let io = TokioIo::new(stream);
        let fut = async {
            let resp = if h2 {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| format!("h2 handshake: {e}"))?;
                tokio::spawn(conn);
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("request: {e}"))?
            } else {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(conn);
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("request: {e}"))?
            };
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
                version: parts.version,
            })
        };
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .map_err(|_| "request timed out".to_string())?
    })
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send("GET", url, headers, Bytes::new(), false).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

pub fn post(url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    send("POST", url, headers, body, false).unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// The status of a GET, or None when the server is not answering.
pub fn get_status(url: &str) -> Option<u16> {
    send("GET", url, &[], Bytes::new(), false)
        .ok()
        .map(|r| r.status)
}
