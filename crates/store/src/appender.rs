//! Group commit: the one task per process that writes the ledger.
//!
//! Request tasks hand entries (already canonicalized and hashed) to the appender and
//! wait for the commit. While one transaction is committing, new entries queue up;
//! the next transaction takes all of them (up to `max_batch`). A response is sent
//! only after its entry's transaction committed, and a failed transaction fails every
//! entry in it — nobody is told "committed" for something that was rolled back.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::{AppendOutcome, NewEntry, Store, StoreError};

// Appends are what the channel carries; boxing each entry to shrink the rare Settle
// would cost an allocation per decision.
#[allow(clippy::large_enum_variant)]
enum Job {
    Append {
        entry: NewEntry,
        reply: Reply,
    },
    /// Answered once every entry handed over before it has committed (or failed).
    Settle(oneshot::Sender<()>),
}

type Reply = oneshot::Sender<Result<AppendOutcome, StoreError>>;

/// Handle to the appender task; cheap to clone.
#[derive(Clone)]
pub struct Appender {
    jobs: mpsc::Sender<Job>,
}

/// Observes each committed batch (its size), e.g. for metrics.
pub type BatchObserver = Arc<dyn Fn(usize) + Send + Sync>;

impl Appender {
    /// Starts the appender on the current Tokio runtime. It stops when every handle is dropped.
    pub fn spawn(
        store: Arc<dyn Store>,
        max_batch: usize,
        observer: Option<BatchObserver>,
    ) -> Appender {
        let max_batch = max_batch.max(1);
        let (jobs, rx) = mpsc::channel(max_batch * 8);
        tokio::spawn(run(store, rx, max_batch, observer));
        Appender { jobs }
    }

    /// Appends one entry and waits until its batch committed (or failed).
    pub async fn append(&self, entry: NewEntry) -> Result<AppendOutcome, StoreError> {
        let (reply, answer): (Reply, _) = oneshot::channel();
        self.jobs
            .send(Job::Append { entry, reply })
            .await
            .map_err(|_| StoreError::Unavailable("ledger appender stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("ledger appender stopped".into()))?
    }

    /// Waits until every entry handed over so far has committed (or failed), including
    /// those of requesters that gave up waiting: a server stopping signs its last
    /// checkpoint after this. Returns at once if the appender has stopped.
    pub async fn settle(&self) {
        let (done, settled) = oneshot::channel();
        if self.jobs.send(Job::Settle(done)).await.is_ok() {
            let _ = settled.await;
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    observer: Option<BatchObserver>,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    let (mut entries, mut replies) = (Vec::new(), Vec::new());
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        for job in jobs.drain(..) {
            match job {
                Job::Append { entry, reply } => {
                    entries.push(entry);
                    replies.push(reply);
                }
                Job::Settle(done) => {
                    commit(store.as_ref(), &mut entries, &mut replies, &observer).await;
                    let _ = done.send(());
                }
            }
        }
        commit(store.as_ref(), &mut entries, &mut replies, &observer).await;
    }
}

/// Commits `entries` in one transaction and answers each of `replies`; leaves both empty.
async fn commit(
    store: &dyn Store,
    entries: &mut Vec<NewEntry>,
    replies: &mut Vec<Reply>,
    observer: &Option<BatchObserver>,
) {
    if entries.is_empty() {
        return;
    }
    let (entries, replies) = (std::mem::take(entries), std::mem::take(replies));
    let n = entries.len();
    match store.append(entries).await {
        Ok(outcomes) if outcomes.len() == n => {
            debug!(batch = n, "ledger batch committed");
            if let Some(observe) = &observer {
                observe(n);
            }
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // A requester that gave up still has its entry committed; nothing to undo.
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(outcomes) => {
            let err = StoreError::Backend(format!(
                "store returned {} outcomes for {n} entries",
                outcomes.len()
            ));
            warn!(error = %err, "ledger batch outcome mismatch");
            replies
                .into_iter()
                .for_each(|r| drop(r.send(Err(err.clone()))));
        }
        Err(err) => {
            warn!(error = %err, batch = n, "ledger batch failed");
            replies
                .into_iter()
                .for_each(|r| drop(r.send(Err(err.clone()))));
        }
    }
}
