//! Reads of records, the change log (pull), ops and their outcomes.

use super::Tx;
use super::behind;
use super::opening::{OPENING_META, read_opening};
use super::rows::{RECORD_BY_ID, col, ids, seq};
use crate::store::decode::Cols;
use crate::store::decode::{
    CONFLICT_COLS, OP_COLS, PROBLEM_COLS, REASSIGNMENT_COLS, conflict_row, keyed_op_row, op_row,
    problem_row, reassignment_row,
};
use crate::store::decode::{check_in_row, parse, parse_opt, record_row};
use crate::store::{
    ChangeRow, CheckIn, ConflictFilter, ConflictRow, OpRow, ProblemRow, ReadTx, RecordRead,
    RecordRow, ScopeFilter, StoreError,
};
use std::collections::HashMap;
use sync_protocol::ownership::Reassignment;
use sync_protocol::{DeviceId, OpId, RecordId, UserId};

/// The scope condition over `records r` joined to `customer_owners o`, with
/// the users as `$U` and the teams as `$T` (text arrays).
pub(super) fn scope_cond(scope: &ScopeFilter, u: usize, t: usize) -> String {
    if scope.all {
        "TRUE".into()
    } else {
        format!(
            "(r.public OR r.subject_user = ANY(${u}) OR o.owner_id = ANY(${u}) OR r.subject_team = ANY(${t}))"
        )
    }
}

impl ReadTx for Tx<'_> {
    fn reuse_plans(&mut self) {
        if self.behind.is_none()
            && let Some((opening, _)) = &mut self.unsent
        {
            *opening = read_opening(true);
        }
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.ensure_open()?;
        if OPENING_META.contains(&key) {
            return Ok(self.opening_value(key));
        }
        if let Some(v) = self.behind.as_ref().and_then(|b| b.pending_meta(key)) {
            return Ok(Some(v.to_owned()));
        }
        self.opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|r| col(&r, 0))
            .transpose()
    }

    fn metas(&mut self, keys: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        self.ensure_open()?;
        if keys.iter().all(|k| OPENING_META.contains(k)) {
            return Ok(keys.iter().map(|k| self.opening_value(k)).collect());
        }
        let rows = self.query(
            "SELECT key, value FROM meta WHERE key = ANY($1::text[])",
            &[&keys],
        )?;
        let mut stored = HashMap::with_capacity(rows.len());
        for r in &rows {
            stored.insert(col::<String>(r, 0)?, col::<String>(r, 1)?);
        }
        let pending = |k: &str| {
            self.behind
                .as_ref()
                .and_then(|b| b.pending_meta(k))
                .map(str::to_owned)
        };
        Ok(keys
            .iter()
            .map(|k| pending(k).or_else(|| stored.get(*k).cloned()))
            .collect())
    }

    fn head_seq(&mut self) -> Result<u64, StoreError> {
        self.ensure_open()?;
        Ok(self.head)
    }
}

impl RecordRead for Tx<'_> {
    fn record(&mut self, id: RecordId) -> Result<Option<RecordRow>, StoreError> {
        if let Some(b) = &self.behind {
            if let Some(r) = b.pending.records.get(&id) {
                return Ok(Some(r.clone()));
            }
            if let Some(r) = b.known.records.get(&id) {
                return Ok(r.clone());
            }
        }
        let row = self
            .opt(RECORD_BY_ID, &[&id.to_string()])?
            .map(|r| record_row(&r))
            .transpose()?;
        if let Some(b) = &mut self.behind {
            b.known.records.insert(id, row.clone());
        }
        Ok(row)
    }

    fn customer_owner(&mut self, customer: RecordId) -> Result<Option<UserId>, StoreError> {
        if let Some((_, owner)) = self
            .behind
            .as_ref()
            .and_then(|b| b.pending.owners.get(&customer))
        {
            return Ok(Some(*owner));
        }
        if let Some(owner) = self
            .behind
            .as_ref()
            .and_then(|b| b.known.owners.get(&customer))
        {
            return Ok(*owner);
        }
        let s: Option<String> = self
            .opt(
                "SELECT owner_id FROM customer_owners WHERE customer_id = $1",
                &[&customer.to_string()],
            )?
            .map(|r| col(&r, 0))
            .transpose()?;
        parse_opt(s, "user id")
    }

    fn customers_owned_by(&mut self, owner: UserId) -> Result<Vec<RecordId>, StoreError> {
        self.flush()?;
        self.query(
            "SELECT customer_id FROM customer_owners WHERE owner_id = $1 ORDER BY customer_id",
            &[&owner.to_string()],
        )?
        .iter()
        .map(|r| parse(&col::<String>(r, 0)?, "record id"))
        .collect()
    }

    fn reassignments(&mut self, customer: RecordId) -> Result<Vec<Reassignment>, StoreError> {
        self.query(
            &format!(
                "SELECT {REASSIGNMENT_COLS} FROM evictions WHERE customer_id = $1 ORDER BY seq"
            ),
            &[&customer.to_string()],
        )?
        .iter()
        .map(reassignment_row)
        .collect()
    }

    fn reassigned_customers(&mut self) -> Result<Vec<RecordId>, StoreError> {
        self.flush()?;
        self.query(
            "SELECT DISTINCT customer_id FROM evictions ORDER BY customer_id",
            &[],
        )?
        .iter()
        .map(|r| parse(&col::<String>(r, 0)?, "record id"))
        .collect()
    }

    fn customer_unit(&mut self, customer: RecordId) -> Result<Vec<RecordId>, StoreError> {
        self.flush()?;
        self.query(
            "SELECT id FROM records WHERE customer_id = $1 ORDER BY seq",
            &[&customer.to_string()],
        )?
        .iter()
        .map(|r| parse(&col::<String>(r, 0)?, "record id"))
        .collect()
    }

    fn changes(
        &mut self,
        scope: &ScopeFilter,
        cursor: u64,
        head: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        self.flush()?;
        let users = ids(&scope.users);
        let teams = ids(&scope.teams);
        let limit = i64::from(limit);
        let (cursor, head) = (seq(cursor), seq(head));
        if scope.all {
            let rows = self.query(
                "SELECT r.seq, r.state FROM records r WHERE r.seq > $1 AND r.seq <= $2 ORDER BY r.seq LIMIT $3",
                &[&cursor, &head, &limit],
            )?;
            return rows
                .iter()
                .map(|r| {
                    Ok(ChangeRow::Upsert {
                        seq: r.i64(0)? as u64,
                        state: r.string(1)?,
                    })
                })
                .collect();
        }
        // One index seek per scope key (each user, owned customer and
        // team, and the public records), each bounded by the seq range,
        // merged in seq order and cut at the limit before the states are
        // read; the customers that left the users' scope (evictions) in the
        // same statement and order. Every seek starts from a key (the
        // arrays are unnested, a state is looked up by seq per row), so
        // the plan is the same whatever the parameters and may be made
        // once: see "Plan modes".
        let rows = self.query(
            "SELECT seq, state, evicted FROM (\
             (SELECT s.seq, r.state, NULL::text AS evicted FROM (\
              (SELECT seq FROM records WHERE public AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3) \
              UNION (SELECT x.seq FROM unnest($4::text[]) AS k(id) CROSS JOIN LATERAL \
                     (SELECT seq FROM records WHERE subject_user = k.id AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3) x) \
              UNION (SELECT x.seq FROM unnest($4::text[]) AS k(id) \
                     CROSS JOIN LATERAL (SELECT customer_id FROM customer_owners WHERE owner_id = k.id OFFSET 0) o \
                     CROSS JOIN LATERAL (SELECT seq FROM records WHERE customer_id = o.customer_id AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3) x \
                     ORDER BY x.seq LIMIT $3) \
              UNION (SELECT x.seq FROM unnest($5::text[]) AS k(id) CROSS JOIN LATERAL \
                     (SELECT seq FROM records WHERE subject_team = k.id AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3) x) \
              ORDER BY 1 LIMIT $3) s \
              CROSS JOIN LATERAL (SELECT state FROM records WHERE seq = s.seq OFFSET 0) r) \
             UNION ALL \
             (SELECT x.seq, NULL, x.customer_id FROM unnest($4::text[]) AS k(id) CROSS JOIN LATERAL \
                (SELECT e.seq, e.customer_id FROM evictions e WHERE e.from_owner = k.id AND e.seq > $1 AND e.seq <= $2 ORDER BY e.seq LIMIT $3) x \
              WHERE COALESCE((SELECT o.owner_id FROM customer_owners o WHERE o.customer_id = x.customer_id) <> ALL($4), TRUE))\
             ) c ORDER BY seq LIMIT $3",
            &[&cursor, &head, &limit, &users, &teams],
        )?;
        rows.iter()
            .map(|r| {
                let seq = r.i64(0)? as u64;
                Ok(match r.text(2)? {
                    Some(c) => ChangeRow::Evict {
                        seq,
                        customer_id: parse(c, "customer id")?,
                    },
                    None => ChangeRow::Upsert {
                        seq,
                        state: r.string(1)?,
                    },
                })
            })
            .collect()
    }

    fn op(&mut self, device: DeviceId, device_seq: u64) -> Result<Option<OpRow>, StoreError> {
        self.flush()?;
        let Some(r) = self.opt(
            "SELECT op_id, user_id, op, outcome, at FROM ops WHERE device_id = $1 AND device_seq = $2",
            &[&device.to_string(), &seq(device_seq)],
        )?
        else {
            return Ok(None);
        };
        op_row(&r, device, device_seq).map(Some)
    }

    fn ops_with_ids(&mut self, user: UserId, op_ids: &[OpId]) -> Result<Vec<OpRow>, StoreError> {
        if op_ids.is_empty() {
            return Ok(vec![]);
        }
        self.flush()?;
        self.query(
            &format!("SELECT {OP_COLS} FROM ops WHERE user_id = $1 AND op_id = ANY($2)"),
            &[&user.to_string(), &ids(op_ids)],
        )?
        .iter()
        .map(keyed_op_row)
        .collect()
    }

    fn problems(
        &mut self,
        users: Option<&[UserId]>,
        open: bool,
    ) -> Result<Vec<ProblemRow>, StoreError> {
        let open = if open { " AND decision IS NULL" } else { "" };
        let select = format!("SELECT {PROBLEM_COLS} FROM problems");
        let rows = match users {
            None => self.query(&format!("{select} WHERE true{open} ORDER BY id DESC"), &[])?,
            Some([]) => return Ok(vec![]),
            Some(users) => self.query(
                &format!("{select} WHERE user_id = ANY($1){open} ORDER BY id DESC"),
                &[&ids(users)],
            )?,
        };
        rows.iter().map(problem_row).collect()
    }

    fn problem(&mut self, id: i64) -> Result<Option<ProblemRow>, StoreError> {
        self.opt(
            &format!("SELECT {PROBLEM_COLS} FROM problems WHERE id = $1"),
            &[&id],
        )?
        .as_ref()
        .map(problem_row)
        .transpose()
    }

    fn decided_problems(
        &mut self,
        user: UserId,
        ops: &[OpId],
    ) -> Result<Vec<ProblemRow>, StoreError> {
        if ops.is_empty() {
            return Ok(vec![]);
        }
        let ops: Vec<String> = ops.iter().map(ToString::to_string).collect();
        self.query(
            &format!(
                "SELECT {PROBLEM_COLS} FROM problems WHERE user_id = $1 AND op_id = ANY($2) AND decision IS NOT NULL ORDER BY id"
            ),
            &[&user.to_string(), &ops],
        )?
        .iter()
        .map(problem_row)
        .collect()
    }

    fn conflicts(&mut self, record: RecordId) -> Result<Vec<ConflictRow>, StoreError> {
        self.query(
            &format!("SELECT {CONFLICT_COLS} FROM conflicts WHERE record_id = $1 ORDER BY id"),
            &[&record.to_string()],
        )?
        .iter()
        .map(conflict_row)
        .collect()
    }

    fn open_conflicts(
        &mut self,
        filter: ConflictFilter<'_>,
        limit: u32,
    ) -> Result<Vec<ConflictRow>, StoreError> {
        self.flush()?;
        let open = format!("SELECT {CONFLICT_COLS} FROM conflicts WHERE resolved_at IS NULL");
        let limit = i64::from(limit);
        let rows = match filter {
            ConflictFilter::All => {
                self.query(&format!("{open} ORDER BY id DESC LIMIT $1"), &[&limit])?
            }
            ConflictFilter::Involving([]) => return Ok(vec![]),
            ConflictFilter::Involving(users) => self.query(
                &format!(
                    "{open} AND (loser_user_id = ANY($1) OR winner_user_id = ANY($1)) \
                     ORDER BY id DESC LIMIT $2"
                ),
                &[&ids(users), &limit],
            )?,
            ConflictFilter::LostBy(user) => self.query(
                &format!("{open} AND loser_user_id = $1 ORDER BY id DESC LIMIT $2"),
                &[&user.to_string(), &limit],
            )?,
        };
        rows.iter().map(conflict_row).collect()
    }

    fn previous_check_in(
        &mut self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Result<Option<CheckIn>, StoreError> {
        let key = (user, before_ms, exclude);
        let known = match &self.behind {
            None => return self.previous_check_in_db(user, before_ms, exclude),
            Some(b) => b.known.previous.get(&key).copied(),
        };
        let db = if let Some(a) = known {
            a
        } else {
            let a = self.previous_check_in_db(user, before_ms, exclude)?;
            self.behind_mut()?.known.previous.insert(key, a);
            a
        };
        let b = self.behind_mut()?;
        if db.is_some_and(|d| b.pending.check_ins.get(&d.visit_id).is_some()) {
            // This transaction replaced that check-in: send it and ask again.
            self.flush()?;
            return self.previous_check_in_db(user, before_ms, exclude);
        }
        Ok(behind::later(
            db,
            b.pending_previous(user, before_ms, exclude),
        ))
    }
}

impl Tx<'_> {
    pub(super) fn previous_check_in_db(
        &mut self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Result<Option<CheckIn>, StoreError> {
        self.opt(
            "SELECT visit_id, started_at_ms, lat, lon FROM check_ins WHERE user_id = $1 AND started_at_ms < $2 AND visit_id <> $3 ORDER BY started_at_ms DESC LIMIT 1",
            &[&user.to_string(), &before_ms, &exclude.to_string()],
        )?
        .map(|r| check_in_row(&r, user, 0))
        .transpose()
    }
}
