//! Point 8: bad input is a 4xx problem+json naming the field or limit, records
//! nothing, and the server keeps serving.

use serde_json::{json, Value};

use crate::support::{client, manifest, post_raw_with, Key, Resp, Server};

const VALIDATE: &str = "/v1/manifest/validate";

async fn assert_nothing_recorded_and_still_serving(server: &mut Server, agent: &Key, size: u64) {
    assert!(
        server.is_running(),
        "the server died; log:\n{}",
        server.log()
    );
    assert_eq!(server.tree_size().await, size, "refused input was recorded");
    let audit = server.audit(&server.admin_token, "").await;
    assert_eq!(
        audit["records"],
        json!([]),
        "refused input shows in the audit trail"
    );
    let r = server
        .validate(agent, &manifest("agent-good", "payment", 1000))
        .await
        .expect(200);
    assert_eq!(r.json["approved"], json!(true), "{}", r.text);
}

fn body_with(mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut m = manifest("agent-bad", "payment", 1000);
    mutate(&mut m);
    serde_json::to_vec(&json!({ "manifest": m })).unwrap()
}

#[track_caller]
fn assert_names_field(r: &Resp, field: &str) {
    assert_eq!(
        r.json["field"],
        json!(field),
        "problem should name {field}: {}",
        r.text
    );
}

#[tokio::test]
async fn malformed_missing_mistyped_and_unknown_fields_are_400_naming_the_field() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let size = server.tree_size().await;

    let r = server
        .post_raw(
            VALIDATE,
            Some(&agent.token),
            br#"{"manifest": {"agent_id": "a",}"#.to_vec(),
        )
        .await
        .expect_problem(400);
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("json"),
        "malformed JSON should say so: {}",
        r.text
    );

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "missing agent_id",
            body_with(|m| {
                m.as_object_mut().unwrap().remove("agent_id");
            }),
            "/manifest/agent_id",
        ),
        (
            "parameters as an array",
            body_with(|m| m["parameters"] = json!([1000])),
            "/manifest/parameters",
        ),
        (
            "confidence_score as a string",
            body_with(|m| m["confidence_score"] = json!("0.9")),
            "/manifest/confidence_score",
        ),
        (
            "unknown top-level field beside parameters",
            body_with(|m| m["amount"] = json!(1000)),
            "/manifest/amount",
        ),
        (
            "no manifest at all",
            serde_json::to_vec(&json!({})).unwrap(),
            "/manifest",
        ),
    ];
    for (what, body, field) in cases {
        let r = server.post_raw(VALIDATE, Some(&agent.token), body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        let r = r.expect_problem(400);
        assert_names_field(&r, field);
    }
    assert_nothing_recorded_and_still_serving(&mut server, &agent, size).await;
}

#[tokio::test]
async fn a_two_mib_body_is_413() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let size = server.tree_size().await;
    let body = body_with(|m| m["parameters"]["memo"] = json!("x".repeat(2 * 1024 * 1024)));
    assert!(body.len() > 2 * 1024 * 1024);
    // On a connection of its own: the server stops reading at the limit and drops the
    // connection afterwards, which must not be mistaken for the server going away.
    let r = post_raw_with(&client(), &server.url(VALIDATE), Some(&agent.token), body)
        .await
        .expect_problem(413);
    assert!(
        r.json["detail"].as_str().unwrap().contains("1048576"),
        "413 should name the limit: {}",
        r.text
    );
    assert_nothing_recorded_and_still_serving(&mut server, &agent, size).await;
}

#[tokio::test]
async fn nesting_1000_deep_in_parameters_is_400_naming_the_depth_limit() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let size = server.tree_size().await;
    let m = manifest("agent-deep", "payment", 1000);
    let mut text = serde_json::to_string(&json!({ "manifest": m })).unwrap();
    // Splice `"deep": [[[...]]]` (1000 levels) into parameters.
    let deep = format!("\"deep\":{}{},", "[".repeat(1000), "]".repeat(1000));
    let at = text.find("\"parameters\":{").expect("parameters") + "\"parameters\":{".len();
    text.insert_str(at, &deep);
    let r = server
        .post_raw(VALIDATE, Some(&agent.token), text.into_bytes())
        .await
        .expect_problem(400);
    let detail = r.json["detail"].as_str().unwrap().to_lowercase();
    assert!(
        detail.contains("depth") && detail.contains("limit"),
        "should name the depth limit: {}",
        r.text
    );
    assert_nothing_recorded_and_still_serving(&mut server, &agent, size).await;
}

#[tokio::test]
async fn parameters_over_32_kib_are_400_naming_the_field_and_limit() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let size = server.tree_size().await;
    let body = body_with(|m| m["parameters"]["memo"] = json!("x".repeat(40 * 1024)));
    let r = post_raw_with(&client(), &server.url(VALIDATE), Some(&agent.token), body)
        .await
        .expect_problem(400);
    assert_names_field(&r, "/manifest/parameters");
    assert!(
        r.json["detail"].as_str().unwrap().contains("32768"),
        "should name the limit: {}",
        r.text
    );
    assert_nothing_recorded_and_still_serving(&mut server, &agent, size).await;
}

#[tokio::test]
async fn an_entry_too_long_for_a_tile_bundle_is_400_naming_the_limit() {
    // Each field within its own limit, but quotes double when escaped: together the
    // canonical entry passes the 65535 bytes an entry bundle can hold.
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let size = server.tree_size().await;
    let body = body_with(|m| {
        m["reasoning"] = json!("\"".repeat(16 * 1024));
        m["parameters"]["memo"] = json!("x".repeat(32_600));
    });
    let r = post_raw_with(&client(), &server.url(VALIDATE), Some(&agent.token), body)
        .await
        .expect_problem(400);
    assert!(
        r.json["detail"].as_str().unwrap().contains("65535"),
        "should name the entry limit: {}",
        r.text
    );
    assert_nothing_recorded_and_still_serving(&mut server, &agent, size).await;
}

#[tokio::test]
async fn a_body_that_stalls_past_the_deadline_is_408_and_records_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cfg = tempfile::tempdir().expect("tempdir");
    let path = cfg.path().join("sealgate.toml");
    std::fs::write(&path, "request_timeout_secs = 1\n").expect("write config");
    let mut server = Server::start_with(&["--config", path.to_str().expect("utf8")]).await;
    let agent = server.create_key("agent").await;
    let size = server.tree_size().await;

    // Headers promise 100 bytes; 12 arrive, then the client goes quiet.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    let head = format!(
        "POST {VALIDATE} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"manifest\":",
        agent.token
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer within 10 s: {text}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains("did not arrive within 1 s"), "{text}");
    assert_nothing_recorded_and_still_serving(&mut server, &agent, size).await;
}

/// What a parse would silently change is refused, not decided on: a number a 64-bit
/// float cannot hold as written (`5000.0000000000001` would be approved as 5000 and
/// sealed as such), and a member named twice (the last would win here, the first in
/// some proxy in front).
#[tokio::test]
async fn numbers_a_float_would_round_and_members_named_twice_are_400() {
    let mut server = Server::start().await;
    let agent = server.create_key("agent").await;
    let size = server.tree_size().await;
    let template = serde_json::to_string(&json!({
        "manifest": manifest("agent-exact", "payment", 1000)
    }))
    .unwrap();
    assert!(template.contains(r#""amount":1000"#), "{template}");
    for amount in [
        "5000.0000000000001",
        "4999.99999999999999999",
        "9007199254740993.0",
        "123456789012345678901234567890",
    ] {
        let body = template.replace(r#""amount":1000"#, &format!(r#""amount":{amount}"#));
        let r = server
            .post_raw(VALIDATE, Some(&agent.token), body.into_bytes())
            .await
            .expect_problem(400);
        let detail = r.json["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!("the number {amount}")) && detail.contains("as a string"),
            "{amount}: {}",
            r.text
        );
    }
    let body = template.replace(r#""amount":1000"#, r#""amount":999999,"amount":1"#);
    let r = server
        .post_raw(VALIDATE, Some(&agent.token), body.into_bytes())
        .await
        .expect_problem(400);
    assert!(
        r.json["detail"]
            .as_str()
            .is_some_and(|d| d.contains(r#"member "amount" is given twice"#)),
        "{}",
        r.text
    );
    assert_nothing_recorded_and_still_serving(&mut server, &agent, size).await;

    // Shortest float text is kept as sent: 19.99 is decided on and recorded as 19.99.
    let body = template.replace(r#""amount":1000"#, r#""amount":1999.5"#);
    let r = server
        .post_raw(VALIDATE, Some(&agent.token), body.into_bytes())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Requests whose meaning depends on who reads them are refused, saying why: another
/// content type, a compressed body (it would read as malformed JSON), two
/// Authorization headers (which one counts is up to the reader).
#[tokio::test]
async fn ambiguous_envelopes_are_refused_saying_why() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let approver = server.create_key("approver").await;
    let size = server.tree_size().await;
    let body = serde_json::to_vec(&json!({
        "manifest": manifest("agent-envelope", "payment", 1000)
    }))
    .unwrap();
    let http = client();
    let send = |headers: &[(&str, &str)]| {
        let mut req = http.post(server.url(VALIDATE)).body(body.clone());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        async move { crate::support::into_resp(req.send().await.expect("sent")).await }
    };
    let bearer = format!("Bearer {}", agent.token);

    let r = send(&[("authorization", &bearer), ("content-type", "text/plain")])
        .await
        .expect_problem(415);
    assert!(r.text.contains("application/json"), "{}", r.text);
    let r = send(&[
        ("authorization", &bearer),
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ])
    .await
    .expect_problem(415);
    assert!(r.text.contains("Content-Encoding"), "{}", r.text);
    // Either order: neither key is taken.
    let other = format!("Bearer {}", approver.token);
    for (first, second) in [(&bearer, &other), (&other, &bearer)] {
        send(&[
            ("authorization", first),
            ("authorization", second),
            ("content-type", "application/json"),
        ])
        .await
        .expect_problem(401);
    }
    send(&[
        ("authorization", &bearer),
        ("content-type", "application/json"),
        ("content-encoding", "identity"),
    ])
    .await
    .expect(200);
    let size = size + 1;

    let auditor = server.create_key("auditor").await;
    let r = server
        .get(
            "/v1/ledger/proof/consistency?first=0&second=0",
            Some(&auditor.token),
        )
        .await
        .expect_problem(400);
    assert_eq!(r.json["field"], json!("second"), "{}", r.text);
    assert!(r.text.contains("nothing to prove"), "{}", r.text);

    assert_eq!(
        server.tree_size().await,
        size,
        "a refused request was recorded"
    );
}
