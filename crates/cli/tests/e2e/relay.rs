//! Point 3: the Relay report's live cases against the shipped finance policy.

use serde_json::json;

use crate::support::{is_hex64, jws_part, manifest, Server};

#[tokio::test]
async fn payment_within_limit_is_approved_with_a_seal() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let r = server
        .validate(&agent, &manifest("agent-relay", "payment", 1000))
        .await
        .expect(200);
    let d = &r.json;
    assert_eq!(d["approved"], json!(true), "{}", r.text);
    assert_eq!(d["status"], json!("approved"), "{}", r.text);
    assert_eq!(d["reasons"], json!([]), "{}", r.text);
    assert!(
        is_hex64(d["policy_version"].as_str().unwrap_or_default()),
        "{}",
        r.text
    );
    assert!(
        d["decision_id"].is_string() && d["manifest_id"].is_string(),
        "{}",
        r.text
    );
    assert!(d["ledger_index"].is_u64(), "{}", r.text);
    assert!(d["expires_at"].is_string(), "{}", r.text);
    let seal = d["seal"].as_str().expect("seal");
    assert_eq!(seal.split('.').count(), 3, "compact JWS: {seal}");
    let claims = jws_part(seal, 1);
    assert_eq!(claims["jti"], d["seal_id"], "{claims}");
    assert_eq!(claims["ledger_index"], d["ledger_index"], "{claims}");
    assert_eq!(claims["decision_id"], d["decision_id"], "{claims}");
    assert_eq!(claims["method"], json!("payment"), "{claims}");
}

#[tokio::test]
async fn payment_over_limit_is_denied_with_the_relay_reason_and_no_seal() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let before = server.tree_size().await;
    let r = server
        .validate(&agent, &manifest("agent-relay", "payment", 10000))
        .await
        .expect(200);
    let d = &r.json;
    assert_eq!(d["approved"], json!(false), "{}", r.text);
    assert_eq!(d["status"], json!("denied"), "{}", r.text);
    assert_eq!(
        d["reasons"],
        json!(["Payment amount exceeds $50.00 limit"]),
        "{}",
        r.text
    );
    for absent in ["seal", "seal_id", "expires_at"] {
        assert!(d[absent].is_null(), "{absent} on a denial: {}", r.text);
    }
    // A denial is a decision: it is recorded.
    assert_eq!(server.tree_size().await, before + 1);
    assert_eq!(d["ledger_index"], json!(before), "{}", r.text);
}

#[tokio::test]
async fn refund_within_limit_is_approved_with_a_seal() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let r = server
        .validate(&agent, &manifest("agent-relay", "refund", 5000))
        .await
        .expect(200);
    let d = &r.json;
    assert_eq!(d["approved"], json!(true), "{}", r.text);
    assert_eq!(d["status"], json!("approved"), "{}", r.text);
    let seal = d["seal"].as_str().expect("seal");
    assert_eq!(jws_part(seal, 1)["method"], json!("refund"));
    assert_eq!(jws_part(seal, 1)["jti"], d["seal_id"]);
}
