//! Storage behind a trait, so a PostgreSQL store can sit beside the SQLite
//! one without touching handlers or the sync rules.
//!
//! A [`Store`] hands out transactions: [`ReadTx`] (a consistent snapshot) and
//! [`WriteTx`] (one serialised write transaction, committed only when the
//! closure succeeds). The transactions offer small, rule-free primitives;
//! the rules themselves (validation order, scope, permission, merge, server
//! fields, reassignment) live in [`crate::sync`] and [`crate::accounts`] and
//! hold for every store. Every method blocks: call stores from
//! `web::block`/`spawn_blocking`, never on the async executor.

pub mod decode;
pub mod facts;
pub mod migrate;
pub mod postgres;
mod rows;
pub mod sqlite;
mod turns;
mod tx;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod waits;

pub use rows::{
    ChangeRow, CheckIn, ConflictFilter, ConflictRow, DecisionRow, DeviceRow, OpRow, ProblemRow,
    RecordRow, RecordScope, ScopeFilter, Side, TeamRow, UserRow,
};
pub use tx::{
    AccountRead, AccountWrite, ReadTx, RecordRead, RecordWrite, ReportRead, ReportWrite, WriteTx,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique name (username, team name) is taken.
    #[error("{0} is already taken")]
    Taken(String),
    /// The closure asked for the transaction to be rolled back; its own error
    /// travels separately (see [`write`]).
    #[error("transaction rolled back")]
    Rollback,
    /// The database is unreachable or failed.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data could not be decoded (a bug or a corrupted row).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A wait passed its deadline (see [`WAIT_DEADLINE`]): for the
    /// writer's turn, a connection, a database lock, or the COMMIT of the
    /// group a writer's work joined. Retry. A writer that gave up before
    /// its turn applied nothing; one that gave up waiting for its group's
    /// COMMIT may still be committed, which a retried push finds (replayed
    /// ops return their stored outcome), so nothing is applied twice.
    #[error("gave up waiting for {what}{}", after.map(|d| format!(" after {:.1} s", d.as_secs_f64())).unwrap_or_default())]
    TimedOut {
        /// What it waited for.
        what: &'static str,
        /// How long it waited, when the store knows.
        after: Option<std::time::Duration>,
    },
}

/// How long a store call waits for its turn on the writer, for a pooled
/// connection, for a database lock, or for its group's COMMIT, before it
/// gives up with [`StoreError::TimedOut`]. Every one of these waits is
/// normally milliseconds; thirty seconds means something is stuck, and the
/// client (which retries a 503) is better told than left hanging.
pub const WAIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Meta key of the server's own device id (the sync rules own its
/// meaning; a store reads it with every transaction's first round trip).
pub const META_DEVICE: &str = "server_device_id";
/// Meta key of the server's persisted clock.
pub const META_CLOCK: &str = "server_clock";

/// Closure run inside a read transaction.
pub type ReadFn<'a> = dyn FnMut(&mut dyn ReadTx) -> Result<(), StoreError> + 'a;
/// Closure run inside a write transaction.
pub type WriteFn<'a> = dyn FnMut(&mut dyn WriteTx) -> Result<(), StoreError> + 'a;

/// A server store.
pub trait Store: Send + Sync {
    /// Run `f` in a read-only transaction that sees one consistent snapshot.
    fn read(&self, f: &mut ReadFn<'_>) -> Result<(), StoreError>;
    /// Run `f` in one write transaction (serialised with every other writer);
    /// commit when it returns `Ok`, roll back otherwise. Durable once this
    /// returns `Ok`.
    fn write(&self, f: &mut WriteFn<'_>) -> Result<(), StoreError>;
    /// Whether the database answers.
    fn ping(&self) -> Result<(), StoreError>;
    /// The device whose token hashes to `token_hash`, with its user (`None`
    /// when the user is gone), as of one moment: what every authenticated
    /// request asks first, so a store may answer it in one statement.
    fn device_with_user(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(DeviceRow, Option<UserRow>)>, StoreError> {
        let mut found = None;
        self.read(&mut |tx| {
            found = tx.device_with_user(token_hash)?;
            Ok(())
        })?;
        Ok(found)
    }
    /// Run `a` on this thread and `b` on a second one, in two read
    /// transactions that see the same snapshot, for a read large enough to
    /// split. `Ok(false)`, running neither, when the store cannot offer
    /// that now (the default); callers then read in one transaction.
    fn read_pair(&self, a: &mut ReadFn<'_>, b: &mut PairFn<'_>) -> Result<bool, StoreError> {
        let _ = (a, b);
        Ok(false)
    }
}

/// The second closure of [`Store::read_pair`], run on another thread.
pub type PairFn<'a> = dyn FnMut(&mut dyn ReadTx) -> Result<(), StoreError> + Send + 'a;

/// Run `f` in a read transaction and return its value or its own error.
pub fn read<T, E: From<StoreError>>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn ReadTx) -> Result<T, E>,
) -> Result<T, E> {
    let mut f = Some(f);
    let mut out: Option<Result<T, E>> = None;
    let res = store.read(&mut |tx| {
        let Some(f) = f.take() else {
            return Err(StoreError::Rollback);
        };
        match f(tx) {
            Ok(v) => {
                out = Some(Ok(v));
                Ok(())
            }
            Err(e) => {
                out = Some(Err(e));
                Err(StoreError::Rollback)
            }
        }
    });
    finish(res, out)
}

/// Run `f` in a write transaction and return its value or its own error;
/// nothing is committed when `f` fails.
pub fn write<T, E: From<StoreError>>(
    store: &dyn Store,
    f: impl FnOnce(&mut dyn WriteTx) -> Result<T, E>,
) -> Result<T, E> {
    let mut f = Some(f);
    let mut out: Option<Result<T, E>> = None;
    let res = store.write(&mut |tx| {
        let Some(f) = f.take() else {
            return Err(StoreError::Rollback);
        };
        match f(tx) {
            Ok(v) => {
                out = Some(Ok(v));
                Ok(())
            }
            Err(e) => {
                out = Some(Err(e));
                Err(StoreError::Rollback)
            }
        }
    });
    finish(res, out)
}

fn finish<T, E: From<StoreError>>(
    res: Result<(), StoreError>,
    out: Option<Result<T, E>>,
) -> Result<T, E> {
    match (res, out) {
        (Ok(()), Some(Ok(v))) => Ok(v),
        (_, Some(Err(e))) => Err(e),
        (Err(e), _) => Err(e.into()),
        (Ok(()), None) => Err(StoreError::Rollback.into()),
    }
}
