//! The object store: the simulated etcd + registry logic of one API server.
//!
//! Objects are `serde_json::Value`s keyed by (group, resource) and then (namespace, name), with
//! one global, monotonically increasing resourceVersion. All mutations run under one mutex, so
//! they are linearizable and cascades (namespace termination, owner-reference garbage
//! collection, finalizer completion) happen atomically inside the write that triggers them:
//! tests never need to wait for a background controller, yet clients still observe the same
//! sequence of states and watch events as on a real cluster (MODIFIED with `deletionTimestamp`,
//! then DELETED once finalizers are gone).
//!
//! Every change is appended to a bounded event history. Watchers (HTTP watches and in-process
//! controllers alike) read that history from their own cursor, so a slow watcher cannot lose
//! events silently: if its cursor falls out of the history it gets a 410 `Expired`, exactly the
//! signal kube-runtime's watcher uses to relist.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::admission::{self, AdmissionRequest, Operation, ServiceRef, Webhook, WebhookServers};
use super::crd::validation::Write;
use super::crd::{self, FieldValidation};
use super::error::{ApiError, Reason};
use super::field::{self, Cause};
use super::meta::{self, meta_mut, meta_str};
use super::names;
use super::patch::{self, Patch};
use super::registry::{self, Behavior, CreateStatus, Kind, KindInfo, Registry};
use super::selector::{self, FieldSelector, LabelSelector};

fn cause(field: &str, reason: &str, message: impl Into<String>) -> Cause {
    Cause::new(field, reason, message)
}

/// Default number of events kept for watch resumption.
pub const DEFAULT_HISTORY_LIMIT: usize = 10_000;

/// Namespaces the real apiserver refuses to delete.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// (namespace or "" for cluster-scoped, name): the BTreeMap order gives stable pagination.
type ObjKey = (String, String);

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object appeared (or started matching a selector).
    Added,
    /// The object changed.
    Modified,
    /// The object is gone (or stopped matching a selector).
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// What happened.
    pub event_type: EventType,
    /// The object's kind, at its storage version (the object is stored in it).
    pub kind: Kind,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// The resourceVersion of this change.
    pub resource_version: u64,
    /// The object after the change; for DELETED the last state, at the deletion's version.
    pub object: Arc<Value>,
    /// The object before the change (MODIFIED and DELETED).
    pub previous: Option<Arc<Value>>,
}

/// Which endpoint a write goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subresource {
    /// The object itself: `.status` is preserved for kinds with a status subresource.
    #[default]
    Main,
    /// `/status`: only `.status` changes.
    Status,
    /// Namespace `/finalize`: only `spec.finalizers` changes.
    Finalize,
}

/// Options of create, update and patch.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// Target endpoint.
    pub subresource: Subresource,
    /// `fieldValidation`: what unknown fields of a custom resource do.
    pub field_validation: FieldValidation,
}

impl WriteOptions {
    /// Options for a `/status` write.
    pub fn status() -> Self {
        WriteOptions {
            subresource: Subresource::Status,
            ..Default::default()
        }
    }
}

/// What a write returned: the object, whether an apply created it, and the warnings the API
/// server sends with it (`Warning` headers: unknown fields, ratcheted rules).
#[derive(Debug, Clone)]
pub struct Written {
    /// The object after the write, in the version of the request.
    pub object: Value,
    /// True when an apply patch created the object (the API answers 201).
    pub created: bool,
    /// Warnings for the client.
    pub warnings: Vec<String>,
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PropagationPolicy {
    /// Delete the object now, dependents afterwards (the default).
    #[default]
    Background,
    /// Keep the object (with the `foregroundDeletion` finalizer) until its dependents are gone.
    Foreground,
    /// Remove this owner from the dependents' ownerReferences and leave them.
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Dependents handling.
    pub propagation: PropagationPolicy,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `gracePeriodSeconds`: how long a scheduled pod may take to stop (`None`: its
    /// `terminationGracePeriodSeconds`).
    pub grace_period_seconds: Option<i64>,
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
    /// `limit` (0 or `None` = everything).
    pub limit: Option<usize>,
    /// `continue` token from a previous page.
    pub continue_token: Option<String>,
}

impl ListOptions {
    /// List options with a label selector string.
    pub fn labels(selector: &str) -> Result<Self, ApiError> {
        Ok(ListOptions {
            label_selector: LabelSelector::parse(selector).map_err(|e| ApiError::bad_request(e.to_string()))?,
            ..Default::default()
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ObjectList {
    /// The objects, ordered by namespace then name.
    pub items: Vec<Value>,
    /// The list's resourceVersion (the store's version when the first page was read).
    pub resource_version: u64,
    /// Token for the next page, when `limit` cut the list.
    pub continue_token: Option<String>,
    /// How many matching objects follow this page.
    pub remaining_item_count: Option<u64>,
}

impl ObjectList {
    /// The `XList` JSON body.
    pub fn to_json(&self, kind: &KindInfo) -> Value {
        let mut metadata = json!({"resourceVersion": self.resource_version.to_string()});
        if let Some(c) = &self.continue_token {
            metadata["continue"] = json!(c);
        }
        if let Some(r) = self.remaining_item_count {
            metadata["remainingItemCount"] = json!(r);
        }
        json!({
            "kind": kind.list_kind,
            "apiVersion": kind.api_version(),
            "metadata": metadata,
            "items": self.items,
        })
    }
}

/// Result of a patch: the object and whether server-side apply created it.
#[derive(Debug, Clone)]
pub struct PatchOutcome {
    /// The object after the patch.
    pub object: Value,
    /// True when an apply patch created the object (the API answers 201).
    pub created: bool,
}

/// Which events a watcher wants.
#[derive(Debug, Clone, Default)]
pub struct WatchFilter {
    /// Only this kind's resource (`None`: every kind; used by in-process controllers).
    pub kind: Option<Kind>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only objects with matching labels.
    pub label_selector: LabelSelector,
    /// Only objects with matching fields.
    pub field_selector: FieldSelector,
}

impl WatchFilter {
    /// Every event of one kind, in all namespaces.
    pub fn kind(kind: &Kind) -> Self {
        WatchFilter {
            kind: Some(kind.clone()),
            ..Default::default()
        }
    }

    fn matches_object(&self, obj: &Value) -> bool {
        self.label_selector.matches_object(obj) && self.field_selector.matches_object(obj)
    }
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// Synthetic ADDED events for the current matching objects, then changes
    /// (`resourceVersion` absent, `""` or `"0"`).
    CurrentState,
    /// Only changes from now on.
    Now,
    /// Changes strictly after this resourceVersion (410 if it left the history).
    ResourceVersion(u64),
}

enum Work {
    /// An object with this uid was removed: collect its dependents.
    Dependents(String, PropagationPolicy),
    /// A dependent of this owner was removed: finish a foreground deletion if possible.
    OwnerCheck(String),
    /// An object left this namespace: finish its termination if possible.
    Namespace(String),
}

struct Table {
    /// The resource's row at its storage version.
    kind: Kind,
    items: BTreeMap<ObjKey, Arc<Value>>,
}

/// (group, plural): one table per resource, whatever the versions served.
type TableKey = (String, String);

fn table_key(kind: &KindInfo) -> TableKey {
    (kind.group.clone(), kind.plural.clone())
}

struct State {
    rv: u64,
    tables: HashMap<TableKey, Table>,
    uids: HashMap<String, (Kind, ObjKey)>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Highest resourceVersion dropped from `history`.
    compacted: u64,
    history_limit: usize,
    /// What is served; CRD writes replace it (copy on write, so readers keep a snapshot).
    registry: Arc<Registry>,
    /// The in-process servers behind admission and conversion webhooks, by Service and path.
    webhooks: Arc<WebhookServers>,
}

struct Shared {
    state: Mutex<State>,
    notify: watch::Sender<u64>,
}

/// A cheaply clonable handle to one simulated API server's objects.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave a half-applied write visible (writes are
    // built on clones and inserted last), so a poisoned lock is safe to keep using.
    shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn same_kind(a: &KindInfo, b: &KindInfo) -> bool {
    a.same_resource(b)
}

fn key_for(kind: &KindInfo, namespace: Option<&str>, name: &str) -> Result<ObjKey, ApiError> {
    if kind.namespaced {
        match namespace {
            Some(ns) if !ns.is_empty() => Ok((ns.to_string(), name.to_string())),
            _ => Err(ApiError::bad_request(format!(
                "a namespace is required for namespaced resource {}",
                kind.plural
            ))),
        }
    } else {
        Ok((String::new(), name.to_string()))
    }
}

fn rv_of(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(m) = meta_mut(obj) {
        m.insert("resourceVersion".into(), json!(rv.to_string()));
    }
}

fn has_deletion_timestamp(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// Check the body's apiVersion/kind (filling them when absent), that `metadata` is an object,
/// and that a name/namespace in the body agree with the URL.
fn check_identity(kind: &KindInfo, obj: &mut Value, key: Option<&ObjKey>) -> Result<(), ApiError> {
    let api_version = kind.api_version();
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    };
    match map.get("apiVersion") {
        Some(Value::String(v)) if !v.is_empty() && *v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        Some(Value::String(v)) if !v.is_empty() => {}
        _ => {
            map.insert("apiVersion".into(), json!(api_version));
        }
    }
    match map.get("kind") {
        Some(Value::String(k)) if !k.is_empty() && *k != kind.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )));
        }
        Some(Value::String(k)) if !k.is_empty() => {}
        _ => {
            map.insert("kind".into(), json!(kind.kind));
        }
    }
    match map.get("metadata") {
        None | Some(Value::Object(_)) => {}
        Some(Value::Null) => {
            map.remove("metadata");
        }
        Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
    }
    let Some(meta) = meta_mut(obj) else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    if let Some((ns, name)) = key {
        match meta.get("name") {
            Some(Value::String(n)) if !n.is_empty() && n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {
                meta.insert("name".into(), json!(name));
            }
        }
        if kind.namespaced {
            match meta.get("namespace") {
                Some(Value::String(n)) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
    }
    Ok(())
}

/// `ValidateObjectMeta` (`k8s.io/apimachinery/pkg/api/validation/objectmeta.go`): the name by
/// the kind's rule, label keys and values, annotation keys, finalizer names.
fn validate_metadata(kind: &KindInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let meta = field::Path::new("metadata");
    if let Some(name) = meta_str(obj, "name").filter(|n| !n.is_empty()) {
        for m in kind.name_rule.check(name, false) {
            causes.push(field::invalid_str(&meta.child("name"), name, &m));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        let path = meta.child("labels");
        match labels.as_object() {
            Some(l) => {
                for (k, v) in l {
                    for m in names::qualified_name(k) {
                        causes.push(field::invalid_str(&path, k, &m));
                    }
                    match v.as_str() {
                        Some(s) => {
                            for m in names::label_value(s) {
                                causes.push(field::invalid_str(&path, s, &m));
                            }
                        }
                        None => causes.push(field::invalid(&path.key(k), v, "label values must be strings")),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(field::invalid(&path, labels, "must be a map of strings")),
        }
    }
    if let Some(ann) = obj.pointer("/metadata/annotations") {
        let path = meta.child("annotations");
        match ann.as_object() {
            Some(a) => {
                let mut total = 0usize;
                for (k, v) in a {
                    for m in names::qualified_name(&k.to_ascii_lowercase()) {
                        causes.push(field::invalid_str(&path, k, &m));
                    }
                    match v.as_str() {
                        Some(s) => total += k.len() + s.len(),
                        None => causes.push(field::invalid(&path.key(k), v, "annotation values must be strings")),
                    }
                }
                if total > 256 * 1024 {
                    causes.push(field::too_long(&path, 256 * 1024));
                }
            }
            None if ann.is_null() => {}
            None => causes.push(field::invalid(&path, ann, "must be a map of strings")),
        }
    }
    if let Some(f) = obj.pointer("/metadata/finalizers")
        && !f.is_null()
    {
        let path = meta.child("finalizers");
        match f.as_array() {
            Some(list) if list.iter().all(Value::is_string) => {
                for name in list.iter().filter_map(Value::as_str) {
                    for m in names::qualified_name(name) {
                        causes.push(field::invalid_str(&path, name, &m));
                    }
                }
            }
            _ => causes.push(field::invalid(&path, f, "must be a list of strings")),
        }
    }
    causes
}

/// Collapse empty label/annotation/finalizer containers the way the real server's
/// serialization (`omitempty`) does, so that clients see the same shapes.
fn drop_empty_meta(obj: &mut Value) {
    if let Some(m) = meta_mut(obj) {
        for k in [
            "labels",
            "annotations",
            "finalizers",
            "ownerReferences",
            "managedFields",
        ] {
            let empty = match m.get(k) {
                Some(Value::Null) => true,
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            };
            if empty {
                m.remove(k);
            }
        }
    }
}

/// Encoded `continue` token: base64 of `{"rv":N,"ns":..,"name":..}`.
fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let raw = json!({"rv": rv, "ns": key.0, "name": key.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, ObjKey), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

/// The autoscaling/v1 `Scale` view of an object.
fn scale_of(kind: &KindInfo, obj: &Value) -> Result<Value, ApiError> {
    let Some(scale) = &kind.scale else {
        return Err(ApiError::unknown_resource());
    };
    let replicas = |path: &str| meta::get_path(obj, path).and_then(Value::as_i64).unwrap_or(0);
    let mut status = json!({"replicas": replicas(&scale.status_replicas)});
    if let Some(sel) = scale
        .label_selector
        .as_deref()
        .and_then(|p| meta::get_path(obj, p))
        .and_then(selector::selector_string)
    {
        status["selector"] = json!(sel);
    }
    let m = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({});
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = m.get(f) {
            metadata[f] = v.clone();
        }
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": replicas(&scale.spec_replicas)},
        "status": status,
    }))
}

/// What the webhooks of one request are told.
struct WebhookCall<'a> {
    op: Operation,
    kind: &'a KindInfo,
    /// The subresource (`""`, `status`, `scale`, `finalize`).
    sub: &'a str,
    namespace: &'a str,
    name: &'a str,
    old: Option<&'a Value>,
    dry_run: bool,
}

impl admission::Lookup for Txn<'_> {
    fn lookup(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.stored(group, plural, namespace, name).map(|o| (*o).clone())
    }
}

struct Txn<'a> {
    st: &'a mut State,
    work: Vec<Work>,
    /// `Warning` headers for the client of this write.
    warnings: Vec<String>,
}

/// The table of `group`/`plural`, looked up without a served row.
fn table_of<'s>(st: &'s State, group: &str, plural: &str) -> Option<&'s Table> {
    st.tables.get(&(group.to_string(), plural.to_string()))
}

impl Txn<'_> {
    fn reg(&self) -> &Registry {
        &self.st.registry
    }

    /// A stored object by group, plural and key, whatever version serves it.
    fn stored(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        table_of(self.st, group, plural)?
            .items
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Whether the Service behind a webhook has a ready endpoint (`ResolveEndpoint`).
    fn endpoint(&self, svc: &ServiceRef) -> Result<(), String> {
        let service = self.stored("", "services", &svc.namespace, &svc.name);
        let pods: Vec<Arc<Value>> = table_of(self.st, "", "pods")
            .map(|t| {
                t.items
                    .range((svc.namespace.clone(), String::new())..)
                    .take_while(|((ns, _), _)| *ns == svc.namespace)
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default();
        admission::resolve_endpoint(service.as_deref(), &pods, svc)
    }

    /// The conversion webhook of a CRD-served resource whose CRD says `strategy: Webhook`.
    fn conversion_webhook(&self, kind: &KindInfo) -> Option<ServiceRef> {
        let crd = self.stored(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            kind.crd.as_deref()?,
        )?;
        if crd.pointer("/spec/conversion/strategy").and_then(Value::as_str) != Some("Webhook") {
            return None;
        }
        ServiceRef::from_client_config(crd.pointer("/spec/conversion/webhook/clientConfig")?)
    }

    /// Convert `obj` (any served version of `kind`'s resource) to `version`: nothing to do when
    /// it already is in that version (`getObjectsToConvert`), through the CRD's conversion
    /// webhook when it has one (which answers only while its Service has ready endpoints),
    /// otherwise as the `None` strategy does (only `apiVersion` changes).
    fn convert(&self, kind: &KindInfo, obj: &Value, version: &str) -> Result<Value, ApiError> {
        let from = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (_, current) = registry::split_api_version(&from);
        if current == version {
            return Ok(obj.clone());
        }
        let target = if kind.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", kind.group)
        };
        let mut out = match self.conversion_webhook(kind) {
            Some(svc) => {
                self.endpoint(&svc)
                    .map_err(|why| admission::conversion_failure(&from, &kind.kind, &svc, &why))?;
                let handler = self.st.webhooks.conversion(&svc).cloned().ok_or_else(|| {
                    admission::conversion_failure(
                        &from,
                        &kind.kind,
                        &svc,
                        "the server could not find the requested resource",
                    )
                })?;
                handler(obj, version).map_err(|e| {
                    ApiError::new(
                        Reason::Unknown,
                        format!("conversion webhook for {from}, Kind={} failed: {e}", kind.kind),
                    )
                })?
            }
            None => obj.clone(),
        };
        if let Some(m) = out.as_object_mut() {
            m.insert("apiVersion".into(), json!(target));
        }
        Ok(out)
    }

    /// Calls the mutating (`mutating`) or validating webhooks that match a request, in
    /// configuration-name order; a mutating webhook's patch changes `object`.
    fn call_webhooks(
        &self,
        mutating: bool,
        call: &WebhookCall<'_>,
        object: &mut Option<Value>,
    ) -> Result<(), ApiError> {
        let kind = call.kind;
        if kind.group == admission::ADMISSION_GROUP {
            // Webhook configurations are never sent to webhooks
            // (`IsExemptAdmissionConfigurationResource`).
            return Ok(());
        }
        let plural = if mutating {
            "mutatingwebhookconfigurations"
        } else {
            "validatingwebhookconfigurations"
        };
        let configs: Vec<Arc<Value>> = table_of(self.st, admission::ADMISSION_GROUP, plural)
            .map(|t| t.items.values().cloned().collect())
            .unwrap_or_default();
        for config in configs {
            for w in Webhook::of_configuration(&config) {
                // matchPolicy Equivalent: the same resource in another served version.
                let mut call_kind = kind.clone();
                let mut matched = w.rule_matches(call.op, kind, &kind.version, call.sub, call.namespace);
                if !matched
                    && w.equivalent
                    && let Some(other) = self.reg().kinds().iter().find(|k| {
                        k.same_resource(kind)
                            && k.version != kind.version
                            && w.rule_matches(call.op, k, &k.version, call.sub, call.namespace)
                    })
                {
                    call_kind = KindInfo::clone(other);
                    matched = true;
                }
                if !matched {
                    continue;
                }
                if !w.namespace_selector.is_empty() {
                    let labels_of = if kind.is_namespace() {
                        object.clone().or_else(|| call.old.cloned())
                    } else if call.namespace.is_empty() {
                        None
                    } else {
                        Some(
                            self.stored("", "namespaces", "", call.namespace)
                                .map(|n| (*n).clone())
                                .ok_or_else(|| ApiError::namespace_not_found(call.namespace))?,
                        )
                    };
                    if labels_of.is_some_and(|o| !w.namespace_selector.matches_object(&o)) {
                        continue;
                    }
                }
                if !w.object_selector.is_empty() {
                    let new_matches = object.as_ref().is_some_and(|o| w.object_selector.matches_object(o));
                    let old_matches = call.old.is_some_and(|o| w.object_selector.matches_object(o));
                    if !new_matches && !old_matches {
                        continue;
                    }
                }
                if call.dry_run && !w.dry_run_safe {
                    return Err(admission::dry_run_unsupported(&w.name));
                }
                let reached = match &w.service {
                    None => Err("no service in the webhook's clientConfig".to_string()),
                    Some(svc) => self.endpoint(svc).and_then(|()| {
                        self.st
                            .webhooks
                            .admission(svc)
                            .cloned()
                            .ok_or_else(|| "the server could not find the requested resource".to_string())
                    }),
                };
                let handler = match reached {
                    Ok(h) => h,
                    Err(_) if w.ignore_failures => continue,
                    Err(why) => {
                        let message = w.call_error(&why);
                        let mut e = ApiError::new(Reason::InternalError, format!("Internal error occurred: {message}"));
                        e.details.causes.push(Cause::new("", "", message));
                        return Err(e);
                    }
                };
                let as_call_version =
                    |o: &Value| -> Result<Value, ApiError> { self.convert(kind, o, &call_kind.version) };
                let req = AdmissionRequest {
                    webhook: w.name.clone(),
                    operation: call.op,
                    group: call_kind.group.clone(),
                    version: call_kind.version.clone(),
                    kind: call_kind.kind.clone(),
                    resource: call_kind.plural.clone(),
                    sub_resource: call.sub.to_string(),
                    namespace: call.namespace.to_string(),
                    name: call.name.to_string(),
                    object: object.as_ref().map(as_call_version).transpose()?,
                    old_object: call.old.map(as_call_version).transpose()?,
                    dry_run: call.dry_run,
                };
                let response = handler(&req, self);
                if !response.allowed {
                    return Err(admission::denied(&w.name, &response));
                }
                if mutating && let (Some(ops), Some(sent)) = (&response.patch, req.object) {
                    let mut patched = sent;
                    patch::json_patch(&mut patched, ops).map_err(|e| {
                        ApiError::new(
                            Reason::InternalError,
                            format!(
                                "Internal error occurred: failed calling webhook \"{}\": received invalid webhook response: {}",
                                w.name, e.message
                            ),
                        )
                    })?;
                    *object = Some(self.convert(&call_kind, &patched, &kind.version)?);
                }
            }
        }
        Ok(())
    }

    /// The served row a request made with `kind` goes to (404 when that version is not served).
    fn served(&self, kind: &KindInfo) -> Result<Kind, ApiError> {
        self.reg().resolve(kind).cloned().ok_or_else(ApiError::unknown_resource)
    }

    fn table(&self, kind: &KindInfo) -> Option<&Table> {
        self.st.tables.get(&table_key(kind))
    }

    /// The stored object (storage version).
    fn get(&self, kind: &KindInfo, key: &ObjKey) -> Option<Arc<Value>> {
        self.table(kind).and_then(|t| t.items.get(key)).cloned()
    }

    /// A stored object as `kind`'s version shows it: converted, pruned and defaulted.
    fn view(&self, kind: &KindInfo, stored: &Value) -> Result<Value, ApiError> {
        let mut v = self.convert(kind, stored, &kind.version)?;
        crd::on_read(kind, &mut v);
        Ok(v)
    }

    /// An object in `kind`'s version, converted to its storage version.
    fn to_storage(&self, kind: &KindInfo, obj: Value) -> Result<Value, ApiError> {
        if kind.version == kind.storage_version {
            return Ok(obj);
        }
        self.convert(kind, &obj, &kind.storage_version)
    }

    fn next_rv(&mut self) -> u64 {
        self.st.rv += 1;
        self.st.rv
    }

    fn record(&mut self, ev: WatchEvent) {
        self.st.history.push_back(Arc::new(ev));
        while self.st.history.len() > self.st.history_limit {
            if let Some(old) = self.st.history.pop_front() {
                self.st.compacted = old.resource_version;
            }
        }
    }

    /// Store `obj` (already in the storage version) under a new resourceVersion and record
    /// the event.
    fn put(
        &mut self,
        kind: &KindInfo,
        key: &ObjKey,
        mut obj: Value,
        event_type: EventType,
        previous: Option<Arc<Value>>,
    ) -> Arc<Value> {
        let storage: Kind = match self.reg().storage(kind) {
            Some(k) => k.clone(),
            None => Arc::new(kind.clone()),
        };
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        if let Some(uid) = meta_str(&obj, "uid") {
            self.st.uids.insert(uid.to_string(), (storage.clone(), key.clone()));
        }
        self.st
            .tables
            .entry(table_key(&storage))
            .or_insert_with(|| Table {
                kind: storage.clone(),
                items: BTreeMap::new(),
            })
            .items
            .insert(key.clone(), obj.clone());
        self.record(WatchEvent {
            event_type,
            kind: storage,
            namespace: key.0.clone(),
            name: key.1.clone(),
            resource_version: rv,
            object: obj.clone(),
            previous,
        });
        obj
    }

    /// Remove an object; the DELETED event carries its last stored state at a new version.
    fn remove(&mut self, kind: &KindInfo, key: &ObjKey, policy: PropagationPolicy) -> Option<Arc<Value>> {
        let storage = self.table(kind)?.kind.clone();
        let old = self.st.tables.get_mut(&table_key(kind))?.items.remove(key)?;
        let rv = self.next_rv();
        let mut last = (*old).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        if let Some(uid) = meta_str(&old, "uid") {
            self.st.uids.remove(uid);
            if policy != PropagationPolicy::Orphan {
                self.work.push(Work::Dependents(uid.to_string(), policy));
            }
        }
        for owner in meta::owner_uids(&old) {
            self.work.push(Work::OwnerCheck(owner));
        }
        if kind.namespaced {
            self.work.push(Work::Namespace(key.0.clone()));
        }
        if kind.behavior == Behavior::CustomResourceDefinition {
            self.uninstall_crd(&old);
        }
        self.record(WatchEvent {
            event_type: EventType::Deleted,
            kind: storage,
            namespace: key.0.clone(),
            name: key.1.clone(),
            resource_version: rv,
            object: last.clone(),
            previous: Some(old),
        });
        Some(last)
    }

    /// A CRD is gone: its resource is no longer served and its objects go with it (the
    /// `customresourcecleanup` finalizer's work, done at once).
    fn uninstall_crd(&mut self, crd_obj: &Value) {
        let group = crd_obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let plural = crd_obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let keys: Vec<ObjKey> = self
            .st
            .tables
            .get(&(group.clone(), plural.clone()))
            .map(|t| t.items.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(kind) = self
            .st
            .tables
            .get(&(group.clone(), plural.clone()))
            .map(|t| t.kind.clone())
        {
            for k in keys {
                self.remove(&kind, &k, PropagationPolicy::Background);
            }
        }
        let mut reg = (*self.st.registry).clone();
        reg.uninstall(&group, &plural);
        self.st.registry = Arc::new(reg);
    }

    /// Serve the versions of a created or updated CRD.
    fn install_crd(&mut self, kinds: Vec<KindInfo>) {
        let mut reg = (*self.st.registry).clone();
        reg.install(kinds.into_iter().map(KindInfo::build).collect());
        self.st.registry = Arc::new(reg);
    }

    fn namespace_state(&self, ns: &str) -> Option<Arc<Value>> {
        self.get(&registry::NAMESPACE, &(String::new(), ns.to_string()))
    }

    fn namespace_is_empty(&self, ns: &str) -> bool {
        self.st.tables.values().all(|t| {
            !t.kind.namespaced
                || t.items
                    .range((ns.to_string(), String::new())..)
                    .next()
                    .is_none_or(|((n, _), _)| n != ns)
        })
    }

    fn keys_in_namespace(&self, ns: &str) -> Vec<(Kind, ObjKey)> {
        let mut out = Vec::new();
        for t in self.st.tables.values() {
            if !t.kind.namespaced {
                continue;
            }
            for (k, _) in t
                .items
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
            {
                out.push((t.kind.clone(), k.clone()));
            }
        }
        out.sort_by(|a, b| (&a.0.plural, &a.1).cmp(&(&b.0.plural, &b.1)));
        out
    }

    fn dependents(&self, uid: &str) -> Vec<(Kind, ObjKey, Arc<Value>)> {
        let mut out = Vec::new();
        for t in self.st.tables.values() {
            for (k, v) in &t.items {
                if meta::owner_uids(v).iter().any(|u| u == uid) {
                    out.push((t.kind.clone(), k.clone(), v.clone()));
                }
            }
        }
        out
    }

    /// Drop ownerReferences to `uid` from `obj` (orphaning, or a dangling reference of an
    /// object that still has other live owners).
    fn strip_owner(&mut self, kind: &KindInfo, key: &ObjKey, obj: &Arc<Value>, uid: &str) {
        let mut new = (**obj).clone();
        if let Some(Value::Array(refs)) = new.pointer_mut("/metadata/ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        }
        drop_empty_meta(&mut new);
        self.put(kind, key, new, EventType::Modified, Some(obj.clone()));
    }

    /// The core of DELETE. Namespaces go through termination; objects with finalizers get a
    /// deletionTimestamp; others are removed and their dependents collected.
    fn delete_object(
        &mut self,
        kind: &KindInfo,
        key: &ObjKey,
        policy: PropagationPolicy,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        self.delete_object_with(kind, key, policy, dry_run, None)
    }

    /// A pod on a node is deleted gracefully (`pkg/registry/core/pod/strategy.go`,
    /// `CheckGracefulDelete`): it gets `deletionTimestamp` = now + grace period and
    /// `deletionGracePeriodSeconds`, and the kubelet deletes it with grace 0 once it stopped.
    fn graceful_pod(&self, kind: &KindInfo, cur: &Value, grace: Option<i64>) -> Option<i64> {
        if !(kind.group.is_empty() && kind.plural == "pods") {
            return None;
        }
        let scheduled = cur
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let grace = grace
            .or_else(|| {
                cur.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30);
        (scheduled && grace > 0).then_some(grace)
    }

    fn delete_object_with(
        &mut self,
        kind: &KindInfo,
        key: &ObjKey,
        policy: PropagationPolicy,
        dry_run: bool,
        grace: Option<i64>,
    ) -> Result<Arc<Value>, ApiError> {
        let cur = self.get(kind, key).ok_or_else(|| ApiError::not_found(kind, &key.1))?;
        if kind.is_namespace() && IMMORTAL_NAMESPACES.contains(&key.1.as_str()) {
            return Err(ApiError::new(
                super::error::Reason::Forbidden,
                format!(
                    "namespaces \"{}\" is forbidden: this namespace may not be deleted",
                    key.1
                ),
            ));
        }
        let uid = meta_str(&cur, "uid").unwrap_or_default().to_string();
        let mut fins = meta::finalizers(&cur);
        let foreground = policy == PropagationPolicy::Foreground && !self.dependents(&uid).is_empty();
        if foreground && !fins.iter().any(|f| f == "foregroundDeletion") {
            fins.push("foregroundDeletion".into());
        }
        let pod_grace = self.graceful_pod(kind, &cur, grace);
        if let Some(g) = pod_grace
            && !dry_run
            && !has_deletion_timestamp(&cur)
        {
            let mut new = (*cur).clone();
            if let Some(m) = meta_mut(&mut new) {
                let at = chrono::Utc::now() + chrono::Duration::seconds(g);
                m.insert(
                    "deletionTimestamp".into(),
                    json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(g));
            }
            return Ok(self.put(kind, key, new, EventType::Modified, Some(cur)));
        }
        if pod_grace.is_some() && has_deletion_timestamp(&cur) && grace != Some(0) {
            // Already terminating: a second graceful delete changes nothing.
            return Ok(cur);
        }
        let graceful = kind.is_namespace() || !fins.is_empty();
        if dry_run {
            let mut preview = (*cur).clone();
            if graceful && !has_deletion_timestamp(&preview) {
                if let Some(m) = meta_mut(&mut preview) {
                    m.insert("deletionTimestamp".into(), json!(meta::now()));
                }
                if kind.is_namespace() {
                    meta::set_path(&mut preview, ".status.phase", json!("Terminating"));
                }
            }
            return Ok(Arc::new(preview));
        }
        if policy == PropagationPolicy::Orphan {
            for (dk, dkey, dobj) in self.dependents(&uid) {
                self.strip_owner(&dk, &dkey, &dobj, &uid);
            }
        }
        if kind.is_namespace() {
            return Ok(self.terminate_namespace(key, cur));
        }
        if graceful {
            let stored = if has_deletion_timestamp(&cur) && meta::finalizers(&cur) == fins {
                cur
            } else {
                let mut new = (*cur).clone();
                if let Some(m) = meta_mut(&mut new) {
                    if !has_deletion_timestamp(&cur) {
                        m.insert("deletionTimestamp".into(), json!(meta::now()));
                        m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    }
                    m.insert("finalizers".into(), json!(fins));
                }
                self.put(kind, key, new, EventType::Modified, Some(cur))
            };
            if foreground {
                self.work.push(Work::Dependents(uid, PropagationPolicy::Foreground));
            }
            return Ok(stored);
        }
        self.remove(kind, key, policy)
            .ok_or_else(|| ApiError::not_found(kind, &key.1))
    }

    fn terminate_namespace(&mut self, key: &ObjKey, cur: Arc<Value>) -> Arc<Value> {
        let stored = if has_deletion_timestamp(&cur) {
            cur
        } else {
            let mut new = (*cur).clone();
            if let Some(m) = meta_mut(&mut new) {
                m.insert("deletionTimestamp".into(), json!(meta::now()));
            }
            meta::set_path(&mut new, ".status.phase", json!("Terminating"));
            self.put(&registry::NAMESPACE, key, new, EventType::Modified, Some(cur))
        };
        for (k, okey) in self.keys_in_namespace(&key.1) {
            // Failures (already gone) are fine: the goal is an empty namespace.
            let _ = self.delete_object(&k, &okey, PropagationPolicy::Background, false);
        }
        self.work.push(Work::Namespace(key.1.clone()));
        stored
    }

    /// Run cascades until quiescent.
    fn drain(&mut self) {
        // Bounded by the number of objects: every step removes an object, strips a reference
        // or clears a finalizer, and none of those can be undone by another step.
        while let Some(w) = self.work.pop() {
            match w {
                Work::Dependents(uid, policy) => {
                    for (dk, dkey, dobj) in self.dependents(&uid) {
                        let other_live_owner = meta::owner_uids(&dobj)
                            .iter()
                            .any(|u| u != &uid && self.st.uids.contains_key(u));
                        let owner_gone = !self.st.uids.contains_key(&uid);
                        if other_live_owner && owner_gone {
                            self.strip_owner(&dk, &dkey, &dobj, &uid);
                        } else if !other_live_owner && !has_deletion_timestamp(&dobj) {
                            let _ = self.delete_object(&dk, &dkey, policy, false);
                        }
                    }
                }
                Work::OwnerCheck(uid) => {
                    let Some((k, key)) = self.st.uids.get(&uid).cloned() else {
                        continue;
                    };
                    let Some(owner) = self.get(&k, &key) else {
                        continue;
                    };
                    let fins = meta::finalizers(&owner);
                    if has_deletion_timestamp(&owner)
                        && fins.iter().any(|f| f == "foregroundDeletion")
                        && self.dependents(&uid).is_empty()
                    {
                        let rest: Vec<String> = fins.into_iter().filter(|f| f != "foregroundDeletion").collect();
                        if rest.is_empty() {
                            self.remove(&k, &key, PropagationPolicy::Background);
                        } else {
                            let mut new = (*owner).clone();
                            if let Some(m) = meta_mut(&mut new) {
                                m.insert("finalizers".into(), json!(rest));
                            }
                            self.put(&k, &key, new, EventType::Modified, Some(owner));
                        }
                    }
                }
                Work::Namespace(ns) => self.finish_namespace(&ns),
            }
        }
    }

    /// The namespace controller's last step: once a terminating namespace is empty, clear its
    /// `spec.finalizers` (the `/finalize` call) and delete it if no metadata finalizers remain.
    fn finish_namespace(&mut self, ns: &str) {
        let Some(cur) = self.namespace_state(ns) else {
            return;
        };
        if !has_deletion_timestamp(&cur) || !self.namespace_is_empty(ns) {
            return;
        }
        let key = (String::new(), ns.to_string());
        let spec_fins = cur
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let cur = if spec_fins {
            let mut new = (*cur).clone();
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
            self.put(&registry::NAMESPACE, &key, new, EventType::Modified, Some(cur))
        } else {
            cur
        };
        if meta::finalizers(&cur).is_empty() {
            self.remove(&registry::NAMESPACE, &key, PropagationPolicy::Background);
        }
    }

    /// Admission of a custom resource: prune, default and validate `obj` (in `kind`'s
    /// version), then apply the request's `fieldValidation` to what pruning removed.
    fn admit(
        &mut self,
        kind: &KindInfo,
        name: &str,
        obj: &mut Value,
        write: Write<'_>,
        fv: FieldValidation,
        mut causes: Vec<Cause>,
    ) -> Result<(), ApiError> {
        let admitted = crd::admit(kind, obj, write);
        if !admitted.unknown_fields.is_empty() {
            let problems: Vec<String> = admitted
                .unknown_fields
                .iter()
                .map(|p| format!("unknown field \"{p}\""))
                .collect();
            match fv {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        kind.kind,
                        kind.version,
                        kind.kind,
                        problems.join(", ")
                    )));
                }
                FieldValidation::Warn => self.warnings.extend(problems),
                FieldValidation::Ignore => {}
            }
        }
        self.warnings.extend(admitted.report.warnings);
        causes.extend(admitted.report.errors);
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(kind, name, causes))
        }
    }

    /// A CRD's own admission: defaults, the checks of [`crd::kinds_of`], and the status the
    /// API server's CRD controllers give it. Returns the rows to serve once it is stored.
    fn admit_crd(&self, obj: &mut Value, name: &str, old_status: Option<&Value>) -> Result<Vec<KindInfo>, ApiError> {
        crd::default_crd(obj);
        let kinds = crd::kinds_of(obj)
            .map_err(|causes| ApiError::invalid(&registry::CUSTOM_RESOURCE_DEFINITION, name, causes))?;
        let status = crd::status_of(obj, old_status);
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), status);
        }
        Ok(kinds)
    }

    fn create(
        &mut self,
        kind: &Kind,
        namespace: Option<&str>,
        mut obj: Value,
        dry_run: bool,
        fv: FieldValidation,
    ) -> Result<Value, ApiError> {
        check_identity(kind, &mut obj, None)?;
        let ns = if kind.namespaced {
            let url_ns = namespace.filter(|n| !n.is_empty());
            let body_ns = meta_str(&obj, "namespace").filter(|n| !n.is_empty());
            match (url_ns, body_ns) {
                (Some(u), Some(b)) if u != b => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(u), _) => u.to_string(),
                (None, Some(b)) => b.to_string(),
                (None, None) => {
                    return Err(ApiError::bad_request(format!(
                        "a namespace is required for namespaced resource {}",
                        kind.plural
                    )));
                }
            }
        } else {
            String::new()
        };
        if meta_str(&obj, "resourceVersion").is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let generate = meta_str(&obj, "generateName").unwrap_or_default().to_string();
        if name.is_empty() && generate.is_empty() {
            return Err(ApiError::invalid(
                kind,
                "",
                vec![field::required(
                    &field::Path::new("metadata.name"),
                    "name or generateName is required",
                )],
            ));
        }
        if name.is_empty() {
            let bad: Vec<Cause> = kind
                .name_rule
                .check(&generate, true)
                .iter()
                .map(|m| field::invalid_str(&field::Path::new("metadata.generateName"), &generate, m))
                .collect();
            if !bad.is_empty() {
                return Err(ApiError::invalid(kind, "", bad));
            }
            // Retry on the (unlikely) collision like the real server's generator would.
            for _ in 0..16 {
                name = format!("{generate}{}", meta::random_suffix());
                if self.get(kind, &(ns.clone(), name.clone())).is_none() {
                    break;
                }
            }
        }
        if kind.namespaced {
            match self.namespace_state(&ns) {
                None => return Err(ApiError::namespace_not_found(&ns)),
                Some(n) if has_deletion_timestamp(&n) => {
                    return Err(ApiError::namespace_terminating(kind, &name, &ns));
                }
                Some(_) => {}
            }
        }
        let key = (ns.clone(), name.clone());
        if self.get(kind, &key).is_some() {
            return Err(ApiError::already_exists(kind, &name));
        }
        let call = WebhookCall {
            op: Operation::Create,
            kind,
            sub: "",
            namespace: &ns,
            name: &name,
            old: None,
            dry_run,
        };
        let mut mutated = Some(obj);
        self.call_webhooks(true, &call, &mut mutated)?;
        let mut obj = mutated.unwrap_or_default();
        if let Some(m) = meta_mut(&mut obj) {
            m.insert("name".into(), json!(name));
            if kind.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(meta::now()));
            if kind.generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
            for f in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "selfLink",
                "managedFields",
            ] {
                m.remove(f);
            }
        }
        if let Some(map) = obj.as_object_mut() {
            match kind.create_status {
                CreateStatus::Keep => {}
                CreateStatus::Clear => {
                    map.remove("status");
                }
                CreateStatus::Initial(f) => {
                    map.insert("status".into(), f());
                }
            }
        }
        if let Some(prepare) = kind.prepare {
            prepare(&mut obj).map_err(|c| ApiError::invalid(kind, &name, c))?;
        }
        let causes = validate_metadata(kind, &obj);
        if kind.schema.is_some() {
            self.admit(kind, &name, &mut obj, Write::Create, fv, causes)?;
        } else if !causes.is_empty() {
            return Err(ApiError::invalid(kind, &name, causes));
        }
        let crd_kinds = if kind.behavior == Behavior::CustomResourceDefinition {
            Some(self.admit_crd(&mut obj, &name, None)?)
        } else {
            None
        };
        drop_empty_meta(&mut obj);
        let mut validated = Some(obj);
        self.call_webhooks(false, &call, &mut validated)?;
        let obj = validated.unwrap_or_default();
        if dry_run {
            return Ok(obj);
        }
        let stored = self.to_storage(kind, obj)?;
        let stored = self.put(kind, &key, stored, EventType::Added, None);
        if let Some(kinds) = crd_kinds {
            self.install_crd(kinds);
        }
        self.view(kind, &stored)
    }

    /// Write a new version of an existing object: the shared tail of PUT, PATCH, status and
    /// scale writes. `candidate` is in `kind`'s version.
    #[allow(clippy::too_many_arguments)]
    fn write_existing(
        &mut self,
        kind: &Kind,
        key: &ObjKey,
        mut candidate: Value,
        sub: Subresource,
        scale: bool,
        dry_run: bool,
        fv: FieldValidation,
    ) -> Result<Value, ApiError> {
        let stored_old = self.get(kind, key).ok_or_else(|| ApiError::not_found(kind, &key.1))?;
        let old = self.view(kind, &stored_old)?;
        let sub_name = match (sub, scale) {
            (_, true) => "scale",
            (Subresource::Main, false) => "",
            (Subresource::Status, false) => "status",
            (Subresource::Finalize, false) => "finalize",
        };
        let call = WebhookCall {
            op: Operation::Update,
            kind,
            sub: sub_name,
            namespace: &key.0,
            name: &key.1,
            old: Some(&old),
            dry_run,
        };
        check_identity(kind, &mut candidate, Some(key))?;
        if let Some(rv) = meta_str(&candidate, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(kind, &key.1));
        }
        let mut crd_kinds = None;
        let mut new = match sub {
            Subresource::Main => {
                let mut n = candidate;
                if let (Some(m), Some(om)) = (meta_mut(&mut n), old.get("metadata").and_then(Value::as_object)) {
                    // Server-owned metadata cannot be changed by clients.
                    for f in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generation",
                        "managedFields",
                        "selfLink",
                    ] {
                        match om.get(f) {
                            Some(v) => m.insert(f.to_string(), v.clone()),
                            None => m.remove(f),
                        };
                    }
                }
                if kind.status
                    && let Some(map) = n.as_object_mut()
                {
                    match old.get("status") {
                        Some(s) => map.insert("status".into(), s.clone()),
                        None => map.remove("status"),
                    };
                }
                let mut mutated = Some(n);
                self.call_webhooks(true, &call, &mut mutated)?;
                let mut n = mutated.unwrap_or_default();
                if let Some(prepare) = kind.prepare {
                    prepare(&mut n).map_err(|c| ApiError::invalid(kind, &key.1, c))?;
                }
                if kind.is_namespace() {
                    // spec.finalizers changes only through /finalize.
                    match old.pointer("/spec/finalizers") {
                        Some(f) => meta::set_path(&mut n, ".spec.finalizers", f.clone()),
                        None => {
                            if let Some(spec) = n.get_mut("spec").and_then(Value::as_object_mut) {
                                spec.remove("finalizers");
                            }
                        }
                    }
                }
                let mut causes = validate_metadata(kind, &n);
                if has_deletion_timestamp(&old) {
                    let before = meta::finalizers(&old);
                    let added: Vec<String> = meta::finalizers(&n)
                        .into_iter()
                        .filter(|f| !before.contains(f))
                        .collect();
                    if !added.is_empty() {
                        causes.push(cause(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            format!(
                                "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                            ),
                        ));
                    }
                }
                if kind.schema.is_some() {
                    self.admit(kind, &key.1, &mut n, Write::Update(&old), fv, causes)?;
                } else if !causes.is_empty() {
                    return Err(ApiError::invalid(kind, &key.1, causes));
                }
                if kind.behavior == Behavior::CustomResourceDefinition {
                    crd_kinds = Some(self.admit_crd(&mut n, &key.1, old.get("status"))?);
                }
                n
            }
            Subresource::Status => {
                let mut n = old.clone();
                if let Some(map) = n.as_object_mut() {
                    match candidate.get("status") {
                        Some(s) if !s.is_null() => map.insert("status".into(), s.clone()),
                        _ => map.remove("status"),
                    };
                }
                let mut mutated = Some(n);
                self.call_webhooks(true, &call, &mut mutated)?;
                let mut n = mutated.unwrap_or_default();
                if kind.schema.is_some() {
                    self.admit(kind, &key.1, &mut n, Write::Status(&old), fv, Vec::new())?;
                }
                n
            }
            Subresource::Finalize => {
                let mut n = old.clone();
                let fins = candidate
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                meta::set_path(&mut n, ".spec.finalizers", fins);
                n
            }
        };
        drop_empty_meta(&mut new);
        // Admission runs even when the write turns out to change nothing.
        let mut validated = Some(new);
        self.call_webhooks(false, &call, &mut validated)?;
        let mut new = validated.unwrap_or_default();
        if kind.generation {
            let old_gen = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
            let new_gen = if meta::generation_view(&old) != meta::generation_view(&new) {
                old_gen + 1
            } else {
                old_gen
            };
            if let Some(m) = meta_mut(&mut new) {
                m.insert("generation".into(), json!(new_gen));
            }
        }
        set_rv(&mut new, rv_of(&old));
        // A no-op write neither bumps the resourceVersion nor emits an event, unless the object
        // is stored in another version than the storage version: its bytes change
        // (`GuaranteedUpdate` compares the encoded object), which is how a storage migration
        // re-stores it.
        let stored_version = stored_old.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let storage_version = if kind.group.is_empty() {
            kind.storage_version.clone()
        } else {
            format!("{}/{}", kind.group, kind.storage_version)
        };
        if new == old && stored_version == storage_version {
            return Ok(new);
        }
        if dry_run {
            return Ok(new);
        }
        let stored_new = self.to_storage(kind, new.clone())?;
        if has_deletion_timestamp(&new) {
            if kind.is_namespace() {
                let stored = self.put(kind, key, stored_new, EventType::Modified, Some(stored_old));
                self.work.push(Work::Namespace(key.1.clone()));
                return self.view(kind, &stored);
            }
            if meta::finalizers(&new).is_empty() {
                // Emptying the finalizers of a deleting object completes the deletion.
                let rv = self
                    .remove(kind, key, PropagationPolicy::Background)
                    .map(|o| rv_of(&o))
                    .unwrap_or_default();
                set_rv(&mut new, rv);
                return Ok(new);
            }
        }
        let stored = self.put(kind, key, stored_new, EventType::Modified, Some(stored_old));
        if let Some(kinds) = crd_kinds {
            self.install_crd(kinds);
        }
        self.view(kind, &stored)
    }

    fn apply_patch(
        &mut self,
        kind: &Kind,
        key: &ObjKey,
        patch: &Patch,
        opts: &WriteOptions,
    ) -> Result<PatchOutcome, ApiError> {
        if let Patch::Apply { config, .. } = patch {
            if !config.is_object() {
                return Err(ApiError::bad_request("the apply configuration must be an object"));
            }
            for field in ["apiVersion", "kind"] {
                if config.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Err(ApiError::bad_request(format!(
                        "invalid object type: {field} must be set in an apply configuration"
                    )));
                }
            }
            if let Some(schema) = kind.schema.as_deref() {
                // Server-side apply builds a typed object from the configuration: a field the
                // schema does not declare fails that conversion (HTTP 500, as upstream).
                let mut typed = config.clone();
                let unknown = crd::validation::prune(&mut typed, schema);
                if let Some(first) = unknown.first() {
                    return Err(ApiError::internal(format!(
                        "failed to create typed patch object ({}/{}; {}, Kind={}): .{first}: field not declared in schema",
                        key.0,
                        key.1,
                        kind.api_version(),
                        kind.kind
                    )));
                }
            }
        }
        let Some(cur) = self.get(kind, key) else {
            return match patch {
                Patch::Apply { config, .. } if opts.subresource == Subresource::Main => {
                    let mut obj = config.clone();
                    check_identity(kind, &mut obj, Some(key))?;
                    let ns = (!key.0.is_empty()).then_some(key.0.as_str());
                    let object = self.create(kind, ns, obj, opts.dry_run, opts.field_validation)?;
                    Ok(PatchOutcome { object, created: true })
                }
                _ => Err(ApiError::not_found(kind, &key.1)),
            };
        };
        let mut candidate = self.view(kind, &cur)?;
        match patch {
            Patch::Merge(p) => patch::merge_patch(&mut candidate, p),
            Patch::Json(p) => patch::json_patch(&mut candidate, p)?,
            Patch::Strategic(p) => {
                if !kind.strategic_merge {
                    return Err(ApiError::unsupported_media_type(patch::PatchType::accepted(false)));
                }
                patch::strategic_merge_patch(&mut candidate, p)?;
            }
            Patch::Apply { config, .. } => {
                let mut config = config.clone();
                check_identity(kind, &mut config, Some(key))?;
                patch::apply_merge(&mut candidate, &config, kind.strategic_merge)?;
            }
        }
        if opts.field_validation == FieldValidation::Strict
            && !matches!(patch, Patch::Apply { .. })
            && let Some(schema) = kind.schema.as_deref()
        {
            // A merge or JSON patch under Strict: the patched object is decoded strictly.
            let mut typed = candidate.clone();
            let unknown = crd::validation::prune(&mut typed, schema);
            if !unknown.is_empty() {
                let problems: Vec<String> = unknown.iter().map(|p| format!("unknown field \"{p}\"")).collect();
                return Err(ApiError::invalid_group_kind(
                    "",
                    "",
                    "",
                    vec![field::invalid_str(
                        &field::Path::new("patch"),
                        &candidate.to_string(),
                        &format!("strict decoding error: {}", problems.join(", ")),
                    )],
                ));
            }
        }
        let object = self.write_existing(
            kind,
            key,
            candidate,
            opts.subresource,
            false,
            opts.dry_run,
            opts.field_validation,
        )?;
        Ok(PatchOutcome { object, created: false })
    }

    fn write_scale(&mut self, kind: &Kind, key: &ObjKey, scale: &Value, dry_run: bool) -> Result<Value, ApiError> {
        let Some(info) = kind.scale.clone() else {
            return Err(ApiError::unknown_resource());
        };
        let cur = self.get(kind, key).ok_or_else(|| ApiError::not_found(kind, &key.1))?;
        let cur = self.view(kind, &cur)?;
        let replicas = scale.pointer("/spec/replicas");
        let replicas = match replicas.and_then(Value::as_i64) {
            Some(r) if r >= 0 && r <= i64::from(i32::MAX) => r,
            _ => {
                return Err(ApiError::invalid(
                    kind,
                    &key.1,
                    vec![cause(
                        "spec.replicas",
                        "FieldValueInvalid",
                        format!(
                            "Invalid value: {}: must be greater than or equal to 0",
                            replicas.map(Value::to_string).unwrap_or_default()
                        ),
                    )],
                ));
            }
        };
        if let Some(name) = meta_str(scale, "name")
            && !name.is_empty()
            && name != key.1
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.1
            )));
        }
        let mut candidate = cur.clone();
        meta::set_path(&mut candidate, &info.spec_replicas, json!(replicas));
        // The Scale's resourceVersion is a precondition on the scaled object.
        set_rv(&mut candidate, rv_of(&cur));
        if let Some(rv) = meta_str(scale, "resourceVersion").filter(|s| !s.is_empty())
            && let Some(m) = meta_mut(&mut candidate)
        {
            m.insert("resourceVersion".into(), json!(rv));
        }
        let new = self.write_existing(
            kind,
            key,
            candidate,
            Subresource::Main,
            true,
            dry_run,
            FieldValidation::Ignore,
        )?;
        scale_of(kind, &new)
    }
}

impl Store {
    /// An empty store serving `registry`'s kinds, keeping `history_limit` events for watches.
    pub fn new(registry: Registry, history_limit: usize) -> Self {
        let (notify, _) = watch::channel(0);
        Store {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    rv: 0,
                    tables: HashMap::new(),
                    uids: HashMap::new(),
                    history: VecDeque::new(),
                    compacted: 0,
                    history_limit: history_limit.max(1),
                    registry: Arc::new(registry),
                    webhooks: Arc::new(WebhookServers::default()),
                }),
                notify,
            }),
        }
    }

    /// What this store serves now (a snapshot: CRD writes change it).
    pub fn registry(&self) -> Arc<Registry> {
        lock(&self.shared).registry.clone()
    }

    /// Change what is served (e.g. register a conversion webhook).
    pub fn update_registry(&self, f: impl FnOnce(&mut Registry)) {
        let mut st = lock(&self.shared);
        let mut reg = (*st.registry).clone();
        f(&mut reg);
        st.registry = Arc::new(reg);
    }

    /// Serve an admission webhook in process at Service `namespace/service`, `path`: the API
    /// server calls it (for the webhook configurations that name it) while that Service has a
    /// ready endpoint.
    pub fn serve_admission(&self, namespace: &str, service: &str, path: &str, handler: admission::AdmissionHandler) {
        let mut st = lock(&self.shared);
        let mut w = (*st.webhooks).clone();
        w.serve_admission(namespace, service, path, handler);
        st.webhooks = Arc::new(w);
    }

    /// Serve a conversion webhook in process at Service `namespace/service`, `path` (the
    /// CRDs whose `spec.conversion` names it convert through it while it has a ready endpoint).
    pub fn serve_conversion(&self, namespace: &str, service: &str, path: &str, handler: admission::ConversionHandler) {
        let mut st = lock(&self.shared);
        let mut w = (*st.webhooks).clone();
        w.serve_conversion(namespace, service, path, handler);
        st.webhooks = Arc::new(w);
    }

    /// The served row a request with `kind` goes to (its CRD-defined row when a CRD serves
    /// the resource), or 404 when the version is not served.
    pub fn kind(&self, kind: &KindInfo) -> Result<Kind, ApiError> {
        lock(&self.shared)
            .registry
            .resolve(kind)
            .cloned()
            .ok_or_else(ApiError::unknown_resource)
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared).rv
    }

    fn txn<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> (R, Vec<String>) {
        let mut guard = lock(&self.shared);
        let before = guard.rv;
        let (out, warnings) = {
            let mut txn = Txn {
                st: &mut guard,
                work: Vec::new(),
                warnings: Vec::new(),
            };
            let out = f(&mut txn);
            txn.drain();
            (out, txn.warnings)
        };
        let after = guard.rv;
        if after != before {
            // Sent under the lock so that watchers, which mark the channel seen under the same
            // lock, can never miss a wake-up.
            self.shared.notify.send_replace(after);
        }
        (out, warnings)
    }

    /// A stored object (as watch events carry it) as `kind`'s version shows it.
    pub fn view(&self, kind: &KindInfo, stored: &Value) -> Result<Value, ApiError> {
        self.txn(|t| {
            let kind = t.served(kind)?;
            t.view(&kind, stored)
        })
        .0
    }

    /// GET one object.
    pub fn get(&self, kind: &KindInfo, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let key = key_for(kind, namespace, name)?;
        self.txn(|t| {
            let kind = t.served(kind)?;
            let stored = t.get(&kind, &key).ok_or_else(|| ApiError::not_found(&kind, name))?;
            t.view(&kind, &stored)
        })
        .0
    }

    /// GET one object and deserialize it (e.g. into a k8s-openapi type).
    pub fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<T, ApiError> {
        let v = self.get(kind, namespace, name)?;
        serde_json::from_value(v).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// LIST, in one namespace or (with `None`) across all of them.
    pub fn list(&self, kind: &KindInfo, namespace: Option<&str>, opts: &ListOptions) -> Result<ObjectList, ApiError> {
        let start = opts
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(decode_continue)
            .transpose()?;
        let ns = if kind.namespaced {
            namespace.filter(|n| !n.is_empty())
        } else {
            None
        };
        let limit = opts.limit.filter(|l| *l > 0);
        self.txn(|t| {
            let kind = t.served(kind)?;
            let extra: Vec<&str> = kind.field_selectors.iter().map(String::as_str).collect();
            opts.field_selector
                .validate(&extra)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let list_rv = start.as_ref().map(|(rv, _)| *rv).unwrap_or(t.st.rv);
            let mut items = Vec::new();
            let mut continue_token = None;
            let mut remaining = 0u64;
            if let Some(table) = t.table(&kind) {
                let iter: Box<dyn Iterator<Item = (&ObjKey, &Arc<Value>)>> = match &start {
                    Some((_, after)) => Box::new(
                        table
                            .items
                            .range((std::ops::Bound::Excluded(after.clone()), std::ops::Bound::Unbounded)),
                    ),
                    None => Box::new(table.items.iter()),
                };
                let mut last_key: Option<ObjKey> = None;
                let mut matched = Vec::new();
                for (k, v) in iter {
                    if let Some(ns) = ns
                        && k.0 != ns
                    {
                        continue;
                    }
                    if !opts.label_selector.matches_object(v) || !opts.field_selector.matches_object(v) {
                        continue;
                    }
                    if limit.is_some_and(|l| matched.len() >= l) {
                        remaining += 1;
                        continue;
                    }
                    matched.push(v.clone());
                    last_key = Some(k.clone());
                }
                for v in matched {
                    items.push(t.view(&kind, &v)?);
                }
                if remaining > 0
                    && let Some(k) = last_key
                {
                    continue_token = Some(encode_continue(list_rv, &k));
                }
            }
            Ok(ObjectList {
                items,
                resource_version: list_rv,
                continue_token,
                remaining_item_count: (remaining > 0).then_some(remaining),
            })
        })
        .0
    }

    /// POST: create an object. `namespace` may be `None` when the body carries it.
    /// ProjectRequest creates a Namespace and returns a `Project`.
    pub fn create(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.create_ext(kind, namespace, obj, opts).map(|w| w.object)
    }

    /// [`Store::create`] with the warnings for the client.
    pub fn create_ext(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if kind.behavior == Behavior::ProjectRequest {
            return self.create_project(obj, opts).map(|object| Written {
                object,
                created: true,
                warnings: Vec::new(),
            });
        }
        let (r, warnings) = self.txn(|t| {
            let kind = t.served(kind)?;
            t.create(&kind, namespace, obj, opts.dry_run, opts.field_validation)
        });
        r.map(|object| Written {
            object,
            created: true,
            warnings,
        })
    }

    /// Create an object together with its `.status` (seeding scenarios: a real cluster would
    /// get there by a create and a status write from a controller, which is exactly what this
    /// does).
    pub fn create_with_status(&self, kind: &KindInfo, namespace: Option<&str>, obj: Value) -> Result<Value, ApiError> {
        let status = obj.get("status").cloned();
        let created = self.create(kind, namespace, obj, &WriteOptions::default())?;
        match status {
            Some(s) if !s.is_null() && created.get("status") != Some(&s) => {
                let name = meta_str(&created, "name").unwrap_or_default().to_string();
                let ns = meta_str(&created, "namespace").map(str::to_string);
                self.patch(
                    kind,
                    ns.as_deref(),
                    &name,
                    &Patch::Merge(json!({"status": s})),
                    &WriteOptions::status(),
                )
                .map(|o| o.object)
            }
            _ => Ok(created),
        }
    }

    fn create_project(&self, req: Value, opts: &WriteOptions) -> Result<Value, ApiError> {
        let name = meta_str(&req, "name").unwrap_or_default().to_string();
        let text = |f: &str| req.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
        let ns = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "annotations": {
                    "openshift.io/display-name": text("displayName"),
                    "openshift.io/description": text("description"),
                    "openshift.io/requester": "system:admin",
                },
            },
        });
        let created = self.create(&registry::NAMESPACE, None, ns, opts).map_err(|e| {
            if e.reason == super::error::Reason::AlreadyExists {
                ApiError::already_exists(&PROJECT_VIEW, &name)
            } else {
                e
            }
        })?;
        Ok(json!({
            "kind": "Project",
            "apiVersion": "project.openshift.io/v1",
            "metadata": created.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "spec": created.get("spec").cloned().unwrap_or_else(|| json!({})),
            "status": created.get("status").cloned().unwrap_or_else(|| json!({})),
        }))
    }

    /// PUT: replace an object. A non-empty `metadata.resourceVersion` in `obj` is a
    /// precondition (409 on mismatch). With [`Subresource::Status`] only `.status` is taken.
    pub fn update(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.update_ext(kind, namespace, name, obj, opts).map(|w| w.object)
    }

    /// [`Store::update`] with the warnings for the client.
    pub fn update_ext(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let key = key_for(kind, namespace, name)?;
        let (r, warnings) = self.txn(|t| {
            let kind = t.served(kind)?;
            t.write_existing(
                &kind,
                &key,
                obj,
                opts.subresource,
                false,
                opts.dry_run,
                opts.field_validation,
            )
        });
        r.map(|object| Written {
            object,
            created: false,
            warnings,
        })
    }

    /// PATCH (merge, JSON, strategic or server-side apply).
    pub fn patch(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        opts: &WriteOptions,
    ) -> Result<PatchOutcome, ApiError> {
        self.patch_ext(kind, namespace, name, patch, opts)
            .map(|w| PatchOutcome {
                object: w.object,
                created: w.created,
            })
    }

    /// [`Store::patch`] with the warnings for the client.
    pub fn patch_ext(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let key = key_for(kind, namespace, name)?;
        let (r, warnings) = self.txn(|t| {
            let kind = t.served(kind)?;
            t.apply_patch(&kind, &key, patch, opts)
        });
        r.map(|o| Written {
            object: o.object,
            created: o.created,
            warnings,
        })
    }

    /// DELETE one object. Returns the object as it is after the call: with a deletionTimestamp
    /// when finalizers (or namespace termination) keep it, otherwise its last state.
    pub fn delete(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = key_for(kind, namespace, name)?;
        self.txn(|t| {
            let kind = t.served(kind)?;
            let cur = t
                .get(&kind, &key)
                .ok_or_else(|| ApiError::not_found(&kind, name))?;
            if let Some(uid) = opts.uid.as_deref().filter(|u| !u.is_empty()) {
                let actual = meta_str(&cur, "uid").unwrap_or_default();
                if uid != actual {
                    return Err(ApiError::conflict_msg(
                        &kind,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                        ),
                    ));
                }
            }
            if let Some(rv) = opts.resource_version.as_deref().filter(|u| !u.is_empty()) {
                let actual = meta_str(&cur, "resourceVersion").unwrap_or_default();
                if rv != actual {
                    return Err(ApiError::conflict_msg(
                        &kind,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                        ),
                    ));
                }
            }
            let old = t.view(&kind, &cur)?;
            let call = WebhookCall {
                op: Operation::Delete,
                kind: &kind,
                sub: "",
                namespace: &key.0,
                name: &key.1,
                old: Some(&old),
                dry_run: opts.dry_run,
            };
            t.call_webhooks(true, &call, &mut None)?;
            t.call_webhooks(false, &call, &mut None)?;
            let after = t.delete_object_with(&kind, &key, opts.propagation, opts.dry_run, opts.grace_period_seconds)?;
            t.view(&kind, &after)
        })
        .0
    }

    /// DELETE on a collection: delete every object matching `list` (selectors only; no
    /// pagination). Returns what each delete returned.
    pub fn delete_collection(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let all = ListOptions {
            label_selector: list.label_selector.clone(),
            field_selector: list.field_selector.clone(),
            limit: None,
            continue_token: None,
        };
        let items = self.list(kind, namespace, &all)?.items;
        let mut out = Vec::new();
        for item in items {
            let name = meta_str(&item, "name").unwrap_or_default().to_string();
            let ns = meta_str(&item, "namespace").map(str::to_string);
            match self.delete(kind, ns.as_deref(), &name, opts) {
                Ok(v) => out.push(v),
                Err(e) if e.reason == super::error::Reason::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// GET `/scale`: the autoscaling/v1 `Scale` of a scalable object.
    pub fn get_scale(&self, kind: &KindInfo, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let obj = self.get(kind, namespace, name)?;
        let kind = self.kind(kind)?;
        scale_of(&kind, &obj)
    }

    /// PUT `/scale`: set the desired replicas from a `Scale` body.
    pub fn update_scale(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        scale: &Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let key = key_for(kind, namespace, name)?;
        self.txn(|t| {
            let kind = t.served(kind)?;
            t.write_scale(&kind, &key, scale, opts.dry_run)
        })
        .0
    }

    /// PATCH `/scale`: patch the `Scale` view, then write its replicas back.
    pub fn patch_scale(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let key = key_for(kind, namespace, name)?;
        self.txn(|t| {
            let kind = t.served(kind)?;
            let cur = t.get(&kind, &key).ok_or_else(|| ApiError::not_found(&kind, name))?;
            let cur = t.view(&kind, &cur)?;
            let mut scale = scale_of(&kind, &cur)?;
            match patch {
                Patch::Merge(p) => patch::merge_patch(&mut scale, p),
                Patch::Json(p) => patch::json_patch(&mut scale, p)?,
                // Scale is a built-in type: strategic merge degenerates to a merge here.
                Patch::Strategic(p) => patch::strategic_merge_patch(&mut scale, p)?,
                Patch::Apply { config, .. } => patch::merge_patch(&mut scale, config),
            }
            t.write_scale(&kind, &key, &scale, opts.dry_run)
        })
        .0
    }

    /// Start watching. Fails with 410 `Expired` when `from` is older than the kept history.
    pub fn watch(&self, filter: WatchFilter, from: WatchFrom) -> Result<Watcher, ApiError> {
        if let Some(kind) = &filter.kind {
            let extra: Vec<&str> = kind.field_selectors.iter().map(String::as_str).collect();
            filter
                .field_selector
                .validate(&extra)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        let st = lock(&self.shared);
        let mut rx = self.shared.notify.subscribe();
        rx.borrow_and_update();
        let mut pending = VecDeque::new();
        let cursor = match from {
            WatchFrom::Now => st.rv,
            WatchFrom::ResourceVersion(rv) => {
                if rv < st.compacted {
                    return Err(ApiError::expired(rv, st.compacted + 1));
                }
                rv
            }
            WatchFrom::CurrentState => {
                let mut tables: Vec<&Table> = st
                    .tables
                    .values()
                    .filter(|t| filter.kind.as_ref().is_none_or(|k| same_kind(k, &t.kind)))
                    .collect();
                tables.sort_by(|a, b| (&a.kind.group, &a.kind.plural).cmp(&(&b.kind.group, &b.kind.plural)));
                for t in tables {
                    for (k, v) in &t.items {
                        if filter.namespace.as_ref().is_some_and(|ns| *ns != k.0) {
                            continue;
                        }
                        if !filter.matches_object(v) {
                            continue;
                        }
                        pending.push_back(WatchEvent {
                            event_type: EventType::Added,
                            kind: t.kind.clone(),
                            namespace: k.0.clone(),
                            name: k.1.clone(),
                            resource_version: rv_of(v),
                            object: v.clone(),
                            previous: None,
                        });
                    }
                }
                st.rv
            }
        };
        drop(st);
        let initial_remaining = if from == WatchFrom::CurrentState {
            pending.len()
        } else {
            0
        };
        Ok(Watcher {
            shared: self.shared.clone(),
            filter,
            cursor,
            pending,
            rx,
            initial_remaining,
        })
    }
}

/// The kind used only to word "project already exists" errors like OpenShift does.
static PROJECT_VIEW: std::sync::LazyLock<KindInfo> =
    std::sync::LazyLock::new(|| KindInfo::builtin("project.openshift.io", "v1", "Project", "projects", false));

/// A cursor over the store's event history (see [`Store::watch`]).
pub struct Watcher {
    shared: Arc<Shared>,
    filter: WatchFilter,
    cursor: u64,
    pending: VecDeque<WatchEvent>,
    rx: watch::Receiver<u64>,
    /// How many of the queued events are the synthetic initial ADDED events.
    initial_remaining: usize,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("cursor", &self.cursor)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Apply the filter to one history event, turning selector transitions into ADDED/DELETED the
/// way the apiserver's watch cache does.
fn translate(filter: &WatchFilter, ev: &WatchEvent) -> Option<WatchEvent> {
    if filter.kind.as_ref().is_some_and(|k| !same_kind(k, &ev.kind)) {
        return None;
    }
    if filter.namespace.as_ref().is_some_and(|ns| *ns != ev.namespace) {
        return None;
    }
    let now = filter.matches_object(&ev.object);
    let event_type = match ev.event_type {
        EventType::Added => now.then_some(EventType::Added)?,
        EventType::Deleted => {
            let before = ev.previous.as_ref().is_none_or(|p| filter.matches_object(p));
            (now || before).then_some(EventType::Deleted)?
        }
        EventType::Modified => {
            let before = ev.previous.as_ref().is_some_and(|p| filter.matches_object(p));
            match (before, now) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => EventType::Deleted,
                (false, false) => return None,
            }
        }
    };
    let mut out = ev.clone();
    out.event_type = event_type;
    Some(out)
}

impl Watcher {
    fn poll_history(&mut self) -> Result<(), ApiError> {
        let shared = self.shared.clone();
        let st = lock(&shared);
        self.rx.borrow_and_update();
        if self.cursor < st.compacted {
            return Err(ApiError::expired(self.cursor, st.compacted + 1));
        }
        let cursor = self.cursor;
        let start = st.history.partition_point(|e| e.resource_version <= cursor);
        for ev in st.history.range(start..) {
            if let Some(t) = translate(&self.filter, ev) {
                self.pending.push_back(t);
            }
        }
        self.cursor = self.cursor.max(st.rv);
        Ok(())
    }

    /// The next event, waiting for one if needed. Errors with 410 `Expired` when events this
    /// watcher has not seen were dropped from the history; it should then relist.
    pub async fn next(&mut self) -> Result<WatchEvent, ApiError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.initial_remaining = self.initial_remaining.saturating_sub(1);
                return Ok(ev);
            }
            self.poll_history()?;
            if self.pending.is_empty() && self.rx.changed().await.is_err() {
                return Err(ApiError::internal("the store was dropped"));
            }
        }
    }

    /// The next event if one is available right now.
    pub fn try_next(&mut self) -> Option<Result<WatchEvent, ApiError>> {
        if self.pending.is_empty()
            && let Err(e) = self.poll_history()
        {
            return Some(Err(e));
        }
        let ev = self.pending.pop_front()?;
        self.initial_remaining = self.initial_remaining.saturating_sub(1);
        Some(Ok(ev))
    }

    /// The resourceVersion a BOOKMARK may announce: everything up to it has been delivered.
    /// `None` while events are still queued.
    pub fn bookmark(&self) -> Option<u64> {
        self.pending.is_empty().then_some(self.cursor)
    }

    /// True until the synthetic ADDED events of a [`WatchFrom::CurrentState`] watch are all
    /// delivered (for the `k8s.io/initial-events-end` bookmark).
    pub fn in_initial_events(&self) -> bool {
        self.initial_remaining > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::registry::{CONFIG_MAP, NAMESPACE};

    fn store() -> Store {
        Store::new(Registry::builtin(), 100)
    }

    fn ns(s: &Store, name: &str) {
        s.create(
            &NAMESPACE,
            None,
            json!({"metadata": {"name": name}}),
            &WriteOptions::default(),
        )
        .expect("namespace");
    }

    fn cm(s: &Store, ns: &str, name: &str, finalizers: &[&str]) -> Value {
        s.create(
            &CONFIG_MAP,
            Some(ns),
            json!({"metadata": {"name": name, "finalizers": finalizers}, "data": {"a": "1"}}),
            &WriteOptions::default(),
        )
        .expect("configmap")
    }

    fn drain(w: &mut Watcher) -> Vec<(EventType, String)> {
        let mut out = Vec::new();
        while let Some(ev) = w.try_next() {
            let ev = ev.expect("no expiry");
            out.push((ev.event_type, format!("{}/{}", ev.kind.plural, ev.name)));
        }
        out
    }

    #[test]
    fn resource_versions_and_noop_writes() {
        let s = store();
        ns(&s, "a");
        let c = cm(&s, "a", "x", &[]);
        let rv = rv_of(&c);
        assert_eq!(rv, s.resource_version());
        // Replacing with identical content is a no-op: same version, no event.
        let mut w = s.watch(WatchFilter::default(), WatchFrom::Now).expect("watch");
        let same = s
            .update(&CONFIG_MAP, Some("a"), "x", c.clone(), &WriteOptions::default())
            .expect("update");
        assert_eq!(rv_of(&same), rv);
        assert_eq!(s.resource_version(), rv);
        assert!(drain(&mut w).is_empty());
        let changed = s
            .patch(
                &CONFIG_MAP,
                Some("a"),
                "x",
                &Patch::Merge(json!({"data": {"a": "2"}})),
                &WriteOptions::default(),
            )
            .expect("patch");
        assert_eq!(rv_of(&changed.object), rv + 1);
        assert_eq!(drain(&mut w), vec![(EventType::Modified, "configmaps/x".to_string())]);
    }

    #[test]
    fn namespace_termination_event_sequence() {
        let s = store();
        ns(&s, "t");
        cm(&s, "t", "plain", &[]);
        cm(&s, "t", "held", &["x.io/f"]);
        let mut w = s.watch(WatchFilter::default(), WatchFrom::Now).expect("watch");
        let ns_obj = s
            .delete(&NAMESPACE, None, "t", &DeleteOptions::default())
            .expect("delete");
        assert_eq!(ns_obj["status"]["phase"], "Terminating");
        assert_eq!(
            drain(&mut w),
            vec![
                (EventType::Modified, "namespaces/t".to_string()),
                (EventType::Modified, "configmaps/held".to_string()),
                (EventType::Deleted, "configmaps/plain".to_string()),
            ]
        );
        s.patch(
            &CONFIG_MAP,
            Some("t"),
            "held",
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            &WriteOptions::default(),
        )
        .expect("unfinalize");
        assert_eq!(
            drain(&mut w),
            vec![
                (EventType::Deleted, "configmaps/held".to_string()),
                // The namespace controller's /finalize, then the removal.
                (EventType::Modified, "namespaces/t".to_string()),
                (EventType::Deleted, "namespaces/t".to_string()),
            ]
        );
        assert!(s.get(&NAMESPACE, None, "t").is_err());
    }

    #[test]
    fn watch_history_compaction_and_selector_transitions() {
        let s = Store::new(Registry::builtin(), 3);
        ns(&s, "a");
        let start = s.resource_version();
        for i in 0..5 {
            cm(&s, "a", &format!("c{i}"), &[]);
        }
        let err = s
            .watch(WatchFilter::default(), WatchFrom::ResourceVersion(start))
            .expect_err("too old");
        assert_eq!(err.code(), 410);
        assert_eq!(err.reason, crate::kube::error::Reason::Expired);

        let filter = WatchFilter {
            kind: Some(CONFIG_MAP.clone()),
            label_selector: LabelSelector::parse("team=a").expect("selector"),
            ..Default::default()
        };
        let mut w = s.watch(filter, WatchFrom::Now).expect("watch");
        let label = |team: &str| Patch::Merge(json!({"metadata": {"labels": {"team": team}}}));
        let opts = WriteOptions::default();
        s.patch(&CONFIG_MAP, Some("a"), "c0", &label("a"), &opts).expect("in");
        s.patch(&CONFIG_MAP, Some("a"), "c0", &label("a2"), &opts).expect("out");
        s.patch(&CONFIG_MAP, Some("a"), "c1", &label("b"), &opts)
            .expect("other");
        assert_eq!(
            drain(&mut w),
            vec![
                (EventType::Added, "configmaps/c0".to_string()),
                (EventType::Deleted, "configmaps/c0".to_string()),
            ]
        );
        // Four more writes overflow the history of 3 past this watcher's cursor.
        let mut w = s.watch(WatchFilter::default(), WatchFrom::Now).expect("watch");
        for i in 5..9 {
            cm(&s, "a", &format!("c{i}"), &[]);
        }
        assert!(matches!(w.try_next(), Some(Err(e)) if e.code() == 410));
    }

    #[test]
    fn current_state_watch_and_bookmarks() {
        let s = store();
        ns(&s, "a");
        cm(&s, "a", "x", &[]);
        let mut w = s
            .watch(WatchFilter::kind(&CONFIG_MAP), WatchFrom::CurrentState)
            .expect("watch");
        assert!(w.in_initial_events());
        assert_eq!(w.bookmark(), None, "events are still queued");
        assert_eq!(drain(&mut w), vec![(EventType::Added, "configmaps/x".to_string())]);
        assert!(!w.in_initial_events());
        assert_eq!(w.bookmark(), Some(s.resource_version()));
    }

    #[test]
    fn list_pagination_tokens() {
        let s = store();
        ns(&s, "a");
        for i in 0..5 {
            cm(&s, "a", &format!("c{i}"), &[]);
        }
        let page = s
            .list(
                &CONFIG_MAP,
                Some("a"),
                &ListOptions {
                    limit: Some(2),
                    ..Default::default()
                },
            )
            .expect("list");
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.remaining_item_count, Some(3));
        let token = page.continue_token.expect("token");
        let (rv, key) = decode_continue(&token).expect("decodes");
        assert_eq!(rv, page.resource_version);
        assert_eq!(key, ("a".to_string(), "c1".to_string()));
        assert!(decode_continue("%%%").is_err());
    }
}
