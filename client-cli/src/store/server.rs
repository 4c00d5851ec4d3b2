//! Server state as last pulled, and what sync does to it: push outcomes,
//! pulled pages, evictions, scope tallies.

use super::pulled::PulledRecord;
use super::{Store, columns, issues, key, load_clock, observe, save_clock, set_meta, view};
use crate::error::Failure;
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc::Receiver;
use sync_protocol::integrity::{Tally, canonical_json};
use sync_protocol::wire::{Change, Outcome, PullResponse, PushResponse};
use sync_protocol::{Op, RecordState};

/// What recording one push answer did.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutcomesRecorded {
    /// Ops applied in full.
    pub applied: u64,
    /// Ops that lost on some field.
    pub superseded: u64,
    /// Ops refused.
    pub rejected: u64,
    /// Conflict rows stored.
    pub conflicts: u64,
    /// Ops answered `device_diverged`: left in the outbox for the device
    /// this laptop becomes.
    pub diverged: u64,
}

/// What applying one pulled page did.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageApplied {
    /// Records received.
    pub upserts: u64,
    /// Customers evicted.
    pub evicted: u64,
}

/// Store a record's server state; `json` is its canonical JSON.
fn upsert_server(
    conn: &Connection,
    id: &str,
    collection: &str,
    customer_id: Option<&str>,
    json: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO server_records (id, collection, customer_id, state) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET collection = excluded.collection, customer_id = excluded.customer_id, state = excluded.state",
    )?
    .execute(params![id, collection, customer_id, json])?;
    Ok(())
}

fn server_state(conn: &Connection, id: &str) -> Result<Option<RecordState>> {
    let s: Option<String> = conn
        .prepare_cached("SELECT state FROM server_records WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    s.map(|s| serde_json::from_str(&s))
        .transpose()
        .context("damaged server state")
}

/// SQLite page cache for a sync, in KiB: a sync touches every table and
/// index; with the default 2 MiB most page reads miss and the cache spills
/// in the middle of a transaction.
const SYNC_CACHE_KIB: i64 = 32 * 1024;

/// WAL pages before an automatic checkpoint during a sync (the default is 1000).
const SYNC_WAL_PAGES: i64 = 16_000;

/// A pulled page whose records keep the exact text the server sent. The
/// server sends each record as the canonical JSON it stores, and computes
/// scope checksums over those bytes, so they are stored as received
/// instead of being encoded again ([`PulledRecord`]).
pub type PulledPage = PullResponse<PulledRecord>;

/// Copies the write-ahead log into the database file on its own connection
/// (and the caller's thread) while a bulk pull keeps writing: the pull's
/// commits then only append to the log. See [`Store::checkpointer`].
pub struct Checkpointer {
    conn: Connection,
}

impl Checkpointer {
    /// Run a passive checkpoint after each kick until every sender is gone.
    /// A failed checkpoint loses nothing (the log still holds the pages and
    /// the next checkpoint, at the latest the one on close, copies them), so
    /// it is not reported.
    pub fn run(self, kicks: &Receiver<()>) {
        while kicks.recv().is_ok() {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }
}

impl Store {
    /// A [`Checkpointer`] on a second connection, and this connection stops
    /// checkpointing by itself until [`Store::resume_checkpoints`].
    pub fn checkpointer(&self) -> Result<Checkpointer> {
        let path = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .context("the local store has no file to checkpoint")?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Checkpointer { conn })
    }

    /// Let this connection checkpoint by itself again (as after
    /// [`Store::prepare_for_sync`]).
    pub fn resume_checkpoints(&self) -> Result<()> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", SYNC_WAL_PAGES)?;
        Ok(())
    }

    /// After a sync: copy the write-ahead log into the database (syncing
    /// both) and empty it, so that a bulk pull leaves no large log behind,
    /// then sync every commit again. A busy store is not an error: the log
    /// keeps the pages and a later checkpoint copies them; so it waits for
    /// another command's write a second at most.
    pub fn finish_sync(&self) -> Result<()> {
        self.conn.busy_timeout(super::WAIT_NOTICE_AFTER)?;
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        self.conn.busy_timeout(self.wait)?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(())
    }

    /// Size the page cache for a sync (bulk writes to every table), and
    /// stop syncing the log at every commit. What a sync writes (push
    /// outcomes, pulled pages with their cursor) the server still has: if
    /// a power cut takes the last of it, the next sync pushes the same ops
    /// again, answered from their stored outcomes, and pulls from the
    /// cursor that is left. [`Store::finish_sync`] syncs it all at the end.
    pub fn prepare_for_sync(&self) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", -SYNC_CACHE_KIB)?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoint the WAL less often while syncing: pages that every page
        // of a bulk pull touches again (index interiors, meta) are then
        // copied to the database once instead of after every commit.
        self.conn
            .pragma_update(None, "wal_autocheckpoint", SYNC_WAL_PAGES)?;
        Ok(())
    }

    /// Record the outcomes of one push in one transaction: answered ops
    /// leave the outbox; applied ones are folded into the server state (the
    /// next pull replaces it with the server's own), superseded ones leave
    /// conflict rows, rejected ones become problems. `sent` are the ops of
    /// the push (answers for ops not among them are looked up in the outbox).
    pub fn record_outcomes(
        &mut self,
        sent: &[Op],
        resp: &PushResponse,
    ) -> Result<OutcomesRecorded> {
        let device = self
            .identity
            .map(|i| i.device)
            .ok_or_else(Failure::not_logged_in)?;
        let tx = self.write_tx()?;
        let mut out = OutcomesRecorded::default();
        let by_seq: HashMap<u64, &Op> = sent.iter().map(|op| (op.device_seq, op)).collect();
        for o in &resp.outcomes {
            let loaded;
            let op: &Op = if let Some(op) = by_seq.get(&o.device_seq) {
                op
            } else {
                let row: Option<String> = tx
                    .prepare_cached("SELECT op FROM outbox WHERE device_seq = ?1")?
                    .query_row([o.device_seq as i64], |r| r.get(0))
                    .optional()?;
                let Some(text) = row else { continue };
                loaded =
                    serde_json::from_str::<Op>(&text).context("an op in the outbox is damaged")?;
                &loaded
            };
            if op.op_id != o.op_id {
                // Not the op we sent under this number: leave it for the next push.
                continue;
            }
            if let Outcome::DeviceDiverged { .. } = o.outcome {
                out.diverged += 1;
                continue;
            }
            // Only the op still held under this number leaves the outbox.
            let deleted = tx
                .prepare_cached("DELETE FROM outbox WHERE device_seq = ?1 AND op_id = ?2")?
                .execute(params![o.device_seq as i64, o.op_id.to_string()])?;
            if deleted == 0 {
                continue;
            }
            let id = op.record_id.to_string();
            match &o.outcome {
                Outcome::Applied | Outcome::Superseded { .. } => {
                    let mut state = server_state(&tx, &id)?
                        .unwrap_or_else(|| RecordState::new(op.record_id, &op.collection));
                    state.apply(op);
                    if state.exists() {
                        let json = canonical_json(&state);
                        let customer = columns::customer_of(&state);
                        upsert_server(&tx, &id, &state.collection, customer.as_deref(), &json)?;
                        view::refresh_from(&tx, &state, false)?;
                    } else {
                        view::refresh(&tx, &id)?;
                    }
                    if let Outcome::Superseded { conflicts } = &o.outcome {
                        out.superseded += 1;
                        for c in conflicts {
                            if issues::insert_conflict(&tx, op, c)? {
                                out.conflicts += 1;
                            }
                        }
                    } else {
                        out.applied += 1;
                    }
                }
                Outcome::Rejected {
                    code,
                    message,
                    field,
                } => {
                    out.rejected += 1;
                    issues::insert_problem(&tx, op, code.as_str(), message, field.as_deref())?;
                    view::refresh(&tx, &id)?;
                }
                Outcome::DeviceDiverged { .. } => {}
            }
        }
        observe(&tx, device, &resp.server_clock)?;
        match &resp.clock_warning {
            Some(w) => set_meta(&tx, key::CLOCK_WARNING, &serde_json::to_string(w)?)?,
            None if !resp.outcomes.is_empty() => {
                tx.execute("DELETE FROM meta WHERE key = ?1", [key::CLOCK_WARNING])?;
            }
            None => {}
        }
        tx.commit()?;
        Ok(out)
    }

    /// Apply one pulled page and store its cursor, in one transaction.
    pub fn apply_page(&mut self, page: &PulledPage) -> Result<PageApplied> {
        let device = self
            .identity
            .map(|i| i.device)
            .ok_or_else(Failure::not_logged_in)?;
        let tx = self.write_tx()?;
        let mut out = PageApplied::default();
        // Observing is taking a maximum: do it in memory, persist once.
        let mut clock = load_clock(&tx, device)?;
        // A bulk pull (bootstrap, or right after the outbox was pushed)
        // has no pending op to re-apply: skip the lookup per record. An
        // eviction below never adds ops, so this holds for the whole page.
        let outbox_empty = view::outbox_is_empty(&tx)?;
        for change in &page.changes {
            match change {
                Change::Upsert { record, .. } => {
                    upsert_server(
                        &tx,
                        record.id(),
                        record.collection(),
                        record.columns().customer_id.as_deref(),
                        record.json(),
                    )?;
                    if let Some(newest) = record.newest() {
                        clock.observe(newest);
                    }
                    view::refresh_pulled(&tx, record, outbox_empty)?;
                    out.upserts += 1;
                }
                Change::Evict { customer_id, .. } => {
                    let c = customer_id.to_string();
                    let mut ids = BTreeSet::new();
                    for table in ["server_records", "records"] {
                        let mut stmt = tx.prepare(&format!(
                            "SELECT id FROM {table} WHERE id = ?1 OR customer_id = ?1"
                        ))?;
                        for id in stmt.query_map([&c], |r| r.get::<_, String>(0))? {
                            ids.insert(id?);
                        }
                    }
                    tx.execute(
                        "DELETE FROM server_records WHERE id = ?1 OR customer_id = ?1",
                        [&c],
                    )?;
                    tx.execute(
                        "DELETE FROM records WHERE id = ?1 OR customer_id = ?1",
                        [&c],
                    )?;
                    // Ops still pending for these records stay in the outbox
                    // (they will come back as problems); the view shows them.
                    for id in ids {
                        view::refresh(&tx, &id)?;
                    }
                    out.evicted += 1;
                }
            }
        }
        set_meta(&tx, key::CURSOR, &page.cursor.to_string())?;
        clock.observe(&page.server_clock);
        save_clock(&tx, &clock)?;
        tx.commit()?;
        Ok(out)
    }

    /// Count and checksum of the server state per collection.
    pub fn tallies(&self) -> Result<BTreeMap<String, Tally>> {
        let mut stmt = self
            .conn
            .prepare("SELECT collection, state FROM server_records")?;
        let mut out: BTreeMap<String, Tally> = BTreeMap::new();
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (coll, state) = row?;
            out.entry(coll).or_default().add(state.as_bytes());
        }
        Ok(out)
    }

    /// Forget all server state (the outbox stays) and start pulling from 0.
    pub fn reset_server_state(&mut self) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute("DELETE FROM server_records", [])?;
        set_meta(&tx, key::CURSOR, "0")?;
        view::rebuild(&tx)?;
        tx.commit()?;
        Ok(())
    }
}
