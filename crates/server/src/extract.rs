//! Turning raw requests into typed input: the bearer token, a size- and depth-limited
//! JSON body, query strings with unknown parameters refused. Limits are checked on
//! bytes before any parser runs, so hostile input costs one linear scan.

use axum::body::Body;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use sealgate_core::limits::{check_depth, MAX_JSON_DEPTH};
use serde_json::Value;

use crate::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads a JSON object body: 415 for another content type, 413 past the size limit,
/// 408 when it is still arriving after `deadline` (so a slow client cannot hold a
/// request open), 400 naming the limit for deep nesting, 400 with the position for
/// malformed JSON, a member named twice or a number a float would change (see
/// [`sealgate_core::json`]: what is decided and recorded is what was sent). Only the body read has a deadline: store calls have bounds of their
/// own (pool and statement timeouts, the circuit breaker), and nothing cuts a request
/// short once its entry is on its way to the ledger.
pub async fn json_body(
    headers: &HeaderMap,
    body: Body,
    deadline: std::time::Duration,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    read_object(headers, body, deadline, false).await
}

/// As [`json_body`], but an empty body reads as `{}`: for requests whose every field
/// is optional, so `curl -X POST` without `-d` works.
pub async fn optional_json_body(
    headers: &HeaderMap,
    body: Body,
    deadline: std::time::Duration,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    read_object(headers, body, deadline, true).await
}

async fn read_object(
    headers: &HeaderMap,
    body: Body,
    deadline: std::time::Duration,
    empty_is_object: bool,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    if let Some(ct) = headers.get(http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(
                "content type must be application/json".into(),
            ));
        }
    }
    // A compressed body would be read as malformed JSON: say what is wrong instead.
    if let Some(coding) = headers.get(http::header::CONTENT_ENCODING) {
        let coding = coding.to_str().unwrap_or_default().trim();
        if !coding.eq_ignore_ascii_case("identity") {
            return Err(ApiError::UnsupportedMediaType(
                "request bodies are read uncompressed: send no Content-Encoding".into(),
            ));
        }
    }
    let read = tokio::time::timeout(deadline, Limited::new(body, MAX_BODY_BYTES).collect());
    let Ok(read) = read.await else {
        return Err(ApiError::RequestTimeout { deadline });
    };
    let bytes = match read {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            })
        }
        Err(e) => {
            return Err(ApiError::bad_request(
                "/",
                format!("could not read request body: {e}"),
            ))
        }
    };
    if empty_is_object && bytes.is_empty() {
        return Ok(serde_json::Map::new());
    }
    if let Err(depth) = check_depth(&bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::bad_request(
            "/",
            format!("JSON nesting depth {depth} exceeds the limit of {MAX_JSON_DEPTH}"),
        ));
    }
    match sealgate_core::json::parse(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "/",
            "request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request("/", e.to_string())),
    }
}

/// Refuses members of a request object other than `allowed`, naming the first one.
pub fn only_fields(obj: &serde_json::Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(
            format!("/{}", sealgate_core::manifest::escape_pointer(k)),
            format!("unknown field (expected {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A required string member.
pub fn string_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a str, ApiError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad_request(
            format!("/{name}"),
            "expected a string",
        )),
        None => Err(ApiError::bad_request(
            format!("/{name}"),
            "missing required field",
        )),
    }
}

/// A non-negative integer spelled as digits without a sign or leading zeros, so one
/// number has one spelling in a path or query.
pub fn decimal(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// Refuses any query parameter, for operations that take none.
pub fn no_query(query: Option<&str>) -> Result<(), ApiError> {
    query_params(query, &[]).map(|_| ())
}

/// Parses a query string into pairs, refusing parameters other than `allowed` and repeats.
pub fn query_params(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| ApiError::bad_request("query", format!("malformed query string: {e}")))?;
    for (i, (k, _)) in pairs.iter().enumerate() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                k.clone(),
                if allowed.is_empty() {
                    "unknown query parameter: this operation takes none".to_owned()
                } else {
                    format!("unknown query parameter (expected {})", allowed.join(", "))
                },
            ));
        }
        if pairs[..i].iter().any(|(p, _)| p == k) {
            return Err(ApiError::bad_request(
                k.clone(),
                "query parameter given more than once",
            ));
        }
    }
    Ok(pairs)
}

/// The bearer token of a request, if well formed. Two Authorization headers are none:
/// which one counts would depend on who reads them.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then(|| token.trim())
}
