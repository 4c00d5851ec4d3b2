//! The figures of one laptop, measured with the real `fieldsync` binary:
//! push, bootstrap pull, incremental sync and CLI write.

use crate::Sizes;
use crate::api::Api;
use crate::proc::{ADMIN_PASSWORD, Bins, Device, ServerProc, ServerStore, Timed};
use crate::results::{Check, Figure, Target};
use crate::workload::{self, CUSTOMER, CUSTOMER_POS};
use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use serde_json::Value;
use std::time::Instant;
use sync_protocol::schema::Role;
use sync_protocol::time::format_ts;

pub(crate) const REP: &str = "bench.rep";
/// The reps of [`two_instances`].
const REPS: [&str; 2] = [REP, "bench.rep2"];
const REP_PASSWORD: &str = "bench-rep-password";

/// A server with one rep whose laptop holds (and has synced) the visits.
struct Seeded {
    server: ServerProc,
    device: Device,
}

fn summary(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A fresh server with a team and a rep, and the rep's laptop with the
/// customer and `rows` imported (not yet synced).
pub(crate) fn prepare(
    bins: &Bins,
    store: &ServerStore,
    file: &std::path::Path,
) -> Result<(ServerProc, Device)> {
    let server = ServerProc::start(bins, store)?;
    let (admin, _) = Api::new(server.url())?.login("admin", ADMIN_PASSWORD, "bench admin")?;
    admin.create_team("bench")?;
    admin.create_user(REP, REP_PASSWORD, Role::Rep, Some("bench"), None)?;
    let device = laptop(bins, server.url(), REP, file)?;
    Ok((server, device))
}

/// A laptop of `rep` logged in at `server`, with its customer and the
/// visits of `file` imported (not yet synced).
pub(crate) fn laptop(
    bins: &Bins,
    server: &str,
    rep: &str,
    file: &std::path::Path,
) -> Result<Device> {
    let device = Device::new(bins)?;
    device.login(server, rep, REP_PASSWORD)?;
    device.ok(&[
        "customer",
        "add",
        CUSTOMER,
        "--lat",
        &CUSTOMER_POS.0.to_string(),
        "--lon",
        &CUSTOMER_POS.1.to_string(),
    ])?;
    device.ok(&["visit", "import", &file.to_string_lossy()])?;
    Ok(device)
}

/// An import file in `dir` with `n` visits of the workload (`seed`).
pub(crate) fn visits_file(
    dir: &std::path::Path,
    n: usize,
    seed: u64,
) -> Result<std::path::PathBuf> {
    let file = dir.join(format!("visits-{seed}.jsonl"));
    let rows = workload::visits(n, Utc::now(), seed);
    std::fs::write(&file, workload::import_file(&rows)).context("writing the import file")?;
    Ok(file)
}

/// Run `fieldsync ARGS` on every laptop at once; the wall time from the
/// first start to the last exit, and each run.
fn together(devices: &[Device], args: &[&str]) -> Result<(f64, Vec<Timed>)> {
    let start = Instant::now();
    let runs = std::thread::scope(|s| {
        let handles: Vec<_> = devices
            .iter()
            .map(|d| s.spawn(move || d.timed(args)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a laptop thread panicked"))?
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok((start.elapsed().as_secs_f64(), runs))
}

/// Push and bootstrap pull with two server instances on one PostgreSQL
/// database. Two reps' laptops, each with half of the visits, run
/// `fieldsync sync` at the same time, one with each instance; then a fresh
/// laptop of each rep runs its first sync, again both at once and each with
/// the instance its rep did not push to. Figures: all records over the wall
/// time of the pair, comparable with one laptop moving them all alone.
pub fn two_instances(
    bins: &Bins,
    store: &ServerStore,
    sizes: &Sizes,
    checks: &mut Vec<Check>,
) -> Result<Vec<Figure>> {
    let n = sizes.visits;
    let halves = [n / 2, n - n / 2];
    let dir = tempfile::tempdir()?;
    let files = (0..2)
        .map(|k| visits_file(dir.path(), halves[k], k as u64 + 1))
        .collect::<Result<Vec<_>>>()?;
    let mut push_runs = Vec::new();
    let mut pull_runs = Vec::new();
    let (mut push_ok, mut pull_ok) = (true, true);
    let (mut push_detail, mut pull_detail) = (String::new(), String::new());
    for _ in 0..sizes.runs {
        let server = ServerProc::start(bins, store)?;
        let second = server
            .second_instance()?
            .context("two server instances need a PostgreSQL database")?;
        let urls = [server.url(), second.url()];
        let (admin, _) = Api::new(server.url())?.login("admin", ADMIN_PASSWORD, "bench admin")?;
        admin.create_team("bench")?;
        for rep in REPS {
            admin.create_user(rep, REP_PASSWORD, Role::Rep, Some("bench"), None)?;
        }
        let laptops = (0..2)
            .map(|k| laptop(bins, urls[k], REPS[k], &files[k]))
            .collect::<Result<Vec<_>>>()?;
        let (wall, runs) = together(&laptops, &["sync", "--json"])?;
        let mut applied = Vec::new();
        for (k, run) in runs.iter().enumerate() {
            let out: Value =
                serde_json::from_slice(&run.output.stdout).context("sync --json output")?;
            let expected = halves[k] as u64 + 1;
            push_ok &= summary(&out, "applied") == expected && summary(&out, "pending_ops") == 0;
            applied.push(format!(
                "{} of {expected} ops applied, {} pending",
                summary(&out, "applied"),
                summary(&out, "pending_ops")
            ));
        }
        push_detail = format!("{} (instance 1); {} (instance 2)", applied[0], applied[1]);
        push_runs.push(n as f64 / wall);

        let fresh = (0..2)
            .map(|k| {
                let d = Device::new(bins)?;
                d.login(urls[1 - k], REPS[k], REP_PASSWORD)?;
                Ok(d)
            })
            .collect::<Result<Vec<_>>>()?;
        let (wall, runs) = together(&fresh, &["sync", "--json"])?;
        let mut pulled = Vec::new();
        for (k, run) in runs.iter().enumerate() {
            let out: Value =
                serde_json::from_slice(&run.output.stdout).context("sync --json output")?;
            let got = summary(&out, "pulled");
            pull_ok &= got > halves[k] as u64;
            pulled.push(got);
        }
        pull_detail = format!(
            "{} and {} records pulled for {} and {} visits and a customer each, each from the instance its rep did not push to",
            pulled[0], pulled[1], halves[0], halves[1]
        );
        pull_runs.push(pulled.iter().sum::<u64>() as f64 / wall);
    }
    checks.push(Check::new(
        "push: every imported visit applied",
        push_ok,
        push_detail,
    ));
    checks.push(Check::new(
        "bootstrap pull: every visit arrived",
        pull_ok,
        pull_detail,
    ));
    Ok(vec![
        Figure::measured(
            "push",
            &format!(
                "two reps' laptops with {} and {} imported visits run `fieldsync sync` at the same time, one with each instance (all {n} visits over the wall time of the pair)",
                halves[0], halves[1]
            ),
            "records/s",
            push_runs,
            Some(Target::at_least(50_000.0)),
        ),
        Figure::measured(
            "bootstrap pull",
            "a fresh laptop of each rep runs its first `fieldsync sync` at the same time, each with the other instance (all records over the wall time of the pair)",
            "records/s",
            pull_runs,
            Some(Target::at_least(60_000.0)),
        ),
    ])
}

/// Push, bootstrap pull, incremental sync and CLI write.
pub fn figures(
    bins: &Bins,
    store: &ServerStore,
    sizes: &Sizes,
    checks: &mut Vec<Check>,
) -> Result<Vec<Figure>> {
    let n = sizes.visits;
    let dir = tempfile::tempdir()?;
    let file = visits_file(dir.path(), n, 1)?;

    // Push: a fresh server and laptop per run.
    let mut push_runs = Vec::new();
    let mut push_ok = true;
    let mut push_detail = String::new();
    let mut seeded = None;
    for _ in 0..sizes.runs {
        let (server, device) = prepare(bins, store, &file)?;
        let t = device.timed(&["sync", "--json"])?;
        let out: Value = serde_json::from_slice(&t.output.stdout).context("sync --json output")?;
        let expected = n as u64 + 1;
        let applied = summary(&out, "applied");
        push_ok &= applied == expected && summary(&out, "pending_ops") == 0;
        push_detail = format!(
            "{applied} of {expected} ops applied, {} pending",
            summary(&out, "pending_ops")
        );
        push_runs.push(n as f64 / t.wall.as_secs_f64());
        seeded = Some(Seeded { server, device });
    }
    checks.push(Check::new(
        "push: every imported visit applied",
        push_ok,
        push_detail,
    ));
    let seeded = seeded.context("no push run")?;

    // Bootstrap pull: fresh laptops of the same rep.
    let mut pull_runs = Vec::new();
    let mut pull_mem = Vec::new();
    let mut pull_ok = true;
    let mut pull_detail = String::new();
    for _ in 0..sizes.runs {
        let fresh = Device::new(bins)?;
        fresh.login(seeded.server.url(), REP, REP_PASSWORD)?;
        let t = fresh.timed(&["sync", "--json"])?;
        let out: Value = serde_json::from_slice(&t.output.stdout).context("sync --json output")?;
        let pulled = summary(&out, "pulled");
        pull_ok &= pulled > n as u64;
        pull_detail = format!("{pulled} records pulled for {n} visits and 1 customer");
        pull_runs.push(pulled as f64 / t.wall.as_secs_f64());
        pull_mem.push(t.peak_mib);
    }
    checks.push(Check::new(
        "bootstrap pull: every visit arrived",
        pull_ok,
        pull_detail,
    ));

    // Incremental: the synced laptop adds 10 visits and syncs.
    let mut inc_runs = Vec::new();
    let mut inc_ok = true;
    for run in 0..sizes.runs {
        for i in 0..10 {
            log_visit(&seeded.device, run * 10 + i)?;
        }
        let wall = seeded.device.time_only(&["sync"])?;
        inc_ok &= seeded
            .device
            .json(&["status"])?
            .get("pending_ops")
            .and_then(Value::as_u64)
            == Some(0);
        inc_runs.push(wall.as_secs_f64() * 1000.0);
    }
    checks.push(Check::new(
        "incremental sync: outbox empty after each sync",
        inc_ok,
        format!("{} runs of 10 visits", sizes.runs),
    ));

    // CLI write: one `visit log` process with the visits in the store.
    let mut write_runs = Vec::new();
    for i in 0..sizes.cli_writes {
        let args = log_args(1000 + i);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        write_runs.push(seeded.device.time_only(&refs)?.as_secs_f64() * 1000.0);
    }

    Ok(vec![
        Figure::measured(
            "push",
            &format!(
                "one laptop with {n} imported visits runs `fieldsync sync` against an empty server (whole process: push, then pull back)"
            ),
            "records/s",
            push_runs,
            Some(Target::at_least(50_000.0)),
        ),
        Figure::measured(
            "bootstrap pull",
            &format!("a fresh laptop of the same rep runs its first `fieldsync sync` ({n} visits)"),
            "records/s",
            pull_runs,
            Some(Target::at_least(60_000.0)),
        ),
        Figure::measured(
            "bootstrap pull peak memory",
            "peak resident memory (VmHWM) of that `fieldsync sync` process",
            "MiB",
            pull_mem,
            Some(Target::at_most(150.0)),
        ),
        Figure::measured(
            "incremental sync",
            &format!("a laptop with {n} synced visits adds 10 and runs `fieldsync sync`"),
            "ms",
            inc_runs,
            Some(Target::at_most(50.0)),
        ),
        Figure::measured(
            "CLI write",
            &format!(
                "`fieldsync visit log …` as a whole process with {n} visits in the local store"
            ),
            "ms",
            write_runs,
            Some(Target::at_most(10.0)),
        ),
    ])
}

fn log_args(i: usize) -> Vec<String> {
    let at = Utc::now() - Duration::hours(2) - Duration::seconds(i as i64);
    vec![
        "visit".into(),
        "log".into(),
        CUSTOMER.into(),
        "--at".into(),
        format_ts(at),
        "--minutes".into(),
        "30".into(),
        "--purpose".into(),
        "follow-up".into(),
        "--outcome".into(),
        "agreed to a pilot of the new plan; send the quote by Friday".into(),
        "--lat".into(),
        CUSTOMER_POS.0.to_string(),
        "--lon".into(),
        CUSTOMER_POS.1.to_string(),
    ]
}

fn log_visit(device: &Device, i: usize) -> Result<()> {
    let args = log_args(i);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    device.ok(&refs).map(drop)
}
