//! Goals: every rep and team goal in view whose period overlaps the
//! report's, with its progress from `sync_protocol::metrics::progress`.

use super::data::{Audience, Data};
use super::{Table, metric_cell, num, opt_num, text};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sync_protocol::metrics::{GoalSpec, GoalSubject, Period, progress};

pub(super) fn build(
    data: &Data,
    audience: &Audience,
    period: &Period,
    now: DateTime<Utc>,
) -> Vec<Table> {
    let mut table = Table::new(
        "rows",
        &[
            "subject",
            "kind",
            "metric",
            "period",
            "target",
            "stretch",
            "actual",
            "attained_pct",
            "stretch_pct",
            "expected_to_date",
            "pace",
        ],
    );
    let reps = audience.rep_ids();
    let mut rows: Vec<(String, Vec<Value>)> = Vec::new();
    for r in data.plain("goals") {
        let Some((subject, spec)) = GoalSpec::from_record(&r) else {
            continue;
        };
        if spec.period.end() <= period.start() || spec.period.start() >= period.end() {
            continue;
        }
        let (name, kind, facts) = match subject {
            GoalSubject::Rep(rep) if reps.contains(&rep) => (
                audience
                    .reps
                    .iter()
                    .find(|u| u.id == rep)
                    .map(|u| u.username.clone())
                    .unwrap_or_default(),
                "rep",
                data.facts.facts_for_rep(rep),
            ),
            GoalSubject::Team(team) if audience.team_ids.contains(&team) => {
                let members: Vec<_> = audience
                    .reps
                    .iter()
                    .filter(|u| u.team_id == Some(team))
                    .map(|u| u.id)
                    .collect();
                (
                    audience
                        .team_name(Some(team))
                        .unwrap_or_default()
                        .to_owned(),
                    "team",
                    data.facts.facts_for(&members),
                )
            }
            _ => continue,
        };
        let p = progress(&spec, &facts, now.date_naive());
        let key = format!("{kind}:{name}:{}:{}", spec.metric.as_str(), spec.period);
        rows.push((
            key,
            vec![
                text(name),
                text(kind),
                text(spec.metric.as_str()),
                text(spec.period.to_string()),
                num(spec.target),
                opt_num(spec.stretch),
                metric_cell(p.actual),
                opt_num(p.attained_pct),
                opt_num(p.stretch_pct),
                num(p.expected_to_date),
                p.pace.map_or(Value::Null, |p| text(p.as_str())),
            ],
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    table.rows = rows.into_iter().map(|(_, r)| r).collect();
    vec![table]
}
