//! Field-level redaction: configured pointers and detector types never reach the ledger.

use serde_json::json;

use crate::support::Server;

#[tokio::test]
async fn configured_fields_are_redacted_before_the_entry_is_hashed() {
    let cfg = tempfile::tempdir().expect("tempdir");
    let path = cfg.path().join("sealgate.toml");
    std::fs::write(
        &path,
        "[redaction]\npointers = [\"/parameters/card_number\"]\ntypes = [\"email\"]\n",
    )
    .expect("write config");
    let server = Server::start_with(&["--config", path.to_str().expect("utf8 path")]).await;
    let agent = server.create_key("agent").await;
    let manifest = json!({
        "agent_id": "redact-agent", "org_id": "acme", "provider": "stripe", "method": "payment",
        "parameters": {"amount": 1000, "card_number": "4111111111111111", "note": "receipt to bob.secret@example.com"},
        "reasoning": "pay the invoice"
    });
    let decision = server.validate(&agent, &manifest).await.expect(200).json;
    let index = decision["ledger_index"].as_u64().expect("index");

    let entry = server
        .get(
            &format!("/v1/ledger/entries/{index}"),
            Some(&server.admin_token),
        )
        .await
        .expect(200)
        .json;
    let params = &entry["entry"]["manifest"]["parameters"];
    let card = params["card_number"].as_str().expect("string");
    assert!(
        card.starts_with("[REDACTED:pointer:") && card.len() == "[REDACTED:pointer:".len() + 9,
        "{card}"
    );
    let note = params["note"].as_str().expect("string");
    assert!(
        !note.contains("bob.secret@example.com") && note.contains("[REDACTED:email:"),
        "{note}"
    );
    assert_eq!(params["amount"], json!(1000));
    let redacted: Vec<&str> = entry["entry"]["redacted"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        redacted.contains(&"/parameters/card_number") && redacted.contains(&"/parameters/note"),
        "{redacted:?}"
    );

    // Nothing of the originals is anywhere in the database files.
    for file in ["ledger.db", "ledger.db-wal"] {
        let bytes = std::fs::read(server.data_dir.join(file)).unwrap_or_default();
        for secret in [&b"4111111111111111"[..], b"bob.secret@example.com"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{file} holds an original value"
            );
        }
    }
}
