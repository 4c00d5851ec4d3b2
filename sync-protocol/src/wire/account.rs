//! Accounts, devices and administration messages.

use crate::error::ErrorCode;
use crate::hlc::Hlc;
use crate::id::{DeviceId, OpId, RecordId, TeamId, UserId};
use crate::op::Op;
use crate::schema::Role;
use serde::{Deserialize, Serialize};

/// `POST /v1/auth/login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// A name for the device, e.g. the laptop's host name.
    pub device_name: String,
    /// Re-register this existing device of the same user (after a logout),
    /// so that its outbox and `device_seq` carry on. A new device otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
}

/// `POST /v1/auth/devices`: register another device of the caller's user,
/// authenticated by the token of one of theirs (a profile restored from a
/// backup, or copied to a second laptop, becomes a device of its own).
/// The answer is a [`LoginResponse`] with the new device's token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterDeviceRequest {
    /// The new device's id, chosen by the client so that a retry after a
    /// lost answer registers the same device again (with a new token) for
    /// as long as it has sent nothing. A new id when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    /// A name for the device, e.g. the laptop's host name.
    pub device_name: String,
}

/// A user as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserInfo {
    /// Id (also the id of the user's `users` record).
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Team, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<TeamId>,
    /// Supervisor, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_id: Option<UserId>,
    /// Whether the account may log in.
    pub active: bool,
}

/// Answer to a login: the device token is shown only here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginResponse {
    /// Bearer token for this device.
    pub token: String,
    /// The registered device.
    pub device_id: DeviceId,
    /// Who logged in.
    pub user: UserInfo,
    /// The server's clock.
    pub server_clock: Hlc,
}

/// `POST /v1/admin/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Login name: 1-64 of letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// Initial password (at least 8 characters).
    pub password: String,
    /// Role.
    pub role: Role,
    /// Team name or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Supervisor's username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<String>,
}

/// `POST /v1/admin/users/{username}/password`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The new password (at least 8 characters).
    pub password: String,
}

/// `POST /v1/admin/teams`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRequest {
    /// Team name (unique).
    pub name: String,
    /// Region, for reports by region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TeamInfo {
    /// Id.
    pub id: TeamId,
    /// Name.
    pub name: String,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A registered device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// Id.
    pub id: DeviceId,
    /// Owner.
    pub user_id: UserId,
    /// Owner's username.
    pub username: String,
    /// Name given at login.
    pub name: String,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// When it last made an authenticated request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<String>,
    /// When its token was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Highest `device_seq` stored.
    pub acked_through: u64,
    /// How far its clock was ahead of the server's at its last push (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_drift_ms: Option<i64>,
}

/// `POST /v1/admin/customers/{id}/assign`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssignCustomerRequest {
    /// Username of the new owner (a rep or supervisor).
    pub to: String,
}

/// Answer to an assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssignCustomerResponse {
    /// The customer.
    pub customer_id: RecordId,
    /// Previous owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<UserId>,
    /// New owner.
    pub to: UserId,
    /// Records (the customer and its history) moved with it.
    pub records_moved: u64,
}

/// Answer to moving every customer of one user to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssignCustomersResponse {
    /// The previous owner.
    pub from: UserId,
    /// The new owner.
    pub to: UserId,
    /// The customers moved.
    pub customers: Vec<RecordId>,
    /// Records (the customers and their histories) moved with them.
    pub records_moved: u64,
}

/// An op the server rejected, kept for review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProblemInfo {
    /// Problem number.
    pub id: i64,
    /// The user whose device sent the op.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// The op as sent.
    pub op: Op,
    /// Why it was rejected.
    pub code: ErrorCode,
    /// Why, in words.
    pub message: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// What a reviewer decided, once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ProblemDecision>,
}

/// What became of a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Its op was checked again under the current rules, as the
    /// reviewer's decision, and applied.
    Applied,
    /// Dropped, with a reason; kept for the audit trail.
    Discarded,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Applied => "applied",
            Verdict::Discarded => "discarded",
        }
    }

    /// From the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Verdict::Applied, Verdict::Discarded]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A reviewer's decision on a problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProblemDecision {
    /// Applied or discarded.
    pub verdict: Verdict,
    /// The reviewer's username.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why it was discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/admin/problems/{id}/discard`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DiscardProblemRequest {
    /// Why (shown to the rep; at most [`MAX_REASON_CHARS`] characters).
    pub reason: String,
}

/// The longest reason for discarding a problem.
pub const MAX_REASON_CHARS: usize = 500;

/// The most op ids one `POST /v1/sync/problems` asks about.
pub const MAX_PROBLEM_QUERIES: usize = 1000;

/// `POST /v1/sync/problems`: what became of these ops this device holds
/// as problems.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProblemDecisionsRequest {
    /// At most [`MAX_PROBLEM_QUERIES`].
    pub op_ids: Vec<OpId>,
}

/// Answer to [`ProblemDecisionsRequest`]: the decided ones among them
/// (the caller's own problems only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProblemDecisionsResponse {
    /// One per decided op.
    pub decided: Vec<DecidedOp>,
}

/// A decided problem, by its op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DecidedOp {
    /// The op.
    pub op_id: OpId,
    /// The decision.
    pub decision: ProblemDecision,
}
