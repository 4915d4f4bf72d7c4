//! Scale: 5,000 workloads × 1,000 WasmPlugins in memory. Measures the time
//! to compute every snapshot, and the time and reach of one plugin change.
//! Run: `cargo bench -p weft-controller --bench scale`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use weft_controller::crd::WasmPlugin;
use weft_controller::select::{DEFAULT_ROOT_NAMESPACE, Workload};
use weft_controller::snapshot::{Engine, PluginChange};

const NAMESPACES: usize = 50;
const WORKLOADS_PER_NS: usize = 100;
const APPS_PER_NS: usize = 10;
const ROOT_PLUGINS: usize = 10;
const PLUGINS_PER_NS: usize = 20; // 10 + 50 × 20 = 1,010 plugins

fn ns(i: usize) -> String {
    format!("ns-{i}")
}

fn plugin(namespace: &str, name: &str, spec: serde_json::Value) -> WasmPlugin {
    let mut spec = spec;
    spec["url"] = serde_json::json!(format!("oci://registry.example/{name}:1"));
    spec["pluginConfig"] = serde_json::json!({"rules": [{"path": "/api", "header": "x-team"}]});
    let mut p = WasmPlugin::new(name, serde_json::from_value(spec).expect("valid spec"));
    p.metadata.namespace = Some(namespace.to_owned());
    p
}

/// Namespace plugins: per namespace, one per app (selector app=appN, ten
/// apps of ten workloads), five on a Service, five on no selector (all of
/// the namespace). Root plugins: no selector, every workload.
fn plugins(priority_bump: i32) -> Vec<WasmPlugin> {
    let phases = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"];
    let mut out = Vec::new();
    for i in 0..ROOT_PLUGINS {
        out.push(plugin(
            DEFAULT_ROOT_NAMESPACE,
            &format!("root-{i}"),
            serde_json::json!({"phase": phases[i % 4], "priority": i}),
        ));
    }
    for n in 0..NAMESPACES {
        for j in 0..PLUGINS_PER_NS {
            let spec = match j {
                0..10 => {
                    serde_json::json!({"selector": {"matchLabels": {"app": format!("app-{j}")}}})
                }
                10..15 => {
                    serde_json::json!({"targetRefs": [{"kind": "Service", "name": format!("svc-{}", j - 10)}]})
                }
                _ => serde_json::json!({}),
            };
            let mut spec = spec;
            spec["phase"] = serde_json::json!(phases[j % 4]);
            spec["priority"] =
                serde_json::json!(j as i32 + if n == 0 && j == 0 { priority_bump } else { 0 });
            out.push(plugin(&ns(n), &format!("p-{j}"), spec));
        }
    }
    out
}

fn workloads() -> Vec<Workload> {
    let mut out = Vec::new();
    for n in 0..NAMESPACES {
        for w in 0..WORKLOADS_PER_NS {
            out.push(Workload {
                namespace: ns(n),
                name: format!("w-{w}"),
                labels: [("app".to_owned(), format!("app-{}", w % APPS_PER_NS))].into(),
                services: vec![format!("svc-{}", w % 5)],
                ..Workload::default()
            });
        }
    }
    out
}

fn loaded_engine() -> Engine {
    let mut e = Engine::new(DEFAULT_ROOT_NAMESPACE);
    for w in workloads() {
        e.upsert_workload(w);
    }
    for p in plugins(0) {
        e.apply(PluginChange::Upsert(Box::new(p)));
    }
    e
}

fn bench(c: &mut Criterion) {
    let mut e = loaded_engine();
    let one = plugins(100)
        .into_iter()
        .find(|p| {
            p.metadata.namespace.as_deref() == Some("ns-0")
                && p.metadata.name.as_deref() == Some("p-0")
        })
        .expect("plugin ns-0/p-0");
    let root = plugin(
        DEFAULT_ROOT_NAMESPACE,
        "root-0",
        serde_json::json!({"phase": "AUTHN", "priority": 1000}),
    );
    let total: usize = (0..NAMESPACES)
        .flat_map(|n| (0..WORKLOADS_PER_NS).map(move |w| (n, w)))
        .map(|(n, w)| {
            let k = weft_controller::select::WorkloadKey {
                namespace: ns(n),
                name: format!("w-{w}"),
            };
            e.snapshot(&k).map_or(0, |s| s.plugins.len())
        })
        .sum();
    println!(
        "setup: {} workloads, {} plugins, {total} plugin entries in snapshots",
        e.workload_count(),
        e.plugins().count()
    );
    let changed = e.apply(PluginChange::Upsert(Box::new(one.clone())));
    println!(
        "one namespace plugin (selector) changed: {} workloads affected",
        changed.len()
    );
    let changed = e.apply(PluginChange::Upsert(Box::new(root.clone())));
    println!(
        "one root plugin changed: {} workloads affected",
        changed.len()
    );

    let mut g = c.benchmark_group("scale");
    g.sample_size(10);
    g.bench_function("compute all snapshots (5000 x 1010)", |b| {
        b.iter(|| e.recompute_all())
    });
    let mut flip = false;
    g.bench_function("one namespace plugin change", |b| {
        b.iter(|| {
            flip = !flip;
            let mut p = one.clone();
            p.spec.priority += i32::from(flip);
            black_box(e.apply(PluginChange::Upsert(Box::new(p))))
        })
    });
    g.bench_function("one root plugin change", |b| {
        b.iter(|| {
            flip = !flip;
            let mut p = root.clone();
            p.spec.priority += i32::from(flip);
            black_box(e.apply(PluginChange::Upsert(Box::new(p))))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
