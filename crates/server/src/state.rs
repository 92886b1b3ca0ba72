//! Everything a request needs, built once at start: store and appender, keys, the
//! screener, the active policy, the clock. Handlers get it as `State<AppState>`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use sealgate_core::seal::{jwk, Ed25519SealSigner};
use sealgate_core::timefmt::Clock;
use sealgate_ledger::NoteSigner;
use sealgate_policy::PreparedPolicy;
use sealgate_screen::{ScreenConfig, Screener};
use sealgate_store::{Appender, Store};
use sealgate_store_sqlite::SqliteStore;
use time::OffsetDateTime;
use tracing::info;

use crate::auth::AuthCache;
use crate::keystore;
use crate::metrics::Metrics;
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
    pub seal_signer: Ed25519SealSigner,
    /// Signs checkpoints as a C2SP note named after the log's origin.
    pub log_signer: NoteSigner,
    pub seal_keys: HashMap<String, VerifyingKey>,
    pub jwks: serde_json::Value,
    pub clock: Arc<dyn Clock>,
    pub auth: AuthCache,
    pub metrics: Arc<Metrics>,
    pub active_policy: RwLock<Option<Arc<ActivePolicy>>>,
    /// Compiled bundles by version, so rollback does not recompile.
    pub prepared: RwLock<HashMap<String, Arc<PreparedPolicy>>>,
    /// Serialises activations so each names the right previous version.
    pub activation_lock: tokio::sync::Mutex<()>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Opens the store named by `settings`, loads or creates keys, activates the
    /// shipped policy on first start and writes the bootstrap admin token.
    pub async fn open(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
        keystore::ensure_data_dir(&settings.data_dir)?;
        let store: Arc<dyn Store> = match &settings.database_url {
            Some(_) => anyhow::bail!(
                "--database-url: the PostgreSQL backend is not wired into this build yet; run without it for the embedded store"
            ),
            None => {
                let path = settings.data_dir.join("ledger.db");
                let store = SqliteStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
                info!(path = %path.display(), "embedded SQLite store opened");
                Arc::new(store)
            }
        };
        AppState::with_store(settings, store, clock).await
    }

    pub async fn with_store(
        settings: Settings,
        store: Arc<dyn Store>,
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
        let (note_key, created) = keystore::load_or_create_key(&log_key_path)?;
        log_key("checkpoint", &log_key_path, created);
        let log_signer = NoteSigner::new(settings.origin.clone(), note_key).map_err(|e| {
            anyhow::anyhow!("origin {:?} cannot name a note key: {e}", settings.origin)
        })?;

        let metrics = Arc::new(Metrics::default());
        let observer = {
            let metrics = metrics.clone();
            Arc::new(move |n: usize| metrics.observe_batch(n))
                as sealgate_store::appender::BatchObserver
        };
        let appender = Appender::spawn(store.clone(), settings.max_batch, Some(observer));
        let screener = Screener::new(ScreenConfig::default()).context("compiling the screeners")?;

        let state = AppState(Arc::new(Inner {
            settings,
            store,
            appender,
            screener,
            seal_signer,
            log_signer,
            seal_keys,
            jwks,
            clock,
            auth: AuthCache::default(),
            metrics,
            active_policy: RwLock::new(None),
            prepared: RwLock::new(HashMap::new()),
            activation_lock: tokio::sync::Mutex::new(()),
        }));
        service::policies::load_active(&state).await?;
        service::keys::bootstrap_admin(&state).await?;
        service::ledger::announce(&state);
        tokio::spawn(service::ledger::run_checkpointer(state.clone()));
        Ok(state)
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn active_policy(&self) -> Option<Arc<ActivePolicy>> {
        self.active_policy.read().ok().and_then(|p| p.clone())
    }
}

fn log_key(purpose: &str, path: &Path, created: bool) {
    if created {
        info!(purpose, path = %path.display(), "generated a new Ed25519 key");
    } else {
        info!(purpose, path = %path.display(), "loaded Ed25519 key");
    }
}
