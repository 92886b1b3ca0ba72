//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! Ledger entries are hashed over these bytes, so the encoding must be byte-exact:
//! object members sorted by UTF-16 code units, no whitespace, strings escaped as
//! ECMAScript's `JSON.stringify` does, numbers printed as ECMAScript prints doubles.
//! This module owns only the encoding; what goes into an entry lives in `entry`.

use serde::Serialize;
use serde_json::Value;

/// Why a value cannot be canonicalized.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    #[error("value is not representable as JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("number {0} is outside the I-JSON range (integers within ±(2^53 - 1))")]
    NumberOutOfRange(String),
}

/// Largest integer a double holds exactly; JCS (via I-JSON) forbids larger ones.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Canonical bytes of any serializable value.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value)?;
    value_to_vec(&value)
}

/// Canonical bytes of a JSON value.
pub fn value_to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

/// Checks that every number in `value` survives canonicalization unchanged in meaning
/// (integers within ±(2^53 - 1)). Used at the edge so bad input is refused, not rounded.
pub fn check_numbers(value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Number(n) => write_number(n, &mut Vec::new()),
        Value::Array(items) => items.iter().try_for_each(check_numbers),
        Value::Object(map) => map.values().try_for_each(check_numbers),
        _ => Ok(()),
    }
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            if in_utf16_order(map) {
                // The common case: serde_json's map already iterates in the right order.
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_string(key, out);
                    out.push(b':');
                    write_value(item, out)?;
                }
                out.push(b'}');
                return Ok(());
            }
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // RFC 8785 §3.2.3: sort by UTF-16 code units, not by UTF-8 bytes.
            members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Whether iterating `map` already yields RFC 8785 order. UTF-8 byte order is code
/// point order, which equals UTF-16 code-unit order unless a key holds a character
/// at or above U+E000 (UTF-8 lead byte 0xEE or higher: the private-use and specials
/// blocks, and everything that UTF-16 writes as surrogates). Checked, not assumed, so a
/// map type that keeps insertion order still comes out sorted.
fn in_utf16_order(map: &serde_json::Map<String, Value>) -> bool {
    let mut previous: Option<&[u8]> = None;
    for key in map.keys() {
        let key = key.as_bytes();
        if key.iter().any(|&b| b >= 0xEE) || previous.is_some_and(|p| p >= key) {
            return false;
        }
        previous = Some(key);
    }
    true
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(CanonicalError::NumberOutOfRange(n.to_string()));
        }
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
        return Ok(());
    }
    if n.as_u64().is_some() {
        return Err(CanonicalError::NumberOutOfRange(n.to_string()));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() => {
            if f == 0.0 {
                // ECMAScript prints -0 as "0".
                out.push(b'0');
            } else {
                out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
            }
            Ok(())
        }
        _ => Err(CanonicalError::NumberOutOfRange(n.to_string())),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x09 => Some(b"\\t"),
            0x0A => Some(b"\\n"),
            0x0C => Some(b"\\f"),
            0x0D => Some(b"\\r"),
            0x00..=0x1F => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: Value) -> String {
        String::from_utf8(value_to_vec(&v).expect("canonical")).expect("utf8")
    }

    #[test]
    fn byte_order_shortcut_agrees_with_utf16_order_at_the_boundaries() {
        // Around U+E000 byte order and UTF-16 order part ways: U+10000 and above are
        // surrogate pairs (0xD800..) in UTF-16, so they sort before U+E000..U+FFFF there
        // but after them in UTF-8.
        let keys = [
            "z",
            "\u{7f}",
            "\u{d7ff}",
            "\u{e000}",
            "\u{ffff}",
            "\u{10000}",
            "\u{10ffff}",
        ];
        let map: serde_json::Map<String, Value> =
            keys.iter().map(|k| (k.to_string(), json!(0))).collect();
        let mut expected: Vec<&str> = keys.to_vec();
        expected.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        let body: Vec<String> = expected.iter().map(|k| format!("\"{k}\":0")).collect();
        assert_eq!(canon(Value::Object(map)), format!("{{{}}}", body.join(",")));
        // Without such characters the map's own order is used as is.
        let plain: serde_json::Map<String, Value> = ["b", "a", "\u{20ac}", "\u{d7ff}"]
            .iter()
            .map(|k| (k.to_string(), json!(1)))
            .collect();
        assert!(in_utf16_order(&plain));
        assert_eq!(
            canon(Value::Object(plain)),
            "{\"a\":1,\"b\":1,\"\u{20ac}\":1,\"\u{d7ff}\":1}"
        );
    }

    #[test]
    fn sorts_members_by_utf16_code_units() {
        // RFC 8785 §3.2.3 example ordering: "\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33".
        let v = json!({"\u{20ac}": 1, "\r": 2, "\u{fb33}": 3, "1": 4, "\u{1f600}": 5, "\u{80}": 6, "\u{f6}": 7});
        let keys: Vec<String> = match serde_json::from_str::<Value>(&canon(v)).expect("json") {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => unreachable!(),
        };
        // serde_json's map re-sorts by bytes, so check the raw output order instead.
        let raw = canon(
            json!({"\u{20ac}": 1, "\r": 2, "\u{fb33}": 3, "1": 4, "\u{1f600}": 5, "\u{80}": 6, "\u{f6}": 7}),
        );
        assert_eq!(
            raw,
            "{\"\\r\":2,\"1\":4,\"\u{80}\":6,\"\u{f6}\":7,\"\u{20ac}\":1,\"\u{1f600}\":5,\"\u{fb33}\":3}"
        );
        assert_eq!(keys.len(), 7);
    }

    #[test]
    fn numbers_print_as_ecmascript() {
        // Values from RFC 8785 appendix B.
        assert_eq!(canon(json!(0.0)), "0");
        assert_eq!(canon(json!(-0.0)), "0");
        assert_eq!(canon(json!(1e21)), "1e+21");
        assert_eq!(canon(json!(1e-7)), "1e-7");
        assert_eq!(canon(json!(333333333.3333333)), "333333333.3333333");
        assert_eq!(canon(json!(9007199254740991_i64)), "9007199254740991");
        assert_eq!(canon(json!(0.95)), "0.95");
        assert_eq!(canon(json!(1.0)), "1");
    }

    #[test]
    fn integers_beyond_2_pow_53_are_refused() {
        assert!(value_to_vec(&json!(9007199254740993_u64)).is_err());
        assert!(check_numbers(&json!({"a": [1, 2, u64::MAX]})).is_err());
        assert!(check_numbers(&json!({"a": [1, 2.5, -3]})).is_ok());
    }

    #[test]
    fn strings_escape_like_json_stringify() {
        assert_eq!(
            canon(json!("a\"b\\c\n\u{1}\u{7f}é")),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}é\""
        );
        assert_eq!(
            canon(json!("\u{8}\t\u{c}\r\u{1f}")),
            "\"\\b\\t\\f\\r\\u001f\""
        );
    }

    #[test]
    fn rfc8785_example_object() {
        let v: Value = serde_json::from_str(
            r#"{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],
                "string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
                "literals":[null,true,false]}"#,
        )
        .expect("json");
        assert_eq!(
            canon(v),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }
}
