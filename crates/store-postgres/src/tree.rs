//! The Merkle tree's stored nodes: reading any set of them in one query, and the
//! append frontier rebuilt from them.
//!
//! Level 0 is `entries.leaf_hash`; levels >= 1 are `tree_nodes`, written by the append
//! transaction that completes them. The frontier (one node per set bit of the tree
//! size) is all an append needs to compute the nodes its leaves complete. It is read
//! under the log-head lock, or taken from the per-process cache only when the cache
//! is for exactly the size the lock handed out: another replica may have appended
//! since, and the ledger being append-only makes a frontier for the same size the
//! same frontier.

use std::sync::Mutex;

use sealgate_ledger::{Frontier, NodeId};
use sealgate_store::StoreError;
use tokio_postgres::Row;

use crate::error::map_pg;
use crate::hash32;

/// Every asked node (level, idx), numbered by position; the hash or NULL when the
/// node is not (yet) stored. One round trip whatever the mix of levels.
pub(crate) const READ_NODES: &str = "SELECT n.ord, COALESCE(e.leaf_hash, t.hash)
    FROM unnest($1::smallint[], $2::bigint[]) WITH ORDINALITY AS n(level, idx, ord)
    LEFT JOIN entries e ON n.level = 0 AND e.idx = n.idx
    LEFT JOIN tree_nodes t ON n.level > 0 AND t.level = n.level AND t.idx = n.idx";

pub(crate) const INSERT_NODES: &str = "INSERT INTO tree_nodes (level, idx, hash)
    SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])";

/// The parameters of `READ_NODES` for `ids`, and for each queried node its position in
/// `ids`. Nodes beyond bigint range cannot be stored and are left out (answered None).
pub(crate) struct NodeQuery {
    pub(crate) levels: Vec<i16>,
    pub(crate) indices: Vec<i64>,
    positions: Vec<usize>,
    len: usize,
}

impl NodeQuery {
    pub(crate) fn new(ids: &[NodeId]) -> NodeQuery {
        let mut q = NodeQuery {
            levels: Vec::with_capacity(ids.len()),
            indices: Vec::with_capacity(ids.len()),
            positions: Vec::with_capacity(ids.len()),
            len: ids.len(),
        };
        for (at, id) in ids.iter().enumerate() {
            if let Ok(idx) = i64::try_from(id.index) {
                q.levels.push(i16::from(id.level));
                q.indices.push(idx);
                q.positions.push(at);
            }
        }
        q
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Places the rows of `READ_NODES` at the positions asked.
    pub(crate) fn answer(&self, rows: &[Row]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        let mut out = vec![None; self.len];
        for row in rows {
            let ord: i64 = row.try_get(0).map_err(map_pg)?;
            let hash: Option<Vec<u8>> = row.try_get(1).map_err(map_pg)?;
            let at = usize::try_from(ord - 1)
                .ok()
                .and_then(|i| self.positions.get(i))
                .ok_or_else(|| StoreError::Backend(format!("node row {ord} out of range")))?;
            out[*at] = hash.map(hash32).transpose()?;
        }
        Ok(out)
    }
}

/// The frontier of the tree of `size` leaves, read inside `tx` (one query).
pub(crate) async fn load_frontier(
    tx: &deadpool_postgres::Transaction<'_>,
    size: i64,
) -> Result<Frontier, StoreError> {
    let size = u64::try_from(size)
        .map_err(|_| StoreError::Backend(format!("negative log head {size}")))?;
    let ids = Frontier::node_ids(size);
    let q = NodeQuery::new(&ids);
    let hashes = if q.is_empty() {
        Vec::new()
    } else {
        let stmt = tx.prepare_cached(READ_NODES).await.map_err(map_pg)?;
        let rows = tx
            .query(&stmt, &[&q.levels, &q.indices])
            .await
            .map_err(map_pg)?;
        q.answer(&rows)?
    };
    sealgate_store::frontier_from_nodes(size, hashes)
}

/// The frontier of the last batch this process committed, keyed by its size.
#[derive(Debug, Default)]
pub(crate) struct FrontierCache(Mutex<Option<Frontier>>);

impl FrontierCache {
    /// The cached frontier if it is for exactly `size` leaves.
    pub(crate) fn get(&self, size: i64) -> Option<Frontier> {
        let size = u64::try_from(size).ok()?;
        let cached = self.0.lock().ok()?;
        cached.as_ref().filter(|f| f.size() == size).cloned()
    }

    /// Remembers a committed frontier, unless one for a larger tree is already known.
    pub(crate) fn put(&self, frontier: Frontier) {
        if let Ok(mut cached) = self.0.lock() {
            if cached.as_ref().is_none_or(|c| c.size() < frontier.size()) {
                *cached = Some(frontier);
            }
        }
    }
}

/// Leaf hashes read per round trip while backfilling.
const BACKFILL_PAGE: i64 = 10_000;

/// Writes the tree nodes of a ledger that has entries from before `tree_nodes`
/// existed (migration 3 on a database in use), in the migration's transaction.
/// Returns how many nodes it wrote; on an empty ledger, none.
pub(crate) async fn backfill(tx: &tokio_postgres::Transaction<'_>) -> Result<u64, StoreError> {
    let page = tx
        .prepare("SELECT idx, leaf_hash FROM entries WHERE idx >= $1 ORDER BY idx LIMIT $2")
        .await
        .map_err(map_pg)?;
    let insert = tx.prepare(INSERT_NODES).await.map_err(map_pg)?;
    let mut frontier = Frontier::new();
    let mut next = 0i64;
    let mut written = 0;
    loop {
        let rows = tx
            .query(&page, &[&next, &BACKFILL_PAGE])
            .await
            .map_err(map_pg)?;
        if rows.is_empty() {
            return Ok(written);
        }
        let (mut levels, mut indices, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let idx: i64 = row.try_get(0).map_err(map_pg)?;
            if idx != next {
                return Err(StoreError::Backend(format!(
                    "entries are not contiguous: index {idx} where {next} was expected"
                )));
            }
            let leaf = hash32(row.try_get(1).map_err(map_pg)?)?;
            frontier.append_with(leaf, |id, hash| {
                if id.level > 0 {
                    levels.push(i16::from(id.level));
                    // Below `next`, itself a bigint.
                    indices.push(i64::try_from(id.index).unwrap_or(i64::MAX));
                    hashes.push(hash.to_vec());
                }
            });
            next += 1;
        }
        written += tx
            .execute(&insert, &[&levels, &indices, &hashes])
            .await
            .map_err(map_pg)?;
    }
}
