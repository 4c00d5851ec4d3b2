//! The fieldsync benchmark: runs the real `fieldsync-server` on a loopback
//! port with a temporary data directory and the real `fieldsync` binary
//! with its own profiles, creates its own data, and measures the figures
//! of `BENCHMARKS.md` — each the median of several runs, with min and max —
//! against their targets, the SQLite limit and the peers. It asserts
//! nothing about time; it does check that every op arrived exactly once.

pub mod api;
pub mod device;
pub mod edits;
pub mod fleet;
pub mod limit;
pub mod proc;
pub mod report;
pub mod restore;
pub mod results;
pub mod stats;
pub mod workload;

use anyhow::Result;
use proc::{Bins, ServerStore};
use results::{Check, Figure, Machine, Results};
use serde::{Deserialize, Serialize};

/// Workload sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// Runs per figure.
    pub runs: usize,
    /// Visits on the one laptop (push, pull, incremental, CLI write, limit).
    pub visits: usize,
    /// `visit log` processes timed.
    pub cli_writes: usize,
    /// Simulated laptops in the fleet.
    pub fleet_devices: usize,
    /// Teams they belong to.
    pub fleet_teams: usize,
    /// Ops each laptop pushes per run.
    pub fleet_ops: usize,
    /// Laptops syncing at a time.
    pub fleet_concurrency: usize,
}

impl Sizes {
    /// The sizes of the issue.
    pub const FULL: Sizes = Sizes {
        runs: 3,
        visits: 100_000,
        cli_writes: 21,
        fleet_devices: 1_000,
        fleet_teams: 50,
        fleet_ops: 20,
        fleet_concurrency: 64,
    };

    /// Small sizes that exercise every path in well under a minute.
    pub const QUICK: Sizes = Sizes {
        runs: 3,
        visits: 300,
        cli_writes: 3,
        fleet_devices: 24,
        fleet_teams: 3,
        fleet_ops: 5,
        fleet_concurrency: 8,
    };
}

/// Which figures to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Everything.
    All,
    /// Push, bootstrap pull, incremental sync, CLI write, edit push and the limit.
    Device,
    /// Edit push only.
    Edits,
    /// The fleet.
    Fleet,
    /// The fleet on PostgreSQL only.
    FleetPostgres,
    /// The SQLite limit only.
    Limit,
    /// The HQ scorecard report.
    Report,
    /// The recovery sync of a laptop restored from a backup.
    Restore,
}

/// Measure `selection` and return the results (every figure and check):
/// on SQLite, then — when `postgres` (an administrator URL) is given — push,
/// bootstrap pull and the fleet on PostgreSQL with one and with two server
/// instances, each server start on a fresh database. An unreachable
/// PostgreSQL server gives a "skipped" figure, not an error.
pub fn run(
    bins: &Bins,
    postgres: Option<&str>,
    sizes: Sizes,
    quick: bool,
    selection: Selection,
    report_data: Option<&std::path::Path>,
) -> Result<Results> {
    let store = &ServerStore::Sqlite;
    let date = sync_protocol::time::format_ts(chrono::Utc::now());
    let mut figures = Vec::new();
    let mut checks = Vec::new();
    let all = selection == Selection::All;
    if all || selection == Selection::Device {
        figures.extend(device::figures(bins, store, &sizes, &mut checks)?);
    }
    if all || selection == Selection::Device || selection == Selection::Edits {
        figures.extend(edits::figures(bins, store, &sizes, &mut checks)?);
    }
    if all || selection == Selection::Restore {
        figures.extend(restore::figures(bins, store, &sizes, &mut checks)?);
    }
    if all || selection == Selection::Device || selection == Selection::Limit {
        figures.push(limit_figure(&sizes)?);
    }
    if all || selection == Selection::Fleet {
        figures.extend(fleet::figures(bins, store, &sizes, 1, &mut checks)?);
    }
    let on_postgres = all
        || selection == Selection::Device
        || selection == Selection::Fleet
        || selection == Selection::FleetPostgres;
    if let Some(admin) = postgres.filter(|_| on_postgres) {
        if proc::postgres_reachable(admin) {
            figures.extend(postgres_figures(
                bins,
                admin,
                &sizes,
                selection,
                &mut checks,
            )?);
        } else {
            figures.push(Figure::unavailable(
                "postgres",
                "push, bootstrap pull and the fleet on PostgreSQL, one and two server instances",
                "",
                None,
                &format!("skipped: PostgreSQL not reachable at {admin}"),
            ));
        }
    }
    if all || selection == Selection::Report {
        let report_sizes = if quick {
            report::ReportSizes::QUICK
        } else {
            report::ReportSizes::FULL
        };
        figures.push(report::figure(
            bins,
            report_sizes,
            sizes.runs,
            report_data,
            &mut checks,
        )?);
    }
    let mut results = Results {
        date,
        machine: Machine::describe(),
        quick,
        server_store: if postgres.is_some() {
            "sqlite+postgres".to_owned()
        } else {
            store.label().to_owned()
        },
        sizes,
        figures,
        push_over_limit: None,
        peers: Vec::new(),
        checks,
    };
    results.compute_ratios();
    Ok(results)
}

/// Label figures measured on PostgreSQL with the instance count.
fn labelled(
    figures: Vec<Figure>,
    instances: usize,
    checks: &mut [Check],
    from: usize,
) -> Vec<Figure> {
    for c in &mut checks[from..] {
        c.name = format!("postgres ×{instances} {}", c.name);
    }
    figures
        .into_iter()
        .map(|mut f| {
            f.name = format!("postgres ×{instances} {}", f.name);
            f
        })
        .collect()
}

fn postgres_figures(
    bins: &Bins,
    admin: &str,
    sizes: &Sizes,
    selection: Selection,
    checks: &mut Vec<Check>,
) -> Result<Vec<Figure>> {
    let store = ServerStore::Postgres(admin.to_owned());
    let all = selection == Selection::All;
    let mut figures = Vec::new();
    if all || selection == Selection::Device {
        let from = checks.len();
        let device = device::figures(bins, &store, sizes, checks)?
            .into_iter()
            .filter(|f| f.name == "push" || f.name == "bootstrap pull")
            .collect();
        figures.extend(labelled(device, 1, checks, from));
        let from = checks.len();
        let device = device::two_instances(bins, &store, sizes, checks)?;
        figures.extend(labelled(device, 2, checks, from));
    }
    if all || selection == Selection::Fleet || selection == Selection::FleetPostgres {
        for instances in [1, 2] {
            let from = checks.len();
            let fleet = fleet::figures(bins, &store, sizes, instances, checks)?;
            figures.extend(labelled(fleet, instances, checks, from));
        }
    }
    Ok(figures)
}

fn limit_figure(sizes: &Sizes) -> Result<Figure> {
    let rows = workload::visits(sizes.visits, chrono::Utc::now(), 1);
    let runs = (0..sizes.runs)
        .map(|_| limit::insert_rate(&rows))
        .collect::<Result<Vec<_>>>()?;
    Ok(Figure::measured(
        "limit",
        &format!(
            "the same {} visits inserted straight into a SQLite file (WAL, synchronous=FULL), one transaction, one prepared statement",
            sizes.visits
        ),
        "records/s",
        runs,
        None,
    ))
}

/// Whether every check passed.
pub fn checks_passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.passed)
}
