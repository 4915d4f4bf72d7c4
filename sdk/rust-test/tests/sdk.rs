//! weft-sdk's helpers running in weft's host: the sdk-probe test filter
//! (sdk/rust-test/sdk-probe) writes `weft.*` properties with the SDK's
//! setters and reports what its typed attribute readers decode.

use serde_json::json;
use weft_filter_test::{
    ConnectionInfo, Harness, HarnessError, Outcome, TlsInfo, build_workspace_filter, weft_props,
};

fn probe() -> Result<std::path::PathBuf, HarnessError> {
    build_workspace_filter("weft-sdk-probe")
}

#[test]
fn weft_properties_reach_the_proxy() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?).start()?;
    let mut s = h.stream();
    assert_eq!(s.request_headers_end(&[])?, Outcome::Continue);
    assert_eq!(
        s.header("x-sdk-set").as_deref(),
        Some("[Ok(()), Ok(()), Ok(()), Ok(())]")
    );
    assert_eq!(s.property(weft_props::CLUSTER).as_deref(), Some("from-sdk"));
    assert_eq!(
        s.property(weft_props::ROUTE_NAME).as_deref(),
        Some("sdk-route")
    );
    assert_eq!(s.property(weft_props::TIMEOUT_MS).as_deref(), Some("1500"));
    assert_eq!(s.property(weft_props::RETRY_ATTEMPTS).as_deref(), Some("2"));
    assert_eq!(
        s.property(weft_props::RETRY_PER_TRY_TIMEOUT_MS).as_deref(),
        Some("300")
    );
    assert_eq!(
        s.property(weft_props::RETRY_ON).as_deref(),
        Some("5xx,retriable-status-codes")
    );
    assert_eq!(s.property(weft_props::RETRY_CODES).as_deref(), Some("502"));
    // And read back through the SDK's getters.
    assert_eq!(
        s.header("x-sdk-cluster").as_deref(),
        Some("Ok(Some(\"from-sdk\"))")
    );
    assert_eq!(
        s.header("x-sdk-route").as_deref(),
        Some("Ok(Some(\"sdk-route\"))")
    );
    Ok(())
}

#[test]
fn typed_attributes_decode_the_hosts_encodings() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?)
        .name("sdk-attrs")
        .node_name("edge-7")
        .config(json!({"greeting": "hello"}))
        .start()?;
    let mut s = h.stream();
    s.set_connection(ConnectionInfo {
        id: 42,
        source: Some("10.1.2.3:5555".parse().expect("address")),
        destination: Some("127.0.0.1:8443".parse().expect("address")),
        tls: Some(TlsInfo {
            version: "TLSv1_3".into(),
            mtls: true,
            peer_uri_sans: vec!["spiffe://weft/ns/a/sa/b".into()],
            ..Default::default()
        }),
    })?;
    let out = s.request_headers_end(&[
        (":method", "POST"),
        (":path", "/a/b?c=d"),
        (":authority", "api.test"),
        ("x-in", "v1"),
    ])?;
    assert_eq!(out, Outcome::Continue);
    let h_ = |n: &str| s.header(&format!("x-sdk-{n}")).unwrap_or_default();
    assert_eq!(h_("greeting"), "hello");
    assert_eq!(h_("path"), "Ok(Some(\"/a/b?c=d\"))");
    assert_eq!(h_("url-path"), "Ok(Some(\"/a/b\"))");
    assert_eq!(h_("query"), "Ok(Some(\"c=d\"))");
    assert_eq!(h_("method"), "Ok(Some(\"POST\"))");
    assert_eq!(h_("host"), "Ok(Some(\"api.test\"))");
    assert_eq!(h_("id"), "Ok(Some(\"test-1\"))");
    assert_eq!(h_("protocol"), "Ok(Some(\"HTTP/1.1\"))");
    assert_eq!(h_("header"), "Ok(Some(\"v1\"))");
    assert_eq!(h_("time"), "Ok(true)");
    assert_eq!(h_("source"), "Ok(Some(10.1.2.3:5555))");
    assert_eq!(h_("source-port"), "Ok(Some(5555))");
    assert_eq!(h_("dest-port"), "Ok(Some(8443))");
    assert_eq!(h_("connection-id"), "Ok(Some(42))");
    assert_eq!(h_("mtls"), "Ok(Some(true))");
    assert_eq!(h_("peer"), "Ok(Some(\"spiffe://weft/ns/a/sa/b\"))");
    assert_eq!(h_("upstream"), "Ok(None)");
    assert_eq!(h_("plugin"), "Ok(Some(\"sdk-attrs\"))");
    assert_eq!(h_("node"), "Ok(Some(\"edge-7\"))");

    assert_eq!(
        s.response_headers_end(&[(":status", "503")])?,
        Outcome::Continue
    );
    assert_eq!(
        s.response_header("x-sdk-status").as_deref(),
        Some("Ok(Some(503))")
    );
    Ok(())
}

#[test]
fn a_bad_config_is_reported_with_the_plugin_name_and_field() -> Result<(), HarnessError> {
    let err = Harness::load(probe()?)
        .name("sdk-bad-config")
        .config(json!({"greting": "typo"}))
        .start()
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains(
            "plugin sdk-bad-config: invalid pluginConfig: greting: unknown field `greting`"
        ),
        "{text}"
    );
    Ok(())
}
