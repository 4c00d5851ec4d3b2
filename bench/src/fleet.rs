//! The fleet: many simulated laptops (reps and their supervisors, in
//! teams), each pushing a batch of visits and pulling, a bounded number at
//! a time, over HTTP with the wire types. Measures the sync latency per
//! device and the server's peak memory, and checks that every op was
//! applied exactly once.

use crate::Sizes;
use crate::api::Api;
use crate::proc::{ADMIN_PASSWORD, Bins, ServerProc, ServerStore};
use crate::results::{Check, Figure, Target};
use crate::stats::percentile;
use crate::workload::{CUSTOMER_POS, Lcg, notes};
use anyhow::{Context, Result, bail};
use chrono::{Duration, Utc};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use sync_protocol::hlc::HlcClock;
use sync_protocol::schema::Role;
use sync_protocol::time::format_ts;
use sync_protocol::version::SCHEMA_VERSION;
use sync_protocol::wire::{Change, Outcome, PushRequest};
use sync_protocol::{DeviceId, Fields, Op, OpId, OpKind, RecordId};

const PASSWORD: &str = "fleet-member-password";
/// Records per pulled page (as the CLI asks).
const PULL_LIMIT: u32 = 2000;
/// Accounts created and logged in at a time (password hashing is CPU-bound).
const SETUP_THREADS: usize = 2;

/// One simulated laptop.
struct Laptop {
    api: Api,
    device: DeviceId,
    clock: HlcClock,
    seq: u64,
    cursor: u64,
    customer: RecordId,
    rng: Lcg,
    last_batch: Option<PushRequest>,
}

impl Laptop {
    fn op(&mut self, collection: &str, record_id: RecordId, fields: Fields) -> Op {
        self.seq += 1;
        let now = Utc::now();
        Op {
            op_id: OpId::new_v7(now),
            device_id: self.device,
            device_seq: self.seq,
            hlc: self.clock.now(now),
            schema_version: SCHEMA_VERSION,
            collection: collection.to_owned(),
            record_id,
            kind: OpKind::Create,
            fields,
            transition: None,
            base: None,
        }
    }

    fn visit(&mut self) -> Op {
        let start = Utc::now() - Duration::hours(3) - Duration::minutes(self.rng.below(600) as i64);
        let pos = json!({"lat": CUSTOMER_POS.0, "lon": CUSTOMER_POS.1});
        let mut f = Fields::new();
        f.insert("customer_id".into(), json!(self.customer));
        f.insert("started_at".into(), json!(format_ts(start)));
        f.insert(
            "ended_at".into(),
            json!(format_ts(start + Duration::minutes(40))),
        );
        f.insert("purpose".into(), json!("quarterly business review"));
        f.insert("outcome".into(), json!(notes(&mut self.rng, 200)));
        f.insert("check_in".into(), pos.clone());
        f.insert("check_out".into(), pos);
        self.op("visits", RecordId::new_v7(Utc::now()), f)
    }

    /// Push ops; every one must be applied. Returns the record ids.
    fn push(&mut self, ops: Vec<Op>) -> Result<Vec<RecordId>> {
        let ids: Vec<RecordId> = ops.iter().map(|o| o.record_id).collect();
        let req = PushRequest {
            ops,
            clock: self.clock.now(Utc::now()),
        };
        let resp = self.api.push_applied(&req)?;
        self.clock.observe(&resp.server_clock);
        self.last_batch = Some(req);
        Ok(ids)
    }

    /// Pull until caught up; returns records received.
    fn pull(&mut self) -> Result<u64> {
        let mut n = 0;
        loop {
            let page = self.api.pull(self.cursor, PULL_LIMIT)?;
            n += page.changes.len() as u64;
            self.clock.observe(&page.server_clock);
            if !page.more {
                self.cursor = page.cursor;
                return Ok(n);
            }
            if page.cursor <= self.cursor {
                bail!("the server said more follows but did not advance the cursor");
            }
            self.cursor = page.cursor;
        }
    }
}

/// Run `f` over `0..n` on `threads` threads; the first error wins.
fn parallel<F>(n: usize, threads: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Result<()> + Sync,
{
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    if let Err(e) = f(i) {
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(e);
                        }
                        next.store(n, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    match failure.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(()),
        Err(_) => bail!("a fleet thread panicked"),
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| anyhow::anyhow!("a fleet thread panicked"))
}

/// Figures: p99 sync latency and the server's peak memory; checks: exactly once.
///
/// With `instances` 2 (PostgreSQL only) a second server process runs on the
/// same database for the measured runs and every other laptop syncs with it;
/// the exactly-once check adds up both processes' counters and audits the
/// database through the API.
pub fn figures(
    bins: &Bins,
    store: &ServerStore,
    sizes: &Sizes,
    instances: usize,
    checks: &mut Vec<Check>,
) -> Result<Vec<Figure>> {
    let mut server = ServerProc::start(bins, store)?;
    let anon = Api::new(server.url())?;
    let (admin, _) = anon.login("admin", ADMIN_PASSWORD, "bench admin")?;
    let devices = sizes.fleet_devices;
    let teams = sizes.fleet_teams.max(1);
    let per_team = devices.div_ceil(teams);

    // Accounts: in each team the first member is the supervisor.
    for t in 0..teams {
        admin.create_team(&format!("team-{t}"))?;
    }
    let name = |i: usize| {
        let (t, k) = (i / per_team, i % per_team);
        if k == 0 {
            format!("sup-{t}")
        } else {
            format!("rep-{t}-{k}")
        }
    };
    let is_sup = |i: usize| i.is_multiple_of(per_team);
    for i in (0..devices).filter(|i| is_sup(*i)) {
        admin.create_user(
            &name(i),
            PASSWORD,
            Role::Supervisor,
            Some(&format!("team-{}", i / per_team)),
            None,
        )?;
    }
    parallel(devices, SETUP_THREADS, |i| {
        if !is_sup(i) {
            let t = i / per_team;
            admin.create_user(
                &name(i),
                PASSWORD,
                Role::Rep,
                Some(&format!("team-{t}")),
                Some(&format!("sup-{t}")),
            )?;
        }
        Ok(())
    })?;
    let slots: Vec<Mutex<Option<Laptop>>> = (0..devices).map(|_| Mutex::new(None)).collect();
    parallel(devices, SETUP_THREADS, |i| {
        let (api, login) = anon.login(&name(i), PASSWORD, &format!("laptop {i}"))?;
        let device = login.device_id;
        let mut clock = HlcClock::new(device);
        clock.observe(&login.server_clock);
        *lock(&slots[i])? = Some(Laptop {
            api,
            device,
            clock,
            seq: 0,
            cursor: 0,
            customer: RecordId::new_v7(Utc::now()),
            rng: Lcg::new(i as u64),
            last_batch: None,
        });
        Ok(())
    })?;
    let mut laptops: Vec<Laptop> = slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .ok()
                .flatten()
                .context("a laptop was not set up")
        })
        .collect::<Result<_>>()?;

    // Each rep owns one customer; a supervisor visits the first rep's.
    let mut customers = 0u64;
    for (i, l) in laptops.iter_mut().enumerate() {
        if is_sup(i) {
            continue;
        }
        let mut f = Fields::new();
        f.insert("name".into(), json!(format!("Customer of {}", name(i))));
        f.insert("created_at".into(), json!(format_ts(Utc::now())));
        f.insert(
            "location".into(),
            json!({"lat": CUSTOMER_POS.0, "lon": CUSTOMER_POS.1}),
        );
        let id = l.customer;
        let op = l.op("customers", id, f);
        l.push(vec![op])?;
        customers += 1;
    }
    for i in (0..devices).filter(|i| is_sup(*i)) {
        if let Some(rep) = laptops.get(i + 1).filter(|_| per_team > 1) {
            laptops[i].customer = rep.customer;
        }
    }
    let laptops: Vec<Mutex<Laptop>> = laptops.into_iter().map(Mutex::new).collect();

    // Each laptop's first sync pulls everything in its scope (the user and
    // team directory, its team's records): a device does this once, right
    // after login. It is timed on its own; the measured runs below are the
    // everyday syncs that follow it.
    let bootstrap_ms: Mutex<Vec<f64>> = Mutex::new(Vec::with_capacity(devices));
    let bootstrap_records = AtomicUsize::new(0);
    parallel(devices, sizes.fleet_concurrency, |i| {
        let mut l = lock(&laptops[i])?;
        let start = Instant::now();
        let n = l.pull().with_context(|| format!("laptop {i} first pull"))?;
        lock(&bootstrap_ms)?.push(start.elapsed().as_secs_f64() * 1000.0);
        bootstrap_records.fetch_add(n as usize, Ordering::Relaxed);
        Ok(())
    })?;
    let bootstrap_ms = bootstrap_ms
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let bootstrap_records = bootstrap_records.into_inner();

    // The measured runs, on a fresh server process: the login storm of the
    // set-up (password hashing) is measured separately.
    let setup_peak = server.peak_mib()?;
    let applied_in_setup = counter(&admin.get_text("/metrics")?, "applied");
    server.restart()?;
    let second = if instances > 1 {
        Some(
            server
                .second_instance()?
                .context("two server instances need a PostgreSQL database")?,
        )
    } else {
        None
    };
    let admin = admin.reconnect()?;
    let anon = anon.reconnect()?;
    for (i, l) in laptops.iter().enumerate() {
        let mut l = lock(l)?;
        l.api = match &second {
            Some(s) if i % 2 == 1 => l.api.at(s.url())?,
            _ => l.api.reconnect()?,
        };
    }
    let expected: Mutex<HashSet<RecordId>> = Mutex::new(HashSet::new());
    let mut p99s = Vec::new();
    let mut p50s = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..sizes.runs {
        let latencies: Mutex<Vec<f64>> = Mutex::new(Vec::with_capacity(devices));
        parallel(devices, sizes.fleet_concurrency, |i| {
            let mut l = lock(&laptops[i])?;
            let ops: Vec<Op> = (0..sizes.fleet_ops).map(|_| l.visit()).collect();
            let start = Instant::now();
            let ids = l.push(ops).with_context(|| format!("laptop {i} push"))?;
            l.pull().with_context(|| format!("laptop {i} pull"))?;
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            lock(&latencies)?.push(ms);
            lock(&expected)?.extend(ids);
            Ok(())
        })?;
        let lat = latencies
            .into_inner()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        p99s.push(percentile(&lat, 99.0));
        p50s.push(percentile(&lat, 50.0));
        let mut peak = server.peak_mib()?;
        if let Some(s) = &second {
            peak = peak.max(s.peak_mib()?);
        }
        peaks.push(peak);
    }

    // Exactly once: replaying every laptop's last batch (a lost answer)
    // returns the stored outcomes and applies nothing new ...
    let replay_ok = AtomicUsize::new(0);
    parallel(devices, sizes.fleet_concurrency, |i| {
        let mut l = lock(&laptops[i])?;
        // On a new connection: the server has closed the idle one from the
        // sync by now, and a request racing that close fails with
        // "connection closed before message completed".
        l.api = l.api.reconnect()?;
        if let Some(req) = &l.last_batch {
            let resp = l.api.push(req)?;
            let same =
                resp.outcomes.len() == req.ops.len()
                    && resp.outcomes.iter().zip(&req.ops).all(|(o, op)| {
                        o.op_id == op.op_id && matches!(o.outcome, Outcome::Applied)
                    });
            if same {
                replay_ok.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    })?;
    let expected = expected
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let visits = expected.len() as u64;
    let total_ops = visits + customers;
    // ... the server counted each op applied once ...
    let mut metrics = vec![admin.get_text("/metrics")?];
    if let Some(s) = &second {
        metrics.push(admin.at(s.url())?.get_text("/metrics")?);
    }
    let sum = |outcome: &str| {
        metrics
            .iter()
            .map(|m| counter(m, outcome))
            .sum::<Option<u64>>()
    };
    let applied = sum("applied")
        .zip(applied_in_setup)
        .map(|(runs, setup)| runs + setup);
    let replayed = sum("replayed");
    // ... and an administrator pulling everything finds each visit once.
    let (admin_dev, _) = anon.login("admin", ADMIN_PASSWORD, "bench auditor")?;
    let mut seen = HashSet::new();
    let mut dupes = 0u64;
    let mut cursor = 0;
    loop {
        let page = admin_dev.pull(cursor, 10_000)?;
        for c in &page.changes {
            if let Change::Upsert { record, .. } = c
                && record.collection == "visits"
                && !seen.insert(record.id)
            {
                dupes += 1;
            }
        }
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    let replays = replay_ok.into_inner();
    let pushed_visits = (devices * sizes.fleet_ops * sizes.runs) as u64;
    let passed = visits == pushed_visits
        && applied == Some(total_ops)
        && seen == expected
        && dupes == 0
        && replays == devices
        && replayed == Some((devices * sizes.fleet_ops) as u64);
    checks.push(Check::new(
        "fleet: every op applied exactly once",
        passed,
        format!(
            "{pushed_visits} visits pushed, {visits} distinct; server applied {} ops of {total_ops} sent; {} visits on the server, {dupes} duplicates; {replays}/{devices} replayed batches answered from stored outcomes ({} ops replayed)",
            applied.map_or_else(|| "?".to_owned(), |a| a.to_string()),
            seen.len(),
            replayed.map_or_else(|| "?".to_owned(), |a| a.to_string()),
        ),
    ));
    let spread_over = if second.is_some() {
        ", every other laptop on a second server process"
    } else {
        ""
    };
    let workload = format!(
        "{devices} laptops ({teams} teams, a supervisor in each), each already past its first sync, each push {} visits and pull, {} at a time{spread_over}",
        sizes.fleet_ops, sizes.fleet_concurrency
    );
    Ok(vec![
        Figure::measured(
            "fleet p99 sync",
            &workload,
            "ms",
            p99s,
            Some(Target::at_most(250.0)),
        ),
        Figure::measured("fleet p50 sync", &workload, "ms", p50s, None),
        Figure::measured(
            "fleet first sync p99",
            &format!(
                "each laptop's first pull after login, {} at a time ({bootstrap_records} records in all, {:.0} per laptop): the directory and its team's records; part of the set-up, before the measured runs",
                sizes.fleet_concurrency,
                bootstrap_records as f64 / devices.max(1) as f64
            ),
            "ms",
            vec![percentile(&bootstrap_ms, 99.0)],
            None,
        ),
        Figure::measured(
            "fleet server peak memory",
            "peak resident memory (VmHWM) of the server (the larger of the two processes, with two) during the fleet sync runs (read after each run; the server is restarted after account set-up)",
            "MiB",
            peaks,
            Some(Target::at_most(200.0)),
        ),
        Figure::measured(
            "fleet set-up server peak memory",
            &format!(
                "peak resident memory (VmHWM) of the server while {devices} accounts are created and log in, {SETUP_THREADS} at a time"
            ),
            "MiB",
            vec![setup_peak],
            None,
        ),
    ])
}

/// `fieldsync_ops_total{outcome="…"}` from the Prometheus text.
fn counter(text: &str, outcome: &str) -> Option<u64> {
    let label = format!("fieldsync_ops_total{{outcome=\"{outcome}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&label))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}
