//! A fleet's live output: on a terminal, one line per hosted cluster, updated in place with
//! the step it is on (a multi-progress view, as `cargo` and `docker compose` draw parallel
//! work), each turning `✓` or `✗` with its time when it ends; elsewhere, plain lines, each
//! prefixed with its hosted cluster, printed whole so that members never interleave within a
//! line; with `--quiet`, nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry::progress::{ProgressEvent, ProgressSink, TerminalProgress, terminal_safe};
use ferry_dr::fleet::{FleetView, Member, MemberResult};
use ferry_dr::phases::PhaseHook;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The templates of a member's line (constants of this file, checked by the tests).
const RUNNING: &str = "{spinner:.cyan} {prefix:<W} {elapsed:>4} {wide_msg}";
const ENDED: &str = "  {prefix:<W}      {wide_msg}";

fn style(template: &str, width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&template.replace('W', &width.to_string()))
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

/// How a fleet's output is drawn.
pub enum Fleet {
    /// One in-place line per member in a live area (a terminal).
    Bars(FleetBars),
    /// Plain prefixed lines (no terminal, JSON logs).
    Lines,
    /// Nothing (`--quiet`, or JSON output on stdout with no terminal).
    Quiet,
}

impl Fleet {
    /// The view for stderr: bars on a terminal with text logs, lines elsewhere, nothing when
    /// `quiet`.
    pub fn for_stderr(members: &[Member], quiet: bool, json_logs: bool) -> Self {
        use std::io::IsTerminal as _;
        if quiet {
            Fleet::Quiet
        } else if std::io::stderr().is_terminal() && !json_logs {
            Fleet::Bars(FleetBars::new(crate::terminal::live(), members))
        } else {
            Fleet::Lines
        }
    }
}

/// The live lines of a fleet's members.
pub struct FleetBars {
    bars: BTreeMap<Member, ProgressBar>,
    width: usize,
}

impl FleetBars {
    /// A pending line per member, in fleet order, drawn in `live`.
    pub fn new(live: MultiProgress, members: &[Member]) -> Self {
        let width = members.iter().map(|m| m.to_string().chars().count()).max().unwrap_or(0);
        let bars = members
            .iter()
            .map(|m| {
                let bar = live.add(ProgressBar::new_spinner());
                bar.set_style(style(ENDED, width));
                bar.set_prefix(terminal_safe(&m.to_string(), false).into_owned());
                bar.set_message("· waiting for a slot");
                (m.clone(), bar)
            })
            .collect();
        FleetBars { bars, width }
    }

    fn start(&self, m: &Member) {
        if let Some(bar) = self.bars.get(m) {
            bar.set_style(style(RUNNING, self.width));
            bar.reset_elapsed();
            bar.enable_steady_tick(Duration::from_millis(120));
        }
    }

    fn say(&self, m: &Member, message: String) {
        if let Some(bar) = self.bars.get(m) {
            bar.set_message(message);
        }
    }

    fn end(&self, r: &MemberResult) {
        if let Some(bar) = self.bars.get(&r.member) {
            bar.set_style(style(ENDED, self.width));
            bar.finish_with_message(ended(r));
        }
    }

    /// Draws every line now (drawing is rate-limited; a test reads the screen at once).
    #[cfg(test)]
    fn redraw(&self) {
        self.bars.values().for_each(ProgressBar::force_draw);
    }
}

/// A member's last line: `✓ completed in 54.2s`, or `✗ failed in restore (54.2s): why`.
fn ended(r: &MemberResult) -> String {
    let secs = r.elapsed_ms as f64 / 1000.0;
    if r.succeeded() {
        format!("\u{2713} {} in {secs:.1}s", r.status())
    } else {
        format!(
            "\u{2717} {} in {} ({secs:.1}s): {}",
            r.status(),
            r.phase(),
            terminal_safe(&r.reason(), false)
        )
    }
}

/// What one member's event says on its line: `restore/wait-nodes [31s, 1169s left]: waiting …`.
fn line_of(e: &ProgressEvent) -> String {
    let message = terminal_safe(&e.message, false);
    let step = terminal_safe(&e.step, false);
    match (e.unit, e.total) {
        ("bytes", Some(t)) => format!(
            "{step}: {} of {}",
            ferry::progress::human_bytes(e.done),
            ferry::progress::human_bytes(t)
        ),
        ("bytes", None) => format!("{step}: {}", ferry::progress::human_bytes(e.done)),
        ("seconds", Some(timeout)) => format!("{step}{}", crate::terminal::wait_text(e, timeout, &message)),
        _ => format!("{step}: {message}"),
    }
}

/// One member's progress on its live line.
struct MemberLine {
    view: Arc<Fleet>,
    member: Member,
}

impl ProgressSink for MemberLine {
    fn event(&self, e: &ProgressEvent) {
        if let Fleet::Bars(b) = &*self.view {
            b.say(&self.member, line_of(e));
        }
    }
}

/// Whole lines to stderr, each prefixed with its member.
struct Prefixed {
    prefix: String,
    buf: Vec<u8>,
}

impl std::io::Write for Prefixed {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let mut out = self.prefix.clone().into_bytes();
            out.extend_from_slice(&line);
            // One write per line: stderr is unbuffered and a line is short.
            std::io::stderr().write_all(&out)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fleet view handed to [`ferry_dr::fleet::migrate`].
pub struct View(pub Arc<Fleet>);

impl FleetView for View {
    fn progress(&self, m: &Member) -> Option<Arc<dyn ProgressSink>> {
        Some(match &*self.0 {
            Fleet::Bars(_) => Arc::new(MemberLine {
                view: self.0.clone(),
                member: m.clone(),
            }),
            Fleet::Lines => Arc::new(TerminalProgress::to_writer(Box::new(Prefixed {
                prefix: format!("{m}: "),
                buf: Vec::new(),
            }))),
            Fleet::Quiet => Arc::new(TerminalProgress::to_writer(Box::new(std::io::sink()))),
        })
    }

    fn on_phase(&self, m: &Member) -> Option<PhaseHook> {
        let view = self.0.clone();
        let m = m.clone();
        Some(Arc::new(move |phase, result| match (&*view, result) {
            (Fleet::Bars(b), None) => {
                b.start(&m);
                b.say(&m, format!("{phase}: starting"));
            }
            (Fleet::Lines, None) => eprintln!("{m}: == {phase} =="),
            (Fleet::Lines, Some(r)) => eprintln!("{m}: {phase}: {}", if r.failed() { "FAILED" } else { "ended" }),
            _ => {}
        }))
    }

    fn finished(&self, r: &MemberResult) {
        match &*self.0 {
            Fleet::Bars(b) => b.end(r),
            Fleet::Lines => eprintln!("{}: {}", r.member, ended(r)),
            Fleet::Quiet => {}
        }
    }
}

impl Drop for FleetBars {
    fn drop(&mut self) {
        // The lines stay on screen as they ended, above the table.
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

/// Shared state of a view, for tests that look at the screen.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use ferry_dr::fleet::MemberOutcome;
    use indicatif::{InMemoryTerm, ProgressDrawTarget};
    use std::io::Write as _;

    fn member(ns: &str, name: &str) -> Member {
        Member {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn templates_parse() {
        for t in [RUNNING, ENDED] {
            ProgressStyle::with_template(&t.replace('W', "12")).unwrap();
        }
    }

    /// Every member has its line from the start; a running one shows its step, a wait its time
    /// left, and an ended one its mark, result and time; lines keep fleet order.
    #[test]
    fn each_member_is_one_line_updated_in_place() {
        let term = InMemoryTerm::new(10, 160);
        let live = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        let members = [member("clusters", "a"), member("clusters", "bb"), member("east", "c")];
        let view = Arc::new(Fleet::Bars(FleetBars::new(live, &members)));
        let v = View(view.clone());
        let hook = v.on_phase(&members[1]).unwrap();
        hook(ferry_dr::phases::Phase::Restore, None);
        v.progress(&members[1]).unwrap().event(&ProgressEvent {
            step: "restore/wait-nodes".into(),
            done: 31,
            total: Some(1200),
            unit: "seconds",
            message: "waiting for the hosted cluster's nodes to be Ready: 0/2 Ready".into(),
        });
        v.finished(&MemberResult {
            member: members[2].clone(),
            outcome: MemberOutcome::NotStarted {
                message: "[clusters.hosted] names one hosted cluster's API\nmore".into(),
            },
            elapsed_ms: 1500,
        });
        let Fleet::Bars(b) = &*view else { unreachable!() };
        b.redraw();
        let screen = term.contents();
        let lines: Vec<&str> = screen.lines().collect();
        assert!(
            lines[0].contains("clusters/a") && lines[0].contains("waiting for a slot"),
            "{screen}"
        );
        assert!(
            lines[1].contains("clusters/bb")
                && lines[1].contains("restore/wait-nodes [31s, 1169s left]: waiting for the hosted cluster's nodes"),
            "{screen}"
        );
        assert!(
            lines[2].contains("east/c")
                && lines[2].contains("\u{2717} not started in - (1.5s): [clusters.hosted] names"),
            "{screen}"
        );
        assert!(!screen.contains("more"), "only the reason's first line: {screen}");
    }

    /// Off a terminal, each line of a member's progress reaches stderr whole with its prefix.
    #[test]
    fn plain_lines_carry_their_member() {
        let mut p = Prefixed {
            prefix: "clusters/a: ".into(),
            buf: Vec::new(),
        };
        // Written in pieces, as a formatter does: nothing leaves before the line is whole.
        p.write_all(b"backup/pause: do").unwrap();
        assert_eq!(p.buf, b"backup/pause: do");
        p.write_all(b"ne: paused\nbackup/snap").unwrap();
        assert_eq!(p.buf, b"backup/snap");
    }
}
