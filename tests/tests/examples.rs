//! The example filters of `examples/` — one in Rust (made by `weft new
//! filter`), one in Go (the Go SDK) — built, pushed to a real registry with
//! `weft push`, and loaded by `weft run` from `oci://`.

use weft_tests::client::get;
use weft_tests::registry::Registry;
use weft_tests::upstream::echo;
use weft_tests::weft::{TempDir, Weft, free_port, weft_cmd};

fn push(reg: &Registry, wasm: &std::path::Path, repo: &str) -> String {
    let reference = format!("oci://{}/examples/{repo}:v1", reg.host());
    let (code, out, err) = weft_cmd(&[
        "push",
        "--plain-http",
        "--annotation",
        "org.opencontainers.image.source=https://example.invalid/weft",
        wasm.to_str().expect("path"),
        &reference,
    ]);
    assert_eq!(code, 0, "weft push {reference}: {err}");
    assert!(out.trim().starts_with("sha256:"), "{out}");
    reference
}

#[test]
fn the_rust_and_go_examples_run_from_a_registry() {
    let reg = Registry::start();
    let rust = push(
        &reg,
        &weft_tests::build_filter("rust-filter"),
        "rust-filter",
    );
    let go = push(
        &reg,
        &weft_tests::build_go_filter("examples/go-filter"),
        "go-filter",
    );
    let (code, out, err) = weft_cmd(&["inspect", "--plain-http", &rust]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("application/wasm"), "{out}");
    assert!(out.contains("org.opencontainers.image.source"), "{out}");

    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
registries: [ {{ host: "{host}", plain_http: true }} ]
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{up}"] }}
plugins:
  - name: rust
    url: {rust}
    pluginConfig: {{ header: x-hello, value: rust }}
  - name: go
    url: {go}
"#,
        host = reg.host(),
        up = up.addr,
    );
    let weft = Weft::try_start(&config, TempDir::new("examples")).unwrap_or_else(|e| panic!("{e}"));
    let r = get(&format!("http://127.0.0.1:{port}/hello"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-seen-x-hello"),
        Some("rust"),
        "the Rust example ran"
    );
    assert_eq!(
        r.header("x-seen-x-go-filter"),
        Some("on"),
        "the Go example ran"
    );
    let plugins = get(&weft.admin_url("/plugins"), &[]).text();
    assert_eq!(
        plugins.matches("\"state\": \"loaded\"").count(),
        2,
        "{plugins}"
    );
}
