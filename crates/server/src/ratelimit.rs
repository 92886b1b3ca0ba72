//! Per-key and per-IP rate limits: over its limit a caller gets 429 with Retry-After.
//!
//! Each bucket is a GCRA (the generic cell rate algorithm, as in `governor` and
//! redis-cell): one number per bucket, the theoretical arrival time (TAT) of its next
//! request, so a limit is a rate plus a burst and nothing needs sweeping. A request at
//! `now` is let through when `TAT - now` is within the burst's tolerance, and moves the
//! TAT on by one interval.
//!
//! The buckets live in this process, and also in Redis when replicas share them (a Lua
//! script runs the same arithmetic on Redis's clock). A request must pass this process's
//! bucket first, which costs nothing and is never stricter than the shared one (a
//! replica's share of a caller's requests cannot exceed all of them), and then the shared
//! one. If Redis fails or does not answer within its deadline, the process's bucket has
//! decided, so a limit never lapses; Redis is then left alone for a second rather than
//! made to cost every request its deadline.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a Redis answer may take by default before this process's buckets decide.
pub const REDIS_DEADLINE: Duration = Duration::from_millis(50);
/// Buckets one process keeps per scope; past that, idle ones are dropped, and if none
/// is idle, new callers of the scope share one overflow bucket (limited together,
/// never unlimited).
const LOCAL_BUCKETS: usize = 100_000;
/// The least time between two sweeps of a full table.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// How long Redis is left alone after it failed.
const REDIS_PAUSE: Duration = Duration::from_secs(1);
/// How often a Redis failure is logged while it lasts.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A rate and the burst allowed on top of it, both in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_second: u32,
    pub burst: u32,
}

impl Quota {
    /// Microseconds between requests at the steady rate.
    fn interval_us(self) -> u64 {
        1_000_000 / u64::from(self.per_second.max(1))
    }

    /// How far ahead of `now` a bucket's TAT may run and still let a request through.
    fn tolerance_us(self) -> u64 {
        self.interval_us() * u64::from(self.burst.max(1) - 1)
    }
}

/// What a bucket says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit: the earliest a request would be let through.
    Limited {
        retry_after: Duration,
    },
}

/// One GCRA step: the verdict, and the bucket's new TAT when the request goes through.
fn gcra(tat: Option<u64>, now: u64, quota: Quota) -> (Verdict, Option<u64>) {
    let tat = tat.unwrap_or(now).max(now);
    let ahead = tat - now;
    let tolerance = quota.tolerance_us();
    if ahead > tolerance {
        let wait = Duration::from_micros(ahead - tolerance);
        return (Verdict::Limited { retry_after: wait }, None);
    }
    (Verdict::Allowed, Some(tat + quota.interval_us()))
}

/// The same step on Redis: KEYS[1] holds the TAT in microseconds of Redis's clock;
/// ARGV are the interval and the tolerance. Returns 0, or the microseconds to wait.
/// The key expires once the bucket is full again, so idle callers cost nothing. A TAT
/// further ahead than a request can ever put it (Redis's clock stepped back, or a
/// failover to a node whose clock is behind) is pulled back to that bound.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if tat > now + tolerance + interval then tat = now + tolerance + interval end
if tat - now > tolerance then return tat - now - tolerance end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil((new - now) / 1000) + 1)
return 0
";

/// Which limit a request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Key,
    Ip,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Ip => "ip",
        }
    }
}

/// The limits a server enforces, and where their buckets live.
pub struct RateLimits {
    per_key: Option<Quota>,
    per_ip: Option<Quota>,
    local: LocalBuckets,
    shared: Option<Shared>,
    /// Requests refused, by scope.
    pub limited_key: AtomicU64,
    pub limited_ip: AtomicU64,
    /// Redis calls that failed or timed out (this process's buckets decided).
    pub redis_failures: AtomicU64,
}

struct Shared {
    /// Replaced after a failure redis-rs does not recover from by itself (below).
    redis: Arc<Mutex<ConnectionManager>>,
    /// What a replacement is made from.
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Set while a replacement is being made, so failures start one at a time.
    replacing: Arc<AtomicBool>,
    script: redis::Script,
    /// Prefix of every bucket's key: the log's origin, so logs sharing a Redis do not
    /// share limits.
    prefix: String,
    deadline: Duration,
    /// Until when Redis is left alone after a failure.
    paused_until: Mutex<Option<Instant>>,
    last_warning: Mutex<Option<Instant>>,
}

impl RateLimits {
    /// Limits kept by this process alone.
    pub fn local(per_key: Option<Quota>, per_ip: Option<Quota>) -> RateLimits {
        RateLimits {
            per_key,
            per_ip,
            local: LocalBuckets::default(),
            shared: None,
            limited_key: AtomicU64::new(0),
            limited_ip: AtomicU64::new(0),
            redis_failures: AtomicU64::new(0),
        }
    }

    /// Limits shared through the Redis at `url`, which must run the script now: a
    /// server that was told to share its limits does not start without them.
    /// `deadline` bounds each check's wait for Redis.
    pub async fn shared(
        per_key: Option<Quota>,
        per_ip: Option<Quota>,
        url: &str,
        origin: &str,
        deadline: Duration,
    ) -> anyhow::Result<RateLimits> {
        if url.starts_with("rediss://") {
            anyhow::bail!(
                "redis_url: TLS to Redis (rediss://) is not supported; reach Redis over a \
                 private network or a local TLS tunnel with redis://"
            );
        }
        // Neither the URL nor the client's error text is shown: the URL may carry a
        // password, and some parse errors repeat it.
        let client = redis::Client::open(url).map_err(|_| {
            anyhow::anyhow!(
                "redis_url is not a Redis URL (redis://[user:password@]host[:port][/db])"
            )
        })?;
        // Each check has its own, shorter deadline; this one only ends a hung call.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let mut redis = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(config.clone()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis at redis_url did not answer within 5 s"))?
        .map_err(|e| anyhow::anyhow!("cannot connect to Redis at redis_url ({:?})", e.kind()))?;
        let script = redis::Script::new(GCRA_LUA);
        let prefix = format!("sealgate:ratelimit:{origin}:");
        // Running the script once proves what loading it would not: that this Redis
        // runs Lua, reads its clock in a script and lets us write (not a read-only
        // replica, not an ACL without SET).
        let mut probe = script.key(format!("{prefix}startup-probe"));
        probe.arg(1_000_000u64).arg(0u64);
        tokio::time::timeout(
            Duration::from_secs(5),
            probe.invoke_async::<u64>(&mut redis),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("Redis at redis_url did not run the rate-limit script within 5 s")
        })?
        .map_err(|e| {
            anyhow::anyhow!(
                "Redis at redis_url refused the rate-limit script ({:?}, {})",
                e.kind(),
                e.code().unwrap_or("no error code")
            )
        })?;
        let mut limits = RateLimits::local(per_key, per_ip);
        limits.shared = Some(Shared {
            redis: Arc::new(Mutex::new(redis)),
            client,
            config,
            replacing: Arc::new(AtomicBool::new(false)),
            script,
            prefix,
            deadline,
            paused_until: Mutex::new(None),
            last_warning: Mutex::new(None),
        });
        Ok(limits)
    }

    /// Counts a request from `ip` against its address's limit.
    pub async fn check_ip(&self, ip: IpAddr) -> Verdict {
        let Some(quota) = self.per_ip else {
            return Verdict::Allowed;
        };
        let verdict = self.check(Scope::Ip, &ip_bucket(ip), quota).await;
        if verdict != Verdict::Allowed {
            self.limited_ip.fetch_add(1, Relaxed);
        }
        verdict
    }

    /// Counts a request authenticated as `key_id` against the key's limit.
    pub async fn check_key(&self, key_id: &str) -> Verdict {
        let Some(quota) = self.per_key else {
            return Verdict::Allowed;
        };
        let verdict = self.check(Scope::Key, key_id, quota).await;
        if verdict != Verdict::Allowed {
            self.limited_key.fetch_add(1, Relaxed);
        }
        verdict
    }

    /// The counters, in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str(
            "# HELP sealgate_rate_limited_total requests refused with 429, by the limit they met\n\
             # TYPE sealgate_rate_limited_total counter\n",
        );
        for (scope, n) in [
            (Scope::Key, &self.limited_key),
            (Scope::Ip, &self.limited_ip),
        ] {
            let _ = writeln!(
                out,
                "sealgate_rate_limited_total{{scope=\"{}\"}} {}",
                scope.as_str(),
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sealgate_rate_limit_redis_failures_total rate-limit checks this replica's own buckets decided because Redis failed or was late\n\
             # TYPE sealgate_rate_limit_redis_failures_total counter\n\
             sealgate_rate_limit_redis_failures_total {}",
            self.redis_failures.load(Relaxed)
        );
    }

    /// The quota of a scope, for the message a refusal carries.
    pub fn quota(&self, scope: Scope) -> Option<Quota> {
        match scope {
            Scope::Key => self.per_key,
            Scope::Ip => self.per_ip,
        }
    }

    async fn check(&self, scope: Scope, bucket: &str, quota: Quota) -> Verdict {
        let local = self.local.check(scope, bucket, quota);
        if local != Verdict::Allowed {
            return local;
        }
        let Some(shared) = self.shared.as_ref().filter(|s| !s.paused()) else {
            return local;
        };
        match shared
            .check(&format!("{}:{bucket}", scope.as_str()), quota)
            .await
        {
            Ok(verdict) => verdict,
            Err(why) => {
                self.redis_failures.fetch_add(1, Relaxed);
                shared.pause();
                shared.warn(&why);
                local
            }
        }
    }
}

impl Shared {
    async fn check(&self, bucket: &str, quota: Quota) -> Result<Verdict, String> {
        let mut redis = self
            .redis
            .lock()
            .map_err(|_| "connection slot poisoned".to_owned())?
            .clone();
        let mut call = self.script.key(format!("{}{bucket}", self.prefix));
        call.arg(quota.interval_us()).arg(quota.tolerance_us());
        let wait: u64 = tokio::time::timeout(self.deadline, call.invoke_async(&mut redis))
            .await
            .map_err(|_| format!("no answer within {} ms", self.deadline.as_millis()))?
            .map_err(|e| {
                if !e.is_io_error() {
                    self.replace_connection();
                }
                format!("{:?}", e.kind())
            })?;
        Ok(match wait {
            0 => Verdict::Allowed,
            us => Verdict::Limited {
                retry_after: Duration::from_micros(us),
            },
        })
    }

    /// Makes a new connection manager in the background and swaps it in if it
    /// connects. redis-rs's manager reconnects after I/O errors only: when its
    /// reconnection itself fails otherwise (Redis refused the password, or was loading
    /// its data), every later call gets that failure again, for good. Failures are at
    /// most one per pause, so this runs at most about once a second.
    fn replace_connection(&self) {
        if self.replacing.swap(true, Relaxed) {
            return;
        }
        let (client, config) = (self.client.clone(), self.config.clone());
        let (slot, replacing) = (self.redis.clone(), self.replacing.clone());
        tokio::spawn(async move {
            let fresh = tokio::time::timeout(
                Duration::from_secs(5),
                client.get_connection_manager_with_config(config),
            )
            .await;
            if let (Ok(Ok(fresh)), Ok(mut slot)) = (fresh, slot.lock()) {
                *slot = fresh;
            }
            replacing.store(false, Relaxed);
        });
    }

    fn paused(&self) -> bool {
        self.paused_until
            .lock()
            .map_or(true, |until| until.is_some_and(|t| Instant::now() < t))
    }

    fn pause(&self) {
        if let Ok(mut until) = self.paused_until.lock() {
            *until = Some(Instant::now() + REDIS_PAUSE);
        }
    }

    fn warn(&self, why: &str) {
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                error = why,
                "Redis rate-limit counters unavailable; this replica's own counters decide"
            );
        }
    }
}

/// The buckets of one process, one table per scope, with times in microseconds since
/// it made them.
struct LocalBuckets {
    epoch: Instant,
    keys: Mutex<Table>,
    ips: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    tats: HashMap<Box<str>, u64>,
    last_sweep: Option<Instant>,
}

/// The bucket a scope's new callers share once its table is full of buckets still
/// draining (no key id or address contains a NUL).
const OVERFLOW: &str = "\u{0}overflow";

impl Default for LocalBuckets {
    fn default() -> LocalBuckets {
        LocalBuckets {
            epoch: Instant::now(),
            keys: Mutex::default(),
            ips: Mutex::default(),
        }
    }
}

impl LocalBuckets {
    fn check(&self, scope: Scope, bucket: &str, quota: Quota) -> Verdict {
        let now = self.epoch.elapsed().as_micros() as u64;
        let table = match scope {
            Scope::Key => &self.keys,
            Scope::Ip => &self.ips,
        };
        let Ok(mut table) = table.lock() else {
            // A poisoned lock means a panic mid-update: refuse rather than let all through.
            return Verdict::Limited {
                retry_after: Duration::from_secs(1),
            };
        };
        let bucket = if table.tats.contains_key(bucket) || table.tats.len() < LOCAL_BUCKETS {
            bucket
        } else {
            // A bucket whose TAT has passed is full again: forgetting it changes nothing.
            // Swept at most every SWEEP_EVERY, so a full table does not cost every caller.
            if table
                .last_sweep
                .is_none_or(|at| at.elapsed() >= SWEEP_EVERY)
            {
                table.tats.retain(|_, tat| *tat > now);
                table.last_sweep = Some(Instant::now());
            }
            if table.tats.len() < LOCAL_BUCKETS {
                bucket
            } else {
                OVERFLOW
            }
        };
        let (verdict, tat) = gcra(table.tats.get(bucket).copied(), now, quota);
        if let Some(tat) = tat {
            table.tats.insert(bucket.into(), tat);
        }
        verdict
    }
}

/// The bucket of an address: IPv4 addresses one by one, IPv6 by /64, the block one
/// subscriber is usually given (a per-address limit would not hold back its owner).
fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        per_second: 10,
        burst: 3,
    };

    #[test]
    fn a_burst_passes_then_the_steady_rate() {
        let (mut tat, mut allowed) = (None, 0);
        // Ten requests at the same instant: the burst of three goes through.
        for _ in 0..10 {
            let (v, next) = gcra(tat, 1_000_000, Q);
            if v == Verdict::Allowed {
                allowed += 1;
                tat = next;
            }
        }
        assert_eq!(allowed, 3);
        // The fourth must wait one interval (100 ms) from the start.
        assert_eq!(
            gcra(tat, 1_000_000, Q).0,
            Verdict::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        assert_eq!(gcra(tat, 1_100_000, Q).0, Verdict::Allowed);
        // After a quiet second the bucket is full again.
        let (mut quiet, mut again) = (tat, 0);
        for _ in 0..10 {
            let (v, next) = gcra(quiet, 3_000_000, Q);
            if v == Verdict::Allowed {
                again += 1;
                quiet = next;
            }
        }
        assert_eq!(again, 3);
    }

    #[test]
    fn a_steady_caller_at_the_rate_is_never_limited() {
        let mut tat = None;
        for i in 0..1000u64 {
            let (v, next) = gcra(tat, 5_000_000 + i * 100_000, Q);
            assert_eq!(v, Verdict::Allowed, "request {i}");
            tat = next;
        }
    }

    #[test]
    fn a_burst_of_one_allows_one_request_per_interval() {
        let q = Quota {
            per_second: 2,
            burst: 1,
        };
        let (v, tat) = gcra(None, 0, q);
        assert_eq!(v, Verdict::Allowed);
        assert_eq!(
            gcra(tat, 1, q).0,
            Verdict::Limited {
                retry_after: Duration::from_micros(499_999)
            }
        );
        assert_eq!(gcra(tat, 500_000, q).0, Verdict::Allowed);
    }

    #[test]
    fn local_buckets_keep_callers_apart_and_overflow_into_one() {
        let local = LocalBuckets::default();
        let limited = |v| matches!(v, Verdict::Limited { .. });
        for _ in 0..3 {
            assert_eq!(local.check(Scope::Key, "a", Q), Verdict::Allowed);
        }
        assert!(limited(local.check(Scope::Key, "a", Q)));
        assert_eq!(local.check(Scope::Key, "b", Q), Verdict::Allowed);
        // The same name in the other scope is another bucket.
        assert_eq!(local.check(Scope::Ip, "a", Q), Verdict::Allowed);
        // Fill the key table with buckets still draining: new keys share one bucket.
        {
            let mut table = local.keys.lock().expect("lock");
            for i in 0..LOCAL_BUCKETS {
                table.tats.insert(format!("busy{i}").into(), u64::MAX / 2);
            }
        }
        for _ in 0..3 {
            assert_eq!(local.check(Scope::Key, "new-1", Q), Verdict::Allowed);
        }
        assert!(limited(local.check(Scope::Key, "new-2", Q)));
        assert!(!local.keys.lock().expect("lock").tats.contains_key("new-1"));
        // Addresses are not held back by a full key table.
        assert_eq!(local.check(Scope::Ip, "new-1", Q), Verdict::Allowed);
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ip_bucket(a), ip_bucket(b));
        assert_ne!(ip_bucket(a), ip_bucket(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(ip_bucket(mapped), "192.0.2.7");
    }

    /// The Redis of `SEALGATE_TEST_REDIS_URL`, which must then answer (CI sets it), or
    /// of 127.0.0.1:6379 if it answers; None (and a notice) otherwise.
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

    /// The Lua script and the Rust step agree, on a real Redis.
    #[tokio::test]
    async fn redis_buckets_count_like_local_ones() {
        let Some(url) = test_redis() else { return };
        // One a second, so a slow machine does not refill the bucket mid-test; a long
        // deadline, so a slow answer is not taken for a failure.
        let q = Quota {
            per_second: 1,
            burst: 3,
        };
        let deadline = Duration::from_secs(5);
        let origin = format!("test.{}", uuid::Uuid::new_v4());
        let limits = RateLimits::shared(Some(q), Some(q), &url, &origin, deadline)
            .await
            .expect("Redis");
        let mut allowed = 0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            match limits.check_key("k1").await {
                Verdict::Allowed => allowed += 1,
                Verdict::Limited { retry_after } => waits.push(retry_after),
            }
        }
        assert_eq!(allowed, 3, "the burst");
        assert_eq!(waits.len(), 3);
        for w in &waits {
            assert!(*w > Duration::ZERO && *w <= Duration::from_secs(1), "{w:?}");
        }
        assert_eq!(limits.redis_failures.load(Relaxed), 0);
        assert_eq!(limits.limited_key.load(Relaxed), 3);
        // Another key and the same key as an address are separate buckets.
        assert_eq!(limits.check_key("k2").await, Verdict::Allowed);
        assert_eq!(
            limits.check_ip("127.0.0.1".parse().expect("ip")).await,
            Verdict::Allowed
        );
        // A second limiter on the same Redis and origin (another replica) has a full
        // bucket of its own, but the shared one refuses.
        let replica = RateLimits::shared(Some(q), None, &url, &origin, deadline)
            .await
            .expect("second connection");
        assert!(matches!(
            replica.check_key("k1").await,
            Verdict::Limited { .. }
        ));
        assert_eq!(replica.redis_failures.load(Relaxed), 0);
    }

    /// A Redis that refused the limiter's password when it reconnected (the password
    /// was changed, then changed back) is used again once it accepts it, without a
    /// restart: redis-rs's own manager retries only after I/O errors.
    #[tokio::test]
    async fn limits_are_shared_again_once_redis_takes_the_password_back() {
        let Some(url) = test_redis() else { return };
        let Some(plain) = url.strip_prefix("redis://").filter(|u| !u.contains('@')) else {
            eprintln!("skipped: SEALGATE_TEST_REDIS_URL carries credentials of its own");
            return;
        };
        let mut admin = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .expect("Redis");
        let user = format!("sealgate-test-{}", uuid::Uuid::new_v4().simple());
        /// Deletes the test's ACL user however the test ends.
        struct Deleted(String, String);
        impl Drop for Deleted {
            fn drop(&mut self) {
                let client = redis::Client::open(self.0.as_str());
                if let Ok(mut c) = client.and_then(|c| c.get_connection()) {
                    let _ = redis::cmd("ACL")
                        .arg("DELUSER")
                        .arg(&self.1)
                        .query::<u64>(&mut c);
                }
            }
        }
        let _cleanup = Deleted(url.clone(), user.clone());
        let acl = |admin: &mut redis::Connection, args: &[&str]| {
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&user)
                .arg(args)
                .query::<()>(admin)
                .expect("ACL SETUSER");
        };
        acl(&mut admin, &["on", ">first", "~*", "&*", "+@all"]);
        let q = Quota {
            per_second: 1000,
            burst: 1000,
        };
        let limits = RateLimits::shared(
            Some(q),
            None,
            &format!("redis://{user}:first@{plain}"),
            &format!("test.{}", uuid::Uuid::new_v4()),
            Duration::from_secs(5),
        )
        .await
        .expect("Redis");
        assert_eq!(limits.check_key("k").await, Verdict::Allowed);
        assert_eq!(limits.redis_failures.load(Relaxed), 0);

        // The password changes and the connection drops: reconnecting is refused.
        acl(&mut admin, &["resetpass", ">second"]);
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&user)
            .query::<u64>(&mut admin)
            .expect("CLIENT KILL");
        for _ in 0..3 {
            assert_eq!(
                limits.check_key("k").await,
                Verdict::Allowed,
                "local decides"
            );
            tokio::time::sleep(REDIS_PAUSE + Duration::from_millis(100)).await;
        }
        let failed = limits.redis_failures.load(Relaxed);
        assert!(
            failed >= 2,
            "{failed} failures while the password was refused"
        );

        // The password is back: within a few pauses the shared buckets are used again.
        acl(&mut admin, &["resetpass", ">first"]);
        let mut healthy = 0;
        for _ in 0..10 {
            let before = limits.redis_failures.load(Relaxed);
            limits.check_key("k").await;
            if limits.redis_failures.load(Relaxed) == before {
                healthy += 1;
                if healthy == 2 {
                    break;
                }
            }
            tokio::time::sleep(REDIS_PAUSE + Duration::from_millis(100)).await;
        }
        assert_eq!(healthy, 2, "the limiter never used Redis again");
    }

    #[tokio::test]
    async fn a_redis_url_that_cannot_work_is_refused_at_start() {
        let q = Some(Q);
        let d = REDIS_DEADLINE;
        for (url, says) in [
            ("rediss://127.0.0.1:6379", "not supported"),
            ("http://127.0.0.1:6379", "not a Redis URL"),
        ] {
            let err = RateLimits::shared(q, None, url, "o", d)
                .await
                .err()
                .expect(url)
                .to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let closed = format!("redis://:hunter2@127.0.0.1:{port}");
        let err = RateLimits::shared(q, None, &closed, "o", d)
            .await
            .err()
            .expect("nothing listens")
            .to_string();
        assert!(
            err.contains("redis_url") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
