//! The quick benchmark runs end to end on the binaries of this build and
//! writes a complete results file whose correctness checks all pass.
//! Nothing here is about time.

use std::path::PathBuf;
use std::process::Command;

fn bin_dir() -> PathBuf {
    // Integration tests live in target/<profile>/deps; the binaries one level up.
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .to_path_buf()
}

#[test]
fn quick_benchmark_writes_every_figure_and_passes_every_check() {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir.path().join("results.json");
    let run = Command::new(env!("CARGO_BIN_EXE_fieldsync-bench"))
        .args(["all", "--quick", "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(bin_dir())
        .output()
        .expect("run fieldsync-bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "fieldsync-bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("| push |"), "no table printed: {stdout}");

    let results: fieldsync_bench::results::Results =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results file"))
            .expect("results parse");
    assert!(results.quick);
    let sizes = results.sizes;
    for name in [
        "push",
        "bootstrap pull",
        "bootstrap pull peak memory",
        "incremental sync",
        "CLI write",
        "edit push",
        "edit push, no base clocks",
        "edit push, every edit a conflict",
        "limit",
        "fleet p99 sync",
        "fleet server peak memory",
        "recovery sync",
        "ordinary sync",
    ] {
        let f = results
            .figures
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("figure {name} missing"));
        let spread = f
            .spread
            .unwrap_or_else(|| panic!("figure {name} has no spread"));
        assert!(f.runs.len() >= 3, "{name}: {} runs", f.runs.len());
        assert!(
            f.runs.iter().all(|r| r.is_finite() && *r > 0.0),
            "{name}: {:?}",
            f.runs
        );
        assert!(
            spread.min <= spread.median && spread.median <= spread.max,
            "{name}"
        );
        assert_eq!(f.met.is_some(), f.target.is_some(), "{name}");
    }
    let first = results
        .figures
        .iter()
        .find(|f| f.name == "fleet first sync p99")
        .expect("fleet first sync p99");
    assert!(
        first.runs.len() == 1 && first.runs[0].is_finite() && first.runs[0] > 0.0,
        "{:?}",
        first.runs
    );
    let write = results
        .figures
        .iter()
        .find(|f| f.name == "CLI write")
        .expect("CLI write");
    assert_eq!(write.runs.len(), sizes.cli_writes);
    let report = results
        .figures
        .iter()
        .find(|f| f.name == "report")
        .expect("report");
    assert!(
        report.spread.is_some() || report.not_available.is_some(),
        "the report figure is neither measured nor explained"
    );
    assert!(results.push_over_limit.is_some_and(|r| r > 0.0));
    assert!(!results.peers.is_empty());
    let names: Vec<&str> = results.checks.iter().map(|c| c.name.as_str()).collect();
    for name in [
        "push: every imported visit applied",
        "bootstrap pull: every visit arrived",
        "fleet: every op applied exactly once",
        "recovery sync: every pending change applied once under the new device",
    ] {
        assert!(names.contains(&name), "check {name} missing: {names:?}");
    }
    for c in &results.checks {
        assert!(c.passed, "check failed: {} ({})", c.name, c.detail);
    }

    // PostgreSQL (default administrator URL): measured with one and two
    // server instances when the server answers, otherwise said so.
    if let Some(skipped) = results.figures.iter().find(|f| f.name == "postgres") {
        assert!(
            skipped
                .not_available
                .as_deref()
                .is_some_and(|r| r.starts_with("skipped: PostgreSQL not reachable")),
            "{skipped:?}"
        );
    } else {
        for name in [
            "postgres ×1 push",
            "postgres ×1 bootstrap pull",
            "postgres ×2 push",
            "postgres ×2 bootstrap pull",
            "postgres ×1 fleet p99 sync",
            "postgres ×2 fleet p99 sync",
        ] {
            let f = results
                .figures
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("figure {name} missing"));
            assert!(f.runs.len() >= 3, "{name}: {} runs", f.runs.len());
            assert!(f.runs.iter().all(|r| r.is_finite() && *r > 0.0), "{name}");
        }
        for name in [
            "postgres ×2 push: every imported visit applied",
            "postgres ×2 bootstrap pull: every visit arrived",
            "postgres ×1 fleet: every op applied exactly once",
            "postgres ×2 fleet: every op applied exactly once",
        ] {
            assert!(names.contains(&name), "check {name} missing: {names:?}");
        }
    }
}

/// `fleet-postgres` measures the fleet on PostgreSQL alone: one and two
/// instances, nothing on SQLite.
#[test]
fn the_postgres_fleet_runs_alone() {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir.path().join("results.json");
    let run = Command::new(env!("CARGO_BIN_EXE_fieldsync-bench"))
        .args(["fleet-postgres", "--quick", "--runs", "1", "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(bin_dir())
        .output()
        .expect("run fieldsync-bench");
    assert!(
        run.status.success(),
        "fieldsync-bench failed: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let results: fieldsync_bench::results::Results =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results file"))
            .expect("results parse");
    let names: Vec<&str> = results.figures.iter().map(|f| f.name.as_str()).collect();
    if names == ["postgres"] {
        return; // not reachable: said so, as above
    }
    assert!(
        names.iter().all(|n| n.starts_with("postgres ×")),
        "{names:?}"
    );
    for name in ["postgres ×1 fleet p99 sync", "postgres ×2 fleet p99 sync"] {
        assert!(names.contains(&name), "figure {name} missing: {names:?}");
    }
    assert_eq!(results.checks.len(), 2, "{:?}", results.checks);
    assert!(
        results.checks.iter().all(|c| c.passed),
        "{:?}",
        results.checks
    );
}
