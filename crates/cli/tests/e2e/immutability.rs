//! Point 6: the ledger tables refuse UPDATE and DELETE, even from the sqlite3 shell.

use std::process::Command;

use crate::support::{have, manifest, Server};

const SQLITE3: &str = "/usr/bin/sqlite3";

/// Each evidence table with a column to "update".
const TABLES: &[(&str, &str)] = &[
    ("entries", "kind"),
    ("decisions", "status"),
    ("seals", "expires_at"),
    ("redemptions", "redeemed_at"),
    ("policies", "uploaded_by"),
    ("policy_activations", "version"),
];

fn sqlite(db: &std::path::Path, sql: &str) -> (bool, String, String) {
    let out = Command::new(SQLITE3)
        .arg("-bail")
        .arg("-cmd")
        .arg(".timeout 10000")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn ledger_tables_refuse_update_and_delete_from_the_sqlite_shell() {
    if !have(SQLITE3, &["-version"]) {
        eprintln!("SKIP ledger_tables_refuse_update_and_delete_from_the_sqlite_shell: {SQLITE3} is not available");
        return;
    }
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let executor = server.create_key("executor").await;
    // A row in every table: the shipped policy and its activation exist from the start,
    // an approval gives a decision and a seal, redeeming it gives a redemption.
    let d = server
        .approved(&agent, &manifest("agent-immutable", "payment", 1000))
        .await;
    server
        .redeem(
            &executor,
            d["seal_id"].as_str().unwrap(),
            d["seal"].as_str().unwrap(),
        )
        .await
        .expect(200);

    // The audit index (decisions) is written in bulk; an audit query writes what is
    // pending, so every table below has a row to protect.
    let auditor = server.create_key("auditor").await;
    server
        .get("/v1/audit/query?limit=1", Some(&auditor.token))
        .await
        .expect(200);

    let db = server.data_dir.join("ledger.db");
    for (table, column) in TABLES {
        let (ok, count_before, err) = sqlite(&db, &format!("SELECT count(*) FROM {table};"));
        assert!(ok, "counting {table}: {err}");
        assert_ne!(count_before, "0", "{table} has no row to protect");

        for sql in [
            format!("UPDATE {table} SET {column} = {column};"),
            format!("DELETE FROM {table};"),
        ] {
            let (ok, out, err) = sqlite(&db, &sql);
            assert!(!ok, "`{sql}` succeeded: {out}");
            assert!(
                err.contains("immutable"),
                "`{sql}` failed without naming immutability: {err}"
            );
        }
        let (_, count_after, _) = sqlite(&db, &format!("SELECT count(*) FROM {table};"));
        assert_eq!(count_after, count_before, "{table} lost rows");
    }

    // The server never noticed and still serves.
    server
        .validate(&agent, &manifest("agent-immutable", "payment", 1000))
        .await
        .expect(200);
}
