//! The admin listener: `/metrics` (Prometheus text), `/healthz`, `/ready`,
//! `/config_dump` (secrets redacted) and `/plugins`.

use crate::generation::Generation;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weft_wasm_host::{PluginStats, Runtime};

/// What the admin endpoints read.
pub struct AdminState {
    pub current: RwLock<Arc<Generation>>,
    pub ready: AtomicBool,
    pub runtime: Arc<Runtime>,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub last_reload_error: RwLock<Option<String>>,
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

fn handle(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/ready" => {
            if state.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".into(),
                )
            }
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            render_metrics(state),
        ),
        "/config_dump" => {
            let g = state.current.read().clone();
            let body = serde_json::to_string_pretty(&g.config_json).unwrap_or_default();
            text(StatusCode::OK, "application/json", body + "\n")
        }
        "/plugins" => {
            let g = state.current.read().clone();
            let plugins: Vec<_> = g
                .plugins
                .iter()
                .map(|p| {
                    let s = &p.plugin.stats;
                    serde_json::json!({
                        "name": p.plugin.info.name,
                        "source": p.source,
                        "digest": p.plugin.module.digest,
                        "abi": p.plugin.module.abi.to_string(),
                        "state": "loaded",
                        "last_error": serde_json::Value::Null,
                        "note": p.note,
                        "fetched_at": rfc3339(p.fetched_at),
                        "listeners": p.listeners,
                        "vms_started": PluginStats::get(&s.vms_started),
                        "traps": PluginStats::get(&s.traps),
                        "restarts": PluginStats::get(&s.restarts),
                        "deadline_hits": PluginStats::get(&s.deadline_hits),
                        "memory_limit_hits": PluginStats::get(&s.memory_limit_hits),
                    })
                })
                .collect();
            let skipped: Vec<_> = g
                .skipped_plugins
                .iter()
                .map(|(name, err)| serde_json::json!({"name": name, "state": "failed", "last_error": err}))
                .chain(g.pending_plugins.iter().map(|p| {
                    serde_json::json!({
                        "name": p.name,
                        "source": p.url,
                        "state": "pending",
                        "fail_strategy": if p.fail_close { "FAIL_CLOSE" } else { "FAIL_OPEN" },
                        "last_error": p.error,
                        "last_attempt": rfc3339(p.attempted_at),
                    })
                }))
                .collect();
            let body = serde_json::json!({
                "generation": g.id,
                "plugins": plugins,
                "failed": skipped,
                "last_reload_error": state.last_reload_error.read().clone(),
            });
            text(
                StatusCode::OK,
                "application/json",
                serde_json::to_string_pretty(&body).unwrap_or_default() + "\n",
            )
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "unknown admin path; try /metrics /healthz /ready /config_dump /plugins\n".into(),
        ),
    }
}

fn render_metrics(state: &AdminState) -> String {
    let g = state.current.read().clone();
    let mut out = String::with_capacity(8192);
    let _ = writeln!(out, "# TYPE weft_listener_requests_total counter");
    for l in &g.listeners {
        crate::metrics::render_listener(&mut out, &l.name, &g.listener_metrics(&l.name));
    }
    let _ = writeln!(out, "# TYPE weft_config_reloads_total counter");
    let _ = writeln!(
        out,
        "weft_config_reloads_total{{result=\"ok\"}} {}",
        state.reloads_ok.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "weft_config_reloads_total{{result=\"failed\"}} {}",
        state.reloads_failed.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "weft_config_generation {}", g.id);
    crate::upstream::render_metrics(&mut out, &g.cluster_state);
    let _ = writeln!(out, "# TYPE weft_plugin_loaded gauge");
    for p in &g.plugins {
        let l = crate::metrics::label(&p.plugin.info.name);
        let _ = writeln!(out, "weft_plugin_loaded{{plugin=\"{l}\"}} 1");
    }
    for p in &g.pending_plugins {
        let l = crate::metrics::label(&p.name);
        let _ = writeln!(out, "weft_plugin_loaded{{plugin=\"{l}\"}} 0");
    }
    let _ = writeln!(out, "# TYPE weft_plugin_traps_total counter");
    for p in &g.plugins {
        let l = crate::metrics::label(&p.plugin.info.name);
        let s = &p.plugin.stats;
        for (metric, counter) in [
            ("weft_plugin_traps_total", &s.traps),
            ("weft_plugin_restarts_total", &s.restarts),
            ("weft_plugin_deadline_hits_total", &s.deadline_hits),
            ("weft_plugin_memory_limit_hits_total", &s.memory_limit_hits),
            ("weft_plugin_fail_closed_total", &s.fail_closed),
            ("weft_plugin_fail_opened_total", &s.fail_opened),
            ("weft_plugin_vms_started_total", &s.vms_started),
        ] {
            let _ = writeln!(
                out,
                "{metric}{{plugin=\"{l}\"}} {}",
                PluginStats::get(counter)
            );
        }
    }
    for m in state.runtime.shared().metrics.snapshot() {
        let name: String = m
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let plugin = crate::metrics::label(&m.plugin);
        match m.kind {
            weft_wasm_host::shared::MetricKind::Histogram => {
                let (buckets, sum) = m.histogram();
                let mut cumulative = 0;
                for (i, b) in weft_wasm_host::shared::HISTOGRAM_BOUNDS.iter().enumerate() {
                    cumulative += buckets[i];
                    let _ = writeln!(
                        out,
                        "weft_filter_{name}_bucket{{plugin=\"{plugin}\",le=\"{b}\"}} {cumulative}"
                    );
                }
                cumulative += buckets[buckets.len() - 1];
                let _ = writeln!(
                    out,
                    "weft_filter_{name}_bucket{{plugin=\"{plugin}\",le=\"+Inf\"}} {cumulative}"
                );
                let _ = writeln!(out, "weft_filter_{name}_sum{{plugin=\"{plugin}\"}} {sum}");
                let _ = writeln!(
                    out,
                    "weft_filter_{name}_count{{plugin=\"{plugin}\"}} {cumulative}"
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "weft_filter_{name}{{plugin=\"{plugin}\"}} {}",
                    m.get().unwrap_or(0)
                );
            }
        }
    }
    out
}

/// Serves the admin endpoints on `addr` from a thread of its own.
pub fn spawn(addr: SocketAddr, state: Arc<AdminState>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("weft-admin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("admin listener: cannot start its runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("admin listener: {e}");
                        return;
                    }
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<Incoming>| {
                            let resp = handle(&state, &req);
                            async move {
                                Ok::<_, Infallible>(
                                    resp.map(|b| b.map_err(|never| match never {}).boxed()),
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        })?;
    Ok(bound)
}

fn rfc3339(t: std::time::SystemTime) -> String {
    crate::access_log::rfc3339(t)
}
