//! Training compliance: per rep, assignments, completions and overdue ones
//! (with `training_completion` from `sync_protocol::metrics`), and the list
//! of overdue assignments.

use super::data::{Audience, Data};
use super::{Table, count, metric_cell, text};
use chrono::{DateTime, Utc};
use sync_protocol::metrics::{Metric, Period, compute};
use sync_protocol::time::parse_date;

pub(super) fn build(
    data: &Data,
    audience: &Audience,
    period: &Period,
    now: DateTime<Utc>,
) -> Vec<Table> {
    let today = now.date_naive();
    let courses = data.names("courses", "title");
    let mut by_rep = Table::new(
        "by_rep",
        &[
            "rep",
            "team",
            "assigned",
            "completed",
            "overdue",
            "training_hours",
            "training_completion",
        ],
    );
    let mut overdue = Table::new("overdue", &["rep", "team", "course", "due", "days_overdue"]);
    let mut late_rows = Vec::new();
    let (mut t_assigned, mut t_done, mut t_late) = (0, 0, 0);
    for rep in &audience.reps {
        let team = audience.team_name(rep.team_id).map(str::to_owned);
        let mut assigned = 0;
        let mut done = 0;
        let mut late = 0;
        for a in data.of("training_assignments") {
            if a.user("rep_id") != Some(rep.id) || a.str("status") == Some("waived") {
                continue;
            }
            assigned += 1;
            if a.str("status") == Some("completed") {
                done += 1;
                continue;
            }
            let Some(due) = a.str("due").and_then(parse_date) else {
                continue;
            };
            if due < today {
                late += 1;
                late_rows.push(vec![
                    text(rep.username.clone()),
                    team.clone().map_or(serde_json::Value::Null, text),
                    text(
                        a.rec("course_id")
                            .and_then(|c| courses.get(&c).cloned())
                            .unwrap_or_default(),
                    ),
                    text(due.to_string()),
                    count((today - due).num_days() as usize),
                ]);
            }
        }
        t_assigned += assigned;
        t_done += done;
        t_late += late;
        let facts = data.facts.facts_for_rep(rep.id);
        by_rep.rows.push(vec![
            text(rep.username.clone()),
            team.map_or(serde_json::Value::Null, text),
            count(assigned),
            count(done),
            count(late),
            metric_cell(compute(Metric::TrainingHours, period, &facts)),
            metric_cell(compute(Metric::TrainingCompletion, period, &facts)),
        ]);
    }
    let all: Vec<_> = audience.reps.iter().map(|r| r.id).collect();
    let facts = data.facts.facts_for(&all);
    by_rep.totals = Some(vec![
        text("total"),
        serde_json::Value::Null,
        count(t_assigned),
        count(t_done),
        count(t_late),
        metric_cell(compute(Metric::TrainingHours, period, &facts)),
        metric_cell(compute(Metric::TrainingCompletion, period, &facts)),
    ]);
    overdue.rows = late_rows;
    vec![by_rep, overdue]
}
