//! `fieldsync hq scorecard|feedback|visits|goals|training|devices`: HQ
//! consolidated reports, pulled from the server (online only) as a table,
//! CSV or JSON. Supervisors get their own team's figures.

use super::Ctx;
use crate::error::{Failure, fail_hint};
use crate::remote::fail;
use crate::store::Draft;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use sync_protocol::metrics::Period;
use sync_protocol::time::parse_date;
use sync_protocol::{Fields, StateChange};

/// `fieldsync hq ...`
#[derive(Debug, Subcommand)]
pub enum HqCmd {
    /// One row per rep (or team, or region) with visits, coverage, sales,
    /// CSAT, NPS, complaints, training, work reports, goals and evaluation.
    #[command(
        after_help = "Examples:\n  fieldsync hq scorecard --period 2026-Q4\n  fieldsync hq scorecard --period 2026-11 --by team --format csv --output scorecard.csv\n  fieldsync hq scorecard --from 2026-11-01 --to 2026-11-15 --team north --json"
    )]
    Scorecard(ReportArgs),
    /// CSAT and NPS by week, complaints by category (mean and p90 hours to
    /// resolve), open complaints by age, follow-up rate of low scores.
    #[command(
        after_help = "Sections (for --format csv --section): weekly, by_category, open_by_age, loop_closure.\n\nExamples:\n  fieldsync hq feedback --period 2026-Q4\n  fieldsync hq feedback --period 2026-11 --format csv --section by_category --output complaints.csv"
    )]
    Feedback(ReportArgs),
    /// Visits by day and by rep with GPS verdicts, and the review queue of
    /// flagged visits with their reasons.
    #[command(
        after_help = "Sections: by_day, by_rep, review_queue.\n\nExamples:\n  fieldsync hq visits --period 2026-W48\n  fieldsync hq visits --period 2026-11 --format csv --section review_queue"
    )]
    Visits(ReportArgs),
    /// Goals with actual, % attained and pace.
    #[command(after_help = "Example:\n  fieldsync hq goals --period 2026-Q4 --team north")]
    Goals(ReportArgs),
    /// Training compliance per rep and overdue assignments.
    #[command(
        after_help = "Sections: by_rep, overdue.\n\nExample:\n  fieldsync hq training --period 2026-11 --format csv --section overdue"
    )]
    Training(ReportArgs),
    /// Devices: last sync, stale (over 48 hours), clock drift, problems.
    #[command(after_help = "Example:\n  fieldsync hq devices --period 2026-11")]
    Devices(ReportArgs),
    /// Accept or reject a flagged visit from the review queue (supervisors
    /// for their team, HQ for anyone). Recorded on this laptop like any
    /// change and sent with the next `fieldsync sync`.
    #[command(
        after_help = "Examples:\n  fieldsync hq review 0193a1b2 --accept\n  fieldsync hq review 0193a1b2 --reject --note \"check-in 3 km away, no explanation\""
    )]
    Review {
        /// The visit: id or id prefix (see `fieldsync hq visits`).
        visit: String,
        /// The visit stands.
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        accept: bool,
        /// The visit does not count as verified (needs --note).
        #[arg(long)]
        reject: bool,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
}

/// Output format of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables (the freshness line first).
    #[default]
    Table,
    /// RFC 4180 CSV of one section (UTF-8).
    Csv,
    /// The whole report as JSON.
    Json,
}

/// Scorecard grouping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One row per rep.
    Rep,
    /// One row per team.
    Team,
    /// One row per region.
    Region,
}

/// Arguments every report takes.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Period: 2026-11, 2026-Q4, 2026-W48, 2026 or FROM..TO.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// First day (YYYY-MM-DD), with --to.
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Last day, included (YYYY-MM-DD), with --from.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Only this team (supervisors: their own).
    #[arg(long)]
    pub team: Option<String>,
    /// Scorecard rows per rep, team or region.
    #[arg(long, value_enum)]
    pub by: Option<By>,
    /// table, csv or json (--json is the same as --format json).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// With --format csv: which section (default: the report's first).
    #[arg(long)]
    pub section: Option<String>,
    /// Write to this file instead of stdout (replaced whole, never half-written).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Report {
    period: String,
    from: String,
    to: String,
    freshness: Freshness,
    tables: Vec<Table>,
}

#[derive(Debug, Deserialize)]
struct Freshness {
    line: String,
}

#[derive(Debug, Deserialize)]
struct Table {
    name: String,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    totals: Option<Vec<Value>>,
}

/// Run an hq command.
pub fn run(ctx: &Ctx, cmd: HqCmd) -> Result<()> {
    let (name, args) = match cmd {
        HqCmd::Review {
            visit,
            accept,
            note,
            ..
        } => return review(ctx, &visit, accept, note),
        HqCmd::Scorecard(a) => ("scorecard", a),
        HqCmd::Feedback(a) => ("feedback", a),
        HqCmd::Visits(a) => ("visits", a),
        HqCmd::Goals(a) => ("goals", a),
        HqCmd::Training(a) => ("training", a),
        HqCmd::Devices(a) => ("devices", a),
    };
    if args.by.is_some() && name != "scorecard" {
        return fail_hint(
            "--by groups the scorecard only",
            "run: fieldsync hq scorecard --by team --period ...",
        );
    }
    let mut query: Vec<(&str, String)> = Vec::new();
    match (&args.period, &args.from, &args.to) {
        (Some(p), _, _) => {
            Period::parse(p).map_err(|e| {
                Failure::new(e.to_string()).hint("e.g. fieldsync hq scorecard --period 2026-Q4")
            })?;
            query.push(("period", p.clone()));
        }
        (None, Some(f), Some(t)) => {
            for d in [f, t] {
                if parse_date(d).is_none() {
                    return fail_hint(
                        format!("{d:?} is not a date"),
                        "dates are YYYY-MM-DD, e.g. --from 2026-11-01 --to 2026-11-15",
                    );
                }
            }
            query.push(("from", f.clone()));
            query.push(("to", t.clone()));
        }
        _ => {
            return fail_hint(
                "a report needs a period",
                format!(
                    "e.g. fieldsync hq {name} --period 2026-Q4 (or --from 2026-11-01 --to 2026-11-15)"
                ),
            );
        }
    }
    if let Some(t) = &args.team {
        query.push(("team", t.clone()));
    }
    if let Some(by) = args.by {
        let by = match by {
            By::Rep => "rep",
            By::Team => "team",
            By::Region => "region",
        };
        query.push(("by", by.to_owned()));
    }
    let format = if ctx.printer.json {
        Format::Json
    } else {
        args.format
    };
    if args.section.is_some() && format != Format::Csv {
        return fail_hint(
            "--section picks the table of a CSV export",
            format!(
                "add --format csv, e.g. fieldsync hq {name} --period 2026-11 --format csv --section ..."
            ),
        );
    }
    if format == Format::Csv {
        query.push(("format", "csv".to_owned()));
        if let Some(s) = &args.section {
            query.push(("section", s.clone()));
        }
    }
    let (remote, cfg) = ctx.remote()?;
    let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let path = format!("/v1/reports/{name}");
    match format {
        Format::Csv => {
            let (body, fresh) = remote
                .get_text(&path, &q, "fieldsync-freshness")
                .map_err(|e| fail(e, &cfg.server, 0))?;
            if let Some(line) = fresh {
                ctx.printer.say(&percent_decode(&line));
            }
            emit(ctx, args.output.as_deref(), &body)
        }
        Format::Json => {
            let v: Value = remote
                .get_query(&path, &q)
                .map_err(|e| fail(e, &cfg.server, 0))?;
            let text = serde_json::to_string_pretty(&v)? + "\n";
            emit(ctx, args.output.as_deref(), &text)
        }
        Format::Table => {
            let r: Report = remote
                .get_query(&path, &q)
                .map_err(|e| fail(e, &cfg.server, 0))?;
            emit(ctx, args.output.as_deref(), &render(name, &r))
        }
    }
}

fn review(ctx: &Ctx, visit: &str, accept: bool, note: Option<String>) -> Result<()> {
    let to = if accept { "accepted" } else { "rejected" };
    let note = note.filter(|n| !n.trim().is_empty());
    if !accept && note.is_none() {
        return fail_hint(
            "a rejection needs a reason",
            format!(
                "add --note, e.g. fieldsync hq review {visit} --reject --note \"check-in 3 km away\""
            ),
        );
    }
    let (mut store, _) = ctx.store()?;
    let v = store.resolve_record("visits", "visit", visit)?;
    let from = v.str("review").unwrap_or("none").to_owned();
    if from == to {
        ctx.printer.say(&format!("The visit is already {to}."));
        return Ok(());
    }
    let mut fields = Fields::new();
    if let Some(n) = note {
        fields.insert("review_note".into(), json!(n));
    }
    let change = StateChange {
        field: "review".into(),
        from,
        to: to.to_owned(),
    };
    store.write(vec![Draft::transition("visits", v.id, change, fields)])?;
    if ctx.printer.json {
        return ctx
            .printer
            .json(&json!({"visit_id": v.id, "review": to, "pending": true}));
    }
    ctx.printer.say(&format!(
        "Marked visit {} {to}; it reaches the server with the next `fieldsync sync`.",
        store.short_id("visits", &v.id)?
    ));
    Ok(())
}

/// Write `text` to stdout, or atomically to `file` (a temporary file in the
/// same directory renamed over it, so a failure never leaves half a report).
fn emit(ctx: &Ctx, file: Option<&Path>, text: &str) -> Result<()> {
    let Some(file) = file else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        return Ok(out.flush()?);
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, file)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", file.display()));
    }
    ctx.printer.say(&format!("Wrote {}.", file.display()));
    Ok(())
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.replace(['\n', '\r'], " "),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The report as aligned text tables, the freshness line first.
fn render(name: &str, r: &Report) -> String {
    let mut out = format!(
        "{}\n{name} {} ({} to {})\n",
        r.freshness.line, r.period, r.from, r.to
    );
    for t in &r.tables {
        let mut rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|row| row.iter().map(cell).collect())
            .collect();
        if let Some(tot) = &t.totals {
            rows.push(tot.iter().map(cell).collect());
        }
        let header: Vec<String> = t.columns.iter().map(|c| c.to_uppercase()).collect();
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
        for row in &rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(c));
            }
        }
        out.push('\n');
        let _ = writeln!(out, "[{}]", t.name);
        for row in std::iter::once(&header).chain(rows.iter()) {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(width(c)))))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        if t.rows.is_empty() {
            out.push_str("(no rows)\n");
        }
    }
    out
}

/// Undo the server's percent-encoding of non-ASCII header text.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_restores_chinese_names() {
        assert_eq!(
            percent_decode("not synced: %E5%BC%A0%E4%BC%9F, bob"),
            "not synced: 张伟, bob"
        );
    }
}
