//! HTTP handlers: URL routing, query parameters, body decoding, content negotiation, and the
//! mapping of every verb onto the [`Store`].
//!
//! Routing is done by hand from the path segments rather than with axum route patterns because
//! Kubernetes URLs are ambiguous by shape (`/api/v1/namespaces/x/status` is the namespace's
//! status, `/api/v1/namespaces/x/pods` is a list) and need the registry to be resolved.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::crd::FieldValidation;
use super::error::{ApiError, Reason};
use super::field;
use super::patch::{Patch, PatchType};
use super::portforward::{self, PortForwards};
use super::registry::{self, Kind};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{
    DeleteOptions, ListOptions, PropagationPolicy, Store, Subresource, WatchFilter, WatchFrom, WriteOptions, Written,
};
use super::watch::{self as watch_http, WatchSettings};
use super::{discovery, openapi, proto, table};

/// Largest request body accepted (the real apiserver's limit is 3 MiB; be generous).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Shared state of one server.
pub struct AppState {
    /// Display name (for logs).
    pub name: String,
    /// `host:port` the server listens on (for `/api`'s serverAddressByClientCIDRs).
    pub address: String,
    /// The objects.
    pub store: Store,
    /// Port-forward routes.
    pub port_forwards: PortForwards,
    /// Becomes true when the server shuts down; long-lived streams end on it.
    pub shutdown: watch::Receiver<bool>,
    /// BOOKMARK period of watches.
    pub bookmark_interval: Duration,
}

/// Logs method, path and status of every request.
pub async fn log_requests(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::info!(
        sim = %app.name,
        method = %method,
        path = %uri,
        status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Add `Warning: 299 - "<text>"` headers, as kube-apiserver sends them (kubectl prints
/// `Warning: <text>`).
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - {}", field::go_quote(w));
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

fn error_response(err: &ApiError) -> Response {
    let code = StatusCode::from_u16(err.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &err.to_status())
}

fn result(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(|e| error_response(&e))
}

/// Query parameters, keeping repeats (`ports=1&ports=2`).
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        let mut dry = false;
        for v in self.all("dryRun") {
            match v {
                "All" => dry = true,
                "" => {}
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid dryRun value: {other:?}: supported value is \"All\""
                    )));
                }
            }
        }
        Ok(dry)
    }

    fn list_options(&self) -> Result<ListOptions, ApiError> {
        let label_selector = LabelSelector::parse(self.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let field_selector = FieldSelector::parse(self.get("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let limit = match self.get("limit") {
            None | Some("") => None,
            Some(l) => Some(
                l.parse::<usize>()
                    .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            ),
        };
        Ok(ListOptions {
            label_selector,
            field_selector,
            limit,
            continue_token: self.get("continue").map(str::to_string),
        })
    }

    fn write_options(&self, subresource: Subresource, options_kind: &str) -> Result<WriteOptions, ApiError> {
        let field_validation = FieldValidation::parse(self.get("fieldValidation")).map_err(|bad| {
            ApiError::invalid_group_kind(
                "meta.k8s.io",
                options_kind,
                "",
                vec![field::not_supported(
                    &field::Path::new("fieldValidation"),
                    &Value::String(bad),
                    &[json!("Ignore"), json!("Strict"), json!("Warn")],
                )],
            )
        })?;
        Ok(WriteOptions {
            dry_run: self.dry_run()?,
            subresource,
            field_validation,
        })
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Decode a POST/PUT/DELETE body: JSON, YAML for `application/yaml`, or protobuf for the few
/// core kinds kubectl's typed commands send that way (see [`proto`]).
fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = header_str(headers, header::CONTENT_TYPE).to_ascii_lowercase();
    let base = ct.split(';').next().unwrap_or_default().trim();
    match base {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text =
                std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the YAML body is not valid UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("the body of the request could not be decoded as YAML: {e}"))
            })
        }
        proto::CONTENT_TYPE => proto::decode(body).map_err(|e| match e {
            proto::ProtoError::Unsupported(_) => ApiError::new(Reason::UnsupportedMediaType, e.to_string()),
            proto::ProtoError::Malformed(_) => ApiError::bad_request(e.to_string()),
        }),
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            proto::CONTENT_TYPE,
        ])),
    }
}

/// Route every request.
pub async fn dispatch(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let params = match Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
        Ok(q) => Params(q.0),
        Err(e) => return error_response(&ApiError::bad_request(format!("invalid query: {e}"))),
    };
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let reg = app.store.registry();
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    match segs.as_slice() {
        ["version"] if get => ok(&discovery::version()),
        ["healthz" | "livez" | "readyz"] if get => (StatusCode::OK, "ok").into_response(),
        ["api"] if get => ok(&discovery::api_versions(&app.address)),
        ["apis"] if get => ok(&discovery::api_group_list(&reg)),
        ["openapi", "v2"] if get => {
            let accept = parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains("protobuf") {
                (
                    [(header::CONTENT_TYPE, openapi::V2_PROTOBUF)],
                    openapi::v2_protobuf(&reg),
                )
                    .into_response()
            } else {
                ok(&openapi::v2_document(&reg))
            }
        }
        ["openapi", "v3"] if get => ok(&openapi::index(&reg)),
        ["openapi", "v3", rest @ ..] if get => match openapi::group_version(&reg, &rest.join("/")) {
            Some(doc) => ok(&doc),
            None => error_response(&ApiError::unknown_resource()),
        },
        ["apis", group] if get => match discovery::api_group(&reg, group) {
            Some(g) => ok(&g),
            None => error_response(&ApiError::unknown_resource()),
        },
        ["api", version, rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource(app.clone(), "", version, &rest, parts, body, params).await
        }
        ["apis", group, version, rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource(app.clone(), group, version, &rest, parts, body, params).await
        }
        _ => error_response(&ApiError::unknown_resource()),
    }
}

/// A resolved resource URL.
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn resolve(store: &Store, group: &str, version: &str, rest: &[String]) -> Result<Target, ApiError> {
    let reg = store.registry();
    let lookup = |plural: &str| reg.by_resource(group, version, plural).cloned();
    // `/namespaces/{ns}/{plural}/...` unless `{plural}` is really a namespace subresource.
    if rest.len() >= 3
        && rest[0] == "namespaces"
        && let Some(kind) = lookup(&rest[2])
    {
        if !kind.namespaced || rest.len() > 5 {
            return Err(ApiError::unknown_resource());
        }
        return Ok(Target {
            kind,
            namespace: Some(rest[1].clone()),
            name: rest.get(3).cloned(),
            sub: rest.get(4).cloned(),
        });
    }
    let Some(plural) = rest.first() else {
        return Err(ApiError::unknown_resource());
    };
    let kind = lookup(plural).ok_or_else(ApiError::unknown_resource)?;
    if rest.len() > 3 {
        return Err(ApiError::unknown_resource());
    }
    Ok(Target {
        kind,
        namespace: None,
        name: rest.get(1).cloned(),
        sub: rest.get(2).cloned(),
    })
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    app: Arc<AppState>,
    group: &str,
    version: &str,
    rest: &[String],
    parts: Parts,
    body: Body,
    params: Params,
) -> Response {
    let method = parts.method.clone();
    if rest.is_empty() {
        if method != Method::GET {
            return error_response(&ApiError::method_not_allowed());
        }
        return match discovery::api_resource_list(&app.store.registry(), group, version) {
            Some(list) => ok(&list),
            None => error_response(&ApiError::unknown_resource()),
        };
    }
    // Legacy `/watch/` prefix: `/api/v1/watch/namespaces/x/pods`.
    let (watch_prefix, rest) = match rest.split_first() {
        Some((first, tail)) if first == "watch" => (true, tail),
        _ => (false, rest),
    };
    let target = match resolve(&app.store, group, version, rest) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let headers = parts.headers.clone();
    match (target.name.clone(), target.sub.clone()) {
        (Some(name), Some(sub))
            if sub == "portforward" && target.kind.plural == "pods" && target.kind.group.is_empty() =>
        {
            result(port_forward(app, target, name, parts, params).await)
        }
        (name, sub) => {
            let body = match read_body(body).await {
                Ok(b) => b,
                Err(e) => return error_response(&e),
            };
            let deprecation = target.kind.deprecation_warning.clone();
            let req = Req {
                app: &app,
                kind: target.kind.clone(),
                namespace: target.namespace.as_deref(),
                params: &params,
                headers: &headers,
                body: &body,
            };
            let watch = watch_prefix || params.flag("watch");
            let resp = match (name, sub) {
                (None, _) => result(collection(req, &method, watch)),
                (Some(name), None) => result(object(req, &method, &name)),
                (Some(name), Some(sub)) => result(subresource(req, &method, &name, &sub)),
            };
            match deprecation {
                Some(w) => with_warnings(resp, &[w]),
                None => resp,
            }
        }
    }
}

struct Req<'a> {
    app: &'a AppState,
    kind: Kind,
    namespace: Option<&'a str>,
    params: &'a Params,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

impl Req<'_> {
    fn require_verb(&self, verb: &str) -> Result<(), ApiError> {
        if self.kind.allows(verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    }

    fn accept(&self) -> &str {
        header_str(self.headers, header::ACCEPT)
    }

    /// Render a write's object with its warnings.
    fn render_written(&self, code: StatusCode, w: &Written) -> Response {
        with_warnings(self.render_object(code, &w.object), &w.warnings)
    }

    /// Render one object, as a Table when kubectl asks for it.
    fn render_object(&self, code: StatusCode, obj: &Value) -> Response {
        if table::wants_table(self.accept()) {
            let t = table::to_table(
                &self.kind,
                std::slice::from_ref(obj),
                json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}),
                table::IncludeObject::parse(self.params.get("includeObject")),
            );
            return json_response(code, &t);
        }
        json_response(code, obj)
    }
}

fn collection(req: Req<'_>, method: &Method, watch: bool) -> Result<Response, ApiError> {
    let kind = req.kind.clone();
    if kind.namespaced && req.namespace.is_none() && *method != Method::GET {
        // Creating or deleting across all namespaces is not a thing.
        return Err(ApiError::method_not_allowed());
    }
    if !kind.namespaced && req.namespace.is_some() {
        return Err(ApiError::unknown_resource());
    }
    let store = &req.app.store;
    match *method {
        Method::GET | Method::HEAD if watch => {
            req.require_verb("watch")?;
            let list = req.params.list_options()?;
            let rv = req.params.get("resourceVersion").unwrap_or_default();
            let send_initial = req.params.flag("sendInitialEvents");
            let from = match rv {
                "" | "0" => {
                    if rv == "0" && req.params.get("sendInitialEvents") == Some("false") {
                        WatchFrom::Now
                    } else {
                        WatchFrom::CurrentState
                    }
                }
                other => WatchFrom::ResourceVersion(
                    other
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {other:?}")))?,
                ),
            };
            let from = if send_initial { WatchFrom::CurrentState } else { from };
            let timeout = match req.params.get("timeoutSeconds") {
                None | Some("") => None,
                Some(t) => {
                    Some(Duration::from_secs(t.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid timeoutSeconds {t:?}"))
                    })?))
                }
            };
            let filter = WatchFilter {
                kind: Some(kind.clone()),
                namespace: req.namespace.map(str::to_string),
                label_selector: list.label_selector,
                field_selector: list.field_selector,
            };
            let watcher = store.watch(filter, from);
            if let Err(e) = &watcher
                && e.reason != Reason::Expired
            {
                return Err(e.clone());
            }
            Ok(watch_http::respond(
                kind,
                store.clone(),
                watcher,
                WatchSettings {
                    bookmarks: req.params.flag("allowWatchBookmarks"),
                    send_initial_events: send_initial,
                    timeout,
                    bookmark_interval: req.app.bookmark_interval,
                },
                req.app.shutdown.clone(),
            ))
        }
        Method::GET | Method::HEAD => {
            req.require_verb("list")?;
            let opts = req.params.list_options()?;
            let list = store.list(&kind, req.namespace, &opts)?;
            if table::wants_table(req.accept()) {
                let body = list.to_json(&kind);
                let t = table::to_table(
                    &kind,
                    &list.items,
                    body.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    table::IncludeObject::parse(req.params.get("includeObject")),
                );
                return Ok(ok(&t));
            }
            Ok(ok(&list.to_json(&kind)))
        }
        Method::POST => {
            req.require_verb("create")?;
            let obj = decode_body(req.headers, req.body)?;
            let opts = req.params.write_options(Subresource::Main, "CreateOptions")?;
            let created = store.create_ext(&kind, req.namespace, obj, &opts)?;
            Ok(req.render_written(StatusCode::CREATED, &created))
        }
        Method::DELETE => {
            req.require_verb("deletecollection")?;
            let list = req.params.list_options()?;
            let opts = delete_options(&req)?;
            let deleted = store.delete_collection(&kind, req.namespace, &list, &opts)?;
            Ok(ok(&json!({
                "kind": kind.list_kind,
                "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": store.resource_version().to_string()},
                "items": deleted,
            })))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn delete_options(req: &Req<'_>) -> Result<DeleteOptions, ApiError> {
    let body: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_body(req.headers, req.body)?
    };
    let mut dry_run = req.params.dry_run()?;
    if let Some(list) = body.get("dryRun").and_then(Value::as_array) {
        for v in list {
            match v.as_str() {
                Some("All") => dry_run = true,
                _ => {
                    return Err(ApiError::bad_request("Invalid dryRun value in DeleteOptions"));
                }
            }
        }
    }
    let policy = req
        .params
        .get("propagationPolicy")
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str));
    let orphan =
        req.params.flag("orphanDependents") || body.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let propagation = match policy {
        None | Some("") => {
            if orphan {
                PropagationPolicy::Orphan
            } else {
                PropagationPolicy::Background
            }
        }
        Some("Background") => PropagationPolicy::Background,
        Some("Foreground") => PropagationPolicy::Foreground,
        Some("Orphan") => PropagationPolicy::Orphan,
        Some(other) => {
            return Err(ApiError::new(
                Reason::Invalid,
                format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            ));
        }
    };
    let pre = |f: &str| {
        body.pointer(&format!("/preconditions/{f}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let grace_period_seconds = match req.params.get("gracePeriodSeconds") {
        Some(g) => Some(
            g.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        ),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    Ok(DeleteOptions {
        dry_run,
        propagation,
        uid: pre("uid"),
        resource_version: pre("resourceVersion"),
        grace_period_seconds,
    })
}

fn decode_patch(req: &Req<'_>) -> Result<Patch, ApiError> {
    let ct = header_str(req.headers, header::CONTENT_TYPE);
    let Some(pt) = PatchType::from_content_type(ct) else {
        return Err(ApiError::unsupported_media_type(PatchType::accepted(
            req.kind.strategic_merge,
        )));
    };
    if pt == PatchType::Strategic && !req.kind.strategic_merge {
        return Err(ApiError::unsupported_media_type(PatchType::accepted(false)));
    }
    let force = req.params.get("force");
    if pt != PatchType::Apply && force.is_some() {
        return Err(ApiError::new(
            Reason::Invalid,
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
        ));
    }
    let parse_json = || {
        serde_json::from_slice::<Value>(req.body)
            .map_err(|e| ApiError::bad_request(format!("the patch body could not be decoded as JSON: {e}")))
    };
    Ok(match pt {
        PatchType::Merge => Patch::Merge(parse_json()?),
        PatchType::Json => Patch::Json(parse_json()?),
        PatchType::Strategic => Patch::Strategic(parse_json()?),
        PatchType::Apply => {
            let manager = req.params.get("fieldManager").unwrap_or_default();
            if manager.is_empty() {
                // Same validation error (422) as the real server's ValidatePatchOptions.
                return Err(ApiError::new(
                    Reason::Invalid,
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let text = std::str::from_utf8(req.body)
                .map_err(|_| ApiError::bad_request("the apply body is not valid UTF-8"))?;
            // YAML is a superset of JSON, but parse JSON with serde_json when it looks like JSON
            // so that error messages are precise.
            let config = if text.trim_start().starts_with('{') {
                serde_json::from_str::<Value>(text)
                    .map_err(|e| ApiError::bad_request(format!("the apply body could not be decoded: {e}")))?
            } else {
                serde_saphyr::from_str::<Value>(text)
                    .map_err(|e| ApiError::bad_request(format!("the apply body could not be decoded: {e}")))?
            };
            Patch::Apply {
                config,
                field_manager: manager.to_string(),
                force: matches!(force, Some("true" | "1")),
            }
        }
    })
}

fn object(req: Req<'_>, method: &Method, name: &str) -> Result<Response, ApiError> {
    let kind = req.kind.clone();
    if kind.namespaced && req.namespace.is_none() {
        return Err(ApiError::unknown_resource());
    }
    if !kind.namespaced && req.namespace.is_some() {
        return Err(ApiError::unknown_resource());
    }
    let store = &req.app.store;
    match *method {
        Method::GET | Method::HEAD => {
            req.require_verb("get")?;
            let obj = store.get(&kind, req.namespace, name)?;
            Ok(req.render_object(StatusCode::OK, &obj))
        }
        Method::PUT => {
            req.require_verb("update")?;
            let obj = decode_body(req.headers, req.body)?;
            let opts = req.params.write_options(Subresource::Main, "UpdateOptions")?;
            let updated = store.update_ext(&kind, req.namespace, name, obj, &opts)?;
            Ok(req.render_written(StatusCode::OK, &updated))
        }
        Method::PATCH => {
            req.require_verb("patch")?;
            let patch = decode_patch(&req)?;
            let opts = req.params.write_options(Subresource::Main, "PatchOptions")?;
            let out = store.patch_ext(&kind, req.namespace, name, &patch, &opts)?;
            let code = if out.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(req.render_written(code, &out))
        }
        Method::DELETE => {
            req.require_verb("delete")?;
            let opts = delete_options(&req)?;
            let obj = store.delete(&kind, req.namespace, name, &opts)?;
            Ok(ok(&obj))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn subresource(req: Req<'_>, method: &Method, name: &str, sub: &str) -> Result<Response, ApiError> {
    let kind = req.kind.clone();
    if kind.namespaced != req.namespace.is_some() {
        return Err(ApiError::unknown_resource());
    }
    let store = &req.app.store;
    match sub {
        "status" if kind.status => match *method {
            Method::GET => Ok(ok(&store.get(&kind, req.namespace, name)?)),
            Method::PUT => {
                let obj = decode_body(req.headers, req.body)?;
                let opts = req.params.write_options(Subresource::Status, "UpdateOptions")?;
                let w = store.update_ext(&kind, req.namespace, name, obj, &opts)?;
                Ok(with_warnings(ok(&w.object), &w.warnings))
            }
            Method::PATCH => {
                let patch = decode_patch(&req)?;
                let opts = req.params.write_options(Subresource::Status, "PatchOptions")?;
                let w = store.patch_ext(&kind, req.namespace, name, &patch, &opts)?;
                Ok(with_warnings(ok(&w.object), &w.warnings))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        "scale" if kind.scale.is_some() => match *method {
            Method::GET => Ok(ok(&store.get_scale(&kind, req.namespace, name)?)),
            Method::PUT => {
                let scale = decode_body(req.headers, req.body)?;
                let opts = req.params.write_options(Subresource::Main, "UpdateOptions")?;
                Ok(ok(&store.update_scale(&kind, req.namespace, name, &scale, &opts)?))
            }
            Method::PATCH => {
                // Scale is a built-in type, so strategic merge is accepted for every kind.
                let ct = header_str(req.headers, header::CONTENT_TYPE);
                let patch = match PatchType::from_content_type(ct) {
                    Some(PatchType::Strategic) => Patch::Strategic(
                        serde_json::from_slice(req.body).map_err(|e| ApiError::bad_request(e.to_string()))?,
                    ),
                    _ => decode_patch(&req)?,
                };
                let opts = req.params.write_options(Subresource::Main, "PatchOptions")?;
                Ok(ok(&store.patch_scale(&kind, req.namespace, name, &patch, &opts)?))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        "finalize" if kind.is_namespace() => match *method {
            Method::PUT => {
                let obj = decode_body(req.headers, req.body)?;
                let opts = req.params.write_options(Subresource::Finalize, "UpdateOptions")?;
                Ok(ok(&store.update(&kind, req.namespace, name, obj, &opts)?))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        _ => Err(ApiError::unknown_resource()),
    }
}

async fn port_forward(
    app: Arc<AppState>,
    target: Target,
    pod: String,
    mut parts: Parts,
    params: Params,
) -> Result<Response, ApiError> {
    let namespace = target.namespace.ok_or_else(ApiError::unknown_resource)?;
    app.store.get(&registry::POD, Some(&namespace), &pod)?;
    let ports = portforward::parse_ports(params.all("ports")).map_err(ApiError::bad_request)?;
    if ports.len() > 128 {
        return Err(ApiError::bad_request("too many ports (at most 128)"));
    }
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| {
            ApiError::bad_request(format!(
                "port-forward needs a WebSocket upgrade (SPDY is not supported): {e}"
            ))
        })?;
    let routes: Vec<_> = ports
        .iter()
        .map(|p| (*p, app.port_forwards.connect(&namespace, &pod, *p)))
        .collect();
    let shutdown = app.shutdown.clone();
    Ok(ws
        .protocols(portforward::PROTOCOLS)
        .on_upgrade(move |socket| portforward::serve(socket, pod, routes, shutdown)))
}
