//! The built-in filters through the real binary.

use weft_tests::client::get;
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

#[test]
fn the_demo_gateway_config_is_valid() {
    let dir = TempDir::new("demo");
    let text =
        std::fs::read_to_string(weft_tests::workspace_root().join("examples/gateway/weft.yaml"))
            .unwrap();
    // Every filter the demo loads, built where the test build puts them.
    let mut text = text;
    for name in ["header-rewrite", "router", "fault", "mirror"] {
        let package = format!("weft-filter-{name}");
        text = text.replace(
            &format!(
                "file://../../target/wasm/wasm32-wasip1/wasm/{}.wasm",
                package.replace('-', "_")
            ),
            &format!("file://{}", weft_tests::build_filter(&package).display()),
        );
    }
    assert!(
        !text.contains("file://../"),
        "the demo loads a filter this test does not build"
    );
    let path = dir.write("weft.yaml", text);
    let (code, out, err) = weft_cmd(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"));
}
