//! Rate limits: per key and per client address, 429 with Retry-After, shared by
//! replicas through Redis, and still enforced when Redis goes away.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::served::free_port;
use crate::startup::refused_start;
use crate::support::{into_resp, manifest, Resp, Server};

/// A config file in a fresh directory (kept alive by the returned guard).
fn config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sealgate.toml");
    std::fs::write(&path, text).expect("write config");
    let path = path.to_str().expect("utf-8 path").to_owned();
    (dir, path)
}

/// `n` GETs of `path` sent at once.
async fn burst(server: &Server, path: &str, token: Option<&str>, n: usize) -> Vec<Resp> {
    join_all((0..n).map(|_| server.get(path, token))).await
}

fn allowed(rs: &[Resp]) -> usize {
    rs.iter().filter(|r| r.status == 200).count()
}

/// Every refusal is a 429 problem naming the limit, with a whole-second Retry-After.
#[track_caller]
fn refusals_are_429s(rs: Vec<Resp>, whose: &str) -> usize {
    let mut refused = 0;
    for r in rs.into_iter().filter(|r| r.status != 200) {
        let r = r.expect_problem(429);
        let detail = r.json["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(whose), "{detail}");
        let retry = r.headers.get("retry-after").expect("Retry-After");
        let secs: u64 = retry.to_str().unwrap().parse().expect("whole seconds");
        assert!((1..=10).contains(&secs), "Retry-After {secs}");
        assert!(r.json["correlation_id"].is_string(), "{}", r.text);
        refused += 1;
    }
    refused
}

async fn metric(server: &Server, line: &str) -> u64 {
    let text = server.get("/metrics", None).await.expect(200).text;
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line} missing from:\n{text}"))
}

/// The Redis of `SEALGATE_TEST_REDIS_URL`, which must then answer (CI sets it), or of
/// 127.0.0.1:6379 if it answers; None (and a notice) otherwise.
fn test_redis() -> Option<String> {
    if let Ok(url) = std::env::var("SEALGATE_TEST_REDIS_URL") {
        return Some(url);
    }
    if std::net::TcpStream::connect("127.0.0.1:6379").is_ok() {
        return Some("redis://127.0.0.1:6379".into());
    }
    eprintln!("skipped: no Redis at 127.0.0.1:6379 and SEALGATE_TEST_REDIS_URL unset");
    None
}

#[tokio::test]
async fn a_key_over_its_limit_gets_429_and_other_keys_do_not() {
    let (_dir, path) = config("rate_limit_per_key = 1\nrate_limit_per_key_burst = 3\n");
    let server = Server::start_with(&["--config", &path]).await;
    let agent = server.create_key("agent").await;
    let other = server.create_key("agent").await;
    let m = manifest("rate-limited", "payment", 100);
    let started = Instant::now();
    let rs = join_all((0..10).map(|_| server.validate(&agent, &m))).await;
    let elapsed = started.elapsed().as_secs() + 1;
    let through = allowed(&rs);
    // The burst of three, and at most one more for each second the ten took.
    assert!(
        (3..=3 + elapsed as usize).contains(&through),
        "{through} let through in under {elapsed} s"
    );
    let refused = refusals_are_429s(rs, "this API key");
    assert_eq!(refused, 10 - through);
    assert!(refused > 0);
    // Another key has its own bucket.
    server.validate(&other, &m).await.expect(200);
    // Refused requests were refused before anything was decided or recorded.
    assert_eq!(
        metric(&server, "sealgate_rate_limited_total{scope=\"key\"}").await,
        refused as u64
    );
    let mut decided = 0;
    for status in ["approved", "denied", "pending_approval"] {
        decided += metric(
            &server,
            &format!("sealgate_decisions_total{{status=\"{status}\"}}"),
        )
        .await;
    }
    assert_eq!(decided, through as u64 + 1);
    // Waiting as told gets through again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.validate(&agent, &m).await.expect(200);
}

#[tokio::test]
async fn an_address_over_its_limit_is_refused_before_authentication() {
    let server = Server::start_with(&["--rate-limit-per-ip", "1"]).await;
    // Health probes and metrics never count.
    for r in burst(&server, "/healthz", None, 20).await {
        r.expect(200);
    }
    // Anonymous reads and requests with a token nobody issued, all at once.
    let started = Instant::now();
    let (open, guessed) = futures::join!(
        burst(&server, "/v1/ledger/key", None, 6),
        burst(&server, "/v1/audit/query", Some("sgk_not-a-token"), 6),
    );
    let elapsed = started.elapsed().as_secs() as usize + 1;
    // A burst of one second's worth: one request, plus the refill.
    let through = allowed(&open) + guessed.iter().filter(|r| r.status == 401).count();
    assert!(
        (1..=1 + elapsed).contains(&through),
        "{through} in under {elapsed} s"
    );
    // A token guess over the limit is refused before the token is looked at.
    let guessed: Vec<_> = guessed.into_iter().filter(|r| r.status != 401).collect();
    assert!(refusals_are_429s(guessed, "this client address") > 0);
    assert!(refusals_are_429s(open, "this client address") > 0);
    for r in burst(&server, "/readyz", None, 5).await {
        assert_ne!(r.status, 429, "{}", r.text);
    }
    assert!(metric(&server, "sealgate_rate_limited_total{scope=\"ip\"}").await >= 2);
}

/// GET `path` as forwarded by a proxy for `client`.
async fn forwarded(server: &Server, path: &str, client: &str) -> Resp {
    let r = server
        .http
        .get(server.url(path))
        .header("x-forwarded-for", client)
        .send()
        .await
        .expect("request sent");
    into_resp(r).await
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let (_dir, path) = config("rate_limit_per_ip = 1\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let server = Server::start_with(&["--config", &path]).await;
    let started = Instant::now();
    let first = join_all((0..5).map(|_| forwarded(&server, "/v1/ledger/key", "203.0.113.5"))).await;
    let elapsed = started.elapsed().as_secs() as usize + 1;
    let through = allowed(&first);
    assert!(
        (1..=1 + elapsed).contains(&through),
        "{through} in under {elapsed} s"
    );
    assert!(refusals_are_429s(first, "this client address") > 0);
    // Another client behind the same proxy has a bucket of its own.
    forwarded(&server, "/v1/ledger/key", "192.0.2.1, 203.0.113.6")
        .await
        .expect(200);

    // Without trusted proxies the header is anyone's to write: it buys no bucket.
    let plain = Server::start_with(&["--rate-limit-per-ip", "1"]).await;
    let started = Instant::now();
    let clients: Vec<String> = (10..16).map(|i| format!("203.0.113.{i}")).collect();
    let forged = join_all(
        clients
            .iter()
            .map(|c| forwarded(&plain, "/v1/ledger/key", c)),
    )
    .await;
    let elapsed = started.elapsed().as_secs() as usize + 1;
    assert!(allowed(&forged) <= 1 + elapsed, "{}", allowed(&forged));
    assert!(refusals_are_429s(forged, "this client address") > 0);
}

/// Two servers (on their own data directories, one log name) share their address
/// buckets through Redis: what one let through counts at the other.
#[tokio::test]
async fn replicas_share_their_buckets_through_redis() {
    let Some(redis) = test_redis() else { return };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let origin = format!("ratelimit-{}-{nanos}.test/log", std::process::id());
    // A generous Redis deadline: a slow answer must not be taken for a failure here.
    let (_dir, path) =
        config("rate_limit_per_ip = 1\nrate_limit_per_ip_burst = 4\nredis_timeout_ms = 5000\n");
    let args = [
        "--config",
        &path,
        "--redis-url",
        &redis,
        "--origin",
        &origin,
    ];
    let a = Server::start_with(&args).await;
    let b = Server::start_with(&args).await;
    assert!(a.log().contains("shared through Redis"), "{}", a.log());
    let started = Instant::now();
    let at_a = allowed(&burst(&a, "/v1/ledger/key", None, 4).await);
    let at_b = burst(&b, "/v1/ledger/key", None, 4).await;
    let elapsed = started.elapsed().as_secs() + 1;
    assert!(
        at_a >= 4usize.saturating_sub(elapsed as usize),
        "{at_a} at the first replica"
    );
    // Alone, the second replica would let all four through.
    let through_b = allowed(&at_b);
    assert!(
        at_a + through_b <= 4 + elapsed as usize && through_b < 4,
        "{at_a} + {through_b} in under {elapsed} s"
    );
    refusals_are_429s(at_b, "this client address");
    assert_eq!(
        metric(&b, "sealgate_rate_limit_redis_failures_total").await,
        0
    );
}

/// A Redis of the test's own, killed when dropped.
struct OwnRedis {
    child: Child,
    url: String,
}

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = OwnRedis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When Redis goes away the limit does not: each replica's own buckets decide, the
/// failures are counted and logged, and no password reaches the log.
#[tokio::test]
async fn without_redis_the_limit_still_holds() {
    let Some(mut redis) = OwnRedis::start() else {
        eprintln!("skipped: cannot start redis-server");
        return;
    };
    let server = Server::start_with(&["--rate-limit-per-ip", "1", "--redis-url", &redis.url]).await;
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let started = Instant::now();
    let rs = burst(&server, "/v1/ledger/key", None, 6).await;
    let elapsed = started.elapsed().as_secs() + 1;
    let through = allowed(&rs);
    assert!(
        through <= 1 + elapsed as usize,
        "{through} in under {elapsed} s"
    );
    assert!(refusals_are_429s(rs, "this client address") > 0);
    // The first failure leaves Redis alone for a second: the rest do not wait on it.
    assert!(metric(&server, "sealgate_rate_limit_redis_failures_total").await >= 1);
    let log = server.log();
    assert!(log.contains("this replica's own counters decide"), "{log}");
}

#[tokio::test]
async fn a_server_told_to_share_limits_does_not_start_without_redis() {
    let data = tempfile::tempdir().expect("tempdir");
    let closed = format!("redis://:hunter2@127.0.0.1:{}", free_port());
    let (code, stderr) = refused_start(
        data.path(),
        &["--rate-limit-per-key", "10", "--redis-url", &closed],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("Redis at redis_url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let (code, stderr) = refused_start(data.path(), &["--redis-url", "redis://127.0.0.1:6379"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("rate_limit_per_key"), "{stderr}");
    let (code, stderr) = refused_start(
        data.path(),
        &[
            "--rate-limit-per-ip",
            "5",
            "--redis-url",
            "http://not-redis",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a Redis URL"), "{stderr}");
}
