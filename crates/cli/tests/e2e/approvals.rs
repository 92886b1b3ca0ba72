//! The human-in-the-loop queue: a decision the policy sends to `pending_approval` waits
//! in GET /v1/approvals until an approver answers it, once. Approving grants a seal for
//! the original manifest that redeems once; denying grants none; the audit query shows
//! the answer; and the ledger with both verifies.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::support::{jws_part, manifest, Key, Resp, Server, BIN};

/// A production refund with low confidence: finance.rego asks a person.
fn risky(agent_id: &str) -> Value {
    let mut m = manifest(agent_id, "refund", 5000);
    m["environment"] = json!("production");
    m["confidence_score"] = json!(0.3);
    m
}

async fn pending(server: &Server, agent: &Key, agent_id: &str) -> Value {
    let r = server.validate(agent, &risky(agent_id)).await.expect(200);
    assert_eq!(r.json["status"], json!("pending_approval"), "{}", r.text);
    assert!(
        r.json.get("seal").is_none(),
        "a pending decision has no seal: {}",
        r.text
    );
    r.json
}

async fn queue(server: &Server, approver: &Key, query: &str) -> Value {
    server
        .get(&format!("/v1/approvals{query}"), Some(&approver.token))
        .await
        .expect(200)
        .json
}

/// Waits until the server counts `n` requests waiting on their decisions.
async fn until_waiting(server: &Server, n: u64) {
    let line = format!("sealgate_waiting_agents {n}\n");
    for _ in 0..200 {
        if server
            .get("/metrics", None)
            .await
            .expect(200)
            .text
            .contains(&line)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never saw {line:?} in /metrics");
}

/// An approver's answer (`approve` or `deny`) to the decision `id`, with `body`.
async fn answer(server: &Server, approver: &Key, id: &str, action: &str, body: &Value) -> Resp {
    server
        .post(
            &format!("/v1/approvals/{id}/{action}"),
            Some(&approver.token),
            body,
        )
        .await
}

fn ids(page: &Value) -> Vec<String> {
    page["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .map(|a| a["decision_id"].as_str().expect("decision_id").to_owned())
        .collect()
}

#[tokio::test]
async fn an_approved_pending_decision_gets_a_seal_that_redeems_once() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let approver = server.create_key("approver").await;
    let executor = server.create_key("executor").await;
    let auditor = server.create_key("auditor").await;

    let d = pending(&server, &agent, "agent-hitl").await;
    let id = d["decision_id"].as_str().unwrap();
    let page = queue(&server, &approver, "").await;
    assert_eq!(ids(&page), vec![id.to_owned()], "{page}");
    let item = &page["approvals"][0];
    assert_eq!(item["ledger_index"], d["ledger_index"]);
    assert_eq!(item["parameters"]["amount"], json!(5000));
    assert_eq!(item["agent_id"], json!("agent-hitl"));
    let waited = time::OffsetDateTime::parse(
        item["approval_expires_at"]
            .as_str()
            .expect("approval_expires_at"),
        &Rfc3339,
    )
    .unwrap()
        - time::OffsetDateTime::parse(item["created_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(waited.whole_seconds(), 86_400, "a day by default: {item}");
    assert!(
        item["reasons"][0]
            .as_str()
            .unwrap()
            .contains("confidence_score below 0.5"),
        "{item}"
    );

    let r = answer(
        &server,
        &approver,
        id,
        "approve",
        &json!({"reason": "called the customer"}),
    )
    .await
    .expect(200);
    let a = &r.json;
    assert_eq!(a["status"], json!("approved"), "{}", r.text);
    assert_eq!(a["approved"], json!(true));
    assert_eq!(a["approver"], json!(approver.id));
    assert_eq!(a["decision_index"], d["ledger_index"]);
    assert!(a["ledger_index"].as_u64().unwrap() > d["ledger_index"].as_u64().unwrap());
    let seal = a["seal"].as_str().expect("an approval grants a seal");
    let seal_id = a["seal_id"].as_str().unwrap();
    let claims = jws_part(seal, 1);
    assert_eq!(claims["jti"], json!(seal_id));
    assert_eq!(claims["decision_id"], json!(id));
    assert_eq!(
        claims["ledger_index"], d["ledger_index"],
        "the seal names the decision"
    );
    assert_eq!(
        claims["approval_index"], a["ledger_index"],
        "and the approval"
    );
    assert_eq!(claims["method"], json!("refund"));
    assert_eq!(claims["sub"], json!("agent-hitl"));
    assert_eq!(queue(&server, &approver, "").await["approvals"], json!([]));

    let v = server.verify(&executor, seal).await;
    assert_eq!(v["valid"], json!(true), "{v}");
    server.redeem(&executor, seal_id, seal).await.expect(200);
    server
        .redeem(&executor, seal_id, seal)
        .await
        .expect_problem(409);

    // The approver asking again (its answer lost, say) gets the same seal back; a change
    // of mind, or another approver, is refused; none of it records anything.
    let size = server.tree_size().await;
    let again = answer(&server, &approver, id, "approve", &json!({}))
        .await
        .expect(200);
    assert_eq!(again.json["seal"], a["seal"], "{}", again.text);
    assert_eq!(again.json["ledger_index"], a["ledger_index"]);
    assert_eq!(again.json["leaf_hash"], a["leaf_hash"]);
    assert_eq!(again.json["reason"], json!("called the customer"));
    let other = server.create_key("approver").await;
    for (key, action) in [(&approver, "deny"), (&other, "approve"), (&other, "deny")] {
        let r = answer(&server, key, id, action, &json!({}))
            .await
            .expect_problem(409);
        assert!(
            r.text
                .contains(&format!("already approved by {}", approver.id)),
            "{}",
            r.text
        );
    }
    assert_eq!(server.tree_size().await, size);

    let audit = server.audit(&auditor.token, "agent_id=agent-hitl").await;
    let rec = &audit["records"][0];
    assert_eq!(
        rec["status"],
        json!("pending_approval"),
        "what the policy said: {rec}"
    );
    assert_eq!(rec["approved"], json!(true), "{rec}");
    assert_eq!(rec["seal_id"], json!(seal_id));
    assert_eq!(rec["was_executed"], json!(true));
    assert_eq!(rec["resolution"]["approved"], json!(true));
    assert_eq!(rec["resolution"]["approver"], json!(approver.id));
    assert_eq!(rec["resolution"]["ledger_index"], a["ledger_index"]);
    assert_eq!(rec["resolution"]["reason"], json!("called the customer"));

    let entry = server
        .get(
            &format!("/v1/ledger/entries/{}", a["ledger_index"]),
            Some(&auditor.token),
        )
        .await
        .expect(200)
        .json;
    assert_eq!(entry["entry"]["kind"], json!("approval_resolved"));
    assert_eq!(entry["entry"]["reason"], json!("called the customer"));
    assert_eq!(entry["entry"]["seal"]["seal_id"], json!(seal_id));

    let metrics = server.get("/metrics", None).await.expect(200).text;
    assert!(
        metrics.contains("sealgate_approvals_resolved_total{outcome=\"approved\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sealgate_approvals_resolved_total{outcome=\"denied\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_denied_pending_decision_gets_no_seal_and_other_decisions_take_no_answer() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let approver = server.create_key("approver").await;
    let auditor = server.create_key("auditor").await;

    let d = pending(&server, &agent, "agent-deny").await;
    let id = d["decision_id"].as_str().unwrap();
    // No body at all is an answer without a reason.
    let r = server
        .request(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/deny"),
            Some(&approver.token),
            None,
        )
        .await
        .expect(200);
    assert_eq!(r.json["status"], json!("denied"), "{}", r.text);
    assert!(r.json.get("seal").is_none(), "{}", r.text);
    let rec = &server.audit(&auditor.token, "agent_id=agent-deny").await["records"][0];
    assert_eq!(rec["approved"], json!(false));
    assert_eq!(rec["seal_id"], json!(null));
    assert_eq!(rec["resolution"]["approved"], json!(false));
    assert!(
        rec["denial_reason"]
            .as_str()
            .unwrap()
            .contains(&approver.id),
        "{rec}"
    );

    // Approved and denied decisions are not the queue's to answer; unknown ids are 404.
    let approved = server
        .approved(&agent, &manifest("agent-deny", "payment", 1000))
        .await;
    let denied = server
        .validate(&agent, &manifest("agent-deny", "payment", 10000))
        .await
        .expect(200)
        .json;
    let size = server.tree_size().await;
    for (d, status) in [(&approved, "approved"), (&denied, "denied")] {
        let r = server
            .post(
                &format!(
                    "/v1/approvals/{}/approve",
                    d["decision_id"].as_str().unwrap()
                ),
                Some(&approver.token),
                &json!({}),
            )
            .await
            .expect_problem(409);
        assert!(r.text.contains(&format!("is {status}")), "{}", r.text);
    }
    for id in ["no-such-decision".to_owned(), "x".repeat(300)] {
        answer(&server, &approver, &id, "approve", &json!({}))
            .await
            .expect_problem(404);
    }

    // Bad bodies name the field.
    let other = pending(&server, &agent, "agent-deny").await;
    let path = format!(
        "/v1/approvals/{}/approve",
        other["decision_id"].as_str().unwrap()
    );
    let size_before_bad = server.tree_size().await;
    let secret = "AKIAZ7QHXKPL3M4RT2WB";
    let r = server
        .post(
            &path,
            Some(&approver.token),
            &json!({"reason": format!("used key {secret} to check")}),
        )
        .await
        .expect_problem(400);
    assert!(
        r.text.contains("/reason") && r.text.contains("aws_access_key"),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains(secret),
        "the error must not repeat the secret: {}",
        r.text
    );
    // sealgate's own token, the approver's here: two of its dashes once hid it.
    let token = &approver.token;
    let r = server
        .post(
            &path,
            Some(&approver.token),
            &json!({"reason": format!("checked with {token}")}),
        )
        .await
        .expect_problem(400);
    assert!(r.text.contains("sealgate_token"), "{}", r.text);
    assert!(!r.text.contains(token.as_str()), "{}", r.text);
    for (body, field) in [
        (json!({"reason": 7}), "/reason"),
        (json!({"reason": "x".repeat(3000)}), "/reason"),
        (json!({"approved": true}), "/approved"),
    ] {
        let r = server
            .post(&path, Some(&approver.token), &body)
            .await
            .expect_problem(400);
        assert!(r.text.contains(field), "{body}: {}", r.text);
    }
    assert_eq!(server.tree_size().await, size_before_bad);
    assert_eq!(
        size_before_bad,
        size + 1,
        "only the new pending decision was recorded"
    );
    server
        .post_raw(&path, Some(&approver.token), b"{not json".to_vec())
        .await
        .expect_problem(400);
}

#[tokio::test]
async fn the_queue_pages_newest_first() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let approver = server.create_key("approver").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let d = pending(&server, &agent, &format!("agent-page-{i}")).await;
        made.push(d["decision_id"].as_str().unwrap().to_owned());
    }
    made.reverse();
    let first = queue(&server, &approver, "?limit=2").await;
    assert_eq!(ids(&first), made[..2].to_vec());
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a full page has a cursor");
    let second = queue(&server, &approver, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), made[2..4].to_vec());
    let cursor = second["next_cursor"].as_str().unwrap();
    let last = queue(&server, &approver, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&last), made[4..].to_vec());
    assert_eq!(last["next_cursor"], json!(null));
    for bad in ["?limit=0", "?cursor=nope", "?status=pending"] {
        server
            .get(&format!("/v1/approvals{bad}"), Some(&approver.token))
            .await
            .expect_problem(400);
    }
}

/// Six approvers answering the same decision at once: exactly one answer lands, and
/// the ledger with approvals, seals and redemptions verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_answers_resolve_a_decision_once_and_the_ledger_verifies() {
    let server = Arc::new(Server::start_with(&["--checkpoint-interval-ms", "200"]).await);
    let agent = server.create_key("agent").await;
    let executor = server.create_key("executor").await;
    let auditor = server.create_key("auditor").await;
    let mut approvers = Vec::new();
    for _ in 0..6 {
        approvers.push(server.create_key("approver").await);
    }
    for round in 0..5 {
        let d = pending(&server, &agent, &format!("agent-race-{round}")).await;
        let id = d["decision_id"].as_str().unwrap().to_owned();
        let mut tasks = Vec::new();
        for (i, approver) in approvers.iter().enumerate() {
            let (server, approver, id) = (server.clone(), approver.clone(), id.clone());
            let action = if i % 2 == 0 { "approve" } else { "deny" };
            tasks.push(tokio::spawn(async move {
                server
                    .post(
                        &format!("/v1/approvals/{id}/{action}"),
                        Some(&approver.token),
                        &json!({}),
                    )
                    .await
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        let won = statuses.iter().filter(|s| **s == 200).count();
        let refused = statuses.iter().filter(|s| **s == 409).count();
        assert!(
            won == 1 && refused == approvers.len() - 1,
            "round {round}: {statuses:?} {:?}",
            answers.iter().map(|r| &r.text).collect::<Vec<_>>()
        );
        if let Some(won) = answers
            .iter()
            .find(|r| r.status == 200 && r.json["approved"] == json!(true))
        {
            let (seal, seal_id) = (
                won.json["seal"].as_str().unwrap(),
                won.json["seal_id"].as_str().unwrap(),
            );
            server.redeem(&executor, seal_id, seal).await.expect(200);
        }
    }

    let key = server
        .get("/v1/ledger/key", None)
        .await
        .expect(200)
        .text
        .trim()
        .to_owned();
    let size = server.tree_size().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let note = server
            .get("/v1/ledger/checkpoint", Some(&auditor.token))
            .await
            .expect(200)
            .text;
        let covered: u64 = note.lines().nth(1).unwrap().parse().unwrap();
        if covered >= size {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint covers {size} entries: {note}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = Command::new(BIN)
        .arg("verify")
        .arg("--data-dir")
        .arg(&server.data_dir)
        .args(["--key", &key])
        .output()
        .expect("run verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
}

/// The agent that submitted a decision reads it back, with its seal: the one the policy
/// granted (the same token as the response), or, once a person approves, the one the
/// approval granted. Another agent's key sees nothing.
#[tokio::test]
async fn the_agent_collects_the_seal_a_person_granted() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let other_agent = server.create_key("agent").await;
    let approver = server.create_key("approver").await;
    let executor = server.create_key("executor").await;
    let state = |id: &str, key: &Key| {
        let path = format!("/v1/decisions/{id}");
        let token = key.token.clone();
        let server = &server;
        async move { server.get(&path, Some(&token)).await }
    };

    let approved = server
        .approved(&agent, &manifest("agent-own", "payment", 1000))
        .await;
    let id = approved["decision_id"].as_str().unwrap();
    let s = state(id, &agent).await.expect(200).json;
    assert_eq!(
        s["seal"], approved["seal"],
        "the policy's seal, the same token: {s}"
    );
    assert_eq!(
        (s["status"].clone(), s["approved"].clone()),
        (json!("approved"), json!(true))
    );

    let d = pending(&server, &agent, "agent-own").await;
    let id = d["decision_id"].as_str().unwrap();
    let s = state(id, &agent).await.expect(200).json;
    assert_eq!(s["status"], json!("pending_approval"), "{s}");
    assert_eq!(s["approved"], json!(false));
    assert!(s.get("seal").is_none() && s["resolution"].is_null(), "{s}");
    state(id, &other_agent).await.expect_problem(404);
    state("no-such-decision", &agent).await.expect_problem(404);
    state(id, &approver).await.expect_problem(403);

    let a = answer(&server, &approver, id, "approve", &json!({}))
        .await
        .expect(200)
        .json;
    let s = state(id, &agent).await.expect(200).json;
    assert_eq!(s["approved"], json!(true), "{s}");
    assert_eq!(
        s["seal"], a["seal"],
        "the approval's seal, the same token: {s}"
    );
    assert_eq!(s["resolution"]["ledger_index"], a["ledger_index"]);
    assert_eq!(s["was_executed"], json!(false));
    let seal = s["seal"].as_str().unwrap();
    server
        .redeem(&executor, s["seal_id"].as_str().unwrap(), seal)
        .await
        .expect(200);
    assert_eq!(
        state(id, &agent).await.expect(200).json["was_executed"],
        json!(true)
    );
}

#[tokio::test]
async fn a_decision_past_its_approval_window_can_be_denied_not_approved() {
    // Five seconds: enough for the checks before the window closes on a loaded machine.
    let server = Server::start_with(&["--approval-ttl-secs", "5"]).await;
    let agent = server.create_key("agent").await;
    let approver = server.create_key("approver").await;
    let late = pending(&server, &agent, "agent-late").await;
    let late_id = late["decision_id"].as_str().unwrap();
    let refused = pending(&server, &agent, "agent-late").await;
    let refused_id = refused["decision_id"].as_str().unwrap();
    assert_eq!(
        ids(&queue(&server, &approver, "").await),
        vec![refused_id.to_owned(), late_id.to_owned()]
    );
    let s = server
        .get(&format!("/v1/decisions/{late_id}"), Some(&agent.token))
        .await
        .expect(200)
        .json;
    assert!(s["approval_expires_at"].is_string(), "{s}");

    // Sleep until both windows closed (test and server share the clock).
    let closes = queue(&server, &approver, "").await["approvals"][0]["approval_expires_at"]
        .as_str()
        .map(|t| time::OffsetDateTime::parse(t, &Rfc3339).unwrap())
        .expect("approval_expires_at");
    let left = closes - time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::try_from(left).unwrap_or_default() + Duration::from_millis(300))
        .await;
    assert_eq!(
        queue(&server, &approver, "").await["approvals"],
        json!([]),
        "the window closed: the queue no longer offers them"
    );
    let size = server.tree_size().await;
    let r = answer(
        &server,
        &approver,
        late_id,
        "approve",
        &json!({"reason": "too late"}),
    )
    .await
    .expect_problem(410);
    assert!(
        r.text.contains("approval window") && r.text.contains("approval_ttl_secs = 5"),
        "{}",
        r.text
    );
    assert_eq!(
        server.tree_size().await,
        size,
        "a refused approval records nothing"
    );

    // Refusing still works, and closes the request for good.
    let d = answer(
        &server,
        &approver,
        refused_id,
        "deny",
        &json!({"reason": "expired"}),
    )
    .await
    .expect(200)
    .json;
    assert_eq!(d["status"], json!("denied"), "{d}");
    assert!(d.get("seal").is_none(), "{d}");
    answer(&server, &approver, refused_id, "approve", &json!({}))
        .await
        .expect_problem(409);
    let s = server
        .get(&format!("/v1/decisions/{late_id}"), Some(&agent.token))
        .await
        .expect(200)
        .json;
    assert_eq!(s["approved"], json!(false), "{s}");
    assert!(s.get("seal").is_none() && s["resolution"].is_null(), "{s}");
}

#[tokio::test]
async fn an_agent_waiting_on_its_decision_is_answered_when_a_person_answers() {
    let server = Arc::new(Server::start().await);
    let agent = server.create_key("agent").await;
    let approver = server.create_key("approver").await;
    let d = pending(&server, &agent, "agent-waits").await;
    let id = d["decision_id"].as_str().unwrap().to_owned();

    for bad in [
        "wait=31",
        "wait=-1",
        "wait=soon",
        "wait=1&wait=2",
        "patience=1",
    ] {
        let r = server
            .get(&format!("/v1/decisions/{id}?{bad}"), Some(&agent.token))
            .await
            .expect_problem(400);
        assert!(
            r.text.contains("wait") || r.text.contains("patience"),
            "{bad}: {}",
            r.text
        );
    }

    // Nobody answers: the wait runs out and the decision is still pending.
    let started = Instant::now();
    let s = server
        .get(&format!("/v1/decisions/{id}?wait=1"), Some(&agent.token))
        .await
        .expect(200)
        .json;
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    assert_eq!(s["approved"], json!(false), "{s}");
    assert!(s["resolution"].is_null(), "{s}");

    // A person answers while the agent waits: the agent gets the seal without polling.
    let waiting = {
        let (server, id, token) = (server.clone(), id.clone(), agent.token.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = server
                .get(&format!("/v1/decisions/{id}?wait=20"), Some(&token))
                .await
                .expect(200);
            (started.elapsed(), r.json)
        })
    };
    until_waiting(&server, 1).await;
    let a = answer(&server, &approver, &id, "approve", &json!({}))
        .await
        .expect(200)
        .json;
    let (waited, s) = waiting.await.unwrap();
    until_waiting(&server, 0).await;
    assert!(
        waited < Duration::from_secs(20),
        "answered by the approval, not by the wait running out ({waited:?})"
    );
    assert_eq!(s["approved"], json!(true), "{s}");
    assert_eq!(s["seal"], a["seal"], "{s}");

    // A decision that waits for nobody is answered at once, wait or not.
    let approved = server
        .approved(&agent, &manifest("agent-waits", "payment", 1000))
        .await;
    let started = Instant::now();
    let s = server
        .get(
            &format!(
                "/v1/decisions/{}?wait=30",
                approved["decision_id"].as_str().unwrap()
            ),
            Some(&agent.token),
        )
        .await
        .expect(200)
        .json;
    assert_eq!(s["seal"], approved["seal"], "{s}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "no wait for a decided decision"
    );
}

#[tokio::test]
async fn shutting_down_answers_agents_that_are_waiting() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let d = pending(&server, &agent, "agent-shutdown").await;
    let id = d["decision_id"].as_str().unwrap();
    let url = server.url(&format!("/v1/decisions/{id}?wait=30"));
    let token = agent.token.clone();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let r = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("answered");
        let status = r.status().as_u16();
        (
            started.elapsed(),
            status,
            r.json::<Value>().await.expect("json"),
        )
    });
    until_waiting(&server, 1).await;
    server.terminate();
    let (waited, status, s) = waiting.await.unwrap();
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["approved"], json!(false), "{s}");
    assert!(
        waited < Duration::from_secs(30),
        "answered at shutdown, not when the wait ran out ({waited:?})"
    );
    assert!(server.exited().await, "the server exits after answering");
}

/// What the server acts on about an answered decision (who approved and may fetch the
/// seal again, the seal itself) is read from the approval's ledger entry, not from the
/// resolutions row that points to it. A row edited in the database to name another
/// approver and a later expiry changes nothing: the other approver gets no seal, and
/// the agent and the real approver get the seal the entry records.
#[tokio::test]
async fn a_resolution_row_edited_behind_the_servers_back_changes_no_answer() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let approver = server.create_key("approver").await;
    let other = server.create_key("approver").await;
    let d = pending(&server, &agent, "agent-reissue").await;
    let id = d["decision_id"].as_str().expect("decision_id").to_owned();
    let first = answer(
        &server,
        &approver,
        &id,
        "approve",
        &json!({"reason": "checked"}),
    )
    .await
    .expect(200);
    let seal = first.json["seal"].as_str().expect("a seal").to_owned();
    server.terminate();
    assert!(server.exited().await, "the server did not stop");

    let db = rusqlite::Connection::open(server.data_dir.join("ledger.db")).expect("open");
    db.execute_batch("DROP TRIGGER resolutions_no_update")
        .expect("drop trigger");
    let changed = db
        .execute(
            "UPDATE resolutions SET approver = ?1, expires_at = '2099-01-01T00:00:00.000000Z'",
            [&other.id],
        )
        .expect("edit the row");
    assert_eq!(changed, 1);
    drop(db);
    server.restart().await;

    let r = answer(
        &server,
        &other,
        &id,
        "approve",
        &json!({"reason": "mine now"}),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.json.get("seal").is_none(), "{}", r.text);
    assert!(
        r.text.contains(&approver.id),
        "the entry's approver: {}",
        r.text
    );
    let again = answer(&server, &approver, &id, "approve", &json!({}))
        .await
        .expect(200);
    assert_eq!(again.json["seal"], json!(seal), "{}", again.text);
    let state = server
        .get(&format!("/v1/decisions/{id}"), Some(&agent.token))
        .await
        .expect(200);
    assert_eq!(state.json["seal"], json!(seal), "{}", state.text);
    assert_eq!(
        state.json["resolution"]["approver"],
        json!(approver.id),
        "{}",
        state.text
    );
}
