//! The verifier's read path: [`LedgerScan`], one connection that refuses writes,
//! holding one read transaction over the whole ledger, and handing entry and
//! tree-node rows to a callback as bytes borrowed from SQLite for the call.
//! `sealgate verify` reads every row once, so it should keep nothing it does not
//! need. This module never writes and knows nothing of hashing or JSON: whether the
//! bytes are sound is the caller's question.

use std::ops::{ControlFlow, Range};
use std::path::Path;

use rusqlite::{params, Connection};
use sealgate_store::{StoreError, StoredCheckpoint};

use crate::{checkpoint_row, map_err, open_reader, SqliteStore};

/// A consistent read of a ledger: checkpoints, entries and stored tree nodes as of one
/// snapshot, even while a server appends beside it (WAL readers never block it).
pub struct LedgerScan {
    conn: Connection,
}

impl SqliteStore {
    /// Opens a [`LedgerScan`] of this ledger on a connection of its own.
    pub fn scan(&self) -> Result<LedgerScan, StoreError> {
        LedgerScan::open(self.path())
    }
}

impl LedgerScan {
    fn open(path: &Path) -> Result<LedgerScan, StoreError> {
        let conn = open_reader(path)?;
        // Pages are read with read(), not memory-mapped: SQLite copies each value out
        // of its page either way, and a scan of a mapped ledger.db faulted in every
        // page (a 1.4 GB file showed as 1.9 GB resident for two scans) and spent tens of
        // milliseconds unmapping it at the end. The read transaction begins with the
        // first SELECT and lasts until drop.
        conn.execute_batch("PRAGMA mmap_size = 0; BEGIN;")
            .map_err(map_err)?;
        Ok(LedgerScan { conn })
    }

    /// Number of entries: one more than the highest index (0 when empty).
    pub fn tree_size(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(map_err)
    }

    /// Every stored checkpoint, in the order they were stored.
    pub fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT tree_size, note, created_at FROM checkpoints ORDER BY seq")
            .map_err(map_err)?;
        let rows = stmt.query_map([], checkpoint_row).map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)
    }

    /// Hands the entries with index in `range` to `each` in index order, as
    /// `(index, canonical bytes, stored leaf hash)` borrowed for the call only, until
    /// `each` breaks. One statement streams the rows; nothing is copied. Returns how
    /// many rows were handed over. Gaps are not filled in: the caller sees the indices
    /// that are there.
    pub fn entries(
        &self,
        range: Range<u64>,
        mut each: impl FnMut(u64, &[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT idx, canonical, leaf_hash FROM entries
                 WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
            )
            .map_err(map_err)?;
        let mut rows = stmt
            .query(params![clamp(range.start), clamp(range.end)])
            .map_err(map_err)?;
        let mut handed = 0;
        while let Some(row) = rows.next().map_err(map_err)? {
            let index = row.get::<_, i64>(0).map_err(map_err)? as u64;
            let canonical = bytes(row, 1, || format!("entry {index}'s canonical bytes"))?;
            let leaf_hash = bytes(row, 2, || format!("entry {index}'s leaf hash"))?;
            handed += 1;
            if each(index, canonical, leaf_hash).is_break() {
                break;
            }
        }
        Ok(handed)
    }

    /// Hands the stored hashes of the tree nodes on `level` (1 and up; level 0 is the
    /// entries' leaf hashes) with index in `range` to `each`, in index order, as
    /// `(index, hash bytes)` borrowed for the call only. Missing nodes are skipped.
    pub fn nodes(
        &self,
        level: u8,
        range: Range<u64>,
        mut each: impl FnMut(u64, &[u8]),
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, hash FROM tree_nodes WHERE level = ?1 AND idx >= ?2 AND idx < ?3
                 ORDER BY idx",
            )
            .map_err(map_err)?;
        let mut rows = stmt
            .query(params![level, clamp(range.start), clamp(range.end)])
            .map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            let index = row.get::<_, i64>(0).map_err(map_err)? as u64;
            each(
                index,
                bytes(row, 1, || format!("tree node {level}/{index}'s hash"))?,
            );
        }
        Ok(())
    }
}

/// The tables the server decides by: whether a seal exists (`seals`) and is spent
/// (`redemptions`), whether a decision was answered (`resolutions`), which policy is
/// active (`policy_activations`). Each row belongs to the entry that implies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidingTable {
    Seals,
    Redemptions,
    Resolutions,
    PolicyActivations,
}

impl DecidingTable {
    pub const ALL: [DecidingTable; 4] = [
        DecidingTable::Seals,
        DecidingTable::Redemptions,
        DecidingTable::Resolutions,
        DecidingTable::PolicyActivations,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DecidingTable::Seals => "seals",
            DecidingTable::Redemptions => "redemptions",
            DecidingTable::Resolutions => "resolutions",
            DecidingTable::PolicyActivations => "policy_activations",
        }
    }

    /// The entry index, then the columns the server decides by.
    fn columns(self) -> &'static [&'static str] {
        match self {
            DecidingTable::Seals => &["idx", "seal_id", "decision_idx"],
            DecidingTable::Redemptions => &["idx", "seal_id"],
            DecidingTable::Resolutions => {
                &["idx", "decision_idx", "approved", "approver", "seal_id"]
            }
            DecidingTable::PolicyActivations => &["idx", "version"],
        }
    }

    /// Whether rows sealgate wrote are stored in entry order. `resolutions` is keyed
    /// (and so stored) by the decision answered, and approvals answer decisions in any
    /// order.
    fn stored_by_entry(self) -> bool {
        self != DecidingTable::Resolutions
    }
}

/// A row of a [`DecidingTable`], the columns the server decides by, borrowed from
/// SQLite for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidingRow<'r> {
    Seal {
        seal_id: &'r str,
        decision_index: u64,
    },
    Redemption {
        seal_id: &'r str,
    },
    Resolution {
        decision_index: u64,
        approved: bool,
        approver: &'r str,
        seal_id: Option<&'r str>,
    },
    Activation {
        version: &'r str,
    },
}

impl LedgerScan {
    /// Hands every row of `table` to `each`, as `(entry index, row)`, until it breaks:
    /// in storage order where that is entry order for rows sealgate wrote (no sort, no
    /// copy), otherwise or with `by_index` sorted by entry. Every row, including any
    /// beyond the ledger's end: the server reads those too. A value of a type sealgate
    /// never writes there is [`StoreError::Corrupt`], named by table and column.
    pub fn deciding_rows(
        &self,
        table: DecidingTable,
        by_index: bool,
        mut each: impl FnMut(u64, DecidingRow<'_>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let names = table.columns();
        let mut sql = format!("SELECT {} FROM {}", names.join(", "), table.name());
        if by_index || !table.stored_by_entry() {
            sql.push_str(" ORDER BY idx");
        }
        let mut stmt = self.conn.prepare(&sql).map_err(map_err)?;
        let mut rows = stmt.query([]).map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            let column = |at: usize| row.get_ref(at).map_err(map_err);
            let wrong = |at: usize, value: rusqlite::types::ValueRef<'_>, want: &str| {
                StoreError::Corrupt(format!(
                    "the {} table: a row's {} holds {}, not {want} (changed outside sealgate)",
                    table.name(),
                    names[at],
                    match value {
                        rusqlite::types::ValueRef::Integer(n) => format!("the integer {n}"),
                        other => format!("a value of type {}", other.data_type()),
                    }
                ))
            };
            let index = |at: usize| -> Result<u64, StoreError> {
                let value = column(at)?;
                match value {
                    rusqlite::types::ValueRef::Integer(n) if n >= 0 => Ok(n as u64),
                    other => Err(wrong(at, other, "an entry index")),
                }
            };
            let text = |at: usize| -> Result<&str, StoreError> {
                let value = column(at)?;
                value.as_str().map_err(|_| wrong(at, value, "text"))
            };
            let at = index(0)?;
            let read = match table {
                DecidingTable::Seals => DecidingRow::Seal {
                    seal_id: text(1)?,
                    decision_index: index(2)?,
                },
                DecidingTable::Redemptions => DecidingRow::Redemption { seal_id: text(1)? },
                DecidingTable::Resolutions => DecidingRow::Resolution {
                    decision_index: index(1)?,
                    approved: match column(2)? {
                        rusqlite::types::ValueRef::Integer(0) => false,
                        rusqlite::types::ValueRef::Integer(1) => true,
                        other => return Err(wrong(2, other, "0 or 1")),
                    },
                    approver: text(3)?,
                    seal_id: match column(4)? {
                        rusqlite::types::ValueRef::Null => None,
                        _ => Some(text(4)?),
                    },
                },
                DecidingTable::PolicyActivations => DecidingRow::Activation { version: text(1)? },
            };
            if each(at, read).is_break() {
                break;
            }
        }
        Ok(())
    }
}

impl LedgerScan {
    /// Hands every stored policy bundle to `each` as `(version, canonical bundle bytes)`.
    pub fn policy_bundles(&self, mut each: impl FnMut(&str, &[u8])) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT version, bundle FROM policies")
            .map_err(map_err)?;
        let mut rows = stmt.query([]).map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            // Text, as the server looks it up: a BLOB would match no activation there.
            let version = row.get_ref(0).map_err(map_err)?;
            let version = version.as_str().map_err(|_| {
                StoreError::Corrupt(format!(
                    "the policies table: a version stored as {}, not text (changed outside sealgate)",
                    version.data_type()
                ))
            })?;
            each(
                version,
                bytes(row, 1, || format!("policy bundle {version}"))?,
            );
        }
        Ok(())
    }
}

fn clamp(index: u64) -> i64 {
    index.min(i64::MAX as u64) as i64
}

/// Column `at` of `row` as bytes (BLOB or TEXT), borrowed from the row; any other type
/// is a value sealgate never writes, named by `what`.
fn bytes<'r>(
    row: &'r rusqlite::Row<'_>,
    at: usize,
    what: impl FnOnce() -> String,
) -> Result<&'r [u8], StoreError> {
    let value = row.get_ref(at).map_err(map_err)?;
    value.as_bytes().map_err(|_| {
        StoreError::Corrupt(format!(
            "{}: stored as {}, not as bytes (changed outside sealgate)",
            what(),
            value.data_type()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealgate_core::entry::{Entry, KeyRotation};
    use sealgate_store::{NewEntry, Store};

    fn entry(i: u64) -> NewEntry {
        NewEntry::new(Entry::KeyRotated(KeyRotation {
            server_time: "2026-01-01T00:00:00.000000Z".into(),
            purpose: "checkpoint".into(),
            key_id: format!("k{i}"),
            public_key: "AAAA".into(),
        }))
        .expect("entry")
    }

    #[tokio::test]
    async fn scan_streams_entries_and_nodes_as_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("ledger.db")).expect("open");
        let batch: Vec<NewEntry> = (0..5).map(entry).collect();
        let stored: Vec<(Vec<u8>, [u8; 32])> = batch
            .iter()
            .map(|e| (e.canonical.clone(), e.leaf_hash))
            .collect();
        store.append(batch).await.expect("append");

        let scan = store.scan().expect("scan");
        assert_eq!(scan.tree_size().expect("size"), 5);
        let mut seen = Vec::new();
        let handed = scan
            .entries(1..4, |i, canonical, leaf| {
                seen.push((i, canonical.to_vec(), leaf.to_vec()));
                ControlFlow::Continue(())
            })
            .expect("entries");
        assert_eq!(handed, 3);
        for (i, canonical, leaf) in &seen {
            let (c, l) = &stored[*i as usize];
            assert_eq!((canonical, leaf.as_slice()), (c, l.as_slice()));
        }
        assert_eq!(
            scan.entries(0..5, |_, _, _| ControlFlow::Break(()))
                .expect("entries"),
            1
        );

        // Level 1 of a five-leaf tree has nodes 0 and 1; node 2 is not complete.
        let mut level1 = Vec::new();
        scan.nodes(1, 0..3, |i, h| level1.push((i, h.to_vec())))
            .expect("nodes");
        let expected = sealgate_ledger::node_hash(&stored[2].1, &stored[3].1);
        assert_eq!(level1.len(), 2);
        assert_eq!(level1[1], (1, expected.to_vec()));
    }
}
