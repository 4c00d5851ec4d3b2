//! The local view: server state with this device's pending ops re-applied.

use super::Store;
use super::columns::Columns;
use super::pulled::PulledRecord;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value;
use std::fmt::Write as _;
use sync_protocol::merge::RecordState;
use sync_protocol::metrics::{RecordFact, VisitFact};
use sync_protocol::time::{format_ts, parse_ts};
use sync_protocol::{Op, RecordId};

/// One record of the local view.
#[derive(Clone, Debug)]
pub struct Rec {
    /// Id.
    pub id: RecordId,
    /// The customer it belongs to (its own id for a customer).
    pub customer_id: Option<RecordId>,
    /// Archived.
    pub archived: bool,
    /// Has ops not yet synced.
    pub pending: bool,
    /// The merged state.
    pub state: RecordState,
}

impl Rec {
    /// A text field.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.state.get_str(field)
    }

    /// Any field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.state.get(field)
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawRec> {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get::<_, i64>(2)? != 0,
            r.get::<_, i64>(3)? != 0,
            r.get(4)?,
        ))
    }
}

/// A view row as read: id, customer, archived, pending, state.
type RawRec = (String, Option<String>, bool, bool, Option<String>);

/// The view's columns; a record without pending ops keeps no state of its
/// own (`records.state` is NULL) and reads the server's.
const COLS: &str = "r.id, r.customer_id, r.archived, r.pending, coalesce(r.state, s.state)";

/// The view joined to the server state it shares.
pub(crate) const VIEW: &str = "records r LEFT JOIN server_records s ON s.id = r.id";

fn build(row: RawRec) -> Result<Rec> {
    let (id, customer, archived, pending, state) = row;
    let state = state.with_context(|| format!("record {id} in the local store has no state"))?;
    let state: RecordState = serde_json::from_str(&state)
        .with_context(|| format!("record {id} in the local store is damaged"))?;
    Ok(Rec {
        id: id.parse().with_context(|| format!("bad id {id}"))?,
        customer_id: customer.and_then(|c| c.parse().ok()),
        archived,
        pending,
        state,
    })
}

fn pending_ops(conn: &Connection, id: &str) -> Result<Vec<Op>> {
    let mut stmt =
        conn.prepare_cached("SELECT op FROM outbox WHERE record_id = ?1 ORDER BY device_seq")?;
    let ops: Vec<String> = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ops.iter()
        .map(|o| serde_json::from_str(o))
        .collect::<Result<_, _>>()
        .context("an op in the outbox is damaged")
}

/// Recompute one record of the view from its server state and pending ops.
pub(crate) fn refresh(conn: &Connection, id: &str) -> Result<()> {
    let server: Option<String> = conn
        .prepare_cached("SELECT state FROM server_records WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let ops = pending_ops(conn, id)?;
    let state = match (server, ops.first()) {
        (Some(s), _) => serde_json::from_str::<RecordState>(&s)
            .with_context(|| format!("server state of {id} is damaged"))?,
        (None, Some(op)) => RecordState::new(op.record_id, &op.collection),
        (None, None) => {
            return delete_view(conn, id);
        }
    };
    store_view(conn, id, state, &ops)
}

/// Like [`refresh`], for a record whose server state was just written as
/// `server` (saves reading and parsing it back). `outbox_empty` says the
/// caller knows no op is pending (saves one lookup per record in a bulk
/// pull).
pub(crate) fn refresh_from(
    conn: &Connection,
    server: &RecordState,
    outbox_empty: bool,
) -> Result<()> {
    let id = server.id.to_string();
    let ops = if outbox_empty {
        Vec::new()
    } else {
        pending_ops(conn, &id)?
    };
    if ops.is_empty() {
        return write_state(conn, &id, server, false);
    }
    store_view(conn, &id, server.clone(), &ops)
}

/// Like [`refresh_from`], for a pulled record just stored as its server
/// state: without pending ops its columns, read off while the page was
/// parsed, are all the view needs.
pub(crate) fn refresh_pulled(
    conn: &Connection,
    record: &PulledRecord,
    outbox_empty: bool,
) -> Result<()> {
    let id = record.id();
    let ops = if outbox_empty {
        Vec::new()
    } else {
        pending_ops(conn, id)?
    };
    if !ops.is_empty() {
        return store_view(conn, id, record.state()?, &ops);
    }
    if !record.exists() {
        return delete_view(conn, id);
    }
    write_view(conn, id, record.collection(), record.columns(), None)
}

/// Whether the outbox holds no op at all.
pub(crate) fn outbox_is_empty(conn: &Connection) -> Result<bool> {
    let any: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM outbox)")?
        .query_row([], |r| r.get(0))?;
    Ok(!any)
}

fn store_view(conn: &Connection, id: &str, mut state: RecordState, ops: &[Op]) -> Result<()> {
    for op in ops {
        state.apply(op);
    }
    write_state(conn, id, &state, !ops.is_empty())
}

/// Store one record of the view from its merged state (or drop it when it
/// does not exist). A record without pending ops is its server state,
/// which the view reads from `server_records`: only its query columns are
/// stored here.
fn write_state(conn: &Connection, id: &str, state: &RecordState, pending: bool) -> Result<()> {
    if !state.exists() {
        return delete_view(conn, id);
    }
    let json = if pending {
        Some(serde_json::to_string(state)?)
    } else {
        None
    };
    write_view(
        conn,
        id,
        &state.collection,
        &Columns::of(state),
        json.as_deref(),
    )
}

fn delete_view(conn: &Connection, id: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM records WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Store one record of the view: its query columns, and its merged state
/// while ops are pending (`state`; pending exactly when given).
fn write_view(
    conn: &Connection,
    id: &str,
    collection: &str,
    c: &Columns,
    state: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO records (id, collection, customer_id, name, status, at, archived, pending, state, open, amends, credited_to)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (id) DO UPDATE SET collection = excluded.collection, customer_id = excluded.customer_id,
           name = excluded.name, status = excluded.status, at = excluded.at, archived = excluded.archived,
           pending = excluded.pending, state = excluded.state, open = excluded.open, amends = excluded.amends,
           credited_to = excluded.credited_to",
    )?
    .execute(params![
        id,
        collection,
        c.customer_id,
        c.name,
        c.status,
        c.at,
        i64::from(c.archived),
        i64::from(state.is_some()),
        state,
        i64::from(c.open),
        c.amends,
        c.credited_to,
    ])?;
    Ok(())
}

/// Rebuild the whole view.
pub(crate) fn rebuild(conn: &Connection) -> Result<()> {
    conn.execute("DELETE FROM records", [])?;
    let mut stmt =
        conn.prepare("SELECT id FROM server_records UNION SELECT record_id FROM outbox")?;
    let ids: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        refresh(conn, &id)?;
    }
    Ok(())
}

impl Store {
    /// One record of the view.
    pub fn get(&self, id: &RecordId) -> Result<Option<Rec>> {
        let row = self
            .conn
            .prepare_cached(&format!("SELECT {COLS} FROM {VIEW} WHERE r.id = ?1"))?
            .query_row([id.to_string()], Rec::from_row)
            .optional()?;
        row.map(build).transpose()
    }

    /// Every record of a collection, oldest first.
    pub fn list(&self, collection: &str) -> Result<Vec<Rec>> {
        self.list_matching(collection, None, None)
    }

    /// Every record of a collection belonging to one customer, oldest first.
    pub fn list_for_customer(&self, collection: &str, customer: &RecordId) -> Result<Vec<Rec>> {
        self.list_matching(collection, Some(customer), None)
    }

    /// How many records of a collection belong to a customer (archived
    /// ones too, as [`Store::list_for_customer`] lists them).
    pub fn count_for_customer(&self, collection: &str, customer: &RecordId) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM records WHERE customer_id = ?1 AND collection = ?2",
            [customer.to_string(), collection.to_owned()],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The last `n` records of [`Store::list_for_customer`] (the latest by
    /// their main instant), oldest first, read off the index backwards.
    pub fn last_for_customer(
        &self,
        collection: &str,
        customer: &RecordId,
        n: usize,
    ) -> Result<Vec<Rec>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLS} FROM {VIEW} WHERE r.collection = ?1 AND r.customer_id = ?2
             ORDER BY r.at DESC, r.id DESC LIMIT ?3"
        ))?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query_map(
                params![collection, customer.to_string(), limit],
                Rec::from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.reverse();
        rows.into_iter().map(build).collect()
    }

    /// The records of a collection, oldest first, of one customer if
    /// given and whose main instant (`records.at`) is at or after `since`
    /// if given; both are looked up by index.
    pub fn list_matching(
        &self,
        collection: &str,
        customer: Option<&RecordId>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Rec>> {
        let mut sql = format!("SELECT {COLS} FROM {VIEW} WHERE r.collection = ?1");
        let mut args = vec![collection.to_owned()];
        if let Some(c) = customer {
            args.push(c.to_string());
            let _ = write!(sql, " AND r.customer_id = ?{}", args.len());
        }
        if let Some(t) = since {
            args.push(format_ts(t));
            let _ = write!(sql, " AND r.at >= ?{}", args.len());
        }
        sql.push_str(" ORDER BY r.at, r.id");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(&args), Rec::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(build).collect()
    }

    /// Visits not yet ended (nor archived, nor replaced by a correction),
    /// oldest first, whoever started them.
    pub fn open_visits(&self) -> Result<Vec<Rec>> {
        // `open = 1` as a literal lets SQLite use the partial index.
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLS} FROM {VIEW} WHERE r.collection = 'visits' AND r.open = 1 AND r.archived = 0
               AND NOT EXISTS (SELECT 1 FROM records a WHERE a.amends = r.id)
             ORDER BY r.at, r.id"
        ))?;
        let rows = stmt
            .query_map([], Rec::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(build).collect()
    }

    /// What every visit of the view gives the metrics, read off its query
    /// columns (`customer_id`, `at`, `amends`, `credited_to`) instead of its state: a
    /// supervisor's laptop may hold 100,000 visits, and parsing each one's
    /// JSON was nearly all of `goal list`. The same as
    /// [`RecordFact::from_plain`] on the full record: `at` is `started_at`
    /// (visits have no other instant among the view's `at` fields) in
    /// `format_ts`'s form, which keeps milliseconds; metrics compare a
    /// visit's start only with whole days, which a dropped sub-millisecond
    /// part cannot cross. In no particular order: metrics treat a
    /// rep's visits as a set.
    pub fn visit_facts(&self) -> Result<Vec<(RecordId, RecordFact)>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, customer_id, at, amends, credited_to FROM records
             WHERE collection = 'visits' AND archived = 0",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let id: RecordId = id.parse().with_context(|| format!("bad id {id}"))?;
            let customer = r.get_ref(1)?.as_str_or_null()?;
            let at = r.get_ref(2)?.as_str_or_null()?;
            let (Some(customer_id), Some(started_at)) = (
                customer.and_then(|c| c.parse::<RecordId>().ok()),
                at.and_then(parse_ts),
            ) else {
                continue;
            };
            let amends = r.get_ref(3)?.as_str_or_null()?.and_then(|a| a.parse().ok());
            let credited_to = r.get_ref(4)?.as_str_or_null()?.and_then(|u| u.parse().ok());
            out.push((
                id,
                RecordFact::Visit {
                    customer_id,
                    credited_to,
                    fact: VisitFact {
                        id,
                        customer_id,
                        started_at,
                        amends,
                    },
                },
            ));
        }
        Ok(out)
    }

    /// The short form of one id, as [`Store::shortener`] would give it.
    pub fn short_id(&self, collection: &str, id: &RecordId) -> Result<String> {
        Ok(self.shortener_for(collection, [*id])?.get(id))
    }

    /// The ids of a collection just before and just after `id` in id order:
    /// all a short form depends on.
    pub(crate) fn neighbours(&self, collection: &str, id: &RecordId) -> Result<Vec<RecordId>> {
        let me = id.to_string();
        let mut out = Vec::with_capacity(2);
        // `+collection` keeps SQLite on the id index (a walk to the nearest
        // id) instead of scanning the whole collection through its index.
        for sql in [
            "SELECT id FROM records WHERE +collection = ?1 AND id < ?2 ORDER BY id DESC LIMIT 1",
            "SELECT id FROM records WHERE +collection = ?1 AND id > ?2 ORDER BY id LIMIT 1",
        ] {
            let near: Option<String> = self
                .conn
                .prepare_cached(sql)?
                .query_row(params![collection, me], |r| r.get(0))
                .optional()?;
            out.extend(near.and_then(|n| n.parse::<RecordId>().ok()));
        }
        Ok(out)
    }

    /// The record of `collection` whose id is `id` as stored (lowercase,
    /// with dashes), if any.
    pub(crate) fn get_in(&self, collection: &str, id: &str) -> Result<Option<Rec>> {
        let row = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM {VIEW} WHERE r.id = ?1 AND r.collection = ?2"
            ))?
            .query_row([id, collection], Rec::from_row)
            .optional()?;
        row.map(build).transpose()
    }

    /// The records of `collection` whose id starts with `prefix` (stored
    /// form, lowercase with dashes): how many there are, and the first
    /// `limit` of them in id order. One range of the id index: every
    /// character of an id sorts below `~`.
    pub(crate) fn with_id_prefix(
        &self,
        collection: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<(u64, Vec<Rec>)> {
        let upper = format!("{prefix}~");
        let count: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM records WHERE id >= ?1 AND id < ?2 AND +collection = ?3",
            )?
            .query_row(params![prefix, upper, collection], |r| r.get(0))?;
        let rows = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM {VIEW} WHERE r.id >= ?1 AND r.id < ?2 AND +r.collection = ?3
                 ORDER BY r.id LIMIT ?4"
            ))?
            .query_map(
                params![
                    prefix,
                    upper,
                    collection,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                Rec::from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            count.unsigned_abs(),
            rows.into_iter().map(build).collect::<Result<_>>()?,
        ))
    }

    /// Rebuild the whole view from server state and the outbox.
    pub fn rebuild_view(&mut self) -> Result<()> {
        let tx = self.write_tx()?;
        rebuild(&tx)?;
        tx.commit()?;
        Ok(())
    }
}
