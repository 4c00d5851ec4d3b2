//! CLI tests of the management commands (goals, training, work reports,
//! one-on-ones) on the real binary, offline: bad input exits non-zero with a
//! clear message and writes nothing. Each test has its own profile
//! (`FIELDSYNC_HOME`), `NO_COLOR=1` and `TZ=UTC`.

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

struct Profile {
    home: TempDir,
}

impl Profile {
    /// A profile as `login` leaves it, pointing at a server that is down.
    fn logged_in_as(role: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        let cfg = serde_json::json!({
            "server": "http://127.0.0.1:1",
            "token": "test-token",
            "device_id": "01937a00-0000-7000-8000-0000000000aa",
            "user": {"id": "01937a00-0000-7000-8000-0000000000bb", "username": "mei", "role": role, "active": true}
        });
        std::fs::write(home.path().join("config.json"), cfg.to_string()).unwrap();
        Self { home }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::cargo_bin("fieldsync")
            .unwrap()
            .env("FIELDSYNC_HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .env_remove("RUST_LOG")
            .write_stdin("")
            // A command that hangs is killed (and fails its test) here.
            .timeout(std::time::Duration::from_mins(1))
            .args(args)
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        assert!(
            out.status.success(),
            "fieldsync {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn pending(&self) -> u64 {
        self.json(&["status"])["pending_ops"].as_u64().unwrap()
    }

    /// Run, require a non-zero exit whose stderr has `needle`, and no new pending change.
    fn refused(&self, args: &[&str], needle: &str) {
        let before = self.pending();
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains("error: "), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert_eq!(self.pending(), before, "{args:?} wrote something");
    }
}

#[test]
fn work_report_bad_input_is_refused_and_a_good_one_is_prefilled_offline() {
    let rep = Profile::logged_in_as("rep");
    rep.refused(
        &[
            "work-report",
            "submit",
            "--kind",
            "weekly",
            "--period",
            "2026-11",
            "--summary",
            "x",
        ],
        "a weekly report needs a week period",
    );
    rep.refused(
        &[
            "work-report",
            "submit",
            "--kind",
            "monthly",
            "--summary",
            "   ",
        ],
        "--summary is empty",
    );
    rep.refused(
        &[
            "work-report",
            "submit",
            "--kind",
            "monthly",
            "--period",
            "2099-01",
            "--summary",
            "x",
        ],
        "has not started yet",
    );
    rep.refused(
        &[
            "work-report",
            "submit",
            "--kind",
            "monthly",
            "--period",
            "2026-1x",
            "--summary",
            "x",
        ],
        "is not a period",
    );
    let r = rep.json(&[
        "work-report",
        "submit",
        "--kind",
        "monthly",
        "--summary",
        "quiet",
    ]);
    assert_eq!(r["visits"], 0, "no visits recorded: {r}");
    assert_eq!(r["customers_visited"], 0);
    assert_eq!(r["late"], false);
    assert!(r.get("sales").is_none_or(Value::is_null), "no sales: {r}");
    assert_eq!(rep.pending(), 1);
    rep.refused(
        &[
            "work-report",
            "submit",
            "--kind",
            "monthly",
            "--summary",
            "again",
        ],
        "already submitted",
    );
    rep.refused(
        &[
            "work-report",
            "comment",
            &r["id"].as_str().unwrap()[..8],
            "--text",
            "self praise",
        ],
        "a rep cannot comment on work reports",
    );
}

#[test]
fn training_bad_input_is_refused() {
    let hq = Profile::logged_in_as("hq");
    hq.refused(
        &[
            "training", "course", "add", "Basics", "--kind", "product", "--hours", "0",
        ],
        "--hours must be more than 0",
    );
    hq.refused(
        &[
            "training", "course", "add", "  ", "--kind", "product", "--hours", "1",
        ],
        "the course title is empty",
    );
    let c = hq.json(&[
        "training",
        "course",
        "add",
        "Basics",
        "--kind",
        "product",
        "--hours",
        "1.5",
        "--required-for",
        "rep",
    ]);
    assert_eq!(c["required_for"], serde_json::json!(["rep"]));
    assert_eq!(hq.pending(), 1);
    hq.refused(
        &[
            "training",
            "assign",
            "Basics",
            "--to",
            "mei",
            "--due",
            "2026-13-01",
        ],
        "is not a date",
    );
    hq.refused(
        &[
            "training",
            "assign",
            "Basics",
            "--to",
            "nobody",
            "--due",
            "2026-12-01",
        ],
        "no rep or team \"nobody\"",
    );
    hq.refused(
        &[
            "training",
            "assign",
            "Nope",
            "--to",
            "nobody",
            "--due",
            "2026-12-01",
        ],
        "course",
    );
    assert_eq!(
        hq.json(&["training", "list", "--overdue"]),
        serde_json::json!([])
    );
    let rep = Profile::logged_in_as("rep");
    rep.refused(
        &[
            "training", "course", "add", "Mine", "--kind", "sales", "--hours", "1",
        ],
        "a rep cannot add courses",
    );
}

#[test]
fn goal_bad_input_is_refused() {
    let hq = Profile::logged_in_as("hq");
    hq.refused(
        &[
            "goal",
            "set",
            "mei",
            "--metric",
            "happiness",
            "--target",
            "5",
            "--period",
            "2026-11",
        ],
        "\"happiness\" is not a metric",
    );
    hq.refused(
        &[
            "goal", "set", "mei", "--metric", "visits", "--target", "5", "--period", "2026-Q5",
        ],
        "is not a period",
    );
    hq.refused(
        &[
            "goal", "set", "mei", "--metric", "visits", "--target", "-5", "--period", "2026-11",
        ],
        "--target must be a number of 0 or more",
    );
    hq.refused(
        &[
            "goal",
            "set",
            "mei",
            "--metric",
            "visits",
            "--target",
            "10",
            "--stretch",
            "5",
            "--period",
            "2026-11",
        ],
        "--stretch 5 is below --target 10",
    );
    hq.refused(
        &[
            "goal", "set", "mei", "--metric", "coverage", "--target", "80", "--period", "2026-11",
        ],
        "--target 80 is above 1 for coverage",
    );
    hq.refused(
        &[
            "goal", "set", "ghost", "--metric", "visits", "--target", "5", "--period", "2026-11",
        ],
        "no rep or team \"ghost\"",
    );
    assert_eq!(hq.json(&["goal", "list"]), serde_json::json!([]));
    let sup = Profile::logged_in_as("supervisor");
    sup.refused(
        &["one-on-one", "add", "ghost", "--notes", "x"],
        "no user \"ghost\"",
    );
}
