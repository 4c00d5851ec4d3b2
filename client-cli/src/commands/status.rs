//! `fieldsync status`: what is waiting, when we last synced, what went wrong.

use super::Ctx;
use crate::output::{Style, local_time, plural};
use crate::store::key;
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
    p.pairs(&[
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
    ])?;
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
