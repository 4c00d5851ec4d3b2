//! `fieldsync-bench`: measure fieldsync against its targets, the SQLite
//! limit and the peers. See `BENCHMARKS.md`.

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use fieldsync_bench::proc::Bins;
use fieldsync_bench::{Selection, Sizes, checks_passed, run};
use std::path::PathBuf;
use std::process::ExitCode;

/// Measure fieldsync: sync throughput, CLI latency, a fleet of devices.
#[derive(Debug, Parser)]
#[command(
    name = "fieldsync-bench",
    after_help = "Examples:\n  cargo build --release --workspace --bins && cargo run --release -p fieldsync-bench -- all\n  fieldsync-bench all --quick --out /tmp/bench.json"
)]
struct Args {
    /// Which figures to measure.
    #[arg(value_enum, default_value = "all")]
    what: What,
    /// Small sizes: every path runs, the figures mean nothing.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
    /// Directory holding `fieldsync` and `fieldsync-server` (default: next to this program).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Runs per figure (default 3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    runs: Option<u16>,
    /// Visits on the one laptop (default 100000, quick 300).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    visits: Option<u32>,
    /// PostgreSQL administrator URL: push, bootstrap pull and the fleet are
    /// also measured there (one and two server instances), each server on a
    /// fresh `fsbench_…` database that is dropped afterwards. Skipped with a
    /// note when the server does not answer.
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Measure on SQLite only.
    #[arg(long)]
    no_postgres: bool,
    /// Keep the report figure's seeded server data in DIR and reuse it on
    /// later runs with the same workload (seeding 1,000,000 visits takes
    /// minutes).
    #[arg(long, value_name = "DIR")]
    report_data: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum What {
    /// Every figure.
    All,
    /// Push, bootstrap pull, incremental sync, CLI write, edit push, and the limit.
    Device,
    /// Edit push only: sequential edits, edits without base clocks, conflicting edits.
    Edits,
    /// The fleet of simulated laptops.
    Fleet,
    /// The fleet on PostgreSQL only (one and two server instances)
    FleetPostgres,
    /// The SQLite limit only.
    Limit,
    /// The HQ scorecard report.
    Report,
    /// The recovery sync of a laptop restored from a backup (1,000 pending changes).
    Restore,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!(
                "hint: build the binaries first with cargo build --release --workspace --bins"
            );
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<ExitCode> {
    let args = Args::parse();
    let dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("locating this program's directory")?
            .to_path_buf(),
    };
    let bins = Bins::in_dir(&dir)?;
    let postgres = (!args.no_postgres).then_some(args.postgres.as_str());
    let mut sizes = if args.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    if let Some(r) = args.runs {
        sizes.runs = usize::from(r);
    }
    if let Some(v) = args.visits {
        sizes.visits = v as usize;
    }
    let selection = match args.what {
        What::All => Selection::All,
        What::Device => Selection::Device,
        What::Edits => Selection::Edits,
        What::Fleet => Selection::Fleet,
        What::FleetPostgres => Selection::FleetPostgres,
        What::Limit => Selection::Limit,
        What::Report => Selection::Report,
        What::Restore => Selection::Restore,
    };
    let results = run(
        &bins,
        postgres,
        sizes,
        args.quick,
        selection,
        args.report_data.as_deref(),
    )?;
    print!("{}", results.table());
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("results written to {}", args.out.display());
    if checks_passed(&results.checks) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: a correctness check failed (see the table)");
        Ok(ExitCode::FAILURE)
    }
}
