//! `fieldsync backup FILE` and `fieldsync restore FILE`: a profile (its
//! local store with the outbox, and its `config.json`) in one file.

use super::Ctx;
use crate::cli::{BackupArgs, RestoreArgs};
use crate::config::Config;
use crate::error::{Failure, fail_hint};
use crate::output::plural;
use crate::store::BackupFile;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// What `backup` and `restore` report (`--json`).
#[derive(Debug, Serialize)]
struct Report<'a> {
    /// The backup file.
    file: &'a Path,
    /// The profile directory.
    home: &'a Path,
    /// Size of the backup file in bytes.
    bytes: u64,
    /// Whose profile it is.
    user: &'a str,
    /// The server it syncs with.
    server: &'a str,
    /// Unsynced changes in the backup.
    pending_ops: u64,
}

/// Run `backup`.
pub fn backup(ctx: &Ctx, a: &BackupArgs) -> Result<()> {
    let (store, cfg) = ctx.store()?;
    if a.file.is_dir() {
        return fail_hint(
            format!("{} is a directory", a.file.display()),
            "name the file to write, e.g. fieldsync backup backups/fieldsync.db",
        );
    }
    if let Some(dir) = a.file.parent().filter(|p| !p.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return fail_hint(
            format!("the directory {} does not exist", dir.display()),
            "create it first, or name a file in an existing directory",
        );
    }
    let own_file = a.file.canonicalize().is_ok_and(|dest| {
        ctx.profile
            .profile_files()
            .iter()
            .any(|f| f.canonicalize().is_ok_and(|f| f == dest))
    });
    if own_file {
        return fail_hint(
            format!("{} is one of this profile's own files", a.file.display()),
            "write the backup to another file",
        );
    }
    let config_path = ctx.profile.config_path();
    let config = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let bytes = store.backup_to(&a.file, &config)?;
    let pending = BackupFile::open(&a.file)?.pending()?;
    let report = Report {
        file: &a.file,
        home: ctx.profile.dir(),
        bytes,
        user: &cfg.user.username,
        server: &cfg.server,
        pending_ops: pending,
    };
    if ctx.printer.json {
        return ctx.printer.json(&report);
    }
    ctx.printer.say(&format!(
        "Backed up the profile of {} ({}) to {} ({} KiB). It holds this laptop's login: keep it private.",
        cfg.user.username,
        plural(pending, "unsynced change", "unsynced changes"),
        a.file.display(),
        bytes.div_ceil(1024)
    ));
    ctx.printer.say(&format!(
        "Restore it into an empty profile directory with: fieldsync restore {} --home DIR",
        a.file.display()
    ));
    Ok(())
}

/// Run `restore`.
pub fn restore(ctx: &Ctx, a: &RestoreArgs) -> Result<()> {
    let file = BackupFile::open(&a.file)?;
    let cfg: Config = serde_json::from_str(&file.config).map_err(|e| {
        Failure::new(format!(
            "the profile settings in {} are damaged ({e})",
            a.file.display()
        ))
    })?;
    let home = ctx.profile.dir();
    // One restore at a time, and no sync on a half-restored profile.
    let _no_sync = ctx.profile.lock_for_sync()?;
    let taken = ctx.profile.profile_files().iter().any(|p| p.exists());
    if taken {
        return fail_hint(
            format!(
                "{} already holds a profile; nothing was changed",
                home.display()
            ),
            format!(
                "restore into an empty directory: fieldsync restore {} --home NEW_DIR (or remove this profile first with fieldsync logout --wipe)",
                a.file.display()
            ),
        );
    }
    file.restore_store(&ctx.profile)?;
    ctx.profile.save(&cfg)?;
    let pending = file.pending()?;
    let report = Report {
        file: &a.file,
        home,
        bytes: std::fs::metadata(&a.file)?.len(),
        user: &cfg.user.username,
        server: &cfg.server,
        pending_ops: pending,
    };
    if ctx.printer.json {
        return ctx.printer.json(&report);
    }
    ctx.printer.say(&format!(
        "Restored the profile of {} on {} into {} ({}).",
        cfg.user.username,
        cfg.server,
        home.display(),
        plural(pending, "unsynced change", "unsynced changes")
    ));
    ctx.printer
        .say("Next: fieldsync sync (changes the server already has are not applied twice; if the profile synced after this backup, this laptop becomes a device of its own)");
    Ok(())
}
