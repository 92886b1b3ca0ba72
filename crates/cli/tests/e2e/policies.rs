//! Point 10: policy bundles — upload, activate (a ledger entry), decisions follow the
//! active version, rollback restores the old behaviour, a broken bundle is refused.

use serde_json::{json, Value};

use crate::support::{is_hex64, manifest, Server};

const NEEDS_A_HUMAN: &str = r#"package sealgate

decision := {"allow": false, "deny": [], "require_approval": ["needs a human"]}
"#;

async fn active(server: &Server) -> Value {
    server
        .get("/v1/policies", Some(&server.admin_token))
        .await
        .expect(200)
        .json["active"]
        .clone()
}

#[tokio::test]
async fn activation_changes_decisions_and_rollback_restores_them() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    let admin = server.admin_token.clone();
    let shipped = active(&server).await;
    let shipped_v = shipped
        .as_str()
        .expect("a policy is active from the start")
        .to_owned();
    assert!(is_hex64(&shipped_v), "{shipped_v}");

    let before = server
        .approved(&agent, &manifest("agent-policy", "payment", 1000))
        .await;
    assert_eq!(before["policy_version"], json!(shipped_v));

    // Upload: a version, not yet active.
    let up = server
        .post(
            "/v1/policies",
            Some(&admin),
            &json!({"files": {"x.rego": NEEDS_A_HUMAN}}),
        )
        .await;
    assert!(up.status == 201, "upload: {} {}", up.status, up.text);
    let v = up.json["version"].as_str().expect("version").to_owned();
    assert!(is_hex64(&v), "version is not 64 hex: {v}");
    assert_ne!(v, shipped_v);
    assert_eq!(
        active(&server).await,
        json!(shipped_v),
        "upload alone activated it"
    );
    // The same bundle again is the same version.
    let again = server
        .post(
            "/v1/policies",
            Some(&admin),
            &json!({"files": {"x.rego": NEEDS_A_HUMAN}}),
        )
        .await
        .expect(200);
    assert_eq!(again.json["version"], json!(v));

    // Activate: one ledger entry, and decisions follow.
    let size = server.tree_size().await;
    let act = server
        .post(
            &format!("/v1/policies/{v}/activate"),
            Some(&admin),
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(act.json["version"], json!(v), "{}", act.text);
    assert_eq!(
        act.json["previous_version"],
        json!(shipped_v),
        "{}",
        act.text
    );
    assert_eq!(act.json["ledger_index"], json!(size), "{}", act.text);
    assert_eq!(
        server.tree_size().await,
        size + 1,
        "activation is one ledger entry"
    );
    assert_eq!(active(&server).await, json!(v));

    let pending = server
        .validate(&agent, &manifest("agent-policy", "payment", 1000))
        .await
        .expect(200);
    let p = &pending.json;
    assert_eq!(p["status"], json!("pending_approval"), "{}", pending.text);
    assert_eq!(p["approved"], json!(false), "{}", pending.text);
    assert_eq!(p["reasons"], json!(["needs a human"]), "{}", pending.text);
    assert_eq!(p["policy_version"], json!(v), "{}", pending.text);
    assert!(p["seal"].is_null(), "{}", pending.text);

    let audit = server
        .audit(&auditor.token, "status=pending_approval")
        .await;
    let recs = audit["records"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{audit}");
    assert_eq!(recs[0]["decision_id"], p["decision_id"]);
    assert_eq!(recs[0]["status"], json!("pending_approval"));
    assert_eq!(recs[0]["policy_version"], json!(v));
    assert_eq!(recs[0]["approved"], json!(false));
    assert!(recs[0]["seal_id"].is_null());

    // Roll back: activate the shipped version again.
    let size = server.tree_size().await;
    let back = server
        .post(
            &format!("/v1/policies/{shipped_v}/activate"),
            Some(&admin),
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(back.json["previous_version"], json!(v), "{}", back.text);
    assert_eq!(
        server.tree_size().await,
        size + 1,
        "rollback is one ledger entry"
    );
    assert_eq!(active(&server).await, json!(shipped_v));
    let after = server
        .approved(&agent, &manifest("agent-policy", "payment", 1000))
        .await;
    assert_eq!(after["policy_version"], json!(shipped_v));
    let denied = server
        .validate(&agent, &manifest("agent-policy", "payment", 10000))
        .await
        .expect(200);
    assert_eq!(
        denied.json["reasons"],
        json!(["Payment amount exceeds $50.00 limit"])
    );

    // Each decision in the trail names the version that made it.
    let trail = server.audit(&auditor.token, "agent_id=agent-policy").await;
    let versions: Vec<Value> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["policy_version"].clone())
        .collect();
    assert_eq!(
        versions,
        vec![
            json!(shipped_v),
            json!(shipped_v),
            json!(v),
            json!(shipped_v)
        ]
    );
}

#[tokio::test]
async fn a_policy_that_does_not_compile_is_refused() {
    let server = Server::start().await;
    let admin = server.admin_token.clone();
    let listed = server
        .get("/v1/policies", Some(&admin))
        .await
        .expect(200)
        .json;
    let size = server.tree_size().await;

    for (what, body) in [
        (
            "syntax error",
            json!({"files": {"broken.rego": "package sealgate\n\ndecision := {\"allow\": \n"}}),
        ),
        (
            "not rego at all",
            json!({"files": {"broken.rego": "this is not a policy"}}),
        ),
        ("files not an object", json!({"files": "package sealgate"})),
    ] {
        let r = server.post("/v1/policies", Some(&admin), &body).await;
        assert!(
            (400..500).contains(&r.status),
            "{what}: a broken policy was accepted with {}: {}",
            r.status,
            r.text
        );
        let status = r.status;
        r.expect_problem(status);
    }
    assert_eq!(
        server
            .get("/v1/policies", Some(&admin))
            .await
            .expect(200)
            .json,
        listed,
        "a refused upload changed the policy list"
    );
    assert_eq!(server.tree_size().await, size);

    // A refusal names the member it is about.
    let rego = "package sealgate\n\ndecision := {\"allow\": false, \"deny\": [], \"require_approval\": []}\n";
    for (body, field) in [
        (json!({"files": {"p.rego": rego}, "data": [1]}), "/data"),
        (
            json!({"files": {"p.rego": rego}, "data": {"n": 9007199254740993u64}}),
            "/data",
        ),
        (json!({"files": {"../p.rego": rego}}), "/files/..~1p.rego"),
        (json!({"files": {}}), "/files"),
    ] {
        let r = server
            .post("/v1/policies", Some(&admin), &body)
            .await
            .expect_problem(400);
        assert_eq!(r.json["field"], json!(field), "{body}: {}", r.text);
    }

    // Activating a version that was never uploaded is a 404.
    server
        .post(
            &format!("/v1/policies/{}/activate", "ab".repeat(32)),
            Some(&admin),
            &json!({}),
        )
        .await
        .expect_problem(404);
}

/// A deny rule whose body errors at run time. On regorus's RVM alone the rule is
/// silently undefined (the policy crate pins that); by default every RVM approval is
/// confirmed on the interpreter, where the error denies.
const ERRORING_DENY: &str = r#"package sealgate

deny_reasons contains "amount check failed" if {
    x := input.manifest.parameters.amount / 0
    x > 0
}

decision := {"allow": true, "deny": [r | some r in deny_reasons], "require_approval": []}
"#;

/// The status of a payment of 1000 under ERRORING_DENY on a server with `config`.
async fn under_erroring_deny(config: Option<&str>) -> Value {
    let cfg = tempfile::tempdir().expect("tempdir");
    let path = cfg.path().join("sealgate.toml");
    std::fs::write(&path, config.unwrap_or("")).expect("write config");
    let server = Server::start_with(&["--config", path.to_str().expect("utf8")]).await;
    let admin = server.admin_token.clone();
    let agent = server.create_key("agent").await;
    let up = server
        .post(
            "/v1/policies",
            Some(&admin),
            &json!({"files": {"e.rego": ERRORING_DENY}}),
        )
        .await;
    assert!(up.status == 201, "upload: {} {}", up.status, up.text);
    let v = up.json["version"].as_str().expect("version").to_owned();
    server
        .post(
            &format!("/v1/policies/{v}/activate"),
            Some(&admin),
            &json!({}),
        )
        .await
        .expect(200);
    server
        .validate(&agent, &manifest("agent-err", "payment", 1000))
        .await
        .expect(200)
        .json
}

#[tokio::test]
async fn an_erroring_deny_rule_denies_by_default_and_with_the_interpreter() {
    for config in [None, Some("policy_evaluation = \"interpreter\"\n")] {
        let d = under_erroring_deny(config).await;
        assert_eq!(d["status"], json!("denied"), "{config:?}: {d}");
        assert_eq!(d["approved"], json!(false));
        assert!(d.get("seal").is_none());
        let reasons = d["reasons"].to_string();
        assert!(
            reasons.contains("policy error: divide by zero"),
            "the reason says the policy failed: {reasons}"
        );
    }
}

#[tokio::test]
async fn the_rvm_alone_skips_an_erroring_deny_rule() {
    // The documented trade-off of `policy_evaluation = "rvm"`: this test pins it.
    let d = under_erroring_deny(Some("policy_evaluation = \"rvm\"\n")).await;
    assert_eq!(d["status"], json!("approved"), "{d}");
}
