//! Bearer-token authentication and role checks. Tokens are stored hashed; a short-lived
//! in-process cache keeps the hot path off the store, and a revocation made here
//! clears it at once (other replicas see it within `CACHE_TTL`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use sealgate_core::Role;
use sealgate_store::{token_hash, ApiKey, Store};

use crate::error::ApiError;
use crate::extract::bearer;

const CACHE_TTL: Duration = Duration::from_secs(5);
const CACHE_MAX: usize = 10_000;

/// What a token hash looked up to (None: no live key) and when it was looked up.
type Lookup = (Option<ApiKey>, Instant);

#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<[u8; 32], Lookup>>,
}

impl AuthCache {
    /// The caller's key, if the request carries a live token whose role permits `required`.
    /// 401 when the token is missing or unknown, 403 when its role does not fit.
    pub async fn require(
        &self,
        store: &dyn Store,
        headers: &HeaderMap,
        required: Role,
    ) -> Result<ApiKey, ApiError> {
        let token = bearer(headers).ok_or(ApiError::Unauthenticated)?;
        let hash = token_hash(token);
        let key = match self.cached(&hash) {
            Some(key) => key,
            None => {
                let key = store.key_by_hash(&hash).await?;
                self.remember(hash, key.clone());
                key
            }
        };
        let key = key.ok_or(ApiError::Unauthenticated)?;
        if !key.role.permits(required) {
            return Err(ApiError::Forbidden {
                required: required.as_str(),
            });
        }
        Ok(key)
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Option<ApiKey>> {
        let entries = self.entries.lock().ok()?;
        let (key, at) = entries.get(hash)?;
        (at.elapsed() < CACHE_TTL).then(|| key.clone())
    }

    fn remember(&self, hash: [u8; 32], key: Option<ApiKey>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_MAX {
                entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                if entries.len() >= CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(hash, (key, Instant::now()));
        }
    }

    /// Forgets every cached key with this id (after a revocation).
    pub fn forget(&self, key_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (key, _)| key.as_ref().is_none_or(|k| k.id != key_id));
        }
    }
}
