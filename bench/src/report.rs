//! The table every benchmark fills: each figure with the baseline measured in the same run,
//! their ratio and the goal, printed for a person and written as JSON and Markdown.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// Minimum and median of several runs of one measurement, in the row's unit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stats {
    /// The fastest run: the least disturbed by a noisy machine.
    pub min: f64,
    /// The median run: what to expect.
    pub median: f64,
    /// How many runs.
    pub runs: usize,
}

impl Stats {
    /// Stats of `values` (any unit); an empty list gives zeros.
    pub fn of(values: &[f64]) -> Stats {
        let mut v: Vec<f64> = values.to_vec();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Stats {
            min: v.first().copied().unwrap_or(0.0),
            median,
            runs: v.len(),
        }
    }

    /// Stats of durations, in `scale` units per second (1e6 for µs).
    pub fn of_durations(values: &[Duration], scale: f64) -> Stats {
        Stats::of(&values.iter().map(|d| d.as_secs_f64() * scale).collect::<Vec<_>>())
    }
}

/// How a row's ratio reads.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Ratio {
    /// No baseline: an absolute regression guard.
    None,
    /// baseline ÷ ferry: how many times faster ferry is (higher is better).
    Speedup,
    /// ferry ÷ baseline: what ferry costs on top of the baseline (lower is better).
    Overhead,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `P1`..`P5`, with a suffix for variants (`P2 allow`).
    pub id: String,
    /// What is measured.
    pub what: String,
    /// The unit of `ferry` and `baseline` (`us`, `ms`, `s`).
    pub unit: &'static str,
    /// ferry's figure.
    pub ferry: Stats,
    /// What the baseline is, and its figure, measured in the same run.
    pub baseline: Option<(String, Stats)>,
    /// How the ratio reads.
    pub ratio_kind: Ratio,
    /// The ratio of the medians.
    pub ratio: Option<f64>,
    /// The goal, in words.
    pub goal: String,
    /// Whether every part of the goal is met.
    pub met: bool,
    /// Further figures that decide the goal or explain it (throughputs, RSS, counts).
    pub details: Vec<(String, String)>,
}

impl Row {
    /// A row with a baseline; the ratio is computed from the medians.
    pub fn compared(
        id: &str,
        what: &str,
        unit: &'static str,
        ferry: Stats,
        baseline: (&str, Stats),
        kind: Ratio,
    ) -> Row {
        let ratio = match kind {
            Ratio::None => None,
            Ratio::Speedup => Some(baseline.1.median / ferry.median),
            Ratio::Overhead => Some(ferry.median / baseline.1.median),
        };
        Row {
            id: id.into(),
            what: what.into(),
            unit,
            ferry,
            baseline: Some((baseline.0.into(), baseline.1)),
            ratio_kind: kind,
            ratio: ratio.filter(|r| r.is_finite()),
            goal: String::new(),
            met: false,
            details: Vec::new(),
        }
    }

    /// A row without a baseline (an absolute regression guard).
    pub fn absolute(id: &str, what: &str, unit: &'static str, ferry: Stats) -> Row {
        Row {
            id: id.into(),
            what: what.into(),
            unit,
            ferry,
            baseline: None,
            ratio_kind: Ratio::None,
            ratio: None,
            goal: String::new(),
            met: false,
            details: Vec::new(),
        }
    }

    /// Sets the goal and whether it is met.
    pub fn goal(mut self, goal: &str, met: bool) -> Row {
        self.goal = goal.into();
        self.met = met;
        self
    }

    /// Adds a detail.
    pub fn detail(mut self, name: &str, value: impl Into<String>) -> Row {
        self.details.push((name.into(), value.into()));
        self
    }

    fn ratio_text(&self) -> String {
        match (self.ratio_kind, self.ratio) {
            (Ratio::Speedup, Some(r)) => format!("{r:.2}× faster"),
            (Ratio::Overhead, Some(r)) => format!("{r:.2}× baseline"),
            _ => "—".into(),
        }
    }
}

/// The machine the figures come from: ratios travel between machines, absolute times less.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// `uname -sr`.
    pub kernel: String,
    /// The commit benchmarked, with `-dirty` when the tree had changes.
    pub commit: String,
    /// Debug or release.
    pub profile: &'static str,
}

impl Machine {
    /// Describes this machine.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|kib| kib / 1024)
            .unwrap_or(0);
        let run = |cmd: &str, args: &[&str]| {
            std::process::Command::new(cmd)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let dirty = !run("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        let mut commit = run("git", &["rev-parse", "--short=12", "HEAD"]);
        if dirty {
            commit.push_str("-dirty");
        }
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_mib,
            kernel: run("uname", &["-sr"]),
            commit,
            profile: if cfg!(debug_assertions) { "debug" } else { "release" },
        }
    }
}

/// A whole benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it ran (UTC, RFC 3339).
    pub date: String,
    /// Where it ran.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// The rows, in order.
    pub rows: Vec<Row>,
}

impl Report {
    /// The table for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ferry benchmarks, {} on {} ({} cores, {} MiB), {} build of {}",
            self.date,
            self.machine.cpu,
            self.machine.cores,
            self.machine.memory_mib,
            self.machine.profile,
            self.machine.commit
        );
        let _ = writeln!(
            out,
            "{:<9} {:<46} {:>22} {:>22} {:>15}  {:<4} goal",
            "#", "what", "ferry min / median", "baseline min / median", "ratio", "met"
        );
        for r in &self.rows {
            let base = match &r.baseline {
                Some((_, s)) => fmt_stats(s, r.unit),
                None => "—".into(),
            };
            let _ = writeln!(
                out,
                "{:<9} {:<46} {:>22} {:>22} {:>15}  {:<4} {}",
                r.id,
                truncate(&r.what, 46),
                fmt_stats(&r.ferry, r.unit),
                base,
                r.ratio_text(),
                if r.met { "yes" } else { "NO" },
                r.goal
            );
            if let Some((what, _)) = &r.baseline {
                let _ = writeln!(out, "{:<9}   baseline: {what}", "");
            }
            for (k, v) in &r.details {
                let _ = writeln!(out, "{:<9}   {k}: {v}", "");
            }
        }
        out
    }

    /// The table in Markdown, for `BENCHMARKS.md`.
    pub fn to_markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "Measured {} with `{}`.\n", self.date, self.command);
        let _ = writeln!(
            out,
            "Machine: {}, {} cores, {} MiB, {}; {} build of `{}`.\n",
            m.cpu, m.cores, m.memory_mib, m.kernel, m.profile, m.commit
        );
        out.push_str("| # | What | ferry (min / median) | Baseline, same run (min / median) | Ratio | Goal | Met |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let base = match &r.baseline {
                Some((what, s)) => format!("{} — {what}", fmt_stats(s, r.unit)),
                None => "—".into(),
            };
            let mut what = r.what.clone();
            for (k, v) in &r.details {
                let _ = write!(what, "<br>{k}: {v}");
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.id,
                what,
                fmt_stats(&r.ferry, r.unit),
                base,
                r.ratio_text(),
                r.goal,
                if r.met { "yes" } else { "**no**" }
            );
        }
        out
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// Replaces the generated part of `path` (between the `bench:begin`/`bench:end` markers)
    /// with the table, keeping the hand-written text around it.
    pub fn update_markdown(&self, path: &Path) -> anyhow::Result<()> {
        const BEGIN: &str = "<!-- bench:begin (written by bench/run) -->";
        const END: &str = "<!-- bench:end -->";
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let table = format!("{BEGIN}\n{}{END}", self.to_markdown());
        let updated = match (text.find(BEGIN), text.find(END)) {
            (Some(b), Some(e)) if b < e => format!("{}{table}{}", &text[..b], &text[e + END.len()..]),
            _ => format!("{text}\n{table}\n"),
        };
        std::fs::write(path, updated)?;
        Ok(())
    }
}

fn fmt_stats(s: &Stats, unit: &str) -> String {
    let digits = |v: f64| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else if v >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    format!("{} / {} {unit}", digits(s.min), digits(s.median))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_minimum_and_the_median() {
        let s = Stats::of(&[5.0, 1.0, 3.0]);
        assert_eq!((s.min, s.median, s.runs), (1.0, 3.0, 3));
        let even = Stats::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!(even.median, 2.5);
    }

    #[test]
    fn ratios_read_the_right_way_round() {
        let fast = Stats::of(&[1.0]);
        let slow = Stats::of(&[20.0]);
        let speed = Row::compared("P4", "dump", "s", fast, ("loop", slow), Ratio::Speedup);
        assert_eq!(speed.ratio, Some(20.0));
        let cost = Row::compared("P2", "call", "us", slow, ("cedar", fast), Ratio::Overhead);
        assert_eq!(cost.ratio, Some(20.0));
        assert!(speed.ratio_text().contains("faster") && cost.ratio_text().contains("baseline"));
    }

    #[test]
    fn markdown_update_keeps_the_hand_written_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("B.md");
        std::fs::write(&path, "# Title\n\nintro\n").expect("write");
        let report = Report {
            date: "2026-11-27".into(),
            machine: Machine::detect(),
            command: "bash bench/run".into(),
            rows: vec![Row::absolute("P5", "migrate", "s", Stats::of(&[3.0])).goal("≤ 10 s", true)],
        };
        report.update_markdown(&path).expect("first");
        report.update_markdown(&path).expect("second");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# Title\n\nintro\n"), "{text}");
        assert_eq!(text.matches("bench:begin").count(), 1, "{text}");
        assert!(text.contains("| P5 | migrate |"), "{text}");
    }
}
