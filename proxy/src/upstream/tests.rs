//! End-to-end tests of the upstream module against real hyper servers on
//! 127.0.0.1, on a current-thread runtime with a `LocalSet` like a worker.

use crate::upstream::cluster::addresses;
use crate::upstream::test_util::{
    Proto, TestServer, closed_port, closing_listener, pki, run, server, server_with_tls,
    silent_listener, wait_until,
};
use crate::upstream::{
    CircuitBreakerSettings, Cluster, ClusterSet, ClusterSettings, EndpointSettings,
    HealthCheckSettings, LbPolicy, OutlierSettings, SharedClusterState, UpstreamBody,
    UpstreamError, UpstreamProtocol, UpstreamTlsSettings, render_metrics,
};
use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

fn settings(servers: &[&TestServer], weights: &[u32], policy: LbPolicy) -> ClusterSettings {
    let endpoints = servers
        .iter()
        .zip(weights)
        .map(|(s, w)| EndpointSettings::new(s.addr.ip().to_string(), s.addr.port(), *w))
        .collect();
    let mut c = ClusterSettings::new("c", endpoints);
    c.lb_policy = policy;
    c.connect_timeout = Duration::from_secs(2);
    c
}

/// One worker's view: shared state plus a cluster set, like `worker.rs`.
struct Worker {
    shared: SharedClusterState,
    set: ClusterSet,
}

impl Worker {
    fn new(s: ClusterSettings) -> Worker {
        let all = [s];
        let shared = SharedClusterState::new(&all);
        let set = ClusterSet::new(&all, &shared);
        Worker { shared, set }
    }

    fn cluster(&self) -> &Cluster {
        self.set.get("c").expect("cluster c")
    }

    fn stats(&self) -> crate::upstream::ClusterStats {
        self.shared.stats().remove(0)
    }
}

fn request(path: &str) -> Request<UpstreamBody> {
    Request::builder()
        .uri(path)
        .header(http::header::HOST, "example.test")
        .body(
            Full::new(Bytes::new())
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
        .expect("request")
}

/// Sends, reads the whole answer, returns (endpoint, status, body).
async fn call(cluster: &Cluster, key: Option<&[u8]>) -> (SocketAddr, StatusCode, String) {
    let r = cluster.send(request("/p?x=1"), key).await.expect("send");
    let status = r.response.status();
    let body = r
        .response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        r.endpoint,
        status,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[test]
fn round_robin_follows_the_smooth_weighted_sequence() {
    run(async {
        let (a, b, c) = (
            server("a", Proto::Auto).await,
            server("b", Proto::Auto).await,
            server("c", Proto::Auto).await,
        );
        let w = Worker::new(settings(&[&a, &b, &c], &[5, 1, 1], LbPolicy::RoundRobin));
        let mut seq = String::new();
        for _ in 0..14 {
            let (_, status, body) = call(w.cluster(), None).await;
            assert_eq!(status, StatusCode::OK);
            seq.push_str(&body);
        }
        assert_eq!(seq, "aabacaaaabacaa");
        // The client's Host is kept and the target is origin-form.
        let seen = a.state.last_seen();
        assert_eq!(seen.authority.as_deref(), Some("example.test"));
        assert_eq!(seen.path_and_query, "/p?x=1");
        assert_eq!(seen.version, Version::HTTP_11);
        let stats = w.stats();
        assert_eq!(
            (
                stats.requests,
                stats.active_requests,
                stats.healthy_endpoints
            ),
            (14, 0, 3)
        );
    });
}

#[test]
fn absolute_form_becomes_origin_form_with_the_clients_authority() {
    run(async {
        let a = server("a", Proto::Auto).await;
        let w = Worker::new(settings(&[&a], &[1], LbPolicy::RoundRobin));
        let req = Request::builder()
            .uri("http://client.example:8080/abs?q=2")
            .body(
                Full::new(Bytes::from_static(b"hi"))
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            )
            .expect("request");
        let r = w.cluster().send(req, None).await.expect("send");
        assert_eq!(r.response.status(), StatusCode::OK);
        let seen = a.state.last_seen();
        assert_eq!(seen.authority.as_deref(), Some("client.example:8080"));
        assert_eq!(seen.path_and_query, "/abs?q=2");
    });
}

#[test]
fn random_is_weighted() {
    run(async {
        let (a, b) = (
            server("a", Proto::Auto).await,
            server("b", Proto::Auto).await,
        );
        let w = Worker::new(settings(&[&a, &b], &[1, 3], LbPolicy::Random));
        for _ in 0..200 {
            call(w.cluster(), None).await;
        }
        // Expected 150 of 200 on b (σ ≈ 6): 120..190 is 5σ on each side.
        let n = b.state.requests();
        assert!((120..=190).contains(&n), "b got {n} of 200");
        assert_eq!(a.state.requests() + n, 200);
    });
}

#[test]
fn least_request_spreads_requests_in_flight_and_weights_idle_ones() {
    run(async {
        let (a, b) = (
            server("a", Proto::Auto).await,
            server("b", Proto::Auto).await,
        );
        let w = Rc::new(Worker::new(settings(
            &[&a, &b],
            &[1, 1],
            LbPolicy::LeastRequest,
        )));
        a.state.hold.send_replace(true);
        b.state.hold.send_replace(true);
        let mut tasks = Vec::new();
        for i in 1..=6 {
            let w = w.clone();
            tasks.push(tokio::task::spawn_local(async move {
                call(w.cluster(), None).await
            }));
            wait_until("the request reached a server", || {
                a.state.requests() + b.state.requests() == i
            })
            .await;
        }
        // With two endpoints both are always compared: the idler one wins.
        assert_eq!((a.state.requests(), b.state.requests()), (3, 3));
        assert_eq!(w.stats().active_requests, 6);
        a.state.hold.send_replace(false);
        b.state.hold.send_replace(false);
        for t in tasks {
            assert_eq!(t.await.expect("task").1, StatusCode::OK);
        }
        assert_eq!(w.stats().active_requests, 0);

        // Idle endpoints share by weight.
        let (c, d) = (
            server("c", Proto::Auto).await,
            server("d", Proto::Auto).await,
        );
        let w = Worker::new(settings(&[&c, &d], &[3, 1], LbPolicy::LeastRequest));
        for _ in 0..200 {
            call(w.cluster(), None).await;
        }
        let n = c.state.requests();
        assert!((120..=190).contains(&n), "c got {n} of 200");
    });
}

#[test]
fn ring_hash_keeps_a_key_on_its_endpoint() {
    run(async {
        let servers = [
            server("a", Proto::Auto).await,
            server("b", Proto::Auto).await,
            server("c", Proto::Auto).await,
        ];
        let mut s = settings(
            &[&servers[0], &servers[1], &servers[2]],
            &[1, 1, 1],
            LbPolicy::RingHash,
        );
        s.hash_header = Some(http::HeaderName::from_static("x-user"));
        let w = Worker::new(s);
        let mut owner: HashMap<String, SocketAddr> = HashMap::new();
        for round in 0..3 {
            for k in 0..20 {
                let key = format!("user-{k}");
                let (ep, _, _) = call(w.cluster(), Some(key.as_bytes())).await;
                if round == 0 {
                    owner.insert(key, ep);
                } else {
                    assert_eq!(owner[&key], ep, "{key} moved");
                }
            }
        }
        let distinct: std::collections::HashSet<_> = owner.values().collect();
        assert!(distinct.len() >= 2, "20 keys all on one endpoint");
        // Without a key, the hash_header value is the key.
        for k in 0..5 {
            let key = format!("user-{k}");
            let mut req = request("/");
            req.headers_mut()
                .insert("x-user", key.parse().expect("value"));
            let r = w.cluster().send(req, None).await.expect("send");
            assert_eq!(r.endpoint, owner[&key]);
        }
        // No key at all: any endpoint, still answered.
        let mut req = request("/");
        req.headers_mut().remove("x-user");
        assert!(w.cluster().send(req, None).await.is_ok());
        assert_eq!(
            w.cluster().hash_header().map(|h| h.as_str()),
            Some("x-user")
        );
    });
}

#[test]
fn health_checks_take_an_endpoint_out_and_back() {
    run(async {
        let (a, b) = (
            server("a", Proto::Auto).await,
            server("b", Proto::Auto).await,
        );
        let mut s = settings(&[&a, &b], &[1, 1], LbPolicy::RoundRobin);
        s.health_check = Some(HealthCheckSettings {
            path: "/health".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 2,
            healthy_threshold: 2,
        });
        let w = Worker::new(s);
        w.shared.spawn_background();
        w.shared.spawn_background(); // idempotent
        wait_until("a was checked", || {
            a.state
                .health_checks
                .load(std::sync::atomic::Ordering::SeqCst)
                >= 1
        })
        .await;
        assert_eq!(w.stats().healthy_endpoints, 2);

        a.state
            .health_status
            .store(503, std::sync::atomic::Ordering::SeqCst);
        wait_until("a is unhealthy", || w.stats().healthy_endpoints == 1).await;
        let st = w.stats();
        let ep_a = st
            .endpoints
            .iter()
            .find(|e| e.address == a.addr)
            .expect("a");
        assert!(!ep_a.healthy);
        for _ in 0..6 {
            assert_eq!(call(w.cluster(), None).await.0, b.addr);
        }
        assert_eq!(a.state.requests(), 0);

        a.state
            .health_status
            .store(200, std::sync::atomic::Ordering::SeqCst);
        wait_until("a is healthy again", || w.stats().healthy_endpoints == 2).await;
        let mut hit_a = false;
        for _ in 0..4 {
            hit_a |= call(w.cluster(), None).await.0 == a.addr;
        }
        assert!(hit_a);

        // Stopped: no more checks (one already under way may finish).
        w.shared.shutdown();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = a
            .state
            .health_checks
            .load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            a.state
                .health_checks
                .load(std::sync::atomic::Ordering::SeqCst)
                <= n + 1
        );
    });
}

#[test]
fn health_checks_over_http2_and_tls() {
    run(async {
        let p = pki();
        let a = server_with_tls("a", Proto::Http2Only, Some(p.server.clone())).await;
        let mut s = settings(&[&a], &[1], LbPolicy::RoundRobin);
        s.protocol = UpstreamProtocol::Http2;
        s.tls = Some(UpstreamTlsSettings {
            ca_pem: Some(p.ca_pem.clone()),
            ..Default::default()
        });
        s.health_check = Some(HealthCheckSettings {
            path: "/health".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 1,
            healthy_threshold: 1,
        });
        let w = Worker::new(s);
        w.shared.spawn_background();
        a.state
            .health_status
            .store(500, std::sync::atomic::Ordering::SeqCst);
        wait_until("a is unhealthy", || w.stats().healthy_endpoints == 0).await;
        // All endpoints unhealthy: panic mode still routes.
        assert_eq!(call(w.cluster(), None).await.1, StatusCode::OK);
        a.state
            .health_status
            .store(204, std::sync::atomic::Ordering::SeqCst);
        wait_until("a is healthy", || w.stats().healthy_endpoints == 1).await;
    });
}

#[test]
fn outlier_detection_ejects_after_consecutive_5xx() {
    run(async {
        let (a, b) = (
            server("a", Proto::Auto).await,
            server("b", Proto::Auto).await,
        );
        a.state.set_status(503);
        let mut s = settings(&[&a, &b], &[1, 1], LbPolicy::RoundRobin);
        s.outlier_detection = Some(OutlierSettings {
            consecutive_5xx: 3,
            consecutive_connect_failures: 0,
            base_ejection_time: Duration::from_secs(1),
        });
        let w = Worker::new(s);
        // a, b, a, b, a: the third 503 from a ejects it.
        for _ in 0..5 {
            call(w.cluster(), None).await;
        }
        assert_eq!(a.state.requests(), 3);
        let st = w.stats();
        assert_eq!(
            (st.ejections, st.healthy_endpoints, st.responses_5xx),
            (1, 1, 3)
        );
        assert!(
            st.endpoints
                .iter()
                .any(|e| e.address == a.addr && e.ejected && e.ejections == 1)
        );
        for _ in 0..8 {
            assert_eq!(call(w.cluster(), None).await.0, b.addr);
        }
        assert_eq!(a.state.requests(), 3);

        // The ejection ends by itself.
        a.state.set_status(200);
        wait_until("a's ejection ends", || w.stats().healthy_endpoints == 2).await;
        let mut hit_a = false;
        for _ in 0..4 {
            hit_a |= call(w.cluster(), None).await.0 == a.addr;
        }
        assert!(hit_a);

        // Everything ejected: panic mode uses every endpoint.
        a.state.set_status(500);
        b.state.set_status(500);
        for _ in 0..12 {
            call(w.cluster(), None).await;
        }
        assert_eq!(w.stats().healthy_endpoints, 0);
        let (before_a, before_b) = (a.state.requests(), b.state.requests());
        for _ in 0..4 {
            assert_eq!(
                call(w.cluster(), None).await.1,
                StatusCode::INTERNAL_SERVER_ERROR
            );
        }
        assert_eq!(
            a.state.requests() + b.state.requests(),
            before_a + before_b + 4
        );
    });
}

#[test]
fn connect_failures_are_typed_counted_and_eject() {
    run(async {
        let b = server("b", Proto::Auto).await;
        let dead = closed_port();
        let mut s = ClusterSettings::new(
            "c",
            vec![
                EndpointSettings::new(dead.ip().to_string(), dead.port(), 1),
                EndpointSettings::new(b.addr.ip().to_string(), b.addr.port(), 1),
            ],
        );
        s.outlier_detection = Some(OutlierSettings {
            consecutive_5xx: 0,
            consecutive_connect_failures: 1,
            base_ejection_time: Duration::from_secs(60),
        });
        let w = Worker::new(s);
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("the dead endpoint goes first");
        assert!(
            matches!(&e, UpstreamError::ConnectFailed { cluster, endpoint, .. } if cluster == "c" && *endpoint == dead)
        );
        assert!(e.is_connect_failure() && !e.is_reset() && !e.is_overloaded());
        assert_eq!(e.endpoint(), Some(dead));
        let st = w.stats();
        assert_eq!((st.connect_failures, st.ejections), (1, 1));
        for _ in 0..4 {
            assert_eq!(call(w.cluster(), None).await.0, b.addr);
        }
    });
}

#[test]
fn connect_timeout_covers_the_tls_handshake() {
    run(async {
        let silent = silent_listener().await;
        let mut s = ClusterSettings::new(
            "c",
            vec![EndpointSettings::new("127.0.0.1", silent.port(), 1)],
        );
        s.connect_timeout = Duration::from_millis(100);
        s.tls = Some(UpstreamTlsSettings {
            insecure_skip_verify: true,
            ..Default::default()
        });
        let w = Worker::new(s);
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("times out");
        assert!(matches!(e, UpstreamError::ConnectTimeout { .. }), "{e}");
        assert!(e.is_connect_failure());
        let st = w.stats();
        assert_eq!(
            (
                st.connect_failures,
                st.connect_timeouts,
                st.active_connections
            ),
            (1, 1, 0)
        );
    });
}

#[test]
fn a_connection_closed_before_the_answer_is_a_reset() {
    run(async {
        let addr = closing_listener().await;
        let w = Worker::new(ClusterSettings::new(
            "c",
            vec![EndpointSettings::new("127.0.0.1", addr.port(), 1)],
        ));
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("reset");
        assert!(e.is_reset() && !e.is_connect_failure(), "{e}");
        assert_eq!(w.stats().resets, 1);
    });
}

#[test]
fn circuit_breakers_answer_overloaded_at_once() {
    run(async {
        // max_requests
        let a = server("a", Proto::Auto).await;
        let mut s = settings(&[&a], &[1], LbPolicy::RoundRobin);
        s.circuit_breakers = CircuitBreakerSettings {
            max_connections: 0,
            max_pending_requests: 0,
            max_requests: 2,
        };
        let w = Rc::new(Worker::new(s));
        a.state.hold.send_replace(true);
        let mut held = Vec::new();
        for i in 1..=2 {
            let w = w.clone();
            held.push(tokio::task::spawn_local(async move {
                call(w.cluster(), None).await
            }));
            wait_until("the request is held", || a.state.requests() == i).await;
        }
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("overloaded");
        assert!(
            matches!(
                e,
                UpstreamError::Overloaded {
                    which: "max_requests",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.is_overloaded() && !e.is_connect_failure());
        a.state.hold.send_replace(false);
        for t in held {
            assert_eq!(t.await.expect("task").1, StatusCode::OK);
        }
        assert!(
            w.cluster().send(request("/"), None).await.is_ok(),
            "slots are given back"
        );
        let st = w.stats();
        assert_eq!((st.overloaded, st.overloaded_max_requests), (1, 1));

        // max_connections: an HTTP/1 connection busy with a held request.
        let b = server("b", Proto::Auto).await;
        let mut s = settings(&[&b], &[1], LbPolicy::RoundRobin);
        s.circuit_breakers = CircuitBreakerSettings {
            max_connections: 1,
            max_pending_requests: 0,
            max_requests: 0,
        };
        let w = Rc::new(Worker::new(s));
        b.state.hold.send_replace(true);
        let w2 = w.clone();
        let first = tokio::task::spawn_local(async move { call(w2.cluster(), None).await });
        wait_until("the request is held", || b.state.requests() == 1).await;
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("overloaded");
        assert!(
            matches!(
                e,
                UpstreamError::Overloaded {
                    which: "max_connections",
                    ..
                }
            ),
            "{e}"
        );
        b.state.hold.send_replace(false);
        assert_eq!(first.await.expect("task").1, StatusCode::OK);
        assert_eq!(w.stats().overloaded_max_connections, 1);

        // max_pending_requests: a TLS handshake that never completes.
        let silent = silent_listener().await;
        let mut s = ClusterSettings::new(
            "c",
            vec![EndpointSettings::new("127.0.0.1", silent.port(), 1)],
        );
        s.tls = Some(UpstreamTlsSettings {
            insecure_skip_verify: true,
            ..Default::default()
        });
        s.connect_timeout = Duration::from_secs(30);
        s.circuit_breakers = CircuitBreakerSettings {
            max_connections: 0,
            max_pending_requests: 1,
            max_requests: 0,
        };
        let w = Rc::new(Worker::new(s));
        let w2 = w.clone();
        let stuck = tokio::task::spawn_local(async move {
            w2.cluster().send(request("/"), None).await.map(|_| ())
        });
        wait_until("a request is pending", || w.stats().pending_requests == 1).await;
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("overloaded");
        assert!(
            matches!(
                e,
                UpstreamError::Overloaded {
                    which: "max_pending_requests",
                    ..
                }
            ),
            "{e}"
        );
        stuck.abort();
        let _ = stuck.await;
        let st = w.stats();
        assert_eq!(
            (
                st.pending_requests,
                st.active_connections,
                st.active_requests
            ),
            (0, 0, 0)
        );
    });
}

#[test]
fn http1_connections_are_kept_alive_and_closed_when_idle() {
    run(async {
        let a = server("a", Proto::Auto).await;
        let mut s = settings(&[&a], &[1], LbPolicy::RoundRobin);
        s.idle_timeout = Duration::from_secs(1);
        let w = Worker::new(s);
        for _ in 0..5 {
            assert_eq!(call(w.cluster(), None).await.1, StatusCode::OK);
            wait_until("the connection is back in the pool", || {
                w.cluster().pooled_connections() == 1
            })
            .await;
        }
        assert_eq!(a.state.connections(), 1);
        let st = w.stats();
        assert_eq!((st.connections_opened, st.active_connections), (1, 1));
        // Idle past idle_timeout: closed; the next request opens another.
        wait_until("the idle connection is closed", || {
            w.cluster().pooled_connections() == 0
        })
        .await;
        wait_until("the connection slot is released", || {
            w.stats().active_connections == 0
        })
        .await;
        call(w.cluster(), None).await;
        assert_eq!(a.state.connections(), 2);
    });
}

#[test]
fn http2_upstream_multiplexes_one_connection() {
    run(async {
        let a = server("a", Proto::Http2Only).await;
        let mut s = settings(&[&a], &[1], LbPolicy::RoundRobin);
        s.protocol = UpstreamProtocol::Http2;
        s.idle_timeout = Duration::from_secs(1);
        let w = Rc::new(Worker::new(s));
        a.state.hold.send_replace(true);
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let w = w.clone();
            tasks.push(tokio::task::spawn_local(async move {
                call(w.cluster(), None).await
            }));
        }
        wait_until("5 streams are open", || a.state.requests() == 5).await;
        a.state.hold.send_replace(false);
        for t in tasks {
            assert_eq!(t.await.expect("task").1, StatusCode::OK);
        }
        for _ in 0..3 {
            call(w.cluster(), None).await;
        }
        assert_eq!(a.state.connections(), 1);
        let seen = a.state.last_seen();
        assert_eq!(seen.version, Version::HTTP_2);
        assert_eq!(seen.authority.as_deref(), Some("example.test"));
        assert_eq!(seen.path_and_query, "/p?x=1");
        assert_eq!(w.stats().connections_opened, 1);
        // Idle past idle_timeout: dropped; the next request reconnects.
        wait_until("the idle connection is dropped", || {
            w.cluster().pooled_connections() == 0
        })
        .await;
        assert_eq!(call(w.cluster(), None).await.1, StatusCode::OK);
        assert_eq!(a.state.connections(), 2);
    });
}

#[test]
fn upstream_tls_verifies_against_the_given_ca() {
    run(async {
        let p = pki();
        let a = server_with_tls("a", Proto::Auto, Some(p.server.clone())).await;
        let tls = |sni: Option<&str>| UpstreamTlsSettings {
            ca_pem: Some(p.ca_pem.clone()),
            sni: sni.map(str::to_owned),
            ..Default::default()
        };
        // SNI "localhost" (the certificate's DNS name), HTTP/1.1 ALPN.
        let mut s = settings(&[&a], &[1], LbPolicy::RoundRobin);
        s.tls = Some(tls(Some("localhost")));
        assert_eq!(s.validate(), Ok(()));
        let w = Worker::new(s.clone());
        assert_eq!(call(w.cluster(), None).await.1, StatusCode::OK);
        assert_eq!(a.state.last_seen().version, Version::HTTP_11);
        assert_eq!(
            a.state.last_seen().authority.as_deref(),
            Some("example.test")
        );

        // No SNI: the IP address is checked against the IP SAN.
        s.tls = Some(tls(None));
        let w = Worker::new(s.clone());
        assert_eq!(call(w.cluster(), None).await.1, StatusCode::OK);

        // HTTP/2 over TLS (ALPN h2).
        let mut h2 = s.clone();
        h2.protocol = UpstreamProtocol::Http2;
        let w = Worker::new(h2);
        assert_eq!(call(w.cluster(), None).await.1, StatusCode::OK);
        assert_eq!(a.state.last_seen().version, Version::HTTP_2);

        // A name the certificate does not have.
        s.tls = Some(tls(Some("other.test")));
        let w = Worker::new(s.clone());
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("bad name");
        assert!(
            matches!(e, UpstreamError::Tls { .. }) && e.is_connect_failure(),
            "{e}"
        );

        // Another CA.
        let other = pki();
        s.tls = Some(UpstreamTlsSettings {
            ca_pem: Some(other.ca_pem),
            ..Default::default()
        });
        let w = Worker::new(s.clone());
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("unknown CA");
        assert!(matches!(e, UpstreamError::Tls { .. }), "{e}");

        // Unusable settings: refused by validate, and every request fails.
        s.tls = Some(UpstreamTlsSettings::default());
        assert!(s.validate().is_err());
        let w = Worker::new(s);
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("no CA");
        assert!(matches!(e, UpstreamError::TlsConfig { .. }), "{e}");
    });
}

#[test]
fn upstream_mtls_presents_the_client_certificate() {
    run(async {
        let p = pki();
        let a = server_with_tls("a", Proto::Auto, Some(p.server_mtls.clone())).await;
        let mut s = settings(&[&a], &[1], LbPolicy::RoundRobin);
        s.tls = Some(UpstreamTlsSettings {
            ca_pem: Some(p.ca_pem.clone()),
            sni: Some("localhost".into()),
            ..Default::default()
        });
        // Without a client certificate the server refuses.
        let w = Worker::new(s.clone());
        let e = w
            .cluster()
            .send(request("/"), None)
            .await
            .expect_err("no client cert");
        // TLS 1.3: the refusal arrives after the handshake, with the answer.
        assert!(
            matches!(e, UpstreamError::Tls { .. }) && e.is_connect_failure(),
            "{e:?}"
        );
        assert_eq!(a.state.requests(), 0);

        if let Some(t) = s.tls.as_mut() {
            t.client_cert_pem = Some(p.client_cert_pem.clone());
            t.client_key_pem = Some(p.client_key_pem.clone());
        }
        let w = Worker::new(s);
        assert_eq!(call(w.cluster(), None).await.1, StatusCode::OK);
        assert!(a.state.last_seen().client_cert);
    });
}

#[test]
fn dns_names_are_resolved_and_workers_follow_changes() {
    run(async {
        let p = pki();
        let a = server_with_tls("a", Proto::Auto, Some(p.server.clone())).await;
        let b = server_with_tls("b", Proto::Auto, Some(p.server.clone())).await;
        // "localhost" is a DNS name: resolved, and the SNI defaults to it.
        let mut s = ClusterSettings::new(
            "c",
            vec![EndpointSettings::new("localhost", a.addr.port(), 1)],
        );
        s.tls = Some(UpstreamTlsSettings {
            ca_pem: Some(p.ca_pem.clone()),
            ..Default::default()
        });
        let w = Worker::new(s);
        let shared = w.shared.cluster("c").expect("shared cluster").clone();
        let resolved = addresses(w.cluster());
        assert!(resolved.contains(&a.addr), "{resolved:?}");
        if resolved.len() > 1 {
            // Keep the test to the address the server listens on.
            shared.set_resolved(0, &[a.addr]);
        }
        assert_eq!(call(w.cluster(), None).await.0, a.addr);

        // A re-resolution (here by hand) reaches the worker on its next request.
        assert!(shared.set_resolved(0, &[a.addr, b.addr]));
        let mut got: Vec<SocketAddr> = Vec::new();
        for _ in 0..4 {
            got.push(call(w.cluster(), None).await.0);
        }
        assert!(got.contains(&a.addr) && got.contains(&b.addr), "{got:?}");
        assert!(shared.set_resolved(0, &[b.addr]));
        for _ in 0..3 {
            assert_eq!(call(w.cluster(), None).await.0, b.addr);
        }
        assert_eq!(w.stats().endpoints.len(), 1);
    });
}

#[test]
fn metrics_render_every_cluster() {
    run(async {
        let a = server("a", Proto::Auto).await;
        let w = Worker::new(settings(&[&a], &[1], LbPolicy::RoundRobin));
        call(w.cluster(), None).await;
        let mut out = String::new();
        render_metrics(&mut out, &w.shared);
        assert!(
            out.contains("weft_cluster_requests_total{cluster=\"c\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "weft_endpoint_healthy{{cluster=\"c\",endpoint=\"{}\"",
                a.addr
            )),
            "{out}"
        );
        assert_eq!(w.shared.cluster_names().collect::<Vec<_>>(), ["c"]);
    });
}

#[test]
fn two_workers_share_health_ejections_and_breakers() {
    run(async {
        let (a, b) = (
            server("a", Proto::Auto).await,
            server("b", Proto::Auto).await,
        );
        let mut s = settings(&[&a, &b], &[1, 1], LbPolicy::RoundRobin);
        s.outlier_detection = Some(OutlierSettings {
            consecutive_5xx: 1,
            consecutive_connect_failures: 0,
            base_ejection_time: Duration::from_secs(60),
        });
        let all = [s];
        let shared = SharedClusterState::new(&all);
        let one = ClusterSet::new(&all, &shared);
        let two = ClusterSet::new(&all, &shared);
        a.state.set_status(502);
        // Worker one ejects a...
        for _ in 0..2 {
            call(one.get("c").expect("c"), None).await;
        }
        assert_eq!(a.state.requests(), 1);
        // ...and worker two never sends to it.
        for _ in 0..4 {
            assert_eq!(call(two.get("c").expect("c"), None).await.0, b.addr);
        }
        let st = shared.stats().remove(0);
        assert_eq!(st.requests, 6, "counters of both workers are summed");
        assert!(one.get("missing").is_none());
        assert_eq!(one.iter().count(), 1);
    });
}

#[test]
fn shared_types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedClusterState>();
    send_sync::<ClusterSettings>();
    send_sync::<UpstreamError>();
}
