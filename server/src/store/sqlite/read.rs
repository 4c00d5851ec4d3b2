//! Reads of records, the change log (pull), ops and their outcomes.

use super::Tx;
use super::rows::Cached;
use super::rows::placeholders;
use crate::store::decode::{
    CONFLICT_COLS, OP_COLS, PROBLEM_COLS, REASSIGNMENT_COLS, check_in_row, conflict_row,
    keyed_op_row, op_row, parse, parse_opt, problem_row, reassignment_row, record_row,
};
use crate::store::{
    ChangeRow, CheckIn, ConflictFilter, ConflictRow, OpRow, ProblemRow, ReadTx, RecordRead,
    RecordRow, ScopeFilter, StoreError,
};
use rusqlite::OptionalExtension;
use rusqlite::{params, params_from_iter};
use std::fmt::Write as _;
use sync_protocol::ownership::Reassignment;
use sync_protocol::{DeviceId, OpId, RecordId, UserId};

/// The SQL condition for a scope over `records r` joined to `customer_owners o`,
/// and its parameters.
pub(super) fn scope_sql(scope: &ScopeFilter) -> (String, Vec<String>) {
    if scope.all {
        return ("1".into(), vec![]);
    }
    let mut params: Vec<String> = Vec::new();
    let users = placeholders(scope.users.len());
    let teams = placeholders(scope.teams.len());
    let mut sql = String::from("(r.public = 1");
    if !scope.users.is_empty() {
        let _ = write!(
            sql,
            " OR r.subject_user IN ({users}) OR o.owner_id IN ({users})"
        );
        params.extend(scope.users.iter().map(ToString::to_string));
        params.extend(scope.users.iter().map(ToString::to_string));
    }
    if !scope.teams.is_empty() {
        let _ = write!(sql, " OR r.subject_team IN ({teams})");
        params.extend(scope.teams.iter().map(ToString::to_string));
    }
    sql.push(')');
    (sql, params)
}

/// The pull query: one index seek per scope branch (public records, records
/// about a scope user or team, records of customers a scope user owns), each
/// bounded by the seq range `?1 < seq <= ?2`, merged in seq order and cut at
/// `?3` before the states are read. Users are bound from `?4`, then teams.
pub(super) fn changes_sql(scope: &ScopeFilter) -> String {
    if scope.all {
        return "SELECT r.seq, r.state FROM records r WHERE r.seq > ?1 AND r.seq <= ?2 \
                ORDER BY r.seq LIMIT ?3"
            .into();
    }
    let numbered = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let users = numbered(4, scope.users.len());
    let teams = numbered(4 + scope.users.len(), scope.teams.len());
    let mut branches =
        vec!["SELECT seq FROM records WHERE public = 1 AND seq > ?1 AND seq <= ?2".to_owned()];
    if !scope.users.is_empty() {
        branches.push(format!(
            "SELECT seq FROM records WHERE subject_user IN ({users}) AND seq > ?1 AND seq <= ?2"
        ));
        branches.push(format!(
            "SELECT r.seq FROM customer_owners o JOIN records r ON r.customer_id = o.customer_id \
             WHERE o.owner_id IN ({users}) AND r.seq > ?1 AND r.seq <= ?2"
        ));
    }
    if !scope.teams.is_empty() {
        branches.push(format!(
            "SELECT seq FROM records WHERE subject_team IN ({teams}) AND seq > ?1 AND seq <= ?2"
        ));
    }
    // `seq IN (…)` walks the sorted list of numbers and looks each record
    // up: no sort of whole records (a join to the list sorted them again,
    // spilling a page's JSON to temporary files).
    format!(
        "SELECT r.seq, r.state FROM records r WHERE r.seq IN ({} ORDER BY 1 LIMIT ?3) ORDER BY r.seq",
        branches
            .iter()
            .map(|b| format!("SELECT seq FROM ({b} ORDER BY 1 LIMIT ?3)"))
            .collect::<Vec<_>>()
            .join(" UNION ")
    )
}

impl ReadTx for Tx<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .c
            .row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn head_seq(&mut self) -> Result<u64, StoreError> {
        let h: i64 = self
            .c
            .row("SELECT head FROM change_seq WHERE id = 1", [], |r| r.get(0))?;
        Ok(h as u64)
    }
}

impl RecordRead for Tx<'_> {
    fn record(&mut self, id: RecordId) -> Result<Option<RecordRow>, StoreError> {
        self.c.decode_one(
            "SELECT id, collection, seq, state, customer_id, subject_user, subject_team, public FROM records WHERE id = ?1",
            [id.to_string()],
            |r| record_row(r),
        )
    }

    fn customer_owner(&mut self, customer: RecordId) -> Result<Option<UserId>, StoreError> {
        let s: Option<String> = self
            .c
            .row(
                "SELECT owner_id FROM customer_owners WHERE customer_id = ?1",
                [customer.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        parse_opt(s, "user id")
    }

    fn customers_owned_by(&mut self, owner: UserId) -> Result<Vec<RecordId>, StoreError> {
        let mut st = self.c.prepare_cached(
            "SELECT customer_id FROM customer_owners WHERE owner_id = ?1 ORDER BY customer_id",
        )?;
        let ids = st
            .query_map([owner.to_string()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter().map(|s| parse(s, "record id")).collect()
    }

    fn reassignments(&mut self, customer: RecordId) -> Result<Vec<Reassignment>, StoreError> {
        self.c.decode_all(
            &format!(
                "SELECT {REASSIGNMENT_COLS} FROM evictions WHERE customer_id = ?1 ORDER BY seq"
            ),
            [customer.to_string()],
            |r| reassignment_row(r),
        )
    }

    fn reassigned_customers(&mut self) -> Result<Vec<RecordId>, StoreError> {
        let mut st = self
            .c
            .prepare_cached("SELECT DISTINCT customer_id FROM evictions ORDER BY customer_id")?;
        let ids = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter().map(|s| parse(s, "record id")).collect()
    }

    fn customer_unit(&mut self, customer: RecordId) -> Result<Vec<RecordId>, StoreError> {
        let mut st = self
            .c
            .prepare_cached("SELECT id FROM records WHERE customer_id = ?1 ORDER BY seq")?;
        let ids = st
            .query_map([customer.to_string()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter().map(|s| parse(s, "record id")).collect()
    }

    fn changes(
        &mut self,
        scope: &ScopeFilter,
        cursor: u64,
        head: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        let mut out = Vec::new();
        {
            let sql = changes_sql(scope);
            let mut args: Vec<rusqlite::types::Value> = vec![
                (cursor as i64).into(),
                (head as i64).into(),
                i64::from(limit).into(),
            ];
            if !scope.all {
                args.extend(
                    scope
                        .users
                        .iter()
                        .map(|u| rusqlite::types::Value::from(u.to_string())),
                );
                args.extend(
                    scope
                        .teams
                        .iter()
                        .map(|t| rusqlite::types::Value::from(t.to_string())),
                );
            }
            let mut st = self.c.prepare_cached(&sql)?;
            let rows = st.query_map(params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (seq, state) = row?;
                out.push(ChangeRow::Upsert {
                    seq: seq as u64,
                    state,
                });
            }
        }
        if !scope.all && !scope.users.is_empty() {
            let users = placeholders(scope.users.len());
            let sql = format!(
                "SELECT e.seq, e.customer_id FROM evictions e LEFT JOIN customer_owners o ON o.customer_id = e.customer_id \
                 WHERE e.seq > ? AND e.seq <= ? AND e.from_owner IN ({users}) AND (o.owner_id IS NULL OR o.owner_id NOT IN ({users})) \
                 ORDER BY e.seq LIMIT ?"
            );
            let mut args: Vec<rusqlite::types::Value> =
                vec![(cursor as i64).into(), (head as i64).into()];
            args.extend(
                scope
                    .users
                    .iter()
                    .map(|u| rusqlite::types::Value::from(u.to_string())),
            );
            args.extend(
                scope
                    .users
                    .iter()
                    .map(|u| rusqlite::types::Value::from(u.to_string())),
            );
            args.push(i64::from(limit).into());
            let mut st = self.c.prepare_cached(&sql)?;
            let rows = st.query_map(params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (seq, customer) = row?;
                out.push(ChangeRow::Evict {
                    seq: seq as u64,
                    customer_id: parse(&customer, "customer id")?,
                });
            }
            out.sort_by_key(ChangeRow::seq);
            out.truncate(limit as usize);
        }
        Ok(out)
    }

    fn op(&mut self, device: DeviceId, device_seq: u64) -> Result<Option<OpRow>, StoreError> {
        self.c.decode_one(
            "SELECT op_id, user_id, op, outcome, at FROM ops WHERE device_id = ?1 AND device_seq = ?2",
            params![device.to_string(), device_seq as i64],
            |r| op_row(r, device, device_seq),
        )
    }

    fn ops_with_ids(&mut self, user: UserId, ids: &[OpId]) -> Result<Vec<OpRow>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        // At most one push's ops: well below SQLite's limit of parameters.
        let sql = format!(
            "SELECT {OP_COLS} FROM ops WHERE op_id IN ({}) AND user_id = ?",
            placeholders(ids.len())
        );
        let args = ids
            .iter()
            .map(ToString::to_string)
            .chain(std::iter::once(user.to_string()));
        self.c
            .decode_all(&sql, params_from_iter(args), |r| keyed_op_row(r))
    }

    fn problems(
        &mut self,
        users: Option<&[UserId]>,
        open: bool,
    ) -> Result<Vec<ProblemRow>, StoreError> {
        let mut sql = format!("SELECT {PROBLEM_COLS} FROM problems WHERE true");
        let mut args: Vec<String> = Vec::new();
        if let Some(users) = users {
            if users.is_empty() {
                return Ok(vec![]);
            }
            let _ = write!(sql, " AND user_id IN ({})", placeholders(users.len()));
            args.extend(users.iter().map(ToString::to_string));
        }
        if open {
            sql.push_str(" AND decision IS NULL");
        }
        sql.push_str(" ORDER BY id DESC");
        self.c
            .decode_all(&sql, params_from_iter(args), |r| problem_row(r))
    }

    fn problem(&mut self, id: i64) -> Result<Option<ProblemRow>, StoreError> {
        self.c.decode_one(
            &format!("SELECT {PROBLEM_COLS} FROM problems WHERE id = ?1"),
            [id],
            |r| problem_row(r),
        )
    }

    fn decided_problems(
        &mut self,
        user: UserId,
        ops: &[OpId],
    ) -> Result<Vec<ProblemRow>, StoreError> {
        if ops.is_empty() {
            return Ok(vec![]);
        }
        // At most `MAX_PROBLEM_QUERIES` ids: below SQLite's limit of parameters.
        let sql = format!(
            "SELECT {PROBLEM_COLS} FROM problems WHERE user_id = ? AND op_id IN ({}) AND decision IS NOT NULL ORDER BY id",
            placeholders(ops.len())
        );
        let args = std::iter::once(user.to_string()).chain(ops.iter().map(ToString::to_string));
        self.c
            .decode_all(&sql, params_from_iter(args), |r| problem_row(r))
    }

    fn conflicts(&mut self, record: RecordId) -> Result<Vec<ConflictRow>, StoreError> {
        self.c.decode_all(
            &format!("SELECT {CONFLICT_COLS} FROM conflicts WHERE record_id = ?1 ORDER BY id"),
            [record.to_string()],
            |r| conflict_row(r),
        )
    }

    fn open_conflicts(
        &mut self,
        filter: ConflictFilter<'_>,
        limit: u32,
    ) -> Result<Vec<ConflictRow>, StoreError> {
        let mut sql = format!("SELECT {CONFLICT_COLS} FROM conflicts WHERE resolved_at IS NULL");
        let mut args: Vec<String> = Vec::new();
        match filter {
            ConflictFilter::All => {}
            ConflictFilter::Involving([]) => return Ok(vec![]),
            ConflictFilter::Involving(users) => {
                let p = placeholders(users.len());
                let _ = write!(
                    sql,
                    " AND (loser_user_id IN ({p}) OR winner_user_id IN ({p}))"
                );
                args.extend(users.iter().map(ToString::to_string));
                args.extend(users.iter().map(ToString::to_string));
            }
            ConflictFilter::LostBy(user) => {
                sql.push_str(" AND loser_user_id = ?");
                args.push(user.to_string());
            }
        }
        let _ = write!(sql, " ORDER BY id DESC LIMIT {limit}");
        self.c
            .decode_all(&sql, params_from_iter(args), |r| conflict_row(r))
    }

    fn previous_check_in(
        &mut self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Result<Option<CheckIn>, StoreError> {
        self.c.decode_one(
            "SELECT visit_id, started_at_ms, lat, lon FROM check_ins WHERE user_id = ?1 AND started_at_ms < ?2 AND visit_id <> ?3 ORDER BY started_at_ms DESC LIMIT 1",
            params![user.to_string(), before_ms, exclude.to_string()],
            |r| check_in_row(r, user, 0),
        )
    }
}
