//! Fault and timing injection for the simulated API server.
//!
//! A [`FaultPlan`] is a shared, runtime-changeable list of [`FaultRule`]s. The server's
//! [`inject`] middleware classifies every request (verb, resource, namespace) and asks the plan
//! whether to interfere. A rule can answer with a Kubernetes `Status` error (409, 429 with
//! `Retry-After`, 500, 503), delay the request, or drop the TCP connection without writing any
//! response.
//!
//! Everything is deterministic: a rule fires on every `k`-th request it matches (a counter, no
//! randomness) and optionally only a limited number of times, so a test can say "the 3rd and the
//! 6th LIST of configmaps fail" and get exactly that.
//!
//! Rule evaluation, per request: rules are tried in the order they were added. Every rule that
//! matches the request (and is not spent) counts it; the first rule whose count reaches a
//! multiple of its `every` fires, and the rules after it neither count nor fire for that
//! request. A `Delay` action then lets the request through to the real handler; the other
//! actions replace it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferry_sim::Sim;
//! use ferry_sim::kube::faults::{FaultAction, FaultRule, InjectedError, Verb};
//! let sim = Sim::start("mgmt1").await?;
//! // Every second GET of a ConfigMap in namespace `ns` answers 500.
//! let id = sim.faults().add(
//!     FaultRule::new(FaultAction::Error(InjectedError::InternalError))
//!         .verb(Verb::Get)
//!         .resource("configmaps")
//!         .namespace("ns")
//!         .every(2),
//! );
//! // ...
//! sim.faults().remove(id);
//! # Ok(()) }
//! ```

use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::registry::Registry;
use super::store::Store;
use crate::chaos::Chaos;

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// A verb name that is not one of GET, LIST, WATCH, POST, PUT, PATCH, DELETE.
    #[error("unknown verb {0:?}: expected one of GET, LIST, WATCH, POST, PUT, PATCH, DELETE")]
    UnknownVerb(String),
}

/// The API verb of a request, as the fault rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET (or HEAD) of one object, or of a non-resource path (`/api`, `/version`...).
    Get,
    /// GET of a collection.
    List,
    /// GET with `watch=true` (or the legacy `/watch/` path prefix).
    Watch,
    /// POST (create).
    Post,
    /// PUT (update, including `/status` and `/scale`).
    Put,
    /// PATCH.
    Patch,
    /// DELETE of one object or of a collection.
    Delete,
}

impl Verb {
    /// The upper-case name (`GET`, `LIST`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }
}

impl FromStr for Verb {
    type Err = FaultError;

    /// Case-insensitive; `CREATE` and `UPDATE` are accepted for POST and PUT.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Ok(Verb::Get),
            "LIST" => Ok(Verb::List),
            "WATCH" => Ok(Verb::Watch),
            "POST" | "CREATE" => Ok(Verb::Post),
            "PUT" | "UPDATE" => Ok(Verb::Put),
            "PATCH" => Ok(Verb::Patch),
            "DELETE" => Ok(Verb::Delete),
            _ => Err(FaultError::UnknownVerb(s.to_string())),
        }
    }
}

/// An HTTP error answered instead of the real response, with a `meta.k8s.io/v1` `Status` body
/// shaped like the real apiserver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedError {
    /// 409 `Conflict` ("the object has been modified").
    Conflict,
    /// 429 `TooManyRequests` with a `Retry-After` header and `details.retryAfterSeconds`.
    TooManyRequests {
        /// Seconds announced in `Retry-After`.
        retry_after_secs: u64,
    },
    /// 500 `InternalError`.
    InternalError,
    /// 503 `ServiceUnavailable`, optionally with `Retry-After`.
    ServiceUnavailable {
        /// Seconds announced in `Retry-After`, if any.
        retry_after_secs: Option<u64>,
    },
}

impl InjectedError {
    /// The HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            InjectedError::Conflict => 409,
            InjectedError::TooManyRequests { .. } => 429,
            InjectedError::InternalError => 500,
            InjectedError::ServiceUnavailable { .. } => 503,
        }
    }

    fn retry_after(self) -> Option<u64> {
        match self {
            InjectedError::TooManyRequests { retry_after_secs } => Some(retry_after_secs),
            InjectedError::ServiceUnavailable { retry_after_secs } => retry_after_secs,
            InjectedError::Conflict | InjectedError::InternalError => None,
        }
    }

    /// The `Status` body for a request on `target`.
    pub fn status_body(self, target: &RequestInfo) -> Value {
        let resource = target.qualified_resource();
        let (reason, message) = match self {
            InjectedError::Conflict => (
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your \
                     changes to the latest version and try again",
                    resource.as_deref().unwrap_or("resource"),
                    target.name.as_deref().unwrap_or_default()
                ),
            ),
            InjectedError::TooManyRequests { .. } => (
                "TooManyRequests",
                "Too many requests, please try again later.".to_string(),
            ),
            InjectedError::InternalError => (
                "InternalError",
                "Internal error occurred: injected fault (ferry-sim)".to_string(),
            ),
            InjectedError::ServiceUnavailable { .. } => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request".to_string(),
            ),
        };
        let mut details = serde_json::Map::new();
        if let Some(name) = &target.name {
            details.insert("name".into(), json!(name));
        }
        if !target.group.is_empty() {
            details.insert("group".into(), json!(target.group));
        }
        if let Some(plural) = &target.plural {
            details.insert("kind".into(), json!(plural));
        }
        if let Some(secs) = self.retry_after() {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if self == InjectedError::InternalError {
            details.insert("causes".into(), json!([{"message": "injected fault (ferry-sim)"}]));
        }
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": self.code(),
        })
    }

    fn response(self, target: &RequestInfo) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            self.status_body(target).to_string(),
        )
            .into_response();
        if let Some(secs) = self.retry_after() {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// What a firing rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer this error instead of serving the request.
    Error(InjectedError),
    /// Wait this long, then serve the request normally.
    Delay(Duration),
    /// Close the connection without writing a response (the client sees the connection closed
    /// before the message completed). Needs the server's own listener (see [`FaultListener`]);
    /// elsewhere it degrades to a 503.
    DropConnection,
    /// Serve the request, then close the connection before the response is written: the
    /// change happened, and the client cannot know it (a lost response). Needs the server's
    /// own listener; elsewhere the response is sent.
    DropResponse,
}

/// One rule of a [`FaultPlan`]. Build with [`FaultRule::new`] and the chained setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Verbs matched; empty matches every verb.
    pub verbs: Vec<Verb>,
    /// Resource matched: a plural (`configmaps`), `plural.group` (`routes.route.openshift.io`) or
    /// a kind (`ConfigMap`), case-insensitive. `None` matches every request, including
    /// non-resource paths such as discovery.
    pub resource: Option<String>,
    /// Namespace matched; `None` matches any (and cluster-scoped requests).
    pub namespace: Option<String>,
    /// What happens when the rule fires.
    pub action: FaultAction,
    /// Fire on every `every`-th matching request (1, the default, fires on all of them; 0 is
    /// treated as 1).
    pub every: u64,
    /// Fire at most this many times, then the rule is spent (stays listed, matches nothing).
    /// `None`: until removed.
    pub times: Option<u64>,
}

impl FaultRule {
    /// A rule that matches every request and always fires `action`.
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            verbs: Vec::new(),
            resource: None,
            namespace: None,
            action,
            every: 1,
            times: None,
        }
    }

    /// Shorthand for `FaultRule::new(FaultAction::Error(error))`.
    pub fn error(error: InjectedError) -> Self {
        Self::new(FaultAction::Error(error))
    }

    /// Also match `verb` (the first call restricts the rule to that verb).
    pub fn verb(mut self, verb: Verb) -> Self {
        if !self.verbs.contains(&verb) {
            self.verbs.push(verb);
        }
        self
    }

    /// Match only this resource (plural, `plural.group` or kind).
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    /// Match only this namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Fire on every `k`-th matching request.
    pub fn every(mut self, k: u64) -> Self {
        self.every = k;
        self
    }

    /// Fire at most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, req: &RequestInfo) -> bool {
        if !self.verbs.is_empty() && !self.verbs.contains(&req.verb) {
            return false;
        }
        if let Some(ns) = &self.namespace
            && req.namespace.as_deref() != Some(ns.as_str())
        {
            return false;
        }
        match &self.resource {
            None => true,
            Some(want) => {
                let Some(plural) = &req.plural else {
                    return false;
                };
                want.eq_ignore_ascii_case(plural)
                    || req.kind.as_deref().is_some_and(|k| want.eq_ignore_ascii_case(k))
                    || (!req.group.is_empty() && want.eq_ignore_ascii_case(&format!("{plural}.{}", req.group)))
            }
        }
    }
}

/// Identifies a rule added to a [`FaultPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

/// Counters of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleStats {
    /// Requests the rule matched (and counted).
    pub matched: u64,
    /// Times it fired.
    pub fired: u64,
}

struct Slot {
    id: RuleId,
    rule: FaultRule,
    stats: RuleStats,
}

#[derive(Default)]
struct PlanState {
    next_id: u64,
    rules: Vec<Slot>,
    /// Random faults for requests no rule fired on.
    chaos: Option<Arc<Chaos>>,
    /// Why the server serves nothing at all now, when it does not.
    down: Option<String>,
}

/// A shared, runtime-changeable list of fault rules (cheap to clone; clones share the rules).
/// Get a running server's plan with [`crate::Sim::faults`].
#[derive(Clone, Default)]
pub struct FaultPlan {
    inner: Arc<Mutex<PlanState>>,
}

impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultPlan")
            .field("rules", &self.lock().rules.len())
            .finish()
    }
}

impl FaultPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, PlanState> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Append a rule (it is tried after the existing ones).
    pub fn add(&self, rule: FaultRule) -> RuleId {
        let mut st = self.lock();
        st.next_id += 1;
        let id = RuleId(st.next_id);
        st.rules.push(Slot {
            id,
            rule,
            stats: RuleStats::default(),
        });
        id
    }

    /// An outage: every request on `resource` (every request at all with `None`) answers 503,
    /// for the next `requests` matching requests or, with `None`, until removed or cleared.
    pub fn outage(&self, resource: Option<&str>, requests: Option<u64>) -> RuleId {
        let mut rule = FaultRule::error(InjectedError::ServiceUnavailable { retry_after_secs: None });
        rule.resource = resource.map(str::to_string);
        rule.times = requests;
        self.add(rule)
    }

    /// Remove a rule; false if it was not there.
    pub fn remove(&self, id: RuleId) -> bool {
        let mut st = self.lock();
        let before = st.rules.len();
        st.rules.retain(|s| s.id != id);
        st.rules.len() != before
    }

    /// Remove every rule.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Number of rules (spent ones included).
    pub fn len(&self) -> usize {
        self.lock().rules.len()
    }

    /// True when there are no rules, no [`Chaos`] and the server is up: requests pass
    /// untouched.
    pub fn is_empty(&self) -> bool {
        let st = self.lock();
        st.rules.is_empty() && st.chaos.is_none() && st.down.is_none()
    }

    /// Take the server down (`Some(why)`: every request answers 503 ServiceUnavailable with
    /// `why`, before any rule) or bring it back (`None`): a hosted cluster's API whose name
    /// leads to no running kube-apiserver.
    pub fn set_down(&self, why: Option<String>) {
        self.lock().down = why;
    }

    /// Why the server is down, if it is.
    pub fn down(&self) -> Option<String> {
        self.lock().down.clone()
    }

    /// Random faults at a rate on every request no rule fires on (`None` ends them): 429 with
    /// `Retry-After`, 500, 503, a dropped connection, a lost response, latency, and 409 on
    /// updates (PUT), where a real API server answers it for a stale resourceVersion. A create
    /// never gets an injected 409: that means AlreadyExists, which clients rightly take as
    /// done.
    pub fn set_chaos(&self, chaos: Option<Arc<Chaos>>) {
        self.lock().chaos = chaos;
    }

    /// Counters of a rule, `None` if it was removed.
    pub fn stats(&self, id: RuleId) -> Option<RuleStats> {
        self.lock().rules.iter().find(|s| s.id == id).map(|s| s.stats)
    }

    /// Count `req` against the rules and return the action of the rule that fires, if any
    /// (see the module documentation for the order).
    pub fn decide(&self, req: &RequestInfo) -> Option<FaultAction> {
        let mut st = self.lock();
        for slot in st.rules.iter_mut() {
            if slot.rule.times.is_some_and(|n| slot.stats.fired >= n) || !slot.rule.matches(req) {
                continue;
            }
            slot.stats.matched += 1;
            if slot.stats.matched.is_multiple_of(slot.rule.every.max(1)) {
                slot.stats.fired += 1;
                return Some(slot.rule.action);
            }
        }
        let chaos = st.chaos.clone()?;
        drop(st);
        chaos_action(&chaos, req.verb)
    }
}

/// What [`Chaos`] does to one request of `verb`, counted by kind.
fn chaos_action(chaos: &Chaos, verb: Verb) -> Option<FaultAction> {
    const ANY: &[&str] = &["429", "500", "503", "drop", "lost-response", "delay"];
    const UPDATE: &[&str] = &["409", "429", "500", "503", "drop", "lost-response", "delay"];
    let kind = chaos.pick(if verb == Verb::Put { UPDATE } else { ANY })?;
    Some(match kind {
        "409" => FaultAction::Error(InjectedError::Conflict),
        "429" => FaultAction::Error(InjectedError::TooManyRequests { retry_after_secs: 1 }),
        "500" => FaultAction::Error(InjectedError::InternalError),
        "503" => FaultAction::Error(InjectedError::ServiceUnavailable {
            retry_after_secs: Some(1),
        }),
        "drop" => FaultAction::DropConnection,
        "lost-response" => FaultAction::DropResponse,
        _ => FaultAction::Delay(chaos.latency(Duration::from_millis(10), Duration::from_millis(150))),
    })
}

/// A request as the fault rules classify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The verb.
    pub verb: Verb,
    /// API group (empty for core and for non-resource paths).
    pub group: String,
    /// Resource plural; `None` for non-resource paths (discovery, `/version`, health).
    pub plural: Option<String>,
    /// The kind, when the registry knows the resource.
    pub kind: Option<String>,
    /// Namespace of a namespaced request.
    pub namespace: Option<String>,
    /// Object name, for requests on one object.
    pub name: Option<String>,
}

impl RequestInfo {
    /// Classify a request from its method, path and query. `registry` resolves the kind.
    ///
    /// Namespaced URLs are recognised by shape, `/namespaces/{ns}/{plural}...`, except that
    /// `/namespaces/{ns}/status` and `/namespaces/{ns}/finalize` are the Namespace's
    /// subresources.
    pub fn classify(method: &Method, path: &str, query: Option<&str>, registry: &Registry) -> RequestInfo {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, version, mut rest): (&str, &str, &[&str]) = match segs.as_slice() {
            ["api", version, rest @ ..] => ("", version, rest),
            ["apis", group, version, rest @ ..] => (group, version, rest),
            _ => ("", "", &[]),
        };
        let mut watch = query.is_some_and(|q| {
            q.split('&')
                .any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True"))
        });
        if rest.first() == Some(&"watch") {
            watch = true;
            rest = &rest[1..];
        }
        let (namespace, plural, name) = match rest {
            ["namespaces", ns, plural, tail @ ..] if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) => {
                (
                    Some(ns.to_string()),
                    Some(plural.to_string()),
                    tail.first().map(|s| s.to_string()),
                )
            }
            [plural, tail @ ..] => (None, Some(plural.to_string()), tail.first().map(|s| s.to_string())),
            [] => (None, None, None),
        };
        let verb = match *method {
            Method::POST => Verb::Post,
            Method::PUT => Verb::Put,
            Method::PATCH => Verb::Patch,
            Method::DELETE => Verb::Delete,
            _ if watch => Verb::Watch,
            _ if plural.is_some() && name.is_none() => Verb::List,
            _ => Verb::Get,
        };
        let kind = plural
            .as_deref()
            .and_then(|p| registry.by_resource(group, version, p))
            .map(|k| k.kind.to_string());
        RequestInfo {
            verb,
            group: if plural.is_some() {
                group.to_string()
            } else {
                String::new()
            },
            plural,
            kind,
            namespace,
            name,
        }
    }

    /// `configmaps` or `routes.route.openshift.io`.
    fn qualified_resource(&self) -> Option<String> {
        let plural = self.plural.as_deref()?;
        Some(if self.group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{}", self.group)
        })
    }
}

/// State of the [`inject`] middleware.
#[derive(Clone, Debug)]
pub struct FaultState {
    /// The rules.
    pub plan: FaultPlan,
    /// Resolves resources to kinds for rule matching (through what it serves now).
    pub store: Store,
}

/// The middleware: classify the request, consult the plan, and interfere.
pub async fn inject(State(state): State<FaultState>, req: Request, next: Next) -> Response {
    if state.plan.is_empty() {
        return next.run(req).await;
    }
    if let Some(why) = state.plan.down() {
        let status = super::error::ApiError::new(super::error::Reason::ServiceUnavailable, why).to_status();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response();
    }
    let info = RequestInfo::classify(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        &state.store.registry(),
    );
    let Some(action) = state.plan.decide(&info) else {
        return next.run(req).await;
    };
    tracing::info!(verb = info.verb.as_str(), resource = ?info.plural, namespace = ?info.namespace,
        action = ?action, "injecting fault");
    match action {
        FaultAction::Delay(d) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        FaultAction::Error(e) => e.response(&info),
        FaultAction::DropConnection => match req.extensions().get::<ConnectInfo<ConnHandle>>() {
            Some(ConnectInfo(conn)) => {
                conn.kill();
                // Never written: the connection refuses every write from now on, so hyper
                // closes it.
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
            None => InjectedError::ServiceUnavailable { retry_after_secs: None }.response(&info),
        },
        FaultAction::DropResponse => {
            let conn = req.extensions().get::<ConnectInfo<ConnHandle>>().map(|c| c.0.clone());
            let response = next.run(req).await;
            if let Some(conn) = conn {
                conn.kill();
            }
            response
        }
    }
}

/// A TCP listener whose connections can be killed from a request handler (for
/// [`FaultAction::DropConnection`]); serve it with
/// `into_make_service_with_connect_info::<ConnHandle>()`.
#[derive(Debug)]
pub struct FaultListener {
    inner: TcpListener,
}

impl FaultListener {
    /// Wrap a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        FaultListener { inner }
    }
}

impl Listener for FaultListener {
    type Io = KillableStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        KillableStream {
                            inner: stream,
                            killed: Arc::new(AtomicBool::new(false)),
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // As axum's own TcpListener: per-connection errors are skipped, anything
                    // else (e.g. EMFILE) is logged and retried after a pause.
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) {
                        tracing::error!(error = %e, "accept error");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that fails every read and write once killed, so hyper drops the connection
/// without sending anything more.
#[derive(Debug)]
pub struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by an injected fault",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Per-connection handle that request handlers receive as `ConnectInfo<ConnHandle>`.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    killed: Arc<AtomicBool>,
    /// The client's address.
    pub remote_addr: std::net::SocketAddr,
}

impl ConnHandle {
    /// Make the connection fail every further read and write.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
    }
}

impl Connected<IncomingStream<'_, FaultListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        ConnHandle {
            killed: stream.io().killed.clone(),
            remote_addr: *stream.remote_addr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: Option<&str>) -> RequestInfo {
        RequestInfo::classify(&method, path, query, &Registry::builtin())
    }

    #[test]
    fn classifies_urls() {
        let i = info(Method::GET, "/api/v1/namespaces/a/configmaps/b", None);
        assert_eq!(
            (
                i.verb,
                i.plural.as_deref(),
                i.namespace.as_deref(),
                i.name.as_deref(),
                i.kind.as_deref()
            ),
            (Verb::Get, Some("configmaps"), Some("a"), Some("b"), Some("ConfigMap"))
        );
        assert_eq!(
            info(Method::GET, "/api/v1/namespaces/a/configmaps", None).verb,
            Verb::List
        );
        assert_eq!(
            info(Method::GET, "/api/v1/configmaps", Some("watch=true&x=1")).verb,
            Verb::Watch
        );
        assert_eq!(
            info(Method::GET, "/api/v1/watch/namespaces/a/pods", None).verb,
            Verb::Watch
        );
        let ns = info(Method::PUT, "/api/v1/namespaces/a/finalize", None);
        assert_eq!(
            (ns.plural.as_deref(), ns.name.as_deref()),
            (Some("namespaces"), Some("a"))
        );
        let r = info(
            Method::DELETE,
            "/apis/route.openshift.io/v1/namespaces/x/routes/r",
            None,
        );
        assert_eq!(
            (r.verb, r.group.as_str(), r.kind.as_deref()),
            (Verb::Delete, "route.openshift.io", Some("Route"))
        );
        let d = info(Method::GET, "/apis", None);
        assert_eq!((d.verb, d.plural), (Verb::Get, None));
    }

    #[test]
    fn every_and_times_count_deterministically() {
        let plan = FaultPlan::new();
        let id = plan.add(
            FaultRule::error(InjectedError::InternalError)
                .resource("ConfigMap")
                .every(3)
                .times(2),
        );
        let cm = info(Method::GET, "/api/v1/namespaces/a/configmaps/b", None);
        let fired: Vec<bool> = (0..10).map(|_| plan.decide(&cm).is_some()).collect();
        let expected: Vec<bool> = (1..=10).map(|n| n == 3 || n == 6).collect();
        assert_eq!(fired, expected);
        assert_eq!(plan.stats(id), Some(RuleStats { matched: 6, fired: 2 }));
        assert!(
            plan.decide(&info(Method::GET, "/api/v1/namespaces/a/secrets/b", None))
                .is_none()
        );
    }

    #[test]
    fn chaos_faults_every_verb_but_never_answers_a_create_with_409() {
        let plan = FaultPlan::new();
        let chaos = Chaos::for_service("source", 1.0, 3);
        plan.set_chaos(Some(chaos.clone()));
        assert!(!plan.is_empty());
        let create = info(Method::POST, "/api/v1/namespaces/a/configmaps", None);
        let update = info(Method::PUT, "/api/v1/namespaces/a/configmaps/b", None);
        let creates: Vec<FaultAction> = (0..300).filter_map(|_| plan.decide(&create)).collect();
        let updates: Vec<FaultAction> = (0..300).filter_map(|_| plan.decide(&update)).collect();
        assert_eq!(
            (creates.len(), updates.len()),
            (300, 300),
            "a rate of 1 faults every request"
        );
        let conflict = FaultAction::Error(InjectedError::Conflict);
        assert!(!creates.contains(&conflict), "409 on a create means AlreadyExists");
        assert!(updates.contains(&conflict));
        assert!(creates.contains(&FaultAction::DropResponse));
        assert_eq!(chaos.total(), 600);
        // A rule still comes first, and clearing the chaos leaves the plan empty again.
        plan.add(FaultRule::error(InjectedError::InternalError).verb(Verb::Post));
        assert_eq!(
            plan.decide(&create),
            Some(FaultAction::Error(InjectedError::InternalError))
        );
        plan.clear();
        plan.set_chaos(None);
        assert!(plan.is_empty() && plan.decide(&create).is_none());
    }

    #[test]
    fn verbs_parse() {
        assert_eq!("list".parse::<Verb>(), Ok(Verb::List));
        assert!(matches!("frob".parse::<Verb>(), Err(FaultError::UnknownVerb(_))));
    }
}
