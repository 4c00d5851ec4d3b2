//! What a benchmark run produced: figures against targets, correctness
//! checks, the machine, and the table printed at the end.

use crate::stats::{Spread, spread};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Which direction is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Throughput: at least the target.
    Higher,
    /// Latency, memory: at most the target.
    Lower,
}

/// A target a figure's median is held against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The direction.
    pub better: Better,
    /// The bound.
    pub value: f64,
}

impl Target {
    /// At least `value`.
    pub fn at_least(value: f64) -> Self {
        Self {
            better: Better::Higher,
            value,
        }
    }

    /// At most `value`.
    pub fn at_most(value: f64) -> Self {
        Self {
            better: Better::Lower,
            value,
        }
    }

    /// Whether `x` meets the target.
    pub fn met_by(&self, x: f64) -> bool {
        match self.better {
            Better::Higher => x >= self.value,
            Better::Lower => x <= self.value,
        }
    }

    fn text(&self, unit: &str) -> String {
        let op = match self.better {
            Better::Higher => "≥",
            Better::Lower => "≤",
        };
        format!("{op} {} {unit}", number(self.value))
    }
}

/// One measured figure: every run, the spread and the verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Short name, e.g. `push`.
    pub name: String,
    /// What was measured.
    pub workload: String,
    /// Unit of the runs, e.g. `records/s`.
    pub unit: String,
    /// Each run's value.
    pub runs: Vec<f64>,
    /// Median, min and max of `runs` (absent when not available).
    pub spread: Option<Spread>,
    /// The target, if the issue sets one.
    pub target: Option<Target>,
    /// Whether the median meets the target.
    pub met: Option<bool>,
    /// Why there is no figure, when there is none.
    pub not_available: Option<String>,
}

impl Figure {
    /// A measured figure.
    pub fn measured(
        name: &str,
        workload: &str,
        unit: &str,
        runs: Vec<f64>,
        target: Option<Target>,
    ) -> Self {
        let spread = spread(&runs);
        let met = match (target, spread) {
            (Some(t), Some(s)) => Some(t.met_by(s.median)),
            _ => None,
        };
        Self {
            name: name.to_owned(),
            workload: workload.to_owned(),
            unit: unit.to_owned(),
            runs,
            spread,
            target,
            met,
            not_available: None,
        }
    }

    /// A figure that could not be measured, and why.
    pub fn unavailable(
        name: &str,
        workload: &str,
        unit: &str,
        target: Option<Target>,
        reason: &str,
    ) -> Self {
        Self {
            name: name.to_owned(),
            workload: workload.to_owned(),
            unit: unit.to_owned(),
            runs: Vec::new(),
            spread: None,
            target,
            met: None,
            not_available: Some(reason.to_owned()),
        }
    }
}

/// A correctness check made during the benchmark (never about time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The counts behind the verdict.
    pub detail: String,
}

impl Check {
    /// A check that holds when `passed`.
    pub fn new(name: &str, passed: bool, detail: String) -> Self {
        Self {
            name: name.to_owned(),
            passed,
            detail,
        }
    }
}

/// The machine the figures were measured on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Total memory from `/proc/meminfo`, in MiB.
    pub memory_mib: u64,
    /// `std::env::consts::OS`/`ARCH`.
    pub os: String,
}

impl Machine {
    /// Describe this machine.
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_mib,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// A published peer figure and ours over it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRatio {
    /// The peer system.
    pub peer: String,
    /// `push` or `pull`.
    pub direction: String,
    /// The peer's records per second (the upper end of a published range).
    pub peer_records_per_s: f64,
    /// Our median over theirs.
    pub ours_over_peer: f64,
}

/// Published peer figures on the same shape of work: (system, direction, records/s).
pub const PEERS: &[(&str, &str, f64)] = &[
    ("Atuin + server", "push", 29_000.0),
    ("Atuin + server", "pull", 12_600.0),
    ("TaskChampion + sync server", "push", 8_000.0),
    ("TaskChampion + sync server", "pull", 1_000.0),
    ("PouchDB → pouchdb-server", "push", 5_000.0),
    ("PouchDB → pouchdb-server", "pull", 7_000.0),
    ("PowerSync (per client)", "push", 20_000.0),
];

/// Everything one benchmark run produced (written as JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// When the run started (RFC 3339 UTC).
    pub date: String,
    /// The machine.
    pub machine: Machine,
    /// Small sizes (`--quick`)?
    pub quick: bool,
    /// The server's store, e.g. `sqlite`.
    pub server_store: String,
    /// The workload sizes used.
    pub sizes: crate::Sizes,
    /// The figures.
    pub figures: Vec<Figure>,
    /// Push median over the SQLite limit median.
    pub push_over_limit: Option<f64>,
    /// Our push and pull over the peers' published figures.
    pub peers: Vec<PeerRatio>,
    /// Correctness checks.
    pub checks: Vec<Check>,
}

impl Results {
    /// The median of a named figure.
    pub fn median(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.spread)
            .map(|s| s.median)
    }

    /// Fill in the ratios from the figures.
    pub fn compute_ratios(&mut self) {
        self.push_over_limit = match (self.median("push"), self.median("limit")) {
            (Some(p), Some(l)) if l > 0.0 => Some(p / l),
            _ => None,
        };
        self.peers = PEERS
            .iter()
            .filter_map(|(peer, dir, theirs)| {
                let ours = self.median(if *dir == "push" {
                    "push"
                } else {
                    "bootstrap pull"
                })?;
                Some(PeerRatio {
                    peer: (*peer).to_owned(),
                    direction: (*dir).to_owned(),
                    peer_records_per_s: *theirs,
                    ours_over_peer: ours / theirs,
                })
            })
            .collect();
    }

    /// The table printed at the end (Markdown, so it can be pasted).
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "fieldsync benchmark, {} ({}; {} cores, {} MiB; {}; server store {}{})\n",
            self.date,
            self.machine.cpu,
            self.machine.cores,
            self.machine.memory_mib,
            self.machine.os,
            self.server_store,
            if self.quick { "; QUICK sizes" } else { "" }
        );
        let _ = writeln!(s, "| figure | median | min | max | runs | target | met |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for f in &self.figures {
            let target = f.target.map(|t| t.text(&f.unit)).unwrap_or_default();
            match (&f.spread, &f.not_available) {
                (Some(sp), _) => {
                    let met = match f.met {
                        Some(true) => "met",
                        Some(false) => "MISSED",
                        None => "",
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} {} | {} | {} | {} | {target} | {met} |",
                        f.name,
                        number(sp.median),
                        f.unit,
                        number(sp.min),
                        number(sp.max),
                        f.runs.len()
                    );
                }
                (None, reason) => {
                    let _ = writeln!(
                        s,
                        "| {} | not available: {} | | | 0 | {target} | |",
                        f.name,
                        reason.as_deref().unwrap_or("not measured")
                    );
                }
            }
        }
        if let Some(r) = self.push_over_limit {
            let _ = writeln!(s, "\npush ÷ limit: {:.1} % (aim: ≥ 40 %)", r * 100.0);
        }
        if !self.peers.is_empty() {
            let _ = writeln!(s, "\n| peer | direction | peer records/s | ours ÷ peer |");
            let _ = writeln!(s, "|---|---|---|---|");
            for p in &self.peers {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2}× |",
                    p.peer,
                    p.direction,
                    number(p.peer_records_per_s),
                    p.ours_over_peer
                );
            }
        }
        let _ = writeln!(s, "\n| check | passed | detail |");
        let _ = writeln!(s, "|---|---|---|");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                c.name,
                if c.passed { "yes" } else { "NO" },
                c.detail
            );
        }
        s
    }
}

/// A number for the table: thousands separated when large, 1–2 decimals when small.
pub fn number(x: f64) -> String {
    if x.abs() >= 1000.0 {
        let n = x.round() as i64;
        let digits = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_readable() {
        assert_eq!(number(123_456.7), "123,457");
        assert_eq!(number(1000.0), "1,000");
        assert_eq!(number(250.4), "250");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(3.456), "3.46");
    }

    #[test]
    fn targets_judge_the_median() {
        let f = Figure::measured(
            "x",
            "w",
            "ms",
            vec![10.0, 300.0, 20.0],
            Some(Target::at_most(25.0)),
        );
        assert_eq!(f.met, Some(true));
        let f = Figure::measured(
            "y",
            "w",
            "records/s",
            vec![10.0, 30.0, 20.0],
            Some(Target::at_least(25.0)),
        );
        assert_eq!(f.met, Some(false));
    }
}
