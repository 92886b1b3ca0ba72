//! The ledger as evidence: entries with their leaf hashes, RFC 6962 inclusion and
//! consistency proofs from stored tree nodes (O(log n) reads, nothing rehashed),
//! signed C2SP checkpoints, and the read-only C2SP tlog-tiles view.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sealgate_ledger::tiles::{encode_bundle, encode_hash_tile};
use sealgate_ledger::{
    consistency_plan, inclusion_plan, Checkpoint, NoteSigner, ProofPlan, Tile, TileKind,
};
use sealgate_store::{NewCheckpoint, Store};
use serde::Serialize;
use serde_json::value::RawValue;
use tracing::{info, warn};

use crate::error::ApiError;
use crate::extract::{decimal, query_params};
use crate::service::now_str;
use crate::state::AppState;

/// An entry as stored: `entry` is its canonical bytes spliced in verbatim, and
/// `canonical` the same bytes in base64, for clients whose JSON parser would not give
/// them back byte for byte (number spellings, key order); the leaf hash is
/// SHA-256(0x00 ‖ those bytes).
#[derive(Debug, Serialize)]
pub struct EntryView {
    pub index: u64,
    pub leaf_hash: String,
    pub canonical: String,
    pub entry: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub proof: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ConsistencyProof {
    pub first: u64,
    pub second: u64,
    pub proof: Vec<String>,
}

async fn assemble(store: &dyn Store, plan: &ProofPlan) -> Result<Vec<[u8; 32]>, ApiError> {
    Ok(sealgate_store::assemble(store, plan).await?)
}

/// Root of the tree of `size` leaves, from stored nodes.
pub async fn root(store: &dyn Store, size: u64) -> Result<[u8; 32], ApiError> {
    Ok(sealgate_store::root(store, size).await?)
}

pub async fn entry(state: &AppState, index: &str) -> Result<EntryView, ApiError> {
    let index = decimal(index).ok_or_else(|| {
        ApiError::bad_request(
            "index",
            "expected a non-negative integer (digits, no leading zero)",
        )
    })?;
    let e = state
        .store
        .entry(index)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no entry {index}")))?;
    let text = String::from_utf8(e.canonical)
        .map_err(|_| ApiError::Internal(format!("entry {index} is not UTF-8")))?;
    let canonical = B64.encode(text.as_bytes());
    let entry = RawValue::from_string(text)
        .map_err(|err| ApiError::Internal(format!("entry {index} is not JSON: {err}")))?;
    Ok(EntryView {
        index,
        leaf_hash: B64.encode(e.leaf_hash),
        canonical,
        entry,
    })
}

fn number(pairs: &[(String, String)], name: &str) -> Result<Option<u64>, ApiError> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| {
            decimal(v).ok_or_else(|| {
                ApiError::bad_request(
                    name,
                    "expected a non-negative integer (digits, no leading zero)",
                )
            })
        })
        .transpose()
}

pub async fn inclusion(state: &AppState, query: Option<&str>) -> Result<InclusionProof, ApiError> {
    let pairs = query_params(query, &["index", "tree_size"])?;
    let index = number(&pairs, "index")?
        .ok_or_else(|| ApiError::bad_request("index", "missing required parameter"))?;
    let current = state.store.tree_size().await?;
    let given = number(&pairs, "tree_size")?;
    if given.is_none() && current == 0 {
        return Err(ApiError::bad_request(
            "index",
            "the ledger is empty: there is no entry to prove",
        ));
    }
    let tree_size = given.unwrap_or(current);
    if tree_size > current {
        return Err(ApiError::bad_request(
            "tree_size",
            format!("the ledger has only {current} entries"),
        ));
    }
    if tree_size == 0 {
        return Err(ApiError::bad_request(
            "tree_size",
            "must be at least 1: the empty tree includes nothing",
        ));
    }
    if index >= tree_size {
        return Err(ApiError::bad_request(
            "index",
            format!("must be below tree_size {tree_size}"),
        ));
    }
    let plan = inclusion_plan(index, tree_size)
        .map_err(|e| ApiError::bad_request("index", e.to_string()))?;
    let proof = assemble(state.store.as_ref(), &plan).await?;
    let leaf = state
        .store
        .nodes(&[sealgate_ledger::NodeId::leaf(index)])
        .await?;
    let leaf = leaf
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| ApiError::Internal(format!("leaf {index} missing")))?;
    Ok(InclusionProof {
        index,
        tree_size,
        leaf_hash: B64.encode(leaf),
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
    })
}

pub async fn consistency(
    state: &AppState,
    query: Option<&str>,
) -> Result<ConsistencyProof, ApiError> {
    let pairs = query_params(query, &["first", "second"])?;
    let first = number(&pairs, "first")?
        .ok_or_else(|| ApiError::bad_request("first", "missing required parameter"))?;
    let current = state.store.tree_size().await?;
    let second = number(&pairs, "second")?.unwrap_or(current);
    if second > current {
        return Err(ApiError::bad_request(
            "second",
            format!("the ledger has only {current} entries"),
        ));
    }
    if first > second {
        return Err(ApiError::bad_request(
            "first",
            format!("{first} is above second ({second}): a tree is consistent with its past, not its future"),
        ));
    }
    if second == 0 {
        return Err(ApiError::bad_request(
            "second",
            "the empty tree is consistent with every tree: there is nothing to prove",
        ));
    }
    if first == 0 || first > second {
        return Err(ApiError::bad_request(
            "first",
            format!("must be in 1..={second}"),
        ));
    }
    let plan = consistency_plan(first, second)
        .map_err(|e| ApiError::bad_request("first", e.to_string()))?;
    let proof = assemble(state.store.as_ref(), &plan).await?;
    Ok(ConsistencyProof {
        first,
        second,
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
    })
}

/// The latest signed checkpoint, making one first if the log has none yet.
pub async fn latest_checkpoint(state: &AppState) -> Result<String, ApiError> {
    if let Some(cp) = state.store.latest_checkpoint().await? {
        return Ok(cp.note);
    }
    write_checkpoint(state).await?;
    state
        .store
        .latest_checkpoint()
        .await?
        .map(|c| c.note)
        .ok_or_else(|| ApiError::Internal("checkpoint written but not found".into()))
}

/// Signs and stores a checkpoint of the current tree if it grew since the last one.
/// Returns the size checkpointed, or None when nothing changed.
pub async fn write_checkpoint(state: &AppState) -> Result<Option<u64>, ApiError> {
    let _one_at_a_time = state.checkpoint_lock.lock().await;
    let size = state.store.tree_size().await?;
    let latest = state.store.latest_checkpoint().await?;
    if latest.as_ref().is_some_and(|c| c.tree_size >= size) {
        return Ok(None);
    }
    let root = root(state.store.as_ref(), size).await?;
    let note = sign_checkpoint(&state.log_signer, &state.settings.origin, size, root)?;
    state
        .store
        .put_checkpoint(&NewCheckpoint {
            tree_size: size,
            note,
            created_at: now_str(state),
        })
        .await?;
    Ok(Some(size))
}

fn sign_checkpoint(
    signer: &NoteSigner,
    origin: &str,
    size: u64,
    root: [u8; 32],
) -> Result<String, ApiError> {
    Checkpoint::new(origin, size, root)
        .sign(signer)
        .map_err(|e| ApiError::Internal(format!("signing checkpoint: {e}")))
}

/// Writes a checkpoint at most every `interval` while entries arrive, while this
/// replica leads the log (`Store::try_lead`). Runs until the process ends.
pub async fn run_checkpointer(state: AppState) {
    let mut tick = tokio::time::interval(state.settings.checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // With replicas sharing the store only the leader signs; the others keep
        // asking, so one of them takes over within a tick when the leader dies.
        let leading = match state.store.try_lead().await {
            Ok(leading) => leading,
            Err(e) => {
                tracing::debug!(error = %crate::scrub::scrub(&e.to_string()), "leadership check failed");
                false
            }
        };
        state.set_leading(leading);
        if !leading {
            continue;
        }
        match write_checkpoint(&state).await {
            Ok(Some(size)) => tracing::debug!(size, "checkpoint signed"),
            Ok(None) => {}
            Err(ApiError::Unavailable(e)) => {
                warn!(error = %crate::scrub::scrub(&e), "checkpoint skipped: store unavailable")
            }
            Err(e) => warn!(error = %crate::scrub::scrub(&e.to_string()), "checkpoint failed"),
        }
    }
}

/// How long a stopping server may spend on its last checkpoint.
const FINAL_CHECKPOINT_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Signs a last checkpoint when the server stops, after its requests are answered and
/// every entry handed to the appender (a requester that gave up still has one) has
/// committed: entries committed since the last tick would otherwise stay unsigned
/// until the next start, or for good when the server is retired. Only the replica that
/// leads the log signs, as on every tick; a store that stalls does not hold up the stop.
pub async fn sign_on_shutdown(state: &AppState) {
    let last = async {
        state.appender.settle().await;
        if !matches!(state.store.try_lead().await, Ok(true)) {
            return Ok(None);
        }
        write_checkpoint(state).await
    };
    match tokio::time::timeout(FINAL_CHECKPOINT_WITHIN, last).await {
        Ok(Ok(Some(size))) => info!(size, "final checkpoint signed"),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => warn!(
            error = %crate::scrub::scrub(&e.to_string()),
            "final checkpoint failed; the next start signs it"
        ),
        Err(_) => warn!(
            "final checkpoint not signed within {} s; the next start signs it",
            FINAL_CHECKPOINT_WITHIN.as_secs()
        ),
    }
}

/// A C2SP tlog-tiles resource: `checkpoint`, `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
pub async fn tile(state: &AppState, path: &str) -> Result<Vec<u8>, ApiError> {
    let tile = Tile::parse(path).map_err(|e| ApiError::NotFound(format!("{path}: {e}")))?;
    let size = state.store.tree_size().await?;
    if !tile.fits(size) {
        return Err(ApiError::NotFound(format!(
            "{path} is beyond the tree of {size} entries"
        )));
    }
    match tile.kind() {
        TileKind::Entries => {
            let leaves = tile
                .leaves()
                .ok_or_else(|| ApiError::NotFound(path.to_owned()))?;
            let entries = state.store.range(leaves.start, leaves.end).await?;
            if entries.len() as u64 != leaves.end - leaves.start {
                return Err(ApiError::Internal(format!("entries {leaves:?} incomplete")));
            }
            encode_bundle(entries.iter().map(|e| e.canonical.as_slice()))
                .map_err(|e| ApiError::Internal(format!("entry bundle: {e}")))
        }
        TileKind::Hashes { .. } => {
            let ids = tile
                .node_ids()
                .map_err(|e| ApiError::NotFound(format!("{path}: {e}")))?;
            let hashes = state.store.nodes(&ids).await?;
            let hashes: Option<Vec<[u8; 32]>> = hashes.into_iter().collect();
            let hashes =
                hashes.ok_or_else(|| ApiError::Internal(format!("{path}: tree nodes missing")))?;
            Ok(encode_hash_tile(&hashes))
        }
    }
}

/// Logs the log's identity at start.
pub fn announce(state: &AppState) {
    info!(verifier_key = %state.log_signer.verifier(), "ledger checkpoint key");
}
