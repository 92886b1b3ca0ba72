//! `ApiError`: the one place that maps failures to HTTP statuses, rendered as RFC 9457
//! problem+json. The correlation id is added by the `correlation` middleware, which
//! finds the `Problem` this module leaves in the response's extensions.
//!
//! A 5xx body says little ("the ledger is unavailable"); the log says the rest.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sealgate_store::StoreError;
use serde_json::{json, Value};

/// Everything a handler can fail with, named for what the client should do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    #[error("this route needs the {required} role")]
    Forbidden { required: &'static str },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {} s", deadline.as_secs_f64())]
    RequestTimeout { deadline: std::time::Duration },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// Over a rate limit: come back after `retry_after`.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after: std::time::Duration,
    },
    /// The store or another dependency cannot serve now; fail closed.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt state. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// What the server's own log (or its refusal to start) may say: an internal
    /// error's detail, scrubbed, which a response never carries.
    pub fn for_log(&self) -> String {
        match self {
            ApiError::Internal(detail) => crate::scrub::scrub(detail),
            other => other.to_string(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            // The backend's text names tables, keys and values: it stays in the log.
            StoreError::Conflict(detail) => {
                tracing::warn!(error = %crate::scrub::scrub(&detail), "store conflict");
                ApiError::Conflict(
                    "the write conflicts with what the ledger already holds; nothing was recorded"
                        .into(),
                )
            }
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %crate::scrub::scrub(&detail), "store unavailable");
                ApiError::Unavailable("the ledger is unavailable; nothing was recorded".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// What the correlation middleware needs to finish the body.
#[derive(Clone, Debug)]
pub struct Problem(pub Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %crate::scrub::scrub(detail), "internal error");
                "an internal error occurred; see the server log for this correlation id".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        if let ApiError::BadRequest {
            field: Some(field), ..
        } = &self
        {
            body["field"] = json!(field);
        }
        let mut response = (
            status,
            [(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body was never read, so this connection cannot carry another request.
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            // Whole seconds, rounded up: a client that waits that long gets through.
            let secs = retry_after.as_micros().div_ceil(1_000_000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        response.extensions_mut().insert(Problem(body));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problem body the correlation middleware would finish.
    fn problem(e: ApiError) -> (StatusCode, Value) {
        let response = e.into_response();
        let status = response.status();
        let body = response
            .extensions()
            .get::<Problem>()
            .map(|p| p.0.clone())
            .unwrap_or(Value::Null);
        (status, body)
    }

    #[test]
    fn a_store_conflict_keeps_the_backend_text_out_of_the_body() {
        let backend = "duplicate key value violates unique constraint \"seals_pkey\" \
                       DETAIL: Key (seal_id)=(s-123) already exists. (SQLSTATE 23505)";
        let (status, body) = problem(StoreError::Conflict(backend.into()).into());
        assert_eq!(status, StatusCode::CONFLICT);
        let text = body.to_string();
        assert!(text.contains("nothing was recorded"), "{text}");
        for leak in ["seals_pkey", "s-123", "23505", "DETAIL"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }

    #[test]
    fn internal_and_unavailable_details_stay_in_the_log() {
        let (status, body) = problem(ApiError::Internal("token=abc at /secret/path".into()));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("abc"), "{body}");
        let (status, body) = problem(StoreError::Unavailable("password=hunter2".into()).into());
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }
}
