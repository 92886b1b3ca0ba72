//! Point 9: every /v1 route wants a token (401), of the right role (403), and a
//! revoked key stops working at once (401).

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{manifest, Resp, Server};

/// A route to call: method, path and query, optional JSON body.
type Call = (Method, String, Option<Value>);

const V: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every authenticated /v1 route, with a body where it takes one. (GET /v1/ledger/key
/// is public by design.)
fn routes() -> Vec<Call> {
    let seal = json!({"seal": "x.y.z"});
    vec![
        (
            Method::POST,
            "/v1/manifest/validate".into(),
            Some(json!({"manifest": manifest("a", "payment", 1)})),
        ),
        (Method::POST, "/v1/seals/verify".into(), Some(seal.clone())),
        (
            Method::POST,
            "/v1/seals/some-seal/redeem".into(),
            Some(seal),
        ),
        (Method::GET, "/v1/audit/query".into(), None),
        (Method::GET, "/v1/ledger/checkpoint".into(), None),
        (Method::GET, "/v1/ledger/entries/0".into(), None),
        (
            Method::GET,
            "/v1/ledger/proof/inclusion?index=0&tree_size=1".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/ledger/proof/consistency?first=1&second=1".into(),
            None,
        ),
        (Method::GET, "/v1/policies".into(), None),
        (
            Method::POST,
            "/v1/policies".into(),
            Some(json!({"files": {"x.rego": "package sealgate"}})),
        ),
        (Method::GET, format!("/v1/policies/{V}"), None),
        (Method::POST, format!("/v1/policies/{V}/activate"), None),
        (
            Method::POST,
            "/v1/keys".into(),
            Some(json!({"role": "agent"})),
        ),
        (Method::DELETE, "/v1/keys/key_0".into(), None),
        (Method::GET, "/v1/approvals".into(), None),
        (Method::GET, "/v1/decisions/some-decision".into(), None),
        (
            Method::POST,
            "/v1/approvals/some-decision/approve".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/approvals/some-decision/deny".into(),
            Some(json!({})),
        ),
    ]
}

#[track_caller]
fn assert_401(r: Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    let r = r.expect_problem(401);
    assert!(
        r.headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer")),
        "{what}: 401 without WWW-Authenticate: Bearer"
    );
}

#[tokio::test]
async fn every_v1_route_without_a_valid_token_is_401() {
    let server = Server::start().await;
    let size = server.tree_size().await;
    for (method, path, body) in routes() {
        let r = server
            .request(method.clone(), &path, None, body.as_ref())
            .await;
        assert_401(r, &format!("{method} {path} without a token"));
        let r = server
            .request(
                method.clone(),
                &path,
                Some("sgk_not-a-real-token"),
                body.as_ref(),
            )
            .await;
        assert_401(r, &format!("{method} {path} with an unknown token"));
    }
    assert_eq!(server.tree_size().await, size);
}

#[tokio::test]
async fn a_token_of_the_wrong_role_is_403() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let executor = server.create_key("executor").await;
    let auditor = server.create_key("auditor").await;
    let approver = server.create_key("approver").await;
    let admin = server.admin_token.clone();

    let validate = (
        Method::POST,
        "/v1/manifest/validate".to_owned(),
        Some(json!({"manifest": manifest("a", "payment", 1000)})),
    );
    let redeem = (
        Method::POST,
        "/v1/seals/some-seal/redeem".to_owned(),
        Some(json!({"seal": "x.y.z"})),
    );
    let audit = (Method::GET, "/v1/audit/query".to_owned(), None);
    let keys = (
        Method::POST,
        "/v1/keys".to_owned(),
        Some(json!({"role": "admin"})),
    );
    let policies = (Method::GET, "/v1/policies".to_owned(), None);
    let queue = (Method::GET, "/v1/approvals".to_owned(), None);
    let approve = (
        Method::POST,
        "/v1/approvals/some-decision/approve".to_owned(),
        Some(json!({"reason": "looks fine"})),
    );
    let upload = (
        Method::POST,
        "/v1/policies".to_owned(),
        Some(json!({"files": {"x.rego": "package sealgate"}})),
    );

    let size = server.tree_size().await;
    let matrix: Vec<(&str, &str, &Call)> = vec![
        ("agent", &agent.token, &audit),
        ("agent", &agent.token, &redeem),
        ("agent", &agent.token, &keys),
        ("agent", &agent.token, &policies),
        ("agent", &agent.token, &upload),
        // An agent must not approve its own pending actions, nor read the queue.
        ("agent", &agent.token, &approve),
        ("agent", &agent.token, &queue),
        ("executor", &executor.token, &approve),
        ("auditor", &auditor.token, &approve),
        ("admin", &admin, &approve),
        ("admin", &admin, &queue),
        ("executor", &executor.token, &validate),
        ("auditor", &auditor.token, &validate),
        ("auditor", &auditor.token, &redeem),
        ("approver", &approver.token, &validate),
        ("approver", &approver.token, &audit),
        ("admin", &admin, &validate),
        ("admin", &admin, &redeem),
    ];
    for (role, token, (method, path, body)) in matrix {
        let r = server
            .request(method.clone(), path, Some(token), body.as_ref())
            .await;
        assert_eq!(r.status, 403, "{role} on {method} {path}: {}", r.text);
        r.expect_problem(403);
    }
    assert_eq!(
        server.tree_size().await,
        size,
        "a refused call recorded something"
    );
    let listed = server
        .get("/v1/policies", Some(&admin))
        .await
        .expect(200)
        .json;
    assert_eq!(listed["policies"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn a_revoked_key_is_401_afterwards() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    server
        .validate(&agent, &manifest("agent-revoke", "payment", 1000))
        .await
        .expect(200);
    server.audit(&auditor.token, "").await;

    for key in [&agent, &auditor] {
        let r = server
            .request(
                Method::DELETE,
                &format!("/v1/keys/{}", key.id),
                Some(&server.admin_token),
                None,
            )
            .await;
        assert_eq!(r.status, 204, "revoking {}: {}", key.id, r.text);
    }
    let r = server
        .validate(&agent, &manifest("agent-revoke", "payment", 1000))
        .await;
    assert_401(r, "revoked agent key");
    let r = server.get("/v1/audit/query", Some(&auditor.token)).await;
    assert_401(r, "revoked auditor key");

    // Revoking again, or an unknown id, is a 404.
    let r = server
        .request(
            Method::DELETE,
            &format!("/v1/keys/{}", agent.id),
            Some(&server.admin_token),
            None,
        )
        .await;
    r.expect_problem(404);
    // Other keys are unaffected.
    let other = server.create_key("agent").await;
    server
        .validate(&other, &manifest("agent-revoke", "payment", 1000))
        .await
        .expect(200);
}
