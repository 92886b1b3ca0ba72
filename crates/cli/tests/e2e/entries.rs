//! GET /v1/ledger/entries/{index} serves an entry as the bytes its leaf hash covers,
//! and the ledger's read operations take their numbers and parameters one way only.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::Server;

/// A manifest whose canonical form differs from what a JSON library writes back:
/// RFC 8785 spells 1e20 as digits and sorts keys by UTF-16 code units, so "😀"
/// (U+1F600, a surrogate pair from 0xD83D) comes before "｡" (U+FF61).
const MANIFEST: &str = r#"{"manifest": {"agent_id": "bytes-agent", "org_id": "acme",
    "provider": "stripe", "method": "payment",
    "parameters": {"amount": 1000, "ee": 1e20, "rr": 0.000001, "k": {"｡": 5, "😀": 4}},
    "reasoning": "pay the invoice"}}"#;

#[tokio::test]
async fn an_entry_is_served_as_the_bytes_its_leaf_hash_covers() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    let decision = server
        .post_raw(
            "/v1/manifest/validate",
            Some(&agent.token),
            MANIFEST.as_bytes().to_vec(),
        )
        .await
        .expect(200)
        .json;
    let index = decision["ledger_index"].as_u64().expect("index");

    let r = server
        .get(&format!("/v1/ledger/entries/{index}"), Some(&auditor.token))
        .await
        .expect(200);
    let canonical = B64
        .decode(r.json["canonical"].as_str().expect("canonical"))
        .expect("base64");
    let leaf: [u8; 32] = Sha256::new()
        .chain_update([0u8])
        .chain_update(&canonical)
        .finalize()
        .into();
    assert_eq!(B64.encode(leaf), r.json["leaf_hash"], "{}", r.text);
    assert_eq!(decision["leaf_hash"], r.json["leaf_hash"]);

    // `entry` is the same bytes, spliced in verbatim.
    let text = String::from_utf8(canonical).expect("UTF-8");
    assert!(r.text.contains(&format!("\"entry\":{text}")), "{}", r.text);
    assert!(text.contains(r#""ee":100000000000000000000"#), "{text}");
    assert!(text.contains(r#""rr":0.000001"#), "{text}");
    let (smile, dot) = (text.find('😀').expect("😀"), text.find('｡').expect("｡"));
    assert!(smile < dot, "keys not in RFC 8785 order: {text}");
}

#[tokio::test]
async fn ledger_reads_take_one_spelling_of_a_number_and_no_stray_parameters() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    let manifest = json!({"agent_id": "a", "org_id": "acme", "provider": "stripe",
        "method": "payment", "parameters": {"amount": 1000}});
    for _ in 0..2 {
        server.validate(&agent, &manifest).await.expect(200);
    }
    let token = Some(auditor.token.as_str());
    for (path, field, says) in [
        ("/v1/ledger/entries/+1", "index", "no leading zero"),
        ("/v1/ledger/entries/01", "index", "no leading zero"),
        ("/v1/ledger/entries/1?x=1", "x", "takes none"),
        ("/v1/ledger/checkpoint?x=1", "x", "takes none"),
        ("/v1/ledger/tlog/checkpoint?x=1", "x", "takes none"),
        ("/v1/ledger/tlog/tile/0/000.p/1?x=1", "x", "takes none"),
        (
            "/v1/ledger/proof/inclusion?index=%2B1&tree_size=2",
            "index",
            "no leading zero",
        ),
        (
            "/v1/ledger/proof/inclusion?index=01&tree_size=2",
            "index",
            "no leading zero",
        ),
        (
            "/v1/ledger/proof/inclusion?index=0&tree_size=0",
            "tree_size",
            "at least 1",
        ),
        (
            "/v1/ledger/proof/consistency?first=2&second=1",
            "first",
            "above second",
        ),
        (
            "/v1/ledger/proof/consistency?first=1&second=0",
            "first",
            "above second",
        ),
    ] {
        let r = server.get(path, token).await.expect_problem(400);
        assert_eq!(r.json["field"], json!(field), "{path}: {}", r.text);
        assert!(r.text.contains(says), "{path}: {}", r.text);
    }
    for (path, token, field) in [
        ("/v1/audit/query?limit=%2B5", &auditor.token, "limit"),
        ("/v1/audit/query?limit=05", &auditor.token, "limit"),
        ("/v1/decisions/d-1?wait=01", &agent.token, "wait"),
    ] {
        let r = server.get(path, Some(token)).await.expect_problem(400);
        assert_eq!(r.json["field"], json!(field), "{path}: {}", r.text);
    }
    for path in ["/v1/ledger/key?x=1", "/.well-known/jwks.json?x=1"] {
        let r = server.get(path, None).await.expect_problem(400);
        assert_eq!(r.json["field"], json!("x"), "{path}: {}", r.text);
    }
    // The same requests, spelled plainly, are answered.
    for path in [
        "/v1/ledger/entries/1",
        "/v1/ledger/checkpoint",
        "/v1/ledger/proof/inclusion?index=1&tree_size=2",
        "/v1/ledger/proof/consistency?first=1&second=2",
    ] {
        server.get(path, token).await.expect(200);
    }
}
