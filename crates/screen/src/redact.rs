//! Field-level redaction of a JSON document before it is hashed into the ledger.
//!
//! Owns [`Redactor`]: configured JSON pointers are replaced whole, and spans
//! found by configured detector types are replaced inside their strings, by
//! `[REDACTED:<type>:<h>]` where `<h>` is the first 8 hex digits of
//! HMAC-SHA256(key, original value) and `<type>` is `pointer` or the
//! detector's type. The keyed hash lets an operator who holds the key check
//! whether two entries held the same value without the ledger holding it.
//!
//! Trade-off (documented in the README): once redacted, the original value
//! can no longer be proven from the ledger; the entry's hash covers the
//! marker, not the value. This module does not know about ledgers; it only
//! rewrites a `serde_json::Value`.

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::secrets::{is_credential_key, is_placeholder, SecretKind, SecretScanner};
use crate::{push_pointer, ScreenError};

/// What to redact and with which key.
#[derive(Clone, Default)]
pub struct RedactorConfig {
    /// JSON pointers (RFC 6901) whose values are replaced whole.
    pub pointers: Vec<String>,
    /// Detector types whose matches are replaced wherever they occur.
    /// `password` also replaces whole values of credential-named members.
    pub kinds: Vec<SecretKind>,
    /// HMAC key for the marker hash. Keep it secret: with it, short values
    /// can be brute-forced from their markers.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for RedactorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactorConfig")
            .field("pointers", &self.pointers)
            .field("kinds", &self.kinds)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// One replacement made by [`Redactor::redact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redaction {
    /// JSON pointer of the value that was rewritten.
    pub pointer: String,
    /// `pointer` or the detector type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Replaces configured fields and detector matches with keyed-hash markers.
pub struct Redactor {
    pointers: Vec<String>,
    kinds: Vec<SecretKind>,
    mac: Hmac<Sha256>,
    scanner: Option<SecretScanner>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("pointers", &self.pointers)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

/// Deepest nesting the type-based walk descends into.
const MAX_DEPTH: usize = 128;

/// Whether a credential-named member's string value is worth redacting.
pub(crate) fn is_credential_value(s: &str) -> bool {
    !is_placeholder(s) && s.chars().any(char::is_alphanumeric) && s.len() >= 4
}

impl Redactor {
    /// Builds a redactor. Pointers must be empty or start with `/`; the key
    /// must not be empty.
    pub fn new(config: RedactorConfig) -> Result<Redactor, ScreenError> {
        if config.key.is_empty() {
            return Err(ScreenError::Config(
                "redaction key must not be empty".into(),
            ));
        }
        if let Some(p) = config
            .pointers
            .iter()
            .find(|p| !p.is_empty() && !p.starts_with('/'))
        {
            return Err(ScreenError::Config(format!(
                "redaction pointer {p:?} must start with '/'"
            )));
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&config.key)
            .map_err(|e| ScreenError::Config(format!("redaction key: {e}")))?;
        let scanner = if config.kinds.is_empty() {
            None
        } else {
            Some(SecretScanner::new(&config.kinds)?)
        };
        Ok(Redactor {
            pointers: config.pointers,
            kinds: config.kinds,
            mac,
            scanner,
        })
    }

    /// The marker that replaces `value` for `kind`.
    pub fn marker(&self, kind: &str, value: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(value);
        let tag = mac.finalize().into_bytes();
        format!("[REDACTED:{kind}:{}]", hex::encode(&tag[..4]))
    }

    /// Rewrites `doc` in place and lists what was replaced. A pointer that
    /// does not resolve is skipped. Non-string values at a pointer are
    /// hashed as their compact JSON text.
    pub fn redact(&self, doc: &mut Value) -> Vec<Redaction> {
        let mut done = Vec::new();
        for pointer in &self.pointers {
            if let Some(slot) = doc.pointer_mut(pointer) {
                let original = match &*slot {
                    Value::String(s) => s.clone().into_bytes(),
                    other => serde_json::to_vec(other).unwrap_or_default(),
                };
                *slot = Value::String(self.marker("pointer", &original));
                done.push(Redaction {
                    pointer: pointer.clone(),
                    kind: "pointer".into(),
                });
            }
        }
        if self.scanner.is_some() {
            self.walk(doc, String::new(), 0, &mut done);
        }
        done
    }

    fn walk(&self, value: &mut Value, path: String, depth: usize, done: &mut Vec<Redaction>) {
        if depth > MAX_DEPTH {
            return;
        }
        match value {
            Value::String(s) => {
                if let Some((text, kinds)) = self.redact_text(s) {
                    *s = text;
                    for kind in kinds {
                        done.push(Redaction {
                            pointer: path.clone(),
                            kind: kind.as_str().into(),
                        });
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.walk(item, push_pointer(&path, &i.to_string()), depth + 1, done);
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let member = push_pointer(&path, key);
                    if self.kinds.contains(&SecretKind::Password) && is_credential_key(key) {
                        if let Value::String(s) = item {
                            if is_credential_value(s) && !s.starts_with("[REDACTED:") {
                                *s = self.marker(SecretKind::Password.as_str(), s.as_bytes());
                                done.push(Redaction {
                                    pointer: member,
                                    kind: SecretKind::Password.as_str().into(),
                                });
                                continue;
                            }
                        }
                    }
                    self.walk(item, member, depth + 1, done);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn redact_text(&self, text: &str) -> Option<(String, Vec<SecretKind>)> {
        let scanner = self.scanner.as_ref()?;
        let matches = scanner.scan(text);
        if matches.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut kinds = Vec::new();
        let mut last = 0;
        for m in matches {
            out.push_str(&text[last..m.start]);
            out.push_str(&self.marker(m.kind.as_str(), &text.as_bytes()[m.start..m.end]));
            last = m.end;
            if !kinds.contains(&m.kind) {
                kinds.push(m.kind);
            }
        }
        out.push_str(&text[last..]);
        Some((out, kinds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor(pointers: &[&str], kinds: &[SecretKind]) -> Redactor {
        Redactor::new(RedactorConfig {
            pointers: pointers.iter().map(|s| (*s).to_owned()).collect(),
            kinds: kinds.to_vec(),
            key: b"test-key".to_vec(),
        })
        .unwrap()
    }

    #[test]
    fn marker_is_first_eight_hex_of_hmac_sha256() {
        // HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog")
        // = f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8
        let r = Redactor::new(RedactorConfig {
            key: b"key".to_vec(),
            ..RedactorConfig::default()
        })
        .unwrap();
        assert_eq!(
            r.marker("pointer", b"The quick brown fox jumps over the lazy dog"),
            "[REDACTED:pointer:f7bc83f4]"
        );
    }

    #[test]
    fn pointer_values_are_replaced_whole() {
        let mut doc = json!({"parameters": {"to": "alice@example.com", "amount": 12}});
        let done =
            redactor(&["/parameters/to", "/parameters/amount", "/missing"], &[]).redact(&mut doc);
        assert_eq!(done.len(), 2);
        let to = doc["parameters"]["to"].as_str().unwrap();
        assert!(
            to.starts_with("[REDACTED:pointer:") && to.len() == "[REDACTED:pointer:12345678]".len()
        );
        assert!(doc["parameters"]["amount"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED:pointer:"));
    }

    #[test]
    fn detector_matches_are_replaced_inside_strings() {
        let mut doc = json!({"note": "mail bob@example.com now", "list": ["AKIAZ7QWERTYUIOP1234"]});
        let done = redactor(&[], &[SecretKind::Email, SecretKind::AwsAccessKey]).redact(&mut doc);
        let note = doc["note"].as_str().unwrap();
        assert!(
            note.starts_with("mail [REDACTED:email:") && note.ends_with("] now"),
            "{note}"
        );
        assert!(doc["list"][0]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED:aws_access_key:"));
        assert_eq!(
            done,
            vec![
                Redaction {
                    pointer: "/list/0".into(),
                    kind: "aws_access_key".into()
                },
                Redaction {
                    pointer: "/note".into(),
                    kind: "email".into()
                },
            ]
        );
        assert!(!doc.to_string().contains("bob@example.com"));
    }

    #[test]
    fn credential_members_are_redacted_as_password() {
        let mut doc = json!({"db": {"password": "hunter2-but-longer", "user": "app"}});
        let done = redactor(&[], &[SecretKind::Password]).redact(&mut doc);
        assert_eq!(done[0].pointer, "/db/password");
        assert!(doc["db"]["password"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED:password:"));
        assert_eq!(doc["db"]["user"], "app");
    }

    #[test]
    fn same_value_same_marker_different_key_different_marker() {
        let a = redactor(&[], &[]).marker("email", b"x@y.z");
        let b = redactor(&[], &[]).marker("email", b"x@y.z");
        let c = Redactor::new(RedactorConfig {
            key: b"other".to_vec(),
            ..RedactorConfig::default()
        })
        .unwrap()
        .marker("email", b"x@y.z");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn empty_key_and_bad_pointer_are_refused() {
        assert!(Redactor::new(RedactorConfig::default()).is_err());
        assert!(Redactor::new(RedactorConfig {
            pointers: vec!["parameters".into()],
            key: b"k".to_vec(),
            ..RedactorConfig::default()
        })
        .is_err());
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let cfg = RedactorConfig {
            key: b"sekrit".to_vec(),
            ..RedactorConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("sekrit"));
    }
}
