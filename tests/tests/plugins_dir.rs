//! `plugins_dir:` — WasmPlugin manifests next to weft.yaml, selected by the
//! proxy's own node labels, reloaded when they change.

use std::time::Duration;
use weft_tests::client::get;
use weft_tests::upstream::echo;
use weft_tests::weft::{TempDir, Weft, free_port};

fn manifest(name: &str, app: &str, value: &str, url: &str) -> String {
    format!(
        r#"apiVersion: extensions.weft.dev/v1alpha1
kind: WasmPlugin
metadata: {{ name: {name}, namespace: default }}
spec:
  selector: {{ matchLabels: {{ app: {app} }} }}
  url: {url}
  pluginConfig:
    rules: [ {{ requestHeaderModifier: {{ set: [ {{ name: x-{name}, value: {value} }} ] }} }} ]
"#
    )
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

#[test]
fn manifests_in_the_plugins_dir_apply_to_this_node_and_reload() {
    let url = format!(
        "file://{}",
        weft_tests::build_filter("weft-filter-header-rewrite").display()
    );
    let plugins = TempDir::new("plugins-dir");
    plugins.write(
        "edge.yaml",
        manifest("mine", "edge", "one", &url) + "---\n" + &manifest("theirs", "api", "x", &url),
    );
    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
node: {{ name: edge-1, namespace: default, labels: {{ app: edge }} }}
plugins_dir: "{}"
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{}"] }}
"#,
        plugins.path().display(),
        up.addr
    );
    let weft = Weft::start(&config);
    let target = format!("http://127.0.0.1:{port}/");
    let r = get(&target, &[]);
    assert_eq!(r.header("x-seen-x-mine"), Some("one"));
    assert_eq!(
        r.header("x-seen-x-theirs"),
        None,
        "selected by app: api only"
    );

    // An edit is picked up without a signal.
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime second
    plugins.write(
        "edge.yaml",
        manifest("mine", "edge", "two", &url) + "---\n" + &manifest("theirs", "api", "x", &url),
    );
    eventually("the edited manifest is served", || {
        get(&target, &[]).header("x-seen-x-mine") == Some("two")
    });

    // A broken manifest is refused with its file and document; the last
    // good plugins keep serving.
    plugins.write(
        "broken.yaml",
        manifest("bad", "edge", "x", &url).replace("url:", "ur1:"),
    );
    eventually("the reload is refused", || {
        let state = get(&weft.admin_url("/plugins"), &[]).text();
        state.contains("broken.yaml: document 1: spec") && state.contains("ur1")
    });
    assert_eq!(get(&target, &[]).header("x-seen-x-mine"), Some("two"));
}
