//! HTML of the dashboard pages: escaped text, tables with `data-row` /
//! `data-col` cells, and chart specifications for `dashboard.js`.

use crate::reports::{Report, ReportKind, Table};
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query value.
pub fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The page frame around `body`.
pub fn frame(title: &str, nav: Option<(&str, &str, &str)>, body: &str) -> String {
    let header = match nav {
        None => String::new(),
        Some((active, user, csrf)) => {
            let mut links = String::new();
            for p in ["scorecard", "feedback", "visits"] {
                let _ = write!(
                    links,
                    "<a href=\"/dashboard/{p}\"{}>{}</a>",
                    if p == active { " class=\"on\"" } else { "" },
                    capitalise(p)
                );
            }
            format!(
                "<header><strong>fieldsync</strong><nav>{links}</nav><div class=\"who\"><span>{}</span>\
                 <form method=\"post\" action=\"/dashboard/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Sign out</button></form></div></header>",
                esc(user),
                esc(csrf)
            )
        }
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · fieldsync</title><link rel=\"stylesheet\" href=\"/dashboard/assets/dashboard.css\"></head>\
         <body>{header}<main>{body}</main>\
         <script src=\"/dashboard/assets/chart.umd.min.js\"></script>\
         <script src=\"/dashboard/assets/dashboard.js\"></script></body></html>",
        esc(title)
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The sign-in form.
pub fn login(csrf: &str, error: Option<&str>) -> String {
    let err = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    frame(
        "Sign in",
        None,
        &format!(
            "<form class=\"login\" method=\"post\" action=\"/dashboard/login\"><h1>fieldsync reports</h1>{err}\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label>Username<input name=\"username\" id=\"username\" autocomplete=\"username\" required></label>\
             <label>Password<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form>",
            esc(csrf)
        ),
    )
}

/// Filters shown above a report.
pub struct Filters<'a> {
    /// The period as typed.
    pub period: &'a str,
    /// The team picked.
    pub team: Option<&'a str>,
    /// Teams offered.
    pub teams: &'a [String],
    /// Scorecard grouping.
    pub by: &'a str,
}

/// A report page.
pub fn report(report: &Report, f: &Filters<'_>, user: &str, csrf: &str) -> String {
    let kind = report.report;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{} <small>{} ({} to {})</small></h1>",
        capitalise(kind.as_str()),
        esc(&report.period),
        esc(&report.from),
        esc(&report.to)
    );
    let mut teams = String::from("<option value=\"\">All teams in view</option>");
    for t in f.teams {
        let _ = write!(
            teams,
            "<option{}>{}</option>",
            if Some(t.as_str()) == f.team {
                " selected"
            } else {
                ""
            },
            esc(t)
        );
    }
    let by = if kind == ReportKind::Scorecard {
        let opt = |v: &str| {
            format!(
                "<option{}>{v}</option>",
                if v == f.by { " selected" } else { "" }
            )
        };
        format!(
            "<label>Rows per<select name=\"by\">{}{}{}</select></label>",
            opt("rep"),
            opt("team"),
            opt("region")
        )
    } else {
        String::new()
    };
    let _ = write!(
        body,
        "<form class=\"filters\" method=\"get\"><label>Period<input name=\"period\" id=\"period\" value=\"{}\" \
         placeholder=\"2026-Q4, 2026-11, 2026-W48\" size=\"14\"></label><label>Team<select name=\"team\">{teams}</select></label>{by}\
         <button type=\"submit\">Show</button></form>",
        esc(f.period)
    );
    let _ = write!(
        body,
        "<p class=\"fresh\" id=\"freshness\">{}</p>",
        esc(&report.freshness.line)
    );
    let charts = charts(report);
    if !charts.is_empty() {
        body.push_str("<div class=\"charts\">");
        for c in &charts {
            let _ = write!(
                body,
                "<div class=\"chart\"><h3>{}</h3><div class=\"box\"><canvas id=\"{}\" role=\"img\" aria-label=\"{}\"></canvas></div></div>",
                esc(c["title"].as_str().unwrap_or_default()),
                esc(c["id"].as_str().unwrap_or_default()),
                esc(c["title"].as_str().unwrap_or_default())
            );
        }
        body.push_str("</div>");
        let spec = serde_json::to_string(&charts)
            .unwrap_or_else(|_| "[]".into())
            .replace('<', "\\u003c");
        let _ = write!(
            body,
            "<script type=\"application/json\" id=\"charts\">{spec}</script>"
        );
    }
    let mut base = format!(
        "/dashboard/{}/csv?period={}",
        kind.as_str(),
        query_value(f.period)
    );
    if let Some(t) = f.team {
        let _ = write!(base, "&team={}", query_value(t));
    }
    if kind == ReportKind::Scorecard {
        let _ = write!(base, "&by={}", query_value(f.by));
    }
    for t in &report.tables {
        let _ = write!(body, "<h2>{}</h2>", esc(&t.name.replace('_', " ")));
        body.push_str(&table(t));
        let _ = write!(
            body,
            "<p class=\"csv\"><a href=\"{}&amp;section={}\" download>Download CSV</a></p>",
            esc(&base),
            query_value(&t.name)
        );
    }
    frame(
        &capitalise(kind.as_str()),
        Some((kind.as_str(), user, csrf)),
        &body,
    )
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

fn table(t: &Table) -> String {
    let mut s = format!(
        "<div class=\"scroll\"><table class=\"sortable\" id=\"table-{}\"><thead><tr>",
        esc(&t.name)
    );
    for c in &t.columns {
        let _ = write!(s, "<th scope=\"col\">{}</th>", esc(&c.replace('_', " ")));
    }
    s.push_str("</tr></thead><tbody>");
    let row = |s: &mut String, r: &[Value]| {
        let key = r.first().map(text).unwrap_or_default();
        s.push_str("<tr>");
        for (c, v) in t.columns.iter().zip(r) {
            let _ = write!(
                s,
                "<td{} data-row=\"{}\" data-col=\"{}\">{}</td>",
                if v.is_number() { " class=\"n\"" } else { "" },
                esc(&key),
                esc(c),
                esc(&text(v))
            );
        }
        s.push_str("</tr>");
    };
    for r in &t.rows {
        row(&mut s, r);
    }
    s.push_str("</tbody>");
    if let Some(tot) = &t.totals {
        s.push_str("<tfoot>");
        row(&mut s, tot);
        s.push_str("</tfoot>");
    }
    s.push_str("</table></div>");
    s
}

fn column<'a>(t: &'a Table, name: &str) -> Vec<&'a Value> {
    let i = t.columns.iter().position(|c| c == name);
    t.rows
        .iter()
        .map(|r| i.and_then(|i| r.get(i)).unwrap_or(&Value::Null))
        .collect()
}

fn labels(t: &Table) -> Vec<String> {
    t.rows
        .iter()
        .map(|r| r.first().map(text).unwrap_or_default())
        .collect()
}

fn find<'a>(r: &'a Report, name: &str) -> Option<&'a Table> {
    r.tables.iter().find(|t| t.name == name)
}

/// Chart specifications for `dashboard.js` (Chart.js types and data).
pub fn charts(r: &Report) -> Vec<Value> {
    let mut out = Vec::new();
    match r.report {
        ReportKind::Scorecard => {
            if let Some(t) = find(r, "rows") {
                out.push(json!({"id": "chart-goal-attainment", "title": "Goal attainment per row (%)", "type": "bar",
                    "labels": labels(t), "datasets": [{"label": "attained %", "data": column(t, "goal_attainment_pct"), "backgroundColor": "#2e7d32"}]}));
                out.push(json!({"id": "chart-visits", "title": "Visits per row", "type": "bar",
                    "labels": labels(t), "datasets": [{"label": "visits", "data": column(t, "visits"), "backgroundColor": "#1f5f9f"}]}));
            }
        }
        ReportKind::Feedback => {
            if let Some(t) = find(r, "weekly") {
                out.push(json!({"id": "chart-csat-nps", "title": "CSAT and NPS by week", "type": "line",
                    "labels": labels(t), "datasets": [
                        {"label": "CSAT (1-5)", "data": column(t, "csat"), "borderColor": "#1f5f9f", "yAxisID": "y"},
                        {"label": "NPS", "data": column(t, "nps"), "borderColor": "#c45100", "yAxisID": "y1"}]}));
            }
            if let Some(t) = find(r, "open_by_age") {
                out.push(json!({"id": "chart-complaint-age", "title": "Open complaints by age", "type": "bar",
                    "labels": labels(t), "datasets": [{"label": "open complaints", "data": column(t, "open_complaints"), "backgroundColor": "#b3261e"}]}));
            }
        }
        ReportKind::Visits => {
            if let Some(t) = find(r, "by_day") {
                let (weeks, series) = weekly(t);
                let colours = ["#2e7d32", "#c45100", "#757575", "#b3261e"];
                let datasets: Vec<Value> = crate::reports::VERDICTS
                    .iter()
                    .zip(colours)
                    .map(|(v, c)| {
                        json!({"label": v, "data": series.get(*v).cloned().unwrap_or_default(), "backgroundColor": c})
                    })
                    .collect();
                out.push(json!({"id": "chart-visits-week", "title": "Visits per week by GPS verdict", "type": "bar",
                    "stacked": true, "labels": weeks, "datasets": datasets}));
            }
        }
        _ => {}
    }
    out
}

/// Visits per ISO week and verdict, from the by-day table.
fn weekly(t: &Table) -> (Vec<String>, BTreeMap<String, Vec<u64>>) {
    let mut weeks: BTreeMap<(i32, u32), BTreeMap<String, u64>> = BTreeMap::new();
    for r in &t.rows {
        let Some(day) = r
            .first()
            .and_then(Value::as_str)
            .and_then(|d| d.parse::<NaiveDate>().ok())
        else {
            continue;
        };
        let w = day.iso_week();
        let e = weeks.entry((w.year(), w.week())).or_default();
        for v in crate::reports::VERDICTS {
            if let Some(i) = t.columns.iter().position(|c| c == v) {
                *e.entry(v.to_owned()).or_default() +=
                    r.get(i).and_then(Value::as_u64).unwrap_or(0);
            }
        }
    }
    let labels = weeks.keys().map(|(y, w)| format!("{y}-W{w:02}")).collect();
    let mut series: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for counts in weeks.values() {
        for v in crate::reports::VERDICTS {
            series
                .entry(v.to_owned())
                .or_default()
                .push(counts.get(v).copied().unwrap_or(0));
        }
    }
    (labels, series)
}
