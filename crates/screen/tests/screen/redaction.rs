//! Field-level redaction before an entry is hashed.

use serde_json::json;

use sealgate_screen::{Redactor, RedactorConfig, SecretKind};

fn marker_ok(s: &str, kind: &str) -> bool {
    let prefix = format!("[REDACTED:{kind}:");
    s.starts_with(&prefix)
        && s.ends_with(']')
        && s.len() == prefix.len() + 9
        && s[prefix.len()..s.len() - 1]
            .chars()
            .all(|c| c.is_ascii_hexdigit())
}

#[test]
fn pointers_and_kinds_are_redacted_in_a_manifest() {
    let mut manifest = json!({
        "agent_id": "a1",
        "parameters": {"iban": "DE89370400440532013000", "note": "call me at (415) 555-0132", "amount": 10},
        "reasoning": "customer jane@example.com asked for a refund",
    });
    let r = Redactor::new(RedactorConfig {
        pointers: vec!["/parameters/iban".into()],
        kinds: vec![SecretKind::Email, SecretKind::PhoneNumber],
        key: b"ledger-redaction-key".to_vec(),
    })
    .unwrap();
    let done = r.redact(&mut manifest);
    assert!(marker_ok(
        manifest["parameters"]["iban"].as_str().unwrap(),
        "pointer"
    ));
    let note = manifest["parameters"]["note"].as_str().unwrap();
    assert!(
        note.starts_with("call me at [REDACTED:phone_number:"),
        "{note}"
    );
    let reasoning = manifest["reasoning"].as_str().unwrap();
    assert!(reasoning.contains("[REDACTED:email:"), "{reasoning}");
    assert_eq!(manifest["parameters"]["amount"], 10);
    assert_eq!(manifest["agent_id"], "a1");
    let kinds: Vec<&str> = done.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, vec!["pointer", "phone_number", "email"]);
    let text = manifest.to_string();
    assert!(!text.contains("DE89") && !text.contains("jane@") && !text.contains("555-0132"));
}

#[test]
fn redaction_is_deterministic_for_a_key() {
    let cfg = RedactorConfig {
        pointers: vec!["/x".into()],
        kinds: vec![],
        key: b"k".to_vec(),
    };
    let mut a = json!({"x": "secret"});
    let mut b = json!({"x": "secret"});
    Redactor::new(cfg.clone()).unwrap().redact(&mut a);
    Redactor::new(cfg).unwrap().redact(&mut b);
    assert_eq!(a, b);
}
