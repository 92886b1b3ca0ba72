//! The HTTP surface. Handlers are thin: authenticate, extract, call one service
//! function, wrap the result. Status codes are decided in `error` alone.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use sealgate_core::Role;
use serde_json::json;

use crate::encoding;
use crate::error::ApiError;
use crate::extract::{json_body, no_query, optional_json_body};
use crate::middleware;
use crate::service::{approvals, audit, decide, keys, ledger, policies, seals};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/manifest/validate", post(validate))
        .route("/v1/seals/verify", post(verify_seal))
        .route("/v1/seals/{seal_id}/redeem", post(redeem_seal))
        .route("/v1/audit/query", get(audit_query))
        .route("/v1/ledger/checkpoint", get(checkpoint))
        .route("/v1/ledger/key", get(ledger_key))
        .route("/v1/ledger/entries/{index}", get(ledger_entry))
        .route("/v1/ledger/proof/inclusion", get(inclusion_proof))
        .route("/v1/ledger/proof/consistency", get(consistency_proof))
        .route("/v1/ledger/tlog/checkpoint", get(checkpoint))
        .route("/v1/ledger/tlog/{*path}", get(tlog_tile))
        .route("/v1/policies", get(list_policies).post(upload_policy))
        .route("/v1/policies/{version}", get(get_policy))
        .route("/v1/policies/{version}/activate", post(activate_policy))
        .route("/v1/decisions/{decision_id}", get(decision_state))
        .route("/v1/approvals", get(approval_queue))
        .route("/v1/approvals/{decision_id}/approve", post(approve))
        .route("/v1/approvals/{decision_id}/deny", post(deny))
        .route("/v1/keys", post(create_key))
        .route("/v1/keys/{id}", delete(revoke_key))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::limit_by_address,
        ))
        .layer(axum::middleware::from_fn(middleware::correlation))
        .with_state(state)
}

type ApiResult = Result<Response, ApiError>;

async fn validate(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    let started = Instant::now();
    let caller = s.require(&headers, Role::Agent).await?;
    no_query(q.as_deref())?;
    let body = json_body(&headers, body, s.settings.request_timeout).await?;
    Ok(Json(decide::decide(&s, &caller, body, started).await?).into_response())
}

async fn verify_seal(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    s.require(&headers, Role::Executor).await?;
    no_query(q.as_deref())?;
    let body = json_body(&headers, body, s.settings.request_timeout).await?;
    Ok(Json(seals::verify(&s, body).await?).into_response())
}

async fn redeem_seal(
    State(s): State<AppState>,
    Path(seal_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    let caller = s.require(&headers, Role::Executor).await?;
    no_query(q.as_deref())?;
    let body = json_body(&headers, body, s.settings.request_timeout).await?;
    Ok(Json(seals::redeem(&s, &caller, &seal_id, body).await?).into_response())
}

async fn audit_query(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Auditor).await?;
    let q = audit::parse_query(q.as_deref())?;
    Ok(Json(audit::query(&s, q).await?).into_response())
}

async fn checkpoint(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Auditor).await?;
    no_query(q.as_deref())?;
    let note = ledger::latest_checkpoint(&s).await?;
    Ok((
        [
            (http::header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            // tlog-tiles: a checkpoint's headers SHOULD prevent caching beyond a few seconds.
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response())
}

async fn ledger_key(State(s): State<AppState>, RawQuery(q): RawQuery) -> ApiResult {
    no_query(q.as_deref())?;
    Ok((
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", s.log_signer.verifier()),
    )
        .into_response())
}

async fn ledger_entry(
    State(s): State<AppState>,
    Path(index): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Auditor).await?;
    no_query(q.as_deref())?;
    Ok(Json(ledger::entry(&s, &index).await?).into_response())
}

async fn inclusion_proof(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Auditor).await?;
    Ok(Json(ledger::inclusion(&s, q.as_deref()).await?).into_response())
}

async fn consistency_proof(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Auditor).await?;
    Ok(Json(ledger::consistency(&s, q.as_deref()).await?).into_response())
}

async fn tlog_tile(
    State(s): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Auditor).await?;
    no_query(q.as_deref())?;
    let bytes = ledger::tile(&s, &path).await?;
    // Entry bundles are JSON and compress well; hash tiles are hashes and do not.
    let bundle = path.starts_with("tile/entries/");
    let gzip = bundle && encoding::accepts_gzip(&headers);
    let body = if gzip {
        let failed = |e: &dyn std::fmt::Display| ApiError::Internal(format!("gzip of {path}: {e}"));
        tokio::task::spawn_blocking(move || encoding::gzip(&bytes))
            .await
            .map_err(|e| failed(&e))?
            .map_err(|e| failed(&e))?
    } else {
        bytes
    };
    let mut response = (
        [
            (http::header::CONTENT_TYPE, "application/octet-stream"),
            // A tile or bundle, full or partial, never changes once served (tlog-tiles:
            // long-lived caching); private, since reading it takes an auditor's token.
            (
                http::header::CACHE_CONTROL,
                "private, max-age=31536000, immutable",
            ),
        ],
        body,
    )
        .into_response();
    let h = response.headers_mut();
    if bundle {
        // A cache keeps the coded and the plain bundle apart.
        h.insert(
            http::header::VARY,
            http::HeaderValue::from_static("accept-encoding"),
        );
    }
    if gzip {
        h.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
    }
    Ok(response)
}

async fn decision_state(
    State(s): State<AppState>,
    Path(decision_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let caller = s.require(&headers, Role::Agent).await?;
    let wait = approvals::parse_wait(q.as_deref())?;
    Ok(Json(approvals::for_agent(&s, &caller, &decision_id, wait).await?).into_response())
}

async fn approval_queue(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Approver).await?;
    Ok(Json(approvals::queue(&s, q.as_deref()).await?).into_response())
}

async fn approve(
    State(s): State<AppState>,
    Path(decision_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    resolve(s, decision_id, headers, q, body, true).await
}

async fn deny(
    State(s): State<AppState>,
    Path(decision_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    resolve(s, decision_id, headers, q, body, false).await
}

async fn resolve(
    s: AppState,
    decision_id: String,
    headers: HeaderMap,
    q: Option<String>,
    body: Body,
    approve: bool,
) -> ApiResult {
    let caller = s.require(&headers, Role::Approver).await?;
    no_query(q.as_deref())?;
    let body = optional_json_body(&headers, body, s.settings.request_timeout).await?;
    Ok(Json(approvals::resolve(&s, &caller, &decision_id, approve, body).await?).into_response())
}

async fn list_policies(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Admin).await?;
    no_query(q.as_deref())?;
    Ok(Json(policies::list(&s).await?).into_response())
}

async fn upload_policy(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    let caller = s.require(&headers, Role::Admin).await?;
    no_query(q.as_deref())?;
    let body = json_body(&headers, body, s.settings.request_timeout).await?;
    let uploaded = policies::upload(&s, &caller, body).await?;
    let status = if uploaded.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(uploaded)).into_response())
}

async fn get_policy(
    State(s): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    s.require(&headers, Role::Admin).await?;
    no_query(q.as_deref())?;
    Ok(Json(policies::get(&s, &version).await?).into_response())
}

async fn activate_policy(
    State(s): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let caller = s.require(&headers, Role::Admin).await?;
    no_query(q.as_deref())?;
    Ok(Json(policies::activate(&s, &caller.id, &version).await?).into_response())
}

async fn create_key(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult {
    let caller = s.require(&headers, Role::Admin).await?;
    no_query(q.as_deref())?;
    let body = json_body(&headers, body, s.settings.request_timeout).await?;
    Ok((
        StatusCode::CREATED,
        Json(keys::create(&s, &caller, body).await?),
    )
        .into_response())
}

async fn revoke_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let caller = s.require(&headers, Role::Admin).await?;
    no_query(q.as_deref())?;
    keys::revoke(&s, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn jwks(State(s): State<AppState>, RawQuery(q): RawQuery) -> ApiResult {
    no_query(q.as_deref())?;
    Ok(Json(s.jwks.clone()).into_response())
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready when the store answers. Shows the circuit breaker around a shared store
/// (`closed`, `open`, `half_open`; null for SQLite) and whether this replica leads
/// the log. An open breaker is not ready, without asking the store.
async fn readyz(State(s): State<AppState>) -> ApiResult {
    let breaker = s.breaker_state();
    let leader = s.is_leading();
    let unavailable = |breaker: Option<crate::breaker::BreakerState>| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "breaker": breaker.map(|b| b.as_str()), "leader": leader})),
        )
            .into_response()
    };
    if breaker == Some(crate::breaker::BreakerState::Open) {
        return Ok(unavailable(breaker));
    }
    match s.store.tree_size().await {
        Ok(tree_size) => Ok(Json(json!({
            "status": "ready",
            "tree_size": tree_size,
            "policy_active": s.active_policy().is_some(),
            "breaker": s.breaker_state().map(|b| b.as_str()),
            "leader": leader,
        }))
        .into_response()),
        Err(sealgate_store::StoreError::Unavailable(_)) => Ok(unavailable(s.breaker_state())),
        Err(e) => Err(e.into()),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let size = s.store.tree_size().await.ok();
    let latest = s.store.latest_checkpoint().await.ok();
    let ledger = crate::metrics::LedgerGauges {
        size,
        unanchored: size.zip(latest.as_ref()).map(|(n, cp)| match cp {
            Some(cp) => n.saturating_sub(cp.tree_size),
            None => n,
        }),
        checkpoint_age_secs: latest.flatten().and_then(|cp| {
            let signed = sealgate_core::timefmt::parse(&cp.created_at).ok()?;
            Some(((s.now() - signed).as_seconds_f64()).max(0.0))
        }),
    };
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        {
            let mut text = s.metrics.render(&ledger);
            s.limits.render(&mut text);
            text
        },
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// (method, path) of every route this file registers, read from its source.
    fn routes() -> BTreeSet<(String, String)> {
        let source = include_str!("routes.rs");
        let mut found = BTreeSet::new();
        for line in source.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix(".route(\"") else {
                continue;
            };
            let Some((path, handlers)) = rest.split_once("\", ") else {
                continue;
            };
            for method in ["get", "post", "delete", "put", "patch"] {
                if handlers.starts_with(&format!("{method}("))
                    || handlers.contains(&format!(".{method}("))
                {
                    found.insert((method.to_owned(), path.to_owned()));
                }
            }
        }
        found
    }

    /// (method, path) of every operation in docs/openapi.yaml, read from its layout
    /// (paths at two spaces, methods at four).
    fn documented() -> BTreeSet<(String, String)> {
        let spec = include_str!("../../../docs/openapi.yaml");
        let mut found = BTreeSet::new();
        let mut path = None;
        for line in spec.lines() {
            if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
                path = Some(format!("/{p}"));
            } else if !line.starts_with("  ") && !line.is_empty() {
                path = None;
            } else if let (Some(p), Some(m)) = (
                &path,
                line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')),
            ) {
                if ["get", "post", "delete", "put", "patch"].contains(&m) {
                    found.insert((m.to_owned(), p.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_route_is_in_the_openapi_document_and_nothing_else_is() {
        let routes = routes();
        let documented = documented();
        assert!(
            routes.len() >= 25,
            "routes not found in the source: {routes:?}"
        );
        // The tiles are one catch-all route; the document lists each tile shape under it.
        let tiles = ("get".to_owned(), "/v1/ledger/tlog/{*path}".to_owned());
        assert!(routes.contains(&tiles), "{routes:?}");
        let under_tiles =
            |(m, p): &(String, String)| m == "get" && p.starts_with("/v1/ledger/tlog/tile/");
        for route in routes.iter().filter(|r| **r != tiles) {
            assert!(
                documented.contains(route),
                "{route:?} is not in docs/openapi.yaml"
            );
        }
        assert!(
            documented.iter().any(under_tiles),
            "no tile operations documented"
        );
        for op in documented.iter().filter(|d| !under_tiles(d)) {
            assert!(
                routes.contains(op),
                "docs/openapi.yaml lists {op:?}, which no route serves"
            );
        }
    }
}
