//! Point 4: seals verify with an independent Ed25519 implementation against the JWKS,
//! redeem exactly once (also under a race), expire, and forgeries are refused.

use std::process::Command;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

use crate::support::{have, jws_part, manifest, Server};

const PY_VERIFY: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
def b64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
token, x, kid = sys.argv[1], sys.argv[2], sys.argv[3]
h, p, s = token.split(".")
header = json.loads(b64(h))
assert header["alg"] == "EdDSA", header
assert header["typ"] == "seal+jwt", header
assert header["kid"] == kid, (header, kid)
Ed25519PublicKey.from_public_bytes(b64(x)).verify(b64(s), (h + "." + p).encode())
print("VERIFIED")
"#;

fn python_has_cryptography() -> bool {
    have(
        "python3",
        &[
            "-c",
            "import cryptography.hazmat.primitives.asymmetric.ed25519",
        ],
    )
}

fn python_verify(token: &str, x: &str, kid: &str) -> (bool, String) {
    let out = Command::new("python3")
        .args(["-c", PY_VERIFY, token, x, kid])
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("VERIFIED"), text)
}

#[tokio::test]
async fn seal_verifies_independently_against_the_jwks() {
    if !python_has_cryptography() {
        eprintln!("SKIP seal_verifies_independently_against_the_jwks: python3 with `cryptography` is not available");
        return;
    }
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let d = server
        .approved(&agent, &manifest("agent-seal", "payment", 1000))
        .await;
    let seal = d["seal"].as_str().unwrap();
    let jwk = server.jwk().await;
    assert_eq!(jwk["kty"], json!("OKP"), "{jwk}");
    assert_eq!(jwk["crv"], json!("Ed25519"), "{jwk}");
    let x = jwk["x"].as_str().expect("x");
    let kid = jwk["kid"].as_str().expect("kid");

    let header = jws_part(seal, 0);
    assert_eq!(header["kid"], json!(kid), "{header}");
    let (ok, out) = python_verify(seal, x, kid);
    assert!(ok, "python rejected a genuine seal: {out}");

    // The same verifier is not a rubber stamp: a changed payload fails.
    let parts: Vec<&str> = seal.split('.').collect();
    let mut claims = jws_part(seal, 1);
    claims["ledger_index"] = json!(claims["ledger_index"].as_u64().unwrap() + 1);
    let altered = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let (ok, out) = python_verify(&altered, x, kid);
    assert!(!ok, "python accepted an altered seal: {out}");
}

#[tokio::test]
async fn redeem_succeeds_once_then_conflicts() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let executor = server.create_key("executor").await;
    let d = server
        .approved(&agent, &manifest("agent-seal", "payment", 1000))
        .await;
    let (seal, seal_id) = (d["seal"].as_str().unwrap(), d["seal_id"].as_str().unwrap());
    let before = server.tree_size().await;
    let first = server.redeem(&executor, seal_id, seal).await.expect(200);
    assert_eq!(first.json["redeemed"], json!(true), "{}", first.text);
    assert_eq!(first.json["seal_id"], json!(seal_id), "{}", first.text);
    assert_eq!(
        first.json["decision_index"], d["ledger_index"],
        "{}",
        first.text
    );
    assert_eq!(first.json["ledger_index"], json!(before), "{}", first.text);
    assert_eq!(
        server.tree_size().await,
        before + 1,
        "redemption is a ledger entry"
    );
    server
        .redeem(&executor, seal_id, seal)
        .await
        .expect_problem(409);
    assert_eq!(
        server.tree_size().await,
        before + 1,
        "a refused redemption recorded something"
    );
}

#[tokio::test]
async fn redeem_twice_under_race_is_refused() {
    let server = Arc::new(Server::start().await);
    let agent = server.create_key("agent").await;
    let executor = Arc::new(server.create_key("executor").await);
    let d = server
        .approved(&agent, &manifest("agent-race", "payment", 1000))
        .await;
    let seal: Arc<str> = d["seal"].as_str().unwrap().into();
    let seal_id: Arc<str> = d["seal_id"].as_str().unwrap().into();
    let before = server.tree_size().await;

    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (server, executor, seal, seal_id, barrier) = (
                server.clone(),
                executor.clone(),
                seal.clone(),
                seal_id.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let r = server.redeem(&executor, &seal_id, &seal).await;
                (r.status, r.text)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let conflict = statuses.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!(
        (ok, conflict),
        (1, 49),
        "expected exactly one 200 and 49 409: {statuses:?}"
    );
    assert_eq!(
        server.tree_size().await,
        before + 1,
        "exactly one redemption entry"
    );
}

#[tokio::test]
async fn expired_seal_is_gone() {
    let server = Server::start_with(&["--seal-ttl-secs", "1"]).await;
    let agent = server.create_key("agent").await;
    let executor = server.create_key("executor").await;
    let d = server
        .approved(&agent, &manifest("agent-expiry", "payment", 1000))
        .await;
    let (seal, seal_id) = (d["seal"].as_str().unwrap(), d["seal_id"].as_str().unwrap());
    let claims = jws_part(seal, 1);
    assert!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 1,
        "--seal-ttl-secs 1 not applied: {claims}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    server
        .redeem(&executor, seal_id, seal)
        .await
        .expect_problem(410);
    let v = server.verify(&executor, seal).await;
    assert_eq!(v["valid"], json!(false), "{v}");
    assert_eq!(v["expired"], json!(true), "{v}");
    assert_eq!(v["redeemed"], json!(false), "{v}");
}

/// Re-signs `header.payload` with `key`.
fn sign_with(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64URL.encode(serde_json::to_vec(header).unwrap()),
        B64URL.encode(serde_json::to_vec(claims).unwrap())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64URL.encode(sig.to_bytes()))
}

#[tokio::test]
async fn forged_altered_and_foreign_seals_are_refused() {
    let server = Server::start().await;
    let other = Server::start().await;
    let agent = server.create_key("agent").await;
    let executor = server.create_key("executor").await;
    let d = server
        .approved(&agent, &manifest("agent-forge", "payment", 1000))
        .await;
    let (seal, seal_id) = (d["seal"].as_str().unwrap(), d["seal_id"].as_str().unwrap());
    let header = jws_part(seal, 0);
    let claims = jws_part(seal, 1);
    let parts: Vec<&str> = seal.split('.').collect();

    // Forged: the genuine header (same kid) and claims, signed by another Ed25519 key.
    let forger = SigningKey::generate(&mut rand::rngs::OsRng);
    let forged = sign_with(&forger, &header, &claims);
    // Altered: the genuine signature over a changed payload.
    let mut changed = claims.clone();
    changed["method"] = json!("refund");
    let altered = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(serde_json::to_vec(&changed).unwrap()),
        parts[2]
    );
    // Foreign: a genuine seal from another gateway (its own key and ledger).
    let other_agent = other.create_key("agent").await;
    let foreign_d = other
        .approved(&other_agent, &manifest("agent-forge", "payment", 1000))
        .await;
    let foreign = foreign_d["seal"].as_str().unwrap();
    let foreign_id = foreign_d["seal_id"].as_str().unwrap();

    let before = server.tree_size().await;
    for (what, token, id) in [
        ("forged", forged.as_str(), seal_id),
        ("altered", altered.as_str(), seal_id),
        ("foreign", foreign, foreign_id),
    ] {
        let r = server.redeem(&executor, id, token).await;
        assert!(
            (400..500).contains(&r.status),
            "{what} seal redeemed with {}: {}",
            r.status,
            r.text
        );
        let v = server.verify(&executor, token).await;
        assert_eq!(v["valid"], json!(false), "{what} seal verified: {v}");
    }
    assert_eq!(
        server.tree_size().await,
        before,
        "a refused seal recorded something"
    );

    // The genuine seal is untouched by all that: fresh, then redeemed once.
    let v = server.verify(&executor, seal).await;
    assert_eq!(
        (v["valid"].clone(), v["redeemed"].clone()),
        (json!(true), json!(false)),
        "{v}"
    );
    assert_eq!(v["claims"]["jti"], json!(seal_id), "{v}");
    server.redeem(&executor, seal_id, seal).await.expect(200);
    let v = server.verify(&executor, seal).await;
    assert_eq!(v["redeemed"], json!(true), "{v}");
    assert!(v["redeemed_at"].is_string(), "{v}");
}
