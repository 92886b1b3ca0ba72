//! The manifest an agent submits, parsed at the edge into a value known to be good.
//!
//! Parsing is strict — unknown top-level fields, wrong types and out-of-range values are
//! refused with the JSON pointer of the offending field — because a manifest that
//! is "mostly right" must never reach the policy. Limits here bound what one request
//! can cost; body size and nesting are checked before parsing, in `limits`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical;

/// A validated manifest. Construct with [`Manifest::from_value`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_id: Option<String>,
    pub agent_id: String,
    pub org_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub provider: String,
    pub method: String,
    pub parameters: Map<String, Value>,
    pub reasoning: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// A field that failed validation, and why. `field` is a JSON pointer into the request body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Longest identifier (agent_id, org_id, user_id, manifest_id, environment).
pub const MAX_ID_LEN: usize = 256;
/// Longest provider or method name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest free-text reasoning, in bytes.
pub const MAX_REASONING_LEN: usize = 16 * 1024;
/// Largest canonical size of `parameters`, in bytes.
pub const MAX_PARAMETERS_LEN: usize = 32 * 1024;

const KNOWN_FIELDS: &[&str] = &[
    "manifest_id",
    "agent_id",
    "org_id",
    "user_id",
    "provider",
    "method",
    "parameters",
    "reasoning",
    "confidence_score",
    "environment",
];

impl Manifest {
    /// Parses the `manifest` member of a request body. `base` is the pointer of the
    /// manifest within the body (e.g. "/manifest"), used in error messages.
    pub fn from_value(value: &Value, base: &str) -> Result<Manifest, FieldError> {
        let Value::Object(obj) = value else {
            return Err(FieldError::new(
                base,
                format!("expected an object, found {}", kind(value)),
            ));
        };
        if let Some(unknown) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                format!("{base}/{}", escape_pointer(unknown)),
                "unknown field (action details belong in parameters)",
            ));
        }
        let at = |name: &str| format!("{base}/{name}");
        let parameters = match obj.get("parameters") {
            None => return Err(FieldError::new(at("parameters"), "missing required field")),
            Some(Value::Object(p)) => p.clone(),
            Some(other) => {
                return Err(FieldError::new(
                    at("parameters"),
                    format!("expected an object, found {}", kind(other)),
                ))
            }
        };
        let parameters_value = Value::Object(parameters);
        canonical::check_numbers(&parameters_value)
            .map_err(|e| FieldError::new(at("parameters"), e.to_string()))?;
        let size = canonical::value_to_vec(&parameters_value)
            .map_err(|e| FieldError::new(at("parameters"), e.to_string()))?
            .len();
        if size > MAX_PARAMETERS_LEN {
            return Err(FieldError::new(
                at("parameters"),
                format!("{size} bytes exceeds the limit of {MAX_PARAMETERS_LEN}"),
            ));
        }
        let Value::Object(parameters) = parameters_value else {
            unreachable!("built as object above")
        };

        let confidence_score = match obj.get("confidence_score") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if (0.0..=1.0).contains(&f) => Some(f),
                _ => {
                    return Err(FieldError::new(
                        at("confidence_score"),
                        "must be a number from 0 to 1",
                    ))
                }
            },
            Some(other) => {
                return Err(FieldError::new(
                    at("confidence_score"),
                    format!("expected a number from 0 to 1, found {}", kind(other)),
                ))
            }
        };

        Ok(Manifest {
            manifest_id: optional_text(obj, base, "manifest_id", MAX_ID_LEN)?,
            agent_id: required_text(obj, base, "agent_id", MAX_ID_LEN)?,
            org_id: required_text(obj, base, "org_id", MAX_ID_LEN)?,
            user_id: optional_text(obj, base, "user_id", MAX_ID_LEN)?,
            provider: name(obj, base, "provider")?,
            method: name(obj, base, "method")?,
            parameters,
            reasoning: optional_free_text(obj, base, "reasoning", MAX_REASONING_LEN)?
                .unwrap_or_default(),
            confidence_score,
            environment: optional_text(obj, base, "environment", MAX_ID_LEN)?,
        })
    }

    /// The manifest as a JSON value, exactly as it is recorded in the ledger.
    pub fn to_value(&self) -> Value {
        // Serializing a struct of strings, maps and finite floats cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// SHA-256 of the manifest's canonical bytes: what a seal binds.
    pub fn canonical_hash(&self) -> Result<[u8; 32], canonical::CanonicalError> {
        use sha2::{Digest, Sha256};
        Ok(Sha256::digest(canonical::to_vec(self)?).into())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Escapes a member name for use in a JSON pointer (RFC 6901).
pub fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn text<'a>(
    obj: &'a Map<String, Value>,
    base: &str,
    name: &str,
) -> Result<Option<&'a str>, FieldError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(FieldError::new(
            format!("{base}/{name}"),
            format!("expected a string, found {}", kind(other)),
        )),
    }
}

fn check_id(s: &str, base: &str, name: &str, max: usize) -> Result<String, FieldError> {
    let field = || format!("{base}/{name}");
    if s.trim().is_empty() {
        return Err(FieldError::new(field(), "must not be empty"));
    }
    if s.len() > max {
        return Err(FieldError::new(field(), format!("longer than {max} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(
            field(),
            "must not contain control characters",
        ));
    }
    Ok(s.to_owned())
}

fn required_text(
    obj: &Map<String, Value>,
    base: &str,
    name: &str,
    max: usize,
) -> Result<String, FieldError> {
    match text(obj, base, name)? {
        Some(s) => check_id(s, base, name, max),
        None => Err(FieldError::new(
            format!("{base}/{name}"),
            "missing required field",
        )),
    }
}

fn optional_text(
    obj: &Map<String, Value>,
    base: &str,
    name: &str,
    max: usize,
) -> Result<Option<String>, FieldError> {
    text(obj, base, name)?
        .map(|s| check_id(s, base, name, max))
        .transpose()
}

fn optional_free_text(
    obj: &Map<String, Value>,
    base: &str,
    name: &str,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match text(obj, base, name)? {
        Some(s) if s.len() > max => Err(FieldError::new(
            format!("{base}/{name}"),
            format!("longer than {max} bytes"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// provider and method: short names of letters, digits and `_ . : / -`.
fn name(obj: &Map<String, Value>, base: &str, field: &str) -> Result<String, FieldError> {
    let s = required_text(obj, base, field, MAX_NAME_LEN)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
    {
        return Err(FieldError::new(
            format!("{base}/{field}"),
            "may contain only letters, digits and _ . : / -",
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payment() -> Value {
        json!({
            "agent_id": "agent-7", "org_id": "acme", "user_id": "u-1",
            "provider": "stripe", "method": "payment",
            "parameters": {"amount": 1000, "currency": "usd"},
            "reasoning": "monthly invoice", "confidence_score": 0.92, "environment": "production"
        })
    }

    #[test]
    fn parses_a_complete_manifest() {
        let m = Manifest::from_value(&payment(), "/manifest").expect("valid");
        assert_eq!(m.method, "payment");
        assert_eq!(m.parameters["amount"], json!(1000));
        assert_eq!(m.confidence_score, Some(0.92));
        assert_eq!(
            Manifest::from_value(&m.to_value(), "/manifest").expect("roundtrip"),
            m
        );
    }

    #[test]
    fn unknown_top_level_field_is_named() {
        let mut v = payment();
        v["amount"] = json!(1000);
        let err = Manifest::from_value(&v, "/manifest").expect_err("unknown field");
        assert_eq!(err.field, "/manifest/amount");
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        for (field, bad) in [
            ("agent_id", Value::Null),
            ("agent_id", json!(7)),
            ("org_id", json!("")),
            ("method", json!("pay ment")),
            ("parameters", json!([1])),
            ("confidence_score", json!(1.5)),
            ("confidence_score", json!("high")),
            ("reasoning", json!({"x": 1})),
        ] {
            let mut v = payment();
            v[field] = bad.clone();
            let err = Manifest::from_value(&v, "/manifest").expect_err("invalid");
            assert_eq!(err.field, format!("/manifest/{field}"), "{field} = {bad}");
        }
        let mut v = payment();
        v.as_object_mut().expect("object").remove("parameters");
        assert_eq!(
            Manifest::from_value(&v, "/manifest")
                .expect_err("missing")
                .problem,
            "missing required field"
        );
    }

    #[test]
    fn huge_integers_are_refused_not_rounded() {
        let mut v = payment();
        v["parameters"]["amount"] = json!(u64::MAX);
        assert_eq!(
            Manifest::from_value(&v, "/manifest")
                .expect_err("range")
                .field,
            "/manifest/parameters"
        );
    }

    #[test]
    fn canonical_hash_ignores_member_order() {
        let a = Manifest::from_value(&payment(), "/m").expect("valid");
        let b: Value = serde_json::from_str(
            r#"{"environment":"production","confidence_score":0.92,"reasoning":"monthly invoice",
                "parameters":{"currency":"usd","amount":1000},"method":"payment","provider":"stripe",
                "user_id":"u-1","org_id":"acme","agent_id":"agent-7"}"#,
        )
        .expect("json");
        let b = Manifest::from_value(&b, "/m").expect("valid");
        assert_eq!(
            a.canonical_hash().expect("hash"),
            b.canonical_hash().expect("hash")
        );
    }
}
