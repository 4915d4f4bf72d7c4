use super::*;
use serde_json::json;

fn pod(ns: &str, name: &str, labels: serde_json::Value, phase: &str, ip: Option<&str>) -> Pod {
    let mut status = json!({ "phase": phase });
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
    }
    serde_json::from_value(json!({
        "metadata": { "namespace": ns, "name": name, "labels": labels },
        "spec": { "serviceAccountName": "gw-sa", "containers": [] },
        "status": status,
    }))
    .unwrap()
}

fn running(ns: &str, name: &str, labels: serde_json::Value) -> Pod {
    pod(ns, name, labels, "Running", Some("10.0.0.7"))
}

fn service(ns: &str, name: &str, selector: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": { "namespace": ns, "name": name },
        "spec": { "selector": selector },
    }))
    .unwrap()
}

fn plugin(ns: &str, name: &str, status: Option<serde_json::Value>) -> WasmPlugin {
    let mut v = json!({
        "apiVersion": "extensions.weft.dev/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": { "namespace": ns, "name": name, "generation": 2 },
        "spec": { "url": "oci://r/p:1" },
    });
    if let Some(s) = status {
        v["status"] = s;
    }
    serde_json::from_value(v).unwrap()
}

fn wkey(ns: &str, name: &str) -> WorkloadKey {
    WorkloadKey {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
}

fn pkey(ns: &str, name: &str) -> PluginKey {
    PluginKey {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
}

#[test]
fn which_pods_are_workloads() {
    let mut deleting = running("shop", "p", json!({}));
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
    // (case, pod, workload?)
    let cases = [
        ("running with an IP", running("shop", "p", json!({})), true),
        (
            "pending",
            pod("shop", "p", json!({}), "Pending", Some("10.0.0.7")),
            false,
        ),
        (
            "running without an IP",
            pod("shop", "p", json!({}), "Running", None),
            false,
        ),
        (
            "running with an empty IP",
            pod("shop", "p", json!({}), "Running", Some("")),
            false,
        ),
        (
            "succeeded",
            pod("shop", "p", json!({}), "Succeeded", Some("10.0.0.7")),
            false,
        ),
        ("being deleted", deleting, false),
    ];
    for (case, p, want) in cases {
        assert_eq!(pod_is_workload(&p), want, "{case}");
        assert_eq!(workload_from_pod(&p, &[]).is_some(), want, "{case}");
    }
}

#[test]
fn workload_from_a_pod_and_its_services() {
    let p = running(
        "shop",
        "gw-1",
        json!({ "app": "gw", "tier": "edge", GATEWAY_NAME_LABEL: "edge" }),
    );
    let services = [
        service("shop", "web", json!({ "app": "gw" })),
        service("shop", "all-edge", json!({ "app": "gw", "tier": "edge" })),
        service("shop", "api", json!({ "app": "api" })),
        service("shop", "partial", json!({ "app": "gw", "zone": "a" })),
        service("shop", "headless-no-selector", json!({})),
        service("bank", "web", json!({ "app": "gw" })),
    ];
    let w = workload_from_pod(&p, &services).unwrap();
    assert_eq!(w.key(), wkey("shop", "gw-1"));
    assert_eq!(w.labels.get("tier").map(String::as_str), Some("edge"));
    assert_eq!(w.service_account, "gw-sa");
    assert_eq!(w.ip, "10.0.0.7");
    assert_eq!(w.gateway.as_deref(), Some("edge"));
    assert_eq!(w.services, ["all-edge", "web"]);
    let no_gateway =
        workload_from_pod(&running("shop", "x", json!({"app": "api"})), &services).unwrap();
    assert_eq!(no_gateway.gateway, None);
    assert_eq!(no_gateway.services, ["api"]);
}

#[test]
fn selector_rules() {
    let l: BTreeMap<String, String> = [("app".to_owned(), "gw".to_owned())].into();
    let sel = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert!(selector_selects(&sel(&[("app", "gw")]), "a", "a", &l));
    assert!(!selector_selects(&sel(&[("app", "gw")]), "a", "b", &l));
    assert!(!selector_selects(&sel(&[]), "a", "a", &l));
    assert!(!selector_selects(&sel(&[("app", "api")]), "a", "a", &l));
}

fn upserted(changes: &[WorkloadChange]) -> Vec<(String, Vec<String>)> {
    changes
        .iter()
        .map(|c| match c {
            WorkloadChange::Upsert(w) => (format!("+{}", w.key()), w.services.clone()),
            WorkloadChange::Remove(k) => (format!("-{k}"), Vec::new()),
        })
        .collect()
}

#[test]
fn pod_and_service_events_make_workload_changes() {
    let mut idx = WorkloadIndex::default();
    // initial lists: services, then pods
    assert!(idx.service_event(Event::Init).is_empty());
    assert!(
        idx.service_event(Event::InitApply(service(
            "shop",
            "web",
            json!({"app": "gw"})
        )))
        .is_empty()
    );
    assert!(idx.service_event(Event::InitDone).is_empty(), "no pods yet");
    assert!(idx.pod_event(Event::Init).is_empty());
    assert!(
        idx.pod_event(Event::InitApply(running("shop", "a", json!({"app": "gw"}))))
            .is_empty()
    );
    assert!(
        idx.pod_event(Event::InitApply(pod(
            "shop",
            "pending",
            json!({}),
            "Pending",
            None
        )))
        .is_empty()
    );
    assert_eq!(
        upserted(&idx.pod_event(Event::InitDone)),
        [("+shop/a".to_owned(), vec!["web".to_owned()])]
    );
    // the same pod again: nothing
    assert!(
        idx.pod_event(Event::Apply(running("shop", "a", json!({"app": "gw"}))))
            .is_empty()
    );
    // a label change: an upsert without the service
    assert_eq!(
        upserted(&idx.pod_event(Event::Apply(running("shop", "a", json!({"app": "api"}))))),
        [("+shop/a".to_owned(), vec![])]
    );
    // a new service selecting it
    assert_eq!(
        upserted(&idx.service_event(Event::Apply(service("shop", "api", json!({"app": "api"}))))),
        [("+shop/a".to_owned(), vec!["api".to_owned()])]
    );
    // a service in another namespace: nothing
    assert!(
        idx.service_event(Event::Apply(service("bank", "api", json!({"app": "api"}))))
            .is_empty()
    );
    // the pod stops running: removed; deleting it then: nothing more
    assert_eq!(
        upserted(&idx.pod_event(Event::Apply(pod("shop", "a", json!({}), "Succeeded", None)))),
        [("-shop/a".to_owned(), vec![])]
    );
    assert!(
        idx.pod_event(Event::Delete(running("shop", "a", json!({}))))
            .is_empty()
    );
    // a relist drops the pods it no longer lists
    idx.pod_event(Event::Apply(running("shop", "b", json!({"app": "api"}))));
    idx.pod_event(Event::Apply(running("shop", "c", json!({}))));
    idx.pod_event(Event::Init);
    idx.pod_event(Event::InitApply(running("shop", "c", json!({}))));
    assert_eq!(
        upserted(&idx.pod_event(Event::InitDone)),
        [("-shop/b".to_owned(), vec![])]
    );
    // a deleted service: its workloads lose it
    idx.pod_event(Event::Apply(running("shop", "d", json!({"app": "api"}))));
    assert_eq!(
        upserted(&idx.service_event(Event::Delete(service("shop", "api", json!({}))))),
        [("+shop/d".to_owned(), vec![])]
    );
    assert_eq!(idx.workloads().len(), 2);
}

fn change_names(changes: &[PluginChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c {
            PluginChange::Upsert(p) => format!("+{}", PluginKey::of(p)),
            PluginChange::Delete(k) => format!("-{k}"),
            PluginChange::Unreadable { key, .. } => format!("?{key}"),
        })
        .collect()
}

#[test]
fn plugin_events_make_plugin_changes_and_track_status() {
    let book = Arc::new(StatusBook::default());
    let mut t = PluginTracker::new(book.clone());
    let status = json!({"ready": "1/1", "proxiesTotal": 1, "proxiesLoaded": 1, "proxiesFailed": 0});
    // (event, changes)
    let steps: Vec<(Event<WasmPlugin>, Vec<&str>)> = vec![
        (Event::Init, vec![]),
        (Event::InitApply(plugin("shop", "a", None)), vec!["+shop/a"]),
        (
            Event::InitApply(plugin("shop", "b", Some(status.clone()))),
            vec!["+shop/b"],
        ),
        (Event::InitDone, vec![]),
        (Event::Apply(plugin("bank", "c", None)), vec!["+bank/c"]),
        (Event::Delete(plugin("shop", "a", None)), vec!["-shop/a"]),
        // a relist that lists b only: c is deleted
        (Event::Init, vec![]),
        (Event::InitApply(plugin("shop", "b", None)), vec!["+shop/b"]),
        (Event::InitDone, vec!["-bank/c"]),
    ];
    for (i, (ev, want)) in steps.into_iter().enumerate() {
        if i == 3 {
            let seen = book.get(&pkey("shop", "b")).unwrap().unwrap();
            assert_eq!(seen.ready.as_deref(), Some("1/1"));
            assert_eq!(book.get(&pkey("shop", "a")), Some(None));
        }
        assert_eq!(
            change_names(&t.plugin_change_from_event(ev)),
            want,
            "step {i}"
        );
    }
    assert_eq!(
        book.get(&pkey("bank", "c")),
        None,
        "deleted plugins are forgotten"
    );
    assert_eq!(book.get(&pkey("shop", "a")), None);
    assert_eq!(book.get(&pkey("shop", "b")), Some(None));
}

fn cond(type_: &str, status: &str, reason: &str, time: Option<&str>) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: String::new(),
        observed_generation: Some(2),
        last_transition_time: time.map(str::to_owned),
    }
}

fn st(
    ready: (&str, &str),
    failed: u32,
    errors: &[&str],
    times: (Option<&str>, Option<&str>),
) -> WasmPluginStatus {
    WasmPluginStatus {
        observed_generation: Some(2),
        conditions: vec![
            cond("Accepted", "True", "Valid", times.0),
            cond("Ready", ready.0, ready.1, times.1),
        ],
        ready: Some(format!("{}/1", 1 - failed)),
        proxies_total: 1,
        proxies_loaded: 1 - failed,
        proxies_failed: failed,
        last_errors: errors
            .iter()
            .map(|m| crate::crd::ProxyError {
                proxy: "shop/gw-1".to_owned(),
                message: (*m).to_owned(),
            })
            .collect(),
    }
}

#[test]
fn status_patches() {
    const T0: &str = "2026-11-23T00:00:00Z";
    const T1: &str = "2026-11-23T01:00:00Z";
    let loaded = st(("True", "Loaded"), 0, &[], (None, None));
    let failed = st(("False", "LoadFailed"), 1, &["boom"], (None, None));
    let loaded_t0 = st(("True", "Loaded"), 0, &[], (Some(T0), Some(T0)));
    let failed_t0 = st(("False", "LoadFailed"), 1, &["boom"], (Some(T0), Some(T0)));

    // no status yet: everything, stamped now
    let p = status_patch(None, &loaded, T0).unwrap();
    assert_eq!(p["status"], serde_json::to_value(&loaded_t0).unwrap());
    // the same status again (times aside): no patch
    assert_eq!(status_patch(Some(&loaded_t0), &loaded, T1), None);
    // Ready flips: its time is now, Accepted keeps its time; lastErrors appear
    let p = status_patch(Some(&loaded_t0), &failed, T1).unwrap();
    let c = &p["status"]["conditions"];
    assert_eq!(c[0]["type"], "Accepted");
    assert_eq!(c[0]["lastTransitionTime"], T0);
    assert_eq!(c[1]["type"], "Ready");
    assert_eq!(c[1]["status"], "False");
    assert_eq!(c[1]["lastTransitionTime"], T1);
    assert_eq!(p["status"]["lastErrors"][0]["message"], "boom");
    assert_eq!(p["status"]["proxiesFailed"], 1);
    // back to loaded: lastErrors, gone from the new status, is nulled
    let p = status_patch(Some(&failed_t0), &loaded, T1).unwrap();
    assert_eq!(p["status"]["lastErrors"], serde_json::Value::Null);
    assert!(p["status"].as_object().unwrap().contains_key("lastErrors"));
    assert_eq!(p["status"]["conditions"][1]["lastTransitionTime"], T1);
    assert_eq!(p["status"]["conditions"][0]["lastTransitionTime"], T0);
    // a message change alone keeps the transition time
    let mut other_msg = loaded.clone();
    other_msg.conditions[1].message = "2 of 2 proxies loaded it".to_owned();
    let p = status_patch(Some(&loaded_t0), &other_msg, T1).unwrap();
    assert_eq!(p["status"]["conditions"][1]["lastTransitionTime"], T0);
    assert_eq!(
        p["status"]["conditions"][1]["message"],
        "2 of 2 proxies loaded it"
    );
}

#[test]
fn now_is_rfc3339_seconds_utc() {
    let now = now_rfc3339();
    assert_eq!(now.len(), 20, "{now}");
    assert!(now.ends_with('Z'));
    assert!(now.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{now}");
}
