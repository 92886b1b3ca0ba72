//! Point 5: the audit trail — every Relay field, newest first, filters, pagination.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::{manifest, Server};

const FIELDS: &[&str] = &[
    "manifest_id",
    "created_at",
    "agent_id",
    "org_id",
    "user_id",
    "provider",
    "method",
    "parameters",
    "reasoning",
    "confidence_score",
    "environment",
    "approved",
    "policy_version",
    "denial_reason",
    "seal_id",
    "was_executed",
    "executed_at",
    "status",
    "ledger_index",
];

fn records(page: &Value) -> Vec<Value> {
    page["records"].as_array().expect("records").clone()
}

#[tokio::test]
async fn audit_records_carry_every_field_newest_first() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    let executor = server.create_key("executor").await;

    let m_ok = json!({
        "manifest_id": "man-approved-1",
        "agent_id": "agent-audit",
        "org_id": "org-audit",
        "user_id": "user-7",
        "provider": "stripe",
        "method": "payment",
        "parameters": {"amount": 1000, "currency": "usd", "meta": {"ticket": [1, 2]}},
        "reasoning": "customer asked",
        "confidence_score": 0.75,
        "environment": "staging",
    });
    let ok = server.approved(&agent, &m_ok).await;
    let m_denied = manifest("agent-audit", "payment", 10000);
    let denied = server.validate(&agent, &m_denied).await.expect(200).json;
    assert_eq!(denied["status"], json!("denied"));

    let page = server.audit(&auditor.token, "agent_id=agent-audit").await;
    let recs = records(&page);
    assert_eq!(recs.len(), 2, "{page}");
    assert!(page["next_cursor"].is_null(), "{page}");
    for r in &recs {
        let obj = r.as_object().expect("record object");
        for f in FIELDS {
            assert!(obj.contains_key(*f), "audit record lacks {f}: {r}");
        }
    }
    // Newest first.
    let (newest, oldest) = (&recs[0], &recs[1]);
    assert_eq!(newest["decision_id"], denied["decision_id"]);
    assert_eq!(oldest["decision_id"], ok["decision_id"]);
    assert!(newest["ledger_index"].as_u64() > oldest["ledger_index"].as_u64());
    assert!(newest["created_at"].as_str() >= oldest["created_at"].as_str());

    // The approved one, field by field.
    let a = oldest;
    assert_eq!(a["manifest_id"], json!("man-approved-1"));
    assert_eq!(a["agent_id"], m_ok["agent_id"]);
    assert_eq!(a["org_id"], m_ok["org_id"]);
    assert_eq!(a["user_id"], m_ok["user_id"]);
    assert_eq!(a["provider"], m_ok["provider"]);
    assert_eq!(a["method"], m_ok["method"]);
    assert_eq!(a["parameters"], m_ok["parameters"]);
    assert_eq!(a["reasoning"], m_ok["reasoning"]);
    assert_eq!(a["confidence_score"], m_ok["confidence_score"]);
    assert_eq!(a["environment"], m_ok["environment"]);
    assert_eq!(a["approved"], json!(true));
    assert_eq!(a["status"], json!("approved"));
    assert_eq!(a["policy_version"], ok["policy_version"]);
    assert!(a["denial_reason"].is_null(), "{a}");
    assert_eq!(a["seal_id"], ok["seal_id"]);
    assert_eq!(a["ledger_index"], ok["ledger_index"]);
    assert!(
        a["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{a}"
    );
    assert_eq!(a["was_executed"], json!(false), "before redemption: {a}");
    assert!(a["executed_at"].is_null(), "before redemption: {a}");

    // The denied one.
    let d = newest;
    assert_eq!(d["approved"], json!(false));
    assert_eq!(d["status"], json!("denied"));
    assert_eq!(
        d["denial_reason"],
        json!("Payment amount exceeds $50.00 limit")
    );
    assert!(d["seal_id"].is_null(), "{d}");
    assert_eq!(d["was_executed"], json!(false));
    assert!(d["executed_at"].is_null());
    assert_eq!(d["parameters"], m_denied["parameters"]);

    // After redemption the approved decision shows as executed.
    let redeemed = server
        .redeem(
            &executor,
            ok["seal_id"].as_str().unwrap(),
            ok["seal"].as_str().unwrap(),
        )
        .await
        .expect(200);
    let page = server.audit(&auditor.token, "agent_id=agent-audit").await;
    let recs = records(&page);
    assert_eq!(recs.len(), 2, "a redemption is not a decision: {page}");
    let a = &recs[1];
    assert_eq!(a["decision_id"], ok["decision_id"]);
    assert_eq!(a["was_executed"], json!(true), "{a}");
    assert_eq!(a["executed_at"], redeemed.json["redeemed_at"], "{a}");
    assert_eq!(recs[0]["was_executed"], json!(false));
}

#[tokio::test]
async fn audit_filters_select_exactly_the_matching_decisions() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;

    // (agent, org, method, amount) → approved unless over the limit.
    let plan = [
        ("agent-a", "org-1", "payment", 1000), // approved
        ("agent-a", "org-1", "payment", 9000), // denied
        ("agent-b", "org-1", "refund", 2000),  // approved
        ("agent-b", "org-2", "refund", 20000), // denied
        ("agent-a", "org-2", "refund", 3000),  // approved
        ("agent-c", "org-2", "payment", 4000), // approved
    ];
    let mut made = Vec::new();
    for (agent_id, org, method, amount) in plan {
        let mut m = manifest(agent_id, method, amount);
        m["org_id"] = json!(org);
        let r = server.validate(&agent, &m).await.expect(200).json;
        made.push(r);
    }
    let all = records(&server.audit(&auditor.token, "").await);
    assert_eq!(all.len(), plan.len());

    let check = |query: &str, expected: Vec<usize>| {
        let query = query.to_owned();
        let expected_ids: Vec<Value> = expected
            .iter()
            .rev()
            .map(|&i| made[i]["decision_id"].clone())
            .collect();
        (query, expected_ids)
    };
    let cases = vec![
        check("agent_id=agent-a", vec![0, 1, 4]),
        check("agent_id=agent-b", vec![2, 3]),
        check("org_id=org-2", vec![3, 4, 5]),
        check("method=refund", vec![2, 3, 4]),
        check("method=payment", vec![0, 1, 5]),
        check("status=denied", vec![1, 3]),
        check("status=approved", vec![0, 2, 4, 5]),
        check("status=pending_approval", vec![]),
        check("agent_id=agent-a&method=refund", vec![4]),
        check("org_id=org-1&status=approved", vec![0, 2]),
        check("agent_id=nobody", vec![]),
    ];
    for (query, expected) in cases {
        let got: Vec<Value> = records(&server.audit(&auditor.token, &query).await)
            .iter()
            .map(|r| r["decision_id"].clone())
            .collect();
        assert_eq!(got, expected, "filter {query}");
    }

    // since/until are bounds on created_at; the middle decision's own time is in both.
    let created: Vec<String> = all
        .iter()
        .rev()
        .map(|r| r["created_at"].as_str().unwrap().to_owned())
        .collect();
    let mid = &created[2];
    let since: Vec<String> = records(&server.audit(&auditor.token, &format!("since={mid}")).await)
        .iter()
        .map(|r| r["created_at"].as_str().unwrap().to_owned())
        .collect();
    let until: Vec<String> = records(&server.audit(&auditor.token, &format!("until={mid}")).await)
        .iter()
        .map(|r| r["created_at"].as_str().unwrap().to_owned())
        .collect();
    assert!(since.iter().all(|t| t >= mid), "since={mid}: {since:?}");
    assert!(until.iter().all(|t| t <= mid), "until={mid}: {until:?}");
    assert_eq!(
        since.len(),
        created.iter().filter(|t| *t >= mid).count(),
        "since={mid}"
    );
    assert_eq!(
        until.len(),
        created.iter().filter(|t| *t <= mid).count(),
        "until={mid}"
    );
    assert!(since.contains(mid) && until.contains(mid));
    // A window in the past and one in the future are empty.
    assert!(records(
        &server
            .audit(&auditor.token, "until=2000-01-01T00:00:00Z")
            .await
    )
    .is_empty());
    assert!(records(
        &server
            .audit(&auditor.token, "since=2999-01-01T00:00:00Z")
            .await
    )
    .is_empty());

    // An unknown filter is refused, naming it.
    let r = server
        .get("/v1/audit/query?agnet_id=x", Some(&auditor.token))
        .await
        .expect_problem(400);
    assert!(r.text.contains("agnet_id"), "{}", r.text);
}

#[tokio::test]
async fn audit_cursor_pagination_walks_every_decision_once() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    let mut made = HashSet::new();
    for i in 0..23 {
        let amount = if i % 3 == 0 { 9000 } else { 1000 + i };
        let r = server
            .validate(&agent, &manifest("agent-pages", "payment", amount))
            .await
            .expect(200);
        made.insert(r.json["decision_id"].as_str().unwrap().to_owned());
    }

    let mut seen = Vec::new();
    let mut indices = Vec::new();
    let mut query = "limit=5".to_owned();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        let page = server.audit(&auditor.token, &query).await;
        let recs = records(&page);
        assert!(recs.len() <= 5, "page larger than limit: {page}");
        for r in &recs {
            seen.push(r["decision_id"].as_str().unwrap().to_owned());
            indices.push(r["ledger_index"].as_u64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23, "walked {seen:?}");
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates across pages");
    assert_eq!(unique, made, "walk differs from what was decided");
    assert!(
        indices.windows(2).all(|w| w[0] > w[1]),
        "not newest first across pages: {indices:?}"
    );

    // Cursor combined with a filter stays within the filter.
    let page = server.audit(&auditor.token, "status=denied&limit=3").await;
    let cursor = page["next_cursor"]
        .as_str()
        .expect("more denied pages")
        .to_owned();
    let rest = server
        .audit(
            &auditor.token,
            &format!("status=denied&limit=3&cursor={cursor}"),
        )
        .await;
    let mut denied: Vec<_> = records(&page);
    denied.extend(records(&rest));
    assert!(denied.iter().all(|r| r["status"] == json!("denied")));
    assert_eq!(
        denied.len(),
        6,
        "8 of 23 are over the limit; first two pages hold 6"
    );

    // A cursor this server did not issue is refused.
    server
        .get("/v1/audit/query?cursor=bogus", Some(&auditor.token))
        .await
        .expect_problem(400);
}
