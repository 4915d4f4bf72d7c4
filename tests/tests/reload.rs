//! Hot reload of listeners: added, removed, certificates rotated, and a
//! listener that cannot bind refused while the old configuration serves.

use std::time::Duration;
use weft_tests::client::{get, get_status};
use weft_tests::tls::Pki;
use weft_tests::upstream::echo;
use weft_tests::weft::{Weft, free_port};

/// Polls `check` every 50 ms for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

fn listener(name: &str, port: u16) -> String {
    format!("  - {{ name: {name}, address: \"127.0.0.1:{port}\", default_cluster: up }}\n")
}

fn config(upstream: std::net::SocketAddr, listeners: &str) -> String {
    format!(
        "admin: {{ address: \"{{admin}}\" }}\nworkers: 2\nlisteners:\n{listeners}clusters:\n  - {{ name: up, endpoints: [\"{upstream}\"] }}\n"
    )
}

/// Rewrites the running config (the admin address stays) and sends SIGHUP.
fn reload(weft: &Weft, text: &str) {
    let text = text.replace("{admin}", &weft.admin.to_string());
    std::fs::write(&weft.config, text).expect("write config");
    weft.signal("HUP");
}

#[test]
fn listeners_come_and_go_on_reload() {
    let up = echo("up");
    let (a, b) = (free_port(), free_port());
    let url = |p: u16| format!("http://127.0.0.1:{p}/");
    let weft = Weft::start(&config(up.addr, &listener("a", a)));
    assert_eq!(get(&url(a), &[]).status, 200);
    assert_eq!(get_status(&url(b)), None, "b is not there yet");

    // Add b: both serve.
    reload(
        &weft,
        &config(up.addr, &(listener("a", a) + &listener("b", b))),
    );
    eventually("listener b answers", || get_status(&url(b)) == Some(200));
    // Every worker accepts on it: many fresh connections all succeed.
    for _ in 0..40 {
        assert_eq!(get(&url(b), &[]).status, 200);
        assert_eq!(get(&url(a), &[]).status, 200);
    }

    // Remove a: its port closes, b keeps serving.
    reload(&weft, &config(up.addr, &listener("b", b)));
    eventually("listener a is closed", || get_status(&url(a)).is_none());
    for _ in 0..20 {
        assert_eq!(get(&url(b), &[]).status, 200);
    }

    // Move b to another port under the same name.
    let c = free_port();
    reload(&weft, &config(up.addr, &listener("b", c)));
    eventually("b answers on its new port", || {
        get_status(&url(c)) == Some(200)
    });
    eventually("b's old port is closed", || get_status(&url(b)).is_none());
}

#[test]
fn a_listener_that_cannot_bind_refuses_the_reload() {
    let up = echo("up");
    let a = free_port();
    // Held without SO_REUSEPORT: weft cannot bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").port();
    let weft = Weft::start(&config(up.addr, &listener("a", a)));
    reload(
        &weft,
        &config(up.addr, &(listener("a", a) + &listener("busy", busy))),
    );
    eventually("the reload is refused", || {
        let plugins = get(&weft.admin_url("/plugins"), &[]).text();
        plugins.contains("listener busy: cannot bind")
    });
    assert_eq!(get(&format!("http://127.0.0.1:{a}/"), &[]).status, 200);
    let metrics = get(&weft.admin_url("/metrics"), &[]).text();
    assert!(
        metrics.contains("weft_config_reloads_total{result=\"failed\"} 1"),
        "{metrics}"
    );
}

#[test]
fn listener_certificates_rotate_on_reload() {
    let pki = Pki::new();
    let up = echo("up");
    let port = free_port();
    let (old_cert, old_key) = pki.issue_server_cert("old", &["old.test"]);
    let (new_cert, new_key) = pki.issue_server_cert("new", &["new.test"]);
    let tls_config = |cert: &std::path::Path, key: &std::path::Path| {
        format!(
            "admin: {{ address: \"{{admin}}\" }}\nworkers: 1\nlisteners:\n  - name: secure\n    address: 127.0.0.1:{port}\n    default_cluster: up\n    tls: {{ certificates: [ {{ cert: \"{}\", key: \"{}\" }} ] }}\nclusters:\n  - {{ name: up, endpoints: [\"{}\"] }}\n",
            cert.display(),
            key.display(),
            up.addr
        )
    };
    let weft = Weft::start(&tls_config(&old_cert, &old_key));
    let fetch = |name: &str| pki.get_as(name, port, "/", &[], false);
    assert_eq!(fetch("old.test").expect("old cert").status, 200);
    assert!(fetch("new.test").is_err(), "the new name is not served yet");

    reload(&weft, &tls_config(&new_cert, &new_key));
    eventually("the new certificate is served", || {
        fetch("new.test").is_ok_and(|r| r.status == 200)
    });
    assert!(fetch("old.test").is_err(), "the old certificate is gone");

    // An unreadable certificate is refused; the current one keeps serving.
    let missing = pki.dir.path().join("missing.pem");
    reload(&weft, &tls_config(&missing, &new_key));
    eventually("the bad reload is refused", || {
        get(&weft.admin_url("/plugins"), &[])
            .text()
            .contains("missing.pem")
    });
    assert_eq!(fetch("new.test").expect("still served").status, 200);
}
