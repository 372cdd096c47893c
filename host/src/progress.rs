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

/// Keeps every event in memory (tests, JSON summaries).
#[derive(Default)]
pub struct RecordingProgress {
    events: Mutex<Vec<ProgressEvent>>,
}

impl RecordingProgress {
    /// The events so far.
    pub fn events(&self) -> Vec<ProgressEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl ProgressSink for RecordingProgress {
    fn event(&self, event: &ProgressEvent) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.clone());
        }
    }
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
