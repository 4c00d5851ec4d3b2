//! The HQ scorecard figure: a quarter of field work (by default 1,000,000
//! visits, 100,000 feedback entries and 2,000 reps) is written into a fresh
//! SQLite data directory through the server's own push rules
//! (`fieldsync_server::reports::workload`), then the real server binary is
//! started on it and `GET /v1/reports/scorecard` is timed as the HQ admin
//! over HTTP. Seeding skips only HTTP: the records, their report facts and
//! the op log are what devices pushing the same ops would leave.

use crate::api::Api;
use crate::proc::{self, Bins, DataDir, ServerProc, ServerStore};
use crate::results::{Check, Figure, Target};
use anyhow::{Context, Result, anyhow};
use chrono::{Datelike, Utc};
use fieldsync_server::reports::workload::{ScorecardWorkload, seed_scorecard_workload};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;
use sync_protocol::metrics::Period;

/// The generated workload's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportSizes {
    /// Teams.
    pub teams: usize,
    /// Reps.
    pub reps: usize,
    /// Customers per rep.
    pub customers_per_rep: usize,
    /// Visits.
    pub visits: usize,
    /// Feedback entries.
    pub feedback: usize,
    /// Sales.
    pub sales: usize,
}

impl ReportSizes {
    /// The sizes of the issue.
    pub const FULL: ReportSizes = ReportSizes {
        teams: 100,
        reps: 2_000,
        customers_per_rep: 25,
        visits: 1_000_000,
        feedback: 100_000,
        sales: 20_000,
    };

    /// Small sizes that exercise the same path in seconds.
    pub const QUICK: ReportSizes = ReportSizes {
        teams: 4,
        reps: 20,
        customers_per_rep: 5,
        visits: 2_000,
        feedback: 200,
        sales: 100,
    };
}

/// The quarter containing today (the workload's visits fall in it, up to now).
fn this_quarter() -> Result<Period> {
    let today = Utc::now().date_naive();
    let q = (today.month() - 1) / 3 + 1;
    Period::parse(&format!("{}-Q{q}", today.year())).map_err(|e| anyhow!("{e}"))
}

/// The file in a kept data directory naming the workload seeded there.
const MARKER: &str = "fieldsync-bench-workload.txt";

/// Seed the workload into a new `server.db` in `dir`; the seconds it took.
fn seed(dir: &Path, spec: &ScorecardWorkload) -> Result<f64> {
    let seeding = Instant::now();
    let store = fieldsync_server::store::sqlite::SqliteStore::open(&dir.join("server.db"))?;
    let now = Utc::now();
    fieldsync_server::accounts::bootstrap(
        &store,
        Some(proc::ADMIN_PASSWORD),
        fieldsync_server::config::HashCost::Standard,
        now,
    )
    .map_err(|e| anyhow!("bootstrapping the data directory: {e}"))?;
    seed_scorecard_workload(&store, spec, now)
        .map_err(|e| anyhow!("seeding the scorecard workload: {e}"))?;
    let seeded_s = seeding.elapsed().as_secs_f64();
    eprintln!("report: seeded the workload in {seeded_s:.1} s");
    Ok(seeded_s)
}

/// Seed (into `keep`, when given and not seeded already with the same
/// workload; else into a temporary directory), start the server, and time
/// `runs` scorecard requests.
pub fn figure(
    bins: &Bins,
    sizes: ReportSizes,
    runs: usize,
    keep: Option<&Path>,
    checks: &mut Vec<Check>,
) -> Result<Figure> {
    let period = this_quarter()?;
    let workload = format!(
        "HQ scorecard for {period} over {} visits, {} feedback entries, {} sales, {} reps in {} teams, {} customers",
        sizes.visits,
        sizes.feedback,
        sizes.sales,
        sizes.reps,
        sizes.teams,
        sizes.reps * sizes.customers_per_rep
    );
    let workload_spec = ScorecardWorkload {
        teams: sizes.teams,
        reps: sizes.reps,
        customers_per_rep: sizes.customers_per_rep,
        visits: sizes.visits,
        feedback: sizes.feedback,
        sales: sizes.sales,
        period,
    };
    let (data, seeded) = match keep {
        None => {
            let dir = tempfile::tempdir().context("creating the server's data directory")?;
            let seeded = seed(dir.path(), &workload_spec)?;
            (DataDir::Fresh(dir), Some(seeded))
        }
        Some(dir) => {
            let marker = dir.join(MARKER);
            let seeded = if dir.join("server.db").exists() {
                let held = std::fs::read_to_string(&marker).unwrap_or_default();
                if held.trim() != workload {
                    return Err(anyhow!(
                        "{} holds another workload ({}); remove it or pick another directory",
                        dir.display(),
                        if held.is_empty() {
                            "unfinished seeding"
                        } else {
                            held.trim()
                        }
                    ));
                }
                eprintln!("report: reusing the workload seeded in {}", dir.display());
                None
            } else {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let seeded = seed(dir, &workload_spec)?;
                std::fs::write(&marker, format!("{workload}\n"))
                    .with_context(|| format!("writing {}", marker.display()))?;
                Some(seeded)
            };
            (DataDir::Kept(dir.to_owned()), seeded)
        }
    };
    let seeded_note = seeded.map_or_else(
        || "seeded earlier".to_owned(),
        |s| format!("seeded in {s:.1} s"),
    );

    let server = ServerProc::start_in(bins, &ServerStore::Sqlite, data)?;
    let (admin, _) = Api::new(server.url())?.login("admin", proc::ADMIN_PASSWORD, "bench admin")?;
    let path = format!("/v1/reports/scorecard?period={period}");
    let mut times = Vec::with_capacity(runs);
    let mut last = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        last = admin.get_text(&path)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let report: Value = serde_json::from_str(&last).context("scorecard JSON")?;
    let table = &report["tables"][0];
    let rows = table["rows"].as_array().map_or(0, Vec::len);
    let visits_col = table["columns"]
        .as_array()
        .and_then(|c| c.iter().position(|c| c == "visits"));
    let total_visits = visits_col
        .and_then(|i| table["totals"][i].as_f64())
        .unwrap_or(-1.0);
    let want_visits = (sizes.visits - workload_spec.amendments()) as f64;
    checks.push(Check::new(
        "report: one scorecard row per rep, every visit counted",
        rows == sizes.reps && (total_visits - want_visits).abs() < 0.5,
        format!(
            "{rows} rows of {} reps; {total_visits} visits in the totals, {want_visits} expected (amended visits count once); {seeded_note}",
            sizes.reps
        ),
    ));
    Ok(Figure::measured(
        "report",
        &workload,
        "ms",
        times,
        Some(Target::at_most(1000.0)),
    ))
}
