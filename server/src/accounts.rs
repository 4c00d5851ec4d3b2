//! Accounts, devices and administration: the rules behind `/v1/auth/*` and
//! `/v1/admin/*` (store-independent). Creating or changing an account or a
//! team also writes its `users`/`teams` directory record, so devices learn
//! the directory through an ordinary pull.

use crate::auth::{self, Actor};
use crate::config::HashCost;
use crate::error::ApiError;
use crate::scope::scope_filter;
use crate::store::{self, DeviceRow, ReadTx, Store, TeamRow, UserRow, WriteTx};
use crate::sync::{self, ServerClock};
use crate::throttle;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use sync_protocol::schema::Role;
use sync_protocol::time::format_ts;
use sync_protocol::wire::{
    CreateTeamRequest, CreateUserRequest, DeviceInfo, LoginRequest, LoginResponse,
    RegisterDeviceRequest, TeamInfo, UserInfo,
};
use sync_protocol::{DeviceId, ErrorCode as E, Fields, Hlc, RecordId, TeamId, UserId};

/// A syntactically valid username: `[A-Za-z0-9._-]{1,64}`.
pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The API form of an account.
pub fn user_info(u: &UserRow) -> UserInfo {
    UserInfo {
        id: u.id,
        username: u.username.clone(),
        role: u.role,
        team_id: u.team_id,
        supervisor_id: u.supervisor_id,
        active: u.active,
    }
}

fn team_info(t: &TeamRow) -> TeamInfo {
    TeamInfo {
        id: t.id,
        name: t.name.clone(),
        region: t.region.clone(),
    }
}

fn device_info(d: &DeviceRow, username: &str) -> DeviceInfo {
    DeviceInfo {
        id: d.id,
        user_id: d.user_id,
        username: username.to_owned(),
        name: d.name.clone(),
        created_at: d.created_at.clone(),
        last_seen_at: d.last_seen_at.clone(),
        revoked_at: d.revoked_at.clone(),
        acked_through: d.acked_through,
        clock_drift_ms: d.clock_drift_ms,
    }
}

/// Only admins.
pub fn require_admin(actor: &Actor) -> Result<(), ApiError> {
    if actor.user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "only an admin may do this; you are {}",
            actor.user.role
        )))
    }
}

fn user_fields(u: &UserRow) -> Fields {
    let mut f = Fields::new();
    f.insert("username".into(), json!(u.username));
    f.insert("role".into(), json!(u.role.as_str()));
    f.insert(
        "team_id".into(),
        u.team_id.map_or(Value::Null, |t| json!(t.to_string())),
    );
    f.insert(
        "supervisor_id".into(),
        u.supervisor_id
            .map_or(Value::Null, |s| json!(s.to_string())),
    );
    f.insert("active".into(), json!(u.active));
    f
}

fn write_user_record(
    tx: &mut dyn WriteTx,
    u: &UserRow,
    by: UserId,
    now: DateTime<Utc>,
    fields: Fields,
) -> Result<(), ApiError> {
    sync::write_directory_record(tx, "users", RecordId(u.id.0), fields, by, now)?;
    Ok(())
}

/// First start: the server's identity and clock, and the `admin` account.
/// Returns the generated password when one was made up (to be shown once).
pub fn bootstrap(
    store: &dyn Store,
    admin_password: Option<&str>,
    cost: HashCost,
    now: DateTime<Utc>,
) -> Result<Option<String>, ApiError> {
    let generated = admin_password.is_none().then(auth::random_password);
    let password = admin_password
        .map(str::to_owned)
        .or_else(|| generated.clone())
        .unwrap_or_default();
    let hash = auth::hash_password(&password, cost)?;
    store::write(store, |tx| {
        sync::ensure_identity(tx, now)?;
        if tx.user_count()? > 0 {
            return Ok(None);
        }
        let admin = UserRow {
            id: UserId::new_v7(now),
            username: "admin".into(),
            password_hash: hash,
            role: Role::Admin,
            team_id: None,
            supervisor_id: None,
            active: true,
            created_at: format_ts(now),
        };
        tx.insert_user(&admin)?;
        write_user_record(tx, &admin, admin.id, now, user_fields(&admin))?;
        Ok(generated)
    })
}

/// Check a username and password under the login throttle
/// ([`throttle`]), shared by the API and the dashboard: the attempt is
/// reserved in the store before the password is hashed, and forgotten if
/// the password was right. `device` is the device the client says it is;
/// when it is registered to that user it, not the address, is who tries.
/// Returns the user, who may be deactivated.
pub fn check_credentials(
    store: &dyn Store,
    username: &str,
    password: &str,
    device: Option<DeviceId>,
    address: std::net::IpAddr,
    now: DateTime<Utc>,
) -> Result<UserRow, ApiError> {
    let now_ms = now.timestamp_millis();
    let since = now_ms - throttle::WINDOW_MS;
    let reserved = store::write(store, |tx| {
        let user = tx.user_by_name(username)?;
        let key = match (device, &user) {
            (Some(id), Some(u))
                if tx
                    .device(id)?
                    .is_some_and(|d| d.user_id == u.id && d.revoked_at.is_none()) =>
            {
                throttle::Key::Device(id)
            }
            _ => throttle::Key::Address(address),
        };
        let (by_user, by_key) = tx.login_failures(username, &key.stored(), since)?;
        if let Err(wait_ms) = throttle::decide(now_ms, key, &by_user, by_key) {
            return Ok(Err(wait_ms));
        }
        let id = tx.add_login_failure(username, &key.stored(), now_ms, since)?;
        Ok::<_, ApiError>(Ok((user, id)))
    })?;
    let (user, id) = reserved.map_err(|wait_ms| {
        let secs = u64::try_from(wait_ms).unwrap_or(0).div_ceil(1_000).max(1);
        ApiError::Throttled {
            message: format!("too many failed logins; try again in {secs} s"),
            retry_after_secs: secs,
        }
    })?;
    let verdict = match &user {
        Some(u) => auth::verify_password(password, &u.password_hash),
        None => Ok(false),
    };
    if !matches!(verdict, Ok(false)) {
        // Right, or no verdict (no hashing slot in time): not a failure.
        store::write(store, |tx| tx.forget_login_failure(id))?;
    }
    match (user, verdict?) {
        (Some(u), true) => Ok(u),
        _ => Err(ApiError::new(
            E::InvalidCredentials,
            "wrong username or password",
        )),
    }
}

/// `POST /v1/auth/login`.
pub fn login(
    store: &dyn Store,
    req: &LoginRequest,
    address: std::net::IpAddr,
    now: DateTime<Utc>,
) -> Result<LoginResponse, ApiError> {
    let user = check_credentials(
        store,
        &req.username,
        &req.password,
        req.device_id,
        address,
        now,
    )?;
    if !user.active {
        return Err(ApiError::new(
            E::UserDeactivated,
            format!("user {} is deactivated", user.username),
        ));
    }
    let (token, hash) = auth::new_token();
    let at = format_ts(now);
    let name = device_name(&req.device_name)?;
    store::write(store, |tx| {
        let reuse = match req.device_id {
            Some(id) => tx
                .device(id)?
                .filter(|d| d.user_id == user.id && d.revoked_at.is_none()),
            None => None,
        };
        let device = match reuse {
            Some(d) => DeviceRow {
                name: name.to_owned(),
                last_seen_at: Some(at.clone()),
                logged_out_at: None,
                ..d
            },
            None => new_device(DeviceId::new_v7(now), user.id, name, &at),
        };
        tx.upsert_device(&device, &hash)?;
        let server_clock = ServerClock::load(tx)?.now(now);
        Ok(LoginResponse {
            token: token.clone(),
            device_id: device.id,
            user: user_info(&user),
            server_clock,
        })
    })
}

/// A device name as given, trimmed: 1-200 characters.
fn device_name(given: &str) -> Result<&str, ApiError> {
    let name = given.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::field(
            E::OutOfRange,
            "device_name",
            "device_name must be 1-200 characters",
        ));
    }
    Ok(name)
}

fn new_device(id: DeviceId, user: UserId, name: &str, at: &str) -> DeviceRow {
    DeviceRow {
        id,
        user_id: user,
        name: name.to_owned(),
        created_at: at.to_owned(),
        last_seen_at: Some(at.to_owned()),
        revoked_at: None,
        logged_out_at: None,
        acked_through: 0,
        clock_drift_ms: None,
    }
}

/// `POST /v1/auth/devices`: another device for the caller's user. An id
/// that is already registered is refused, except a device of the same user
/// that has sent nothing yet: a retry whose first answer was lost gets that
/// device again, with a new token.
pub fn register_device(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    req: &RegisterDeviceRequest,
    now: DateTime<Utc>,
) -> Result<LoginResponse, ApiError> {
    let name = device_name(&req.device_name)?;
    let at = format_ts(now);
    let id = req.device_id.unwrap_or_else(|| DeviceId::new_v7(now));
    let device = match tx.device(id)? {
        None => new_device(id, actor.user.id, name, &at),
        Some(d)
            if d.user_id == actor.user.id
                && d.id != actor.device.id
                && d.revoked_at.is_none()
                && d.acked_through == 0 =>
        {
            DeviceRow {
                name: name.to_owned(),
                last_seen_at: Some(at.clone()),
                logged_out_at: None,
                ..d
            }
        }
        Some(_) => {
            return Err(ApiError::field(
                E::AlreadyExists,
                "device_id",
                format!("device {id} is already registered; leave device_id out for a new one"),
            ));
        }
    };
    let (token, hash) = auth::new_token();
    tx.upsert_device(&device, &hash)?;
    let server_clock = ServerClock::load(tx)?.now(now);
    Ok(LoginResponse {
        token,
        device_id: device.id,
        user: user_info(&actor.user),
        server_clock,
    })
}

/// `POST /v1/auth/logout`.
pub fn logout(tx: &mut dyn WriteTx, actor: &Actor, now: DateTime<Utc>) -> Result<(), ApiError> {
    tx.log_out_device(actor.device.id, &format_ts(now))?;
    Ok(())
}

fn resolve_team(tx: &mut dyn ReadTx, name_or_id: &str) -> Result<TeamRow, ApiError> {
    if let Some(t) = tx.team_by_name(name_or_id)? {
        return Ok(t);
    }
    if let Ok(id) = name_or_id.parse::<TeamId>()
        && let Some(t) = tx.team(id)?
    {
        return Ok(t);
    }
    Err(ApiError::field(
        E::NotFound,
        "team",
        format!("there is no team {name_or_id:?}"),
    ))
}

/// `POST /v1/admin/teams`.
pub fn create_team(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    req: &CreateTeamRequest,
    now: DateTime<Utc>,
) -> Result<TeamInfo, ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::field(
            E::OutOfRange,
            "name",
            "a team name has 1-200 characters",
        ));
    }
    if req.region.as_ref().is_some_and(|r| r.chars().count() > 200) {
        return Err(ApiError::field(
            E::TooLong,
            "region",
            "a region has at most 200 characters",
        ));
    }
    let team = TeamRow {
        id: TeamId::new_v7(now),
        name: name.to_owned(),
        region: req.region.clone(),
        created_at: format_ts(now),
    };
    tx.insert_team(&team)?;
    let mut f = Fields::new();
    f.insert("name".into(), json!(team.name));
    if let Some(r) = &team.region {
        f.insert("region".into(), json!(r));
    }
    sync::write_directory_record(tx, "teams", RecordId(team.id.0), f, actor.user.id, now)?;
    Ok(team_info(&team))
}

/// `GET /v1/admin/teams`.
pub fn teams(tx: &mut dyn ReadTx) -> Result<Vec<TeamInfo>, ApiError> {
    Ok(tx.teams()?.iter().map(team_info).collect())
}

/// Check a new account's name and password before hashing.
pub fn check_new_user(req: &CreateUserRequest) -> Result<(), ApiError> {
    if !valid_username(&req.username) {
        return Err(ApiError::field(
            E::OutOfRange,
            "username",
            "a username has 1-64 of letters, digits, '.', '_' and '-'",
        ));
    }
    auth::check_password_rules(&req.password)
}

/// `POST /v1/admin/users` (the password is already hashed).
pub fn create_user(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    req: &CreateUserRequest,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<UserInfo, ApiError> {
    check_new_user(req)?;
    let team_id = req
        .team
        .as_deref()
        .map(|t| resolve_team(tx, t))
        .transpose()?
        .map(|t| t.id);
    let supervisor_id = match req.supervisor.as_deref() {
        Some(name) => Some(
            tx.user_by_name(name)?
                .ok_or_else(|| {
                    ApiError::field(
                        E::NotFound,
                        "supervisor",
                        format!("there is no user {name:?}"),
                    )
                })?
                .id,
        ),
        None => None,
    };
    let user = UserRow {
        id: UserId::new_v7(now),
        username: req.username.clone(),
        password_hash,
        role: req.role,
        team_id,
        supervisor_id,
        active: true,
        created_at: format_ts(now),
    };
    tx.insert_user(&user)?;
    write_user_record(tx, &user, actor.user.id, now, user_fields(&user))?;
    if user.role == Role::Rep {
        assign_onboarding(tx, user.id, actor.user.id, now)?;
    }
    Ok(user_info(&user))
}

/// Days a new rep has to complete the required onboarding courses.
pub const ONBOARDING_DUE_DAYS: u64 = 14;

/// Assign every required onboarding course (kind `onboarding`,
/// `required_for` containing `rep`) to a new rep, due in
/// [`ONBOARDING_DUE_DAYS`], in the transaction that creates the account.
/// Returns how many were assigned.
pub fn assign_onboarding(
    tx: &mut dyn WriteTx,
    rep: UserId,
    by: UserId,
    now: DateTime<Utc>,
) -> Result<usize, ApiError> {
    let mut courses = Vec::new();
    let mut bad = None;
    tx.scope_records(&store::ScopeFilter::default(), &mut |collection, state| {
        if collection != "courses" {
            return;
        }
        match sync::decode_state(state) {
            Ok(s) => courses.push(s),
            Err(e) => bad = Some(e),
        }
    })?;
    if let Some(e) = bad {
        return Err(e.into());
    }
    let due = (now.date_naive() + chrono::Days::new(ONBOARDING_DUE_DAYS)).to_string();
    let mut n = 0;
    for c in courses {
        let required = c
            .get("required_for")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|r| r.as_str() == Some("rep")));
        if c.archived.is_some() || c.get_str("kind") != Some("onboarding") || !required {
            continue;
        }
        let mut f = Fields::new();
        f.insert("rep_id".into(), json!(rep.to_string()));
        f.insert("course_id".into(), json!(c.id.to_string()));
        f.insert("due".into(), json!(due));
        sync::write_directory_record(
            tx,
            "training_assignments",
            RecordId::new_v7(now),
            f,
            by,
            now,
        )?;
        n += 1;
    }
    Ok(n)
}

/// `GET /v1/admin/users`.
pub fn users(tx: &mut dyn ReadTx) -> Result<Vec<UserInfo>, ApiError> {
    Ok(tx.users()?.iter().map(user_info).collect())
}

fn user_named(tx: &mut dyn ReadTx, username: &str) -> Result<UserRow, ApiError> {
    tx.user_by_name(username)?
        .ok_or_else(|| ApiError::not_found(format!("there is no user {username:?}")))
}

/// `POST /v1/admin/users/{username}/deactivate`.
pub fn deactivate(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    username: &str,
    now: DateTime<Utc>,
) -> Result<UserInfo, ApiError> {
    let mut user = user_named(tx, username)?;
    if user.id == actor.user.id {
        return Err(ApiError::forbidden("you cannot deactivate yourself"));
    }
    // Whatever happened before, no dashboard session outlives this.
    tx.end_user_dashboard_sessions(user.id)?;
    if user.active {
        // The moment: the user's devices may still hand over what they
        // wrote before it (see `sync::push`), nothing stamped after.
        let mut server = ServerClock::load(tx)?;
        let clock = server.now(now);
        server.save(tx)?;
        set_active(tx, actor, &mut user, Some(clock), now)?;
    }
    Ok(user_info(&user))
}

/// Deactivate `user` at the server's clock `deactivated` (`Some`), or
/// reactivate them, in the account and in the `users` directory record.
fn set_active(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    user: &mut UserRow,
    deactivated: Option<Hlc>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    tx.set_user_deactivated(user.id, deactivated)?;
    user.active = deactivated.is_none();
    let mut f = Fields::new();
    f.insert("active".into(), json!(user.active));
    write_user_record(tx, user, actor.user.id, now, f)
}

/// `POST /v1/admin/users/{username}/activate`: a deactivated user may log
/// in and sync again (their devices' tokens work again too).
pub fn reactivate(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    username: &str,
    now: DateTime<Utc>,
) -> Result<UserInfo, ApiError> {
    let mut user = user_named(tx, username)?;
    if !user.active {
        set_active(tx, actor, &mut user, None, now)?;
    }
    Ok(user_info(&user))
}

/// `POST /v1/admin/users/{username}/password` (the password is already hashed).
pub fn reset_password(
    tx: &mut dyn WriteTx,
    username: &str,
    password_hash: &str,
) -> Result<(), ApiError> {
    let user = user_named(tx, username)?;
    tx.set_password(user.id, password_hash)?;
    // Whoever knew the old password is signed out of the dashboard.
    tx.end_user_dashboard_sessions(user.id)?;
    Ok(())
}

/// `GET /v1/admin/devices?user=NAME`.
pub fn devices(tx: &mut dyn ReadTx, username: Option<&str>) -> Result<Vec<DeviceInfo>, ApiError> {
    let filter = username.map(|u| user_named(tx, u)).transpose()?;
    let names: HashMap<UserId, String> = tx
        .users()?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    Ok(tx
        .devices(filter.map(|u| u.id))?
        .iter()
        .map(|d| device_info(d, names.get(&d.user_id).map_or("", String::as_str)))
        .collect())
}

/// `POST /v1/admin/devices/{id}/revoke`.
pub fn revoke(
    tx: &mut dyn WriteTx,
    id: DeviceId,
    now: DateTime<Utc>,
) -> Result<DeviceInfo, ApiError> {
    if tx.device(id)?.is_none() {
        return Err(ApiError::not_found(format!("there is no device {id}")));
    }
    tx.revoke_device(id, &format_ts(now))?;
    let d = tx
        .device(id)?
        .ok_or_else(|| ApiError::not_found(format!("there is no device {id}")))?;
    let name = tx.user(d.user_id)?.map(|u| u.username).unwrap_or_default();
    Ok(device_info(&d, &name))
}

/// Whose problems or conflicts (`what`) a review of `team` lists for the
/// actor: admin and hq see all (`None`) or one team's; a supervisor sees
/// their own team's only; reps none.
pub fn review_users(
    tx: &mut dyn ReadTx,
    actor: &Actor,
    team: Option<&str>,
    what: &str,
) -> Result<Option<Vec<UserId>>, ApiError> {
    let team = team.map(|t| resolve_team(tx, t)).transpose()?;
    Ok(match actor.user.role {
        Role::Admin | Role::Hq => match &team {
            Some(t) => Some(tx.team_members(Some(t.id), None)?),
            None => None,
        },
        Role::Supervisor => {
            if let Some(t) = &team
                && actor.user.team_id != Some(t.id)
            {
                return Err(ApiError::forbidden(format!(
                    "a supervisor sees the {what} of their own team only"
                )));
            }
            Some(scope_filter(tx, &actor.user)?.users)
        }
        Role::Rep => {
            return Err(ApiError::forbidden(format!(
                "reps cannot list {what}; ask your supervisor"
            )));
        }
    })
}

/// Every user's username, by id.
pub fn usernames(tx: &mut dyn ReadTx) -> Result<HashMap<UserId, String>, ApiError> {
    Ok(tx
        .users()?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect())
}
