//! `fieldsync login`, `logout`, `whoami`.

use super::Ctx;
use crate::cli::{LoginArgs, LogoutArgs};
use crate::config::Config;
use crate::error::{Failure, fail_hint};
use crate::input::password;
use crate::output::plural;
use crate::remote::{self, Remote, RemoteError};
use crate::store::{Identity, Store};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sync_protocol::DeviceId;
use sync_protocol::wire::{LoginRequest, LoginResponse, UserInfo};

pub(crate) fn device_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "fieldsync laptop".to_owned())
}

/// `login`: register (or re-register) this profile's device.
pub fn login(ctx: &Ctx, a: LoginArgs) -> Result<()> {
    let server = a.server.trim().trim_end_matches('/').to_owned();
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return fail_hint(
            format!("{server:?} is not a server URL"),
            "give it with the scheme, e.g. --server https://fieldsync.example.com",
        );
    }
    let prev = ctx.config()?;
    let same_user = prev.as_ref().is_some_and(|p| p.user.username == a.user);
    if let Some(p) = prev.as_ref().filter(|_| !same_user) {
        let store = ctx.read_store()?;
        let pending = store.pending()?;
        if pending > 0 {
            return Err(Failure::new(format!("this profile holds {} by {} that have not been synced", plural(pending, "change", "changes"), p.user.username))
                .hint(format!("sync them first (log in as {} and run fieldsync sync), or use another profile: fieldsync --home DIR login ...", p.user.username))
                .into());
        }
    }
    let pw = password(
        a.password_stdin,
        &format!("Password for {} on {server}: ", a.user),
    )?;
    let req = LoginRequest {
        username: a.user.clone(),
        password: pw,
        device_name: device_name(),
        device_id: prev.as_ref().filter(|_| same_user).map(|p| p.device_id),
    };
    // A login may register a new device and re-stamp the outbox for it:
    // never under a running sync (and wait before registering anything).
    let _no_sync = ctx.profile.lock_for_sync()?;
    let resp: LoginResponse = Remote::new(&server, None)?
        .post("/v1/auth/login", &req)
        .map_err(|e| remote::fail(e, &server, 0))?;
    let server_clock = resp.server_clock;
    let cfg = Config {
        server: server.clone(),
        token: Some(resp.token),
        device_id: resp.device_id,
        user: resp.user,
    };
    let mut store = Store::open(
        &ctx.profile,
        Some(Identity {
            device: cfg.device_id,
            user: cfg.user.id,
            role: cfg.user.role,
        }),
    )?;
    let prev_device: Option<DeviceId> = prev.as_ref().map(|p| p.device_id);
    let mut readopted = 0;
    if prev_device != Some(cfg.device_id) {
        // A new device: its device_seq starts at 1. Pending ops (same user,
        // e.g. after a revocation) are re-stamped for it so nothing is lost.
        readopted = store.adopt_device(cfg.device_id)?;
    }
    if prev.is_some() && !same_user {
        // Another user's scope: forget the previous user's pulled data.
        store.reset_server_state()?;
    }
    // Observe the server's clock so our next edit orders after it.
    store.observe_clock(&server_clock)?;
    ctx.profile.save(&cfg)?;
    if ctx.printer.json {
        return ctx
            .printer
            .json(&json!({"server": cfg.server, "user": cfg.user, "device_id": cfg.device_id}));
    }
    ctx.printer.say(&format!(
        "Logged in to {server} as {} ({}); this laptop is device {}.",
        cfg.user.username, cfg.user.role, cfg.device_id
    ));
    if readopted > 0 {
        ctx.printer.say(&format!(
            "{} will be sent from this device at the next sync.",
            plural(readopted, "unsynced change", "unsynced changes")
        ));
    }
    Ok(())
}

/// `logout`: revoke the token (if the server is reachable) and forget it.
pub fn logout(ctx: &Ctx, a: LogoutArgs) -> Result<()> {
    // Never delete the store under a running sync.
    let _running = a.wipe.then(|| ctx.profile.lock_for_sync()).transpose()?;
    let cfg = ctx.config()?;
    let pending = if ctx.profile.db_path().exists() {
        ctx.read_store()?.pending()?
    } else {
        0
    };
    if a.wipe && pending > 0 && !a.force {
        return Err(Failure::new(format!(
            "{} not been synced; --wipe would delete {}",
            plural(pending, "change has", "changes have"),
            if pending == 1 { "it" } else { "them" }
        ))
        .hint("run fieldsync sync first, or fieldsync logout --wipe --force to throw them away")
        .into());
    }
    let mut revoked = false;
    let mut note = None;
    if let Some(c) = &cfg
        && let Some(token) = &c.token
    {
        match Remote::new(&c.server, Some(token.clone()))?.post_bare("/v1/auth/logout") {
            Ok(()) => revoked = true,
            Err(RemoteError::Offline(_) | RemoteError::Busy { .. }) => {
                note = Some(format!(
                    "{} is unreachable: the token is forgotten here, but an administrator should revoke device {}",
                    c.server, c.device_id
                ));
            }
            Err(RemoteError::Api(..)) => {} // already revoked or unknown: nothing to undo
        }
    }
    if a.wipe {
        ctx.profile.wipe()?;
    } else if let Some(mut c) = cfg.clone() {
        c.token = None;
        ctx.profile.save(&c)?;
    }
    if let Some(n) = &note {
        ctx.printer.warn(n);
    }
    if ctx.printer.json {
        return ctx.printer.json(&json!({"logged_out": cfg.is_some(), "revoked_on_server": revoked, "wiped": a.wipe, "pending_ops": if a.wipe { 0 } else { pending }}));
    }
    match (&cfg, a.wipe) {
        (None, false) => ctx.printer.say("Not logged in."),
        (_, true) => ctx
            .printer
            .say("Logged out; this profile's local data is deleted."),
        (Some(c), false) => {
            ctx.printer.say(&format!(
                "Logged out {} from {}.",
                c.user.username, c.server
            ));
            if pending > 0 {
                ctx.printer.say(&format!(
                    "{} kept; they sync after the next login.",
                    plural(pending, "unsynced change is", "unsynced changes are")
                ));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct WhoAmI {
    user: UserInfo,
    device_id: DeviceId,
}

#[derive(Debug, Serialize)]
struct WhoAmIOut<'a> {
    server: &'a str,
    user: &'a UserInfo,
    device_id: DeviceId,
    logged_in: bool,
    /// Whether the server confirmed it just now.
    confirmed: bool,
}

/// `whoami`: the server's view if reachable, the profile's otherwise.
pub fn whoami(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.require_config()?;
    let mut user = cfg.user.clone();
    let mut device = cfg.device_id;
    let mut confirmed = false;
    if let Some(token) = &cfg.token {
        match Remote::new(&cfg.server, Some(token.clone()))?.get::<WhoAmI>("/v1/auth/whoami") {
            Ok(w) => {
                user = w.user;
                device = w.device_id;
                confirmed = true;
            }
            Err(RemoteError::Offline(_) | RemoteError::Busy { .. }) => {}
            Err(e) => {
                return Err(e
                    .into_failure(&cfg.server, ctx.read_store()?.pending()?)
                    .into());
            }
        }
    }
    if ctx.printer.json {
        return ctx.printer.json(&WhoAmIOut {
            server: &cfg.server,
            user: &user,
            device_id: device,
            logged_in: cfg.token.is_some(),
            confirmed,
        });
    }
    ctx.printer.pairs(&[
        ("user", user.username.clone()),
        ("role", user.role.to_string()),
        ("server", cfg.server.clone()),
        ("device", device.to_string()),
    ])?;
    if cfg.token.is_none() {
        ctx.printer.say(&format!(
            "Logged out. Log in again: fieldsync login --server {} --user {}",
            cfg.server, user.username
        ));
    } else if !confirmed {
        ctx.printer.say("(offline: as remembered by this profile)");
    }
    Ok(())
}
