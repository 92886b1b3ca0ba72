//! The embedded backend: `<data-dir>/ledger.db`, SQLite in WAL mode with
//! `synchronous=FULL`, so a committed batch survives power loss.
//!
//! One writer connection (only the appender writes, so no write contention) and a
//! small pool of reader connections; one writing process at a time (`ledger.db.lock`); WAL lets readers run beside the writer. All
//! SQLite calls run on Tokio's blocking pool. Row mapping stays in this crate.

mod audit;
mod migrate;
mod pool;
mod scan;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use sealgate_core::entry::Status;
use sealgate_core::Role;
use sealgate_ledger::Frontier;
use sealgate_store::{
    ActiveVersion, ApiKey, AppendOutcome, Appended, AuditQuery, AuditRow, NewApiKey, NewCheckpoint,
    NewEntry, NewPolicy, NodeId, PolicySummary, Redemption, Rejection, Resolution, Revocation,
    SealRecord, Store, StoreError, StoredCheckpoint, StoredEntry, StoredPolicy,
};
use tracing::instrument;

use crate::audit::PendingDecision;
use crate::pool::Pool;
pub use crate::scan::{DecidingRow, DecidingTable, LedgerScan};

/// The SQLite store. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Writer>>,
    readers: Arc<Pool>,
    path: PathBuf,
    /// Held while the store is open for writing: the writer keeps the next index and
    /// the tree's edge in memory, so a second writing process would take indices this
    /// one already committed (and be refused every append for ever after).
    _lock: Option<Arc<std::fs::File>>,
}

struct Writer {
    conn: Connection,
    /// Next index; only the writer changes it, and only after a commit.
    next_index: u64,
    /// The tree's right edge, to compute each append's new nodes without reading any.
    frontier: Frontier,
    /// Committed decisions whose audit rows are not written yet (see `audit`).
    audit_pending: Vec<PendingDecision>,
}

impl SqliteStore {
    /// Opens (creating if needed) the ledger database at `path` and applies migrations.
    /// Refused while another process has it open for writing.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        create_private(path)?;
        let lock = lock_writer(path)?;
        let mut conn = open_connection(path)?;
        migrate::apply(&mut conn)?;
        let next_index: i64 = conn
            .query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries", [], |r| {
                r.get(0)
            })
            .map_err(map_err)?;
        let next_index = next_index as u64;
        let frontier = load_frontier(&conn, next_index)?;
        // Audit rows a crash left pending are rebuilt from their entries now.
        let audit_pending = audit::unindexed(&conn)?;
        let mut writer = Writer {
            conn,
            next_index,
            frontier,
            audit_pending,
        };
        flush_audit(&mut writer)?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Pool::new(path.to_owned(), 8)),
            path: path.to_owned(),
            _lock: Some(Arc::new(lock)),
        })
    }

    /// Opens an existing ledger for reading only: no migration, no frontier, and the
    /// connections refuse writes. For `sealgate verify` and exports, which must not
    /// trust (or trip over) what they are checking.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::NotFound);
        }
        let conn = open_reader(path)?;
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'
                   AND name IN ('entries', 'tree_nodes', 'checkpoints')",
                [],
                |r| r.get(0),
            )
            .map_err(map_err)?;
        if tables != 3 {
            return Err(StoreError::Backend(format!(
                "{} is not a sealgate ledger: it lacks the entries, tree_nodes or \
                 checkpoints table",
                path.display()
            )));
        }
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(Writer {
                conn,
                next_index: 0,
                frontier: Frontier::new(),
                audit_pending: Vec::new(),
            })),
            readers: Arc::new(Pool::new(path.to_owned(), 4)),
            path: path.to_owned(),
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.get()?;
            f(&conn).map_err(map_err)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = writer
                .lock()
                .map_err(|_| StoreError::Backend("writer lock poisoned".into()))?;
            f(&mut w)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("writer task failed: {e}")))?
    }
}

/// Creates the database file owner-only (SQLite gives its -wal and -shm files the same mode).
/// Takes the exclusive lock on `<path>.lock` (created 0600), and writes this process's
/// id there for the message another one gets. A lock file of its own, not the database:
/// closing any descriptor of the database file would drop SQLite's own locks on it.
/// The lock goes with the process, however it ends.
fn lock_writer(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let failed = |e: std::io::Error| {
        StoreError::Unavailable(format!("locking {}: {e}", lock_path.display()))
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                pid if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
                    format!("process {pid}")
                }
                _ => "another process".to_owned(),
            };
            return Err(StoreError::Unavailable(format!(
                "{} is open for writing by {holder} (another sealgate serve on this data \
                 directory?); one process at a time writes a SQLite ledger",
                path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
    }
    file.set_len(0).map_err(failed)?;
    file.rewind().map_err(failed)?;
    writeln!(file, "{}", std::process::id()).map_err(failed)?;
    Ok(file)
}

fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", path.display())))
}

/// A connection that only reads: opened read-only, so reading a file that is not yet
/// a ledger (or not one at all) leaves it as it is.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_err)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
        .map_err(map_err)?;
    Ok(conn)
}

pub(crate) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(map_err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(map_err)?;
    Ok(conn)
}

fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull | CannotOpen
            | OutOfMemory => StoreError::Unavailable(e.to_string()),
            ConstraintViolation => StoreError::Conflict(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        },
        // A column holding a type or size sealgate never writes: the data was changed
        // outside sealgate (the triggers dropped), not a fault of the backend.
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

fn load_frontier(conn: &Connection, size: u64) -> Result<Frontier, StoreError> {
    let hashes = read_nodes(conn, &Frontier::node_ids(size)).map_err(map_err)?;
    sealgate_store::frontier_from_nodes(size, hashes)
}

fn read_nodes(conn: &Connection, ids: &[NodeId]) -> rusqlite::Result<Vec<Option<[u8; 32]>>> {
    let mut leaves =
        conn.prepare_cached("SELECT idx, leaf_hash FROM entries WHERE idx BETWEEN ?1 AND ?2")?;
    let mut inner = conn.prepare_cached(
        "SELECT idx, hash FROM tree_nodes WHERE level = ?1 AND idx BETWEEN ?2 AND ?3",
    )?;
    let mut out = vec![None; ids.len()];
    // One range query per run of consecutive nodes on one level (proofs are short;
    // verification asks for long runs).
    let mut start = 0;
    while start < ids.len() {
        let mut end = start + 1;
        while end < ids.len()
            && ids[end].level == ids[start].level
            && ids[end].index == ids[end - 1].index.wrapping_add(1)
        {
            end += 1;
        }
        let (level, first) = (ids[start].level, ids[start].index);
        let last = ids[end - 1].index;
        if let (Ok(lo), Ok(hi)) = (i64::try_from(first), i64::try_from(last)) {
            let mut fill = |idx: i64, bytes: Vec<u8>| -> rusqlite::Result<()> {
                let at = start + (idx - lo) as usize;
                out[at] = Some(hash32(bytes)?);
                Ok(())
            };
            if level == 0 {
                let mut rows = leaves.query(params![lo, hi])?;
                while let Some(r) = rows.next()? {
                    fill(r.get(0)?, bytes(r, 1, "leaf_hash")?)?;
                }
            } else {
                let mut rows = inner.query(params![level, lo, hi])?;
                while let Some(r) = rows.next()? {
                    fill(r.get(0)?, bytes(r, 1, "hash")?)?;
                }
            }
        }
        start = end;
    }
    Ok(out)
}

fn hash32(bytes: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    bytes.try_into().map_err(|b: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            b.len(),
            rusqlite::types::Type::Blob,
            "leaf hash is not 32 bytes".into(),
        )
    })
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        tree_size: r.get::<_, i64>(0)? as u64,
        note: r.get(1)?,
        created_at: r.get(2)?,
    })
}

/// Column `at` as bytes, BLOB or TEXT alike (the same bytes either way, so a spot
/// check and a full check judge an entry alike, by its hash); any other type is an
/// error naming the column.
fn bytes(row: &rusqlite::Row<'_>, at: usize, name: &str) -> rusqlite::Result<Vec<u8>> {
    let value = row.get_ref(at)?;
    value
        .as_bytes()
        .map(<[u8]>::to_vec)
        .map_err(|_| rusqlite::Error::InvalidColumnType(at, name.into(), value.data_type()))
}

fn stored_entry(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredEntry> {
    Ok(StoredEntry {
        index: row.get::<_, i64>(at)? as u64,
        canonical: bytes(row, at + 1, "canonical")?,
        leaf_hash: hash32(bytes(row, at + 2, "leaf_hash")?)?,
    })
}

/// The columns `audit_row` reads: the entry, its seal's redemption, its resolution.
const AUDIT_ROW: &str = "SELECT e.idx, e.canonical, e.leaf_hash, r.idx, r.redeemed_at,
        v.idx, ve.canonical
     FROM decisions d
     JOIN entries e ON e.idx = d.idx
     LEFT JOIN seals s ON s.decision_idx = d.idx
     LEFT JOIN redemptions r ON r.seal_id = s.seal_id
     LEFT JOIN resolutions v ON v.decision_idx = d.idx
     LEFT JOIN entries ve ON ve.idx = v.idx";

/// An audit row from the columns the audit queries select: the entry, then the
/// redemption (index, time), then the resolution (index, approved, approver, time,
/// seal id, seal expiry, the approval entry's bytes).
fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    let redemption = match r.get::<_, Option<i64>>(3)? {
        Some(idx) => Some(Redemption {
            index: idx as u64,
            redeemed_at: r.get(4)?,
        }),
        None => None,
    };
    let entry = stored_entry(r, 0)?;
    Ok(AuditRow {
        resolution: resolution_at(r, 5, entry.index)?,
        entry,
        redemption,
    })
}

/// The resolution of the decision at `decision_index` from two columns starting at
/// `at` (the approval's index and its entry's bytes, read by [`Resolution::from_entry`]);
/// None when the index is NULL. A row pointing at no entry is corrupt, not unanswered.
fn resolution_at(
    r: &rusqlite::Row<'_>,
    at: usize,
    decision_index: u64,
) -> rusqlite::Result<Option<Resolution>> {
    let Some(idx) = r.get::<_, Option<i64>>(at)? else {
        return Ok(None);
    };
    let canonical: Vec<u8> = r.get(at + 1)?;
    Resolution::from_entry(idx as u64, decision_index, &canonical)
        .map(Some)
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(at + 1, rusqlite::types::Type::Blob, e.into())
        })
}

/// The columns `resolution_at` reads, for one decision's resolution.
const RESOLUTION: &str = "SELECT v.idx, ve.canonical
     FROM resolutions v LEFT JOIN entries ve ON ve.idx = v.idx
     WHERE v.decision_idx = ?1";

fn append_batch(w: &mut Writer, batch: &[NewEntry]) -> Result<Vec<AppendOutcome>, StoreError> {
    let tx = w.conn.transaction().map_err(map_err)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut index = w.next_index;
    let mut frontier = w.frontier.clone();
    let mut decisions = Vec::new();
    {
        let mut insert_entry = tx
            .prepare_cached(
                "INSERT INTO entries (idx, kind, canonical, leaf_hash) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(map_err)?;
        let mut insert_seal = tx
            .prepare_cached("INSERT INTO seals (seal_id, idx, decision_idx, expires_at) VALUES (?1, ?2, ?3, ?4)")
            .map_err(map_err)?;
        let mut seal_exists = tx
            .prepare_cached("SELECT 1 FROM seals WHERE seal_id = ?1")
            .map_err(map_err)?;
        let mut redeemed = tx
            .prepare_cached("SELECT 1 FROM redemptions WHERE seal_id = ?1")
            .map_err(map_err)?;
        let mut insert_redemption = tx
            .prepare_cached(
                "INSERT INTO redemptions (seal_id, idx, redeemed_at) VALUES (?1, ?2, ?3)",
            )
            .map_err(map_err)?;
        let mut insert_node = tx
            .prepare_cached("INSERT INTO tree_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
            .map_err(map_err)?;
        let mut resolved = tx
            .prepare_cached("SELECT 1 FROM resolutions WHERE decision_idx = ?1")
            .map_err(map_err)?;
        let mut insert_resolution = tx
            .prepare_cached(
                "INSERT INTO resolutions
                     (decision_idx, idx, approved, approver, resolved_at, seal_id, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(map_err)?;
        let mut insert_activation = tx
            .prepare_cached("INSERT INTO policy_activations (idx, version) VALUES (?1, ?2)")
            .map_err(map_err)?;

        for new in batch {
            let derived = new.derived();
            if let Some((seal_id, _)) = derived.redemption {
                // The redemption table's primary key is the real guard; checking first
                // lets one losing redemption be refused without failing its batch.
                if redeemed.exists([seal_id]).map_err(map_err)? {
                    outcomes.push(Err(Rejection::AlreadyRedeemed(seal_id.to_owned())));
                    continue;
                }
                if !seal_exists.exists([seal_id]).map_err(map_err)? {
                    outcomes.push(Err(Rejection::UnknownSeal(seal_id.to_owned())));
                    continue;
                }
            }
            if let Some(r) = &derived.resolution {
                // As for redemptions: the primary key guards, the check spares the batch.
                if resolved
                    .exists([r.decision_index.min(i64::MAX as u64) as i64])
                    .map_err(map_err)?
                {
                    outcomes.push(Err(Rejection::AlreadyResolved(r.decision_index)));
                    continue;
                }
            }
            let i = index as i64;
            insert_entry
                .execute(params![i, new.entry.kind(), new.canonical, new.leaf_hash])
                .map_err(map_err)?;
            if let Some(d) = &derived.decision {
                decisions.push(PendingDecision::new(i, d));
            }
            if let Some(s) = &derived.seal {
                let decision_idx = s.decision_index.map_or(i, |d| d as i64);
                insert_seal
                    .execute(params![s.seal_id, i, decision_idx, s.expires_at])
                    .map_err(map_err)?;
            }
            if let Some((seal_id, at)) = derived.redemption {
                insert_redemption
                    .execute(params![seal_id, i, at])
                    .map_err(map_err)?;
            }
            if let Some(r) = &derived.resolution {
                insert_resolution
                    .execute(params![
                        r.decision_index.min(i64::MAX as u64) as i64,
                        i,
                        r.approved,
                        r.approver,
                        r.resolved_at,
                        r.seal.map(|s| s.0),
                        r.seal.map(|s| s.1)
                    ])
                    .map_err(map_err)?;
            }
            if let Some(version) = derived.activation {
                insert_activation
                    .execute(params![i, version])
                    .map_err(map_err)?;
            }
            let mut node_result = Ok(());
            frontier.append_with(new.leaf_hash, |id, hash| {
                if id.level > 0 && node_result.is_ok() {
                    node_result = insert_node
                        .execute(params![id.level, id.index as i64, hash])
                        .map(drop);
                }
            });
            node_result.map_err(map_err)?;
            outcomes.push(Ok(Appended {
                index,
                leaf_hash: new.leaf_hash,
            }));
            index += 1;
        }
    }
    // The audit rows wait for a bulk write until enough are pending (see `audit`);
    // pending rows are dropped from memory only once committed.
    let flush = w.audit_pending.len() + decisions.len() >= audit::FLUSH_ROWS;
    if flush {
        audit::insert(&tx, w.audit_pending.iter().chain(&decisions))?;
    }
    tx.commit().map_err(map_err)?;
    w.next_index = index;
    w.frontier = frontier;
    if flush {
        w.audit_pending.clear();
    } else {
        w.audit_pending.append(&mut decisions);
    }
    Ok(outcomes)
}

/// Writes every pending audit row, in a transaction of its own.
fn flush_audit(w: &mut Writer) -> Result<(), StoreError> {
    if w.audit_pending.is_empty() {
        return Ok(());
    }
    let tx = w.conn.transaction().map_err(map_err)?;
    audit::insert(&tx, &w.audit_pending)?;
    tx.commit().map_err(map_err)?;
    w.audit_pending.clear();
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    #[instrument(skip_all, fields(batch = batch.len()))]
    async fn append(&self, batch: Vec<NewEntry>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.write(move |w| append_batch(w, &batch)).await
    }

    async fn tree_size(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            c.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .await
        .map(|n| n as u64)
    }

    async fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        let Ok(i) = i64::try_from(index) else {
            return Ok(None);
        };
        self.read(move |c| {
            c.prepare_cached("SELECT idx, canonical, leaf_hash FROM entries WHERE idx = ?1")?
                .query_row([i], |r| stored_entry(r, 0))
                .optional()
        })
        .await
    }

    async fn range(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        let (start, end) = (
            start.min(i64::MAX as u64) as i64,
            end.min(i64::MAX as u64) as i64,
        );
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT idx, canonical, leaf_hash FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")?;
            let rows = stmt.query_map([start, end], |r| stored_entry(r, 0))?;
            rows.collect()
        })
        .await
    }

    async fn seal(&self, seal_id: &str) -> Result<Option<SealRecord>, StoreError> {
        let seal_id = seal_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT s.seal_id, s.decision_idx, s.expires_at, r.idx, r.redeemed_at
                 FROM seals s LEFT JOIN redemptions r ON r.seal_id = s.seal_id WHERE s.seal_id = ?1",
            )?
            .query_row([seal_id], |r| {
                let redemption = match r.get::<_, Option<i64>>(3)? {
                    Some(idx) => Some(Redemption { index: idx as u64, redeemed_at: r.get(4)? }),
                    None => None,
                };
                Ok(SealRecord {
                    seal_id: r.get(0)?,
                    decision_index: r.get::<_, i64>(1)? as u64,
                    expires_at: r.get(2)?,
                    redemption,
                })
            })
            .optional()
        })
        .await
    }

    async fn decisions(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        // The audit API sees every committed decision, pending audit rows included.
        self.write(flush_audit).await?;
        let q = q.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "{AUDIT_ROW}
                 WHERE (?1 IS NULL OR d.agent_id = ?1)
                   AND (?2 IS NULL OR d.org_id = ?2)
                   AND (?3 IS NULL OR d.method = ?3)
                   AND (?4 IS NULL OR d.status = ?4)
                   AND (?5 IS NULL OR d.server_time >= ?5)
                   AND (?6 IS NULL OR d.server_time <= ?6)
                   AND (?7 IS NULL OR d.idx < ?7)
                 ORDER BY d.idx DESC
                 LIMIT ?8"
            ))?;
            let before = q.before.map(|b| b.min(i64::MAX as u64) as i64);
            let rows = stmt.query_map(
                params![
                    q.agent_id,
                    q.org_id,
                    q.method,
                    q.status.map(Status::as_str),
                    q.since,
                    q.until,
                    before,
                    q.limit
                ],
                audit_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn resolution(&self, decision_index: u64) -> Result<Option<Resolution>, StoreError> {
        // Resolutions are written with their entries, not in the audit bulks: no flush.
        let idx = decision_index.min(i64::MAX as u64) as i64;
        self.read(move |c| {
            Ok(c.prepare_cached(RESOLUTION)?
                .query_row([idx], |r| resolution_at(r, 0, decision_index))
                .optional()?
                .flatten())
        })
        .await
    }

    async fn decision(&self, decision_id: &str) -> Result<Option<AuditRow>, StoreError> {
        self.write(flush_audit).await?;
        let decision_id = decision_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("{AUDIT_ROW} WHERE d.decision_id = ?1"))?
                .query_row([decision_id], audit_row)
                .optional()
        })
        .await
    }

    async fn pending_approvals(
        &self,
        before: Option<u64>,
        recorded_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.write(flush_audit).await?;
        let before = before.map(|b| b.min(i64::MAX as u64) as i64);
        let after = recorded_after.map(str::to_owned);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT e.idx, e.canonical, e.leaf_hash
                 FROM decisions d
                 JOIN entries e ON e.idx = d.idx
                 LEFT JOIN resolutions v ON v.decision_idx = d.idx
                 WHERE d.status = 'pending_approval' AND v.decision_idx IS NULL
                   AND (?1 IS NULL OR d.idx < ?1)
                   AND (?3 IS NULL OR d.server_time > ?3)
                 ORDER BY d.idx DESC
                 LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![before, limit, after], |r| stored_entry(r, 0))?;
            rows.collect()
        })
        .await
    }

    async fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        let ids = ids.to_vec();
        self.read(move |c| read_nodes(c, &ids)).await
    }

    async fn put_checkpoint(&self, cp: &NewCheckpoint) -> Result<(), StoreError> {
        let cp = cp.clone();
        self.write(move |w| {
            // Checkpoints come at most a second apart while entries arrive, so this
            // bounds how far the audit index trails the ledger.
            flush_audit(w)?;
            w.conn
                .execute(
                    "INSERT INTO checkpoints (tree_size, note, created_at) VALUES (?1, ?2, ?3)",
                    params![cp.tree_size as i64, cp.note, cp.created_at],
                )
                .map(drop)
                .map_err(map_err)
        })
        .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT tree_size, note, created_at FROM checkpoints ORDER BY tree_size DESC, seq DESC LIMIT 1",
                [],
                checkpoint_row,
            )
            .optional()
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT tree_size, note, created_at FROM checkpoints ORDER BY seq",
            )?;
            let rows = stmt.query_map([], checkpoint_row)?;
            rows.collect()
        })
        .await
    }

    async fn active_policy(&self) -> Result<Option<ActiveVersion>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT idx, version FROM policy_activations ORDER BY idx DESC LIMIT 1",
                [],
                |r| {
                    Ok(ActiveVersion {
                        index: u64::try_from(r.get::<_, i64>(0)?).map_err(|_| {
                            rusqlite::Error::IntegralValueOutOfRange(0, r.get(0).unwrap_or(-1))
                        })?,
                        version: r.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn put_policy(&self, p: &NewPolicy) -> Result<bool, StoreError> {
        let p = p.clone();
        self.write(move |w| {
            w.conn
                .execute(
                    "INSERT INTO policies (version, bundle, uploaded_at, uploaded_by) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (version) DO NOTHING",
                    params![p.version, p.bundle, p.uploaded_at, p.uploaded_by],
                )
                .map(|n| n == 1)
                .map_err(map_err)
        })
        .await
    }

    async fn policy(&self, version: &str) -> Result<Option<StoredPolicy>, StoreError> {
        let version = version.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT version, bundle, uploaded_at, uploaded_by FROM policies WHERE version = ?1",
                [version],
                |r| {
                    Ok(StoredPolicy {
                        version: r.get(0)?,
                        bundle: r.get(1)?,
                        uploaded_at: r.get(2)?,
                        uploaded_by: r.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn policies(&self) -> Result<Vec<PolicySummary>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT version, uploaded_at, uploaded_by FROM policies ORDER BY uploaded_at, version")?;
            let rows = stmt.query_map([], |r| {
                Ok(PolicySummary { version: r.get(0)?, uploaded_at: r.get(1)?, uploaded_by: r.get(2)? })
            })?;
            rows.collect()
        })
        .await
    }

    async fn create_key(&self, key: &NewApiKey) -> Result<(), StoreError> {
        let k = key.clone();
        self.write(move |w| {
            w.conn
                .execute(
                    "INSERT INTO api_keys (id, role, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![k.id, k.role.as_str(), k.name, k.token_hash, k.created_at],
                )
                .map(drop)
                .map_err(map_err)
        })
        .await
    }

    async fn key_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        let hash = token_hash.to_vec();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, role, name, created_at FROM api_keys WHERE token_hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([hash], |r| {
                let role: String = r.get(1)?;
                let role: Role = role.parse().map_err(|e: sealgate_core::role::UnknownRole| {
                    rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
                })?;
                Ok(ApiKey { id: r.get(0)?, role, name: r.get(2)?, created_at: r.get(3)? })
            })
            .optional()
        })
        .await
    }

    async fn revoke_key(&self, id: &str, revoked_at: &str) -> Result<Revocation, StoreError> {
        let (id, at) = (id.to_owned(), revoked_at.to_owned());
        // One writer: the check and the update cannot interleave with another revocation.
        self.write(move |w| {
            let revoked = w
                .conn
                .execute(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL \
                       AND (role <> 'admin' OR EXISTS (SELECT 1 FROM api_keys \
                            WHERE role = 'admin' AND revoked_at IS NULL AND id <> ?1))",
                    params![id, at],
                )
                .map_err(map_err)?;
            if revoked == 1 {
                return Ok(Revocation::Revoked);
            }
            let live_admin: bool = w
                .conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM api_keys \
                       WHERE id = ?1 AND revoked_at IS NULL AND role = 'admin')",
                    params![id],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            Ok(if live_admin {
                Revocation::LastAdmin
            } else {
                Revocation::NotLive
            })
        })
        .await
    }

    async fn key_count(&self) -> Result<u64, StoreError> {
        self.read(|c| c.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| n as u64)
    }
}
