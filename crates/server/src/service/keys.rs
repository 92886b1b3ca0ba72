//! API keys: created with a one-time token (stored only as its hash), revoked by id.

use sealgate_core::Role;
use sealgate_store::{token_hash, ApiKey, NewApiKey, Revocation};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::info;

use crate::error::ApiError;
use crate::extract::{only_fields, string_field};
use crate::keystore;
use crate::service::now_str;
use crate::state::AppState;

#[derive(Serialize)]
pub struct CreatedKey {
    pub id: String,
    pub role: Role,
    pub name: String,
    /// Shown only in this response; the server keeps only its hash.
    pub token: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

const MAX_NAME: usize = 128;

pub async fn create(
    state: &AppState,
    caller: &ApiKey,
    body: Map<String, Value>,
) -> Result<CreatedKey, ApiError> {
    only_fields(&body, &["role", "name"])?;
    let role: Role =
        string_field(&body, "role")?
            .parse()
            .map_err(|e: sealgate_core::role::UnknownRole| {
                ApiError::bad_request("/role", e.to_string())
            })?;
    let name = match body.get("name") {
        None | Some(Value::Null) => format!("{role} key"),
        Some(Value::String(s))
            if !s.trim().is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control) =>
        {
            s.clone()
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "/name",
                format!("expected a non-empty string of at most {MAX_NAME} bytes"),
            ))
        }
    };
    let (id, token) = insert(state, role, &name).await?;
    info!(key_id = %id, role = %role, created_by = %caller.id, "API key created");
    Ok(CreatedKey {
        id,
        role,
        name,
        token,
    })
}

async fn insert(state: &AppState, role: Role, name: &str) -> Result<(String, String), ApiError> {
    let token = keystore::new_token();
    let id = keystore::new_key_id();
    state
        .store
        .create_key(&NewApiKey {
            id: id.clone(),
            role,
            name: name.to_owned(),
            token_hash: token_hash(token.expose_secret()),
            created_at: now_str(state),
        })
        .await?;
    Ok((id, token.expose_secret().to_owned()))
}

pub async fn revoke(state: &AppState, caller: &ApiKey, id: &str) -> Result<(), ApiError> {
    match state.store.revoke_key(id, &now_str(state)).await? {
        Revocation::Revoked => {}
        Revocation::NotLive => return Err(ApiError::NotFound(format!("no live key {id}"))),
        Revocation::LastAdmin => {
            return Err(ApiError::Conflict(format!(
                "{id} is the last live admin key: create another admin key before revoking it \
                 (without one, no key could be created or revoked again)"
            )))
        }
    }
    state.auth.forget(id);
    info!(key_id = %id, revoked_by = %caller.id, "API key revoked");
    Ok(())
}

/// On the very first start (no key was ever created), creates an admin key and
/// writes its token to `<data-dir>/admin-token` (mode 0600). Logs the path only.
pub async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    let path = keystore::admin_token_path(&state.settings.data_dir);
    if state.store.key_count().await? > 0 {
        if !path.exists() {
            info!(path = %path.display(), "admin token file absent; keys exist, so none is created");
        }
        return Ok(());
    }
    let token = keystore::new_token();
    let id = keystore::new_key_id();
    // File first: if the store insert then fails, the unusable file is removed again.
    keystore::write_admin_token(&path, &token)?;
    let created = state
        .store
        .create_key(&NewApiKey {
            id: id.clone(),
            role: Role::Admin,
            name: "bootstrap admin".into(),
            token_hash: token_hash(token.expose_secret()),
            created_at: now_str(state),
        })
        .await;
    if let Err(e) = created {
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    info!(key_id = %id, path = %path.display(), "bootstrap admin token written");
    Ok(())
}
