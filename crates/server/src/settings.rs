//! Typed settings, layered: defaults → TOML file → `SEALGATE_*` environment → flags.
//! The binary does the flag and environment parsing (only it knows clap) and hands
//! over `Overrides`; this module owns the defaults and the file format.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use sealgate_policy::Mode as PolicyMode;
use secrecy::SecretString;
use serde::Deserialize;

pub use crate::ratelimit::Quota;

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// PostgreSQL URL; None means the embedded SQLite store in `data_dir`.
    pub database_url: Option<SecretString>,
    /// Name of this log: the seal `iss` and the checkpoint origin.
    pub origin: String,
    /// How long an issued seal stays redeemable.
    pub seal_ttl: Duration,
    /// How long a `pending_approval` decision waits for a person: after that it leaves
    /// the queue and can no longer be approved (it can still be denied).
    pub approval_ttl: Duration,
    /// Most entries the appender commits in one transaction.
    pub max_batch: usize,
    /// How long a request body may take to arrive (408 after that).
    pub request_timeout: Duration,
    /// How often a checkpoint is signed while entries arrive.
    pub checkpoint_interval: Duration,
    /// Field-level redaction before entries are written (config file only).
    pub redaction: Option<Redaction>,
    /// How policies are evaluated (config file only): `confirmed` (default: the RVM,
    /// with every approval it reached past an absorbed error confirmed on the
    /// interpreter), `rvm` (no confirmation; an error inside a rule body makes that
    /// body undefined, so a deny rule that errors does not deny) or `interpreter`.
    pub policy_evaluation: PolicyMode,
    /// Requests per second (and burst) one API key may make; None: no limit.
    pub rate_limit_per_key: Option<Quota>,
    /// Requests per second (and burst) one client address (IPv6: one /64) may make,
    /// authenticated or not; None: no limit.
    pub rate_limit_per_ip: Option<Quota>,
    /// Redis holding the rate-limit buckets, so replicas share them; None: each process
    /// keeps its own.
    pub redis_url: Option<SecretString>,
    /// How long a rate-limit check waits for Redis before this process's buckets decide
    /// (config file only).
    pub redis_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client for the per-address limit
    /// (config file only); empty: the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often the leading replica checks the stored ledger against its latest signed
    /// checkpoint (config file only); zero: never.
    pub integrity_check_interval: Duration,
    /// Random entries each integrity check proves included (config file only).
    pub integrity_sample: u32,
}

/// Values replaced by `[REDACTED:<type>:<keyed hash>]` before an entry is hashed, so the
/// ledger never holds them. Trade-off: the original value can no longer be proven
/// from the ledger (the seal's manifest_hash still binds the original manifest).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    /// JSON pointers into the manifest, e.g. "/parameters/card_number".
    #[serde(default)]
    pub pointers: Vec<String>,
    /// Detector types, e.g. "credit_card", "email", "aws_access_key".
    #[serde(default)]
    pub types: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./sealgate-data"),
            database_url: None,
            origin: "sealgate.local/log".to_owned(),
            seal_ttl: Duration::from_secs(300),
            approval_ttl: Duration::from_secs(24 * 3600),
            max_batch: 512,
            request_timeout: Duration::from_secs(10),
            checkpoint_interval: Duration::from_secs(1),
            redaction: None,
            policy_evaluation: PolicyMode::Confirmed,
            rate_limit_per_key: None,
            rate_limit_per_ip: None,
            redis_url: None,
            redis_timeout: crate::ratelimit::REDIS_DEADLINE,
            trusted_proxies: Vec::new(),
            integrity_check_interval: Duration::from_secs(60),
            integrity_sample: 16,
        }
    }
}

/// Values given explicitly (by environment or flag) that win over the file. Its
/// `Debug` leaves out the database URL, which may carry a password.
#[derive(Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub origin: Option<String>,
    pub seal_ttl_secs: Option<u64>,
    pub approval_ttl_secs: Option<u64>,
    pub max_batch: Option<usize>,
    pub checkpoint_interval_ms: Option<u64>,
    pub rate_limit_per_key: Option<u32>,
    pub rate_limit_per_ip: Option<u32>,
    pub redis_url: Option<String>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |url: &Option<String>| url.as_ref().map(|_| "[hidden]");
        f.debug_struct("Overrides")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &hidden(&self.database_url))
            .field("origin", &self.origin)
            .field("seal_ttl_secs", &self.seal_ttl_secs)
            .field("approval_ttl_secs", &self.approval_ttl_secs)
            .field("max_batch", &self.max_batch)
            .field("checkpoint_interval_ms", &self.checkpoint_interval_ms)
            .field("rate_limit_per_key", &self.rate_limit_per_key)
            .field("rate_limit_per_ip", &self.rate_limit_per_ip)
            .field("redis_url", &hidden(&self.redis_url))
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    origin: Option<String>,
    seal_ttl_secs: Option<u64>,
    approval_ttl_secs: Option<u64>,
    max_batch: Option<usize>,
    request_timeout_secs: Option<u64>,
    checkpoint_interval_ms: Option<u64>,
    redaction: Option<Redaction>,
    policy_evaluation: Option<String>,
    /// The older spelling of `policy_evaluation = "interpreter"`.
    policy_interpreter: Option<bool>,
    rate_limit_per_key: Option<u32>,
    rate_limit_per_key_burst: Option<u32>,
    rate_limit_per_ip: Option<u32>,
    rate_limit_per_ip_burst: Option<u32>,
    redis_url: Option<String>,
    redis_timeout_ms: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    integrity_check_interval_secs: Option<u64>,
    integrity_sample: Option<u32>,
}

/// `message` with every double-quoted value elided: serde names a mistyped value in
/// quotes (`invalid type: string "postgres://u:pw@h/db", expected u64`), and a secret
/// put in the wrong setting must not reach the error. Key names (in backticks) stay.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…");
                quoted = true;
            }
            ('"', true) => {
                out.push('"');
                quoted = false;
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// `line L, column C` (both from 1, the column in characters) of byte `at` in `text`.
fn position(text: &str, at: usize) -> String {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

impl Settings {
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        let mut bursts = (None, None);
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                path: path.to_owned(),
                source,
            })?;
            // The message and where, never the offending line itself: it may hold a
            // database password.
            let f: FileSettings = toml::from_str(&text).map_err(|e| SettingsError::Parse {
                path: path.to_owned(),
                message: {
                    let what = match e.message().trim() {
                        "" => "not valid TOML".to_owned(),
                        m => without_quoted_values(m),
                    };
                    match e.span() {
                        Some(span) => format!("{}: {what}", position(&text, span.start)),
                        None => what,
                    }
                },
            })?;
            bursts = (f.rate_limit_per_key_burst, f.rate_limit_per_ip_burst);
            if let Some(ms) = f.redis_timeout_ms {
                s.redis_timeout = Duration::from_millis(ms);
            }
            s.trusted_proxies = f
                .trusted_proxies
                .unwrap_or_default()
                .iter()
                .map(|p| proxy_net(p))
                .collect::<Result<_, _>>()?;
            s.apply(Overrides {
                listen: f.listen,
                data_dir: f.data_dir,
                database_url: f.database_url,
                origin: f.origin,
                seal_ttl_secs: f.seal_ttl_secs,
                approval_ttl_secs: f.approval_ttl_secs,
                max_batch: f.max_batch,
                checkpoint_interval_ms: f.checkpoint_interval_ms,
                rate_limit_per_key: f.rate_limit_per_key,
                rate_limit_per_ip: f.rate_limit_per_ip,
                redis_url: f.redis_url,
            });
            s.redaction = f.redaction;
            s.policy_evaluation =
                policy_mode(f.policy_evaluation.as_deref(), f.policy_interpreter)?;
            if let Some(t) = f.request_timeout_secs {
                s.request_timeout = Duration::from_secs(t);
            }
            if let Some(t) = f.integrity_check_interval_secs {
                s.integrity_check_interval = Duration::from_secs(t);
            }
            if let Some(n) = f.integrity_sample {
                s.integrity_sample = n;
            }
        }
        s.apply(overrides);
        // A burst given in the file holds for the rate wherever that was given.
        s.rate_limit_per_key = with_burst("rate_limit_per_key", s.rate_limit_per_key, bursts.0)?;
        s.rate_limit_per_ip = with_burst("rate_limit_per_ip", s.rate_limit_per_ip, bursts.1)?;
        s.validate()?;
        Ok(s)
    }

    fn apply(&mut self, o: Overrides) {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = o.database_url {
            self.database_url = Some(SecretString::from(v));
        }
        if let Some(v) = o.origin {
            self.origin = v;
        }
        if let Some(v) = o.seal_ttl_secs {
            self.seal_ttl = Duration::from_secs(v);
        }
        if let Some(v) = o.approval_ttl_secs {
            self.approval_ttl = Duration::from_secs(v);
        }
        if let Some(v) = o.max_batch {
            self.max_batch = v;
        }
        if let Some(v) = o.checkpoint_interval_ms {
            self.checkpoint_interval = Duration::from_millis(v);
        }
        // One second's worth of burst, unless the file names one (see `load`).
        if let Some(v) = o.rate_limit_per_key {
            self.rate_limit_per_key = Some(Quota {
                per_second: v,
                burst: v,
            });
        }
        if let Some(v) = o.rate_limit_per_ip {
            self.rate_limit_per_ip = Some(Quota {
                per_second: v,
                burst: v,
            });
        }
        if let Some(v) = o.redis_url {
            self.redis_url = Some(SecretString::from(v));
        }
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.origin.is_empty()
            || self.origin.contains(char::is_whitespace)
            || self.origin.contains('+')
        {
            return Err(SettingsError::Invalid {
                name: "origin",
                message: "must be non-empty, without spaces or '+' (it names the log's key)".into(),
            });
        }
        if self.seal_ttl.is_zero() || self.seal_ttl > Duration::from_secs(24 * 3600) {
            return Err(SettingsError::Invalid {
                name: "seal_ttl_secs",
                message: "must be 1..=86400".into(),
            });
        }
        if self.approval_ttl.is_zero() || self.approval_ttl > MAX_APPROVAL_TTL {
            return Err(SettingsError::Invalid {
                name: "approval_ttl_secs",
                message: format!("must be 1..={}", MAX_APPROVAL_TTL.as_secs()),
            });
        }
        if self.checkpoint_interval < Duration::from_millis(10) {
            return Err(SettingsError::Invalid {
                name: "checkpoint_interval_ms",
                message: "must be at least 10".into(),
            });
        }
        if let Some(r) = &self.redaction {
            if let Some(bad) = r
                .types
                .iter()
                .find(|t| sealgate_screen::SecretKind::from_name(t).is_none())
            {
                return Err(SettingsError::Invalid {
                    name: "redaction.types",
                    message: format!("unknown detector type {bad:?}"),
                });
            }
            if let Some(bad) = r.pointers.iter().find(|p| !redactable(p)) {
                return Err(SettingsError::Invalid {
                    name: "redaction.pointers",
                    message: format!(
                        "{bad:?} is not redactable: give a JSON pointer below /parameters/ \
                         or one of {}",
                        REDACTABLE_FIELDS.join(", ")
                    ),
                });
            }
        }
        if self.request_timeout.is_zero() || self.request_timeout > Duration::from_secs(600) {
            return Err(SettingsError::Invalid {
                name: "request_timeout_secs",
                message: "must be 1..=600".into(),
            });
        }
        if !(1..=10_000).contains(&self.max_batch) {
            return Err(SettingsError::Invalid {
                name: "max_batch",
                message: "must be 1..=10000".into(),
            });
        }
        if self.integrity_check_interval > Duration::from_secs(7 * 24 * 3600) {
            return Err(SettingsError::Invalid {
                name: "integrity_check_interval_secs",
                message: "must be 0 (never) to 604800 (a week)".into(),
            });
        }
        if self.integrity_sample > 10_000 {
            return Err(SettingsError::Invalid {
                name: "integrity_sample",
                message: "must be 0..=10000".into(),
            });
        }
        for (name, q) in [
            ("rate_limit_per_key", self.rate_limit_per_key),
            ("rate_limit_per_ip", self.rate_limit_per_ip),
        ] {
            if let Some(q) = q {
                check_quota(name, q)?;
            }
        }
        if self.redis_timeout.is_zero() || self.redis_timeout > Duration::from_secs(10) {
            return Err(SettingsError::Invalid {
                name: "redis_timeout_ms",
                message: "must be 1..=10000".into(),
            });
        }
        if self.redis_url.is_some()
            && self.rate_limit_per_key.is_none()
            && self.rate_limit_per_ip.is_none()
        {
            return Err(SettingsError::Invalid {
                name: "redis_url",
                message: "Redis holds only rate-limit buckets: set rate_limit_per_key or \
                          rate_limit_per_ip too, or remove redis_url"
                    .into(),
            });
        }
        Ok(())
    }
}

/// The most requests per second a limit may name: GCRA counts in whole microseconds.
const MAX_RATE: u32 = 1_000_000;

/// A trusted proxy: an address or a network in CIDR form.
fn proxy_net(text: &str) -> Result<ipnet::IpNet, SettingsError> {
    let text = text.trim();
    let net = text
        .parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| SettingsError::Invalid {
            name: "trusted_proxies",
            message: format!("{text:?} is neither an IP address nor a network like 10.0.0.0/8"),
        })?;
    if net.prefix_len() == 0 {
        // Every client would be a proxy, free to name its own address.
        return Err(SettingsError::Invalid {
            name: "trusted_proxies",
            message: format!(
                "{text:?} trusts every address: list the proxies' addresses or networks"
            ),
        });
    }
    Ok(net.trunc())
}

/// `quota` with the file's `burst`, which needs a rate to go with.
fn with_burst(
    name: &'static str,
    quota: Option<Quota>,
    burst: Option<u32>,
) -> Result<Option<Quota>, SettingsError> {
    match (quota, burst) {
        (q, None) => Ok(q),
        (None, Some(_)) => Err(SettingsError::Invalid {
            name,
            message: format!("{name}_burst is set without {name}"),
        }),
        (Some(q), Some(burst)) => Ok(Some(Quota { burst, ..q })),
    }
}

fn check_quota(name: &'static str, q: Quota) -> Result<(), SettingsError> {
    if !(1..=MAX_RATE).contains(&q.per_second) {
        return Err(SettingsError::Invalid {
            name,
            message: format!(
                "must be 1..={MAX_RATE} requests per second (leave it out for no limit)"
            ),
        });
    }
    if !(1..=MAX_RATE).contains(&q.burst) {
        return Err(SettingsError::Invalid {
            name,
            message: format!("its burst must be 1..={MAX_RATE} requests"),
        });
    }
    Ok(())
}

/// The longest a decision may wait for a person: 30 days.
const MAX_APPROVAL_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The manifest's top-level text fields a marker may stand in for. Not the fields that
/// identify the action (agent_id, org_id, provider, method, manifest_id): seals,
/// audit filters and executors read those.
const REDACTABLE_FIELDS: [&str; 3] = ["/reasoning", "/user_id", "/environment"];

/// A pointer whose value a marker string may replace and leave a valid manifest:
/// anything inside `parameters`, or one of [`REDACTABLE_FIELDS`] (not `/parameters`
/// itself, nor `/confidence_score`, which must stay a number).
fn redactable(pointer: &str) -> bool {
    pointer
        .strip_prefix("/parameters/")
        .is_some_and(|rest| !rest.is_empty())
        || REDACTABLE_FIELDS.contains(&pointer)
}

/// `policy_evaluation` from the file, or its older spelling `policy_interpreter`.
fn policy_mode(name: Option<&str>, interpreter: Option<bool>) -> Result<PolicyMode, SettingsError> {
    let invalid = |message: String| SettingsError::Invalid {
        name: "policy_evaluation",
        message,
    };
    match (name, interpreter) {
        (Some(_), Some(_)) => Err(invalid(
            "give policy_evaluation or policy_interpreter, not both".into(),
        )),
        (None, Some(true)) => Ok(PolicyMode::Interpreter),
        (None, Some(false) | None) => Ok(PolicyMode::Confirmed),
        (Some("confirmed"), None) => Ok(PolicyMode::Confirmed),
        (Some("rvm"), None) => Ok(PolicyMode::Rvm),
        (Some("interpreter"), None) => Ok(PolicyMode::Interpreter),
        (Some(other), None) => Err(invalid(format!(
            "{other:?} is not one of \"confirmed\", \"rvm\", \"interpreter\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_pointers_must_leave_a_valid_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sealgate.toml");
        let load = |pointer: &str| {
            std::fs::write(&path, format!("[redaction]\npointers = [{pointer:?}]\n"))
                .expect("write");
            Settings::load(Some(&path), Overrides::default())
        };
        for good in [
            "/parameters/card_number",
            "/parameters/a/0/b",
            "/reasoning",
            "/user_id",
        ] {
            assert!(load(good).is_ok(), "{good}");
        }
        for bad in [
            "/parameters",
            "/parameters/",
            "/confidence_score",
            "/agent_id",
            "/method",
            "/other",
            "reasoning",
            "",
        ] {
            let err = load(bad).expect_err(bad).to_string();
            assert!(err.contains("redaction.pointers"), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_the_database_url() {
        let o = Overrides {
            database_url: Some("postgres://app:hunter2@db/sealgate".into()),
            ..Overrides::default()
        };
        let text = format!("{o:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[hidden]"), "{text}");
    }

    #[test]
    fn request_timeout_must_be_1_to_600_seconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sealgate.toml");
        let load = |secs: u64| {
            std::fs::write(&path, format!("request_timeout_secs = {secs}\n")).expect("write");
            Settings::load(Some(&path), Overrides::default())
        };
        assert_eq!(load(1).expect("1").request_timeout, Duration::from_secs(1));
        assert_eq!(
            load(600).expect("600").request_timeout,
            Duration::from_secs(600)
        );
        for bad in [0, 601] {
            let err = load(bad).expect_err("out of range").to_string();
            assert!(err.contains("request_timeout_secs"), "{bad}: {err}");
        }
    }

    #[test]
    fn approval_ttl_is_a_day_by_default_and_at_most_thirty() {
        let ttl = |secs: Option<u64>| {
            Settings::load(
                None,
                Overrides {
                    approval_ttl_secs: secs,
                    ..Overrides::default()
                },
            )
        };
        assert_eq!(
            ttl(None).expect("default").approval_ttl,
            Duration::from_secs(86_400)
        );
        assert_eq!(
            ttl(Some(2_592_000)).expect("30 days").approval_ttl,
            Duration::from_secs(2_592_000)
        );
        for bad in [0, 2_592_001] {
            let err = ttl(Some(bad)).expect_err("out of range").to_string();
            assert!(err.contains("approval_ttl_secs"), "{bad}: {err}");
        }
    }

    #[test]
    fn policy_evaluation_names_a_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sealgate.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).expect("write");
            Settings::load(Some(&path), Overrides::default())
        };
        assert_eq!(
            load("").expect("empty").policy_evaluation,
            PolicyMode::Confirmed
        );
        for (text, mode) in [
            ("policy_evaluation = \"confirmed\"\n", PolicyMode::Confirmed),
            ("policy_evaluation = \"rvm\"\n", PolicyMode::Rvm),
            (
                "policy_evaluation = \"interpreter\"\n",
                PolicyMode::Interpreter,
            ),
            ("policy_interpreter = true\n", PolicyMode::Interpreter),
            ("policy_interpreter = false\n", PolicyMode::Confirmed),
        ] {
            assert_eq!(load(text).expect(text).policy_evaluation, mode, "{text}");
        }
        for text in [
            "policy_evaluation = \"fast\"\n",
            "policy_evaluation = \"rvm\"\npolicy_interpreter = true\n",
        ] {
            let err = load(text).expect_err(text).to_string();
            assert!(err.contains("policy_evaluation"), "{text}: {err}");
        }
    }

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sealgate.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nseal_ttl_secs = 60\norigin = \"file.example/log\"\n",
        )
        .expect("write");
        let s = Settings::load(
            Some(&path),
            Overrides {
                origin: Some("flag.example/log".into()),
                ..Default::default()
            },
        )
        .expect("load");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.seal_ttl, Duration::from_secs(60));
        assert_eq!(s.origin, "flag.example/log");
        assert_eq!(s.data_dir, PathBuf::from("./sealgate-data"));
    }

    fn quota(per_second: u32, burst: u32) -> Quota {
        Quota { per_second, burst }
    }

    #[test]
    fn rate_limits_take_a_rate_and_a_burst_and_redis_only_with_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sealgate.toml");
        let load = |text: &str, o: Overrides| {
            std::fs::write(&path, text).expect("write");
            Settings::load(Some(&path), o)
        };
        let s = load("", Overrides::default()).expect("no limits");
        assert_eq!((s.rate_limit_per_key, s.rate_limit_per_ip), (None, None));
        let s = load(
            "rate_limit_per_key = 50\nrate_limit_per_ip = 200\nrate_limit_per_ip_burst = 400\n",
            Overrides::default(),
        )
        .expect("limits");
        assert_eq!(s.rate_limit_per_key, Some(quota(50, 50)));
        assert_eq!(s.rate_limit_per_ip, Some(quota(200, 400)));
        // A file without a burst and a rate from the environment: one second's worth.
        let s = load(
            "rate_limit_per_ip = 200\n",
            Overrides {
                rate_limit_per_ip: Some(10),
                ..Default::default()
            },
        )
        .expect("override");
        assert_eq!(s.rate_limit_per_ip, Some(quota(10, 10)));
        // A burst in the file and the rate from the environment go together.
        let s = load(
            "rate_limit_per_key_burst = 7\n",
            Overrides {
                rate_limit_per_key: Some(3),
                ..Default::default()
            },
        )
        .expect("burst in the file, rate outside");
        assert_eq!(s.rate_limit_per_key, Some(quota(3, 7)));
        // The environment's rate keeps the file's explicit burst.
        let s = load(
            "rate_limit_per_ip = 200\nrate_limit_per_ip_burst = 400\n",
            Overrides {
                rate_limit_per_ip: Some(10),
                ..Default::default()
            },
        )
        .expect("override");
        assert_eq!(s.rate_limit_per_ip, Some(quota(10, 400)));
        for (text, name) in [
            ("rate_limit_per_key = 0\n", "rate_limit_per_key"),
            ("rate_limit_per_ip = 2000000\n", "rate_limit_per_ip"),
            ("rate_limit_per_key_burst = 5\n", "rate_limit_per_key"),
            (
                "rate_limit_per_key = 5\nrate_limit_per_key_burst = 0\n",
                "rate_limit_per_key",
            ),
            ("redis_url = \"redis://127.0.0.1:6379\"\n", "redis_url"),
        ] {
            let err = load(text, Overrides::default())
                .expect_err(text)
                .to_string();
            assert!(err.contains(name), "{text}: {err}");
        }
        let s = load(
            "redis_url = \"redis://:hunter2@127.0.0.1:6379\"\nrate_limit_per_key = 5\n",
            Overrides::default(),
        )
        .expect("redis with a limit");
        assert!(s.redis_url.is_some());
        assert!(!format!("{s:?}").contains("hunter2"));
        let s = load(
            "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::1/32\"]\n",
            Overrides::default(),
        )
        .expect("proxies");
        let nets: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        for bad in ["10.0.0.0/33", "0.0.0.0/0", "::/0", "proxy.internal"] {
            let err = load(
                &format!("trusted_proxies = [{bad:?}]\n"),
                Overrides::default(),
            )
            .expect_err(bad)
            .to_string();
            assert!(err.contains("trusted_proxies"), "{bad}: {err}");
        }
        let o = Overrides {
            redis_url: Some("redis://:hunter2@h".into()),
            ..Default::default()
        };
        assert!(!format!("{o:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").expect("write");
        assert!(matches!(
            Settings::load(Some(&path), Overrides::default()),
            Err(SettingsError::Parse { .. })
        ));
        // Where, without the line: it may hold a password.
        std::fs::write(
            &path,
            "database_url = \"postgres://u:hunter2@h/db\"\nmax_batch = \"many\"\n",
        )
        .expect("write");
        let e = Settings::load(Some(&path), Overrides::default())
            .expect_err("a string for a number")
            .to_string();
        assert!(e.contains("line 2, column 13"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        // A secret in the wrong setting is not quoted back either.
        std::fs::write(&path, "seal_ttl_secs = \"postgres://u:hunter2@h/db\"\n").expect("write");
        let e = Settings::load(Some(&path), Overrides::default())
            .expect_err("a string for a number")
            .to_string();
        assert!(e.contains("line 1") && e.contains("invalid type"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        // Unknown keys are still named.
        std::fs::write(&path, "lisen = \"127.0.0.1:1\"\n").expect("write");
        let e = Settings::load(Some(&path), Overrides::default())
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("`lisen`"), "{e}");
        let bad = Overrides {
            seal_ttl_secs: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            Settings::load(None, bad),
            Err(SettingsError::Invalid {
                name: "seal_ttl_secs",
                ..
            })
        ));
    }

    #[test]
    fn database_url_is_redacted_in_debug() {
        let s = Settings::load(
            None,
            Overrides {
                database_url: Some("postgres://u:hunter2@db/x".into()),
                ..Default::default()
            },
        )
        .expect("load");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
