//! Appending a batch: the one write path of the ledger.
//!
//! One transaction per batch (READ COMMITTED):
//! 1. `SELECT next_index FROM log_head FOR UPDATE` — the lock that serialises batches
//!    from every replica, so indices are contiguous and in commit order. Later
//!    statements see everything committed before the lock was granted.
//! 2. One query for the claims of the batch's redemptions (seal known? redeemed?)
//!    and, when it resolves pending decisions, one for those (already resolved?),
//!    pipelined with one query for the Merkle frontier at the head (skipped when this
//!    process's cached frontier is for exactly that size; see `tree`). The batch is
//!    walked in order with what earlier entries of the same batch issued and
//!    redeemed; refused entries take no index, accepted ones are appended to the
//!    frontier, which reports the tree nodes they complete.
//! 3. One `INSERT … SELECT FROM unnest(…)` per table (tree nodes of level >= 1
//!    included), pipelined, then the head moves.
//! 4. COMMIT; only then is the new frontier cached.
//!
//! Retrying a batch is safe when its transaction failed before COMMIT was sent: it
//! did not commit. An error *from* COMMIT is ambiguous (the server may have committed
//! and the answer been lost). The attempt is then remembered, and the next attempt,
//! once it holds the head lock — so the earlier transaction has certainly ended —
//! checks whether the earlier attempt's leaf hashes sit at the indices it was given.
//! If they do, the earlier attempt committed and its outcomes are returned; if not,
//! the batch is written afresh. If the retry deadline passes before that check could
//! run, the caller gets `Unavailable` and the batch may or may not be in the ledger:
//! callers fail closed on `Unavailable` (no seal is issued, a redemption is not
//! executed), so an unanswered entry is at worst an extra, verifiable ledger row.

use std::collections::HashSet;
use std::sync::Mutex;

use sealgate_store::{AppendOutcome, Appended, NewEntry, Rejection, StoreError};
use tokio_postgres::types::ToSql;
use tracing::{instrument, warn};

use crate::error::{map_pg, map_pool};
use crate::tree::{load_frontier, INSERT_NODES};
use crate::PostgresStore;

const LOCK_HEAD: &str = "SELECT next_index FROM log_head FOR UPDATE";
const MOVE_HEAD: &str = "UPDATE log_head SET next_index = $1";
const CLAIMS: &str = "SELECT id,
        EXISTS (SELECT 1 FROM seals s WHERE s.seal_id = id),
        EXISTS (SELECT 1 FROM redemptions r WHERE r.seal_id = id)
    FROM unnest($1::text[]) AS id";
const RESOLVED: &str =
    "SELECT decision_idx FROM resolutions WHERE decision_idx = ANY($1::bigint[])";
const LANDED: &str = "SELECT leaf_hash FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
const INSERT_ENTRIES: &str = "INSERT INTO entries (idx, kind, canonical, leaf_hash)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[])";
const INSERT_DECISIONS: &str = "INSERT INTO decisions
        (idx, decision_id, manifest_id, agent_id, org_id, method, status, server_time)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[])";
const INSERT_SEALS: &str = "INSERT INTO seals (seal_id, idx, decision_idx, expires_at)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[])";
const INSERT_REDEMPTIONS: &str = "INSERT INTO redemptions (seal_id, idx, redeemed_at)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])";
const INSERT_RESOLUTIONS: &str = "INSERT INTO resolutions
        (decision_idx, idx, approved, approver, resolved_at, seal_id, expires_at)
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::boolean[], $4::text[], $5::text[],
                         $6::text[], $7::text[])";
const INSERT_ACTIVATIONS: &str = "INSERT INTO policy_activations (idx, version)
    SELECT * FROM unnest($1::bigint[], $2::text[])";

/// An attempt whose COMMIT failed: it may or may not have landed.
#[derive(Debug, Clone)]
struct Unresolved {
    start: i64,
    hashes: Vec<[u8; 32]>,
    outcomes: Vec<AppendOutcome>,
}

/// Column arrays for one batch, one `Vec` per column.
#[derive(Default)]
struct Columns<'a> {
    e_idx: Vec<i64>,
    e_kind: Vec<&'a str>,
    e_canonical: Vec<&'a [u8]>,
    e_hash: Vec<&'a [u8]>,
    d_idx: Vec<i64>,
    d_id: Vec<&'a str>,
    d_manifest: Vec<&'a str>,
    d_agent: Vec<&'a str>,
    d_org: Vec<&'a str>,
    d_method: Vec<&'a str>,
    d_status: Vec<&'a str>,
    d_time: Vec<&'a str>,
    s_id: Vec<&'a str>,
    s_idx: Vec<i64>,
    s_decision: Vec<i64>,
    s_expires: Vec<&'a str>,
    r_seal: Vec<&'a str>,
    r_idx: Vec<i64>,
    r_at: Vec<&'a str>,
    v_decision: Vec<i64>,
    v_idx: Vec<i64>,
    v_approved: Vec<bool>,
    v_approver: Vec<&'a str>,
    v_at: Vec<&'a str>,
    v_seal: Vec<Option<&'a str>>,
    v_expires: Vec<Option<&'a str>>,
    a_idx: Vec<i64>,
    a_version: Vec<&'a str>,
    n_level: Vec<i16>,
    n_idx: Vec<i64>,
    n_hash: Vec<[u8; 32]>,
}

impl PostgresStore {
    #[instrument(skip_all, fields(batch = batch.len()))]
    pub(crate) async fn append_batch(
        &self,
        batch: &[NewEntry],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let unresolved = Mutex::new(None);
        let result = self
            .retry
            .run("append", |_| self.append_once(batch, &unresolved))
            .await;
        if result.is_err() && take(&unresolved).is_some() {
            warn!("ledger batch commit outcome unknown at the retry deadline");
        }
        result
    }

    async fn append_once(
        &self,
        batch: &[NewEntry],
        unresolved: &Mutex<Option<Unresolved>>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut client = self.pool.get().await.map_err(map_pool)?;
        let tx = client.transaction().await.map_err(map_pg)?;
        let lock_head = tx.prepare_cached(LOCK_HEAD).await.map_err(map_pg)?;
        let head: i64 = tx.query_one(&lock_head, &[]).await.map_err(map_pg)?.get(0);

        // Under the lock, an earlier attempt of this batch has certainly ended.
        let earlier = unresolved.lock().ok().and_then(|u| u.clone());
        if let Some(earlier) = earlier {
            let landed = landed(&tx, head, &earlier).await?;
            put(unresolved, None);
            if landed {
                tx.rollback().await.map_err(map_pg)?;
                return Ok(earlier.outcomes);
            }
        }

        let cached = self.frontier.get(head);
        let ((known, redeemed, resolved), mut frontier) =
            tokio::try_join!(claims(&tx, batch), async {
                match cached {
                    Some(f) => Ok(f),
                    None => load_frontier(&tx, head).await,
                }
            })?;
        let mut cols = Columns::default();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut issued_here: HashSet<&str> = HashSet::new();
        let mut redeemed_here: HashSet<&str> = HashSet::new();
        let mut resolved_here: HashSet<u64> = HashSet::new();
        let mut next = head;
        for new in batch {
            let derived = new.derived();
            if let Some(r) = &derived.resolution {
                if resolved.contains(&r.decision_index) || !resolved_here.insert(r.decision_index) {
                    outcomes.push(Err(Rejection::AlreadyResolved(r.decision_index)));
                    continue;
                }
                cols.v_decision.push(to_i64(r.decision_index)?);
                cols.v_idx.push(next);
                cols.v_approved.push(r.approved);
                cols.v_approver.push(r.approver);
                cols.v_at.push(r.resolved_at);
                cols.v_seal.push(r.seal.map(|s| s.0));
                cols.v_expires.push(r.seal.map(|s| s.1));
            }
            if let Some((seal_id, at)) = derived.redemption {
                if redeemed.contains(seal_id) || redeemed_here.contains(seal_id) {
                    outcomes.push(Err(Rejection::AlreadyRedeemed(seal_id.to_owned())));
                    continue;
                }
                if !known.contains(seal_id) && !issued_here.contains(seal_id) {
                    outcomes.push(Err(Rejection::UnknownSeal(seal_id.to_owned())));
                    continue;
                }
                redeemed_here.insert(seal_id);
                cols.r_seal.push(seal_id);
                cols.r_idx.push(next);
                cols.r_at.push(at);
            }
            cols.e_idx.push(next);
            cols.e_kind.push(new.entry.kind());
            cols.e_canonical.push(&new.canonical);
            cols.e_hash.push(&new.leaf_hash);
            if let Some(d) = &derived.decision {
                cols.d_idx.push(next);
                cols.d_id.push(d.decision_id);
                cols.d_manifest.push(d.manifest_id);
                cols.d_agent.push(d.agent_id);
                cols.d_org.push(d.org_id);
                cols.d_method.push(d.method);
                cols.d_status.push(d.status.as_str());
                cols.d_time.push(d.server_time);
            }
            if let Some(s) = &derived.seal {
                issued_here.insert(s.seal_id);
                cols.s_id.push(s.seal_id);
                cols.s_idx.push(next);
                cols.s_decision.push(match s.decision_index {
                    Some(d) => to_i64(d)?,
                    None => next,
                });
                cols.s_expires.push(s.expires_at);
            }
            if let Some(version) = derived.activation {
                cols.a_idx.push(next);
                cols.a_version.push(version);
            }
            let mut node_index = Ok(());
            frontier.append_with(new.leaf_hash, |id, hash| {
                if id.level > 0 {
                    // A node's index is below its first leaf's, itself a bigint.
                    match i64::try_from(id.index) {
                        Ok(i) => {
                            cols.n_level.push(i16::from(id.level));
                            cols.n_idx.push(i);
                            cols.n_hash.push(*hash);
                        }
                        Err(_) => node_index = Err(id),
                    }
                }
            });
            if let Err(id) = node_index {
                return Err(StoreError::Backend(format!("tree node {id} out of range")));
            }
            outcomes.push(Ok(Appended {
                index: next as u64,
                leaf_hash: new.leaf_hash,
            }));
            next += 1;
        }

        if next > head {
            write(&tx, &cols, next).await?;
        }
        let attempt = Unresolved {
            start: head,
            hashes: batch_hashes(&outcomes),
            outcomes,
        };
        match tx.commit().await {
            Ok(()) => {
                self.frontier.put(frontier);
                Ok(attempt.outcomes)
            }
            Err(e) => {
                let err = map_pg(e);
                put(unresolved, Some(attempt));
                Err(StoreError::Unavailable(format!(
                    "commit outcome unknown, will check before retrying: {err}"
                )))
            }
        }
    }
}

/// Sets of what the batch's claims find committed: seals that exist, seals already
/// redeemed, decisions already resolved.
type Claimed = (HashSet<String>, HashSet<String>, HashSet<u64>);

/// Which of the batch's redeemed seals exist and are already redeemed, and which of
/// the decisions it resolves were already resolved.
async fn claims(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[NewEntry],
) -> Result<Claimed, StoreError> {
    let mut ids: Vec<&str> = Vec::new();
    let mut decisions: Vec<i64> = Vec::new();
    for new in batch {
        let derived = new.derived();
        if let Some((id, _)) = derived.redemption {
            ids.push(id);
        }
        if let Some(r) = derived.resolution {
            decisions.push(to_i64(r.decision_index)?);
        }
    }
    let (mut known, mut redeemed, mut resolved) = (HashSet::new(), HashSet::new(), HashSet::new());
    if !ids.is_empty() {
        let stmt = tx.prepare_cached(CLAIMS).await.map_err(map_pg)?;
        for row in tx.query(&stmt, &[&ids]).await.map_err(map_pg)? {
            let id: String = row.get(0);
            if row.get::<_, bool>(2) {
                redeemed.insert(id.clone());
            }
            if row.get::<_, bool>(1) {
                known.insert(id);
            }
        }
    }
    if !decisions.is_empty() {
        let stmt = tx.prepare_cached(RESOLVED).await.map_err(map_pg)?;
        for row in tx.query(&stmt, &[&decisions]).await.map_err(map_pg)? {
            resolved.insert(row.get::<_, i64>(0) as u64);
        }
    }
    Ok((known, redeemed, resolved))
}

/// One statement per table with rows, pipelined on the connection, then the head.
async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    c: &Columns<'_>,
    next: i64,
) -> Result<(), StoreError> {
    let (entries, decisions, seals, redemptions, resolutions, activations, nodes, head) =
        tokio::try_join!(
            tx.prepare_cached(INSERT_ENTRIES),
            tx.prepare_cached(INSERT_DECISIONS),
            tx.prepare_cached(INSERT_SEALS),
            tx.prepare_cached(INSERT_REDEMPTIONS),
            tx.prepare_cached(INSERT_RESOLUTIONS),
            tx.prepare_cached(INSERT_ACTIVATIONS),
            tx.prepare_cached(INSERT_NODES),
            tx.prepare_cached(MOVE_HEAD),
        )
        .map_err(map_pg)?;
    let entry_params: [&(dyn ToSql + Sync); 4] = [&c.e_idx, &c.e_kind, &c.e_canonical, &c.e_hash];
    let n_hash: Vec<&[u8]> = c.n_hash.iter().map(|h| &h[..]).collect();
    let head_params: [&(dyn ToSql + Sync); 1] = [&next];
    // join!, not try_join!: the statements are answered in order, and the error that
    // matters is the first one (the later ones only say the transaction is aborted).
    // try_join! polls in rotating order and could report one of those instead.
    let (e, d, s, r, v, a, n, h) = tokio::join!(
        tx.execute(&entries, &entry_params),
        async {
            if c.d_idx.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &decisions,
                &[
                    &c.d_idx,
                    &c.d_id,
                    &c.d_manifest,
                    &c.d_agent,
                    &c.d_org,
                    &c.d_method,
                    &c.d_status,
                    &c.d_time,
                ],
            )
            .await
        },
        async {
            if c.s_id.is_empty() {
                return Ok(0);
            }
            tx.execute(&seals, &[&c.s_id, &c.s_idx, &c.s_decision, &c.s_expires])
                .await
        },
        async {
            if c.r_seal.is_empty() {
                return Ok(0);
            }
            tx.execute(&redemptions, &[&c.r_seal, &c.r_idx, &c.r_at])
                .await
        },
        async {
            if c.v_idx.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &resolutions,
                &[
                    &c.v_decision,
                    &c.v_idx,
                    &c.v_approved,
                    &c.v_approver,
                    &c.v_at,
                    &c.v_seal,
                    &c.v_expires,
                ],
            )
            .await
        },
        async {
            if c.a_idx.is_empty() {
                return Ok(0);
            }
            tx.execute(&activations, &[&c.a_idx, &c.a_version]).await
        },
        async {
            if c.n_idx.is_empty() {
                return Ok(0);
            }
            tx.execute(&nodes, &[&c.n_level, &c.n_idx, &n_hash]).await
        },
        tx.execute(&head, &head_params),
    );
    let (wrote, moved) = (e.map_err(map_pg)?, {
        d.and(s).and(r).and(v).and(a).map_err(map_pg)?;
        let n = n.map_err(map_pg)?;
        if n != c.n_idx.len() as u64 {
            return Err(StoreError::Backend(format!(
                "append wrote {n} of {} tree nodes",
                c.n_idx.len()
            )));
        }
        h.map_err(map_pg)?
    });
    if wrote != c.e_idx.len() as u64 || moved != 1 {
        return Err(StoreError::Backend(format!(
            "append wrote {wrote} of {} entries and moved {moved} log heads",
            c.e_idx.len(),
        )));
    }
    Ok(())
}

/// Whether `earlier`'s entries are committed at the indices it was given.
async fn landed(
    tx: &deadpool_postgres::Transaction<'_>,
    head: i64,
    earlier: &Unresolved,
) -> Result<bool, StoreError> {
    let end = earlier.start + earlier.hashes.len() as i64;
    if earlier.hashes.is_empty() || head < end {
        // Nothing was to be written, or the head never got past what it would have
        // written (the head only moves forward, together with the entries).
        return Ok(false);
    }
    let stmt = tx.prepare_cached(LANDED).await.map_err(map_pg)?;
    let rows = tx
        .query(&stmt, &[&earlier.start, &end])
        .await
        .map_err(map_pg)?;
    let found: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
    let landed = found.len() == earlier.hashes.len()
        && found
            .iter()
            .zip(&earlier.hashes)
            .all(|(a, b)| a[..] == b[..]);
    Ok(landed)
}

fn batch_hashes(outcomes: &[AppendOutcome]) -> Vec<[u8; 32]> {
    outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|a| a.leaf_hash))
        .collect()
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Backend(format!("index {n} out of range")))
}

fn take(m: &Mutex<Option<Unresolved>>) -> Option<Unresolved> {
    m.lock().ok().and_then(|mut u| u.take())
}

fn put(m: &Mutex<Option<Unresolved>>, v: Option<Unresolved>) {
    if let Ok(mut u) = m.lock() {
        *u = v;
    }
}
