//! The PostgreSQL backend: the shared conformance suite, plus what only a shared
//! database has: triggers and grants reached through raw SQL, a service role, several
//! replicas appending at once, and migrations racing on start-up.
//!
//! Needs `SEALGATE_TEST_DATABASE_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`); without it every test prints
//! "skipped: SEALGATE_TEST_DATABASE_URL not set" and passes.

mod ambiguous_commit;
mod claims;
mod errors;
mod immutability;
mod leader;
mod migrations;
mod replicas;
mod service_role;
mod support;

#[cfg(sealgate_pg_tests)]
mod conformance {
    use sealgate_store_postgres::PostgresStore;

    use crate::support::{admin_url, TestDb};

    /// A fresh store in its own database. The database outlives the test (the suite
    /// owns the test body); stale ones are swept by a later run.
    async fn fresh() -> PostgresStore {
        let admin = admin_url().expect("compiled with SEALGATE_TEST_DATABASE_URL set");
        TestDb::create(&admin).await.store().await
    }

    sealgate_store::conformance_tests!(fresh);
}

/// Stands in for the suite when it was compiled out (see build.rs).
#[cfg(not(sealgate_pg_tests))]
#[test]
fn conformance_suite() {
    println!(
        "skipped: {} not set (the conformance suite is compiled in when it is set at build time)",
        support::ENV
    );
}
