//! Policy bundles: upload (validated by compiling), list, activate, roll back.
//!
//! Activation is a ledger entry, and the active version is whatever the latest
//! `policy_activated` entry names — so the ledger alone says which policy decided
//! what. Bundles are compiled once per version and kept, so rollback is instant.

use std::collections::BTreeMap;
use std::sync::Arc;

use sealgate_core::entry::{Entry, PolicyActivation};
use sealgate_policy::{Bundle, BundleError, PreparedPolicy};
use sealgate_store::{ActiveVersion, ApiKey, NewEntry, NewPolicy, Store, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::info;

use crate::error::ApiError;
use crate::extract::only_fields;
use crate::service::now_str;
use crate::state::{ActivePolicy, AppState};

/// The policy a fresh gateway starts with: the Relay report's finance limits.
pub const SHIPPED_POLICY: (&str, &str) = (
    "finance.rego",
    include_str!("../../../../policies/finance.rego"),
);

#[derive(Debug, Serialize)]
pub struct Uploaded {
    pub version: String,
    /// False when this exact bundle was uploaded before.
    pub created: bool,
}

#[derive(Debug, Serialize)]
pub struct PolicyInfo {
    pub version: String,
    pub uploaded_at: String,
    pub uploaded_by: String,
    pub active: bool,
}

#[derive(Debug, Serialize)]
pub struct PolicyList {
    pub active: Option<String>,
    pub policies: Vec<PolicyInfo>,
}

#[derive(Debug, Serialize)]
pub struct Activated {
    pub version: String,
    pub previous_version: Option<String>,
    pub ledger_index: u64,
}

/// Parses an upload body: `{"files": {"name.rego": "source", ...}, "data": {...}}`.
fn bundle_from_body(body: &Map<String, Value>) -> Result<Bundle, ApiError> {
    only_fields(body, &["files", "data"])?;
    let files = match body.get("files") {
        Some(Value::Object(files)) => files,
        Some(_) => {
            return Err(ApiError::bad_request(
                "/files",
                "expected an object of file name to Rego source",
            ))
        }
        None => return Err(ApiError::bad_request("/files", "missing required field")),
    };
    let mut sources = BTreeMap::new();
    for (name, source) in files {
        let Value::String(source) = source else {
            return Err(ApiError::bad_request(
                format!("/files/{}", sealgate_core::manifest::escape_pointer(name)),
                "expected the file's Rego source as a string",
            ));
        };
        sources.insert(name.clone(), source.clone());
    }
    let data = body.get("data").cloned();
    Bundle::new(sources, data).map_err(|e| ApiError::bad_request(bundle_field(&e), e.to_string()))
}

/// The member of an upload body a refusal is about.
fn bundle_field(e: &BundleError) -> String {
    use sealgate_core::manifest::escape_pointer;
    match e {
        BundleError::InvalidName { name, .. } | BundleError::FileTooLarge { name, .. } => {
            format!("/files/{}", escape_pointer(name))
        }
        // Sources are strings: only the data document can fail to canonicalize.
        BundleError::DataNotObject | BundleError::Canonical(_) => "/data".into(),
        BundleError::TooLarge(_) => "/".into(),
        _ => "/files".into(),
    }
}

fn prepare(
    state: &AppState,
    version: &str,
    bundle: &Bundle,
) -> Result<Arc<PreparedPolicy>, ApiError> {
    if let Some(p) = state
        .prepared
        .read()
        .ok()
        .and_then(|m| m.get(version).cloned())
    {
        return Ok(p);
    }
    let prepared = Arc::new(
        PreparedPolicy::prepare(bundle)
            .map_err(|e| ApiError::Unprocessable(format!("policy does not compile: {e}")))?,
    );
    if let Ok(mut m) = state.prepared.write() {
        m.insert(version.to_owned(), prepared.clone());
    }
    Ok(prepared)
}

pub async fn upload(
    state: &AppState,
    caller: &ApiKey,
    body: Map<String, Value>,
) -> Result<Uploaded, ApiError> {
    let bundle = bundle_from_body(&body)?;
    let version = bundle.version().to_string();
    prepare(state, &version, &bundle)?;
    let created = state
        .store
        .put_policy(&NewPolicy {
            version: version.clone(),
            bundle: bundle.canonical_bytes().to_vec(),
            uploaded_at: now_str(state),
            uploaded_by: caller.id.clone(),
        })
        .await?;
    info!(version, created, "policy bundle uploaded");
    Ok(Uploaded { version, created })
}

pub async fn list(state: &AppState) -> Result<PolicyList, ApiError> {
    let active = state.active_policy().map(|p| p.version.clone());
    let policies = state
        .store
        .policies()
        .await?
        .into_iter()
        .map(|p| PolicyInfo {
            active: active.as_deref() == Some(p.version.as_str()),
            version: p.version,
            uploaded_at: p.uploaded_at,
            uploaded_by: p.uploaded_by,
        })
        .collect();
    Ok(PolicyList { active, policies })
}

/// The stored bundle of `version`, as uploaded (canonical form); one that no longer
/// hashes to its version is refused as [`load_bundle`] refuses it.
pub async fn get(state: &AppState, version: &str) -> Result<Value, ApiError> {
    let bundle = load_bundle(state, version).await?;
    serde_json::to_value(&bundle)
        .map_err(|e| ApiError::Internal(format!("stored bundle {version}: {e}")))
}

/// The stored bundle of `version`, which must hash to `version`.
async fn load_bundle(state: &AppState, version: &str) -> Result<Bundle, ApiError> {
    let stored = state
        .store
        .policy(version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no policy {version}")))?;
    stored_bundle(version, &stored.bundle).map_err(ApiError::Internal)
}

/// The bundle stored as `version`, or why it is not the one `version` names. A version
/// names the bundle's content, and decisions record the version: a bundle edited in
/// the store (the triggers dropped) must not decide under the old name. Byte for byte
/// the canonical form it was stored in: another spelling of the same content (`1.0`
/// for `1`) hashes alike but may read differently.
fn stored_bundle(version: &str, bytes: &[u8]) -> Result<Bundle, String> {
    let bundle: Bundle =
        serde_json::from_slice(bytes).map_err(|e| format!("stored bundle {version}: {e}"))?;
    if bundle.version().as_str() != version || bundle.canonical_bytes() != bytes {
        return Err(format!(
            "stored bundle {version} hashes to {} or is not in canonical form: it was changed \
             outside sealgate; refusing to use it",
            bundle.version().as_str()
        ));
    }
    Ok(bundle)
}

/// For the scheduled integrity check: the policy the activations table puts in charge
/// is one the ledger activated, and its stored bundle is the one its version names.
/// `Ok(Some(what))` names what does not hold.
pub async fn check_in_charge(store: &dyn Store) -> Result<Option<String>, StoreError> {
    let Some(active) = store.active_policy().await? else {
        return Ok(None);
    };
    if let Some(finding) = activation_finding(store, &active).await? {
        return Ok(Some(finding));
    }
    let Some(stored) = store.policy(&active.version).await? else {
        return Ok(Some(format!(
            "the active policy {} has no stored bundle",
            active.version
        )));
    };
    Ok(stored_bundle(&active.version, &stored.bundle).err())
}

pub async fn activate(
    state: &AppState,
    activated_by: &str,
    version: &str,
) -> Result<Activated, ApiError> {
    let _one_at_a_time = state.activation_lock.lock().await;
    let bundle = load_bundle(state, version).await?;
    let prepared = prepare(state, version, &bundle)?;
    let previous_version = active_version(state).await?;
    let entry = Entry::PolicyActivated(PolicyActivation {
        server_time: now_str(state),
        version: version.to_owned(),
        previous_version: previous_version.clone(),
        activated_by: activated_by.to_owned(),
    });
    let new =
        NewEntry::new(entry).map_err(|e| ApiError::Internal(format!("canonical entry: {e}")))?;
    let appended = state
        .appender
        .append(new)
        .await?
        .map_err(|r| ApiError::Internal(format!("activation rejected: {r}")))?;
    set_active(state, version, prepared);
    info!(
        version,
        previous = previous_version.as_deref().unwrap_or("none"),
        "policy activated"
    );
    Ok(Activated {
        version: version.to_owned(),
        previous_version,
        ledger_index: appended.index,
    })
}

fn set_active(state: &AppState, version: &str, prepared: Arc<PreparedPolicy>) {
    if let Ok(mut active) = state.active_policy.write() {
        *active = Some(Arc::new(ActivePolicy {
            version: version.to_owned(),
            prepared,
        }));
    }
}

/// The active version, as the activations table names it and the entry that row
/// points to confirms.
async fn active_version(state: &AppState) -> Result<Option<String>, ApiError> {
    match state.store.active_policy().await? {
        Some(active) => Ok(Some(confirmed(state, active).await?)),
        None => Ok(None),
    }
}

/// `active`'s version, once the ledger entry at its index is the activation of that
/// version. The server takes the activation of the highest index: a row added to
/// the table behind its back (the triggers dropped), beyond the ledger's end or over
/// another entry, would otherwise put another stored policy in charge with no entry
/// saying so.
async fn confirmed(state: &AppState, active: ActiveVersion) -> Result<String, ApiError> {
    match activation_finding(state.store.as_ref(), &active).await? {
        Some(what) => Err(ApiError::Internal(what)),
        None => Ok(active.version),
    }
}

/// Why the ledger does not back `active`, if it does not.
async fn activation_finding(
    store: &dyn Store,
    active: &ActiveVersion,
) -> Result<Option<String>, StoreError> {
    let ActiveVersion { index, version } = active;
    // Inside the log: an entry written beside it, beyond the head, is in no tree.
    let inside = *index < store.tree_size().await?;
    let entry = if inside {
        store.entry(*index).await?
    } else {
        None
    };
    let activates = entry.is_some_and(|e| {
        matches!(Entry::from_canonical(&e.canonical),
                 Ok(Entry::PolicyActivated(p)) if p.version == *version)
    });
    Ok((!activates).then(|| {
        format!(
            "the policy_activations row at {index} names {version}, but ledger entry {index} \
             is not its activation: the table was changed outside sealgate; refusing that policy"
        )
    }))
}

/// At start: compile the active policy; on a fresh ledger, upload and activate the
/// shipped one (both recorded, so a restart finds them and creates nothing new).
pub async fn load_active(state: &AppState) -> anyhow::Result<()> {
    match active_version(state)
        .await
        .map_err(|e| anyhow::anyhow!("finding the active policy: {}", e.for_log()))?
    {
        Some(version) => {
            let bundle = load_bundle(state, &version)
                .await
                .map_err(|e| anyhow::anyhow!("loading active policy {version}: {}", e.for_log()))?;
            let prepared = prepare(state, &version, &bundle)
                .map_err(|e| anyhow::anyhow!("active policy {version}: {e}"))?;
            set_active(state, &version, prepared);
            info!(version, "active policy loaded");
        }
        None => {
            let bundle = Bundle::new(
                BTreeMap::from([(SHIPPED_POLICY.0.to_owned(), SHIPPED_POLICY.1.to_owned())]),
                None,
            )
            .map_err(|e| anyhow::anyhow!("shipped policy: {e}"))?;
            let version = bundle.version().to_string();
            prepare(state, &version, &bundle)
                .map_err(|e| anyhow::anyhow!("shipped policy: {e}"))?;
            state
                .store
                .put_policy(&NewPolicy {
                    version: version.clone(),
                    bundle: bundle.canonical_bytes().to_vec(),
                    uploaded_at: now_str(state),
                    uploaded_by: "bootstrap".into(),
                })
                .await?;
            activate(state, "bootstrap", &version)
                .await
                .map_err(|e| anyhow::anyhow!("activating shipped policy: {}", e.for_log()))?;
        }
    }
    Ok(())
}

/// Loads the policy named by the latest activation if it is not the one in force here:
/// with replicas sharing one store, another replica may have activated it. Returns the
/// version switched to, if any.
pub async fn sync_active(state: &AppState) -> Result<Option<String>, ApiError> {
    // Under the activation lock, so a local activation's append and switch are not
    // overtaken by a read from before it.
    let _one_at_a_time = state.activation_lock.lock().await;
    let Some(active) = state.store.active_policy().await? else {
        return Ok(None);
    };
    // Confirmed even when it names the version in force: a row that contradicts the
    // ledger is reported, not silently followed.
    let version = confirmed(state, active).await?;
    if state.active_policy().is_some_and(|p| p.version == version) {
        return Ok(None);
    }
    let bundle = load_bundle(state, &version).await?;
    let prepared = prepare(state, &version, &bundle)?;
    set_active(state, &version, prepared);
    Ok(Some(version))
}

/// Follows activations made by other replicas: checks every `every`. Runs until the
/// process ends; a failed check is logged and retried on the next tick (decisions
/// meanwhile use the policy in force here, as recorded in each entry).
pub async fn follow_active(state: AppState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last internal failure logged: logged again only when it changes.
    let mut reported: Option<String> = None;
    loop {
        tick.tick().await;
        match sync_active(&state).await {
            Ok(Some(version)) => {
                reported = None;
                info!(version, "policy activated by another replica loaded")
            }
            Ok(None) => reported = None,
            // Not a passing outage: a table that contradicts the ledger, or a bug. The
            // policy in force stays in force.
            Err(e @ ApiError::Internal(_)) => {
                let detail = e.for_log();
                if reported.as_deref() != Some(detail.as_str()) {
                    tracing::error!(error = %detail, "policy follow check failed; the policy in force stays");
                    reported = Some(detail);
                }
            }
            Err(e) => {
                tracing::debug!(error = %crate::scrub::scrub(&e.to_string()), "policy follow check failed")
            }
        }
    }
}
