//! The scorecard: one row per rep, team or region, plus a totals row over
//! everything in view.

use super::data::{Audience, Data, Owned};
use super::{GroupBy, Table, count, metric_cell, opt_num, text};
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use sync_protocol::metrics::{GoalSpec, GoalSubject, Metric, Period, compute_all, progress};
use sync_protocol::{TeamId, UserId};

/// Metric columns, in order, after the group columns.
const METRICS: [Metric; 12] = [
    Metric::Visits,
    Metric::CustomersVisited,
    Metric::Coverage,
    Metric::Sales,
    Metric::NewCustomers,
    Metric::Csat,
    Metric::Nps,
    Metric::ComplaintsOpened,
    Metric::ComplaintsResolved,
    Metric::ResolutionHours,
    Metric::TrainingHours,
    Metric::TrainingCompletion,
];

/// Columns after the metrics.
const EXTRA: [&str; 5] = [
    "goal_attainment_pct",
    "work_reports_submitted",
    "work_reports_missing",
    "evaluation_score",
    "evaluation_tier",
];

struct Group {
    label: String,
    team: Option<String>,
    reps: Vec<UserId>,
    teams: HashSet<TeamId>,
}

pub(super) fn build(
    data: &Data,
    audience: &Audience,
    period: &Period,
    by: GroupBy,
    now: DateTime<Utc>,
) -> Vec<Table> {
    let first = match by {
        GroupBy::Rep => "rep",
        GroupBy::Team => "team",
        GroupBy::Region => "region",
    };
    let mut columns: Vec<&str> = vec![
        first,
        if by == GroupBy::Region {
            "teams"
        } else {
            "team"
        },
    ];
    columns.extend(METRICS.iter().map(Metric::as_str));
    columns.extend(EXTRA);
    let mut table = Table::new("rows", &columns);

    let groups = groups(audience, by);
    let ctx = Ctx::new(data, period, now);
    let row = |g: &Group| {
        let mut row = vec![
            text(g.label.clone()),
            g.team.clone().map_or(Value::Null, text),
        ];
        row.extend(ctx.cells(&g.reps, &g.teams, by == GroupBy::Rep));
        row
    };
    let all: Vec<UserId> = audience.reps.iter().map(|r| r.id).collect();
    let totals = || {
        let mut totals = vec![text("total"), Value::Null];
        totals.extend(ctx.cells(&all, &audience.team_ids, false));
        totals
    };
    // The totals row (every fact at once) and the group rows take about as
    // long as each other with many reps: on two threads they overlap.
    let (rows, totals) = std::thread::scope(|s| {
        let totals = s.spawn(totals);
        let rows: Vec<Vec<Value>> = groups.iter().map(row).collect();
        (rows, totals.join())
    });
    table.rows = rows;
    table.totals = Some(totals.unwrap_or_else(|e| std::panic::resume_unwind(e)));
    vec![table]
}

fn groups(audience: &Audience, by: GroupBy) -> Vec<Group> {
    match by {
        GroupBy::Rep => audience
            .reps
            .iter()
            .map(|r| Group {
                label: r.username.clone(),
                team: audience.team_name(r.team_id).map(str::to_owned),
                reps: vec![r.id],
                teams: HashSet::new(),
            })
            .collect(),
        GroupBy::Team | GroupBy::Region => {
            let mut out: BTreeMap<String, Group> = BTreeMap::new();
            for r in &audience.reps {
                let team = r.team_id.and_then(|t| audience.teams.get(&t));
                let key = match by {
                    GroupBy::Team => {
                        team.map_or_else(|| "(no team)".to_owned(), |t| t.name.clone())
                    }
                    _ => team
                        .and_then(|t| t.region.clone())
                        .unwrap_or_else(|| "(no region)".to_owned()),
                };
                let g = out.entry(key.clone()).or_insert_with(|| Group {
                    label: key,
                    team: None,
                    reps: Vec::new(),
                    teams: HashSet::new(),
                });
                g.reps.push(r.id);
                if let Some(t) = team {
                    g.teams.insert(t.id);
                }
            }
            for g in out.values_mut() {
                let mut names: Vec<&str> = g
                    .teams
                    .iter()
                    .filter_map(|t| audience.teams.get(t).map(|t| t.name.as_str()))
                    .collect();
                names.sort_unstable();
                g.team = Some(names.join(", "));
            }
            out.into_values().collect()
        }
    }
}

struct Ctx<'a> {
    data: &'a Data,
    period: &'a Period,
    today: NaiveDate,
    goals: Vec<(GoalSubject, GoalSpec)>,
    /// Work reports and evaluations by their `rep_id`, read once.
    work_reports: HashMap<UserId, Vec<&'a Owned>>,
    evaluations: HashMap<UserId, Vec<&'a Owned>>,
}

/// The records of `collection` by their `rep_id`.
fn by_rep<'a>(data: &'a Data, collection: &str) -> HashMap<UserId, Vec<&'a Owned>> {
    let mut out: HashMap<UserId, Vec<&Owned>> = HashMap::new();
    for r in data.of(collection) {
        if let Some(rep) = r.user("rep_id") {
            out.entry(rep).or_default().push(r);
        }
    }
    out
}

impl<'a> Ctx<'a> {
    fn new(data: &'a Data, period: &'a Period, now: DateTime<Utc>) -> Self {
        let goals = data
            .plain("goals")
            .filter_map(|r| GoalSpec::from_record(&r))
            .filter(|(_, g)| g.period.start() == period.start() && g.period.end() == period.end())
            .collect();
        Ctx {
            data,
            period,
            today: now.date_naive(),
            goals,
            work_reports: by_rep(data, "work_reports"),
            evaluations: by_rep(data, "evaluations"),
        }
    }

    fn cells(&self, reps: &[UserId], teams: &HashSet<TeamId>, single: bool) -> Vec<Value> {
        let facts = self.data.facts.facts_for(reps);
        let mut row: Vec<Value> = compute_all(&METRICS, self.period, &facts)
            .into_iter()
            .map(metric_cell)
            .collect();
        row.push(opt_num(self.attainment(reps, teams)));
        let (submitted, missing) = self.work_reports(reps);
        row.push(count(submitted));
        row.push(count(missing));
        let evals: Vec<(f64, Option<String>)> =
            reps.iter().filter_map(|r| self.evaluation(*r)).collect();
        if single {
            let e = evals.into_iter().next();
            row.push(opt_num(e.as_ref().map(|e| e.0)));
            row.push(e.and_then(|e| e.1).map_or(Value::Null, text));
        } else {
            let mean = (!evals.is_empty())
                .then(|| evals.iter().map(|e| e.0).sum::<f64>() / evals.len() as f64);
            row.push(opt_num(mean));
            row.push(Value::Null);
        }
        row
    }

    /// Mean % attained over the goals of these reps (and teams) for exactly this period.
    fn attainment(&self, reps: &[UserId], teams: &HashSet<TeamId>) -> Option<f64> {
        let pcts: Vec<f64> = self
            .goals
            .iter()
            .filter_map(|(subject, spec)| {
                let facts = match subject {
                    GoalSubject::Rep(r) if reps.contains(r) => self.data.facts.facts_for_rep(*r),
                    GoalSubject::Team(t) if teams.contains(t) => {
                        self.data.facts.facts_for(&self.data.facts.team_members(*t))
                    }
                    _ => return None,
                };
                progress(spec, &facts, self.today).attained_pct
            })
            .collect();
        (!pcts.is_empty()).then(|| pcts.iter().sum::<f64>() / pcts.len() as f64)
    }

    /// Work reports written in the period, and weekly reports missing for
    /// ISO weeks that lie wholly inside the period and have ended.
    fn work_reports(&self, reps: &[UserId]) -> (usize, usize) {
        let mut submitted = 0;
        let mut weeks_done: HashSet<(UserId, String)> = HashSet::new();
        let mine = reps
            .iter()
            .filter_map(|rep| self.work_reports.get(rep).map(|list| (*rep, list)));
        for (rep, r) in mine.flat_map(|(rep, list)| list.iter().map(move |r| (rep, r))) {
            if r.ts("written_at").is_some_and(|t| self.period.contains(t)) {
                submitted += 1;
            }
            if r.str("kind") == Some("weekly")
                && let Some(p) = r.str("period").and_then(|p| Period::parse(p).ok())
            {
                weeks_done.insert((rep, p.to_string()));
            }
        }
        let weeks = weeks_in(self.period, self.today);
        let missing = reps
            .iter()
            .map(|rep| {
                weeks
                    .iter()
                    .filter(|w| !weeks_done.contains(&(*rep, w.to_string())))
                    .count()
            })
            .sum();
        (submitted, missing)
    }

    /// The latest scored evaluation of a rep for a period starting before this one ends.
    fn evaluation(&self, rep: UserId) -> Option<(f64, Option<String>)> {
        self.evaluations
            .get(&rep)?
            .iter()
            .filter_map(|e| {
                let p = Period::parse(e.str("period")?).ok()?;
                let score = e.fields.get("score").and_then(Value::as_f64)?;
                (p.start() < self.period.end())
                    .then(|| (p.start(), score, e.str("tier").map(str::to_owned)))
            })
            .max_by_key(|(start, ..)| *start)
            .map(|(_, s, t)| (s, t))
    }
}

/// ISO weeks wholly inside `period` that ended before `today`.
pub(super) fn weeks_in(period: &Period, today: NaiveDate) -> Vec<Period> {
    let mut out = Vec::new();
    let mut day = period.start();
    while day.weekday() != chrono::Weekday::Mon {
        day = day + Days::new(1);
    }
    while day + Days::new(7) <= period.end() && day + Days::new(7) <= today {
        let w = day.iso_week();
        out.push(Period::Week(w.year(), w.week()));
        day = day + Days::new(7);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::workload::{ScorecardWorkload, seed_scorecard_workload};
    use super::*;
    use crate::auth::Actor;
    use crate::config::HashCost;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{self, Store};
    use sync_protocol::wire::CreateUserRequest;

    fn t(s: &str) -> DateTime<Utc> {
        sync_protocol::time::parse_ts(s).unwrap()
    }

    /// The scorecard from the report facts equals the one from decoding
    /// every record, for HQ and a supervisor, every grouping, and periods
    /// that leave some of the generated facts outside.
    #[test]
    fn the_scorecard_from_report_facts_equals_the_one_from_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("server.db")).unwrap();
        let now = t("2026-11-20T12:00:00Z");
        crate::accounts::bootstrap(&store, Some("admin-password"), HashCost::TestOnlyFast, now)
            .unwrap();
        let w = ScorecardWorkload {
            teams: 2,
            reps: 3,
            customers_per_rep: 12,
            visits: 1_600,
            feedback: 90,
            sales: 40,
            period: Period::parse("2026-Q4").unwrap(),
        };
        let seeded = seed_scorecard_workload(&store, &w, now).unwrap();
        assert_eq!(seeded.reps, 3);
        let admin = store::read(&store, |tx| tx.user_by_name("admin"))
            .unwrap()
            .unwrap();
        let sup = store::write(&store, |tx| {
            let device = tx.devices(Some(admin.id))?.remove(0);
            let actor = Actor {
                user: admin.clone(),
                device,
            };
            crate::accounts::create_user(
                tx,
                &actor,
                &CreateUserRequest {
                    username: "sue".into(),
                    password: "sue-password".into(),
                    role: sync_protocol::schema::Role::Supervisor,
                    team: Some("team-0000".into()),
                    supervisor: None,
                },
                "x".into(),
                now,
            )?;
            Ok::<_, crate::error::ApiError>(tx.user_by_name("sue")?.unwrap())
        })
        .unwrap();

        let mut compared = 0;
        for actor in [&admin, &sup] {
            for period in ["2026-Q4", "2026-10", "2026-11", "2026-W46", "2026-Q3"] {
                let period = Period::parse(period).unwrap();
                for by in [GroupBy::Rep, GroupBy::Team, GroupBy::Region] {
                    let (slow, fast) = store::read(&store as &dyn Store, |tx| {
                        let audience = Audience::resolve(tx, actor, None)?;
                        let slow = build(&Data::load(tx, actor)?, &audience, &period, by, now);
                        let fast = build(
                            &Data::load_for_period(tx, actor, &period, now, None)?,
                            &audience,
                            &period,
                            by,
                            now,
                        );
                        Ok::<_, crate::error::ApiError>((slow, fast))
                    })
                    .unwrap();
                    assert_eq!(fast, slow, "{} {period} {by:?}", actor.username);
                    // The facts read in two parts on two transactions.
                    let req = super::super::ReportRequest {
                        kind: super::super::ReportKind::Scorecard,
                        period,
                        team: None,
                        by,
                    };
                    let paired = super::super::generate(&store, actor, &req, now).unwrap();
                    assert_eq!(
                        paired.tables, slow,
                        "paired {} {period} {by:?}",
                        actor.username
                    );
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 30);
        // An idle SQLite store offers the pair `generate` used above.
        let mut ran = (false, false);
        let paired = store
            .read_pair(
                &mut |_| {
                    ran.0 = true;
                    Ok(())
                },
                &mut |_| Ok(()),
            )
            .unwrap();
        assert!(paired && ran.0);
        // The data is not trivially empty: HQ sees every visit of the quarter
        // but the amended ones.
        let q4 = Period::parse("2026-Q4").unwrap();
        let totals = store::read(&store as &dyn Store, |tx| {
            let audience = Audience::resolve(tx, &admin, None)?;
            let data = Data::load_for_period(tx, &admin, &q4, now, None)?;
            Ok::<_, crate::error::ApiError>(build(&data, &audience, &q4, GroupBy::Rep, now))
        })
        .unwrap()[0]
            .totals
            .clone()
            .unwrap();
        assert_eq!(totals[2], serde_json::json!(1_600 - 3));
    }
}
