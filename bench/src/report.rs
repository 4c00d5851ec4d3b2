//! The HQ scorecard figure: a quarter of field work (by default 1,000,000
//! visits, 100,000 feedback entries and 2,000 reps) is written into a fresh
//! SQLite data directory through the server's own push rules
//! (`fieldsync_server::reports::workload`), then the real server binary is
//! started on it and `GET /v1/reports/scorecard` is timed as the HQ admin
//! over HTTP. Seeding skips only HTTP: the records, their report facts and
//! the op log are what devices pushing the same ops would leave.

use crate::api::Api;
use crate::proc::{self, Bins, ServerProc, ServerStore};
use crate::results::{Check, Figure, Target};
use anyhow::{Context, Result, anyhow};
use chrono::{Datelike, Utc};
use serde_json::Value;
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

/// Seed, start the server, and time `runs` scorecard requests.
pub fn figure(
    bins: &Bins,
    sizes: ReportSizes,
    runs: usize,
    checks: &mut Vec<Check>,
) -> Result<Figure> {
    use fieldsync_server::reports::workload::{ScorecardWorkload, seed_scorecard_workload};
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
    let data = tempfile::tempdir().context("creating the server's data directory")?;
    let seeding = Instant::now();
    let workload_spec = ScorecardWorkload {
        teams: sizes.teams,
        reps: sizes.reps,
        customers_per_rep: sizes.customers_per_rep,
        visits: sizes.visits,
        feedback: sizes.feedback,
        sales: sizes.sales,
        period,
    };
    {
        let store =
            fieldsync_server::store::sqlite::SqliteStore::open(&data.path().join("server.db"))?;
        let now = Utc::now();
        fieldsync_server::accounts::bootstrap(
            &store,
            Some(proc::ADMIN_PASSWORD),
            fieldsync_server::config::HashCost::Standard,
            now,
        )
        .map_err(|e| anyhow!("bootstrapping the data directory: {e}"))?;
        seed_scorecard_workload(&store, &workload_spec, now)
            .map_err(|e| anyhow!("seeding the scorecard workload: {e}"))?;
    }
    let seeded_s = seeding.elapsed().as_secs_f64();
    eprintln!("report: seeded the workload in {seeded_s:.1} s");

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
            "{rows} rows of {} reps; {total_visits} visits in the totals, {want_visits} expected (amended visits count once); seeded in {seeded_s:.1} s",
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
