//! Hostile modules written in WAT: each misbehaviour is contained exactly.

mod common;

use bytes::Bytes;
use common::*;
use weft_wasm_host::{
    FailStrategy, FilterChain, Flow, LoadError, Plugin, PluginOptions, PluginStats,
};

const IMPORTS: &str = r#"
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $setbuf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $getbuf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $setpairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $shared (param i32 i32 i32 i32 i32) (result i32)))
"#;

/// A module whose allocator answers `malloc_ret` and whose
/// `proxy_on_request_headers` runs `body` and then continues.
fn module(malloc_ret: i64, body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  {IMPORTS}
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const {malloc_ret}))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {body}
    (i32.const 0))
)"#
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{wat}"))
}

/// Traps unless `call` answers InvalidMemoryAccess (6).
fn expect_oob(call: &str) -> String {
    format!("(if (i32.ne {call} (i32.const 6)) (then unreachable))\n")
}

fn load(name: &str, bytes: &[u8], fail: FailStrategy) -> std::sync::Arc<Plugin> {
    let mut o = PluginOptions::new(name);
    o.configuration = Bytes::from_static(b"{\"some\":\"config\"}");
    o.fail_strategy = fail;
    o.callback_timeout = std::time::Duration::from_millis(50);
    o.memory_limit = 16 << 20;
    Plugin::load(&runtime(), bytes, o).expect("module loads")
}

/// Runs one stream through a chain of the plugin; returns the flow.
async fn one_request(chain: &FilterChain) -> Flow {
    let mut s = chain.start(request("/", &[])).await;
    let flow = s.request_headers(true).await;
    s.finish().await;
    flow
}

#[test]
fn a_module_without_an_abi_marker_is_refused() {
    let bytes = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    let err = runtime().load("no-abi", &bytes).unwrap_err();
    assert!(matches!(err, LoadError::NoAbiVersion { .. }));
    assert_eq!(
        err.to_string(),
        "plugin no-abi: the module declares no known proxy-wasm ABI version \
         (it must export proxy_abi_version_0_2_1, proxy_abi_version_0_2_0 or proxy_abi_version_0_1_0)"
    );
}

#[test]
fn an_unknown_import_is_refused_with_its_name_and_abi() {
    let bytes = wat::parse_str(
        r#"(module
            (import "env" "proxy_teleport" (func (param i32)))
            (memory (export "memory") 1)
            (func (export "proxy_abi_version_0_2_0"))
            (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let err = runtime().load("teleporter", &bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin teleporter: the module (ABI 0.2.0) imports env.proxy_teleport, which the host does not provide"
    );
    let bytes = wat::parse_str(
        r#"(module
            (import "other" "thing" (func))
            (memory (export "memory") 1)
            (func (export "proxy_abi_version_0_2_1"))
            (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    assert!(
        runtime()
            .load("other", &bytes)
            .unwrap_err()
            .to_string()
            .contains("imports other.thing")
    );
}

#[test]
fn garbage_is_not_a_module() {
    let err = runtime().load("garbage", b"not wasm at all").unwrap_err();
    assert!(matches!(err, LoadError::Compile { .. }));
    assert!(
        err.to_string()
            .starts_with("plugin garbage: not a valid WebAssembly module")
    );
}

#[test]
fn out_of_bounds_pointers_are_answered_not_trusted() {
    let mut body = String::new();
    body += &expect_oob("(call $log (i32.const 2) (i32.const -65536) (i32.const 10))");
    body += &expect_oob("(call $log (i32.const 2) (i32.const 65530) (i32.const 100))");
    body += &expect_oob("(call $pairs (i32.const 0) (i32.const 70000) (i32.const 70004))");
    body += &expect_oob(
        "(call $add (i32.const 0) (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 1))",
    );
    body += &expect_oob(
        "(call $add (i32.const 0) (i32.const 0) (i32.const 1) (i32.const -1) (i32.const 2))",
    );
    body += &expect_oob("(call $prop (i32.const -16) (i32.const 32) (i32.const 0) (i32.const 4))");
    body += &expect_oob(
        "(call $setbuf (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 65536) (i32.const 10))",
    );
    body += &expect_oob(
        "(call $getbuf (i32.const 7) (i32.const 0) (i32.const 10) (i32.const 65536) (i32.const 8))",
    );
    body += &expect_oob(
        "(call $reply (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 65535) (i32.const 100) (i32.const 0) (i32.const 0) (i32.const -1))",
    );
    body += &expect_oob("(call $setpairs (i32.const 0) (i32.const 65000) (i32.const 4000))");
    body += &expect_oob(
        "(call $shared (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 4) (i32.const 65535))",
    );
    let p = load("oob", &module(1024, &body), FailStrategy::FailClose);
    run(async move {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        assert!(
            matches!(one_request(&chain).await, Flow::Continue),
            "every bad pointer got InvalidMemoryAccess"
        );
        assert_eq!(PluginStats::get(&p.stats.traps), 0);
    });
}

#[test]
fn bad_malloc_answers_are_caught() {
    let call = expect_oob(
        "(call $getbuf (i32.const 7) (i32.const 0) (i32.const 100) (i32.const 100) (i32.const 104))",
    );
    for (name, ret) in [
        ("malloc-zero", 0i64),
        ("malloc-wild", 0xFFFF_FF00u32 as i32 as i64),
        ("malloc-edge", 65530),
    ] {
        let p = load(name, &module(ret, &call), FailStrategy::FailClose);
        run(async move {
            let fake = Fake::allow();
            let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
            assert!(
                matches!(one_request(&chain).await, Flow::Continue),
                "{name}"
            );
            assert_eq!(PluginStats::get(&p.stats.traps), 0, "{name}");
        });
    }
}

#[test]
fn an_infinite_loop_hits_the_deadline_and_the_vm_is_replaced() {
    // Every call spins forever: each stream hits the deadline, and each
    // stream after a failure runs on a fresh VM.
    let body = "(loop $spin (br $spin))";
    let p = load("spinner", &module(1024, body), FailStrategy::FailClose);
    run(async move {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        for round in 1..=2u64 {
            let started = std::time::Instant::now();
            match one_request(&chain).await {
                Flow::LocalReply(r) => {
                    assert_eq!(r.status, 503);
                    assert_eq!(&r.body[..], b"plugin spinner is unavailable\n");
                }
                other => panic!("expected 503, got {other:?}"),
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
            assert_eq!(PluginStats::get(&p.stats.deadline_hits), round);
        }
        // The second stream ran on a replacement VM.
        assert_eq!(PluginStats::get(&p.stats.restarts), 1);
    });
}

#[test]
fn growing_memory_past_the_cap_traps_and_fails_open() {
    let body = "(drop (memory.grow (i32.const 2000)))";
    let p = load("grower", &module(1024, body), FailStrategy::FailOpen);
    run(async move {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        assert!(
            matches!(one_request(&chain).await, Flow::Continue),
            "fail open skips the plugin"
        );
        assert_eq!(PluginStats::get(&p.stats.memory_limit_hits), 1);
        assert_eq!(PluginStats::get(&p.stats.fail_opened), 1);
    });
}

#[test]
fn abi_0_1_0_modules_run() {
    let wat = r#"(module
      (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_get_configuration" (func $conf (param i32 i32) (result i32)))
      (import "env" "proxy_continue_request" (func $cont (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "x-abi0.1.0")
      (func (export "proxy_abi_version_0_1_0"))
      (func (export "malloc") (param i32) (result i32) (i32.const 4096))
      (func (export "proxy_on_context_create") (param i32 i32))
      (func (export "proxy_on_configure") (param i32 i32) (result i32)
        (if (i32.ne (call $conf (i32.const 200) (i32.const 204)) (i32.const 0)) (then unreachable))
        ;; the configuration was copied to 4096 and is 17 bytes long
        (if (i32.ne (i32.load (i32.const 204)) (i32.const 17)) (then unreachable))
        (i32.const 1))
      (func (export "proxy_on_request_headers") (param i32 i32) (result i32)
        (drop (call $add (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 21) (i32.const 5)))
        (drop (call $cont))
        (i32.const 0)))"#;
    let p = load(
        "old-abi",
        &wat::parse_str(wat).unwrap(),
        FailStrategy::FailClose,
    );
    assert_eq!(p.module.abi, weft_wasm_host::AbiVersion::V0_1_0);
    run(async move {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![start(p, &fake).await.unwrap()]);
        let mut s = chain.start(request("/", &[])).await;
        assert!(matches!(s.request_headers(true).await, Flow::Continue));
        assert_eq!(header(s.data(), "x-abi").as_deref(), Some("0.1.0"));
        s.finish().await;
    });
}
