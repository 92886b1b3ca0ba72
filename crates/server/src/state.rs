//! Everything a request needs, built once at start: store and appender, keys, the
//! screener, the active policy, the clock. Handlers get it as `State<AppState>`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use sealgate_core::seal::{jwk, Ed25519SealSigner};
use sealgate_core::timefmt::Clock;
use sealgate_ledger::{Checkpoint, NoteSigner};
use sealgate_policy::PreparedPolicy;
use sealgate_screen::{Redactor, RedactorConfig, ScreenConfig, Screener, SecretKind};
use sealgate_store::{Appender, Store};
use sealgate_store_postgres::{PostgresOptions, PostgresStore};
use sealgate_store_sqlite::SqliteStore;
use secrecy::ExposeSecret;
use time::OffsetDateTime;
use tracing::info;

use crate::auth::AuthCache;
use crate::breaker::{BreakerState, BreakerStore, Circuit};
use crate::keystore;
use crate::metrics::Metrics;
use crate::ratelimit::{RateLimits, Scope, Verdict};
use crate::service;
use crate::settings::Settings;

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A policy bundle compiled for evaluation, with its version.
pub struct ActivePolicy {
    pub version: String,
    pub prepared: Arc<PreparedPolicy>,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub appender: Appender,
    pub screener: Screener,
    /// Field-level redaction of recorded manifests, when configured.
    pub redactor: Option<Redactor>,
    pub seal_signer: Ed25519SealSigner,
    /// Signs checkpoints as a C2SP note named after the log's origin.
    pub log_signer: NoteSigner,
    pub seal_keys: HashMap<String, VerifyingKey>,
    pub jwks: serde_json::Value,
    pub clock: Arc<dyn Clock>,
    pub auth: AuthCache,
    pub metrics: Arc<Metrics>,
    /// Per-key and per-IP request limits.
    pub limits: RateLimits,
    pub active_policy: RwLock<Option<Arc<ActivePolicy>>>,
    /// Compiled bundles by version, so rollback does not recompile.
    pub prepared: RwLock<HashMap<String, Arc<PreparedPolicy>>>,
    /// Serialises activations so each names the right previous version.
    pub activation_lock: tokio::sync::Mutex<()>,
    /// Held while a checkpoint is read, signed and stored, so the ticker and the stop
    /// never store two in falling size order.
    pub checkpoint_lock: tokio::sync::Mutex<()>,
    /// The circuit breaker around a shared store (PostgreSQL); None for SQLite.
    pub circuit: Option<Arc<Circuit>>,
    /// Whether this replica led the log (signed checkpoints) at the last tick.
    pub leading: AtomicBool,
    /// Woken whenever this process commits a person's answer, so an agent waiting on
    /// `GET /v1/decisions/{id}?wait=` sees it at once (other replicas' answers are found
    /// by polling the store).
    pub resolved: tokio::sync::Notify,
    /// Set when graceful shutdown begins, so waiting requests answer at once instead of
    /// holding the shutdown for the rest of their wait.
    pub stopping: AtomicBool,
    /// Seats for requests waiting on `GET /v1/decisions/{id}?wait=`.
    pub waiting: tokio::sync::Semaphore,
}

/// Consecutive `Unavailable` answers (each after the backend's own retries) that open
/// the breaker around a shared store.
const BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker fails fast before letting one probe through.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(1);
/// How often a replica looks for a policy activated by another replica.
const POLICY_POLL: Duration = Duration::from_secs(1);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Opens the store named by `settings`, loads or creates keys, activates the
    /// shipped policy on first start and writes the bootstrap admin token.
    ///
    /// With a database URL the store is PostgreSQL, shared with other replicas:
    /// pending migrations are applied (under an advisory lock), the first start's
    /// bootstrap happens under another one so replicas starting together do it once,
    /// the store sits behind a circuit breaker, and a task follows policy activations
    /// made by other replicas. Replicas share the seal and log keys through the same
    /// `data_dir` (see keystore).
    pub async fn open(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
        keystore::ensure_data_dir(&settings.data_dir)?;
        let Some(url) = settings.database_url.clone() else {
            let path = settings.data_dir.join("ledger.db");
            let store =
                SqliteStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
            info!(path = %path.display(), "embedded SQLite store opened");
            return AppState::with_store(settings, Arc::new(store), clock).await;
        };
        let pg = PostgresStore::connect(url.expose_secret(), PostgresOptions::default())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "connecting to PostgreSQL: {}",
                    crate::scrub::scrub(&e.to_string())
                )
            })?;
        info!("PostgreSQL store connected, schema current");
        let bootstrap = pg
            .bootstrap_lock()
            .await
            .map_err(|e| anyhow::anyhow!("waiting for the bootstrap lock: {e}"))?;
        let circuit = Arc::new(Circuit::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN));
        let store: Arc<dyn Store> = Arc::new(BreakerStore::new(Arc::new(pg), circuit.clone()));
        let state = AppState::build(settings, store, Some(circuit), clock).await?;
        drop(bootstrap);
        tokio::spawn(service::policies::follow_active(state.clone(), POLICY_POLL));
        Ok(state)
    }

    pub async fn with_store(
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<AppState> {
        AppState::build(settings, store, None, clock).await
    }

    async fn build(
        settings: Settings,
        store: Arc<dyn Store>,
        circuit: Option<Arc<Circuit>>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<AppState> {
        let seal_key_path = settings.data_dir.join(keystore::SEAL_KEY_FILE);
        let (seal_key, created) = keystore::load_or_create_key(&seal_key_path)?;
        log_key("seal", &seal_key_path, created);
        let seal_signer = Ed25519SealSigner::new(seal_key);
        let vk = seal_signer.verifying_key();
        let seal_keys = HashMap::from([(sealgate_core::seal::jwk_thumbprint(&vk), vk)]);
        let jwks = serde_json::json!({ "keys": [jwk(&vk)] });

        let log_key_path = settings.data_dir.join(keystore::LOG_KEY_FILE);
        let latest = store
            .latest_checkpoint()
            .await
            .context("reading the latest checkpoint")?;
        if latest.is_some() && !log_key_path.exists() {
            anyhow::bail!(
                "{} is missing, but the ledger holds checkpoints signed with it: restore that \
                 file (a new key would sign checkpoints that no verifier of this log accepts)",
                log_key_path.display()
            );
        }
        let (note_key, created) = keystore::load_or_create_key(&log_key_path)?;
        log_key("checkpoint", &log_key_path, created);
        let log_signer = NoteSigner::new(settings.origin.clone(), note_key).map_err(|e| {
            anyhow::anyhow!("origin {:?} cannot name a note key: {e}", settings.origin)
        })?;
        if let Some(latest) = latest {
            same_log(&latest.note, &log_signer, &settings.origin, &log_key_path)?;
        }

        let metrics = Arc::new(Metrics::default());
        let observer = {
            let metrics = metrics.clone();
            Arc::new(move |n: usize| metrics.observe_batch(n))
                as sealgate_store::appender::BatchObserver
        };
        let appender = Appender::spawn(store.clone(), settings.max_batch, Some(observer));
        let screener = Screener::new(ScreenConfig::default()).context("compiling the screeners")?;
        let redactor = match &settings.redaction {
            None => None,
            Some(r) => {
                let key_path = settings.data_dir.join(keystore::REDACTION_KEY_FILE);
                let (key, _) = keystore::load_or_create_key(&key_path)?;
                let kinds = r
                    .types
                    .iter()
                    .filter_map(|t| SecretKind::from_name(t))
                    .collect();
                let config = RedactorConfig {
                    pointers: r.pointers.clone(),
                    kinds,
                    key: key.to_bytes().to_vec(),
                };
                Some(Redactor::new(config).context("redaction settings")?)
            }
        };

        let limits = match &settings.redis_url {
            Some(url) => {
                let limits = RateLimits::shared(
                    settings.rate_limit_per_key,
                    settings.rate_limit_per_ip,
                    url.expose_secret(),
                    &settings.origin,
                    settings.redis_timeout,
                )
                .await?;
                info!("rate-limit buckets shared through Redis");
                limits
            }
            None => RateLimits::local(settings.rate_limit_per_key, settings.rate_limit_per_ip),
        };

        let state = AppState(Arc::new(Inner {
            settings,
            store,
            appender,
            screener,
            redactor,
            seal_signer,
            log_signer,
            seal_keys,
            jwks,
            clock,
            auth: AuthCache::default(),
            metrics,
            limits,
            active_policy: RwLock::new(None),
            prepared: RwLock::new(HashMap::new()),
            activation_lock: tokio::sync::Mutex::new(()),
            checkpoint_lock: tokio::sync::Mutex::new(()),
            circuit,
            leading: AtomicBool::new(false),
            resolved: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
            waiting: tokio::sync::Semaphore::new(crate::service::approvals::MAX_WAITING),
        }));
        service::policies::load_active(&state).await?;
        service::keys::bootstrap_admin(&state).await?;
        service::ledger::announce(&state);
        tokio::spawn(service::ledger::run_checkpointer(state.clone()));
        if !state.settings.integrity_check_interval.is_zero() {
            tokio::spawn(service::integrity::run_integrity_checks(state.clone()));
        }
        Ok(state)
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn active_policy(&self) -> Option<Arc<ActivePolicy>> {
        self.active_policy.read().ok().and_then(|p| p.clone())
    }

    /// The caller's key, when the request's bearer token is live and its role may use
    /// a route that needs `role` (401 or 403 otherwise).
    pub async fn require(
        &self,
        headers: &axum::http::HeaderMap,
        role: sealgate_core::Role,
    ) -> Result<sealgate_store::ApiKey, crate::error::ApiError> {
        let key = self
            .auth
            .require(self.store.as_ref(), headers, role)
            .await?;
        self.limit(Scope::Key, self.limits.check_key(&key.id).await)?;
        Ok(key)
    }

    /// 429 for a request over the `scope` limit.
    pub fn limit(&self, scope: Scope, verdict: Verdict) -> Result<(), crate::error::ApiError> {
        let Verdict::Limited { retry_after } = verdict else {
            return Ok(());
        };
        let rate = self.limits.quota(scope).map_or(String::new(), |q| {
            format!(" of {} requests/s (burst {})", q.per_second, q.burst)
        });
        let whose = match scope {
            Scope::Key => "this API key",
            Scope::Ip => "this client address",
        };
        Err(crate::error::ApiError::TooManyRequests {
            detail: format!(
                "rate limit{rate} for {whose} exceeded; retry after {} ms",
                retry_after.as_micros().div_ceil(1000).max(1)
            ),
            retry_after,
        })
    }

    /// The store's circuit breaker, when there is one.
    pub fn breaker_state(&self) -> Option<BreakerState> {
        self.circuit.as_ref().map(|c| c.state())
    }

    /// Whether this replica signs checkpoints now.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    pub(crate) fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }
}

fn log_key(purpose: &str, path: &Path, created: bool) {
    if created {
        info!(purpose, path = %path.display(), "generated a new Ed25519 key");
    } else {
        info!(purpose, path = %path.display(), "loaded Ed25519 key");
    }
}

/// Refuses to go on when the ledger's latest checkpoint was not signed by this log key
/// under this origin: the next one would be, and a verifier holding the log's key would
/// then reject the old checkpoints or the new. A changed origin or a replaced log key
/// is a configuration mistake to fix, not a new log to start.
fn same_log(note: &str, signer: &NoteSigner, origin: &str, key_path: &Path) -> anyhow::Result<()> {
    let signed_as = note.lines().next().unwrap_or_default();
    if signed_as != origin {
        anyhow::bail!(
            "the ledger's checkpoints are signed as origin {signed_as:?}, not {origin:?}: \
             start with --origin {signed_as:?} (or SEALGATE_ORIGIN); a log keeps its name"
        );
    }
    let verifier = signer.verifier();
    Checkpoint::open(note, origin, std::slice::from_ref(&verifier)).map_err(|e| {
        anyhow::anyhow!(
            "the ledger's latest checkpoint does not verify with the log key in {} ({e}): \
             the key was replaced; restore the one that signed the ledger",
            key_path.display()
        )
    })?;
    Ok(())
}
