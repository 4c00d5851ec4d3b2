//! CLI tests on the real binary: each test has its own profile
//! (`FIELDSYNC_HOME`), `NO_COLOR=1` and `TZ=UTC`. Nothing here talks to a
//! server; sync against the real server is covered by the end-to-end tests.

use assert_cmd::Command;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use tempfile::TempDir;

/// A port nothing listens on: every request fails to connect.
const DEAD_SERVER: &str = "http://127.0.0.1:1";

struct Profile {
    home: TempDir,
}

impl Profile {
    /// A profile that has never logged in.
    fn fresh() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// A profile as `login` leaves it, pointing at a server that is down.
    fn logged_in() -> Self {
        Self::logged_in_as("rep")
    }

    fn logged_in_as(role: &str) -> Self {
        let p = Self::fresh();
        let cfg = serde_json::json!({
            "server": DEAD_SERVER,
            "token": "test-token",
            "device_id": "01937a00-0000-7000-8000-0000000000aa",
            "user": {"id": "01937a00-0000-7000-8000-0000000000bb", "username": "mei", "role": role, "active": true}
        });
        std::fs::write(p.home.path().join("config.json"), cfg.to_string()).unwrap();
        p
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("fieldsync").unwrap();
        c.env("FIELDSYNC_HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .env_remove("RUST_LOG")
            .write_stdin("")
            // A command that hangs is killed (and fails its test) here.
            .timeout(std::time::Duration::from_mins(1));
        c
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run, require success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fieldsync {} failed ({:?})\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run with `--json`, require success, deserialise stdout.
    fn json<T: for<'de> Deserialize<'de>>(&self, args: &[&str]) -> T {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "fieldsync {} printed bad JSON ({e}): {text}",
                args.join(" ")
            )
        })
    }

    /// Run, require failure with `code`, return stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "fieldsync {}: wrong exit code; stderr: {err}",
            args.join(" ")
        );
        err
    }

    /// Import visits (JSON Lines) from stdin; the import must succeed.
    fn import_visits(&self, lines: String) {
        let out = self
            .cmd()
            .args(["visit", "import", "-"])
            .write_stdin(lines)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pending(&self) -> u64 {
        self.json::<Status>(&["status"]).pending_ops
    }

    fn path(&self) -> &Path {
        self.home.path()
    }
}

#[derive(Debug, Deserialize)]
struct Pos {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Deserialize)]
struct Customer {
    id: String,
    name: String,
    segment: Option<String>,
    phone: Option<String>,
    contact: Option<String>,
    location: Option<Pos>,
    created_at: String,
    archived: bool,
    pending: bool,
}

#[derive(Debug, Deserialize)]
struct CustomerShow {
    customer: Customer,
    visits: Vec<Visit>,
    feedback: Vec<Feedback>,
    sales: Vec<Sale>,
}

#[derive(Debug, Deserialize)]
struct Visit {
    id: String,
    customer_id: String,
    customer_name: String,
    started_at: String,
    ended_at: Option<String>,
    purpose: Option<String>,
    outcome: Option<String>,
    next_step: Option<String>,
    no_location_reason: Option<String>,
    amends: Option<String>,
    amend_reason: Option<String>,
    open: bool,
    minutes: Option<i64>,
    verdict: String,
    verdict_source: String,
    distance_m: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Feedback {
    id: String,
    customer_id: String,
    kind: String,
    status: String,
    csat: Option<i64>,
    nps: Option<i64>,
    text: String,
    follow_up_of: Option<String>,
    follow_up_id: Option<String>,
    resolution: Option<String>,
    resolved_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Money {
    minor: i64,
    currency: String,
}

#[derive(Debug, Deserialize)]
struct Sale {
    id: String,
    amount: Money,
    product: String,
    sold_at: String,
    void: bool,
    void_reason: Option<String>,
    voided_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Status {
    logged_in: bool,
    server: Option<String>,
    user: Option<String>,
    device_id: Option<String>,
    pending_ops: u64,
    last_sync: Option<String>,
    conflicts: u64,
    problems: u64,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: String,
    exit: u8,
}

#[test]
fn offline_day_records_customers_visits_feedback_and_sales() {
    let p = Profile::logged_in();
    assert_eq!(p.pending(), 0);

    // Customers.
    let acme: Customer = p.json(&[
        "customer",
        "add",
        "Acme Trading",
        "--segment",
        "retail",
        "--lat",
        "31.2304",
        "--lon",
        "121.4737",
        "--phone",
        "021-5555",
    ]);
    assert_eq!(acme.name, "Acme Trading");
    assert_eq!(acme.segment.as_deref(), Some("retail"));
    assert!(acme.pending && !acme.archived);
    assert!(
        acme.created_at.ends_with('Z') && acme.created_at.len() == 24,
        "{}",
        acme.created_at
    );
    let loc = acme.location.as_ref().unwrap();
    assert!((loc.lat - 31.2304).abs() < 1e-9 && (loc.lon - 121.4737).abs() < 1e-9);
    p.ok(&["customer", "add", "Beta Foods", "--contact", "Li Wei"]);
    let list: Vec<Customer> = p.json(&["customer", "list"]);
    assert_eq!(list.len(), 2);
    let found: Vec<Customer> = p.json(&["customer", "list", "--search", "li wei"]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "Beta Foods");
    assert_eq!(found[0].contact.as_deref(), Some("Li Wei"));

    let edited: Customer = p.json(&[
        "customer",
        "edit",
        "acme",
        "--phone",
        "021-9999",
        "--segment",
        "retail",
    ]);
    assert_eq!(edited.phone.as_deref(), Some("021-9999"));
    assert_eq!(
        p.pending(),
        3,
        "the edit is one patch op (segment unchanged is not sent)"
    );
    let unchanged = p.ok(&["customer", "edit", "acme", "--phone", "021-9999"]);
    assert!(unchanged.is_empty());
    assert_eq!(
        p.pending(),
        3,
        "an edit that changes nothing writes nothing"
    );

    // Visits.
    let v: Visit = p.json(&[
        "visit",
        "start",
        "acme",
        "--lat",
        "31.2305",
        "--lon",
        "121.4737",
        "--accuracy",
        "10",
        "--purpose",
        "review",
    ]);
    assert!(v.open);
    assert_eq!(v.customer_id, acme.id);
    assert_eq!(v.customer_name, "Acme Trading");
    assert_eq!(
        (v.verdict.as_str(), v.verdict_source.as_str()),
        ("verified", "provisional")
    );
    assert!(v.distance_m.unwrap() < 20.0);
    let ended: Visit = p.json(&[
        "visit",
        "end",
        "--outcome",
        "ordered 20 units",
        "--next-step",
        "send quote",
    ]);
    assert_eq!(ended.id, v.id, "end defaults to the single open visit");
    assert!(!ended.open);
    assert_eq!(ended.outcome.as_deref(), Some("ordered 20 units"));
    assert_eq!(ended.next_step.as_deref(), Some("send quote"));
    p.fails(&["visit", "end", "--outcome", "again"], 1);

    let logged: Visit = p.json(&[
        "visit",
        "log",
        "beta",
        "--at",
        "2026-01-05 14:00",
        "--minutes",
        "45",
        "--purpose",
        "demo",
        "--outcome",
        "trial",
        "--reason",
        "GPS off",
    ]);
    assert_eq!(logged.started_at, "2026-01-05T14:00:00.000Z");
    assert_eq!(logged.ended_at.as_deref(), Some("2026-01-05T14:45:00.000Z"));
    assert_eq!(logged.minutes, Some(45));
    assert_eq!(logged.no_location_reason.as_deref(), Some("GPS off"));
    assert_eq!(logged.verdict, "unverified");

    let amended: Visit = p.json(&[
        "visit",
        "amend",
        &logged.id[..],
        "--minutes",
        "50",
        "--reason",
        "forgot the tail",
    ]);
    assert_ne!(amended.id, logged.id);
    assert_eq!(amended.amends.as_deref(), Some(logged.id.as_str()));
    assert_eq!(amended.amend_reason.as_deref(), Some("forgot the tail"));
    assert_eq!(amended.minutes, Some(50));
    assert_eq!(
        amended.purpose.as_deref(),
        Some("demo"),
        "unchanged fields are copied"
    );

    let visits: Vec<Visit> = p.json(&["visit", "list"]);
    assert_eq!(visits.len(), 3);
    let since: Vec<Visit> = p.json(&["visit", "list", "--since", "2026-02-01"]);
    assert_eq!(since.len(), 1, "only today's visit is after February");
    let beta_visits: Vec<Visit> = p.json(&["visit", "list", "--customer", "beta"]);
    assert_eq!(beta_visits.len(), 2);
    let shown: Visit = p.json(&["visit", "show", &v.id]);
    assert_eq!(shown.id, v.id);

    // Feedback: a low survey opens a follow-up complaint in the same write.
    let before = p.pending();
    let survey: Feedback = p.json(&[
        "feedback",
        "add",
        "acme",
        "--kind",
        "survey",
        "--csat",
        "2",
        "--nps",
        "8",
        "--text",
        "late deliveries",
        "--visit",
        &v.id,
    ]);
    assert_eq!(p.pending(), before + 2);
    assert_eq!(survey.kind, "survey");
    assert_eq!(survey.status, "open");
    assert_eq!(survey.csat, Some(2));
    let follow = survey.follow_up_id.clone().expect("a follow-up complaint");
    let complaint: Feedback = p.json(&["feedback", "show", &follow]);
    assert_eq!(complaint.kind, "complaint");
    assert_eq!(complaint.follow_up_of.as_deref(), Some(survey.id.as_str()));
    assert_eq!(complaint.customer_id, acme.id);
    let happy: Feedback = p.json(&[
        "feedback", "add", "beta", "--kind", "survey", "--csat", "5", "--nps", "10", "--text",
        "great",
    ]);
    assert!(happy.follow_up_id.is_none());
    assert_eq!(happy.nps, Some(10));

    let before = p.pending();
    let err = p.fails(&["feedback", "move", &follow, "--to", "resolved"], 1);
    assert!(err.contains("resolution"), "{err}");
    assert_eq!(p.pending(), before, "a refused move writes nothing");
    let moving: Feedback = p.json(&[
        "feedback",
        "move",
        &follow,
        "--to",
        "in_progress",
        "--note",
        "called them",
    ]);
    assert_eq!(moving.status, "in_progress");
    let resolved: Feedback = p.json(&[
        "feedback",
        "move",
        &follow,
        "--to",
        "resolved",
        "--resolution",
        "new courier",
    ]);
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.resolution.as_deref(), Some("new courier"));
    assert!(resolved.resolved_at.is_some());
    let err = p.fails(&["feedback", "move", &follow, "--to", "closed"], 1);
    assert!(
        err.contains("forbidden") || err.contains("cannot move"),
        "a rep cannot close: {err}"
    );
    let open: Vec<Feedback> = p.json(&["feedback", "list", "--open"]);
    assert_eq!(open.len(), 2, "the two surveys are still open");
    let all: Vec<Feedback> = p.json(&["feedback", "list"]);
    assert_eq!(all.len(), 3);
    assert!(all.iter().any(|f| f.text == "great"));

    // Sales: exact money, voiding keeps the record.
    let sale: Sale = p.json(&[
        "sale",
        "add",
        "acme",
        "--amount",
        "1234.56",
        "--product",
        "Widget Pro",
    ]);
    assert_eq!(
        (sale.amount.minor, sale.amount.currency.as_str()),
        (123_456, "CNY")
    );
    assert!(!sale.void);
    let jpy: Sale = p.json(&[
        "sale",
        "add",
        "beta",
        "--amount",
        "1500",
        "--currency",
        "jpy",
        "--product",
        "Tea",
        "--at",
        "2026-01-05",
    ]);
    assert_eq!(
        (jpy.amount.minor, jpy.amount.currency.as_str()),
        (1500, "JPY")
    );
    assert_eq!(jpy.sold_at, "2026-01-05T00:00:00.000Z");
    let void: Sale = p.json(&["sale", "void", &sale.id, "--reason", "duplicate"]);
    assert!(void.void);
    assert_eq!(void.void_reason.as_deref(), Some("duplicate"));
    assert!(void.voided_at.is_some());
    p.fails(&["sale", "void", &sale.id, "--reason", "again"], 1);
    let sales: Vec<Sale> = p.json(&["sale", "list"]);
    assert_eq!(sales.len(), 2);
    assert!(sales.iter().any(|s| s.product == "Tea"));

    // The customer page gathers its history.
    let page: CustomerShow = p.json(&["customer", "show", "Acme Trading"]);
    assert_eq!(page.customer.id, acme.id);
    assert_eq!(page.visits.len(), 1);
    assert_eq!(page.feedback.len(), 2);
    assert_eq!(page.sales.len(), 1);
    let text = p.ok(&["customer", "show", "acme"]);
    assert!(
        text.contains("Visits (1)") && text.contains("Sales (1)"),
        "{text}"
    );

    // Archive hides the customer from the default list, not from history.
    let archived: Customer = p.json(&["customer", "archive", "beta"]);
    assert!(archived.archived);
    let list: Vec<Customer> = p.json(&["customer", "list"]);
    assert_eq!(list.len(), 1);
    let list: Vec<Customer> = p.json(&["customer", "list", "--all"]);
    assert_eq!(list.len(), 2);
    p.fails(&["visit", "start", &archived.id], 1);

    // Every write is waiting in the outbox: 2 customers, 1 edit, start+end,
    // log, amend, survey+follow-up, happy survey, 2 moves, 2 sales, void, archive.
    let st: Status = p.json(&["status"]);
    assert_eq!(st.pending_ops, 16);
    assert!(st.logged_in);
    assert_eq!(st.user.as_deref(), Some("mei"));
    assert_eq!(st.server.as_deref(), Some(DEAD_SERVER));
    assert!(st.device_id.is_some());
    assert!(st.last_sync.is_none());
    assert_eq!((st.conflicts, st.problems), (0, 0));
}

#[test]
fn human_output_is_tables_on_stdout_and_sentences_on_stderr() {
    let p = Profile::logged_in();
    let out = p.run(&["customer", "add", "Acme Trading"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "talk goes to stderr");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Added customer Acme Trading"));
    let table = p.ok(&["customer", "list"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID  "), "{table}");
    assert!(lines.next().unwrap().contains("Acme Trading*"));
    assert!(!table.contains('\x1b'), "no colour with NO_COLOR");
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let p = Profile::logged_in();
    let c: Customer = p.json(&[
        "customer",
        "add",
        "Acme Trading",
        "--lat",
        "31.2",
        "--lon",
        "121.4",
    ]);
    let s: Sale = p.json(&["sale", "add", "acme", "--amount", "10", "--product", "x"]);
    let start = p.pending();
    #[rustfmt::skip]
    let cases: &[(&[&str], i32, &str)] = &[
        (&["customer", "add", "Bad", "--lat", "91", "--lon", "0"], 1, "latitude"),
        (&["customer", "add", "Bad", "--lat", "10"], 2, "--lon"),
        (&["customer", "add", "   "], 1, "name"),
        (&["customer", "edit", "acme", "--lat", "0", "--lon", "200"], 1, "not on Earth"),
        (&["customer", "show", "nobody"], 1, "no customer matches"),
        (&["visit", "start", "nobody"], 1, "no customer matches"),
        (&["visit", "start", "acme", "--lat", "-91", "--lon", "0"], 1, "latitude"),
        (&["visit", "log", "acme", "--at", "yesterday", "--minutes", "30", "--purpose", "p", "--outcome", "o", "--reason", "r"], 1, "not a date or time"),
        (&["visit", "log", "acme", "--at", "2026-02-30 10:00", "--minutes", "30", "--purpose", "p", "--outcome", "o", "--reason", "r"], 1, "not a date or time"),
        (&["visit", "log", "acme", "--at", "2026-01-05 10:00", "--minutes", "30", "--purpose", "p", "--outcome", "o"], 1, "needs a reason"),
        (&["visit", "log", "acme", "--at", "2999-01-05 10:00", "--minutes", "30", "--purpose", "p", "--outcome", "o", "--reason", "r"], 1, "future"),
        (&["visit", "log", "acme", "--at", "2026-01-05 10:00", "--minutes", "0", "--purpose", "p", "--outcome", "o", "--reason", "r"], 2, "minutes"),
        (&["visit", "end", "--outcome", "x"], 1, "no open visit"),
        (&["visit", "list", "--since", "last week"], 1, "not a date"),
        (&["feedback", "add", "acme", "--kind", "survey", "--csat", "7", "--text", "t"], 1, "out_of_range"),
        (&["feedback", "add", "acme", "--kind", "survey", "--nps", "11", "--text", "t"], 1, "nps"),
        (&["feedback", "add", "acme", "--kind", "rumour", "--text", "t"], 2, "rumour"),
        (&["feedback", "add", "acme", "--kind", "praise", "--text", ""], 1, "text"),
        (&["sale", "add", "acme", "--amount", "-5", "--product", "x"], 1, "more than zero"),
        (&["sale", "add", "acme", "--amount", "0", "--product", "x"], 1, "more than zero"),
        (&["sale", "add", "acme", "--amount", "12.345", "--product", "x"], 1, "decimal places"),
        (&["sale", "add", "acme", "--amount", "1e5", "--product", "x"], 1, "decimal number"),
        (&["sale", "add", "acme", "--amount", "5", "--currency", "EURO", "--product", "x"], 1, "currency"),
        (&["sale", "add", "acme", "--amount", "5", "--product", "x", "--at", "28/11/2026"], 1, "not a date"),
        (&["sale", "void", "ffffffff", "--reason", "x"], 1, "no sale matches"),
        (&["conflicts", "resolve", "9", "--keep", "mine"], 1, "no conflict #9"),
        (&["problems", "retry", "9"], 1, "no problem #9"),
        (&["customer", "frobnicate"], 2, "unrecognized"),
    ];
    for (args, code, needle) in cases {
        let err = p.fails(args, *code);
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "fieldsync {}: stderr lacks {needle:?}: {err}",
            args.join(" ")
        );
        if *code == 1 {
            assert!(
                err.starts_with("error: "),
                "fieldsync {}: {err}",
                args.join(" ")
            );
        }
        assert_eq!(
            p.pending(),
            start,
            "fieldsync {} wrote something",
            args.join(" ")
        );
    }
    // The stored records are untouched.
    let back: CustomerShow = p.json(&["customer", "show", &c.id]);
    assert_eq!(back.customer.name, "Acme Trading");
    let sales: Vec<Sale> = p.json(&["sale", "list"]);
    assert_eq!(sales.len(), 1);
    assert_eq!(sales[0].id, s.id);
}

#[test]
fn errors_with_json_flag_are_json_on_stdout_too() {
    let p = Profile::logged_in();
    let out = p.run(&[
        "feedback", "add", "nobody", "--kind", "praise", "--text", "t", "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let body: ErrorBody = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body.error.code.as_deref(), Some("not_found"));
    assert_eq!(body.error.exit, 1);
    assert!(body.error.message.contains("nobody"));
}

#[test]
fn customers_are_named_by_id_prefix_or_unique_name() {
    let p = Profile::logged_in();
    let a: Customer = p.json(&["customer", "add", "Acme Trading"]);
    let b: Customer = p.json(&["customer", "add", "Acme Foods"]);
    let z: Customer = p.json(&["customer", "add", "Zeta"]);

    let by_id: CustomerShow = p.json(&["customer", "show", &a.id]);
    assert_eq!(by_id.customer.id, a.id);
    let by_name: CustomerShow = p.json(&["customer", "show", "ACME foods"]);
    assert_eq!(by_name.customer.id, b.id);
    let by_start: CustomerShow = p.json(&["customer", "show", "zet"]);
    assert_eq!(by_start.customer.id, z.id);

    // The shortest unique prefix shown by `customer list` names the customer.
    let table = p.ok(&["customer", "list"]);
    let short = table
        .lines()
        .find(|l| l.contains("Zeta"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        z.id.starts_with(&short) && short.len() < z.id.len(),
        "{short}"
    );
    let by_prefix: CustomerShow = p.json(&["customer", "show", &short]);
    assert_eq!(by_prefix.customer.id, z.id);
    let nodash: String = a.id.replace('-', "")[..20].to_owned();
    let by_nodash: CustomerShow = p.json(&["customer", "show", &nodash]);
    assert_eq!(by_nodash.customer.id, a.id);

    // Ambiguity lists the candidates.
    let err = p.fails(&["customer", "show", "acme"], 1);
    assert!(
        err.contains("matches 2 customers")
            && err.contains("Acme Trading")
            && err.contains("Acme Foods"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    let err = p.fails(&["customer", "show", &a.id[..8]], 1);
    assert!(
        err.contains("matches 3 customers"),
        "ids made in the same second share 8 digits: {err}"
    );
}

/// One line for `visit import`: a 30-minute visit to Acme at `at`, with
/// the purpose `review {i}`.
fn acme_visit(at: &str, i: usize) -> String {
    let line = serde_json::json!({
        "customer": "Acme",
        "at": at,
        "minutes": 30,
        "purpose": format!("review {i}"),
        "outcome": "ok",
        "reason": "indoors",
    });
    format!("{line}\n")
}

/// `customer show --last N` lists the customer's latest N visits,
/// feedback entries and sales (the oldest of them first) and still counts
/// them all.
#[test]
fn customer_show_last_lists_the_latest_and_counts_all() {
    let p = Profile::logged_in();
    p.ok(&["customer", "add", "Acme Trading"]);
    let mut lines = String::new();
    // Imported out of order: the latest are the last by start, not by entry.
    for i in [2, 0, 4, 1, 3] {
        lines.push_str(&acme_visit(&format!("2026-03-0{}T09:00:00Z", i + 1), i));
    }
    p.import_visits(lines);
    let purposes = |page: &serde_json::Value| -> Vec<String> {
        page["visits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["purpose"].as_str().unwrap().to_owned())
            .collect()
    };
    let page: serde_json::Value = p.json(&["customer", "show", "acme", "--last", "2"]);
    assert_eq!(purposes(&page), ["review 3", "review 4"]);
    assert_eq!(page["visits_total"], 5);
    assert_eq!(page["feedback_total"], 0);
    assert_eq!(page["sales_total"], 0);
    let all: serde_json::Value = p.json(&["customer", "show", "acme"]);
    assert_eq!(purposes(&all).len(), 5);
    assert_eq!(all["visits_total"], 5);
    let text = p.ok(&["customer", "show", "acme", "--last", "2"]);
    assert!(
        text.contains("Visits (5; the last 2)") && text.contains("Sales (0)"),
        "{text}"
    );
    assert!(
        text.contains("review 4") && !text.contains("review 2"),
        "{text}"
    );
    let text = p.ok(&["customer", "show", "acme", "--last", "9"]);
    assert!(text.contains("Visits (5)"), "{text}");
    let err = p.fails(&["customer", "show", "acme", "--last", "two"], 2);
    assert!(err.contains("--last"), "{err}");
}

/// Visits are named by id or id prefix, looked up in the id index; an
/// ambiguous prefix lists the first candidates and counts the rest.
#[test]
fn visits_are_named_by_id_or_prefix_and_many_candidates_are_counted() {
    let p = Profile::logged_in();
    p.ok(&["customer", "add", "Acme Trading"]);
    let mut lines = String::new();
    for i in 0..25 {
        lines.push_str(&acme_visit(&format!("2026-03-01T09:{i:02}:00Z"), i));
    }
    p.import_visits(lines);
    let visits: Vec<Value> = p.json(&["visit", "list"]);
    let id = visits[7]["id"].as_str().unwrap().to_owned();

    let by_id: Value = p.json(&["visit", "show", &id.to_uppercase()]);
    assert_eq!(by_id["id"], id.as_str());
    assert_eq!(by_id["purpose"], "review 7");
    let nodash = id.replace('-', "");
    for prefix in [&id[..id.len() - 1], &nodash[..30], &id[..28]] {
        let hit: Value = p.json(&["visit", "show", prefix]);
        assert_eq!(hit["id"], id.as_str(), "{prefix}");
    }
    // Visits made in the same second share their first 8 digits.
    let err = p.fails(&["visit", "show", &id[..8]], 1);
    assert!(err.contains("matches 25 visits:"), "{err}");
    assert!(err.contains("… and 5 more"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("review")).count(),
        20,
        "{err}"
    );
    // Every short id listed names one visit.
    let short = err
        .lines()
        .find(|l| l.contains("review"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let one: Value = p.json(&["visit", "show", &short]);
    assert!(one["id"].as_str().unwrap().starts_with(&short), "{short}");
    let err = p.fails(&["visit", "show", "ffffffff-ffff"], 1);
    assert!(err.contains("no visit matches"), "{err}");
    // A customer's id is not a visit's.
    let customers: Vec<Value> = p.json(&["customer", "list"]);
    let customer = customers[0]["id"].as_str().unwrap();
    let err = p.fails(&["visit", "show", customer], 1);
    assert!(err.contains("no visit matches"), "{err}");
}

#[test]
fn sync_with_the_server_down_keeps_changes_and_exits_offline() {
    let p = Profile::logged_in();
    p.ok(&["customer", "add", "Acme"]);
    p.ok(&["sale", "add", "acme", "--amount", "5", "--product", "x"]);
    let err = p.fails(&["sync"], 3);
    assert_eq!(
        err.trim(),
        "offline: 2 changes are saved and will sync later"
    );
    assert_eq!(p.pending(), 2);
    let st: Status = p.json(&["status"]);
    assert!(st.last_sync.is_none());
    // Online-only commands say the same.
    p.fails(&["admin", "user", "list"], 3);
    // whoami falls back to the profile.
    let who: Value = p.json(&["whoami"]);
    assert_eq!(who["user"]["username"], "mei");
    assert_eq!(who["confirmed"], false);
}

#[test]
fn recording_work_needs_a_login_first() {
    let p = Profile::fresh();
    let err = p.fails(&["customer", "add", "Acme"], 4);
    assert!(
        err.contains("not logged in") && err.contains("hint: log in first: fieldsync login"),
        "{err}"
    );
    p.fails(&["sync"], 4);
    // Reading works and is empty.
    let list: Vec<Customer> = p.json(&["customer", "list"]);
    assert!(list.is_empty());
    let st: Status = p.json(&["status"]);
    assert!(!st.logged_in && st.user.is_none());
}

#[test]
fn login_needs_a_password_source_and_the_network() {
    let p = Profile::fresh();
    let err = p.fails(&["login", "--server", DEAD_SERVER, "--user", "mei"], 1);
    assert!(
        err.contains("stdin is not a terminal") && err.contains("--password-stdin"),
        "{err}"
    );
    let out = p
        .cmd()
        .args([
            "login",
            "--server",
            DEAD_SERVER,
            "--user",
            "mei",
            "--password-stdin",
        ])
        .write_stdin("secret\n")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("offline: cannot reach"));
    assert!(
        !p.path().join("config.json").exists(),
        "a failed login saves nothing"
    );
    p.fails(
        &[
            "login",
            "--server",
            "fieldsync.example.com",
            "--user",
            "mei",
            "--password-stdin",
        ],
        1,
    );
}

#[test]
fn logout_keeps_unsynced_work_unless_forced() {
    let p = Profile::logged_in();
    p.ok(&["customer", "add", "Acme"]);
    let err = p.fails(&["logout", "--wipe"], 1);
    assert!(
        err.contains("1 change has not been synced") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(p.pending(), 1);
    // A plain logout (server unreachable) forgets the token, keeps the outbox and device.
    let out = p.run(&["logout"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: Status = p.json(&["status"]);
    assert!(!st.logged_in);
    assert_eq!(st.pending_ops, 1);
    assert!(st.device_id.is_some());
    // Work can still be recorded; sync asks for a login.
    p.ok(&["customer", "add", "Beta"]);
    let err = p.fails(&["sync"], 4);
    assert!(
        err.contains("2 unsynced changes are kept") && err.contains("fieldsync login"),
        "{err}"
    );
    p.ok(&["logout", "--wipe", "--force"]);
    assert!(!p.path().join("config.json").exists());
    assert_eq!(p.pending(), 0);
}

#[test]
fn check_in_distance_and_provisional_verdict() {
    let p = Profile::logged_in();
    p.ok(&["customer", "add", "Acme", "--lat", "31.0", "--lon", "121.0"]);
    p.ok(&["customer", "add", "Nowhere"]);
    let near: Visit = p.json(&[
        "visit", "start", "acme", "--lat", "31.001", "--lon", "121.0",
    ]);
    assert_eq!(near.verdict, "verified");
    let d = near.distance_m.unwrap();
    assert!((100.0..125.0).contains(&d), "{d}");
    let far: Visit = p.json(&[
        "visit",
        "start",
        "acme",
        "--lat",
        "31.01",
        "--lon",
        "121.0",
        "--accuracy",
        "10",
    ]);
    assert_eq!(far.verdict, "out_of_range");
    let none: Visit = p.json(&[
        "visit", "start", "nowhere", "--lat", "31.0", "--lon", "121.0",
    ]);
    assert_eq!(none.verdict, "unverified");
    assert!(none.distance_m.is_none());
    let text = p.ok(&["visit", "show", &far.id]);
    assert!(
        text.contains("out_of_range (provisional until sync)") && text.contains("1.1 km"),
        "{text}"
    );
    // Three open visits: `visit end` must be told which.
    let err = p.fails(&["visit", "end", "--outcome", "x"], 1);
    assert!(err.contains("3 visits are open"), "{err}");
    let ended: Visit = p.json(&[
        "visit",
        "end",
        &near.id,
        "--outcome",
        "x",
        "--lat",
        "31.001",
        "--lon",
        "121.0",
    ]);
    assert!(!ended.open);
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    let p = Profile::fresh();
    for (shell, needle) in [
        ("bash", "_fieldsync()"),
        ("zsh", "#compdef fieldsync"),
        ("fish", "complete -c fieldsync"),
    ] {
        let out = p.ok(&["completions", shell]);
        assert!(out.contains(needle), "{shell}");
        assert!(out.contains("customer"), "{shell}");
    }
    p.fails(&["completions", "tcsh"], 2);
}

#[test]
fn help_has_examples_and_exit_codes() {
    let p = Profile::fresh();
    let help = p.ok(&["--help"]);
    assert!(help.contains("Examples:") && help.contains("fieldsync visit start acme"));
    for code in [
        "3  offline",
        "4  authentication",
        "5  this device was revoked",
        "6  this fieldsync is too old",
        "7  sync done",
    ] {
        assert!(help.contains(code), "{code}");
    }
    let sub = p.ok(&["sale", "add", "--help"]);
    assert!(sub.contains("--amount 1234.56"), "{sub}");
}

#[cfg(unix)]
#[test]
fn profile_directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("profile");
    let mut c = Command::cargo_bin("fieldsync").unwrap();
    c.env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .args(["--home", home.to_str().unwrap(), "status"])
        .assert()
        .success();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("fieldsync.db")), 0o600);
}

#[test]
fn profiles_never_see_each_other() {
    let a = Profile::logged_in();
    let b = Profile::logged_in();
    a.ok(&["customer", "add", "Acme"]);
    let list: Vec<Customer> = b.json(&["customer", "list"]);
    assert!(list.is_empty());
    assert_eq!(b.pending(), 0);
}

#[test]
fn problems_and_conflicts_start_empty() {
    let p = Profile::logged_in();
    let problems: Vec<Value> = p.json(&["problems", "list"]);
    assert!(problems.is_empty());
    let conflicts: Vec<Value> = p.json(&["conflicts", "list"]);
    assert!(conflicts.is_empty());
    assert!(
        p.run(&["problems", "list"])
            .stderr
            .starts_with(b"No problems.")
    );
}

#[derive(Debug, Deserialize)]
struct ProblemOut {
    id: i64,
    code: String,
    resolution: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConflictOut {
    id: i64,
    field: String,
    mine: Value,
    theirs: Value,
    resolution: Option<String>,
}

/// Plant what a sync would have stored: a rejected op and a lost field.
fn plant_problem_and_conflict(p: &Profile) {
    let db = rusqlite::Connection::open(p.path().join("fieldsync.db")).unwrap();
    let (op, op_id, record): (String, String, String) = db
        .query_row(
            "SELECT op, op_id, record_id FROM outbox ORDER BY device_seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    db.execute(
        "INSERT INTO problems (op_id, collection, record_id, op, code, message, created_at) VALUES (?1, 'customers', ?2, ?3, 'out_of_scope', 'not yours', '2026-01-01T00:00:00.000Z')",
        rusqlite::params![op_id, record, op],
    )
    .unwrap();
    db.execute(
        "INSERT INTO conflicts (op_id, collection, record_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at)
         VALUES (?1, 'customers', ?2, 'phone', '\"111\"', '\"222\"', 'a', 'b', '2026-01-01T00:00:00.000Z')",
        rusqlite::params![op_id, record],
    )
    .unwrap();
}

#[test]
fn problems_retry_and_discard_and_conflicts_keep_mine_write_new_ops() {
    let p = Profile::logged_in();
    let c: Customer = p.json(&["customer", "add", "Acme", "--phone", "222"]);
    plant_problem_and_conflict(&p);
    let st: Status = p.json(&["status"]);
    assert_eq!((st.problems, st.conflicts, st.pending_ops), (1, 1, 1));

    let problems: Vec<ProblemOut> = p.json(&["problems", "list"]);
    assert_eq!(problems[0].code, "out_of_scope");
    let shown = p.ok(&["problems", "show", "1"]);
    assert!(
        shown.contains("not yours") && shown.contains("\"kind\": \"create\""),
        "{shown}"
    );
    let retried: ProblemOut = p.json(&["problems", "retry", &problems[0].id.to_string()]);
    assert_eq!(retried.resolution.as_deref(), Some("retried"));
    assert_eq!(
        p.pending(),
        2,
        "the retry is a new op with a fresh device_seq"
    );
    p.fails(&["problems", "discard", "1"], 1);
    let all: Vec<ProblemOut> = p.json(&["problems", "list", "--all"]);
    assert_eq!(all.len(), 1);

    let conflicts: Vec<ConflictOut> = p.json(&["conflicts", "list"]);
    assert_eq!(conflicts[0].field, "phone");
    assert_eq!(
        (conflicts[0].mine.as_str(), conflicts[0].theirs.as_str()),
        (Some("111"), Some("222"))
    );
    let resolved: ConflictOut = p.json(&[
        "conflicts",
        "resolve",
        &conflicts[0].id.to_string(),
        "--keep",
        "mine",
    ]);
    assert_eq!(resolved.resolution.as_deref(), Some("mine"));
    assert_eq!(p.pending(), 3);
    let back: CustomerShow = p.json(&["customer", "show", &c.id]);
    assert_eq!(back.customer.phone.as_deref(), Some("111"));
    let st: Status = p.json(&["status"]);
    assert_eq!((st.problems, st.conflicts), (0, 0));
}

/// A reader that stops early (`fieldsync visit list | head`) ends the
/// command quietly and successfully, for tables and for JSON.
#[test]
fn a_closed_stdout_ends_listing_quietly() {
    use std::io::Read;
    let p = Profile::logged_in();
    p.ok(&["customer", "add", "Acme Trading"]);
    let notes = "long notes ".repeat(20);
    let mut lines = String::new();
    for i in 0..400 {
        let line = serde_json::json!({
            "customer": "Acme",
            "at": format!("2026-03-01T{:02}:{:02}:00Z", i / 60, i % 60),
            "minutes": 30,
            "purpose": "review",
            "outcome": notes,
            "reason": "indoors",
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    p.import_visits(lines);
    for args in [&["visit", "list"][..], &["visit", "list", "--json"]] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("fieldsync"))
            .args(args)
            .env("FIELDSYNC_HOME", p.home.path())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("error"), "{args:?}: {err}");
    }
}

/// Each patch and transition carries the clock of the value this laptop
/// showed for every field it writes (none for a field it never had);
/// creates carry no base clocks.
#[test]
fn edits_carry_the_clocks_of_the_values_they_replace() {
    let p = Profile::logged_in();
    let c: Customer = p.json(&["customer", "add", "Acme", "--phone", "111"]);
    p.ok(&["customer", "edit", "Acme", "--phone", "222"]);
    p.ok(&[
        "customer",
        "edit",
        "Acme",
        "--phone",
        "333",
        "--address",
        "1 Bund Road",
    ]);
    let f: Value = p.json(&[
        "feedback",
        "add",
        "Acme",
        "--kind",
        "complaint",
        "--text",
        "late",
    ]);
    let feedback = f["id"].as_str().expect("feedback id").to_owned();
    p.ok(&["feedback", "move", &feedback, "--to", "in_progress"]);
    let db = rusqlite::Connection::open(p.path().join("fieldsync.db")).unwrap();
    let ops: Vec<Value> = db
        .prepare("SELECT op FROM outbox ORDER BY device_seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|t| serde_json::from_str(&t.unwrap()).unwrap())
        .collect();
    let [create, first, second, complaint, moved] = &ops[..] else {
        panic!("five ops: {ops:?}");
    };
    assert_eq!(create["record_id"], c.id.as_str());
    assert!(create.get("base").is_none(), "{create}");
    assert_eq!(first["base"], serde_json::json!({"phone": create["hlc"]}));
    // The address was never set here: no base clock for it.
    assert_eq!(second["base"], serde_json::json!({"phone": first["hlc"]}));
    assert!(complaint.get("base").is_none());
    assert_eq!(moved["kind"], "transition");
    assert_eq!(moved["base"]["status"], complaint["hlc"]);
}
