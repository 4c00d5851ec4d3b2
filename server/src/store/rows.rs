//! The rows a store hands out and takes: accounts, devices, records,
//! changes, ops and their outcomes, problems, conflicts, check-ins.

use sync_protocol::geo::LatLon;
use sync_protocol::schema::Role;
use sync_protocol::wire::Verdict;
use sync_protocol::{DeviceId, OpId, RecordId, TeamId, UserId};

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
    /// The op's id (also inside `op`).
    pub op_id: OpId,
    /// What a reviewer decided, once decided.
    pub decision: Option<DecisionRow>,
}

/// A reviewer's decision on a problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionRow {
    /// Applied or discarded.
    pub verdict: Verdict,
    /// The reviewer.
    pub by: UserId,
    /// RFC 3339.
    pub at: String,
    /// Why it was discarded.
    pub reason: Option<String>,
}

/// Which open conflicts to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictFilter<'a> {
    /// Every one.
    All,
    /// Those where one of these users lost or won.
    Involving(&'a [UserId]),
    /// Those where this user's value lost.
    LostBy(UserId),
}

/// One side of a conflict: who wrote the value (unknown where the server
/// wrote it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Side {
    /// The user.
    pub user: Option<UserId>,
    /// Their device.
    pub device: Option<sync_protocol::DeviceId>,
}

/// A stored conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictRow {
    /// Number, assigned by the store (ignored when adding one).
    pub id: i64,
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
    /// Whose value lost.
    pub loser: Side,
    /// Whose value won.
    pub winner: Side,
    /// RFC 3339, once settled.
    pub resolved_at: Option<String>,
    /// How it was settled (`mine`, `theirs`).
    pub resolution: Option<String>,
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
