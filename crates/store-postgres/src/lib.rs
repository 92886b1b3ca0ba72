//! The production backend: one PostgreSQL database shared by several stateless
//! gateway replicas.
//!
//! Indices are assigned per batch under a row lock on the one-row `log_head` table
//! (see `append`), so batches from every replica get contiguous, commit-ordered
//! indices. Evidence tables are append-only by trigger, and the service role the
//! replicas run as has only INSERT and SELECT on them (see the migrations). Transient
//! failures are retried with jittered backoff within a deadline (`RetryPolicy`).
//! Row mapping stays in this crate; SQL lives only here and in `migrations/`.

mod append;
mod error;
mod leader;
mod migrate;
mod retry;
mod tree;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sealgate_core::entry::Status;
use sealgate_core::Role;
use sealgate_store::{
    ActiveVersion, ApiKey, AppendOutcome, AuditQuery, AuditRow, NewApiKey, NewCheckpoint, NewEntry,
    NewPolicy, NodeId, PolicySummary, Redemption, Resolution, Revocation, SealRecord, Store,
    StoreError, StoredCheckpoint, StoredEntry, StoredPolicy,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, NoTls, Row};
use tracing::instrument;

pub use leader::BootstrapLock;
pub use migrate::{migrate, SCHEMA_VERSION};
pub use retry::RetryPolicy;

use crate::error::{map_pg, map_pool};
use crate::leader::Leadership;
use crate::tree::{FrontierCache, NodeQuery, READ_NODES};

/// How to connect. `Default` suits a gateway replica.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections this process holds open at once.
    pub max_connections: usize,
    /// Time allowed to open one connection.
    pub connect_timeout: Duration,
    /// Time a caller waits for a free pooled connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout` for every pooled session (a batch waiting for
    /// the log-head lock counts), so a stuck database turns into `Unavailable`.
    pub statement_timeout: Duration,
    /// Retries of transient failures, for appends and reads.
    pub retry: RetryPolicy,
    /// Apply pending migrations on connect. Off for a replica whose role may not
    /// change the schema and which should instead refuse an outdated one.
    pub migrate: bool,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            migrate: true,
        }
    }
}

/// The PostgreSQL store. Cheap to clone (a shared pool).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    retry: RetryPolicy,
    /// The Merkle frontier after this process's last committed batch; used only when
    /// the log head locked by an append is exactly its size (see `tree`).
    frontier: Arc<FrontierCache>,
    /// The leader lock's own session (see `leader`).
    leadership: Arc<Leadership>,
    /// How to open sessions outside the pool (advisory locks).
    config: Config,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db?…` or key=value form),
    /// applies pending migrations (unless `options.migrate` is off), and checks the
    /// schema is the one this build expects. Plain TCP: no TLS yet.
    #[instrument(skip_all)]
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid database url: {e}")))?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("sealgate");
        }
        let timeout = format!(
            "-c statement_timeout={}",
            options.statement_timeout.as_millis()
        );
        let session = match config.get_options() {
            Some(existing) => format!("{existing} {timeout}"),
            None => timeout,
        };
        config.options(&session);

        if options.migrate {
            options
                .retry
                .run("migrate", |_| migrate::migrate_with(&config))
                .await?;
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("building the connection pool: {e}")))?;
        let store = PostgresStore {
            pool,
            retry: options.retry,
            frontier: Arc::new(FrontierCache::default()),
            leadership: Arc::new(Leadership::new(config.clone())),
            config,
        };
        store.check_schema().await?;
        Ok(store)
    }

    /// Waits until no other replica is bootstrapping this database and holds the
    /// bootstrap lock until the guard is dropped: replicas starting together on a
    /// fresh database create the first policy activation and admin key once.
    pub async fn bootstrap_lock(&self) -> Result<BootstrapLock, StoreError> {
        self.retry
            .run("bootstrap_lock", |_| leader::bootstrap_lock(&self.config))
            .await
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        let version: i32 = self
            .retry
            .run("check_schema", |_| async {
                let client = self.pool.get().await.map_err(map_pool)?;
                let row = client
                    .query_one(
                        "SELECT COALESCE(max(version), 0) FROM schema_migrations",
                        &[],
                    )
                    .await
                    .map_err(map_pg)?;
                Ok(row.get(0))
            })
            .await?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "database schema is at version {version}, this sealgate expects {SCHEMA_VERSION}; run migrations"
            )));
        }
        Ok(())
    }

    /// Runs one query (with retries) and maps each row.
    async fn query<T>(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.retry
            .run(what, |_| async {
                let client = self.pool.get().await.map_err(map_pool)?;
                let stmt = client.prepare_cached(sql).await.map_err(map_pg)?;
                let rows = client.query(&stmt, params).await.map_err(map_pg)?;
                rows.iter().map(map).collect()
            })
            .await
    }

    async fn query_opt<T>(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.query(what, sql, params, map).await?.into_iter().next())
    }

    /// Runs one autocommit write, once: a write whose answer was lost is not blindly
    /// repeated. Only getting a connection is retried (nothing was sent yet).
    async fn write(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self
            .retry
            .run("connect", |_| async {
                self.pool.get().await.map_err(map_pool)
            })
            .await?;
        let stmt = client.prepare_cached(sql).await.map_err(map_pg)?;
        client.execute(&stmt, params).await.map_err(map_pg)
    }
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|b: Vec<u8>| {
        StoreError::Backend(format!("stored hash is {} bytes, not 32", b.len()))
    })
}

fn index(i: i64) -> Result<u64, StoreError> {
    u64::try_from(i).map_err(|_| StoreError::Backend(format!("negative index {i} in the database")))
}

/// Clamps a caller's u64 bound into bigint range (indices never get near it).
fn bound(i: u64) -> i64 {
    i.min(i64::MAX as u64) as i64
}

fn stored_entry(row: &Row, at: usize) -> Result<StoredEntry, StoreError> {
    Ok(StoredEntry {
        index: index(row.try_get(at).map_err(map_pg)?)?,
        canonical: row.try_get(at + 1).map_err(map_pg)?,
        leaf_hash: hash32(row.try_get(at + 2).map_err(map_pg)?)?,
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

fn audit_row(r: &Row) -> Result<AuditRow, StoreError> {
    let entry = stored_entry(r, 0)?;
    Ok(AuditRow {
        resolution: resolution_at(r, 5, entry.index)?,
        entry,
        redemption: redemption(r, 3)?,
    })
}

/// The resolution of the decision at `decision_index` from two columns starting at
/// `at` (the approval's index and its entry's bytes, read by [`Resolution::from_entry`]);
/// None when the index is NULL. A row pointing at no entry is corrupt, not unanswered.
fn resolution_at(
    r: &Row,
    at: usize,
    decision_index: u64,
) -> Result<Option<Resolution>, StoreError> {
    let Some(idx) = get::<Option<i64>>(r, at)? else {
        return Ok(None);
    };
    let canonical: Option<&[u8]> = get(r, at + 1)?;
    let canonical = canonical.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "the resolution of decision {decision_index} points at entry {idx}, which does not exist"
        ))
    })?;
    Resolution::from_entry(index(idx)?, decision_index, canonical)
        .map(Some)
        .map_err(StoreError::Corrupt)
}

/// [`resolution_at`] for a row of the approval's index, its entry's bytes and the
/// decision's index.
fn resolution_row(r: &Row) -> Result<Option<Resolution>, StoreError> {
    resolution_at(r, 0, index(get(r, 2)?)?)
}

fn redemption(row: &Row, at: usize) -> Result<Option<Redemption>, StoreError> {
    let idx: Option<i64> = row.try_get(at).map_err(map_pg)?;
    match idx {
        Some(idx) => Ok(Some(Redemption {
            index: index(idx)?,
            redeemed_at: row.try_get(at + 1).map_err(map_pg)?,
        })),
        None => Ok(None),
    }
}

fn checkpoint(row: &Row) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        tree_size: index(get(row, 0)?)?,
        note: get(row, 1)?,
        created_at: get(row, 2)?,
    })
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    at: usize,
) -> Result<T, StoreError> {
    row.try_get(at).map_err(map_pg)
}

#[async_trait]
impl Store for PostgresStore {
    async fn append(&self, batch: Vec<NewEntry>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.append_batch(&batch).await
    }

    #[instrument(skip_all)]
    async fn tree_size(&self) -> Result<u64, StoreError> {
        let n = self
            .query_opt("tree_size", "SELECT next_index FROM log_head", &[], |r| {
                get::<i64>(r, 0)
            })
            .await?
            .ok_or_else(|| StoreError::Backend("log_head row is missing".into()))?;
        index(n)
    }

    #[instrument(skip_all, fields(index = index))]
    async fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        let Ok(i) = i64::try_from(index) else {
            return Ok(None);
        };
        self.query_opt(
            "entry",
            "SELECT idx, canonical, leaf_hash FROM entries WHERE idx = $1",
            &[&i],
            |r| stored_entry(r, 0),
        )
        .await
    }

    #[instrument(skip_all, fields(start = start, end = end))]
    async fn range(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        let (start, end) = (bound(start), bound(end));
        self.query(
            "range",
            "SELECT idx, canonical, leaf_hash FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
            &[&start, &end],
            |r| stored_entry(r, 0),
        )
        .await
    }

    #[instrument(skip_all)]
    async fn seal(&self, seal_id: &str) -> Result<Option<SealRecord>, StoreError> {
        self.query_opt(
            "seal",
            "SELECT s.seal_id, s.decision_idx, s.expires_at, r.idx, r.redeemed_at
             FROM seals s LEFT JOIN redemptions r ON r.seal_id = s.seal_id
             WHERE s.seal_id = $1",
            &[&seal_id],
            |r| {
                Ok(SealRecord {
                    seal_id: get(r, 0)?,
                    decision_index: index(get(r, 1)?)?,
                    expires_at: get(r, 2)?,
                    redemption: redemption(r, 3)?,
                })
            },
        )
        .await
    }

    #[instrument(skip_all, fields(limit = q.limit))]
    async fn decisions(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        // Only the filters given go into the SQL, so each shape gets a plan that uses
        // its index (a generic `$1 IS NULL OR …` plan would not).
        let status = q.status.map(Status::as_str);
        let before = q.before.map(bound);
        let limit = i64::from(q.limit);
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let mut filters = Vec::new();
        let text_filters = [
            ("d.agent_id =", &q.agent_id),
            ("d.org_id =", &q.org_id),
            ("d.method =", &q.method),
            ("d.server_time >=", &q.since),
            ("d.server_time <=", &q.until),
        ];
        for (cmp, value) in text_filters {
            if let Some(v) = value {
                params.push(v);
                filters.push(format!("{cmp} ${}", params.len()));
            }
        }
        if let Some(s) = &status {
            params.push(s);
            filters.push(format!("d.status = ${}", params.len()));
        }
        if let Some(b) = &before {
            params.push(b);
            filters.push(format!("d.idx < ${}", params.len()));
        }
        params.push(&limit);
        let where_clause = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let sql = format!(
            "{AUDIT_ROW} {where_clause}
             ORDER BY d.idx DESC
             LIMIT ${}",
            params.len()
        );
        self.query("decisions", &sql, &params, audit_row).await
    }

    async fn resolution(&self, decision_index: u64) -> Result<Option<Resolution>, StoreError> {
        let idx = bound(decision_index);
        let found = self
            .query_opt(
                "resolution",
                "SELECT v.idx, ve.canonical, v.decision_idx
                 FROM resolutions v LEFT JOIN entries ve ON ve.idx = v.idx
                 WHERE v.decision_idx = $1",
                &[&idx],
                resolution_row,
            )
            .await?;
        Ok(found.flatten())
    }

    async fn decision(&self, decision_id: &str) -> Result<Option<AuditRow>, StoreError> {
        let sql = format!("{AUDIT_ROW} WHERE d.decision_id = $1");
        self.query_opt("decision", &sql, &[&decision_id], audit_row)
            .await
    }

    async fn pending_approvals(
        &self,
        before: Option<u64>,
        recorded_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let before = before.map(bound).unwrap_or(i64::MAX);
        self.query(
            "pending_approvals",
            "SELECT e.idx, e.canonical, e.leaf_hash
             FROM decisions d
             JOIN entries e ON e.idx = d.idx
             WHERE d.status = 'pending_approval' AND d.idx < $1
               AND ($3::text IS NULL OR d.server_time > $3)
               AND NOT EXISTS (SELECT 1 FROM resolutions v WHERE v.decision_idx = d.idx)
             ORDER BY d.idx DESC
             LIMIT $2",
            &[&before, &i64::from(limit), &recorded_after],
            |r| stored_entry(r, 0),
        )
        .await
    }

    #[instrument(skip_all, fields(nodes = ids.len()))]
    async fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        let q = NodeQuery::new(ids);
        if q.is_empty() {
            return Ok(vec![None; ids.len()]);
        }
        let rows = self
            .retry
            .run("nodes", |_| async {
                let client = self.pool.get().await.map_err(map_pool)?;
                let stmt = client.prepare_cached(READ_NODES).await.map_err(map_pg)?;
                client
                    .query(&stmt, &[&q.levels, &q.indices])
                    .await
                    .map_err(map_pg)
            })
            .await?;
        q.answer(&rows)
    }

    #[instrument(skip_all, fields(tree_size = cp.tree_size))]
    async fn put_checkpoint(&self, cp: &NewCheckpoint) -> Result<(), StoreError> {
        let size = i64::try_from(cp.tree_size).map_err(|_| {
            StoreError::Backend(format!(
                "checkpoint tree size {} out of range",
                cp.tree_size
            ))
        })?;
        self.write(
            "INSERT INTO checkpoints (tree_size, note, created_at) VALUES ($1, $2, $3)",
            &[&size, &cp.note, &cp.created_at],
        )
        .await
        .map(drop)
    }

    #[instrument(skip_all)]
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.query_opt(
            "latest_checkpoint",
            "SELECT tree_size, note, created_at FROM checkpoints
             ORDER BY tree_size DESC, seq DESC LIMIT 1",
            &[],
            checkpoint,
        )
        .await
    }

    #[instrument(skip_all)]
    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.query(
            "checkpoints",
            "SELECT tree_size, note, created_at FROM checkpoints ORDER BY seq",
            &[],
            checkpoint,
        )
        .await
    }

    #[instrument(skip_all)]
    async fn active_policy(&self) -> Result<Option<ActiveVersion>, StoreError> {
        self.query_opt(
            "active_policy",
            "SELECT idx, version FROM policy_activations ORDER BY idx DESC LIMIT 1",
            &[],
            |r| {
                Ok(ActiveVersion {
                    index: index(get(r, 0)?)?,
                    version: get(r, 1)?,
                })
            },
        )
        .await
    }

    #[instrument(skip_all, fields(version = %p.version))]
    async fn put_policy(&self, p: &NewPolicy) -> Result<bool, StoreError> {
        self.write(
            "INSERT INTO policies (version, bundle, uploaded_at, uploaded_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (version) DO NOTHING",
            &[&p.version, &p.bundle, &p.uploaded_at, &p.uploaded_by],
        )
        .await
        .map(|n| n == 1)
    }

    #[instrument(skip_all)]
    async fn policy(&self, version: &str) -> Result<Option<StoredPolicy>, StoreError> {
        self.query_opt(
            "policy",
            "SELECT version, bundle, uploaded_at, uploaded_by FROM policies WHERE version = $1",
            &[&version],
            |r| {
                Ok(StoredPolicy {
                    version: get(r, 0)?,
                    bundle: get(r, 1)?,
                    uploaded_at: get(r, 2)?,
                    uploaded_by: get(r, 3)?,
                })
            },
        )
        .await
    }

    #[instrument(skip_all)]
    async fn policies(&self) -> Result<Vec<PolicySummary>, StoreError> {
        self.query(
            "policies",
            "SELECT version, uploaded_at, uploaded_by FROM policies ORDER BY uploaded_at, version",
            &[],
            |r| {
                Ok(PolicySummary {
                    version: get(r, 0)?,
                    uploaded_at: get(r, 1)?,
                    uploaded_by: get(r, 2)?,
                })
            },
        )
        .await
    }

    #[instrument(skip_all, fields(id = %key.id))]
    async fn create_key(&self, key: &NewApiKey) -> Result<(), StoreError> {
        self.write(
            "INSERT INTO api_keys (id, role, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &key.id,
                &key.role.as_str(),
                &key.name,
                &&key.token_hash[..],
                &key.created_at,
            ],
        )
        .await
        .map(drop)
    }

    #[instrument(skip_all)]
    async fn key_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.query_opt(
            "key_by_hash",
            "SELECT id, role, name, created_at FROM api_keys
             WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&&token_hash[..]],
            |r| {
                let role: String = get(r, 1)?;
                let role: Role = role
                    .parse()
                    .map_err(|e| StoreError::Backend(format!("stored key role: {e}")))?;
                Ok(ApiKey {
                    id: get(r, 0)?,
                    role,
                    name: get(r, 2)?,
                    created_at: get(r, 3)?,
                })
            },
        )
        .await
    }

    #[instrument(skip_all, fields(id = %id))]
    async fn revoke_key(&self, id: &str, revoked_at: &str) -> Result<Revocation, StoreError> {
        // The live admin keys are locked before they are counted, so two replicas
        // revoking the last two admin keys at once queue, and the second sees one left.
        let revoked = self
            .write(
                "WITH live_admins AS (SELECT id FROM api_keys \
                   WHERE role = 'admin' AND revoked_at IS NULL FOR UPDATE) \
                 UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
                   AND (role <> 'admin' OR (SELECT count(*) FROM live_admins WHERE id <> $1) > 0)",
                &[&id, &revoked_at],
            )
            .await?;
        if revoked == 1 {
            return Ok(Revocation::Revoked);
        }
        let live_admin = self
            .query_opt(
                "live_admin",
                "SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL AND role = 'admin'",
                &[&id],
                |_| Ok(()),
            )
            .await?;
        Ok(match live_admin {
            Some(()) => Revocation::LastAdmin,
            None => Revocation::NotLive,
        })
    }

    #[instrument(skip_all)]
    async fn key_count(&self) -> Result<u64, StoreError> {
        let n = self
            .query_opt("key_count", "SELECT count(*) FROM api_keys", &[], |r| {
                get::<i64>(r, 0)
            })
            .await?
            .unwrap_or(0);
        index(n)
    }

    /// A session advisory lock on a connection of its own; see `leader`.
    async fn try_lead(&self) -> Result<bool, StoreError> {
        self.leadership.try_lead().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(map_pool)?;
        client.simple_query("SELECT 1").await.map_err(map_pg)?;
        Ok(())
    }
}
