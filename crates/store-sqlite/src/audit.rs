//! The audit index: the `decisions` table and its five filter indexes.
//!
//! The table is derived data. Every field in it is also in the decision entry's
//! canonical bytes, which are the evidence and are committed with each batch. The
//! table exists so that the audit query can filter and page quickly. Under load it is
//! the most expensive part of an append: each entry adds a row to seven b-trees, and
//! with agents spread over many index pages a commit of eight entries dirties about
//! twenty pages, each written to the WAL. So the writer keeps decision rows pending
//! and writes them to the index in bulk, inside a ledger transaction, when any of
//! these happens:
//! - `FLUSH_ROWS` rows are pending;
//! - a checkpoint is written (at most one second apart while entries arrive);
//! - an audit query is about to read the index.
//!
//! So the audit API always sees every committed decision, and the table itself trails
//! the ledger by at most a checkpoint interval. (Writing the rows of a lone entry at
//! once would not do: under load the group commit also forms one-entry batches, and
//! a bulk write there stalls the appender.) A crash loses at most the
//! pending rows. `recover` rebuilds them at open from the entries after the last
//! indexed decision. Rows are written in index order in one transaction, so every
//! decision up to the highest indexed one is present.

use rusqlite::{params, Connection, Transaction};
use sealgate_core::entry::Entry;
use sealgate_store::{DecisionRow, Derived, StoreError};

use crate::map_err;

/// Pending rows that trigger a bulk write: enough to write each index page once per
/// many batches, few enough that the write (about 12 µs a row) does not stall the
/// appender for long (about 1.5 ms).
pub(crate) const FLUSH_ROWS: usize = 128;

/// One decision's audit row, owned so it can wait for a later transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingDecision {
    idx: i64,
    decision_id: String,
    manifest_id: String,
    agent_id: String,
    org_id: String,
    method: String,
    status: &'static str,
    server_time: String,
}

impl PendingDecision {
    pub(crate) fn new(idx: i64, d: &DecisionRow<'_>) -> PendingDecision {
        PendingDecision {
            idx,
            decision_id: d.decision_id.to_owned(),
            manifest_id: d.manifest_id.to_owned(),
            agent_id: d.agent_id.to_owned(),
            org_id: d.org_id.to_owned(),
            method: d.method.to_owned(),
            status: d.status.as_str(),
            server_time: d.server_time.to_owned(),
        }
    }
}

/// Inserts `rows` (in index order) within `tx`.
pub(crate) fn insert<'a>(
    tx: &Transaction<'_>,
    rows: impl IntoIterator<Item = &'a PendingDecision>,
) -> Result<(), StoreError> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO decisions (idx, decision_id, manifest_id, agent_id, org_id, method, status, server_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(map_err)?;
    for r in rows {
        insert
            .execute(params![
                r.idx,
                r.decision_id,
                r.manifest_id,
                r.agent_id,
                r.org_id,
                r.method,
                r.status,
                r.server_time
            ])
            .map_err(map_err)?;
    }
    Ok(())
}

/// The audit rows of decision entries committed after the last indexed decision: the
/// rows a crash left pending.
pub(crate) fn unindexed(conn: &Connection) -> Result<Vec<PendingDecision>, StoreError> {
    let indexed: i64 = conn
        .query_row("SELECT COALESCE(MAX(idx), -1) FROM decisions", [], |r| {
            r.get(0)
        })
        .map_err(map_err)?;
    let mut stmt = conn
        .prepare(
            "SELECT idx, canonical FROM entries WHERE idx > ?1 AND kind = 'decision' ORDER BY idx",
        )
        .map_err(map_err)?;
    let mut rows = stmt.query([indexed]).map_err(map_err)?;
    let mut missing = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let idx: i64 = row.get(0).map_err(map_err)?;
        let canonical: Vec<u8> = row.get(1).map_err(map_err)?;
        let entry = Entry::from_canonical(&canonical).map_err(|e| {
            StoreError::Backend(format!("entry {idx} does not parse as an entry: {e}"))
        })?;
        if let Some(d) = Derived::of(&entry).decision {
            missing.push(PendingDecision::new(idx, &d));
        }
    }
    Ok(missing)
}
