//! Group commit: writers of one instance that queue up share a
//! transaction, each later one inside a savepoint (see
//! `docs/design/group-commit.md`).

use super::behind;
use super::behind::Behind;
use super::lock;
use super::opening::write_opening;
use super::pool::Conn;
use super::{PostgresStore, Tx};
use crate::store::StoreError;
use crate::store::WriteFn;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Writers whose changes share one transaction, at most this many.
pub(super) const MAX_GROUP: usize = 4;

pub(super) const SAVEPOINT_NAME: &str = "fs_writer";
/// Opens each later writer's part of a group's transaction.
pub(super) const SAVEPOINT: &str = "SAVEPOINT fs_writer";

/// Where a later writer of a group started ([`Tx::mark`]).
pub(super) struct WriterMark {
    pub(super) pending: behind::PendingMark,
    pub(super) head: u64,
    pub(super) opening_meta: HashMap<String, String>,
}

/// The writer's connection and the transaction a group leaves open.
///
/// A writer whose closure returned while another writer of this instance
/// waits for its turn leaves its transaction here, begun and holding
/// [`WRITE_LOCK`](super::WRITE_LOCK), and waits for the group to end; the next writer
/// resumes it. The writer that finds nobody waiting, or is the
/// [`MAX_GROUP`]th, flushes and commits for the whole group.
#[derive(Default)]
pub(super) struct Writer {
    pub(super) conn: Option<Conn>,
    pub(super) open: Option<Suspended>,
}

/// A begun write transaction between two writers of a group.
pub(super) struct Suspended {
    pub(super) behind: Behind,
    pub(super) head: u64,
    pub(super) opening_meta: HashMap<String, String>,
    pub(super) group: Arc<Group>,
}

/// Writers who share one transaction, waiting for it to end.
#[derive(Default)]
pub(super) struct Group {
    pub(super) state: Mutex<(usize, Option<GroupEnd>)>,
    pub(super) ended: Condvar,
}

#[derive(Clone, Debug)]
pub(super) enum GroupEnd {
    Committed,
    Failed(String),
}

impl Group {
    pub(super) fn members(&self) -> usize {
        lock(&self.state).0
    }

    pub(super) fn join(&self) {
        lock(&self.state).0 += 1;
    }

    pub(super) fn end(&self, end: GroupEnd) {
        lock(&self.state).1 = Some(end);
        self.ended.notify_all();
    }

    /// Wait for the group's end until `deadline` (`after` from the
    /// call's start). A writer that gives up may still be committed with
    /// the group, or not: a retry tells.
    pub(super) fn wait_until(&self, deadline: Instant, after: Duration) -> Result<(), StoreError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let (st, _) = self
            .ended
            .wait_timeout_while(lock(&self.state), left, |st| st.1.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        match &st.1 {
            Some(GroupEnd::Committed) => Ok(()),
            Some(GroupEnd::Failed(why)) => Err(StoreError::Backend(why.clone().into())),
            None => Err(StoreError::TimedOut {
                what: "its group's COMMIT",
                after: Some(after),
            }),
        }
    }
}

/// Ends a group when dropped (also while unwinding), unless disarmed.
pub(super) struct GroupEnding<'g> {
    pub(super) group: &'g Group,
    pub(super) end: Option<GroupEnd>,
}

impl Drop for GroupEnding<'_> {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            self.group.end(end);
        }
    }
}

impl PostgresStore {
    /// Group commit: when another writer of this instance is waiting as
    /// `f` returns, the transaction is left open for it (see [`Writer`]),
    /// and this call returns once the group's transaction has ended.
    pub(super) fn write_in_group(&self, f: &mut WriteFn<'_>) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.wait;
        let turn = self
            .writers
            .wait_until(deadline)
            .ok_or_else(|| self.timed_out("its turn on the writer"))?;
        let mut slot = lock(&self.writer);
        if slot.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            slot.conn = None;
            if let Some(lost) = slot.open.take() {
                lost.group.end(GroupEnd::Failed(
                    "the connection to the database was lost".into(),
                ));
            }
        }
        let resumed = slot.open.take();
        let Writer { conn, open } = &mut *slot;
        let conn = match conn {
            Some(conn) => conn,
            empty => empty.insert(self.connect()?),
        };
        let (mut tx, group) = match resumed {
            Some(s) => {
                let group = Arc::clone(&s.group);
                (Tx::resume(&mut conn.client, &mut conn.statements, s), group)
            }
            None => (
                Tx::new(
                    &mut conn.client,
                    &mut conn.statements,
                    write_opening(),
                    Some(Behind::default()),
                ),
                Arc::new(Group::default()),
            ),
        };
        // Until the group's end is known, writers waiting in it hear that
        // it failed (also if `f` panics).
        let mut ending = GroupEnding {
            group: &group,
            end: Some(GroupEnd::Failed("a writer of the group stopped".into())),
        };
        let mark = tx.mark();
        let own = f(&mut tx);
        // A failed writer of a group is undone alone; the group goes on.
        let usable = match (&own, mark) {
            (Ok(()), _) => true,
            (Err(_), Some(mark)) => tx.undo(mark),
            (Err(_), None) => false,
        };
        if usable
            && group.members() + 1 < MAX_GROUP
            && self.writers.waiting() > 0
            && tx.ensure_open().is_ok()
        {
            if own.is_ok() {
                group.join();
            }
            *open = Some(tx.suspend(Arc::clone(&group)));
            ending.end = None;
            drop(slot);
            drop(turn);
            return match own {
                Ok(()) => group.wait_until(deadline, self.wait),
                Err(e) => Err(e),
            };
        }
        let ended = if usable {
            tx.flush().and_then(|()| {
                let written = tx.behind.as_ref().map_or(0, |b| b.records_sent);
                tx.end("COMMIT").map(|()| written)
            })
        } else {
            tx.end("ROLLBACK").map(|()| 0)
        };
        if ended.is_err() {
            // Whatever state it is left in, the next writer starts on a
            // fresh connection rather than inherit a transaction.
            slot.conn = None;
        }
        ending.end = Some(match (&ended, usable) {
            (Ok(_), true) => GroupEnd::Committed,
            (Err(e), _) => GroupEnd::Failed(e.to_string()),
            (Ok(_), false) => GroupEnd::Failed("a writer of the group failed".into()),
        });
        drop(ending);
        drop(slot);
        drop(turn);
        self.analyzer.wrote(ended?, &self.config);
        own
    }
}
