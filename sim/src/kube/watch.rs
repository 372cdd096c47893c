//! The HTTP side of watches: newline-delimited `{"type":..,"object":..}` events over a chunked
//! response, BOOKMARKs, `timeoutSeconds`, and the 410 `ERROR` event that makes kube-runtime's
//! watcher relist.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::ApiError;
use super::registry::{Kind, KindInfo};
use super::store::{Store, WatchEvent, Watcher};

/// Per-request watch settings.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: end the initial ADDED events with an
    /// `k8s.io/initial-events-end` bookmark.
    pub send_initial_events: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// How often BOOKMARKs are sent.
    pub bookmark_interval: Duration,
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut s = format!("{{\"type\":\"{event_type}\",\"object\":");
    s.push_str(&object.to_string());
    s.push_str("}\n");
    Bytes::from(s)
}

/// One event, its object shown in the version the client watches.
fn event_line(store: &Store, kind: &KindInfo, ev: &WatchEvent) -> Bytes {
    match store.view(kind, &ev.object) {
        Ok(obj) => line(ev.event_type.as_str(), &obj),
        Err(e) => line("ERROR", &e.to_status()),
    }
}

fn bookmark(kind: &KindInfo, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": metadata}),
    )
}

struct StreamState {
    kind: Kind,
    store: Store,
    watcher: Option<Watcher>,
    error: Option<ApiError>,
    settings: WatchSettings,
    deadline: Option<Instant>,
    ticker: tokio::time::Interval,
    shutdown: watch::Receiver<bool>,
    initial_end_sent: bool,
    done: bool,
}

async fn next_chunk(st: &mut StreamState) -> Option<Bytes> {
    loop {
        if st.done {
            return None;
        }
        if let Some(err) = st.error.take() {
            st.done = true;
            return Some(line("ERROR", &err.to_status()));
        }
        let watcher = st.watcher.as_mut()?;
        if st.settings.send_initial_events && !st.initial_end_sent && !watcher.in_initial_events() {
            st.initial_end_sent = true;
            if let Some(rv) = watcher.bookmark() {
                return Some(bookmark(&st.kind, rv, true));
            }
        }
        let deadline = st.deadline;
        let sleep = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        let bookmarks = st.settings.bookmarks;
        tokio::select! {
            biased;
            _ = wait_down(&mut st.shutdown) => return None,
            _ = sleep => return None,
            ev = watcher.next() => match ev {
                Ok(ev) => return Some(event_line(&st.store, &st.kind, &ev)),
                Err(e) => {
                    st.error = Some(e);
                }
            },
            _ = st.ticker.tick(), if bookmarks => {
                if let Some(rv) = watcher.bookmark() {
                    return Some(bookmark(&st.kind, rv, false));
                }
            }
        }
    }
}

/// Stream a watch. `watcher` is `Err` when the start resourceVersion is already too old: the
/// real apiserver answers 200 with a single ERROR event in that case too.
pub fn respond(
    kind: Kind,
    store: Store,
    watcher: Result<Watcher, ApiError>,
    settings: WatchSettings,
    shutdown: watch::Receiver<bool>,
) -> Response {
    let period = settings.bookmark_interval.max(Duration::from_millis(10));
    let (watcher, error) = match watcher {
        Ok(w) => (Some(w), None),
        Err(e) => (None, Some(e)),
    };
    let state = StreamState {
        kind,
        store,
        watcher,
        error,
        // `checked_add`: a huge timeoutSeconds must not overflow (and panic); it means "never".
        deadline: settings.timeout.and_then(|t| Instant::now().checked_add(t)),
        ticker: tokio::time::interval_at(Instant::now() + period, period),
        settings,
        shutdown,
        initial_end_sent: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        next_chunk(&mut st)
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), st))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Resolves once the server is shutting down. The `wait_for` guard is dropped inside, so the
/// future stays `Send` (the guard is not).
async fn wait_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await;
}
