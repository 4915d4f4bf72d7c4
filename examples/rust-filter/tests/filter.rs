//! The filter built for wasm32-wasip1 and run in weft's real host.

use weft_filter_test::{Harness, HarnessError, Outcome, build_package};

fn wasm() -> Result<std::path::PathBuf, HarnessError> {
    build_package(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"))
}

#[test]
fn adds_the_configured_header() -> Result<(), HarnessError> {
    let h = Harness::load(wasm()?)
        .config(serde_json::json!({"header": "x-hello", "value": "world"}))
        .start()?;
    let mut s = h.stream();
    assert_eq!(s.request_headers_end(&[(":path", "/")])?, Outcome::Continue);
    assert_eq!(s.header("x-hello").as_deref(), Some("world"));
    Ok(())
}

#[test]
fn refuses_a_bad_config_naming_the_field() -> Result<(), HarnessError> {
    let err = Harness::load(wasm()?)
        .config(serde_json::json!({"value": 7}))
        .start()
        .err()
        .expect("the configuration is refused");
    assert!(
        err.to_string().contains("invalid pluginConfig: value: "),
        "{err}"
    );
    Ok(())
}
