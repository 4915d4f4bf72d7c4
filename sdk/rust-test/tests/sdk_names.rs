//! The SDK defines the `weft.*` property names itself (filters never
//! depend on the host); they must be exactly the host's.

use weft_filter_test::weft_props as host;
use weft_sdk::weft as sdk;

#[test]
fn sdk_property_names_equal_the_hosts() {
    assert_eq!(sdk::CLUSTER, host::CLUSTER);
    assert_eq!(sdk::ROUTE_NAME, host::ROUTE_NAME);
    assert_eq!(sdk::TIMEOUT_MS, host::TIMEOUT_MS);
    assert_eq!(sdk::RETRY_ATTEMPTS, host::RETRY_ATTEMPTS);
    assert_eq!(
        sdk::RETRY_PER_TRY_TIMEOUT_MS,
        host::RETRY_PER_TRY_TIMEOUT_MS
    );
    assert_eq!(sdk::RETRY_ON, host::RETRY_ON);
    assert_eq!(sdk::RETRY_CODES, host::RETRY_CODES);
    assert_eq!(sdk::ALL.len(), 7);
}

#[test]
fn sdk_retry_policy_is_what_the_proxy_parses() {
    // The proxy splits weft.retry.on on commas and knows these four words.
    let p = weft_sdk::weft::RetryPolicy {
        codes: vec![503],
        ..Default::default()
    };
    let props = p.to_properties();
    let on = props
        .iter()
        .find(|(k, _)| *k == host::RETRY_ON)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for word in on.split(',') {
        assert!(
            ["5xx", "reset", "connect-failure", "retriable-status-codes"].contains(&word),
            "{word}"
        );
    }
    assert!(props.contains(&(host::RETRY_CODES, "503".to_owned())));
}
