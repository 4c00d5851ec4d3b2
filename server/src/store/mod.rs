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

pub mod facts;
pub mod migrate;
pub mod postgres;
pub mod sqlite;
mod turns;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod waits;

use sync_protocol::geo::LatLon;
use sync_protocol::metrics::RecordFact;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, RecordId, TeamId, UserId};

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

/// A user account row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    /// Id (also the id of the `users` record).
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Team.
    pub team_id: Option<TeamId>,
    /// Supervisor.
    pub supervisor_id: Option<UserId>,
    /// May log in.
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// A team row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamRow {
    /// Id (also the id of the `teams` record).
    pub id: TeamId,
    /// Unique name.
    pub name: String,
    /// Region.
    pub region: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A device row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    /// Id.
    pub id: DeviceId,
    /// Owner.
    pub user_id: UserId,
    /// Name given at login.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_seen_at: Option<String>,
    /// RFC 3339: the device is revoked (refused everything, never re-registered).
    pub revoked_at: Option<String>,
    /// RFC 3339: its current token was given up by a logout.
    pub logged_out_at: Option<String>,
    /// Highest `device_seq` stored.
    pub acked_through: u64,
    /// Clock drift at its last push, ms.
    pub clock_drift_ms: Option<i64>,
}

/// A record's stored form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    /// Record id.
    pub id: RecordId,
    /// Collection name.
    pub collection: String,
    /// Latest change number.
    pub seq: u64,
    /// Canonical JSON of the `RecordState`.
    pub state: String,
    /// Scope columns.
    pub scope: RecordScope,
}

/// Who a record is about, as stored next to it for scope queries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordScope {
    /// The customer unit it belongs to (a customer's own id for customers).
    pub customer_id: Option<RecordId>,
    /// The user it is about.
    pub subject_user: Option<UserId>,
    /// The team it is about.
    pub subject_team: Option<TeamId>,
    /// Everybody sees it.
    pub public: bool,
}

/// What a device may see: evaluated by the store in its query language.
///
/// A record is in scope when `all`, or it is public, or its `subject_user`
/// is in `users`, or its customer's current owner is in `users`, or its
/// `subject_team` is in `teams`. An eviction is in scope when its
/// `from_owner` is in `users` and the customer's current owner is not
/// (never when `all`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeFilter {
    /// Sees everything.
    pub all: bool,
    /// Users whose records and customers are in scope.
    pub users: Vec<UserId>,
    /// Teams whose records are in scope.
    pub teams: Vec<TeamId>,
}

/// One row of a pull, before decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeRow {
    /// A record's state at its latest seq.
    Upsert {
        /// Seq.
        seq: u64,
        /// Canonical JSON.
        state: String,
    },
    /// A customer left the scope.
    Evict {
        /// Seq.
        seq: u64,
        /// The customer.
        customer_id: RecordId,
    },
}

impl ChangeRow {
    /// The row's seq.
    pub fn seq(&self) -> u64 {
        match self {
            ChangeRow::Upsert { seq, .. } | ChangeRow::Evict { seq, .. } => *seq,
        }
    }
}

/// An op as stored in the op log, with its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRow {
    /// Device.
    pub device_id: DeviceId,
    /// Its seq.
    pub device_seq: u64,
    /// Op id.
    pub op_id: sync_protocol::OpId,
    /// The acting user.
    pub user_id: UserId,
    /// The op JSON as sent.
    pub op: String,
    /// The outcome JSON.
    pub outcome: String,
    /// RFC 3339.
    pub at: String,
}

/// A stored problem (rejected op).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProblemRow {
    /// Number (assigned by the store).
    pub id: i64,
    /// The user whose device sent it.
    pub user_id: UserId,
    /// The device.
    pub device_id: DeviceId,
    /// The op JSON as sent.
    pub op: String,
    /// Error code (wire name).
    pub code: String,
    /// Message.
    pub message: String,
    /// Field.
    pub field: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A stored conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictRow {
    /// The record.
    pub record_id: RecordId,
    /// Its collection.
    pub collection: String,
    /// The losing op.
    pub op_id: sync_protocol::OpId,
    /// Its user.
    pub user_id: UserId,
    /// The field.
    pub field: String,
    /// JSON.
    pub losing_value: String,
    /// JSON.
    pub winning_value: String,
    /// HLC text.
    pub losing_hlc: String,
    /// HLC text.
    pub winning_hlc: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A rep's GPS check-in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckIn {
    /// The visit.
    pub visit_id: RecordId,
    /// The rep.
    pub user_id: UserId,
    /// Milliseconds since the epoch of the visit's `started_at`.
    pub started_at_ms: i64,
    /// Where.
    pub at: LatLon,
}

/// Reads every store offers.
pub trait ReadTx {
    /// A hint, before the first read: every statement this transaction
    /// runs reaches its rows from keys whatever its parameters (a pull), so
    /// a store may reuse plans made without them. The default does nothing.
    fn reuse_plans(&mut self) {}

    /// A meta value.
    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    /// Several meta values, in the order of `keys` (one round trip where
    /// the store is remote).
    fn metas(&mut self, keys: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        keys.iter().map(|k| self.meta(k)).collect()
    }
    /// The newest change number.
    fn head_seq(&mut self) -> Result<u64, StoreError>;

    /// Number of accounts.
    fn user_count(&mut self) -> Result<u64, StoreError>;
    /// An account by name.
    fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError>;
    /// An account by id.
    fn user(&mut self, id: UserId) -> Result<Option<UserRow>, StoreError>;
    /// Every account, by username.
    fn users(&mut self) -> Result<Vec<UserRow>, StoreError>;
    /// Users whose `team_id` is `team` or whose `supervisor_id` is `supervisor` (each when given).
    fn team_members(
        &mut self,
        team: Option<TeamId>,
        supervisor: Option<UserId>,
    ) -> Result<Vec<UserId>, StoreError>;

    /// A team by name.
    fn team_by_name(&mut self, name: &str) -> Result<Option<TeamRow>, StoreError>;
    /// A team by id.
    fn team(&mut self, id: TeamId) -> Result<Option<TeamRow>, StoreError>;
    /// Every team, by name.
    fn teams(&mut self) -> Result<Vec<TeamRow>, StoreError>;

    /// A device by id.
    fn device(&mut self, id: DeviceId) -> Result<Option<DeviceRow>, StoreError>;
    /// A device by the hash of its token.
    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRow>, StoreError>;
    /// A device by the hash of its token, with its user (`None` when the
    /// user is gone).
    fn device_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(DeviceRow, Option<UserRow>)>, StoreError> {
        let Some(device) = self.device_by_token(token_hash)? else {
            return Ok(None);
        };
        let user = self.user(device.user_id)?;
        Ok(Some((device, user)))
    }
    /// Devices, of one user or of all, oldest first.
    fn devices(&mut self, user: Option<UserId>) -> Result<Vec<DeviceRow>, StoreError>;
    /// Devices not revoked whose user is active.
    fn active_device_count(&mut self) -> Result<u64, StoreError>;

    /// Failed (or reserved, see [`WriteTx::add_login_failure`]) logins
    /// since `since_ms`: every one for this username as `(key, at_ms)`, and
    /// how many carry this key (any username). The key is who tried (a
    /// client address or a registered device; `crate::throttle::Key`).
    fn login_failures(
        &mut self,
        username: &str,
        key: &str,
        since_ms: i64,
    ) -> Result<(Vec<(String, i64)>, u64), StoreError>;

    /// The user and expiry (ms) of a live dashboard session, by the SHA-256
    /// of its id.
    fn dashboard_session(&mut self, id_hash: &[u8]) -> Result<Option<(UserId, i64)>, StoreError>;

    /// A record by id.
    fn record(&mut self, id: RecordId) -> Result<Option<RecordRow>, StoreError>;
    /// The current owner of a customer.
    fn customer_owner(&mut self, customer: RecordId) -> Result<Option<UserId>, StoreError>;
    /// Ids of every record whose customer unit is `customer` (the customer included).
    fn customer_unit(&mut self, customer: RecordId) -> Result<Vec<RecordId>, StoreError>;
    /// Changes in scope with `cursor < seq <= head`, in seq order, at most `limit`.
    fn changes(
        &mut self,
        scope: &ScopeFilter,
        cursor: u64,
        head: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRow>, StoreError>;
    /// Every record in scope: calls `f(collection, canonical state)`.
    fn scope_records(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError>;

    /// Every record of `collections` in scope: calls `f(collection, canonical state)`.
    fn scope_records_of(
        &mut self,
        scope: &ScopeFilter,
        collections: &[&str],
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError>;
    /// Report facts ([`facts`]) of every customer in scope.
    fn report_customers(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError>;
    /// Report facts of the visits, sales and feedback a report over
    /// `[from_us, to_us)` (µs since the epoch) needs: those started, sold or
    /// opened in it, complaints resolved in it, and every amending visit
    /// ([`facts::FactPart::queries`]), or the `part` of them asked for. Not
    /// filtered by scope: callers keep the facts of customers from
    /// [`ReadTx::report_customers`].
    fn report_facts(
        &mut self,
        from_us: i64,
        to_us: i64,
        part: facts::FactPart,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError>;

    /// A stored op by device and seq.
    fn op(&mut self, device: DeviceId, device_seq: u64) -> Result<Option<OpRow>, StoreError>;
    /// Problems of these users (all when `None`), newest first.
    fn problems(&mut self, users: Option<&[UserId]>) -> Result<Vec<ProblemRow>, StoreError>;
    /// Conflicts stored for a record, oldest first.
    fn conflicts(&mut self, record: RecordId) -> Result<Vec<ConflictRow>, StoreError>;
    /// The user's latest check-in strictly before `before_ms`, other than `exclude`.
    fn previous_check_in(
        &mut self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Result<Option<CheckIn>, StoreError>;
}

/// Writes; a write transaction also reads.
pub trait WriteTx: ReadTx {
    /// Set a meta value.
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Take the next change number. Numbers must become visible in commit
    /// order: SQLite has one writer, so a counter row updated inside the
    /// write transaction is enough; a store with concurrent writers must hold
    /// the number under a lock until commit (or serve pulls only below the
    /// oldest number still in flight).
    fn next_seq(&mut self) -> Result<u64, StoreError>;

    /// Create an account ([`StoreError::Taken`] when the username is taken).
    fn insert_user(&mut self, user: &UserRow) -> Result<(), StoreError>;
    /// Activate or deactivate.
    fn set_user_active(&mut self, id: UserId, active: bool) -> Result<(), StoreError>;
    /// Replace the password hash.
    fn set_password(&mut self, id: UserId, password_hash: &str) -> Result<(), StoreError>;
    /// Create a team ([`StoreError::Taken`] when the name is taken).
    fn insert_team(&mut self, team: &TeamRow) -> Result<(), StoreError>;

    /// Register a device, or re-register an existing id with a new token (clears a logout).
    fn upsert_device(&mut self, device: &DeviceRow, token_hash: &[u8]) -> Result<(), StoreError>;
    /// Revoke a device (lost laptop).
    fn revoke_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError>;
    /// Revoke a device's current token (logout).
    fn log_out_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError>;
    /// Record activity.
    fn touch_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError>;
    /// Advance the device's stored `acked_through`.
    fn set_acked_through(&mut self, id: DeviceId, seq: u64) -> Result<(), StoreError>;
    /// Remember how far the device's clock was ahead.
    fn set_clock_drift(&mut self, id: DeviceId, drift_ms: i64) -> Result<(), StoreError>;

    /// Count one failed login, or reserve an attempt before its password is
    /// hashed (and forget those older than `prune_before_ms`); returns its id.
    fn add_login_failure(
        &mut self,
        username: &str,
        key: &str,
        at_ms: i64,
        prune_before_ms: i64,
    ) -> Result<i64, StoreError>;
    /// Forget a reserved attempt whose password was right (or never checked).
    fn forget_login_failure(&mut self, id: i64) -> Result<(), StoreError>;

    /// Start a dashboard session (and forget those expired by `now_ms`).
    fn start_dashboard_session(
        &mut self,
        id_hash: &[u8],
        user: UserId,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// End one dashboard session (signing out).
    fn end_dashboard_session(&mut self, id_hash: &[u8]) -> Result<(), StoreError>;
    /// End every dashboard session of a user (password reset, deactivation).
    fn end_user_dashboard_sessions(&mut self, user: UserId) -> Result<(), StoreError>;

    /// Insert or replace a record (its `seq` from [`WriteTx::next_seq`]).
    fn put_record(&mut self, record: &RecordRow) -> Result<(), StoreError>;
    /// Replace the report fact row of record `id` (a customer's in
    /// `report_customers`, others in `report_facts`); `None` removes it.
    fn put_report_fact(
        &mut self,
        id: RecordId,
        customer: bool,
        row: Option<&facts::FactRow>,
    ) -> Result<(), StoreError>;
    /// Remove every report fact row (before a rebuild).
    fn clear_report_facts(&mut self) -> Result<(), StoreError>;
    /// Give an existing record a new change number.
    fn set_record_seq(&mut self, id: RecordId, seq: u64) -> Result<(), StoreError>;
    /// Set a customer's owner.
    fn set_customer_owner(&mut self, customer: RecordId, owner: UserId) -> Result<(), StoreError>;
    /// Record that a customer left `from`'s scope.
    fn add_eviction(
        &mut self,
        seq: u64,
        customer: RecordId,
        from: UserId,
        to: UserId,
        at: &str,
    ) -> Result<(), StoreError>;

    /// Store an op and its outcome.
    fn add_op(&mut self, op: &OpRow) -> Result<(), StoreError>;
    /// Store a problem; returns its number.
    fn add_problem(&mut self, problem: &ProblemRow) -> Result<i64, StoreError>;
    /// Store a conflict.
    fn add_conflict(&mut self, conflict: &ConflictRow) -> Result<(), StoreError>;
    /// Store a check-in.
    fn put_check_in(&mut self, check_in: &CheckIn) -> Result<(), StoreError>;

    /// A hint: [`ReadTx::record`] will be asked for these ids. A store whose
    /// reads are round trips reads them all at once; the default does nothing.
    fn prefetch_records(&mut self, _ids: &[RecordId]) -> Result<(), StoreError> {
        Ok(())
    }

    /// A hint: [`ReadTx::customer_owner`] will be asked for these
    /// customers (and [`ReadTx::user`] for their owners). The default does
    /// nothing.
    fn prefetch_customer_owners(&mut self, _customers: &[RecordId]) -> Result<(), StoreError> {
        Ok(())
    }

    /// A hint: [`ReadTx::previous_check_in`] will be asked for `user` with
    /// these `(before_ms, exclude)`. The default does nothing.
    fn prefetch_previous_check_ins(
        &mut self,
        _user: UserId,
        _asks: &[(i64, RecordId)],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}
