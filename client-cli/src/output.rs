//! The one printer: stdout is data, stderr is talk.
//!
//! With `--json` a command prints exactly one JSON document on stdout and
//! its sentences still go to stderr. Colour is used only when the stream
//! is a terminal and `NO_COLOR` is unset.

use anyhow::Result;
use chrono::{DateTime, Local, Utc};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use sync_protocol::time::parse_ts;

/// Output settings for one run.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// `--json` was given.
    pub json: bool,
    color_out: bool,
    color_err: bool,
    /// stderr is a terminal (progress may be drawn).
    pub err_tty: bool,
}

/// Text styles.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// Headers, emphasis.
    Bold,
    /// Problems.
    Red,
    /// Good news.
    Green,
    /// Warnings.
    Yellow,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Red => "1;31",
            Style::Green => "32",
            Style::Yellow => "33",
        }
    }
}

// Methods take `&self` so that every command prints through one printer,
// even where the stream alone decides.
#[allow(clippy::unused_self, clippy::trivially_copy_pass_by_ref)]
impl Printer {
    /// Settings from the environment.
    pub fn new(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let out_tty = std::io::stdout().is_terminal();
        let err_tty = std::io::stderr().is_terminal();
        Self {
            json,
            color_out: out_tty && !no_color,
            color_err: err_tty && !no_color,
            err_tty,
        }
    }

    fn paint(on: bool, style: Style, text: &str) -> String {
        if on {
            format!("\x1b[{}m{text}\x1b[0m", style.code())
        } else {
            text.to_owned()
        }
    }

    /// Style text for stdout.
    pub fn out_style(&self, style: Style, text: &str) -> String {
        Self::paint(self.color_out, style, text)
    }

    /// Style text for stderr.
    pub fn err_style(&self, style: Style, text: &str) -> String {
        Self::paint(self.color_err, style, text)
    }

    /// A line of data on stdout.
    pub fn line(&self, text: &str) -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        Ok(())
    }

    /// The `--json` document on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
        Ok(())
    }

    /// A sentence on stderr.
    pub fn say(&self, text: &str) {
        eprintln!("{text}");
    }

    /// A warning on stderr.
    pub fn warn(&self, text: &str) {
        eprintln!("{}: {text}", self.err_style(Style::Yellow, "warning"));
    }

    /// An error and its hint on stderr.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        eprintln!("{}: {message}", self.err_style(Style::Red, "error"));
        self.hint(hint);
    }

    /// A `hint:` line on stderr, if there is a hint.
    pub fn hint(&self, hint: Option<&str>) {
        if let Some(h) = hint {
            eprintln!("{}: {h}", self.err_style(Style::Bold, "hint"));
        }
    }

    /// A progress line on stderr, only on a terminal and never with `--json`.
    pub fn progress(&self, text: &str) {
        if self.err_tty && !self.json {
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
        }
    }

    /// Clear the progress line.
    pub fn progress_done(&self) {
        if self.err_tty && !self.json {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }

    /// Print a table (header in bold) on stdout.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let fmt_row = |cells: Vec<String>| {
            let n = cells.len();
            let mut s = String::new();
            for (i, c) in cells.into_iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                s.push_str(&c);
                if i + 1 < n {
                    s.push_str(&" ".repeat(pad + 2));
                }
            }
            s
        };
        let head = fmt_row(header.iter().map(|h| (*h).to_owned()).collect());
        self.line(&self.out_style(Style::Bold, &head))?;
        for r in rows {
            self.line(&fmt_row(r.clone()))?;
        }
        Ok(())
    }

    /// Print `key: value` pairs aligned on stdout.
    pub fn pairs(&self, pairs: &[(&str, String)]) -> Result<()> {
        let w = pairs
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (k, v) in pairs {
            let key = format!("{k}:{}", " ".repeat(w - k.chars().count()));
            self.line(&format!("{}  {v}", self.out_style(Style::Bold, &key)))?;
        }
        Ok(())
    }
}

/// An RFC 3339 UTC instant shown in the user's zone, `2026-11-28 17:30`.
pub fn local_time(ts: &str) -> String {
    parse_ts(ts).map_or_else(
        || ts.to_owned(),
        |t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// A UTC instant shown in the user's zone.
pub fn local_dt(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string()
}

/// `1 change` / `3 changes`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Shorten text for a table cell.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Distance in metres or kilometres.
pub fn distance(m: f64) -> String {
    if m < 1000.0 {
        format!("{m:.0} m")
    } else {
        format!("{:.1} km", m / 1000.0)
    }
}
