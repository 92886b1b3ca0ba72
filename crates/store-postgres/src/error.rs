//! Maps driver and pool errors onto `StoreError`, by what the caller should do:
//! `Unavailable` is transient (retry within a deadline, then fail closed),
//! `Conflict` is a unique violation, everything else is `Backend`.
//! Owns no I/O; only this module looks at SQLSTATE codes.

use deadpool_postgres::PoolError;
use sealgate_store::StoreError;
use tokio_postgres::error::SqlState;

/// Maps an error from tokio-postgres.
pub(crate) fn map_pg(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        let text = match db.detail() {
            Some(detail) => format!("{text}; {detail}"),
            None => text,
        };
        return match classify(db.code()) {
            Class::Transient => StoreError::Unavailable(text),
            Class::Conflict => StoreError::Conflict(text),
            Class::Other => StoreError::Backend(text),
        };
    }
    if is_connection_failure(&e) {
        StoreError::Unavailable(error_chain(&e))
    } else {
        StoreError::Backend(error_chain(&e))
    }
}

/// Maps an error from the pool: waiting too long for a connection, or failing to open
/// one, means the database is unavailable right now.
pub(crate) fn map_pool(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => map_pg(e),
        PoolError::Timeout(kind) => {
            StoreError::Unavailable(format!("timed out waiting for a connection ({kind:?})"))
        }
        PoolError::Closed => StoreError::Unavailable("connection pool closed".into()),
        other => StoreError::Backend(other.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Transient,
    Conflict,
    Other,
}

/// What a SQLSTATE means for the caller.
pub(crate) fn classify(code: &SqlState) -> Class {
    const TRANSIENT: &[SqlState] = &[
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        // statement_timeout / lock_timeout: the database is too slow right now.
        SqlState::QUERY_CANCELED,
        SqlState::LOCK_NOT_AVAILABLE,
        // A hot standby that became read-only under us (failover in progress).
        SqlState::READ_ONLY_SQL_TRANSACTION,
    ];
    if code == &SqlState::UNIQUE_VIOLATION {
        Class::Conflict
    } else if TRANSIENT.contains(code) || code.code().starts_with("08") {
        // Class 08: connection exceptions.
        Class::Transient
    } else {
        Class::Other
    }
}

/// tokio-postgres keeps its error kinds private; a closed connection, an I/O error
/// underneath, a failed connect or a connect timeout all mean "cannot reach it now".
fn is_connection_failure(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let text = e.to_string();
    text.starts_with("error connecting to server")
        || text.starts_with("timeout waiting for server")
        || text.starts_with("error communicating with the server")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_unavailable_and_unique_violation_is_a_conflict() {
        for code in [
            "40001", "40P01", "57P01", "57P02", "57P03", "08006", "08001", "53300",
        ] {
            assert_eq!(
                classify(&SqlState::from_code(code)),
                Class::Transient,
                "{code}"
            );
        }
        assert_eq!(classify(&SqlState::from_code("23505")), Class::Conflict);
        for code in ["23503", "42P01", "P0001", "55000", "42501"] {
            assert_eq!(classify(&SqlState::from_code(code)), Class::Other, "{code}");
        }
    }
}
