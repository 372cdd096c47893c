//! Where guest progress and output go: the terminal, the log, or a test sink.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::io::AsyncWrite;

/// A progress event, as guests report it through `context.report-progress`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProgressEvent {
    /// The step, e.g. `backup/etcd-snapshot`.
    pub step: String,
    /// Amount done.
    pub done: u64,
    /// Total, when known.
    pub total: Option<u64>,
    /// `items`, `bytes` or `seconds`.
    pub unit: &'static str,
    /// Status line.
    pub message: String,
}

/// Receives progress events of a run.
pub trait ProgressSink: Send + Sync {
    /// Called for each event.
    fn event(&self, event: &ProgressEvent);
}

/// Logs progress events through `tracing`.
pub struct LogProgress;

impl ProgressSink for LogProgress {
    fn event(&self, e: &ProgressEvent) {
        match e.total {
            Some(t) => tracing::info!(step = %e.step, done = e.done, total = t, unit = e.unit, "{}", e.message),
            None => tracing::info!(step = %e.step, done = e.done, unit = e.unit, "{}", e.message),
        }
    }
}

/// Prints progress as plain lines, for a log, a pipe or a CI job: no cursor movement, no
/// colour. One line per step event, a byte counter for streams (the etcd snapshot upload) at
/// most every 64 MiB (and at least once), and a wait when it starts, each time what it waits
/// for changes, and when it ends. (`ferry` draws live bars on a terminal itself.)
pub struct TerminalProgress {
    state: Mutex<TerminalState>,
}

struct TerminalState {
    out: Box<dyn std::io::Write + Send>,
    /// The last byte-counted step, and what it had when last printed.
    stream: Option<String>,
    last_printed: u64,
    /// The last wait line printed (step and message), to print only changes.
    last_wait: Option<(String, String)>,
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::to_writer(Box::new(std::io::stderr()))
    }
}

impl TerminalProgress {
    /// A sink printing lines on `out`.
    pub fn to_writer(out: Box<dyn std::io::Write + Send>) -> Self {
        TerminalProgress {
            state: Mutex::new(TerminalState {
                out,
                stream: None,
                last_printed: 0,
                last_wait: None,
            }),
        }
    }
}

use std::io::Write as _;

/// `1.5 MiB` style byte counts.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl TerminalProgress {
    fn bytes(&self, st: &mut TerminalState, e: &ProgressEvent) {
        let amount = match e.total {
            Some(t) if t > 0 => format!(
                "{} / {} ({}%)",
                human_bytes(e.done),
                human_bytes(t),
                e.done.saturating_mul(100) / t
            ),
            _ => human_bytes(e.done),
        };
        let same = st.stream.as_deref() == Some(e.step.as_str());
        if !same || e.done >= st.last_printed.saturating_add(64 * 1024 * 1024) {
            let _ = writeln!(st.out, "  {}: {amount}", terminal_safe(&e.step, false));
            st.last_printed = e.done;
        }
        if !same {
            st.stream = Some(e.step.clone());
        }
    }

    /// A wait's report (`seconds` with a deadline): `waiting for …` while it waits, anything
    /// else when it ends.
    fn wait(&self, st: &mut TerminalState, e: &ProgressEvent, timeout: u64) {
        let waiting = e.message.starts_with("waiting for ");
        let step = terminal_safe(&e.step, false);
        let message = terminal_safe(&e.message, false);
        let left = timeout.saturating_sub(e.done);
        let line = if waiting {
            format!("  {step} [{}s, {left}s left]: {message}", e.done)
        } else {
            format!("  {step} [{}s]: {message}", e.done)
        };
        let key = (e.step.clone(), e.message.clone());
        if !waiting || st.last_wait.as_ref() != Some(&key) {
            let _ = writeln!(st.out, "{line}");
        }
        st.last_wait = if waiting { Some(key) } else { None };
    }
}

impl ProgressSink for TerminalProgress {
    fn event(&self, e: &ProgressEvent) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if e.unit == "bytes" {
            return self.bytes(&mut st, e);
        }
        if let ("seconds", Some(timeout)) = (e.unit, e.total) {
            return self.wait(&mut st, e, timeout);
        }
        let count = match (e.unit, e.total) {
            ("items", Some(t)) => format!(" [{}/{t}]", e.done),
            ("seconds", None) if e.done > 0 => format!(" [{}s]", e.done),
            _ => String::new(),
        };
        let step = terminal_safe(&e.step, false);
        if e.message.is_empty() {
            let _ = writeln!(st.out, "  {step}{count}");
        } else {
            let _ = writeln!(st.out, "  {step}{count}: {}", terminal_safe(&e.message, false));
        }
    }
}

/// Guest-provided text made safe to print on a terminal: control characters (escape
/// sequences that move the cursor, recolour, set the title or rewrite a line with `\r`) are
/// shown escaped, as `\u{1b}`. Newlines are kept only where `keep_newlines` says the text may
/// span lines (a report), so a progress line cannot forge the lines after it.
pub fn terminal_safe(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\t' && !(keep_newlines && c == '\n');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A guest's stdout or stderr: each line becomes a log record tagged with
/// the guest's name. Lines longer than 4 KiB are split.
#[derive(Clone)]
pub struct LogStream {
    guest: String,
    stream: &'static str,
}

impl LogStream {
    /// A stream for `guest`'s `stream` (`stdout` or `stderr`).
    pub fn new(guest: String, stream: &'static str) -> Self {
        LogStream { guest, stream }
    }
}

impl wasmtime_wasi::cli::IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            target: self.clone(),
            buf: Vec::new(),
        })
    }
}

struct LineWriter {
    target: LogStream,
    buf: Vec<u8>,
}

const MAX_LINE: usize = 4096;

impl LineWriter {
    fn emit(&mut self, upto: usize) {
        let line: Vec<u8> = self.buf.drain(..upto).collect();
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        tracing::info!(guest = %self.target.guest, stream = self.target.stream, "{text}");
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            self.emit(pos + 1);
        }
        while self.buf.len() >= MAX_LINE {
            self.emit(MAX_LINE);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.buf.is_empty() {
            let n = self.buf.len();
            self.emit(n);
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn wait_event(done: u64, message: &str) -> ProgressEvent {
        ProgressEvent {
            step: "restore/wait-dns".into(),
            done,
            total: Some(400),
            unit: "seconds",
            message: message.into(),
        }
    }

    /// The 40 polls of one wait, as a guest reports them: the same answer 38 times, one
    /// change, then the end.
    fn polls(sink: &TerminalProgress) {
        for s in 0..38 {
            sink.event(&wait_event(s, "waiting for DNS: api still owned by the source"));
        }
        sink.event(&wait_event(38, "waiting for DNS: oauth still owned by the source"));
        sink.event(&wait_event(39, "DNS: done"));
    }

    #[test]
    fn without_a_terminal_a_wait_prints_its_start_each_change_and_its_end() {
        let out = Shared::default();
        let sink = TerminalProgress::to_writer(Box::new(out.clone()));
        polls(&sink);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "  restore/wait-dns [0s, 400s left]: waiting for DNS: api still owned by the source\n\
             \x20 restore/wait-dns [38s, 362s left]: waiting for DNS: oauth still owned by the source\n\
             \x20 restore/wait-dns [39s]: DNS: done\n"
        );
        assert!(
            !text.contains('\r') && !text.contains('\x1b'),
            "no cursor movement in a log"
        );
    }

    /// A guest's words cannot recolour the terminal, set its title, or rewrite a line.
    #[test]
    fn control_characters_from_guests_are_shown_escaped() {
        let hostile = "done\x1b[2J\x1b]0;owned\x07\rfake [pass]";
        let safe = terminal_safe(hostile, false);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        assert_eq!(safe, "done\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{d}fake [pass]");
        assert_eq!(terminal_safe("a\nb", false), "a\\u{a}b");
        assert_eq!(terminal_safe("a\nb\tc", true), "a\nb\tc");
        assert!(matches!(terminal_safe("plain", false), std::borrow::Cow::Borrowed(_)));
    }
}
