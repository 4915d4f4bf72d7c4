//! The built-in filters through the real binary.

use std::time::Duration;
use weft_tests::client::get;
use weft_tests::registry::Registry;
use weft_tests::upstream::echo;
use weft_tests::weft::{TempDir, Weft, free_port, weft_cmd};

fn header_rewrite() -> String {
    weft_tests::build_filter("weft-filter-header-rewrite")
        .display()
        .to_string()
}

#[test]
fn header_rewrite_sets_adds_and_removes_in_both_directions() {
    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{}"] }}
plugins:
  - name: rewrite
    url: file://{}
    pluginConfig:
      rules:
        - requestHeaderModifier:
            set: [ {{ name: x-env, value: prod }} ]
            add: [ {{ name: x-client, value: "%{{source.address}}" }}, {{ name: x-port, value: "%{{source.port}}" }} ]
            remove: [ x-debug ]
          responseHeaderModifier:
            set: [ {{ name: x-request-id, value: "%{{request.id}}" }} ]
            remove: [ x-upstream ]
        - match: {{ path: {{ type: PathPrefix, value: /api }}, headers: [ {{ name: x-tier, value: gold }} ] }}
          responseHeaderModifier:
            add: [ {{ name: x-gold, value: "yes" }} ]
"#,
        up.addr,
        header_rewrite()
    );
    let _weft = Weft::start(&config);
    let r = get(
        &format!("http://127.0.0.1:{port}/api/x"),
        &[
            ("x-env", "dev"),
            ("x-debug", "1"),
            ("x-request-id", "rid-1"),
            ("x-tier", "gold"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-x-env"), Some("prod"), "set replaces");
    assert!(
        r.header("x-seen-x-client")
            .unwrap()
            .starts_with("127.0.0.1:"),
        "templates read properties"
    );
    assert!(
        r.header("x-seen-x-port").unwrap().parse::<u16>().is_ok(),
        "integer properties render as numbers"
    );
    assert_eq!(r.header("x-seen-x-debug"), None, "remove");
    assert_eq!(r.header("x-request-id"), Some("rid-1"));
    assert_eq!(r.header("x-upstream"), None, "response remove");
    assert_eq!(r.header("x-gold"), Some("yes"));
    let r = get(
        &format!("http://127.0.0.1:{port}/other"),
        &[("x-tier", "gold")],
    );
    assert_eq!(
        r.header("x-gold"),
        None,
        "the /api rule does not match /other"
    );
}

#[test]
fn a_wrong_filter_config_is_refused_with_the_field_and_reason() {
    let dir = TempDir::new("bad-filter");
    let path = dir.write(
        "weft.yaml",
        format!(
            "listeners: []\nplugins:\n  - name: rewrite\n    url: file://{}\n    pluginConfig: {{ rules: [ {{ requestHeaderModifier: {{ set: [ {{ name: \"bad name\", value: v }} ] }} }} ] }}\n",
            header_rewrite()
        ),
    );
    let (code, _, err) = weft_cmd(&["validate", "--config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("plugin rewrite: proxy_on_configure returned false"),
        "{err}"
    );
    // The refusal carries the filter's own reason.
    assert!(
        err.contains("header-rewrite: invalid pluginConfig: rules[0].requestHeaderModifier.set[0].name: \"bad name\" is not a valid header name"),
        "{err}"
    );
}

/// The demo's config, its filters built by the test build and pushed with
/// `weft push` to a registry of the test's own (in place of the demo's
/// 127.0.0.1:5000), as scripts/demo.sh does.
fn demo_config() -> (String, Registry) {
    let text =
        std::fs::read_to_string(weft_tests::workspace_root().join("examples/gateway/weft.yaml"))
            .unwrap();
    let registry = Registry::start();
    for name in ["header-rewrite", "router", "fault", "mirror", "authz"] {
        let wasm = weft_tests::build_filter(&format!("weft-filter-{name}"));
        let reference = format!("oci://{}/weft/filters/{name}:dev", registry.host());
        let (code, _, err) =
            weft_cmd(&["push", "--plain-http", wasm.to_str().unwrap(), &reference]);
        assert_eq!(code, 0, "weft push {reference}: {err}");
    }
    let text = text.replace("127.0.0.1:5000", &registry.host());
    assert!(
        text.matches("oci://").count() == 5,
        "the demo loads the five filters by oci://"
    );
    (text, registry)
}

/// Every behaviour the demo script advertises, against the demo config
/// itself (its ports swapped for free ones).
#[test]
fn the_demo_gateway_behaves_as_the_demo_script_says() {
    let (v1, v2, shadow) = (echo("v1"), echo("v2"), echo("shadow"));
    let port = free_port();
    let (config, _registry) = demo_config();
    let config = config
        .replace("127.0.0.1:9901", "{admin}")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9000", &v1.addr.to_string())
        .replace("127.0.0.1:9001", &v2.addr.to_string())
        .replace("127.0.0.1:9002", &shadow.addr.to_string())
        .replace(
            "access_log: {}",
            "access_log: { path: \"{dir}/access.log\" }",
        );
    let _weft = Weft::start(&config);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let demo =
        std::fs::read_to_string(weft_tests::workspace_root().join("scripts/demo.sh")).unwrap();
    let token = demo
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN="))
        .expect("scripts/demo.sh defines TOKEN");

    let r = get(&url("/hello"), &[("x-debug", "1")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("v1"));
    assert_eq!(r.header("x-route"), Some("default"));
    assert_eq!(r.header("x-seen-x-gateway"), Some("weft"));
    assert_eq!(r.header("x-seen-x-debug"), None);
    assert!(r.header("x-request-id").is_some());

    let to_v2 = (0..200)
        .filter(|_| get(&url("/api/items"), &[]).header("x-upstream") == Some("v2"))
        .count();
    assert!(
        (4..=40).contains(&to_v2),
        "canary 90/10: {to_v2} of 200 to v2"
    );
    let mut mirrored = 0;
    for _ in 0..100 {
        mirrored = shadow.request_count();
        if mirrored >= 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mirrored, 200, "every /api request is mirrored");

    assert_eq!(
        get(&url("/hello"), &[("x-version", "v2")]).header("x-upstream"),
        Some("v2")
    );
    let r = get(&url("/old"), &[]);
    assert_eq!(r.status, 301);
    assert!(r.header("location").unwrap_or("").ends_with("/hello"));
    assert_eq!(
        get(&url("/legacy/users"), &[]).header("x-seen-path"),
        Some("/v1/users")
    );
    let r = get(&url("/gateway/healthz"), &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "weft ok\n"));
    let started = std::time::Instant::now();
    assert_eq!(get(&url("/hello"), &[("x-chaos", "delay")]).status, 200);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(get(&url("/hello"), &[("x-chaos", "abort")]).status, 503);

    assert_eq!(get(&url("/admin"), &[]).status, 403);
    let bearer = format!("Bearer {token}");
    let r = get(&url("/admin"), &[("authorization", &bearer)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-seen-x-user"), Some("alice"));
    let r = get(&url("/"), &[("authorization", "Bearer not.a.jwt")]);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
}

#[test]
fn the_demo_gateway_config_is_valid() {
    let dir = TempDir::new("demo");
    let (text, _registry) = demo_config();
    let path = dir.write("weft.yaml", text);
    let (code, out, err) = weft_cmd(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"));
}

/// Istio's `match`: a plugin runs only on the listener ports it selects.
#[test]
fn a_plugin_match_limits_it_to_listener_ports() {
    let up = echo("up");
    let (a, b) = (free_port(), free_port());
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: a, address: "127.0.0.1:{a}", default_cluster: up }}
  - {{ name: b, address: "127.0.0.1:{b}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{}"] }}
plugins:
  - name: only-a
    url: file://{}
    match: [ {{ mode: SERVER, ports: [ {{ number: {a} }} ] }} ]
    pluginConfig: {{ rules: [ {{ requestHeaderModifier: {{ set: [ {{ name: x-only, value: a }} ] }} }} ] }}
  - name: client-side
    url: file://{}
    match: [ {{ mode: CLIENT }} ]
    pluginConfig: {{ rules: [ {{ requestHeaderModifier: {{ set: [ {{ name: x-client, value: yes }} ] }} }} ] }}
"#,
        up.addr,
        header_rewrite(),
        header_rewrite()
    );
    let _weft = Weft::start(&config);
    let on = |port: u16| get(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(on(a).header("x-seen-x-only"), Some("a"));
    assert_eq!(on(b).header("x-seen-x-only"), None);
    assert_eq!(
        on(a).header("x-seen-x-client"),
        None,
        "weft serves inbound traffic: a CLIENT match never applies"
    );
}
