//! Session advisory locks: who leads the log, and who bootstraps a fresh database.
//!
//! Leadership is a session-level advisory lock held on a connection of its own (not a
//! pooled one, which would hand the session to other work). The lock lives as long as
//! that session: a leader that dies or loses its connection frees it at once, and the
//! next replica that asks gets it. `try_lead` is called on every tick of the
//! leader's work; while holding the lock it only checks the session is alive, so a
//! leader that silently lost its connection steps down on the next tick.

use std::time::Duration;

use sealgate_store::StoreError;
use tokio::sync::Mutex;
use tokio_postgres::{Client, Config, NoTls};
use tracing::{info, warn};

use crate::error::map_pg;

/// Key of the advisory lock held by the leading replica ("sealgate lead").
const LEADER_LOCK: i64 = 0x5ea1_6a7e_0002;

/// Key of the advisory lock held while a replica bootstraps ("sealgate bootstrap").
const BOOTSTRAP_LOCK: i64 = 0x5ea1_6a7e_0003;

/// Most time one leadership check may take before it counts as a lost connection.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Most time a replica waits for another one's bootstrap.
const BOOTSTRAP_WAIT: Duration = Duration::from_secs(60);

/// The dedicated leadership session.
struct Session {
    client: Client,
    leading: bool,
}

pub(crate) struct Leadership {
    config: Config,
    session: Mutex<Option<Session>>,
}

impl Leadership {
    pub(crate) fn new(config: Config) -> Leadership {
        Leadership {
            config,
            session: Mutex::new(None),
        }
    }

    /// True while this process holds the leader lock. An error drops the session
    /// (releasing the lock if it was still held) and means "not leading".
    pub(crate) async fn try_lead(&self) -> Result<bool, StoreError> {
        let mut slot = self.session.lock().await;
        let was_leading = slot.as_ref().is_some_and(|s| s.leading);
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, self.check(&mut slot)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Unavailable("leadership check timed out".into())),
        };
        if outcome.is_err() {
            // Closing the session frees the lock on the server.
            *slot = None;
        }
        let leading = matches!(outcome, Ok(true));
        if leading != was_leading {
            if leading {
                info!("this replica now leads the log (signs checkpoints)");
            } else {
                warn!("this replica no longer leads the log");
            }
        }
        outcome
    }

    async fn check(&self, slot: &mut Option<Session>) -> Result<bool, StoreError> {
        if slot.as_ref().is_some_and(|s| s.client.is_closed()) {
            *slot = None;
        }
        let session = match slot {
            Some(session) => session,
            None => slot.insert(Session {
                client: connect(&self.config).await?,
                leading: false,
            }),
        };
        if session.leading {
            // Same live session, same lock.
            session
                .client
                .simple_query("SELECT 1")
                .await
                .map_err(map_pg)?;
        } else {
            session.leading = session
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                .await
                .map_err(map_pg)?
                .get(0);
        }
        Ok(session.leading)
    }
}

/// Held while one replica bootstraps shared state on a fresh database (the shipped
/// policy, the first admin key), so replicas starting together do it once. Released
/// when dropped (the session closes).
pub struct BootstrapLock {
    _client: Client,
}

/// Waits for the bootstrap lock of `config`'s database.
pub(crate) async fn bootstrap_lock(config: &Config) -> Result<BootstrapLock, StoreError> {
    let client = connect(config).await?;
    // Waiting for the lock must not hit the pooled sessions' statement_timeout.
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(map_pg)?;
    let locked = tokio::time::timeout(
        BOOTSTRAP_WAIT,
        client.execute("SELECT pg_advisory_lock($1)", &[&BOOTSTRAP_LOCK]),
    )
    .await;
    match locked {
        Ok(Ok(_)) => Ok(BootstrapLock { _client: client }),
        Ok(Err(e)) => Err(map_pg(e)),
        Err(_) => Err(StoreError::Unavailable(
            "timed out waiting for another replica's bootstrap".into(),
        )),
    }
}

/// One session outside the pool, with its connection driven on a task that ends when
/// the client is dropped.
async fn connect(config: &Config) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(map_pg)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(error = %e, "advisory-lock session ended with an error");
        }
    });
    Ok(client)
}
