//! Host benchmarks (`cargo bench -p weft-wasm-host`): a headers-only filter
//! per request (stream created, request and response headers, stream
//! ended), a fresh VM, and a 64 KiB body through a buffering filter.

// The allocator of the `weft` binary, so the figures are the proxy's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_wasm_host::{
    BodyFlow, FilterChain, Flow, HttpCallRequest, HttpCallResponse, HttpStream, Plugin,
    PluginInstance, PluginOptions, ProxyBoundary, Runtime, RuntimeOptions,
};

struct NoCalls;

impl ProxyBoundary for NoCalls {
    fn cluster_exists(&self) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
        Arc::new(|_: &str| false)
    }

    fn http_call(
        &self,
        _plugin: &str,
        _request: HttpCallRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpCallResponse, String>>>> {
        Box::pin(async { Err("no calls in benchmarks".to_owned()) })
    }
}

fn request() -> Box<HttpStream> {
    let mut s = HttpStream::default();
    let h = &mut s.request_headers;
    h.set_pseudo(":method", "GET");
    h.set_pseudo(":scheme", "http");
    h.set_pseudo(":authority", "bench.local");
    h.set_pseudo(":path", "/bench/path?q=1");
    h.add(b"user-agent", b"criterion").unwrap();
    h.add(b"accept", b"*/*").unwrap();
    Box::new(s)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let wasm = weft_tests::filter_bytes("weft-test-bench-filter");
    let plugin = Plugin::load(&runtime, &wasm, PluginOptions::new("bench")).unwrap();
    let boundary: Rc<dyn ProxyBoundary> = Rc::new(NoCalls);
    let instance = local
        .block_on(&rt, PluginInstance::start(plugin.clone(), boundary.clone()))
        .unwrap();
    let chain = FilterChain::new(vec![instance]);

    let mut group = c.benchmark_group("wasm-host");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("headers_filter_per_request", |b| {
        b.iter_custom(|iters| {
            local.block_on(&rt, async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut s = chain.start(request()).await;
                    assert!(matches!(s.request_headers(true).await, Flow::Continue));
                    s.data_mut().response_headers.set_pseudo(":status", "200");
                    assert!(matches!(s.response_headers(true).await, Flow::Continue));
                    s.finish().await;
                }
                start.elapsed()
            })
        })
    });
    // The two header callbacks alone (streams opened and ended untimed).
    group.bench_function("headers_phases_only", |b| {
        b.iter_custom(|iters| {
            local.block_on(&rt, async {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(256);
                    left -= batch;
                    let mut streams = Vec::with_capacity(batch as usize);
                    for _ in 0..batch {
                        streams.push(chain.start(request()).await);
                    }
                    let start = Instant::now();
                    for s in &mut streams {
                        assert!(matches!(s.request_headers(true).await, Flow::Continue));
                        s.data_mut().response_headers.set_pseudo(":status", "200");
                        assert!(matches!(s.response_headers(true).await, Flow::Continue));
                    }
                    total += start.elapsed();
                    for s in streams {
                        s.finish().await;
                    }
                }
                total
            })
        })
    });
    group.bench_function("fresh_vm", |b| {
        b.iter_custom(|iters| {
            local.block_on(&rt, async {
                let start = Instant::now();
                for _ in 0..iters {
                    let i = PluginInstance::start(plugin.clone(), boundary.clone())
                        .await
                        .unwrap();
                    drop(i);
                }
                start.elapsed()
            })
        })
    });
    let body = Bytes::from(vec![b'a'; 64 * 1024]);
    group.bench_function("body_filter_64k", |b| {
        b.iter_custom(|iters| {
            local.block_on(&rt, async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut s = chain.start(request()).await;
                    assert!(matches!(s.request_headers(false).await, Flow::Continue));
                    match s.request_body(body.clone(), true, 1 << 20).await {
                        BodyFlow::Forward(b) => assert_eq!(b.len(), 64 * 1024),
                        other => panic!("{other:?}"),
                    }
                    s.finish().await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(host, benches);
criterion_main!(host);
