//! `/v1/reports/*` against an independent calculation over generated data:
//! three teams in two regions, hundreds of visits, feedback of every kind,
//! a rep with no customers, a rep with a single visit, a rep who never
//! synced, and a period with no data.

use crate::helpers::{Device, TestApp, error_of, json_of, spawn_app};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use sync_protocol::schema::Role;
use sync_protocol::{Op, RecordId};

#[derive(Debug, Deserialize)]
#[allow(clippy::struct_field_names)]
struct Report {
    report: String,
    period: String,
    freshness: Freshness,
    tables: Vec<Table>,
}

#[derive(Debug, Deserialize)]
struct Freshness {
    complete_through: Option<String>,
    stale_reps: Vec<String>,
    line: String,
}

#[derive(Debug, Deserialize)]
struct Table {
    name: String,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    totals: Option<Vec<Value>>,
}

impl Report {
    fn table(&self, name: &str) -> &Table {
        self.tables
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no table {name}"))
    }
}

impl Table {
    fn col(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns))
    }

    fn row(&self, key: &str) -> &Vec<Value> {
        self.rows
            .iter()
            .find(|r| r[0].as_str() == Some(key))
            .unwrap_or_else(|| panic!("no row {key} in {}", self.name))
    }

    fn get<'a>(&self, row: &'a [Value], col: &str) -> &'a Value {
        &row[self.col(col)]
    }
}

/// What the test generated for one rep, kept to recompute every figure.
#[derive(Default)]
struct RepModel {
    name: String,
    team: String,
    customers: Vec<(RecordId, DateTime<Utc>)>,
    /// started_at, customer, expected verdict
    visits: Vec<(DateTime<Utc>, RecordId, &'static str)>,
    /// minor units (CNY), sold_at, voided
    sales: Vec<(i64, DateTime<Utc>, bool)>,
    feedback: Vec<Fb>,
}

#[derive(Clone)]
struct Fb {
    kind: &'static str,
    csat: Option<i64>,
    nps: Option<i64>,
    category: Option<&'static str>,
    opened: DateTime<Utc>,
    resolved: Option<DateTime<Utc>>,
}

const CATEGORIES: [&str; 3] = ["送货, \"延迟\"", "billing", "quality\nsecond line"];

fn ts(t: DateTime<Utc>) -> String {
    sync_protocol::time::format_ts(t)
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 26, 8, 0, 0)
        .single()
        .expect("date")
        + Duration::days(i64::from(day))
        + Duration::hours(i64::from(hour))
}

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

/// Generate and push one rep's records.
fn generate(
    app: &TestApp,
    dev: &mut Device,
    model: &mut RepModel,
    customers: usize,
    visits: usize,
    seed: u64,
    reuse: bool,
) {
    let mut rng = Lcg(seed);
    let mut ops: Vec<Op> = Vec::new();
    let base_lat = 31.2 + (seed as f64) * 0.1;
    for k in 0..customers {
        let created = at(k as u32 * 3, 0);
        let (cid, op) = dev.create(
            "customers",
            json!({"name": format!("客户 {k}, \"{}\"", model.name), "created_at": ts(created),
                   "location": {"lat": base_lat + k as f64 * 0.01, "lon": 121.4}}),
        );
        model.customers.push((cid, created));
        ops.push(op);
    }
    for j in 0..visits {
        let k = j % customers;
        // A lone visit falls inside October; series start late in September.
        let origin = if visits == 1 { at(10, 0) } else { at(0, 0) };
        let started = origin + Duration::hours(11 * j as i64);
        let far = rng.next(7) == 0;
        let lat = base_lat + k as f64 * 0.01 + j as f64 * 2e-5 + if far { 0.03 } else { 0.0 };
        let (_, op) = dev.create(
            "visits",
            json!({"customer_id": model.customers[k].0, "started_at": ts(started),
                   "check_in": {"lat": lat, "lon": 121.4}, "check_in_accuracy_m": 10}),
        );
        ops.push(op);
        model.visits.push((
            started,
            model.customers[k].0,
            if far { "out_of_range" } else { "verified" },
        ));
    }
    if reuse {
        // The same coordinates on two days: both visits become suspicious.
        for d in 0..2 {
            let started = at(0, 0) + Duration::hours(11 * visits as i64 + 30 * d);
            let (_, op) = dev.create(
                "visits",
                json!({"customer_id": model.customers[0].0, "started_at": ts(started),
                       "check_in": {"lat": base_lat + 0.0001, "lon": 121.4}, "check_in_accuracy_m": 5}),
            );
            ops.push(op);
            model
                .visits
                .push((started, model.customers[0].0, "suspicious"));
        }
    }
    if customers > 0 && visits > 1 {
        for s in 0..10u32 {
            let sold = at(2 + s * 4, 3);
            let minor = 1_000 + rng.next(100_000) as i64;
            let voided = s % 5 == 4;
            let mut f = json!({"customer_id": model.customers[s as usize % customers].0,
                               "amount": {"minor": minor, "currency": "CNY"},
                               "product": "widgets", "sold_at": ts(sold)});
            if voided {
                f["voided_at"] = json!(ts(sold + Duration::hours(1)));
                f["void_reason"] = json!("wrong customer");
            }
            ops.push(dev.create("sales", f).1);
            model.sales.push((minor, sold, voided));
        }
        let mut first_low: Option<RecordId> = None;
        for i in 0..24u32 {
            let kind = ["survey", "complaint", "suggestion", "praise"][i as usize % 4];
            let opened = at(1 + i * 3 / 2, i % 7);
            let cid = model.customers[i as usize % customers].0;
            let mut f = json!({"customer_id": cid, "kind": kind, "text": "comment, with \"quotes\"", "opened_at": ts(opened)});
            let mut fb = Fb {
                kind,
                csat: None,
                nps: None,
                category: None,
                opened,
                resolved: None,
            };
            if kind == "survey" || kind == "praise" {
                let csat = 1 + rng.next(5) as i64;
                let nps = rng.next(11) as i64;
                f["csat"] = json!(csat);
                f["nps"] = json!(nps);
                fb.csat = Some(csat);
                fb.nps = Some(nps);
            }
            if kind == "complaint" {
                let cat = CATEGORIES[rng.next(3) as usize];
                f["category"] = json!(cat);
                fb.category = Some(cat);
            }
            let (fid, op) = dev.create("feedback", f);
            ops.push(op);
            if kind == "complaint" && i % 8 == 1 {
                let resolved = opened + Duration::minutes(90 + 37 * i64::from(i));
                ops.push(dev.transition(
                    "feedback",
                    fid,
                    "status",
                    "open",
                    "resolved",
                    json!({"resolution": "fixed", "resolved_at": ts(resolved)}),
                ));
                fb.resolved = Some(resolved);
            }
            if first_low.is_none()
                && (fb.csat.is_some_and(|c| c <= 2) || fb.nps.is_some_and(|n| n <= 6))
            {
                first_low = Some(fid);
            }
            model.feedback.push(fb);
        }
        if let Some(low) = first_low {
            ops.push(
                dev.create(
                    "feedback",
                    json!({"customer_id": model.customers[0].0, "kind": "suggestion", "text": "called back",
                           "follow_up_of": low, "opened_at": ts(at(50, 0))}),
                )
                .1,
            );
        }
    }
    let res = app.push(dev, ops);
    for o in &res.outcomes {
        let v = serde_json::to_value(&o.outcome).expect("outcome");
        assert_eq!(v["status"], "applied", "{v}");
    }
}

/// The figures of a set of reps over October 2026, computed from the model.
#[derive(Debug)]
struct Expected {
    visits: usize,
    customers_visited: usize,
    coverage: Option<f64>,
    sales: f64,
    new_customers: usize,
    csat: Option<f64>,
    nps: Option<f64>,
    complaints_opened: usize,
    complaints_resolved: usize,
    resolution_hours: Option<f64>,
}

fn in_oct(t: DateTime<Utc>) -> bool {
    t >= Utc
        .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
        .single()
        .expect("d")
        && t < Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .single()
            .expect("d")
}

fn expected(reps: &[&RepModel]) -> Expected {
    let visits: Vec<_> = reps
        .iter()
        .flat_map(|r| r.visits.iter())
        .filter(|v| in_oct(v.0))
        .collect();
    let visited: BTreeSet<RecordId> = visits.iter().map(|v| v.1).collect();
    let assigned: usize = reps.iter().map(|r| r.customers.len()).sum();
    let fb: Vec<&Fb> = reps.iter().flat_map(|r| r.feedback.iter()).collect();
    let csats: Vec<f64> = fb
        .iter()
        .filter(|f| in_oct(f.opened))
        .filter_map(|f| f.csat)
        .map(|c| c as f64)
        .collect();
    let npss: Vec<i64> = fb
        .iter()
        .filter(|f| in_oct(f.opened))
        .filter_map(|f| f.nps)
        .collect();
    let resolved: Vec<f64> = fb
        .iter()
        .filter(|f| f.kind == "complaint")
        .filter_map(|f| {
            f.resolved
                .filter(|r| in_oct(*r))
                .map(|r| (r - f.opened).num_seconds() as f64 / 3600.0)
        })
        .collect();
    Expected {
        visits: visits.len(),
        customers_visited: visited.len(),
        coverage: (assigned > 0).then(|| visited.len() as f64 / assigned as f64),
        sales: reps
            .iter()
            .flat_map(|r| r.sales.iter())
            .filter(|s| !s.2 && in_oct(s.1))
            .map(|s| s.0 as f64 / 100.0)
            .sum(),
        new_customers: reps
            .iter()
            .flat_map(|r| r.customers.iter())
            .filter(|c| in_oct(c.1))
            .count(),
        csat: (!csats.is_empty()).then(|| csats.iter().sum::<f64>() / csats.len() as f64),
        nps: (!npss.is_empty()).then(|| {
            let p = npss.iter().filter(|n| **n >= 9).count() as f64;
            let d = npss.iter().filter(|n| **n <= 6).count() as f64;
            100.0 * (p - d) / npss.len() as f64
        }),
        complaints_opened: fb
            .iter()
            .filter(|f| f.kind == "complaint" && in_oct(f.opened))
            .count(),
        complaints_resolved: resolved.len(),
        resolution_hours: (!resolved.is_empty())
            .then(|| resolved.iter().sum::<f64>() / resolved.len() as f64),
    }
}

fn close(v: &Value, want: Option<f64>, what: &str) {
    match want {
        None => assert!(v.is_null(), "{what}: want no data, got {v}"),
        Some(w) => {
            let got = v
                .as_f64()
                .unwrap_or_else(|| panic!("{what}: want {w}, got {v}"));
            assert!((got - w).abs() < 1e-3, "{what}: want {w}, got {got}");
        }
    }
}

fn check_row(t: &Table, row: &[Value], e: &Expected, who: &str) {
    let n = |c: &str| t.get(row, c).as_f64();
    assert_eq!(n("visits"), Some(e.visits as f64), "{who} visits");
    assert_eq!(
        n("customers_visited"),
        Some(e.customers_visited as f64),
        "{who} customers_visited"
    );
    close(
        t.get(row, "coverage"),
        e.coverage,
        &format!("{who} coverage"),
    );
    close(t.get(row, "sales"), Some(e.sales), &format!("{who} sales"));
    assert_eq!(
        n("new_customers"),
        Some(e.new_customers as f64),
        "{who} new_customers"
    );
    close(t.get(row, "csat"), e.csat, &format!("{who} csat"));
    close(t.get(row, "nps"), e.nps, &format!("{who} nps"));
    assert_eq!(
        n("complaints_opened"),
        Some(e.complaints_opened as f64),
        "{who} complaints_opened"
    );
    assert_eq!(
        n("complaints_resolved"),
        Some(e.complaints_resolved as f64),
        "{who} complaints_resolved"
    );
    close(
        t.get(row, "resolution_hours"),
        e.resolution_hours,
        &format!("{who} resolution_hours"),
    );
}

struct World {
    app: TestApp,
    hq: Device,
    sup_north: Device,
    rep: Device,
    models: Vec<RepModel>,
}

fn world() -> World {
    let app = spawn_app();
    for (name, region) in [("north", "East"), ("south", "East"), ("west", "West")] {
        let _: Value = json_of(
            app.post(
                "/v1/admin/teams",
                Some(&app.admin.token),
                &json!({"name": name, "region": region}),
            ),
            200,
        );
    }
    let hq = app.user_device("hq", Role::Hq, None);
    let sup_north = app.user_device("sue", Role::Supervisor, Some("north"));
    let mut models = Vec::new();
    let mut first_rep = None;
    // name, team, customers, visits, reuse
    let plan: [(&str, &str, usize, usize, bool); 6] = [
        ("ann", "north", 4, 70, true),
        ("bea", "north", 5, 64, false),
        ("bob", "south", 3, 72, false),
        ("carl", "south", 6, 60, false),
        ("dora", "west", 0, 0, false),
        ("erin", "west", 1, 1, false),
    ];
    for (i, (name, team, customers, visits, reuse)) in plan.into_iter().enumerate() {
        let mut dev = app.user_device(name, Role::Rep, Some(team));
        let mut model = RepModel {
            name: name.into(),
            team: team.into(),
            ..RepModel::default()
        };
        if customers > 0 {
            generate(
                &app,
                &mut dev,
                &mut model,
                customers,
                visits,
                i as u64 + 1,
                reuse,
            );
        }
        models.push(model);
        if first_rep.is_none() {
            first_rep = Some(dev);
        }
    }
    // A rep who never logged in: listed as not synced.
    app.create_user("frank", Role::Rep, Some("west"), None);
    models.push(RepModel {
        name: "frank".into(),
        team: "west".into(),
        ..RepModel::default()
    });
    World {
        app,
        hq,
        sup_north,
        rep: first_rep.expect("a rep"),
        models,
    }
}

fn report(w: &World, dev: &Device, query: &str) -> Report {
    json_of(
        w.app.get(&format!("/v1/reports/{query}"), Some(&dev.token)),
        200,
    )
}

#[test]
fn reports_equal_an_independent_calculation_and_respect_visibility() {
    let w = world();
    let all: Vec<&RepModel> = w.models.iter().collect();
    let total_visits: usize = w.models.iter().map(|m| m.visits.len()).sum();
    assert!(
        total_visits >= 250,
        "hundreds of visits, got {total_visits}"
    );

    // Scorecard by rep, HQ: every row and the totals.
    let r = report(&w, &w.hq, "scorecard?period=2026-10");
    assert_eq!(
        (r.report.as_str(), r.period.as_str()),
        ("scorecard", "2026-10")
    );
    let t = r.table("rows");
    assert_eq!(t.rows.len(), w.models.len());
    for m in &w.models {
        check_row(t, t.row(&m.name), &expected(&[m]), &m.name);
    }
    check_row(
        t,
        t.totals.as_ref().expect("totals"),
        &expected(&all),
        "total",
    );
    let dora = t.row("dora");
    assert!(
        t.get(dora, "coverage").is_null(),
        "a rep with no customers has no coverage"
    );
    assert_eq!(
        t.get(t.row("erin"), "visits").as_f64(),
        Some(1.0),
        "a single visit"
    );

    // Freshness: frank never synced; everyone else did just now.
    assert_eq!(r.freshness.stale_reps, vec!["frank".to_owned()]);
    assert!(r.freshness.complete_through.is_some());
    assert!(r.freshness.line.contains("frank"), "{}", r.freshness.line);

    // By team and by region.
    let by_team = report(&w, &w.hq, "scorecard?period=2026-10&by=team");
    let t = by_team.table("rows");
    for team in ["north", "south", "west"] {
        let members: Vec<&RepModel> = w.models.iter().filter(|m| m.team == team).collect();
        check_row(t, t.row(team), &expected(&members), team);
    }
    let by_region = report(&w, &w.hq, "scorecard?period=2026-10&by=region");
    let t = by_region.table("rows");
    let east: Vec<&RepModel> = w.models.iter().filter(|m| m.team != "west").collect();
    check_row(t, t.row("East"), &expected(&east), "East");
    assert_eq!(t.get(t.row("East"), "teams"), "north, south");

    // A supervisor: only their team, in rows and totals.
    let north: Vec<&RepModel> = w.models.iter().filter(|m| m.team == "north").collect();
    let r = report(&w, &w.sup_north, "scorecard?period=2026-10");
    let t = r.table("rows");
    let names: Vec<&str> = t.rows.iter().filter_map(|r| r[0].as_str()).collect();
    assert_eq!(names, vec!["ann", "bea"]);
    check_row(
        t,
        t.totals.as_ref().expect("totals"),
        &expected(&north),
        "north total",
    );
    let f = report(&w, &w.sup_north, "feedback?period=2026-10");
    let total = f.table("by_category").totals.clone().expect("totals");
    assert_eq!(
        total[1].as_u64(),
        Some(expected(&north).complaints_opened as u64),
        "supervisor's complaint totals are their team's"
    );
    let (status, code) = error_of(w.app.get(
        "/v1/reports/scorecard?period=2026-10&team=south",
        Some(&w.sup_north.token),
    ));
    assert_eq!((status, code.as_str()), (403, "forbidden"));

    // A rep cannot pull any report.
    for kind in [
        "scorecard",
        "feedback",
        "visits",
        "goals",
        "training",
        "devices",
    ] {
        let (status, code) = error_of(w.app.get(
            &format!("/v1/reports/{kind}?period=2026-10"),
            Some(&w.rep.token),
        ));
        assert_eq!((status, code.as_str()), (403, "forbidden"), "{kind}");
    }

    // A period with no data.
    let empty = report(&w, &w.hq, "scorecard?period=2025-01");
    let t = empty.table("rows");
    let totals = t.totals.as_ref().expect("totals");
    assert_eq!(t.get(totals, "visits").as_f64(), Some(0.0));
    assert!(t.get(totals, "csat").is_null());
    assert!(t.get(totals, "resolution_hours").is_null());

    // Bad input.
    for bad in [
        "scorecard?period=2026-13",
        "scorecard",
        "scorecard?from=2026-10-05&to=2026-10-01",
        "scorecard?period=2026-10&format=xml",
    ] {
        let (status, code) = error_of(w.app.get(&format!("/v1/reports/{bad}"), Some(&w.hq.token)));
        assert_eq!((status, code.as_str()), (400, "malformed_request"), "{bad}");
    }
    let (status, _) = error_of(
        w.app
            .get("/v1/reports/nonsense?period=2026-10", Some(&w.hq.token)),
    );
    assert_eq!(status, 404);
}

#[test]
#[allow(clippy::many_single_char_names)]
fn feedback_and_visit_reports_equal_an_independent_calculation() {
    let w = world();
    let all: Vec<&RepModel> = w.models.iter().collect();
    let fb: Vec<&Fb> = all.iter().flat_map(|m| m.feedback.iter()).collect();

    let r = report(&w, &w.hq, "feedback?period=2026-10");
    let weekly = r.table("weekly");
    let totals = weekly.totals.as_ref().expect("totals");
    let e = expected(&all);
    close(weekly.get(totals, "csat"), e.csat, "csat");
    close(weekly.get(totals, "nps"), e.nps, "nps");
    // Week by week (clipped to October).
    let oct1 = NaiveDate::from_ymd_opt(2026, 10, 1).expect("d");
    for row in &weekly.rows {
        let from: NaiveDate = weekly
            .get(row, "from")
            .as_str()
            .expect("from")
            .parse()
            .expect("d");
        let to: NaiveDate = weekly
            .get(row, "to")
            .as_str()
            .expect("to")
            .parse()
            .expect("d");
        assert!(from >= oct1);
        let scores: Vec<f64> = fb
            .iter()
            .filter(|f| {
                let d = f.opened.date_naive();
                d >= from && d <= to
            })
            .filter_map(|f| f.csat)
            .map(|c| c as f64)
            .collect();
        let want = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
        close(weekly.get(row, "csat"), want, &format!("csat {from}"));
    }

    // Complaints by category: counts, mean and p90 resolution hours.
    let cats = r.table("by_category");
    let mut by_cat: BTreeMap<&str, (usize, Vec<f64>)> = BTreeMap::new();
    for f in fb
        .iter()
        .filter(|f| f.kind == "complaint" && in_oct(f.opened))
    {
        let e = by_cat.entry(f.category.expect("category")).or_default();
        e.0 += 1;
        if let Some(r) = f.resolved {
            e.1.push((r - f.opened).num_seconds() as f64 / 3600.0);
        }
    }
    assert_eq!(cats.rows.len(), by_cat.len());
    for (cat, (n, mut hours)) in by_cat {
        let row = cats.row(cat);
        assert_eq!(
            cats.get(row, "complaints").as_u64(),
            Some(n as u64),
            "{cat}"
        );
        assert_eq!(
            cats.get(row, "resolved").as_u64(),
            Some(hours.len() as u64),
            "{cat}"
        );
        hours.sort_by(f64::total_cmp);
        let mean = (!hours.is_empty()).then(|| hours.iter().sum::<f64>() / hours.len() as f64);
        close(cats.get(row, "mean_hours"), mean, &format!("{cat} mean"));
        let p90 = (!hours.is_empty()).then(|| {
            let rank = (0.9 * hours.len() as f64).ceil() as usize;
            hours[rank.max(1) - 1]
        });
        close(cats.get(row, "p90_hours"), p90, &format!("{cat} p90"));
    }
    // Every open complaint is old (opened in September/October 2026).
    let ages = r.table("open_by_age");
    let open_now = fb
        .iter()
        .filter(|f| {
            f.kind == "complaint"
                && f.resolved.is_none()
                && f.opened.date_naive() < NaiveDate::from_ymd_opt(2026, 11, 1).expect("d")
        })
        .count();
    assert_eq!(
        ages.totals.as_ref().expect("totals")[1].as_u64(),
        Some(open_now as u64)
    );
    let lc = r.table("loop_closure");
    let low = fb
        .iter()
        .filter(|f| {
            in_oct(f.opened) && (f.csat.is_some_and(|c| c <= 2) || f.nps.is_some_and(|n| n <= 6))
        })
        .count();
    assert_eq!(lc.get(&lc.rows[0], "low_scores").as_u64(), Some(low as u64));

    // CSV: RFC 4180, UTF-8, Chinese text, commas, quotes and newlines intact.
    let resp = w.app.get(
        "/v1/reports/feedback?period=2026-10&format=csv&section=by_category",
        Some(&w.hq.token),
    );
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/csv")
    );
    let body = resp.text().expect("body");
    assert!(body.contains("\r\n"));
    let mut rd = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, cats.columns);
    let parsed: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.expect("record").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(parsed.len(), cats.rows.len() + 1, "rows and the totals row");
    for (csv_row, json_row) in parsed.iter().zip(&cats.rows) {
        assert_eq!(csv_row[0], json_row[0].as_str().expect("category"));
        assert_eq!(csv_row[1], json_row[1].to_string());
    }
    assert!(parsed.iter().any(|r| r[0] == CATEGORIES[0]));
    assert!(parsed.iter().any(|r| r[0] == CATEGORIES[2]));

    // Team GPS rules: HQ widens south's radius to 5 km, so south's far
    // check-ins (about 3.3 km) count as verified; supervisors may only read
    // their own team's rules.
    let put = |dev: &Device, team: &str, body: Value| {
        w.app
            .client
            .put(w.app.url(&format!("/v1/reports/gps-rules/{team}")))
            .bearer_auth(&dev.token)
            .json(&body)
            .send()
            .expect("put")
    };
    let rules: Value = json_of(put(&w.hq, "south", json!({"radius_m": 5000.0})), 200);
    assert_eq!(rules["radius_m"], 5000.0);
    assert_eq!(
        rules["max_accuracy_m"], 1000.0,
        "other thresholds keep their defaults"
    );
    let (status, code) = error_of(put(&w.hq, "south", json!({"radius_m": -1.0})));
    assert_eq!((status, code.as_str()), (400, "out_of_range"));
    let (status, _) = error_of(put(&w.sup_north, "north", json!({"radius_m": 9000.0})));
    assert_eq!(status, 403);
    let own: Value = json_of(
        w.app
            .get("/v1/reports/gps-rules/north", Some(&w.sup_north.token)),
        200,
    );
    assert_eq!(own["radius_m"], 300.0);
    let (status, _) = error_of(
        w.app
            .get("/v1/reports/gps-rules/south", Some(&w.sup_north.token)),
    );
    assert_eq!(status, 403);
    let verdict = |m: &RepModel, v: &'static str| {
        if m.team == "south" && v == "out_of_range" {
            "verified"
        } else {
            v
        }
    };

    // Visits: by day, verdicts, and the review queue with reasons.
    let r = report(&w, &w.hq, "visits?period=2026-10");
    let by_day = r.table("by_day");
    let mut want_days: BTreeMap<String, HashMap<&str, usize>> = BTreeMap::new();
    for m in &w.models {
        for v in m.visits.iter().filter(|v| in_oct(v.0)) {
            *want_days
                .entry(v.0.date_naive().to_string())
                .or_default()
                .entry(verdict(m, v.2))
                .or_default() += 1;
        }
    }
    assert_eq!(by_day.rows.len(), want_days.len());
    for (day, verdicts) in &want_days {
        let row = by_day.row(day);
        for verdict in ["verified", "out_of_range", "suspicious"] {
            assert_eq!(
                by_day.get(row, verdict).as_u64(),
                Some(verdicts.get(verdict).copied().unwrap_or(0) as u64),
                "{day} {verdict}"
            );
        }
    }
    let by_rep = r.table("by_rep");
    for m in &w.models {
        let n = m.visits.iter().filter(|v| in_oct(v.0)).count();
        assert_eq!(
            by_rep.get(by_rep.row(&m.name), "visits").as_u64(),
            Some(n as u64)
        );
    }
    let queue = r.table("review_queue");
    let flagged = w
        .models
        .iter()
        .flat_map(|m| m.visits.iter().map(move |v| (m, v)))
        .filter(|(m, v)| in_oct(v.0) && verdict(m, v.2) != "verified")
        .count();
    assert!(flagged > 2, "some visits stay out of range");
    assert_eq!(queue.rows.len(), flagged);
    let reused: Vec<&Vec<Value>> = queue
        .rows
        .iter()
        .filter(|r| queue.get(r, "verdict") == "suspicious")
        .collect();
    assert_eq!(reused.len(), 2);
    for row in reused {
        assert!(
            queue
                .get(row, "reasons")
                .as_str()
                .is_some_and(|s| s.contains("used on another day")),
            "{row:?}"
        );
        assert_eq!(queue.get(row, "review"), "none");
    }
    for row in queue
        .rows
        .iter()
        .filter(|r| queue.get(r, "verdict") == "out_of_range")
    {
        assert!(
            queue
                .get(row, "distance_m")
                .as_f64()
                .is_some_and(|d| d > 3000.0)
        );
    }

    // Devices and training answer for HQ with one row per rep device.
    let d = report(&w, &w.hq, "devices?period=2026-10");
    let t = d.table("rows");
    let logged_in = w.models.iter().filter(|m| m.name != "frank").count();
    assert_eq!(t.rows.len(), logged_in);
    assert!(
        t.rows
            .iter()
            .all(|r| t.get(r, "stale") == &Value::Bool(false))
    );
    let tr = report(&w, &w.hq, "training?period=2026-10");
    assert_eq!(tr.table("by_rep").rows.len(), w.models.len());
    let g = report(&w, &w.hq, "goals?period=2026-10");
    assert!(g.table("rows").rows.is_empty(), "no goals were set");
}
