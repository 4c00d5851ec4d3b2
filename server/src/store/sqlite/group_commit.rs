//! Group commit: writers share one `BEGIN IMMEDIATE` transaction, each in
//! a savepoint of its own (see the module documentation above and
//! `docs/design/group-commit.md`).

use super::rows::Cached;
use super::{SqliteStore, lock};
use crate::store::StoreError;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Most writers one COMMIT covers.
pub(super) const MAX_BATCH: usize = 16;
/// The writer connection and its batch.
pub(super) struct Writer {
    pub(super) conn: Connection,
    /// A batch (one `BEGIN IMMEDIATE` transaction) is open.
    pub(super) open: bool,
    /// Number of the open batch, or of the last one when none is open.
    pub(super) batch: u64,
    /// Writers whose work is in the open batch.
    pub(super) members: usize,
    /// COMMITs run (a batch of one included).
    pub(super) commits: u64,
    /// When the open batch began.
    pub(super) opened: Instant,
    /// What a COMMIT costs here (a moving average): a batch stays open for
    /// queued writers only while it is younger than this, so the first
    /// writer in it never waits much longer for the others than one COMMIT
    /// of its own would have taken.
    pub(super) commit_cost: Duration,
}

/// What the writers waiting for a batch's COMMIT read.
#[derive(Default)]
pub(super) struct Ends {
    /// Every batch numbered up to this one has ended.
    pub(super) ended: u64,
    /// Writers waiting for the open batch to end (those that gave up at
    /// their deadline are no longer counted).
    pub(super) waiting: usize,
    /// Batches that failed and waiting members that have not yet read the
    /// error.
    pub(super) failed: Vec<FailedBatch>,
}

pub(super) struct FailedBatch {
    pub(super) batch: u64,
    pub(super) error: Arc<rusqlite::Error>,
    pub(super) unread: usize,
}

/// A batch's failure, reported to every writer in it.
#[derive(Debug, thiserror::Error)]
#[error("group commit failed: {0}")]
pub(super) struct BatchFailed(#[source] Arc<rusqlite::Error>);

/// How a writer's closure ended inside its savepoint.
pub(super) enum Ran {
    /// Released into the batch.
    Joined,
    /// Rolled back to its savepoint; the batch goes on without it.
    Failed(StoreError),
    /// Rolled back to its savepoint, then re-raised once the batch is safe.
    Panicked(Box<dyn std::any::Any + Send>),
}

impl SqliteStore {
    /// Run `f` on the writer connection inside a savepoint of the open batch
    /// and return once the COMMIT holding its work succeeded (see the module
    /// documentation). `Err` means nothing of `f`'s was applied.
    pub(super) fn write_conn(
        &self,
        f: &mut dyn FnMut(&Connection) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.wait;
        self.queued.fetch_add(1, Ordering::SeqCst);
        let turn = self.turns.wait_until(deadline);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let Some(turn) = turn else {
            return Err(StoreError::TimedOut {
                what: "its turn on the writer",
                after: Some(self.wait),
            });
        };
        let mut w = lock(&self.writer);
        if !w.open {
            if !w.conn.is_autocommit() {
                // Left over from a batch whose ROLLBACK failed.
                let _ = w.conn.exec("ROLLBACK", []);
            }
            w.conn.exec("BEGIN IMMEDIATE", [])?;
            w.opened = Instant::now();
            w.open = true;
            w.batch += 1;
            w.members = 0;
        }
        let batch = w.batch;
        let (ran, undone) = run_in_savepoint(&w.conn, f);
        if !undone || w.conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full
            // disk), or a failed writer's work could not be undone alone:
            // the batch is abandoned whole, earlier members' work with it.
            if !w.conn.is_autocommit() {
                let _ = w.conn.exec("ROLLBACK", []);
            }
            let error = Arc::new(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the group transaction was rolled back".into()),
            ));
            self.end_batch(&mut w, Some(error.clone()));
            drop(w);
            return match ran {
                Ran::Panicked(p) => std::panic::resume_unwind(p),
                Ran::Failed(e) => Err(e),
                Ran::Joined => Err(StoreError::Backend(Box::new(BatchFailed(error)))),
            };
        }
        let joined = matches!(ran, Ran::Joined);
        if joined {
            w.members += 1;
        }
        let last = self.queued.load(Ordering::SeqCst) == 0
            || w.members >= MAX_BATCH
            || w.opened.elapsed() >= w.commit_cost;
        if last || matches!(ran, Ran::Panicked(_)) {
            let outcome = self.commit_batch(&mut w);
            drop(w);
            return match ran {
                Ran::Panicked(p) => std::panic::resume_unwind(p),
                Ran::Failed(e) => Err(e),
                Ran::Joined => outcome.map_err(|e| StoreError::Backend(Box::new(BatchFailed(e)))),
            };
        }
        if let Ran::Failed(e) = ran {
            return Err(e);
        }
        // The next writer may go while this one waits for the COMMIT.
        let mut ends = lock(&self.ends);
        ends.waiting += 1;
        drop(w);
        drop(turn);
        let (mut ends, _) = self
            .batch_ended
            .wait_timeout_while(
                ends,
                deadline.saturating_duration_since(Instant::now()),
                |e| e.ended < batch,
            )
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ends.ended < batch {
            // The writer holding the turn is stuck. This writer's work may
            // still be committed with the batch, or not: a retry tells.
            ends.waiting -= 1;
            return Err(StoreError::TimedOut {
                what: "its group's COMMIT",
                after: Some(self.wait),
            });
        }
        let Some(i) = ends.failed.iter().position(|b| b.batch == batch) else {
            return Ok(());
        };
        let error = ends.failed[i].error.clone();
        ends.failed[i].unread -= 1;
        if ends.failed[i].unread == 0 {
            ends.failed.swap_remove(i);
        }
        Err(StoreError::Backend(Box::new(BatchFailed(error))))
    }

    /// COMMIT the open batch (ROLLBACK when it holds nobody's work) and end
    /// it.
    pub(super) fn commit_batch(&self, w: &mut Writer) -> Result<(), Arc<rusqlite::Error>> {
        let res = if w.members == 0 {
            w.conn.exec("ROLLBACK", [])
        } else {
            w.commits += 1;
            let start = Instant::now();
            let res = w.conn.exec("COMMIT", []);
            w.commit_cost = (w.commit_cost * 7 + start.elapsed()) / 8;
            res
        };
        match res {
            Ok(_) => {
                self.end_batch(w, None);
                Ok(())
            }
            Err(e) => {
                if !w.conn.is_autocommit() {
                    // A failed COMMIT can leave the transaction open; the
                    // batch is abandoned whole. If even this fails, the next
                    // `BEGIN IMMEDIATE` fails and reports it.
                    let _ = w.conn.exec("ROLLBACK", []);
                }
                let e = Arc::new(e);
                self.end_batch(w, Some(e.clone()));
                Err(e)
            }
        }
    }

    /// Mark the open batch ended, keep its error for the members waiting
    /// on it to read, and wake them.
    pub(super) fn end_batch(&self, w: &mut Writer, failure: Option<Arc<rusqlite::Error>>) {
        let mut ends = lock(&self.ends);
        let waiting = std::mem::take(&mut ends.waiting);
        if let Some(error) = failure
            && waiting > 0
        {
            ends.failed.push(FailedBatch {
                batch: w.batch,
                error,
                unread: waiting,
            });
        }
        ends.ended = w.batch;
        drop(ends);
        w.open = false;
        w.members = 0;
        self.batch_ended.notify_all();
    }
}

/// Run `f` between `SAVEPOINT` and `RELEASE`, rolling back to the savepoint
/// when it fails or panics. The flag is false when that rollback failed, so
/// `f`'s work may still be in the transaction.
pub(super) fn run_in_savepoint(
    c: &Connection,
    f: &mut dyn FnMut(&Connection) -> Result<(), StoreError>,
) -> (Ran, bool) {
    if let Err(e) = c.exec("SAVEPOINT w", []) {
        return (Ran::Failed(e.into()), true);
    }
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)));
    let undo = || -> rusqlite::Result<()> {
        c.exec("ROLLBACK TO w", [])?;
        c.exec("RELEASE w", [])?;
        Ok(())
    };
    match res {
        Ok(Ok(())) => match c.exec("RELEASE w", []) {
            Ok(_) => (Ran::Joined, true),
            Err(e) => (Ran::Failed(e.into()), undo().is_ok()),
        },
        Ok(Err(e)) => (Ran::Failed(e), undo().is_ok()),
        Err(p) => {
            let undone = undo().is_ok();
            (Ran::Panicked(p), undone)
        }
    }
}
