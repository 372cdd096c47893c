//! The kinds a simulated API server serves.
//!
//! A [`KindInfo`] describes one served version of one resource: its names, scope, verbs,
//! subresources, printer columns and, for custom resources, the structural schema that
//! validation, pruning and defaulting use. Built-in kinds (core, apps, OpenShift's Route and
//! ProjectRequest, ...) are the `LazyLock` rows below. Custom resources come from
//! CustomResourceDefinitions at run time ([`super::crd`]): from files, from another cluster,
//! or created through the API, exactly as on a real server. When no CRD defines HyperShift's
//! kinds, minimal built-in rows ([`HYPERSHIFT_FALLBACK`]) serve them without a schema.
//!
//! Objects are stored per group and resource, in the storage version; conversion between
//! versions goes through the CRD's conversion webhook ([`super::admission`]).

use std::sync::{Arc, LazyLock};

use serde_json::{Value, json};

use super::crd::schema::Schema;
use super::field::Cause;
use super::names::NameRule;

/// One served kind, shared by the registry, the store and the watchers.
pub type Kind = Arc<KindInfo>;

/// The verbs of an ordinary stored resource.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Where the replica counts and the label selector of a kind live, for its `/scale` subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleInfo {
    /// Dotted path of the desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// Dotted path of the observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// Dotted path of the selector: a string (CRD style) or a `LabelSelector` object
    /// (Deployment style), rendered as a selector string in `Scale.status.selector`.
    pub label_selector: Option<String>,
}

/// What a create through the main endpoint does with a `.status` in the request body.
#[derive(Debug, Clone, Copy)]
pub enum CreateStatus {
    /// Keep it (Node, ConfigMap-like kinds without a status subresource).
    Keep,
    /// Drop it (custom resources with a status subresource, Deployment, Service...).
    Clear,
    /// Replace it with this initial status (Pod and PVC `Pending`, Namespace `Active`).
    Initial(fn() -> Value),
}

/// Special server behaviour beyond storing objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// An ordinary stored resource.
    Stored,
    /// `project.openshift.io/v1 ProjectRequest`: create-only, creates a Namespace and returns a
    /// `Project`.
    ProjectRequest,
    /// `apiextensions.k8s.io/v1 CustomResourceDefinition`: writes change what is served.
    CustomResourceDefinition,
}

/// A printer column for `kubectl get` tables (a CRD's `additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header, e.g. `Status`.
    pub name: String,
    /// JSONPath-like expression: `.status.phase`, `.a[0].b`, `.conditions[?(@.type=="Ready")].status`.
    pub path: String,
    /// OpenAPI type of the cell: `string`, `integer`, `date`...
    pub type_: String,
    /// `priority`: columns above 0 only show with `-o wide`.
    pub priority: i64,
}

impl Column {
    /// A column at priority 0.
    pub fn new(name: &str, path: &str, type_: &str) -> Self {
        Column {
            name: name.into(),
            path: path.into(),
            type_: type_.into(),
            priority: 0,
        }
    }
}

/// A subresource that discovery lists beyond `status`/`scale` (e.g. `pods/portforward`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraSubresource {
    /// Subresource name, e.g. `portforward`.
    pub name: String,
    /// Kind reported by discovery, e.g. `PodPortForwardOptions`.
    pub kind: String,
    /// Verbs reported by discovery.
    pub verbs: Vec<String>,
}

/// A per-kind hook run on every write through the main endpoint (create, update, patch,
/// apply), after the body is decoded and before it is stored: defaulting and normalisation
/// of built-in kinds (e.g. Secret `stringData`). Errors become a 422 `Invalid`.
pub type PrepareFn = fn(&mut Value) -> Result<(), Vec<Cause>>;

/// Everything the server knows about one served version of one kind.
#[derive(Debug, Clone)]
pub struct KindInfo {
    /// API group, empty for the core group.
    pub group: String,
    /// The served version this row describes.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Resource plural used in URLs, e.g. `deployments`.
    pub plural: String,
    /// `singularName` (lower-case kind by default).
    pub singular: String,
    /// The kind of lists, e.g. `DeploymentList`.
    pub list_kind: String,
    /// Short names for kubectl, e.g. `deploy`.
    pub short_names: Vec<String>,
    /// Categories for kubectl (e.g. `all`).
    pub categories: Vec<String>,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Verbs advertised and accepted on the main resource.
    pub verbs: Vec<String>,
    /// Has a `/status` subresource: main-endpoint writes keep the stored status.
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: Option<ScaleInfo>,
    /// Built-in kinds accept strategic merge patch; custom resources answer 415.
    pub strategic_merge: bool,
    /// What create does with a status in the body.
    pub create_status: CreateStatus,
    /// Extra table columns (Name and Age are always there).
    pub columns: Vec<Column>,
    /// Field selector paths beyond `metadata.name` and `metadata.namespace`.
    pub field_selectors: Vec<String>,
    /// Defaulting/normalisation hook of a built-in kind.
    pub prepare: Option<PrepareFn>,
    /// Other subresources listed in discovery.
    pub extra_subresources: Vec<ExtraSubresource>,
    /// Special behaviour.
    pub behavior: Behavior,
    /// Tracks `metadata.generation` (apps kinds and custom resources do; core kinds such as
    /// ConfigMap or Namespace have none on a real server).
    pub generation: bool,
    /// How `metadata.name` is validated.
    pub name_rule: NameRule,
    /// The version objects of this resource are stored in.
    pub storage_version: String,
    /// The warning sent with every request to a deprecated version.
    pub deprecation_warning: Option<String>,
    /// The structural schema of a custom resource version (validation, pruning, defaults).
    pub schema: Option<Arc<Schema>>,
    /// The `openAPIV3Schema` as written, for the OpenAPI v3 documents and `kubectl explain`.
    pub openapi: Option<Arc<Value>>,
    /// The CustomResourceDefinition that serves this kind, if any.
    pub crd: Option<String>,
}

impl KindInfo {
    /// A stored built-in kind with the standard verbs and no subresources; strategic merge
    /// is allowed when the group is a built-in Kubernetes group (core or `apps`).
    pub fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        let k8s_builtin = group.is_empty() || matches!(group, "apps" | "batch" | "rbac.authorization.k8s.io");
        KindInfo {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            list_kind: format!("{kind}List"),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced,
            verbs: STANDARD_VERBS.iter().map(|v| v.to_string()).collect(),
            status: false,
            scale: None,
            strategic_merge: k8s_builtin,
            create_status: CreateStatus::Keep,
            columns: Vec::new(),
            field_selectors: Vec::new(),
            prepare: None,
            extra_subresources: Vec::new(),
            behavior: Behavior::Stored,
            generation: !group.is_empty(),
            name_rule: NameRule::Subdomain,
            storage_version: version.into(),
            deprecation_warning: None,
            schema: None,
            openapi: None,
            crd: None,
        }
    }

    /// Set short names.
    pub fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Set categories.
    pub fn categories(mut self, categories: &[&str]) -> Self {
        self.categories = categories.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Add a `/status` subresource; create drops a status in the body unless told otherwise.
    pub fn with_status(mut self) -> Self {
        self.status = true;
        self.create_status = CreateStatus::Clear;
        self
    }

    /// Add a `/scale` subresource.
    pub fn with_scale(mut self, spec_replicas: &str, status_replicas: &str, label_selector: Option<&str>) -> Self {
        self.scale = Some(ScaleInfo {
            spec_replicas: spec_replicas.into(),
            status_replicas: status_replicas.into(),
            label_selector: label_selector.map(str::to_string),
        });
        self
    }

    /// Set what create does with a status in the body.
    pub fn create_status(mut self, create_status: CreateStatus) -> Self {
        self.create_status = create_status;
        self
    }

    /// Set printer columns.
    pub fn columns(mut self, columns: Vec<Column>) -> Self {
        self.columns = columns;
        self
    }

    /// Set extra field selector paths.
    pub fn field_selectors(mut self, fields: &[&str]) -> Self {
        self.field_selectors = fields.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Set the defaulting hook.
    pub fn prepare(mut self, prepare: PrepareFn) -> Self {
        self.prepare = Some(prepare);
        self
    }

    /// Add a subresource listed by discovery.
    pub fn extra_subresource(mut self, name: &str, kind: &str, verbs: &[&str]) -> Self {
        self.extra_subresources.push(ExtraSubresource {
            name: name.into(),
            kind: kind.into(),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// Set the verbs.
    pub fn verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Set a special behaviour.
    pub fn behavior(mut self, behavior: Behavior) -> Self {
        self.behavior = behavior;
        self
    }

    /// Set the name rule.
    pub fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }

    /// Share it.
    pub fn build(self) -> Kind {
        Arc::new(self)
    }

    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the main resource accepts a verb.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// True for core/v1 Namespace.
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    /// Same group and resource (any version): the same stored objects.
    pub fn same_resource(&self, other: &KindInfo) -> bool {
        self.group == other.group && self.plural == other.plural
    }

    /// `plural.group` (or `plural` for the core group): the qualified resource of messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind.group` (or `Kind`): the group-kind of `Invalid` messages.
    pub fn group_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaulting hooks of built-in kinds
// ---------------------------------------------------------------------------------------------

fn ensure_object<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut serde_json::Map<String, Value>> {
    let map = v.as_object_mut()?;
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Default::default()));
    if !entry.is_object() {
        *entry = Value::Object(Default::default());
    }
    entry.as_object_mut()
}

/// Namespaces carry the `kubernetes` finalizer in `spec.finalizers` (the namespace controller
/// removes it once the namespace is empty; on updates the store keeps the stored value, since
/// only `/finalize` may change it) and the immutable `kubernetes.io/metadata.name` label.
fn prepare_namespace(obj: &mut Value) -> Result<(), Vec<Cause>> {
    if let Some(spec) = ensure_object(obj, "spec")
        && spec.get("finalizers").is_none_or(Value::is_null)
    {
        spec.insert("finalizers".into(), json!(["kubernetes"]));
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(labels) = ensure_object(obj, "metadata").and_then(|m| {
        let l = m
            .entry("labels".to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        l.as_object_mut()
    }) && !name.is_empty()
    {
        labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
    }
    Ok(())
}

fn namespace_initial_status() -> Value {
    json!({"phase": "Active"})
}

fn pending_status() -> Value {
    json!({"phase": "Pending"})
}

/// Real Deployments and StatefulSets default `spec.replicas` to 1.
fn prepare_replicated(obj: &mut Value) -> Result<(), Vec<Cause>> {
    if let Some(spec) = ensure_object(obj, "spec")
        && spec.get("replicas").is_none_or(Value::is_null)
    {
        spec.insert("replicas".into(), json!(1));
    }
    Ok(())
}

/// Secrets: `stringData` is write-only and merged into base64 `data`; `type` defaults to Opaque;
/// `data` values must be valid base64 (the real server rejects the body otherwise).
fn prepare_secret(obj: &mut Value) -> Result<(), Vec<Cause>> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    let mut causes = Vec::new();
    if let Some(Value::Object(data)) = map.get("data") {
        for (k, v) in data {
            match v {
                Value::String(s) if engine.decode(s).is_ok() => {}
                Value::Null => {}
                _ => causes.push(Cause::new(
                    &format!("data[{k}]"),
                    "FieldValueInvalid",
                    "Invalid value: illegal base64 data",
                )),
            }
        }
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map
            .entry("data".to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if !data.is_object() {
            *data = Value::Object(Default::default());
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                data.insert(k, Value::String(engine.encode(text.as_bytes())));
            }
        }
    }
    if map.get("type").is_none_or(|t| t.is_null() || t.as_str() == Some("")) {
        map.insert("type".into(), json!("Opaque"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The built-in table
// ---------------------------------------------------------------------------------------------

fn col_phase() -> Vec<Column> {
    vec![Column::new("Status", ".status.phase", "string")]
}

macro_rules! kind {
    ($(#[$doc:meta])* $name:ident = $e:expr) => {
        $(#[$doc])*
        pub static $name: LazyLock<Kind> = LazyLock::new(|| $e.build());
    };
}

kind!(
    /// core/v1 Namespace.
    NAMESPACE = KindInfo::builtin("", "v1", "Namespace", "namespaces", false)
        .short(&["ns"])
        .with_status()
        .create_status(CreateStatus::Initial(namespace_initial_status))
        .columns(col_phase())
        .field_selectors(&["status.phase"])
        .prepare(prepare_namespace)
        .names(NameRule::Label)
        .extra_subresource("finalize", "Namespace", &["update"])
);
kind!(
    /// core/v1 Secret.
    SECRET = KindInfo::builtin("", "v1", "Secret", "secrets", true)
        .field_selectors(&["type"])
        .columns(vec![Column::new("Type", ".type", "string")])
        .prepare(prepare_secret)
);
kind!(
    /// core/v1 ConfigMap.
    CONFIG_MAP = KindInfo::builtin("", "v1", "ConfigMap", "configmaps", true).short(&["cm"])
);
kind!(
    /// core/v1 Pod (status starts `Pending`; port-forward via [`crate::Sim::set_port_forward`]).
    POD = KindInfo::builtin("", "v1", "Pod", "pods", true)
        .short(&["po"])
        .categories(&["all"])
        .with_status()
        .create_status(CreateStatus::Initial(pending_status))
        .columns(col_phase())
        .field_selectors(&["spec.nodeName", "status.phase", "spec.serviceAccountName"])
        .extra_subresource("portforward", "PodPortForwardOptions", &["create", "get"])
);
kind!(
    /// core/v1 Node (cluster-scoped; registered with its status like a kubelet does).
    NODE = KindInfo::builtin("", "v1", "Node", "nodes", false)
        .short(&["no"])
        .with_status()
        .create_status(CreateStatus::Keep)
        .field_selectors(&["spec.unschedulable"])
);
kind!(
    /// core/v1 Service (names are DNS-1035 labels).
    SERVICE = KindInfo::builtin("", "v1", "Service", "services", true)
        .short(&["svc"])
        .categories(&["all"])
        .with_status()
        .names(NameRule::Dns1035Label)
        .columns(vec![
            Column::new("Type", ".spec.type", "string"),
            Column::new("Cluster-IP", ".spec.clusterIP", "string"),
        ])
);
kind!(
    /// core/v1 ServiceAccount.
    SERVICE_ACCOUNT = KindInfo::builtin("", "v1", "ServiceAccount", "serviceaccounts", true).short(&["sa"])
);
kind!(
    /// core/v1 PersistentVolumeClaim.
    PERSISTENT_VOLUME_CLAIM = KindInfo::builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true)
        .short(&["pvc"])
        .with_status()
        .create_status(CreateStatus::Initial(pending_status))
        .columns(col_phase())
);
kind!(
    /// apps/v1 Deployment.
    DEPLOYMENT = KindInfo::builtin("apps", "v1", "Deployment", "deployments", true)
        .short(&["deploy"])
        .categories(&["all"])
        .with_status()
        .with_scale(".spec.replicas", ".status.replicas", Some(".spec.selector"))
        .prepare(prepare_replicated)
        .columns(vec![
            Column::new("Desired", ".spec.replicas", "integer"),
            Column::new("Available", ".status.availableReplicas", "integer"),
        ])
);
kind!(
    /// apps/v1 StatefulSet.
    STATEFUL_SET = KindInfo::builtin("apps", "v1", "StatefulSet", "statefulsets", true)
        .short(&["sts"])
        .categories(&["all"])
        .with_status()
        .with_scale(".spec.replicas", ".status.replicas", Some(".spec.selector"))
        .prepare(prepare_replicated)
        .columns(vec![
            Column::new("Desired", ".spec.replicas", "integer"),
            Column::new("Ready", ".status.readyReplicas", "integer"),
        ])
);
kind!(
    /// batch/v1 Job.
    JOB = KindInfo::builtin("batch", "v1", "Job", "jobs", true)
        .categories(&["all"])
        .with_status()
        .columns(vec![Column::new("Completions", ".status.succeeded", "integer")])
);
kind!(
    /// rbac.authorization.k8s.io/v1 Role.
    ROLE = KindInfo::builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true)
);
kind!(
    /// rbac.authorization.k8s.io/v1 RoleBinding.
    ROLE_BINDING = KindInfo::builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true)
);
kind!(
    /// rbac.authorization.k8s.io/v1 ClusterRole.
    CLUSTER_ROLE = KindInfo::builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false)
);
kind!(
    /// rbac.authorization.k8s.io/v1 ClusterRoleBinding.
    CLUSTER_ROLE_BINDING =
        KindInfo::builtin("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false)
);
kind!(
    /// route.openshift.io/v1 Route.
    ROUTE = KindInfo::builtin("route.openshift.io", "v1", "Route", "routes", true)
        .with_status()
        .columns(vec![Column::new("Host/Port", ".spec.host", "string")])
);
kind!(
    /// project.openshift.io/v1 ProjectRequest: create-only; creates a Namespace.
    PROJECT_REQUEST = KindInfo::builtin("project.openshift.io", "v1", "ProjectRequest", "projectrequests", false)
        .verbs(&["create"])
        .behavior(Behavior::ProjectRequest)
        .names(NameRule::Label)
);
kind!(
    /// config.openshift.io/v1 ClusterVersion (cluster-scoped).
    CLUSTER_VERSION =
        KindInfo::builtin("config.openshift.io", "v1", "ClusterVersion", "clusterversions", false).with_status()
);
kind!(
    /// core/v1 Event (what `kubectl describe` and older recorders read and write).
    EVENT = KindInfo::builtin("", "v1", "Event", "events", true).short(&["ev"]).field_selectors(&[
        "involvedObject.kind",
        "involvedObject.name",
        "involvedObject.namespace",
        "involvedObject.uid",
        "reason",
        "type",
    ])
);
kind!(
    /// events.k8s.io/v1 Event (kube-runtime's `Recorder` writes these).
    EVENTS_V1_EVENT = KindInfo::builtin("events.k8s.io", "v1", "Event", "events", true).field_selectors(&[
        "regarding.kind",
        "regarding.name",
        "regarding.namespace",
        "reason",
        "type",
    ])
);
kind!(
    /// coordination.k8s.io/v1 Lease (leader election, ferry's migration lease).
    LEASE = KindInfo::builtin("coordination.k8s.io", "v1", "Lease", "leases", true)
);
kind!(
    /// monitoring.coreos.com/v1 ServiceMonitor (Prometheus operator; carried by site hooks).
    SERVICE_MONITOR =
        KindInfo::builtin("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", true).short(&["smon"])
);
kind!(
    /// admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration: webhooks the API server
    /// calls after schema validation ([`super::admission`]).
    VALIDATING_WEBHOOK_CONFIGURATION = KindInfo::builtin(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false
    )
    .categories(&["api-extensions"])
    .prepare(super::admission::prepare_configuration)
    .columns(vec![Column::new("Webhooks", ".webhooks[*].name", "string")])
);
kind!(
    /// admissionregistration.k8s.io/v1 MutatingWebhookConfiguration: webhooks the API server
    /// calls before schema validation ([`super::admission`]).
    MUTATING_WEBHOOK_CONFIGURATION = KindInfo::builtin(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false
    )
    .categories(&["api-extensions"])
    .prepare(super::admission::prepare_configuration)
    .columns(vec![Column::new("Webhooks", ".webhooks[*].name", "string")])
);
kind!(
    /// apiextensions.k8s.io/v1 CustomResourceDefinition: writes define what is served.
    CUSTOM_RESOURCE_DEFINITION = KindInfo::builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false
    )
    .short(&["crd", "crds"])
    .categories(&["api-extensions"])
    .with_status()
    .behavior(Behavior::CustomResourceDefinition)
    .columns(vec![Column::new("Created At", ".metadata.creationTimestamp", "date")])
);

// HyperShift, Cluster API and CAPA kinds without schemas: what a simulator started without
// CRDs serves. Loading the real CRDs replaces them.

fn hypershift_kind(kind: &str, plural: &str) -> KindInfo {
    KindInfo::builtin("hypershift.openshift.io", "v1beta1", kind, plural, true).with_status()
}

fn capi_kind(kind: &str, plural: &str) -> KindInfo {
    KindInfo::builtin("cluster.x-k8s.io", "v1beta1", kind, plural, true)
        .categories(&["cluster-api"])
        .with_status()
        .columns(vec![Column::new("Phase", ".status.phase", "string")])
}

fn capa_kind(kind: &str, plural: &str) -> KindInfo {
    KindInfo::builtin("infrastructure.cluster.x-k8s.io", "v1beta2", kind, plural, true).categories(&["cluster-api"])
}

kind!(
    /// hypershift.openshift.io/v1beta1 HostedCluster.
    HOSTED_CLUSTER = hypershift_kind("HostedCluster", "hostedclusters").short(&["hc", "hcs"]).columns(vec![
        Column::new("Version", ".status.version.history[?(@.state==\"Completed\")].version", "string"),
        Column::new("KubeConfig", ".status.kubeconfig.name", "string"),
        Column::new("Progress", ".status.version.history[?(@.state!=\"\")].state", "string"),
        Column::new("Available", ".status.conditions[?(@.type==\"Available\")].status", "string"),
        Column::new("Progressing", ".status.conditions[?(@.type==\"Progressing\")].status", "string"),
        Column::new("Message", ".status.conditions[?(@.type==\"Available\")].message", "string"),
    ])
);
kind!(
    /// hypershift.openshift.io/v1beta1 NodePool (scale via `spec.replicas`).
    NODE_POOL = hypershift_kind("NodePool", "nodepools")
        .short(&["np", "nps"])
        .with_scale(".spec.replicas", ".status.replicas", None)
        .columns(vec![
            Column::new("Cluster", ".spec.clusterName", "string"),
            Column::new("Desired Nodes", ".spec.replicas", "integer"),
            Column::new("Current Nodes", ".status.replicas", "integer"),
            Column::new("Version", ".status.version", "string"),
        ])
);
kind!(
    /// hypershift.openshift.io/v1beta1 HostedControlPlane.
    HOSTED_CONTROL_PLANE = hypershift_kind("HostedControlPlane", "hostedcontrolplanes")
        .short(&["hcp", "hcps"])
        .categories(&["cluster-api"])
);
kind!(
    /// hypershift.openshift.io/v1beta1 AWSEndpointService.
    AWS_ENDPOINT_SERVICE = hypershift_kind("AWSEndpointService", "awsendpointservices")
);
kind!(
    /// cluster.x-k8s.io Cluster (the version HyperShift writes; stored as the CRD says).
    CAPI_CLUSTER = capi_kind("Cluster", "clusters").short(&["cl"])
);
kind!(
    /// cluster.x-k8s.io MachineDeployment.
    MACHINE_DEPLOYMENT = capi_kind("MachineDeployment", "machinedeployments")
        .short(&["md"])
        .with_scale(".spec.replicas", ".status.replicas", Some(".status.selector"))
);
kind!(
    /// cluster.x-k8s.io MachineHealthCheck (the NodePool controller makes one per auto-repaired
    /// pool; upstream's CRD is not among the shared data, so it is always this row).
    MACHINE_HEALTH_CHECK = capi_kind("MachineHealthCheck", "machinehealthchecks").short(&["mhc", "mhcs"])
);
kind!(
    /// cluster.x-k8s.io MachineSet.
    MACHINE_SET = capi_kind("MachineSet", "machinesets")
        .short(&["ms"])
        .with_scale(".spec.replicas", ".status.replicas", Some(".status.selector"))
);
kind!(
    /// cluster.x-k8s.io Machine.
    MACHINE = capi_kind("Machine", "machines").short(&["ma"])
);
kind!(
    /// infrastructure.cluster.x-k8s.io/v1beta2 AWSCluster.
    AWS_CLUSTER = capa_kind("AWSCluster", "awsclusters").short(&["awsc"]).with_status()
);
kind!(
    /// infrastructure.cluster.x-k8s.io/v1beta2 AWSMachineTemplate.
    AWS_MACHINE_TEMPLATE = capa_kind("AWSMachineTemplate", "awsmachinetemplates").short(&["awsmt"])
);
kind!(
    /// infrastructure.cluster.x-k8s.io/v1beta2 AWSMachine.
    AWS_MACHINE = capa_kind("AWSMachine", "awsmachines").short(&["awsm"]).with_status()
);

/// The Kubernetes and OpenShift kinds every simulated server serves, in discovery order.
pub fn core_kinds() -> Vec<Kind> {
    [
        &NAMESPACE,
        &SECRET,
        &CONFIG_MAP,
        &POD,
        &NODE,
        &SERVICE,
        &SERVICE_ACCOUNT,
        &PERSISTENT_VOLUME_CLAIM,
        &EVENT,
        &DEPLOYMENT,
        &STATEFUL_SET,
        &JOB,
        &ROLE,
        &ROLE_BINDING,
        &CLUSTER_ROLE,
        &CLUSTER_ROLE_BINDING,
        &ROUTE,
        &PROJECT_REQUEST,
        &CLUSTER_VERSION,
        &EVENTS_V1_EVENT,
        &LEASE,
        &SERVICE_MONITOR,
        &VALIDATING_WEBHOOK_CONFIGURATION,
        &MUTATING_WEBHOOK_CONFIGURATION,
        &CUSTOM_RESOURCE_DEFINITION,
    ]
    .into_iter()
    .map(|k| Kind::clone(k))
    .collect()
}

/// The schema-less rows of HyperShift's, Cluster API's and CAPA's kinds: served when no CRD
/// defines them.
pub fn hypershift_fallback() -> Vec<Kind> {
    HYPERSHIFT_FALLBACK.iter().map(|k| Kind::clone(k)).collect()
}

/// See [`hypershift_fallback`].
pub static HYPERSHIFT_FALLBACK: [&LazyLock<Kind>; 12] = [
    &HOSTED_CLUSTER,
    &NODE_POOL,
    &HOSTED_CONTROL_PLANE,
    &AWS_ENDPOINT_SERVICE,
    &CAPI_CLUSTER,
    &MACHINE_DEPLOYMENT,
    &MACHINE_SET,
    &MACHINE,
    &MACHINE_HEALTH_CHECK,
    &AWS_CLUSTER,
    &AWS_MACHINE_TEMPLATE,
    &AWS_MACHINE,
];

/// The set of kinds one simulated API server serves.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: Vec<Kind>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The core kinds and the schema-less HyperShift fallback.
    pub fn builtin() -> Self {
        let mut kinds = core_kinds();
        kinds.extend(hypershift_fallback());
        Self::new(kinds)
    }

    /// Only the Kubernetes and OpenShift kinds (CRDs add the rest).
    pub fn core() -> Self {
        Self::new(core_kinds())
    }

    /// A registry of the given kinds. Namespace and CustomResourceDefinition are always
    /// added: namespaced kinds need the one, and every real server serves the other.
    pub fn new(kinds: impl IntoIterator<Item = Kind>) -> Self {
        let mut list: Vec<Kind> = Vec::new();
        for k in kinds {
            if !list.iter().any(|e| e.same_resource(&k) && e.version == k.version) {
                list.push(k);
            }
        }
        if !list.iter().any(|k| k.is_namespace()) {
            list.insert(0, NAMESPACE.clone());
        }
        if !list.iter().any(|k| k.behavior == Behavior::CustomResourceDefinition) {
            list.push(CUSTOM_RESOURCE_DEFINITION.clone());
        }
        Registry { kinds: list }
    }

    /// All served kinds (every served version), in discovery order.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// Resolve a URL's group, version and plural.
    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<&Kind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// Resolve an `apiVersion` + `kind` pair (as found in object bodies and ownerReferences).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&Kind> {
        let (group, version) = split_api_version(api_version);
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
    }

    /// Resolve a group + kind at its preferred version.
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<&Kind> {
        let mut found: Vec<&Kind> = self
            .kinds
            .iter()
            .filter(|k| k.group == group && k.kind == kind)
            .collect();
        found.sort_by(|a, b| version_priority(&a.version, &b.version));
        found.first().copied()
    }

    /// The currently served row of `kind`'s resource at `kind`'s version: what a request made
    /// with a (possibly built-in, schema-less) row is served by.
    pub fn resolve(&self, kind: &KindInfo) -> Option<&Kind> {
        self.by_resource(&kind.group, &kind.version, &kind.plural)
    }

    /// The row of a resource at its storage version: the served rows say which version stores
    /// (the CRD's), whatever `kind` was built with.
    pub fn storage(&self, kind: &KindInfo) -> Option<&Kind> {
        let served = self.kinds.iter().find(|k| k.same_resource(kind))?;
        self.kinds
            .iter()
            .find(|k| k.same_resource(kind) && k.version == served.storage_version)
            .or(Some(served))
    }

    /// Distinct (group, version) pairs served, in discovery order; the core group is `""`.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for k in &self.kinds {
            let gv = (k.group.clone(), k.version.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
        out
    }

    /// The versions of a group, most preferred first (Kubernetes' version priority).
    pub fn versions_of(&self, group: &str) -> Vec<String> {
        let mut vs: Vec<String> = Vec::new();
        for k in self.kinds.iter().filter(|k| k.group == group) {
            if !vs.contains(&k.version) {
                vs.push(k.version.clone());
            }
        }
        vs.sort_by(|a, b| version_priority(a, b));
        vs
    }

    /// Whether a group/version is served at all (for 404s on unknown paths).
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.kinds.iter().any(|k| k.group == group && k.version == version)
    }

    /// Serve `kinds` (the versions of one resource, from a CRD) instead of whatever served
    /// that group and resource before.
    pub fn install(&mut self, kinds: Vec<Kind>) {
        let Some(first) = kinds.first().cloned() else {
            return;
        };
        let pos = self.kinds.iter().position(|k| k.same_resource(&first));
        self.kinds.retain(|k| !k.same_resource(&first));
        let at = pos.unwrap_or(self.kinds.len()).min(self.kinds.len());
        for (i, k) in kinds.into_iter().enumerate() {
            self.kinds.insert(at + i, k);
        }
    }

    /// Stop serving a group and resource (its CRD was deleted).
    pub fn uninstall(&mut self, group: &str, plural: &str) {
        self.kinds.retain(|k| !(k.group == group && k.plural == plural));
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes' version order (`k8s.io/apimachinery/pkg/version.CompareKubeAwareVersionStrings`):
/// GA before beta before alpha, higher numbers first, then anything else alphabetically.
pub fn version_priority(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u32, u8, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let major: u32 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((major, stage, n.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let reg = Registry::builtin();
        let d = reg.by_resource("apps", "v1", "deployments");
        assert_eq!(d.map(|k| k.kind.as_str()), Some("Deployment"));
        assert!(DEPLOYMENT.strategic_merge);
        assert!(!HOSTED_CLUSTER.strategic_merge);
        assert!(CONFIG_MAP.strategic_merge);
        assert_eq!(
            reg.by_kind("hypershift.openshift.io/v1beta1", "NodePool")
                .map(|k| k.plural.as_str()),
            Some("nodepools")
        );
        assert!(reg.by_kind("v1", "Nope").is_none());
        // Short names are unique across the table: kubectl would otherwise pick arbitrarily.
        let mut seen = std::collections::HashSet::new();
        for k in reg.kinds() {
            for s in &k.short_names {
                assert!(seen.insert(s.clone()), "duplicate short name {s}");
            }
        }
    }

    #[test]
    fn versions_sort_as_kubernetes_sorts_them() {
        let mut v = vec!["v1beta1", "v1alpha1", "v1", "v2beta1", "v1beta2", "foo", "v2"];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(v, ["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn installing_a_crd_replaces_the_fallback_rows() {
        let mut reg = Registry::builtin();
        let mut v1 = (*MACHINE.clone()).clone();
        v1.storage_version = "v1beta2".into();
        let mut v2 = v1.clone();
        v2.version = "v1beta2".into();
        reg.install(vec![v2.build(), v1.build()]);
        assert_eq!(reg.versions_of("cluster.x-k8s.io"), ["v1beta2", "v1beta1"]);
        let storage = reg.storage(&MACHINE).map(|k| k.version.clone());
        assert_eq!(storage.as_deref(), Some("v1beta2"));
        reg.uninstall("cluster.x-k8s.io", "machines");
        assert!(reg.by_resource("cluster.x-k8s.io", "v1beta1", "machines").is_none());
    }

    #[test]
    fn secret_string_data_is_encoded() {
        let mut s = json!({"stringData": {"a": "hi"}});
        prepare_secret(&mut s).expect("valid");
        assert_eq!(s["data"]["a"], "aGk=");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        let mut bad = json!({"data": {"a": "***"}});
        assert!(prepare_secret(&mut bad).is_err());
    }
}
