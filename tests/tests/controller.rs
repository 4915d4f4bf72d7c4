//! The controller and two proxies on one machine: WasmPlugin manifests in a
//! directory, `weft run --controller`, snapshots that reach only the
//! proxies they concern, NACKs in the status, and proxies that keep serving
//! through a controller outage and resync after it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_tests::client::{get, get_status};
use weft_tests::upstream::echo;
use weft_tests::weft::{TempDir, Weft, controller_bin, free_port};

struct Controller {
    child: Child,
    port: u16,
}

impl Controller {
    fn start(dir: &std::path::Path, port: u16) -> Controller {
        let c = Controller::spawn(dir, port, &[]);
        eventually("the controller answers", || {
            get_status(&c.url("/status")) == Some(200)
        });
        c
    }

    fn spawn(dir: &std::path::Path, port: u16, extra: &[&str]) -> Controller {
        let child = Command::new(controller_bin())
            .args(["run", "--from-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--poll-interval", "100ms"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start weft-controller");
        Controller { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

fn tagging_plugin(name: &str, app: &str, value: &str, url: &str) -> String {
    format!(
        r#"apiVersion: extensions.weft.dev/v1alpha1
kind: WasmPlugin
metadata: {{ name: {name}, namespace: default }}
spec:
  selector: {{ matchLabels: {{ app: {app} }} }}
  url: {url}
  phase: STATS
  pluginConfig:
    rules: [ {{ requestHeaderModifier: {{ set: [ {{ name: x-tag, value: {value} }} ] }} }} ]
"#
    )
}

fn proxy(app: &str, controller: u16, upstream: std::net::SocketAddr) -> (Weft, u16) {
    proxy_with(
        app,
        upstream,
        &["--controller", &format!("http://127.0.0.1:{controller}")],
    )
}

fn proxy_with(app: &str, upstream: std::net::SocketAddr, args: &[&str]) -> (Weft, u16) {
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
node: {{ name: proxy-{app}, namespace: default, labels: {{ app: {app} }} }}
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{upstream}"] }}
plugins: []
"#
    );
    let weft = Weft::try_start_with(&config, TempDir::new("ctl-proxy"), args)
        .unwrap_or_else(|e| panic!("{e}"));
    (weft, port)
}

fn tag(port: u16) -> Option<String> {
    get(&format!("http://127.0.0.1:{port}/"), &[])
        .header("x-seen-x-tag")
        .map(str::to_owned)
}

fn generation(weft: &Weft) -> String {
    get(&weft.admin_url("/metrics"), &[])
        .text()
        .lines()
        .find(|l| l.starts_with("weft_config_generation "))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn plugins_follow_the_manifests_onto_the_proxies_they_select() {
    let wasm = format!(
        "file://{}",
        weft_tests::build_filter("weft-filter-header-rewrite").display()
    );
    let dir = TempDir::new("ctl-manifests");
    let manifest = dir.write("tag.yaml", tagging_plugin("tag", "a", "one", &wasm));
    let up = echo("up");
    let port = free_port();
    let mut controller = Controller::start(dir.path(), port);
    let (proxy_a, a) = proxy("a", port, up.addr);
    let (proxy_b, b) = proxy("b", port, up.addr);

    eventually("proxy a runs the plugin", || {
        tag(a).as_deref() == Some("one")
    });
    assert_eq!(tag(b), None, "proxy b is not selected");
    let b_generation = generation(&proxy_b);

    // An edit reaches the selected proxy, and only it.
    std::fs::write(&manifest, tagging_plugin("tag", "a", "two", &wasm)).unwrap();
    let edited = Instant::now();
    eventually("proxy a sees the edit", || tag(a).as_deref() == Some("two"));
    eprintln!("edit → proxy a: {:?}", edited.elapsed());
    assert_eq!(tag(b), None);
    assert_eq!(
        generation(&proxy_b),
        b_generation,
        "proxy b got no push for a plugin it does not run"
    );

    // A plugin the proxy cannot load: NACK, the error in the status, and
    // the proxy keeps serving what it had.
    dir.write(
        "bad.yaml",
        tagging_plugin("bad", "b", "x", "file:///nonexistent/filter.wasm"),
    );
    let mut status = String::new();
    eventually("the status shows proxy b's error", || {
        status = get(&controller.url("/status"), &[]).text();
        status.contains("\"proxy\": \"default/proxy-b\"")
            && status.contains("nonexistent/filter.wasm")
    });
    eprintln!("{status}");
    assert_eq!(get(&format!("http://127.0.0.1:{b}/"), &[]).status, 200);

    // The controller goes away: both proxies keep serving.
    controller.stop();
    for _ in 0..10 {
        assert_eq!(tag(a).as_deref(), Some("two"));
        assert_eq!(get(&format!("http://127.0.0.1:{b}/"), &[]).status, 200);
    }
    // Meanwhile the manifest changes; the restarted controller resyncs.
    std::fs::write(&manifest, tagging_plugin("tag", "a", "three", &wasm)).unwrap();
    let _controller = Controller::start(dir.path(), port);
    eventually("proxy a resyncs", || tag(a).as_deref() == Some("three"));
    drop(proxy_a);
}

#[test]
fn the_stream_runs_over_tls_verified_with_the_configured_ca() {
    let pki = weft_tests::tls::Pki::new();
    let stranger = weft_tests::tls::Pki::new();
    let wasm = format!(
        "file://{}",
        weft_tests::build_filter("weft-filter-header-rewrite").display()
    );
    let dir = TempDir::new("ctl-tls");
    dir.write("tag.yaml", tagging_plugin("tag", "a", "tls", &wasm));
    let up = echo("up");
    let port = free_port();
    let _controller = Controller::spawn(
        dir.path(),
        port,
        &[
            "--tls-cert",
            pki.server_cert.to_str().unwrap(),
            "--tls-key",
            pki.server_key.to_str().unwrap(),
        ],
    );
    let url = format!("https://127.0.0.1:{port}");
    let (_trusting, a) = proxy_with(
        "a",
        up.addr,
        &[
            "--controller",
            &url,
            "--controller-ca",
            pki.ca.to_str().unwrap(),
        ],
    );
    eventually("the proxy gets its plugin over TLS", || {
        tag(a).as_deref() == Some("tls")
    });
    // A proxy that trusts another CA never takes the controller's word.
    let (wary, b) = proxy_with(
        "a",
        up.addr,
        &[
            "--controller",
            &url,
            "--controller-ca",
            stranger.ca.to_str().unwrap(),
        ],
    );
    eventually("the proxy refuses the controller's certificate", || {
        wary.stderr_text().contains("TLS to the controller")
    });
    assert_eq!(tag(b), None);
}
