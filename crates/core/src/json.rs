//! Reading untrusted JSON without changing it on the way in. serde_json keeps the last
//! of two members with the same name and rounds a number to the nearest 64-bit float
//! when it is not an integer that fits 64 bits; either way sealgate would decide on,
//! record and seal something other than what the client sent (and other parsers in
//! front of it might read the first member). [`parse`] refuses both.

use std::fmt;

use serde::de::{self, DeserializeSeed, Visitor};
use serde_json::{Map, Number, Value};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// A number a float cannot hold as written: its text (cut to 40 characters) and
    /// the byte offset where it starts.
    Inexact { number: String, offset: usize },
    /// Not JSON, or a member named twice in one object; serde_json's message, with
    /// the position.
    Malformed(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Inexact { number, offset } => write!(
                f,
                "the number {number} (at byte {offset}) cannot be kept as written: JSON numbers \
                 here are 64-bit floats, which hold integers up to ±(2^53−1) and about 17 \
                 significant digits; send fewer digits, or the value as a string"
            ),
            JsonError::Malformed(why) => write!(f, "malformed JSON: {why}"),
        }
    }
}

/// Parses `bytes` as JSON, refusing a member named twice in one object and any number
/// whose value the parse would change. A number is kept when it is an integer that
/// fits 64 bits (serde_json keeps those exactly) or when its digits are those of the
/// nearest 64-bit float, written shortest (`0.1`, `19.99`, `1.5e3`, `1e16`).
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    if let Some((offset, number)) = first_inexact_number(bytes) {
        let mut number = number.to_owned();
        if number.len() > 40 {
            number.truncate(40);
            number.push('…');
        }
        return Err(JsonError::Inexact { number, offset });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| JsonError::Malformed(e.to_string()))?;
    Ok(value)
}

/// The first number literal outside strings whose value a parse would change, and
/// where it starts. Malformed text is left to the parser, which names the error.
fn first_inexact_number(bytes: &[u8]) -> Option<(usize, &str)> {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                // Only ASCII was taken: the slice is a str.
                let literal = std::str::from_utf8(&bytes[start..i]).ok()?;
                if !kept_exactly(literal) {
                    return Some((start, literal));
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Whether serde_json reads `literal` as the number it writes. Text that is not a
/// number counts as kept: the parser refuses it with a better message.
fn kept_exactly(literal: &str) -> bool {
    let integer = !literal.contains(['.', 'e', 'E']);
    if integer && (literal.parse::<u64>().is_ok() || literal.parse::<i64>().is_ok()) {
        return true;
    }
    let Ok(x) = literal.parse::<f64>() else {
        return true;
    };
    // `{:e}` writes the shortest digits that read back as the same float.
    x.is_finite() && decimal(literal) == decimal(&format!("{x:e}"))
}

/// A decimal's value as (sign, significant digits, exponent of their last digit),
/// zero as (false, "", 0); `None` for an exponent beyond i64.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let mut exponent = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    exponent = exponent.checked_add(i64::try_from(digits.len() - significant.len()).ok()?)?;
    Some((negative, significant.to_owned(), exponent))
}

/// Builds a [`Value`] as serde_json does, refusing a member named twice.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                let mut shown: String = name.chars().take(64).collect();
                if shown.len() < name.len() {
                    shown.push('…');
                }
                return Err(de::Error::custom(format!(
                    "member {shown:?} is given twice in one object (I-JSON, RFC 7493, forbids it: \
                     parsers disagree on which one counts)"
                )));
            }
            let value = access.next_value_seed(Strict)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn what_serde_json_keeps_is_parsed_as_serde_json_parses_it() {
        for text in [
            r#"{"a": 1, "b": [true, null, "x\"y\\", -2, 0.1, 19.99, 1.5e3, 1e16, -0.0]}"#,
            r#"{"amount": 9007199254740993, "neg": -9223372036854775808, "big": 18446744073709551615}"#,
            r#"{"f": 0.30000000000000004, "tiny": 2.2250738585072014e-308, "e": 1E+2}"#,
            r#"{"s": "1.00000000000000000001 in a string is text", "n": 5000.0, "m": 1.50}"#,
            r#"[{"a": {"a": 1}}, {"a": 2}]"#,
            "\"just a string\"",
        ] {
            let expected: Value = serde_json::from_str(text).expect(text);
            assert_eq!(parse(text.as_bytes()), Ok(expected), "{text}");
        }
    }

    #[test]
    fn numbers_a_float_would_change_are_refused_where_they_are() {
        for (text, number) in [
            (r#"{"amount": 5000.0000000000001}"#, "5000.0000000000001"),
            (
                r#"{"amount": 4999.99999999999999999}"#,
                "4999.99999999999999999",
            ),
            (r#"{"amount": 9007199254740993.0}"#, "9007199254740993.0"),
            (
                r#"{"amount": 123456789012345678901234567890}"#,
                "123456789012345678901234567890",
            ),
            (
                r#"{"a": [1, {"b": -18446744073709551616}]}"#,
                "-18446744073709551616",
            ),
            (r#"{"underflow": 1e-400}"#, "1e-400"),
            (r#"{"overflow": 1e400}"#, "1e400"),
        ] {
            match parse(text.as_bytes()) {
                Err(JsonError::Inexact { number: n, offset }) => {
                    assert_eq!(n, number, "{text}");
                    assert_eq!(&text[offset..offset + number.len()], number, "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let long = format!("[0.{}1]", "0".repeat(400));
        match parse(long.as_bytes()) {
            Err(JsonError::Inexact { number, offset: 1 }) => {
                assert!(
                    number.ends_with('…') && number.chars().count() == 41,
                    "{number}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_member_named_twice_is_refused() {
        for text in [
            r#"{"amount": 999999, "amount": 1}"#,
            r#"{"m": {"x": 1, "y": 2, "x": 3}}"#,
            // The same name, escaped differently.
            r#"{"amount": 1, "\u0061mount": 2}"#,
        ] {
            match parse(text.as_bytes()) {
                Err(JsonError::Malformed(why)) => {
                    assert!(
                        why.contains("is given twice in one object"),
                        "{text}: {why}"
                    );
                    assert!(why.contains("line 1 column"), "{text}: {why}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // The same name in different objects is fine.
        assert_eq!(
            parse(br#"[{"a": 1}, {"a": 2}]"#),
            Ok(json!([{"a": 1}, {"a": 2}]))
        );
    }

    #[test]
    fn malformed_text_is_left_to_serde_json() {
        for text in [
            "{",
            "[1.]",
            "[01]",
            "[-]",
            "{\"a\": 1} x",
            "\"unterminated \\\"",
        ] {
            match parse(text.as_bytes()) {
                Err(JsonError::Malformed(_)) => {}
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn decimals_compare_by_value() {
        assert_eq!(decimal("1.50e2"), decimal("150"));
        assert_eq!(decimal("0.0015"), decimal("1.5e-3"));
        assert_eq!(decimal("-0.0"), decimal("0"));
        assert_ne!(decimal("-1"), decimal("1"));
        assert_eq!(decimal("1e99999999999999999999"), None);
    }
}
