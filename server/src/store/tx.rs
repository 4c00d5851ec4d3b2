//! What a transaction offers, by concept: a store implements the reads and
//! writes of accounts, of records (push and pull) and of report facts, and
//! [`ReadTx`]/[`WriteTx`] join them with the few calls every transaction
//! has (meta values, the change sequence). Callers hold a `dyn ReadTx` or
//! `dyn WriteTx` and call any of them.

use super::StoreError;
use super::facts;
use super::rows::{
    ChangeRow, CheckIn, ConflictFilter, ConflictRow, DecisionRow, DeviceRow, OpRow, ProblemRow,
    RecordRow, ScopeFilter, TeamRow, UserRow,
};
use sync_protocol::metrics::RecordFact;
use sync_protocol::ownership::Reassignment;
use sync_protocol::wire::Settlement;
use sync_protocol::{DeviceId, Hlc, OpId, RecordId, TeamId, UserId};

/// Reads every store offers.
pub trait ReadTx: AccountRead + RecordRead + ReportRead {
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
}

/// Writes; a write transaction also reads.
pub trait WriteTx: ReadTx + AccountWrite + RecordWrite + ReportWrite {
    /// Set a meta value.
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Take the next change number. Numbers must become visible in commit
    /// order: SQLite has one writer, so a counter row updated inside the
    /// write transaction is enough; a store with concurrent writers must hold
    /// the number under a lock until commit (or serve pulls only below the
    /// oldest number still in flight).
    fn next_seq(&mut self) -> Result<u64, StoreError>;
}

/// Reads of accounts: users, teams, devices, login failures, dashboard sessions.
pub trait AccountRead {
    /// Number of accounts.
    fn user_count(&mut self) -> Result<u64, StoreError>;
    /// An account by name.
    fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError>;
    /// An account by id.
    fn user(&mut self, id: UserId) -> Result<Option<UserRow>, StoreError>;
    /// The server's clock when the account `id` was deactivated (`None`
    /// when it is active, or was deactivated before the clock was kept).
    fn deactivated_at(&mut self, id: UserId) -> Result<Option<Hlc>, StoreError>;
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
    /// Failed (or reserved, see [`AccountWrite::add_login_failure`]) logins
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
}

/// Writes of accounts.
pub trait AccountWrite {
    /// Create an account ([`StoreError::Taken`] when the username is taken).
    fn insert_user(&mut self, user: &UserRow) -> Result<(), StoreError>;
    /// Deactivate at the server's clock `at` (`Some`), or reactivate (`None`).
    fn set_user_deactivated(&mut self, id: UserId, at: Option<Hlc>) -> Result<(), StoreError>;
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
}

/// Reads of records, the change log, ops and their outcomes.
pub trait RecordRead {
    /// A record by id.
    fn record(&mut self, id: RecordId) -> Result<Option<RecordRow>, StoreError>;
    /// The current owner of a customer.
    fn customer_owner(&mut self, customer: RecordId) -> Result<Option<UserId>, StoreError>;
    /// The customers `owner` owns, oldest first.
    fn customers_owned_by(&mut self, owner: UserId) -> Result<Vec<RecordId>, StoreError>;
    /// Every reassignment of a customer, oldest first.
    fn reassignments(&mut self, customer: RecordId) -> Result<Vec<Reassignment>, StoreError>;
    /// Every customer that was ever reassigned, in id order.
    fn reassigned_customers(&mut self) -> Result<Vec<RecordId>, StoreError>;
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
    /// A stored op by device and seq.
    fn op(&mut self, device: DeviceId, device_seq: u64) -> Result<Option<OpRow>, StoreError>;
    /// The stored ops of `user` (from any of their devices) whose op ids
    /// are among `ids`, in no particular order.
    fn ops_with_ids(&mut self, user: UserId, ids: &[OpId]) -> Result<Vec<OpRow>, StoreError>;
    /// Problems of these users (all when `None`), undecided ones only when
    /// `open`, newest first.
    fn problems(
        &mut self,
        users: Option<&[UserId]>,
        open: bool,
    ) -> Result<Vec<ProblemRow>, StoreError>;
    /// Problem number `id`.
    fn problem(&mut self, id: i64) -> Result<Option<ProblemRow>, StoreError>;
    /// The decided problems of `user` among those of these ops.
    fn decided_problems(
        &mut self,
        user: UserId,
        ops: &[OpId],
    ) -> Result<Vec<ProblemRow>, StoreError>;
    /// Conflicts stored for a record, oldest first.
    fn conflicts(&mut self, record: RecordId) -> Result<Vec<ConflictRow>, StoreError>;
    /// Open (unsettled) conflicts, newest first, at most `limit`.
    fn open_conflicts(
        &mut self,
        filter: ConflictFilter<'_>,
        limit: u32,
    ) -> Result<Vec<ConflictRow>, StoreError>;
    /// The user's latest check-in strictly before `before_ms`, other than `exclude`.
    fn previous_check_in(
        &mut self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Result<Option<CheckIn>, StoreError>;
}

/// Writes of records and of a push's bookkeeping.
pub trait RecordWrite {
    /// Insert or replace a record (its `seq` from [`WriteTx::next_seq`]).
    fn put_record(&mut self, record: &RecordRow) -> Result<(), StoreError>;
    /// Give an existing record a new change number.
    fn set_record_seq(&mut self, id: RecordId, seq: u64) -> Result<(), StoreError>;
    /// Set a customer's owner.
    fn set_customer_owner(&mut self, customer: RecordId, owner: UserId) -> Result<(), StoreError>;
    /// Record that a customer left `change.from`'s scope, under change
    /// number `seq`, at server time `at`.
    fn add_eviction(
        &mut self,
        seq: u64,
        customer: RecordId,
        change: &Reassignment,
        at: &str,
    ) -> Result<(), StoreError>;
    /// Store an op and its outcome.
    fn add_op(&mut self, op: &OpRow) -> Result<(), StoreError>;
    /// Store a problem; returns its number.
    fn add_problem(&mut self, problem: &ProblemRow) -> Result<i64, StoreError>;
    /// Record the decision on problem `id` unless it has one; whether it
    /// was recorded.
    fn decide_problem(&mut self, id: i64, decision: &DecisionRow) -> Result<bool, StoreError>;
    /// Store a conflict.
    fn add_conflict(&mut self, conflict: &ConflictRow) -> Result<(), StoreError>;
    /// Settle the conflict `loser` lost that `settlement` names, at `at`
    /// (kept as it was when already settled); whether there is one.
    fn settle_conflict(
        &mut self,
        loser: UserId,
        settlement: &Settlement,
        at: &str,
    ) -> Result<bool, StoreError>;
    /// Store a check-in.
    fn put_check_in(&mut self, check_in: &CheckIn) -> Result<(), StoreError>;
    /// A hint: [`RecordRead::record`] will be asked for these ids. A store whose
    /// reads are round trips reads them all at once; the default does nothing.
    fn prefetch_records(&mut self, _ids: &[RecordId]) -> Result<(), StoreError> {
        Ok(())
    }
    /// A hint: [`RecordRead::customer_owner`] will be asked for these
    /// customers (and [`AccountRead::user`] for their owners). The default does
    /// nothing.
    fn prefetch_customer_owners(&mut self, _customers: &[RecordId]) -> Result<(), StoreError> {
        Ok(())
    }
    /// A hint: [`RecordRead::previous_check_in`] will be asked for `user` with
    /// these `(before_ms, exclude)`. The default does nothing.
    fn prefetch_previous_check_ins(
        &mut self,
        _user: UserId,
        _asks: &[(i64, RecordId)],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Reads for reports: every record in a scope, and the report facts.
pub trait ReportRead {
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
    /// [`ReportRead::report_customers`].
    fn report_facts(
        &mut self,
        from_us: i64,
        to_us: i64,
        part: facts::FactPart,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError>;
}

/// Writes of the report facts ([`facts`]), derived from records.
pub trait ReportWrite {
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
}
