//! Versioned, forward-only migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;
use sealgate_store::StoreError;

use crate::map_err;

/// Each migration runs once, in order, inside its own transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_ledger.sql"),
    include_str!("../migrations/0002_tree.sql"),
    include_str!("../migrations/0003_resolutions.sql"),
];

pub(crate) fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map_err)?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::Backend(format!(
            "ledger.db is at schema version {current}, newer than this sealgate knows ({known}); upgrade sealgate"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(map_err)?;
        tx.execute_batch(sql).map_err(map_err)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
    }
    Ok(())
}
