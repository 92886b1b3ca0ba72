//! Cheap checks on raw request bytes, run before any JSON parser sees them, so a
//! hostile body costs a single linear scan and nothing recursive.

/// Deepest nesting of arrays and objects accepted in a request body.
pub const MAX_JSON_DEPTH: usize = 32;

/// Returns the nesting depth of the JSON text `bytes`, stopping early (with
/// `Err(depth)`) as soon as it exceeds `max`. Brackets inside strings do not count.
/// Malformed JSON is not this function's concern: the parser reports it afterwards.
pub fn check_depth(bytes: &[u8], max: usize) -> Result<usize, usize> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(depth);
                }
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(deepest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nesting_outside_strings() {
        assert_eq!(check_depth(br#"{"a":[1,{"b":"[[[{{"}]}"#, 32), Ok(3));
        assert_eq!(check_depth(br#"{"a":"\"[["}"#, 32), Ok(1));
        assert_eq!(check_depth(b"1", 32), Ok(0));
    }

    #[test]
    fn stops_at_the_limit() {
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(
            check_depth(deep.as_bytes(), MAX_JSON_DEPTH),
            Err(MAX_JSON_DEPTH + 1)
        );
    }
}
