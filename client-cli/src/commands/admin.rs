//! `fieldsync admin ...`: online commands calling the admin endpoints.

use super::Ctx;
use crate::cli::{
    AdminCmd, AdminCustomerCmd, AdminDeviceCmd, AdminProblemsArgs, AdminProblemsCmd, AdminTeamCmd,
    AdminUserCmd, RoleArg,
};
use crate::error::Failure;
use crate::input::password;
use crate::output::{clip, local_time, plural};
use crate::remote::{self, RemoteError};
use anyhow::Result;
use sync_protocol::RecordId;
use sync_protocol::schema::Role;
use sync_protocol::wire::{
    AssignCustomerRequest, AssignCustomerResponse, AssignCustomersResponse, ConflictInfo,
    ConflictSide, CreateTeamRequest, CreateUserRequest, DeviceInfo, DiscardProblemRequest,
    ProblemInfo, ResetPasswordRequest, TeamInfo, UserInfo,
};

fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::Rep => Role::Rep,
        RoleArg::Supervisor => Role::Supervisor,
        RoleArg::Hq => Role::Hq,
        RoleArg::Admin => Role::Admin,
    }
}

/// Run an admin command.
pub fn run(ctx: &Ctx, cmd: AdminCmd) -> Result<()> {
    let (remote, cfg) = ctx.remote()?;
    let fail = |e: RemoteError| -> anyhow::Error { remote::fail(e, &cfg.server, 0) };
    let p = &ctx.printer;
    match cmd {
        AdminCmd::Team(AdminTeamCmd::Add { name, region }) => {
            let t: TeamInfo = remote
                .post("/v1/admin/teams", &CreateTeamRequest { name, region })
                .map_err(fail)?;
            if p.json {
                return p.json(&t);
            }
            p.say(&format!("Created team {} ({}).", t.name, t.id));
            Ok(())
        }
        AdminCmd::Team(AdminTeamCmd::List) => {
            let teams: Vec<TeamInfo> = remote.get("/v1/admin/teams").map_err(fail)?;
            if p.json {
                return p.json(&teams);
            }
            let rows: Vec<Vec<String>> = teams
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.region.clone().unwrap_or_default(),
                        t.id.to_string(),
                    ]
                })
                .collect();
            p.table(&["NAME", "REGION", "ID"], &rows)
        }
        AdminCmd::User(AdminUserCmd::Add {
            name,
            role: r,
            team,
            supervisor,
            password_stdin,
        }) => {
            let pw = password(
                password_stdin,
                &format!("Password for the new user {name}: "),
            )?;
            let req = CreateUserRequest {
                username: name,
                password: pw,
                role: role(r),
                team,
                supervisor,
            };
            let u: UserInfo = remote.post("/v1/admin/users", &req).map_err(fail)?;
            if p.json {
                return p.json(&u);
            }
            p.say(&format!("Created {} {} ({}).", u.role, u.username, u.id));
            Ok(())
        }
        AdminCmd::User(AdminUserCmd::List) => {
            let users: Vec<UserInfo> = remote.get("/v1/admin/users").map_err(fail)?;
            if p.json {
                return p.json(&users);
            }
            let teams: Vec<TeamInfo> = remote.get("/v1/admin/teams").unwrap_or_default();
            let team_name = |id: Option<sync_protocol::TeamId>| {
                id.map(|id| {
                    teams
                        .iter()
                        .find(|t| t.id == id)
                        .map_or_else(|| id.to_string(), |t| t.name.clone())
                })
                .unwrap_or_default()
            };
            let user_name = |id: Option<sync_protocol::UserId>| {
                id.map(|id| {
                    users
                        .iter()
                        .find(|u| u.id == id)
                        .map_or_else(|| id.to_string(), |u| u.username.clone())
                })
                .unwrap_or_default()
            };
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.username.clone(),
                        u.role.to_string(),
                        team_name(u.team_id),
                        user_name(u.supervisor_id),
                        if u.active { "yes".into() } else { "no".into() },
                    ]
                })
                .collect();
            p.table(&["USER", "ROLE", "TEAM", "SUPERVISOR", "ACTIVE"], &rows)
        }
        AdminCmd::User(AdminUserCmd::Deactivate { name }) => {
            let u: UserInfo = remote
                .post_bare_json(&format!(
                    "/v1/admin/users/{}/deactivate",
                    path_segment(&name)
                ))
                .map_err(fail)?;
            if p.json {
                return p.json(&u);
            }
            p.say(&format!(
                "Deactivated {0}; their devices can only hand over what they wrote before now. Reassign their customers: fieldsync admin customer assign --from {0} --to REP",
                u.username
            ));
            Ok(())
        }
        AdminCmd::User(AdminUserCmd::Reactivate { name }) => {
            let u: UserInfo = remote
                .post_bare_json(&format!("/v1/admin/users/{}/activate", path_segment(&name)))
                .map_err(fail)?;
            if p.json {
                return p.json(&u);
            }
            p.say(&format!(
                "Reactivated {}; they can log in and sync again.",
                u.username
            ));
            Ok(())
        }
        AdminCmd::User(AdminUserCmd::ResetPassword {
            name,
            password_stdin,
        }) => {
            let pw = password(password_stdin, &format!("New password for {name}: "))?;
            remote
                .post_empty(
                    &format!("/v1/admin/users/{}/password", path_segment(&name)),
                    &ResetPasswordRequest { password: pw },
                )
                .map_err(fail)?;
            if p.json {
                return p.json(&serde_json::json!({"username": name, "password_reset": true}));
            }
            p.say(&format!("Set a new password for {name}."));
            Ok(())
        }
        AdminCmd::Device(AdminDeviceCmd::List { user }) => {
            let devices: Vec<DeviceInfo> = match &user {
                Some(u) => remote.get_query("/v1/admin/devices", &[("user", u)]),
                None => remote.get("/v1/admin/devices"),
            }
            .map_err(fail)?;
            if p.json {
                return p.json(&devices);
            }
            let rows: Vec<Vec<String>> = devices
                .iter()
                .map(|d| {
                    vec![
                        d.id.to_string(),
                        d.username.clone(),
                        clip(&d.name, 24),
                        d.last_seen_at
                            .as_deref()
                            .map(local_time)
                            .unwrap_or_default(),
                        d.acked_through.to_string(),
                        d.revoked_at.as_deref().map_or_else(
                            || "active".into(),
                            |r| format!("revoked {}", local_time(r)),
                        ),
                    ]
                })
                .collect();
            p.table(
                &["DEVICE", "USER", "NAME", "LAST SEEN", "ACKED", "STATE"],
                &rows,
            )
        }
        AdminCmd::Device(AdminDeviceCmd::Revoke { device }) => {
            let id: sync_protocol::DeviceId = device.trim().parse().map_err(|_| {
                Failure::new(format!("{device:?} is not a device id"))
                    .hint("see them with: fieldsync admin device list")
            })?;
            let d: DeviceInfo = remote
                .post_bare_json(&format!("/v1/admin/devices/{id}/revoke"))
                .map_err(fail)?;
            if p.json {
                return p.json(&d);
            }
            p.say(&format!(
                "Revoked device {} ({} of {}).",
                d.id, d.name, d.username
            ));
            Ok(())
        }
        AdminCmd::Customer(AdminCustomerCmd::Assign {
            from: Some(from),
            to,
            ..
        }) => {
            let r: AssignCustomersResponse = remote
                .post(
                    &format!("/v1/admin/users/{}/customers/assign", path_segment(&from)),
                    &AssignCustomerRequest { to: to.clone() },
                )
                .map_err(fail)?;
            if p.json {
                return p.json(&r);
            }
            p.say(&format!(
                "Assigned {} of {from} to {to}; {} moved with them.",
                plural(r.customers.len() as u64, "customer", "customers"),
                plural(r.records_moved, "record", "records")
            ));
            Ok(())
        }
        AdminCmd::Customer(AdminCustomerCmd::Assign { customer, to, .. }) => {
            let customer = customer
                .ok_or_else(|| Failure::new("name a customer, or --from USER for all of theirs"))?;
            let id = customer_id(ctx, &customer)?;
            let r: AssignCustomerResponse = remote
                .post(
                    &format!("/v1/admin/customers/{id}/assign"),
                    &AssignCustomerRequest { to: to.clone() },
                )
                .map_err(fail)?;
            if p.json {
                return p.json(&r);
            }
            p.say(&format!(
                "Assigned customer {} to {to}; {} records moved with it.",
                r.customer_id, r.records_moved
            ));
            Ok(())
        }
        AdminCmd::Problems(args) => problems(*p, &remote, &fail, args),
        AdminCmd::Conflicts { team } => {
            let rows: Vec<ConflictInfo> = match &team {
                Some(t) => remote.get_query("/v1/admin/conflicts", &[("team", t)]),
                None => remote.get("/v1/admin/conflicts"),
            }
            .map_err(fail)?;
            if p.json {
                return p.json(&rows);
            }
            if rows.is_empty() {
                p.say("No open conflicts.");
                return Ok(());
            }
            let who = |s: &ConflictSide| s.username.clone().unwrap_or_else(|| "server".into());
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|c| {
                    vec![
                        c.id.to_string(),
                        local_time(&c.created_at),
                        format!("{} {}", c.collection, &c.record_id.to_string()[..8]),
                        c.field.clone(),
                        clip(&c.losing_value.to_string(), 24),
                        who(&c.loser),
                        clip(&c.winning_value.to_string(), 24),
                        who(&c.winner),
                    ]
                })
                .collect();
            p.table(
                &[
                    "#", "REPORTED", "RECORD", "FIELD", "LOST", "BY", "KEPT", "BY",
                ],
                &table,
            )
        }
    }
}

/// A customer named by full id, or by a prefix or name this profile knows.
fn customer_id(ctx: &Ctx, query: &str) -> Result<RecordId> {
    if let Ok(id) = query.trim().parse::<RecordId>() {
        return Ok(id);
    }
    Ok(ctx.read_store()?.resolve_customer(query)?.id)
}

/// Usernames are letters, digits, `.`, `_`, `-`; anything else is escaped.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `admin problems`: list, or decide one.
fn problems(
    p: crate::output::Printer,
    remote: &remote::Remote,
    fail: &dyn Fn(RemoteError) -> anyhow::Error,
    args: AdminProblemsArgs,
) -> Result<()> {
    let decided = |r: ProblemInfo, done: &str| -> Result<()> {
        if p.json {
            return p.json(&r);
        }
        p.say(&format!(
            "Problem #{} {done}; {}'s laptop shows it at its next sync.",
            r.id, r.username
        ));
        Ok(())
    };
    match args.cmd {
        Some(AdminProblemsCmd::Apply { id }) => {
            let r: ProblemInfo = remote
                .post_bare_json(&format!("/v1/admin/problems/{id}/apply"))
                .map_err(fail)?;
            decided(r, "applied")
        }
        Some(AdminProblemsCmd::Discard { id, reason }) => {
            let r: ProblemInfo = remote
                .post(
                    &format!("/v1/admin/problems/{id}/discard"),
                    &DiscardProblemRequest { reason },
                )
                .map_err(fail)?;
            decided(r, "discarded")
        }
        None => {
            let mut query = Vec::new();
            if let Some(t) = &args.team {
                query.push(("team", t.as_str()));
            }
            if args.all {
                query.push(("all", "true"));
            }
            let rows: Vec<ProblemInfo> = remote
                .get_query("/v1/admin/problems", &query)
                .map_err(fail)?;
            if p.json {
                return p.json(&rows);
            }
            if rows.is_empty() {
                p.say(if args.all {
                    "No problems."
                } else {
                    "No open problems."
                });
                return Ok(());
            }
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        local_time(&r.created_at),
                        r.username.clone(),
                        format!("{} {}", r.op.kind.as_str(), r.op.collection),
                        r.code.to_string(),
                        clip(&r.message, 60),
                        r.decision.as_ref().map_or_else(String::new, |d| {
                            format!("{} by {}", d.verdict.as_str(), d.by)
                        }),
                    ]
                })
                .collect();
            p.table(
                &["#", "REPORTED", "USER", "CHANGE", "CODE", "WHY", "DECIDED"],
                &table,
            )?;
            if !args.all {
                p.say("Apply: fieldsync admin problems apply N   Discard: fieldsync admin problems discard N --reason WHY");
            }
            Ok(())
        }
    }
}
