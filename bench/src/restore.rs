//! The recovery sync of a laptop restored from a backup: its history
//! diverged from the server's, and its first `fieldsync sync` registers it
//! as a new device, renumbers its pending changes and sends them. Against
//! an ordinary sync of as many pending changes on the same server.

use crate::Sizes;
use crate::device::{REP, laptop, prepare, visits_file};
use crate::proc::{Bins, Device, ServerStore};
use crate::results::{Check, Figure};
use anyhow::{Context, Result};
use serde_json::Value;

/// Pending changes on the restored laptop (fewer when the laptop's
/// workload is smaller, as with `--quick`).
pub const PENDING: usize = 1_000;

/// The number at `pointer` (e.g. `/new_device/sent`), 0 when absent.
fn count(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Recovery sync and an ordinary sync, [`PENDING`] changes each.
pub fn figures(
    bins: &Bins,
    store: &ServerStore,
    sizes: &Sizes,
    checks: &mut Vec<Check>,
) -> Result<Vec<Figure>> {
    let pending_n = PENDING.min(sizes.visits);
    let dir = tempfile::tempdir()?;
    let mut recovery = Vec::new();
    let mut ordinary = Vec::new();
    let (mut ok, mut detail) = (true, String::new());
    for run in 0..sizes.runs {
        let one = visits_file(dir.path(), 1, 100 + run as u64)?;
        let pending = visits_file(dir.path(), pending_n, 200 + run as u64)?;

        // Backed up after its first sync; the original syncs once more.
        let (server, original) = prepare(bins, store, &one)?;
        original.ok(&["sync"])?;
        let backup = dir.path().join(format!("backup-{run}.db"));
        original.ok(&["backup", &backup.to_string_lossy()])?;
        original.ok(&["visit", "import", &one.to_string_lossy()])?;
        original.ok(&["sync"])?;

        let restored = Device::new(bins)?;
        restored.ok(&["restore", &backup.to_string_lossy()])?;
        restored.ok(&["visit", "import", &pending.to_string_lossy()])?;
        let t = restored.timed(&["sync", "--json"])?;
        let out: Value = serde_json::from_slice(&t.output.stdout).context("sync --json output")?;
        let sent = count(&out, "/new_device/sent");
        let applied = count(&out, "/applied");
        ok &= sent == pending_n as u64
            && applied == pending_n as u64
            && count(&out, "/pending_ops") == 0;
        detail = format!("{sent} of {pending_n} sent under the new device, {applied} applied");
        recovery.push(t.wall.as_secs_f64() * 1000.0);

        // The same number of changes on a laptop whose history is whole.
        let other = laptop(bins, server.url(), REP, &pending)?;
        let wall = other.time_only(&["sync"])?;
        ordinary.push(wall.as_secs_f64() * 1000.0);
    }
    checks.push(Check::new(
        "recovery sync: every pending change applied once under the new device",
        ok,
        detail,
    ));
    Ok(vec![
        Figure::measured(
            "recovery sync",
            &format!(
                "a laptop restored from a backup the server has moved past runs `fieldsync sync` with {pending_n} pending visits (divergence, new device, renumbering, push, pull)"
            ),
            "ms",
            recovery,
            None,
        ),
        Figure::measured(
            "ordinary sync",
            &format!(
                "baseline: a laptop with a whole history runs `fieldsync sync` with {pending_n} pending visits and a customer, on the same server"
            ),
            "ms",
            ordinary,
            None,
        ),
    ])
}
