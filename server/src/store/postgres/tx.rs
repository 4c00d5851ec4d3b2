//! One transaction on a connection: its lazy opening, the reads that
//! travel with it, and the statement cache.

use super::Tx;
use super::behind::Behind;
use super::group_commit::{Group, SAVEPOINT, SAVEPOINT_NAME, Suspended, WriterMark};
use super::opening;
use super::opening::Ask;
use super::pool::STATEMENT_CACHE;
use crate::store::decode::Cols;
use crate::store::decode::{check_in_row, parse, record_row, user_row_if_any};
use crate::store::{CheckIn, StoreError};
use postgres::types::ToSql;
use postgres::{Client, Row, SimpleQueryRow, Statement};
use std::collections::HashMap;
use std::sync::Arc;
use sync_protocol::{RecordId, UserId};

impl<'a> Tx<'a> {
    /// A transaction that begins with `opening` ([`read_opening`](super::opening::read_opening) or
    /// [`write_opening`](super::opening::write_opening)) when it first needs the database.
    pub(super) fn new(
        t: &'a mut Client,
        statements: &'a mut HashMap<String, Statement>,
        opening: String,
        behind: Option<Behind>,
    ) -> Self {
        Tx {
            t,
            statements,
            behind,
            unsent: Some((opening, Vec::new())),
            head: 0,
            opening_meta: HashMap::new(),
            open: false,
            continued: false,
        }
    }

    /// The open transaction `s` left by the previous writer of a group.
    pub(super) fn resume(
        t: &'a mut Client,
        statements: &'a mut HashMap<String, Statement>,
        s: Suspended,
    ) -> Self {
        Tx {
            t,
            statements,
            behind: Some(s.behind),
            unsent: Some((SAVEPOINT.to_owned(), Vec::new())),
            head: s.head,
            opening_meta: s.opening_meta,
            open: true,
            continued: true,
        }
    }

    /// Where this writer of a group starts (`None` for the first).
    pub(super) fn mark(&mut self) -> Option<WriterMark> {
        if !self.continued {
            return None;
        }
        Some(WriterMark {
            pending: self.behind.as_mut()?.mark(),
            head: self.head,
            opening_meta: self.opening_meta.clone(),
        })
    }

    /// Undo this writer's part of its group's transaction: its statements,
    /// back to its savepoint, and its writes kept behind. `false` when that
    /// cannot be done alone (writes of the group were sent meanwhile, or
    /// the database failed): the whole transaction is rolled back then.
    pub(super) fn undo(&mut self, m: WriterMark) -> bool {
        let Some(b) = self.behind.as_mut() else {
            return false;
        };
        if !b.undo(&m.pending) {
            return false;
        }
        self.head = m.head;
        self.opening_meta = m.opening_meta;
        // Nothing was sent when the opening (with the savepoint) was not.
        self.unsent.take().is_some()
            || self
                .t
                .batch_execute(&format!("ROLLBACK TO {SAVEPOINT_NAME}"))
                .is_ok()
    }

    /// Leave this (begun) transaction open for the next writer of `group`.
    pub(super) fn suspend(mut self, group: Arc<Group>) -> Suspended {
        self.open = false;
        Suspended {
            behind: self.behind.take().unwrap_or_default(),
            head: self.head,
            opening_meta: std::mem::take(&mut self.opening_meta),
            group,
        }
    }

    /// Send COMMIT or ROLLBACK (nothing when the transaction never began).
    pub(super) fn end(mut self, how: &str) -> Result<(), StoreError> {
        if self.open {
            self.open = false;
            self.t.batch_execute(how)?;
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// Begin, if not yet begun: send the opening with the reads asked so far.
    pub(super) fn ensure_open(&mut self) -> Result<(), StoreError> {
        if self.unsent.is_some() {
            self.send_opening(None)?;
        }
        Ok(())
    }

    /// Send the opening, the reads asked so far and `last`; keep what the
    /// opening read, apply the asked reads, and return the rows of `last`.
    pub(super) fn send_opening(
        &mut self,
        last: Option<Ask>,
    ) -> Result<Vec<SimpleQueryRow>, StoreError> {
        let (mut sql, mut asks) = self
            .unsent
            .take()
            .ok_or_else(|| StoreError::Corrupt("the transaction began twice".into()))?;
        let wanted = last.is_some();
        asks.extend(last);
        for a in &asks {
            sql.push_str("; ");
            sql.push_str(&a.sql());
        }
        // From here a failure may leave a transaction begun: roll it back.
        self.open = true;
        let mut answers = opening::by_statement(self.t.simple_query(&sql)?);
        let base = if self.continued {
            1
        } else {
            let head = opening::answer(&mut answers, opening::HEAD_AT)?;
            self.head = match head.first().map(|r| r.i64(0)).transpose()? {
                Some(h) => h as u64,
                None => return Err(StoreError::Corrupt("the change head is missing".into())),
            };
            for r in opening::answer(&mut answers, opening::META_AT)? {
                self.opening_meta.insert(r.string(0)?, r.string(1)?);
            }
            opening::BASE_STATEMENTS
        };
        let mut out = Vec::new();
        let n = asks.len();
        for (i, a) in asks.into_iter().enumerate() {
            let rows = opening::answer(&mut answers, base + i)?;
            if wanted && i + 1 == n {
                out = rows;
            } else {
                self.apply(&a, &rows)?;
            }
        }
        Ok(out)
    }

    /// Read `ask` now: in the opening if the transaction has not begun,
    /// else as a statement of its own.
    pub(super) fn ask(&mut self, ask: Ask) -> Result<Vec<SimpleQueryRow>, StoreError> {
        if self.unsent.is_some() {
            return self.send_opening(Some(ask));
        }
        let mut answers = opening::by_statement(self.t.simple_query(&ask.sql())?);
        opening::answer(&mut answers, 0)
    }

    /// A hint: read `ask` with the opening if the transaction has not
    /// begun, else now; the answer goes to what the write-behind knows.
    pub(super) fn hint(&mut self, ask: Ask) -> Result<(), StoreError> {
        if let Some((_, asks)) = &mut self.unsent {
            asks.push(ask);
            return Ok(());
        }
        let rows = self.ask(ask.clone())?;
        self.apply(&ask, &rows)
    }

    /// Keep the answer to a hint in what the write-behind knows.
    pub(super) fn apply(&mut self, ask: &Ask, rows: &[SimpleQueryRow]) -> Result<(), StoreError> {
        let b = self.behind_mut()?;
        match ask {
            Ask::Records(ids) => {
                for id in ids {
                    b.known.records.insert(*id, None);
                }
                for r in rows {
                    let row = record_row(r)?;
                    b.known.records.insert(row.id, Some(row));
                }
            }
            Ask::Owners(ids) => {
                for id in ids {
                    b.known.owners.insert(*id, None);
                }
                for r in rows {
                    let customer: RecordId = parse(&r.string(0)?, "customer id")?;
                    let owner: UserId = parse(&r.string(1)?, "user id")?;
                    b.known.owners.insert(customer, Some(owner));
                    b.known.users.insert(owner, user_row_if_any(r, 2)?);
                }
            }
            Ask::CheckIns(user, asks) => {
                let mut found: Vec<Option<CheckIn>> = vec![None; asks.len()];
                for r in rows {
                    let i = r.i64(0)?;
                    let slot = usize::try_from(i - 1)
                        .ok()
                        .and_then(|i| found.get_mut(i))
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("check-in answer {i} out of range"))
                        })?;
                    *slot = Some(check_in_row(r, *user, 1)?);
                }
                for (&(ms, ex), answer) in asks.iter().zip(found) {
                    b.known.previous.insert((*user, ms, ex), answer);
                }
            }
            Ask::Device(_) | Ask::Token(_) => {
                return Err(StoreError::Corrupt(format!("{ask:?} is not a hint")));
            }
        }
        Ok(())
    }
}

/// The ids of `ids` the transaction cannot answer yet, sorted, once each.
pub(super) fn unanswered(ids: &[RecordId], answered: impl Fn(&RecordId) -> bool) -> Vec<RecordId> {
    let mut ask: Vec<RecordId> = ids.iter().filter(|id| !answered(id)).copied().collect();
    ask.sort_unstable();
    ask.dedup();
    ask
}

impl Tx<'_> {
    pub(super) fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        self.ensure_open()?;
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.t.prepare(sql)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.t.query(&s, args)?)
    }

    pub(super) fn opt(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.t.query_opt(&s, args)?)
    }

    pub(super) fn one(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.t.query_one(&s, args)?)
    }

    pub(super) fn exec(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.t.execute(&s, args)?)
    }
}
