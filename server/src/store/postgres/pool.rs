//! Connections: the deadlines every session sets, the pool of read
//! connections (taken in arrival order) and a checked-out connection.

use super::backend;
use super::opening;
use super::{PostgresStore, lock};
use crate::store::StoreError;
use crate::store::turns::Turn;
use postgres::{Client, Statement};
use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::Duration;
use std::time::Instant;

/// Pooled connections per server instance (for reads; writes have one
/// more of their own).
pub(super) const DEFAULT_POOL_SIZE: usize = 8;
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one statement may run on a store connection. The slowest
/// statement measured (an HQ scorecard over a million visits) takes about
/// a second; one still running after a minute is stuck.
pub(super) const STATEMENT_DEADLINE: Duration = Duration::from_mins(1);

/// The deadlines every store connection sets for its session: waiting for
/// a lock (the [`WRITE_LOCK`](super::WRITE_LOCK) included) gives up after `wait`, and so does
/// a transaction left idle (a writer stuck between two statements would
/// otherwise hold the write lock of every instance); a statement gives up
/// after [`STATEMENT_DEADLINE`].
pub(super) fn session_deadlines(wait: Duration) -> String {
    let wait = wait.as_millis().max(1);
    format!(
        "SET lock_timeout = {wait}; SET idle_in_transaction_session_timeout = {wait}; \
         SET statement_timeout = {}",
        STATEMENT_DEADLINE.as_millis()
    )
}
/// Prepared statements kept per connection before the cache is cleared.
pub(super) const STATEMENT_CACHE: usize = 256;

/// One pooled connection with its prepared statements.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) statements: HashMap<String, Statement>,
}

impl Conn {
    /// A connection for the pool: the statements of [`Ask`](super::opening::Ask)s are prepared
    /// (by name, so an opening's simple query can execute them).
    pub(super) fn new(mut client: Client, wait: Duration) -> Result<Self, postgres::Error> {
        client.batch_execute(&session_deadlines(wait))?;
        client.batch_execute(&opening::prepare_sql())?;
        Ok(Self {
            client,
            statements: HashMap::new(),
        })
    }
}

pub(super) struct PoolState {
    pub(super) idle: Vec<Conn>,
    pub(super) open: usize,
}

/// A checked-out connection, returned to the pool when dropped (and then
/// its turn passes to the next request in line).
pub(super) struct Pooled<'a> {
    pub(super) store: &'a PostgresStore,
    pub(super) conn: Option<Conn>,
    pub(super) _turn: Turn<'a>,
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut st = lock(&self.store.state);
            if conn.client.is_closed() {
                st.open -= 1;
            } else {
                st.idle.push(conn);
            }
            drop(st);
            self.store.returned.notify_one();
        }
    }
}

impl Pooled<'_> {
    pub(super) fn parts(
        &mut self,
    ) -> Result<(&mut Client, &mut HashMap<String, Statement>), StoreError> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("pooled connection already returned".into()))?;
        Ok((&mut conn.client, &mut conn.statements))
    }
}

impl PostgresStore {
    /// Take a connection, opening one when the pool is not full, or wait
    /// for one until the deadline.
    pub(super) fn checkout(&self) -> Result<Pooled<'_>, StoreError> {
        // Requests get connections in the order they asked; holding a turn,
        // one is idle or may be opened.
        let deadline = Instant::now() + self.wait;
        let turn = self
            .turns
            .wait_until(deadline)
            .ok_or_else(|| self.timed_out("a pooled connection"))?;
        let mut st = lock(&self.state);
        loop {
            if let Some(conn) = st.idle.pop() {
                if conn.client.is_closed() {
                    st.open -= 1;
                    continue;
                }
                return Ok(Pooled {
                    store: self,
                    conn: Some(conn),
                    _turn: turn,
                });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        store: self,
                        conn: Some(conn),
                        _turn: turn,
                    }),
                    Err(e) => {
                        lock(&self.state).open -= 1;
                        self.returned.notify_one();
                        Err(backend(e))
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out("a pooled connection"));
            }
            st = self
                .returned
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
