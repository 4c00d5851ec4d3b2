//! `fieldsync status`: what is waiting, when we last synced, what went wrong.

use super::Ctx;
use crate::output::{Style, local_time, plural};
use crate::store::{NewDevice, key};
use anyhow::Result;
use serde::Serialize;
use sync_protocol::DeviceId;
use sync_protocol::wire::ClockWarning;

/// `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusOut {
    /// Whether a device token is held.
    pub logged_in: bool,
    /// Server URL.
    pub server: Option<String>,
    /// Username.
    pub user: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// This profile's device.
    pub device_id: Option<DeviceId>,
    /// The last time this profile became a new device because its history
    /// diverged from the server's (restored from a backup, or copied to
    /// another computer): the device it became, the one it was, and when.
    pub device_repaired: Option<NewDevice>,
    /// A new device this profile began becoming; the next sync finishes it.
    pub device_repair_underway: Option<NewDevice>,
    /// Ops waiting to be pushed.
    pub pending_ops: u64,
    /// Last successful sync (RFC 3339 UTC).
    pub last_sync: Option<String>,
    /// Pull cursor.
    pub cursor: u64,
    /// Unresolved conflicts.
    pub conflicts: u64,
    /// Unresolved problems.
    pub problems: u64,
    /// The server's last clock warning.
    pub clock_warning: Option<ClockWarning>,
    /// Profile directory.
    pub home: String,
}

/// Whether (and when) the profile's history diverged and was repaired.
fn restored(out: &StatusOut) -> Option<String> {
    if let Some(u) = &out.device_repair_underway {
        return Some(format!(
            "diverged from the server's history (was device {}); the next sync finishes registering this laptop as a new device",
            u.previous_device_id
        ));
    }
    out.device_repaired.as_ref().map(|r| {
        format!(
            "divergence repaired {}: this laptop became a new device (it was device {}, whose history it no longer shared after a restore or copy)",
            local_time(&r.at),
            r.previous_device_id
        )
    })
}

/// Run `status`.
pub fn run(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.config()?;
    let store = ctx.read_store()?;
    let (conflicts, problems) = store.issue_counts()?;
    let out = StatusOut {
        logged_in: cfg.as_ref().is_some_and(|c| c.token.is_some()),
        server: cfg.as_ref().map(|c| c.server.clone()),
        user: cfg.as_ref().map(|c| c.user.username.clone()),
        role: cfg.as_ref().map(|c| c.user.role.to_string()),
        device_id: cfg.as_ref().map(|c| c.device_id),
        device_repaired: store
            .meta(key::DEVICE_REPAIRED)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        device_repair_underway: store.new_device_underway()?,
        pending_ops: store.pending()?,
        last_sync: store.meta(key::LAST_SYNC)?,
        cursor: store.cursor()?,
        conflicts,
        problems,
        clock_warning: store
            .meta(key::CLOCK_WARNING)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        home: ctx.profile.dir().display().to_string(),
    };
    if ctx.printer.json {
        return ctx.printer.json(&out);
    }
    let p = &ctx.printer;
    let login = match (&out.user, out.logged_in) {
        (Some(u), true) => format!("{u} ({})", out.role.clone().unwrap_or_default()),
        (Some(u), false) => format!("{u} (logged out)"),
        (None, _) => "not logged in".to_owned(),
    };
    let mut pairs = vec![
        ("user", login),
        ("server", out.server.clone().unwrap_or_else(|| "-".into())),
        (
            "device",
            out.device_id.map_or_else(|| "-".into(), |d| d.to_string()),
        ),
        ("pending", plural(out.pending_ops, "change", "changes")),
        (
            "last sync",
            out.last_sync
                .as_deref()
                .map_or_else(|| "never".into(), local_time),
        ),
        ("conflicts", out.conflicts.to_string()),
        ("problems", out.problems.to_string()),
        ("profile", out.home.clone()),
    ];
    if let Some(r) = restored(&out) {
        pairs.insert(3, ("restored", r));
    }
    p.pairs(&pairs)?;
    if let Some(w) = out.clock_warning {
        p.say(&format!(
            "{}: the server reported this computer's clock {} s ahead (limit {} s); fix the system clock",
            p.err_style(Style::Yellow, "clock"),
            w.ahead_ms / 1000,
            w.limit_ms / 1000
        ));
    }
    if out.problems > 0 {
        p.say("See what the server refused: fieldsync problems list");
    }
    if out.conflicts > 0 {
        p.say("See where your changes lost: fieldsync conflicts list");
    }
    Ok(())
}
