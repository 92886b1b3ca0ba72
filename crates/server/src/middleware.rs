//! Request-wide concerns: the correlation id (accepted from `X-Correlation-ID` when
//! well formed, generated otherwise, echoed back and written into problem bodies)
//! and one log line per request that never includes headers or bodies.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use crate::error::Problem;
use crate::ratelimit::Scope;
use crate::state::AppState;

pub const CORRELATION_HEADER: &str = "x-correlation-id";

#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub async fn correlation(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let started = Instant::now();

    let mut response = next.run(req).await;

    let status = response.status();
    let problem = response.extensions_mut().remove::<Problem>();
    if let Some(Problem(mut body)) = problem {
        body["correlation_id"] = json!(id);
        *response.body_mut() = Body::from(serde_json::to_vec(&body).unwrap_or_default());
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
    } else if (status.is_client_error() || status.is_server_error()) && !is_json(&response) {
        // Rejections produced by axum itself (405, a path that does not parse):
        // give them the same problem+json shape as ours.
        let body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": default_detail(status),
            "correlation_id": id,
        });
        *response.body_mut() = Body::from(serde_json::to_vec(&body).unwrap_or_default());
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(CORRELATION_HEADER, v);
    }
    let micros = started.elapsed().as_micros() as u64;
    if status.is_server_error() {
        tracing::warn!(correlation_id = %id, %method, path, status = status.as_u16(), micros, "request failed");
    } else {
        tracing::debug!(correlation_id = %id, %method, path, status = status.as_u16(), micros, "request");
    }
    response
}

/// The per-address limit, before authentication, so guessing tokens counts too. Health
/// probes and metrics are not counted: the orchestrator and the scraper must always be
/// able to ask, also while the limit is refusing.
pub async fn limit_by_address(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.settings.rate_limit_per_ip.is_none()
        || matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics")
    {
        return next.run(req).await;
    }
    // Served without the peer's address (only in-process tests do that), all
    // requests share one bucket rather than go unlimited.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let ip = client_address(peer, req.headers(), &s.settings.trusted_proxies);
    let verdict = s.limits.check_ip(ip).await;
    match s.limit(Scope::Ip, verdict) {
        Ok(()) => next.run(req).await,
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy. Then it is the
/// nearest address in `X-Forwarded-For` (read from the right, as each proxy appends
/// the address it was reached from) that is not a trusted proxy itself. Anything
/// unreadable stops the walk at the last address known good, so a malformed header
/// shares a proxy's bucket rather than picking a bucket of its own.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d: compare them as IPv4.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Several headers are one list, in order (RFC 9110, section 5.3); each proxy
    // appends, so the walk goes from the right and stops at the first hop it cannot
    // read, whatever a client wrote further left.
    let hops = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|v| v.as_bytes().rsplit(|b| *b == b','));
    for hop in hops {
        let Some(ip) = std::str::from_utf8(hop).ok().and_then(hop_address) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// One X-Forwarded-For hop: an address, or an address with a port as some proxies
/// write it (`192.0.2.1:4711`, `[2001:db8::1]:4711`); IPv4-mapped IPv6 as IPv4.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

fn is_json(r: &Response) -> bool {
    r.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

fn default_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => "this route does not accept that method",
        StatusCode::BAD_REQUEST => "the request could not be parsed (check path parameters)",
        _ => "the request was refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().expect("net"),
            "2001:db8::/32".parse().expect("net"),
        ];
        let lb = ip("10.1.2.3");
        let cases: &[(IpAddr, &[&str], &str)] = &[
            // Not from a proxy: the header is anyone's to write.
            (ip("198.51.100.7"), &["203.0.113.9"], "198.51.100.7"),
            // From the load balancer: the nearest hop it did not add itself.
            (lb, &["203.0.113.9"], "203.0.113.9"),
            (lb, &["192.0.2.1, 203.0.113.9"], "203.0.113.9"),
            (lb, &["192.0.2.1, 203.0.113.9, 10.9.9.9"], "203.0.113.9"),
            (lb, &["192.0.2.1", "203.0.113.9, 10.9.9.9"], "203.0.113.9"),
            (lb, &["2001:db8::5, 2001:db8::6"], "2001:db8::5"),
            // Nothing forwarded: the proxy itself.
            (lb, &[], "10.1.2.3"),
            // Unreadable: the last good address, never the part a client wrote before it.
            (lb, &["203.0.113.9, not-an-ip"], "10.1.2.3"),
            (lb, &["not-an-ip, 10.9.9.9"], "10.9.9.9"),
            // With a port, as some proxies write it.
            (lb, &["203.0.113.9:4711"], "203.0.113.9"),
            (lb, &["[2001:db8:1::9]:4711"], "2001:db8:1::9"),
            // An inner proxy written as IPv4-mapped IPv6 is still trusted.
            (lb, &["203.0.113.9, ::ffff:10.9.9.9"], "203.0.113.9"),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(
                client_address(*peer, &headers(xff), &trusted),
                ip(want),
                "{peer} {xff:?}"
            );
        }
        // A byte that is not text ends the walk there, not the whole header.
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.9").expect("value"),
        );
        assert_eq!(client_address(lb, &h, &trusted), ip("203.0.113.9"));
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"203.0.113.9, \xff").expect("value"),
        );
        assert_eq!(client_address(lb, &h, &trusted), lb);
        // A dual-stack listener's view of an IPv4 proxy is still that proxy.
        let mapped = ip("::ffff:10.1.2.3");
        assert_eq!(
            client_address(mapped, &headers(&["203.0.113.9"]), &trusted),
            ip("203.0.113.9")
        );
        // With no trusted proxy the header never counts.
        assert_eq!(client_address(lb, &headers(&["203.0.113.9"]), &[]), lb);
    }
}
