//! Versioned, forward-only migrations, recorded in `schema_migrations`.
//!
//! Replicas starting together all call `migrate`; a session-level advisory lock
//! (per database) lets one of them apply what is missing while the others wait and
//! then find nothing to do. Each migration runs in its own transaction together with
//! its `schema_migrations` row, so a crash leaves a migration either applied and
//! recorded or neither. Migrations are never edited once released: add a new one.

use sealgate_store::StoreError;
use tokio_postgres::{Client, Config, NoTls};
use tracing::{info, instrument, warn};

use crate::error::map_pg;

/// (version, name, SQL), in order; versions are 1, 2, 3, ...
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "ledger", include_str!("../migrations/0001_ledger.sql")),
    (
        2,
        "service_role",
        include_str!("../migrations/0002_service_role.sql"),
    ),
    (3, "tree", include_str!("../migrations/0003_tree.sql")),
    (
        4,
        "resolutions",
        include_str!("../migrations/0004_resolutions.sql"),
    ),
];

/// The migration that adds `tree_nodes`; entries already in the ledger get their
/// nodes computed and written in the same transaction.
const TREE_VERSION: i32 = 3;

/// Key of the advisory lock that serialises migrations ("sealgate migrate").
const MIGRATION_LOCK: i64 = 0x5ea1_6a7e_0001;

/// The schema version this build expects.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Applies the migrations `url`'s database is missing and returns how many ran.
/// Runs as whoever `url` names: the schema owner on first start. A replica connected
/// as the service role can call it too, and succeeds when nothing is missing.
pub async fn migrate(url: &str) -> Result<usize, StoreError> {
    let config: Config = url
        .parse()
        .map_err(|e| StoreError::Backend(format!("invalid database url: {e}")))?;
    migrate_with(&config).await
}

pub(crate) async fn migrate_with(config: &Config) -> Result<usize, StoreError> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(map_pg)?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(error = %e, "migration connection ended with an error");
        }
    });
    let result = apply(&mut client).await;
    // Closing the session releases the advisory lock even if unlocking failed.
    drop(client);
    let _ = driver.await;
    result
}

#[instrument(skip_all)]
async fn apply(client: &mut Client) -> Result<usize, StoreError> {
    // Waiting for another replica's migration, or a long migration itself, must not
    // hit the statement_timeout the pooled sessions get.
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(map_pg)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(map_pg)?;
    let applied = apply_locked(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(map_pg);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

async fn apply_locked(client: &mut Client) -> Result<usize, StoreError> {
    // Checked before creating, so a role without CREATE on the schema gets past this
    // once the table exists.
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(map_pg)?
        .get(0);
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (
                     version     integer     PRIMARY KEY,
                     name        text        NOT NULL,
                     applied_at  timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(|e| needs_owner(map_pg(e)))?;
    }
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(map_pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let current = versions.len() as i32;
    if versions.iter().copied().ne(1..=current) {
        return Err(StoreError::Backend(format!(
            "schema_migrations is not a prefix of 1..=n: {versions:?}"
        )));
    }
    if current > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "database is at schema version {current}, newer than this sealgate knows ({SCHEMA_VERSION}); upgrade sealgate"
        )));
    }
    let mut ran = 0;
    for &(version, name, sql) in MIGRATIONS.iter().skip(current as usize) {
        // Rolled back on drop if anything below fails.
        let tx = client.transaction().await.map_err(map_pg)?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| needs_owner(map_pg(e)))?;
        if version == TREE_VERSION {
            let nodes = crate::tree::backfill(&tx).await?;
            if nodes > 0 {
                info!(nodes, "backfilled the Merkle tree of an existing ledger");
            }
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await
        .map_err(map_pg)?;
        tx.commit().await.map_err(map_pg)?;
        info!(version, name, "applied migration");
        ran += 1;
    }
    Ok(ran)
}

fn needs_owner(e: StoreError) -> StoreError {
    match e {
        StoreError::Backend(msg) if msg.contains("permission denied") => StoreError::Backend(
            format!("{msg}; run `migrate` as the schema owner (the service role cannot change the schema)"),
        ),
        other => other,
    }
}
