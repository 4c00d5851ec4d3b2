//! End-to-end: evaluations, incentive plans, rewards and improvement actions
//! with the real `fieldsync` CLI on several laptops against a real
//! `fieldsync-server`. HQ sets a template and a plan; the supervisor drafts,
//! rates and submits evaluations while the server is down; the reps
//! acknowledge or dispute; HQ calibrates; the suggested rewards and the
//! reviewed actions equal an independent calculation over the generated data.
//! Every test runs on the SQLite and the PostgreSQL store.

use chrono::{DateTime, Datelike, Duration, SecondsFormat, Utc};
use fieldsync_e2e::{ADMIN_PASSWORD, Device, StoreKind, TestServer, code, on_both_stores, stderr};
use serde_json::Value;

const PW: &str = "correct horse battery";

on_both_stores!(
    offline_evaluations_rewards_and_actions_match_an_independent_calculation,
    bad_management_input_is_refused_before_anything_is_written,
);

/// A small deterministic generator (the data varies with the seed, the
/// expectations are computed from what was generated).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

struct Company {
    server: TestServer,
    admin: Device,
}

impl Company {
    fn new(store: StoreKind) -> Self {
        let server = TestServer::start_on(store).expect("server");
        let admin = Device::new("admin").unwrap();
        admin.login(&server.url(), "admin", ADMIN_PASSWORD);
        admin.ok(&["admin", "team", "add", "north", "--region", "North"]);
        Self { server, admin }
    }

    fn user(&self, name: &str, role: &str, team: Option<&str>) -> Device {
        self.admin
            .add_user(&self.server.url(), name, role, (team, None), PW)
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What one rep did, as generated.
#[derive(Default)]
struct RepData {
    visits: u64,
    sales_minor: i64,
    csat: Vec<i64>,
    customers: Vec<String>,
}

/// Customers, visits, sales and surveys for one rep, all in the current month.
fn generate(rep: &Device, name: &str, rng: &mut Lcg, now: DateTime<Utc>) -> RepData {
    let month_start = now
        .date_naive()
        .with_day(1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let span = (now - Duration::hours(1) - month_start)
        .num_minutes()
        .max(1);
    let at = |rng: &mut Lcg| month_start + Duration::minutes(rng.next(span as u64) as i64);
    let mut d = RepData::default();
    for i in 0..(2 + rng.next(3)) {
        let c = format!("{name} customer {i}");
        rep.ok(&["customer", "add", &c]);
        d.customers.push(c);
    }
    let n = d.customers.len() as u64;
    for _ in 0..(4 + rng.next(12)) {
        let c = rng.next(n) as usize;
        let when = ts(at(rng));
        rep.ok(&[
            "visit",
            "log",
            &d.customers[c],
            "--at",
            &when,
            "--minutes",
            "30",
            "--purpose",
            "call",
            "--outcome",
            "ok",
            "--reason",
            "indoors",
        ]);
        d.visits += 1;
    }
    for _ in 0..=rng.next(4) {
        let c = rng.next(n) as usize;
        let minor = 100_000 + i64::try_from(rng.next(1_000_000)).unwrap();
        let amount = format!("{}.{:02}", minor / 100, minor % 100);
        let when = ts(at(rng));
        rep.ok(&[
            "sale",
            "add",
            &d.customers[c],
            "--amount",
            &amount,
            "--product",
            "plan",
            "--at",
            &when,
        ]);
        d.sales_minor += minor;
    }
    for _ in 0..=rng.next(3) {
        let c = rng.next(n) as usize;
        let csat = 3 + i64::try_from(rng.next(3)).unwrap();
        survey(rep, &d.customers[c], csat);
        d.csat.push(csat);
    }
    d
}

fn survey(rep: &Device, customer: &str, csat: i64) -> Value {
    rep.json(&[
        "feedback",
        "add",
        customer,
        "--kind",
        "survey",
        "--csat",
        &csat.to_string(),
        "--text",
        "survey",
    ])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn mean(v: &[i64]) -> f64 {
    v.iter().sum::<i64>() as f64 / v.len() as f64
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The scorecard, written independently of `sync-protocol`: the north
/// template v1 is visits 50 (linear), sales 30 (linear, target 20000),
/// csat 20 (threshold 4); the rating weighs 30 %.
fn expected_metric_score(d: &RepData, visits_target: f64) -> f64 {
    let visits = (100.0 * d.visits as f64 / visits_target).min(100.0);
    let sales = (100.0 * (d.sales_minor as f64 / 100.0) / 20_000.0).min(100.0);
    let csat = if mean(&d.csat) >= 4.0 { 100.0 } else { 0.0 };
    (50.0 * visits + 30.0 * sales + 20.0 * csat) / 100.0
}

fn expected_overall(metric_score: f64, rating: u8) -> f64 {
    round1(0.7 * metric_score + 0.3 * f64::from(rating - 1) * 25.0)
}

/// The plan, written independently: bronze >= 40 pays 500, silver >= 60
/// pays 1500, gold >= 75 pays 3000 plus 4 % per point above 70, capped at 3600.
fn expected_reward(score: f64) -> (Option<&'static str>, Option<f64>) {
    if score >= 75.0 {
        let extra = (3000.0 * 4.0 * (score - 70.0) / 100.0 * 100.0).round() / 100.0;
        (Some("gold"), Some((3000.0 + extra).min(3600.0)))
    } else if score >= 60.0 {
        (Some("silver"), Some(1500.0))
    } else if score >= 40.0 {
        (Some("bronze"), Some(500.0))
    } else {
        (None, None)
    }
}

fn one<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .expect("a JSON list")
        .iter()
        .find(|v| v[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value} in {list}"))
}

fn pending(d: &Device) -> u64 {
    d.json(&["status"])["pending_ops"].as_u64().unwrap()
}

fn offline_evaluations_rewards_and_actions_match_an_independent_calculation(store: StoreKind) {
    let mut co = Company::new(store);
    let hq = co.user("hq", "hq", None);
    let sup = co.user("sup", "supervisor", Some("north"));
    let ann = co.user("ann", "rep", Some("north"));
    let bob = co.user("bob", "rep", Some("north"));
    for d in [&hq, &sup] {
        d.ok(&["sync"]);
    }

    // HQ: a default template, the north template (v1) and the incentive plan.
    hq.ok(&[
        "evaluation",
        "template",
        "set",
        "--line",
        "visits:100:linear:5",
    ]);
    let v1 = hq.json(&[
        "evaluation",
        "template",
        "set",
        "--team",
        "north",
        "--line",
        "visits:50:linear:12",
        "--line",
        "sales:30:linear:20000",
        "--line",
        "csat:20:threshold:4",
        "--rating-weight",
        "30",
    ]);
    assert_eq!(v1["version"], 1);
    hq.ok(&[
        "incentive-plan",
        "set",
        "standard",
        "--basis",
        "score",
        "--target",
        "70",
        "--currency",
        "CNY",
        "--tier",
        "name=bronze,min=40,payout=500",
        "--tier",
        "name=silver,min=60,payout=1500",
        "--tier",
        "name=gold,min=75,payout=3000,accel=4,cap=3600",
    ]);
    hq.ok(&["sync"]);

    let now = Utc::now();
    let today = now.date_naive();
    let period = format!("{:04}-{:02}", today.year(), today.month());
    let mut rng = Lcg(u64::from(today.ordinal()) * 104_729 + 3);
    let a = generate(&ann, "ann", &mut rng, now);
    let b = generate(&bob, "bob", &mut rng, now);
    for d in [&ann, &bob, &sup] {
        d.ok(&["sync"]);
    }
    // Ann's visits target comes from her goal; Bob has none and gets the template's 12.
    let ann_goal = (a.visits + 3) as f64;
    sup.ok(&[
        "goal",
        "set",
        "ann",
        "--metric",
        "visits",
        "--target",
        &ann_goal.to_string(),
        "--period",
        &period,
    ]);

    // The server goes away: the supervisor drafts, rates and submits offline.
    co.server.kill();
    let draft = |d: &Device, rep: &str| d.json(&["evaluation", "draft", rep, "--period", &period]);
    let ea = draft(&sup, "ann");
    let eb = draft(&sup, "bob");
    let (ida, idb) = (
        ea["id"].as_str().unwrap().to_owned(),
        eb["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(ea["template_version"], 1);
    let lines = ea["lines"].as_array().unwrap();
    assert_eq!(lines[0]["metric"], "visits");
    assert_eq!(lines[0]["target_source"], "goal");
    assert!(close(lines[0]["target"].as_f64().unwrap(), ann_goal));
    assert!(close(lines[0]["actual"].as_f64().unwrap(), a.visits as f64));
    assert!(close(
        lines[1]["actual"].as_f64().unwrap(),
        a.sales_minor as f64 / 100.0
    ));
    assert!(close(lines[2]["actual"].as_f64().unwrap(), mean(&a.csat)));
    assert_eq!(eb["lines"][0]["target_source"], "template");
    let ms_a = expected_metric_score(&a, ann_goal);
    let ms_b = expected_metric_score(&b, 12.0);
    assert!(close(ea["metric_score"].as_f64().unwrap(), ms_a), "{ea}");
    assert!(close(eb["metric_score"].as_f64().unwrap(), ms_b), "{eb}");

    let rated_a = sup.json(&[
        "evaluation",
        "rate",
        &ida,
        "--rating",
        "4",
        "--comment",
        "Solid month",
    ]);
    sup.json(&[
        "evaluation",
        "rate",
        &idb,
        "--rating",
        "2",
        "--comment",
        "Too few visits",
    ]);
    assert!(close(
        rated_a["score"].as_f64().unwrap(),
        expected_overall(ms_a, 4)
    ));
    for id in [&ida, &idb] {
        sup.ok(&["evaluation", "submit", id]);
    }
    let offline = sup.run(&["sync"]);
    assert_eq!(
        code(&offline),
        3,
        "sync while the server is down says offline"
    );
    co.server.restart().unwrap();
    sup.ok(&["sync"]);

    // HQ changes the north template: the drafted evaluations keep version 1.
    let v2 = hq.json(&[
        "evaluation",
        "template",
        "set",
        "--team",
        "north",
        "--line",
        "visits:100",
    ]);
    assert_eq!(v2["version"], 2);
    hq.ok(&["sync"]);
    sup.ok(&["sync"]);
    let today_only = format!("{today}..{today}");
    let later = sup.json(&["evaluation", "draft", "ann", "--period", &today_only]);
    assert_eq!(
        later["template_version"], 2,
        "a new draft uses the current version"
    );
    assert_eq!(later["lines"].as_array().unwrap().len(), 1);
    sup.ok(&["sync"]);

    // The reps see their own evaluation with the supervisor's numbers.
    ann.ok(&["sync"]);
    bob.ok(&["sync"]);
    let seen_a = ann.json(&["evaluation", "show", &ida]);
    assert_eq!(seen_a["status"], "submitted");
    assert_eq!(seen_a["score"], rated_a["score"]);
    assert_eq!(seen_a["lines"], ea["lines"]);
    assert_eq!(
        ann.json(&["evaluation", "list"]).as_array().unwrap().len(),
        1,
        "a rep sees only their own evaluation"
    );
    ann.ok(&["evaluation", "ack", &ida]);
    let refused = ann.run(&["evaluation", "ack", &ida]);
    assert_ne!(code(&refused), 0, "acknowledging twice is not a valid move");
    assert!(
        stderr(&refused).contains("acknowledged"),
        "{}",
        stderr(&refused)
    );
    let no_comment = bob.run(&["evaluation", "ack", &idb, "--dispute"]);
    assert_ne!(code(&no_comment), 0);
    assert!(stderr(&no_comment).contains("comment"));
    bob.ok(&[
        "evaluation",
        "ack",
        &idb,
        "--dispute",
        "--comment",
        "Two visits are missing",
    ]);
    ann.ok(&["sync"]);
    bob.ok(&["sync"]);

    // HQ calibrates: Bob's disputed score goes up, Ann's is confirmed.
    hq.ok(&["sync"]);
    let score_a = expected_overall(ms_a, 4);
    let score_b = round1((expected_overall(ms_b, 2) + 7.5).min(100.0));
    let sup_try = sup.run(&[
        "evaluation",
        "calibrate",
        &idb,
        "--score",
        "90",
        "--reason",
        "x",
    ]);
    assert_ne!(code(&sup_try), 0, "only HQ calibrates");
    let fb = hq.json(&[
        "evaluation",
        "calibrate",
        &idb,
        "--score",
        &score_b.to_string(),
        "--reason",
        "Missing visits confirmed",
    ]);
    assert_eq!(fb["status"], "final");
    assert_eq!(fb["rep_comment"], "Two visits are missing");
    hq.ok(&[
        "evaluation",
        "calibrate",
        &ida,
        "--score",
        &score_a.to_string(),
        "--reason",
        "Confirmed",
    ]);
    hq.ok(&["sync"]);
    sup.ok(&["sync"]);
    ann.ok(&["sync"]);

    // Every party sees the same numbers.
    let at_hq = hq.json(&["evaluation", "list", "--period", &period]);
    let at_sup = sup.json(&["evaluation", "list", "--period", &period]);
    for id in [&ida, &idb] {
        let (h, s) = (one(&at_hq, "id", id), one(&at_sup, "id", id));
        for k in [
            "status",
            "score",
            "metric_score",
            "lines",
            "tier",
            "template_version",
        ] {
            assert_eq!(h[k], s[k], "{k} of {id}");
        }
    }
    let final_a = ann.json(&["evaluation", "show", &ida]);
    assert_eq!(final_a["status"], "final");
    assert_eq!(final_a["score"], one(&at_hq, "id", &ida)["score"]);
    assert_eq!(one(&at_hq, "id", &ida)["template_version"], 1);

    // Suggested rewards equal the independent tier arithmetic, on HQ's and the supervisor's laptop.
    for d in [&hq, &sup] {
        let suggested = d.json(&["reward", "suggest", "--period", &period, "--team", "north"]);
        for (rep, score) in [("ann", score_a), ("bob", score_b)] {
            let s = one(&suggested, "rep", rep);
            let (tier, payout) = expected_reward(score);
            assert!(
                close(s["suggestion"]["value"].as_f64().unwrap(), score),
                "{s}"
            );
            assert_eq!(s["suggestion"]["tier"].as_str(), tier, "{s}");
            assert_eq!(s["suggestion"]["payout"].as_f64(), payout, "{s}");
            assert!(!s["suggestion"]["steps"].as_array().unwrap().is_empty());
        }
    }
    if let (Some(_), Some(p)) = expected_reward(score_a) {
        let amount = format!("{p:.2}");
        sup.ok(&[
            "reward",
            "grant",
            "ann",
            "--kind",
            "bonus",
            "--amount",
            &amount,
            "--period",
            &period,
            "--reason",
            "Incentive plan",
        ]);
        sup.ok(&["sync"]);
        ann.ok(&["sync"]);
        let got = ann.json(&["reward", "list"]);
        let minor = got[0]["amount"]["minor"].as_i64().unwrap();
        assert_eq!(minor, (p * 100.0).round() as i64);
    }

    // Improvement actions: a low CSAT opens a complaint that the action answers.
    let low = survey(&ann, &a.customers[0], 1);
    let complaint = low["follow_up_id"].as_str().unwrap().to_owned();
    ann.ok(&["sync"]);
    sup.ok(&["sync"]);
    let due = (today + Duration::days(7)).to_string();
    let act_a = sup.json(&[
        "action",
        "add",
        "--problem",
        "Low CSAT",
        "--action",
        "Call every detractor within 48 h",
        "--owner",
        "ann",
        "--due",
        &due,
        "--metric",
        "csat",
        "--rep",
        "ann",
        "--window",
        "31",
        "--complaint",
        &complaint,
    ]);
    let mut csat_a = a.csat.clone();
    csat_a.push(1);
    assert!(close(act_a["baseline"].as_f64().unwrap(), mean(&csat_a)));
    assert_eq!(act_a["complaints"][0], complaint.as_str());
    let act_b = sup.json(&[
        "action",
        "add",
        "--problem",
        "Few visits",
        "--action",
        "Plan routes weekly",
        "--owner",
        "sup",
        "--due",
        &today.to_string(),
        "--metric",
        "visits",
        "--rep",
        "bob",
        "--window",
        "31",
    ]);
    assert!(close(act_b["baseline"].as_f64().unwrap(), b.visits as f64));
    let act_team = sup.json(&[
        "action",
        "add",
        "--problem",
        "Team visits low",
        "--action",
        "Joint visits",
        "--owner",
        "sup",
        "--due",
        &due,
        "--metric",
        "visits",
        "--team",
        "north",
        "--window",
        "31",
    ]);
    assert!(
        close(
            act_team["baseline"].as_f64().unwrap(),
            (a.visits + b.visits) as f64
        ),
        "a team action's baseline rolls up its members: {act_team}"
    );
    sup.ok(&["sync"]);
    ann.ok(&["sync"]);
    let linked = ann.json(&["feedback", "show", &complaint]);
    assert_eq!(linked["action_id"], act_a["id"]);
    for _ in 0..3 {
        survey(&ann, &a.customers[0], 5);
    }
    csat_a.extend([5, 5, 5]);
    ann.ok(&["sync"]);
    sup.ok(&["sync"]);
    let due_list = sup.json(&["action", "list", "--due"]);
    assert_eq!(due_list.as_array().unwrap().len(), 1, "{due_list}");
    assert_eq!(due_list[0]["id"], act_b["id"]);
    let ra = sup.json(&["action", "review", act_a["id"].as_str().unwrap()]);
    assert!(close(ra["measured"].as_f64().unwrap(), mean(&csat_a)));
    assert_eq!(ra["verdict"], "improved");
    assert_eq!(ra["status"], "closed");
    let rb = sup.json(&["action", "review", act_b["id"].as_str().unwrap()]);
    assert!(close(rb["measured"].as_f64().unwrap(), b.visits as f64));
    assert_eq!(rb["verdict"], "no_change");
    assert_eq!(rb["status"], "open");
    let again = sup.run(&["action", "review", act_a["id"].as_str().unwrap()]);
    assert_ne!(code(&again), 0, "a closed action is not reviewed again");
    sup.ok(&["sync"]);
    hq.ok(&["sync"]);
    let at_hq = hq.json(&["action", "list"]);
    assert_eq!(
        one(&at_hq, "id", act_a["id"].as_str().unwrap())["verdict"],
        "improved"
    );
    assert_eq!(sup.json(&["status"])["problems"], 0);
    assert_eq!(ann.json(&["status"])["problems"], 0);
}

fn bad_management_input_is_refused_before_anything_is_written(store: StoreKind) {
    let co = Company::new(store);
    let hq = co.user("hq", "hq", None);
    let sup = co.user("sup", "supervisor", Some("north"));
    let ann = co.user("ann", "rep", Some("north"));
    for d in [&hq, &sup, &ann] {
        d.ok(&["sync"]);
    }
    let period = format!("{:04}-{:02}", Utc::now().year(), Utc::now().month());
    let refused = |d: &Device, args: &[&str], says: &str| {
        let before = pending(d);
        let out = d.run(args);
        assert_ne!(code(&out), 0, "{} {args:?} succeeded", d.name);
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: expected {says:?} in {err}");
        assert_eq!(pending(d), before, "{args:?} wrote something");
    };
    refused(
        &sup,
        &["evaluation", "draft", "ann", "--period", &period],
        "no evaluation template",
    );
    refused(
        &sup,
        &["evaluation", "template", "set", "--line", "visits:1"],
        "cannot edit evaluation templates",
    );
    refused(
        &hq,
        &["evaluation", "template", "set", "--line", "visits:0"],
        "weight",
    );
    refused(
        &hq,
        &[
            "evaluation",
            "template",
            "set",
            "--line",
            "visits:1",
            "--line",
            "visits:2",
        ],
        "twice",
    );
    refused(
        &hq,
        &["evaluation", "template", "set", "--line", "visits:1:steep"],
        "linear or threshold",
    );
    refused(
        &hq,
        &[
            "incentive-plan",
            "set",
            "p",
            "--basis",
            "score",
            "--tier",
            "name=a,min=1",
        ],
        "payout",
    );
    refused(
        &hq,
        &[
            "incentive-plan",
            "set",
            "p",
            "--basis",
            "score",
            "--tier",
            "name=a,min=1,payout=5,cap=2",
        ],
        "cap is below",
    );
    refused(
        &sup,
        &[
            "incentive-plan",
            "set",
            "p",
            "--basis",
            "score",
            "--tier",
            "name=a,min=1,payout=5",
        ],
        "cannot set incentive plans",
    );
    hq.ok(&[
        "evaluation",
        "template",
        "set",
        "--line",
        "visits:1:linear:10",
    ]);
    hq.ok(&["sync"]);
    sup.ok(&["sync"]);
    refused(
        &ann,
        &["evaluation", "draft", "ann", "--period", &period],
        "cannot draft evaluations",
    );
    refused(
        &sup,
        &["evaluation", "draft", "ann", "--period", "2026-13"],
        "not a period",
    );
    refused(
        &sup,
        &["evaluation", "draft", "hq", "--period", &period],
        "not a rep",
    );
    let e = sup.json(&["evaluation", "draft", "ann", "--period", &period]);
    let id = e["id"].as_str().unwrap();
    refused(&sup, &["evaluation", "submit", id], "rate it first");
    let usage = sup.run(&["evaluation", "rate", id, "--rating", "6", "--comment", "x"]);
    assert_eq!(code(&usage), 2, "a rating outside 1-5 is a usage error");
    refused(
        &sup,
        &["evaluation", "rate", id, "--rating", "3", "--comment", "  "],
        "comment",
    );
    for d in [&sup, &ann, &hq] {
        d.ok(&["sync"]);
    }
    assert!(
        ann.json(&["evaluation", "list"])
            .as_array()
            .unwrap()
            .is_empty(),
        "a rep does not see drafts: {}",
        ann.ok(&["evaluation", "list", "--json"])
    );
    refused(&ann, &["evaluation", "show", id], "still a draft");
    refused(&ann, &["evaluation", "ack", id], "only a submitted");
    refused(
        &hq,
        &[
            "evaluation",
            "calibrate",
            id,
            "--score",
            "50",
            "--reason",
            "r",
        ],
        "only an acknowledged or disputed",
    );
    refused(
        &sup,
        &["reward", "grant", "ann", "--kind", "bonus", "--reason", "x"],
        "needs an amount",
    );
    refused(
        &sup,
        &[
            "reward",
            "grant",
            "ann",
            "--kind",
            "bonus",
            "--amount=-5",
            "--reason",
            "x",
        ],
        "amount",
    );
    refused(
        &ann,
        &[
            "reward",
            "grant",
            "ann",
            "--kind",
            "recognition",
            "--reason",
            "me",
        ],
        "cannot grant rewards",
    );
    refused(
        &sup,
        &[
            "action",
            "add",
            "--problem",
            "p",
            "--action",
            "a",
            "--owner",
            "ann",
            "--due",
            "2026-12-01",
            "--metric",
            "csat",
            "--rep",
            "ann",
        ],
        "no baseline",
    );
    refused(
        &sup,
        &[
            "action",
            "add",
            "--problem",
            "p",
            "--action",
            "a",
            "--owner",
            "ann",
            "--due",
            "tomorrow",
            "--metric",
            "visits",
            "--rep",
            "ann",
        ],
        "not a date",
    );
    refused(
        &sup,
        &[
            "action",
            "add",
            "--problem",
            "p",
            "--action",
            "a",
            "--owner",
            "ann",
            "--due",
            "2026-12-01",
            "--metric",
            "happiness",
            "--rep",
            "ann",
        ],
        "not a metric",
    );
    refused(
        &ann,
        &[
            "action",
            "add",
            "--problem",
            "p",
            "--action",
            "a",
            "--owner",
            "ann",
            "--due",
            "2026-12-01",
            "--metric",
            "visits",
            "--rep",
            "ann",
        ],
        "cannot add improvement actions",
    );
    assert!(
        hq.json(&["reward", "list"]).as_array().unwrap().is_empty(),
        "nothing was granted"
    );
}
