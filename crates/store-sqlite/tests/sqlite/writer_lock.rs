//! One writing process at a time: a second writable open of the same ledger is refused
//! while the first is open, read-only opens are not, and the lock goes with the store.

use sealgate_store::{Store, StoreError};
use sealgate_store_sqlite::SqliteStore;

#[tokio::test]
async fn a_second_writer_is_refused_until_the_first_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let first = SqliteStore::open(&path).expect("open");
    let clone = first.clone();

    match SqliteStore::open(&path) {
        Err(StoreError::Unavailable(why)) => {
            assert!(
                why.contains(&format!(
                    "open for writing by process {}",
                    std::process::id()
                )),
                "{why}"
            );
            assert!(why.contains("ledger.db"), "{why}");
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("a second writer opened the ledger"),
    }

    // Readers (verify, export) do not need the lock.
    let reader = SqliteStore::open_read_only(&path).expect("read-only open beside the writer");
    assert_eq!(reader.tree_size().await.expect("size"), 0);

    // The lock lives as long as any handle of the store.
    drop(first);
    assert!(
        SqliteStore::open(&path).is_err(),
        "a clone still holds the lock"
    );
    drop(clone);
    let again = SqliteStore::open(&path).expect("reopen once the first writer is gone");
    assert_eq!(again.tree_size().await.expect("size"), 0);

    let mode = std::fs::metadata(dir.path().join("ledger.db.lock"))
        .expect("lock file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}
