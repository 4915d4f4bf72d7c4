//! Plugins pulled from a real OCI registry by `weft run`: served from the
//! cache through a registry outage, and, with nothing cached, held by
//! their fail strategy until the registry is back.

use std::time::Duration;
use weft_tests::client::get;
use weft_tests::registry::Registry;
use weft_tests::upstream::echo;
use weft_tests::weft::{TempDir, Weft, free_port, weft_cmd};

/// Pushes the header-rewrite filter as `REPO:TAG` with `weft push`.
fn push(reg: &Registry, repo: &str) -> String {
    let wasm = weft_tests::build_filter("weft-filter-header-rewrite");
    let reference = format!("oci://{}/{repo}", reg.host());
    let (code, out, err) = weft_cmd(&[
        "push",
        wasm.to_str().expect("path"),
        &reference,
        "--plain-http",
    ]);
    assert_eq!(code, 0, "weft push failed: {err}");
    assert!(out.contains("sha256:"), "{out}");
    reference
}

fn config(reg: &Registry, port: u16, up: std::net::SocketAddr, plugins: &str) -> String {
    format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
registries: [ {{ host: "{}", plain_http: true }} ]
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{up}"] }}
plugins:
{plugins}"#,
        reg.host()
    )
}

fn plugin(name: &str, url: &str, strategy: &str) -> String {
    format!(
        "  - name: {name}\n    url: {url}\n    failStrategy: {strategy}\n    pluginConfig: {{ rules: [ {{ requestHeaderModifier: {{ set: [ {{ name: x-{name}, value: on }} ] }} }} ] }}\n"
    )
}

/// Starts weft on `config` with its module cache in `cache`.
fn start(config: &str, cache: &TempDir) -> Weft {
    let dir = TempDir::new("oci-run");
    let config = config.replace(
        "workers: 1",
        &format!("workers: 1\ncache_dir: \"{}\"", cache.path().display()),
    );
    Weft::try_start(&config, dir).unwrap_or_else(|e| panic!("{e}"))
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

#[test]
fn a_pulled_plugin_keeps_serving_from_the_cache_while_the_registry_is_down() {
    let mut reg = Registry::start();
    let reference = push(&reg, "filters/rewrite:v1");
    let up = echo("up");
    let port = free_port();
    let cache = TempDir::new("oci-cache");
    // `Always`: every start asks the registry, so the outage is seen (with
    // IfNotPresent a fresh tag resolution would not even try).
    let text = config(&reg, port, up.addr, &plugin("rw", &reference, "FAIL_CLOSE")).replace(
        "failStrategy: FAIL_CLOSE",
        "failStrategy: FAIL_CLOSE\n    imagePullPolicy: Always",
    );
    let url = format!("http://127.0.0.1:{port}/");

    let weft = start(&text, &cache);
    assert_eq!(get(&url, &[]).header("x-seen-x-rw"), Some("on"));
    let plugins = get(&weft.admin_url("/plugins"), &[]).text();
    assert!(plugins.contains("\"state\": \"loaded\""), "{plugins}");
    drop(weft);

    // Registry down, weft restarted on the same cache: the module comes
    // from the cache and the note says so.
    reg.stop();
    let weft = start(&text, &cache);
    assert_eq!(get(&url, &[]).header("x-seen-x-rw"), Some("on"));
    let plugins = get(&weft.admin_url("/plugins"), &[]).text();
    assert!(plugins.contains("serving cached sha256:"), "{plugins}");

    // A reload while the registry is still down keeps serving too.
    weft.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&url, &[]).header("x-seen-x-rw"), Some("on"));
}

#[test]
fn with_nothing_cached_the_fail_strategy_decides_until_the_registry_returns() {
    let mut reg = Registry::start();
    let closed = push(&reg, "filters/closed:v1");
    let open = push(&reg, "filters/open:v1");
    reg.stop();
    let up = echo("up");
    let port = free_port();
    let cache = TempDir::new("oci-cache-empty");
    let text = config(
        &reg,
        port,
        up.addr,
        &(plugin("closed", &closed, "FAIL_CLOSE") + &plugin("open", &open, "FAIL_OPEN")),
    );
    let url = format!("http://127.0.0.1:{port}/");

    let weft = start(&text, &cache);
    let r = get(&url, &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("plugin closed is not available"),
        "{}",
        r.text()
    );
    assert_eq!(up.request_count(), 0);
    let plugins = get(&weft.admin_url("/plugins"), &[]).text();
    assert!(plugins.contains("\"state\": \"pending\""), "{plugins}");
    let metrics = get(&weft.admin_url("/metrics"), &[]).text();
    assert!(
        metrics.contains("weft_plugin_loaded{plugin=\"closed\"} 0"),
        "{metrics}"
    );

    // The registry comes back: both plugins load by themselves, no restart.
    reg.restart();
    eventually("the pending plugins load", || {
        let r = get(&url, &[]);
        r.status == 200
            && r.header("x-seen-x-closed") == Some("on")
            && r.header("x-seen-x-open") == Some("on")
    });
    let metrics = get(&weft.admin_url("/metrics"), &[]).text();
    assert!(
        metrics.contains("weft_plugin_loaded{plugin=\"closed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_fail_open_plugin_that_cannot_be_pulled_is_skipped() {
    let mut reg = Registry::start();
    let open = push(&reg, "filters/skip:v1");
    reg.stop();
    let up = echo("up");
    let port = free_port();
    let cache = TempDir::new("oci-cache-open");
    let text = config(&reg, port, up.addr, &plugin("open", &open, "FAIL_OPEN"));
    let _weft = start(&text, &cache);
    let r = get(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-x-open"), None, "the plugin is skipped");
}
