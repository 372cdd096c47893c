//! Progress for a person: indicatif bars when stderr is a terminal, plain lines elsewhere.
//!
//! On a terminal a phase is drawn as the list of its steps (for the stock guest, all of them
//! from the start), each turning done (`✓`), skipped (`↷`), planned (`○`) or failed (`✗`) in
//! place; the running step spins, a wait shows what is still missing and the time left, and
//! the snapshot stream is a bytes bar with its rate. When the phase ends the list is printed
//! for good and the live area is empty again. Log lines are printed above the bars
//! ([`LogWriter`]). Anywhere else (a pipe, a CI log, `--log-format json`) the host's
//! [`TerminalProgress`] prints plain lines with no cursor movement or colour, and with
//! `--quiet` nothing is printed.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use ferry::progress::{ProgressEvent, ProgressSink, TerminalProgress, terminal_safe};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The one live area of the process, shared by the bars and the log writer so that a log
/// line never tears a bar.
static LIVE: LazyLock<MultiProgress> = LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));

/// The process's live area, for views other than a phase's steps (a fleet's lines).
pub fn live() -> MultiProgress {
    LIVE.clone()
}

/// Where a command's progress goes.
pub enum Progress {
    /// Indicatif bars in a live area (a terminal).
    Bars(Bars),
    /// Plain lines (no terminal, JSON logs), or none (`--quiet`).
    Lines(TerminalProgress),
}

impl Progress {
    /// Bars when stderr is a terminal and logs are text; plain lines otherwise; nothing with
    /// `quiet`.
    pub fn for_stderr(quiet: bool, json_logs: bool) -> Self {
        use std::io::IsTerminal as _;
        if quiet {
            Progress::Lines(TerminalProgress::to_writer(Box::new(std::io::sink())))
        } else if std::io::stderr().is_terminal() && !json_logs {
            Progress::Bars(Bars::new(LIVE.clone()))
        } else {
            Progress::Lines(TerminalProgress::to_writer(Box::new(std::io::stderr())))
        }
    }

    /// Shows `steps` of `phase` as pending before the guest reports any (the stock guest's
    /// list). Plain lines show steps as they happen instead.
    pub fn plan_steps(&self, phase: &str, steps: &[&str]) {
        if let Progress::Bars(b) = self {
            b.plan_steps(phase, steps);
        }
    }

    /// Ends the phase's progress: the steps are printed for good; one still running is
    /// marked failed when `failed`, left neutral otherwise.
    pub fn finish(&self, failed: bool) {
        if let Progress::Bars(b) = self {
            b.finish(failed);
        }
    }

    /// Prints a line (a phase header) above any live bars.
    pub fn println(&self, line: &str) {
        match self {
            Progress::Bars(b) => {
                let _ = b.live.println(line);
            }
            Progress::Lines(_) => eprintln!("{line}"),
        }
    }
}

impl ProgressSink for Progress {
    fn event(&self, e: &ProgressEvent) {
        match self {
            Progress::Bars(b) => b.event(e),
            Progress::Lines(l) => l.event(e),
        }
    }
}

/// The bars of one process.
pub struct Bars {
    live: MultiProgress,
    state: Mutex<BarsState>,
}

#[derive(Default)]
struct BarsState {
    /// Steps in the order they are shown.
    order: Vec<String>,
    bars: HashMap<String, Step>,
}

struct Step {
    bar: ProgressBar,
    /// The line it ends with, once it has a result.
    result: Option<String>,
    /// Whether it has started (a pending step has not).
    started: bool,
    /// What it last said (a wait, a count, the bytes streamed), for its final line.
    last: String,
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this file, checked by the tests.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
        .progress_chars("=> ")
}

const PENDING: &str = "  {prefix:.dim}";
const RUNNING: &str = "  {spinner:.cyan} {prefix}{wide_msg}";
const STREAM: &str = "  {spinner:.cyan} {prefix} [{bar:30.cyan/blue}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, {eta} left";
const STREAM_UNSIZED: &str = "  {spinner:.cyan} {prefix} {binary_bytes} ({binary_bytes_per_sec})";
const DONE: &str = "  {prefix}{wide_msg}";

/// A wait's line after its step's name: ` [12s, 288s left]: waiting for …`, or ` [12s]: …`
/// for a timed step that does not wait on something. Shared by a phase's list and a fleet's
/// lines.
pub fn wait_text(e: &ProgressEvent, timeout: u64, message: &str) -> String {
    if e.message.starts_with("waiting for ") {
        format!(" [{}s, {}s left]: {message}", e.done, timeout.saturating_sub(e.done))
    } else {
        format!(" [{}s]: {message}", e.done)
    }
}

/// The mark of a step result (`done: …`, as the stock guest reports it), if `message` is one.
fn result_mark(message: &str) -> Option<&'static str> {
    let (word, _) = message.split_once(':')?;
    Some(match word {
        "done" | "already" | "checked" => "\u{2713}",
        "skipped" => "\u{21b7}",
        "planned" => "\u{25cb}",
        _ => return None,
    })
}

impl Bars {
    /// Bars drawn in `live`.
    pub fn new(live: MultiProgress) -> Self {
        Bars {
            live,
            state: Mutex::new(BarsState::default()),
        }
    }

    fn step<'s>(&self, st: &'s mut BarsState, step: &str) -> &'s mut Step {
        if !st.bars.contains_key(step) {
            st.order.push(step.to_string());
        }
        st.bars.entry(step.to_string()).or_insert_with(|| {
            let bar = self.live.add(ProgressBar::hidden());
            bar.set_style(style(PENDING));
            bar.set_prefix(format!("\u{b7} {}", terminal_safe(step, false)));
            Step {
                bar,
                result: None,
                started: false,
                last: String::new(),
            }
        })
    }

    fn plan_steps(&self, phase: &str, steps: &[&str]) {
        let Ok(mut st) = self.state.lock() else { return };
        for s in steps {
            let step = self.step(&mut st, &format!("{phase}/{s}"));
            step.bar.tick();
        }
    }

    fn start(step: &mut Step, name: &str) {
        if !step.started {
            step.started = true;
            step.bar.set_style(style(RUNNING));
            step.bar.set_prefix(terminal_safe(name, false).into_owned());
            step.bar.enable_steady_tick(Duration::from_millis(100));
        }
    }

    fn event(&self, e: &ProgressEvent) {
        let Ok(mut st) = self.state.lock() else { return };
        let step = self.step(&mut st, &e.step);
        Self::start(step, &e.step);
        let message = terminal_safe(&e.message, false);
        match (e.unit, e.total) {
            ("bytes", total) => {
                if step.bar.length() != total || step.bar.position() == 0 {
                    step.bar
                        .set_style(style(if total.is_some() { STREAM } else { STREAM_UNSIZED }));
                    match total {
                        Some(t) => step.bar.set_length(t),
                        None => step.bar.unset_length(),
                    }
                }
                step.bar.set_position(e.done);
                step.last = format!(": {}", ferry::progress::human_bytes(e.done));
            }
            ("seconds", Some(timeout)) => {
                let text = wait_text(e, timeout, &message);
                step.bar.set_style(style(RUNNING));
                step.bar.set_message(text.clone());
                step.last = text;
            }
            _ if message == "started" => step.bar.set_message(""),
            _ => match result_mark(&message) {
                Some(mark) => {
                    // Cut to the terminal's width while live; printed whole when the phase ends.
                    let name = terminal_safe(&e.step, false);
                    step.bar.set_style(style(DONE));
                    step.bar.set_prefix(format!("{mark} {name}"));
                    step.bar.finish_with_message(format!(": {message}"));
                    step.result = Some(format!("{mark} {name}: {message}"));
                }
                None => {
                    let count = match (e.unit, e.total) {
                        ("items", Some(t)) => format!(" [{}/{t}]", e.done),
                        _ => String::new(),
                    };
                    step.last = format!("{count}: {message}");
                    step.bar.set_style(style(RUNNING));
                    step.bar.set_message(step.last.clone());
                }
            },
        }
    }

    /// Draws every bar now (drawing is rate-limited; a test reads the screen at once).
    #[cfg(test)]
    fn redraw(&self) {
        if let Ok(st) = self.state.lock() {
            st.order
                .iter()
                .filter_map(|n| st.bars.get(n))
                .for_each(|s| s.bar.force_draw());
        }
    }

    fn finish(&self, failed: bool) {
        let Ok(mut st) = self.state.lock() else { return };
        let st = std::mem::take(&mut *st);
        let mut lines = Vec::new();
        for name in &st.order {
            let Some(step) = st.bars.get(name) else { continue };
            let name = terminal_safe(name, false);
            lines.push(match (&step.result, step.started) {
                (Some(line), _) => line.clone(),
                (None, true) if failed => format!("\u{2717} {name}{} (stopped here)", step.last),
                // A step that reports no result of its own (a stream, another guest's step)
                // ended with its phase.
                (None, true) => format!("\u{2713} {name}{}", step.last),
                (None, false) => format!("\u{b7} {name} (not run)"),
            });
            step.bar.finish_and_clear();
            self.live.remove(&step.bar);
        }
        for line in lines {
            let _ = self.live.println(format!("  {line}"));
        }
    }
}

/// A `tracing` writer that prints each log line above the live bars, so a log line never
/// tears one.
#[derive(Default)]
pub struct LogWriter(Vec<u8>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.0.is_empty() {
            let line = std::mem::take(&mut self.0);
            LIVE.suspend(|| std::io::stderr().write_all(&line))?;
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The progress of one command, shared by the run and the phase hook.
pub type Shared = Arc<Progress>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use indicatif::InMemoryTerm;

    fn event(step: &str, done: u64, total: Option<u64>, unit: &'static str, message: &str) -> ProgressEvent {
        ProgressEvent {
            step: step.into(),
            done,
            total,
            unit,
            message: message.into(),
        }
    }

    fn bars() -> (Bars, InMemoryTerm) {
        let term = InMemoryTerm::new(20, 140);
        let live = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        (Bars::new(live), term)
    }

    #[test]
    fn templates_parse() {
        for t in [PENDING, RUNNING, STREAM, STREAM_UNSIZED, DONE] {
            ProgressStyle::with_template(t).unwrap();
        }
    }

    /// A phase as the stock guest reports it: the list stands from the start, each step turns
    /// done or skipped in place, the wait and the stream draw in their step's line, and the
    /// phase's end prints the list for good with the step that did not finish marked failed.
    #[test]
    fn a_phase_is_a_list_of_steps_that_turn_done_in_place() {
        let (bars, term) = bars();
        bars.plan_steps("backup", &["pause", "snapshot", "wait-dns", "complete"]);
        bars.redraw();
        let screen = term.contents();
        assert!(
            screen.contains("\u{b7} backup/pause") && screen.contains("\u{b7} backup/complete"),
            "{screen}"
        );

        bars.event(&event("backup/pause", 0, None, "items", "started"));
        bars.event(&event(
            "backup/pause",
            1,
            None,
            "items",
            "done: paused HostedCluster demo-one",
        ));
        let screen = term.contents();
        assert!(
            screen.contains("\u{2713} backup/pause: done: paused HostedCluster demo-one"),
            "{screen}"
        );

        bars.event(&event("backup/snapshot", 1, None, "items", "started"));
        bars.event(&event("backup/snapshot", 4 << 20, Some(8 << 20), "bytes", ""));
        bars.redraw();
        let screen = term.contents();
        assert!(
            screen.contains("backup/snapshot [") && screen.contains("4.00 MiB/8.00 MiB"),
            "{screen}"
        );
        bars.event(&event("backup/snapshot", 2, None, "items", "skipped: already uploaded"));

        bars.event(&event("backup/wait-dns", 2, None, "items", "started"));
        bars.event(&event(
            "backup/wait-dns",
            3,
            Some(300),
            "seconds",
            "waiting for the records: 1/2 released",
        ));
        bars.redraw();
        let screen = term.contents();
        assert!(
            screen.contains("backup/wait-dns [3s, 297s left]: waiting for the records: 1/2 released"),
            "{screen}"
        );

        bars.finish(true);
        let screen = term.contents();
        let lines: Vec<&str> = screen.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            [
                "\u{2713} backup/pause: done: paused HostedCluster demo-one",
                "\u{21b7} backup/snapshot: skipped: already uploaded",
                "\u{2717} backup/wait-dns [3s, 297s left]: waiting for the records: 1/2 released (stopped here)",
                "\u{b7} backup/complete (not run)",
            ],
            "{screen}"
        );
        // The live area is empty for the next phase.
        assert!(bars.state.lock().unwrap().order.is_empty());
    }

    #[test]
    fn guest_text_cannot_move_the_cursor() {
        let (bars, term) = bars();
        bars.event(&event("x", 0, None, "items", "started"));
        bars.event(&event("x", 1, None, "items", "done: \u{1b}[2Jwiped"));
        bars.finish(false);
        assert!(term.contents().contains("done: \\u{1b}[2Jwiped"), "{}", term.contents());
    }
}
