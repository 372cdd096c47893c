//! The static table of kinds the simulator serves.
//!
//! Every kind is one `pub static` [`KindInfo`] built with `const` builder methods, listed once in
//! [`BUILTIN`]. The table drives discovery, URL routing, subresources, patch flavours, table
//! printing and per-kind defaulting, so adding a kind is adding one row (and, when it needs
//! special server behaviour such as defaulting, one `prepare` function).
//!
//! Each kind is served at exactly one version; objects are stored per group + resource.

use serde_json::{Value, json};

use crate::error::Cause;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleInfo {
    /// Dotted path of the desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: &'static str,
    /// Dotted path of the observed replicas, e.g. `.status.replicas`.
    pub status_replicas: &'static str,
    /// Dotted path of the selector: a string (CRD style) or a `LabelSelector` object
    /// (Deployment style), rendered as a selector string in `Scale.status.selector`.
    pub label_selector: Option<&'static str>,
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
}

/// A printer column for `kubectl get` tables (like a CRD's `additionalPrinterColumns`).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header, e.g. `Status`.
    pub name: &'static str,
    /// JSONPath-like expression: `.status.phase`, `.a[0].b`, `.conditions[?(@.type=="Ready")].status`.
    pub path: &'static str,
    /// OpenAPI type of the cell: `string` or `integer`.
    pub type_: &'static str,
}

/// A subresource that discovery lists beyond `status`/`scale` (e.g. `pods/portforward`).
#[derive(Debug, Clone, Copy)]
pub struct ExtraSubresource {
    /// Subresource name, e.g. `portforward`.
    pub name: &'static str,
    /// Kind reported by discovery, e.g. `PodPortForwardOptions`.
    pub kind: &'static str,
    /// Verbs reported by discovery.
    pub verbs: &'static [&'static str],
}

/// A per-kind hook run on every write through the main endpoint (create, update, patch,
/// apply), after the body is decoded and before it is stored: defaulting and normalisation
/// (e.g. Secret `stringData`). Errors become a 422 `Invalid`.
pub type PrepareFn = fn(&mut Value) -> Result<(), Vec<Cause>>;

/// Everything the server knows about one kind.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// The one version the kind is served at.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Resource plural used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Short names for kubectl, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories for kubectl (e.g. `all`).
    pub categories: &'static [&'static str],
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Verbs advertised and accepted on the main resource.
    pub verbs: &'static [&'static str],
    /// Has a `/status` subresource: main-endpoint writes keep the stored status.
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: Option<ScaleInfo>,
    /// Built-in kinds accept strategic merge patch; custom resources answer 415.
    pub strategic_merge: bool,
    /// What create does with a status in the body.
    pub create_status: CreateStatus,
    /// Extra table columns (Name and Age are always there).
    pub columns: &'static [Column],
    /// Field selector paths beyond `metadata.name` and `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// Defaulting/normalisation hook.
    pub prepare: Option<PrepareFn>,
    /// Other subresources listed in discovery.
    pub extra_subresources: &'static [ExtraSubresource],
    /// Special behaviour.
    pub behavior: Behavior,
    /// Tracks `metadata.generation` (apps kinds and custom resources do; core kinds such as
    /// ConfigMap or Namespace have none on a real server).
    pub generation: bool,
}

impl KindInfo {
    /// A stored kind with the standard verbs, no subresources, strategic merge allowed when the
    /// group is a built-in Kubernetes group (core or `apps`).
    pub const fn new(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        namespaced: bool,
    ) -> Self {
        let builtin = group.is_empty() || const_str_eq(group, "apps");
        KindInfo {
            group,
            version,
            kind,
            plural,
            short_names: &[],
            categories: &[],
            namespaced,
            verbs: STANDARD_VERBS,
            status: false,
            scale: None,
            strategic_merge: builtin,
            create_status: CreateStatus::Keep,
            columns: &[],
            field_selectors: &[],
            prepare: None,
            extra_subresources: &[],
            behavior: Behavior::Stored,
            generation: !group.is_empty(),
        }
    }

    /// Set short names.
    pub const fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }

    /// Set categories.
    pub const fn categories(mut self, categories: &'static [&'static str]) -> Self {
        self.categories = categories;
        self
    }

    /// Add a `/status` subresource; create drops a status in the body unless told otherwise.
    pub const fn with_status(mut self) -> Self {
        self.status = true;
        self.create_status = CreateStatus::Clear;
        self
    }

    /// Add a `/scale` subresource.
    pub const fn with_scale(
        mut self,
        spec_replicas: &'static str,
        status_replicas: &'static str,
        label_selector: Option<&'static str>,
    ) -> Self {
        self.scale = Some(ScaleInfo {
            spec_replicas,
            status_replicas,
            label_selector,
        });
        self
    }

    /// Set what create does with a status in the body.
    pub const fn create_status(mut self, create_status: CreateStatus) -> Self {
        self.create_status = create_status;
        self
    }

    /// Set printer columns.
    pub const fn columns(mut self, columns: &'static [Column]) -> Self {
        self.columns = columns;
        self
    }

    /// Set extra field selector paths.
    pub const fn field_selectors(mut self, fields: &'static [&'static str]) -> Self {
        self.field_selectors = fields;
        self
    }

    /// Set the defaulting hook.
    pub const fn prepare(mut self, prepare: PrepareFn) -> Self {
        self.prepare = Some(prepare);
        self
    }

    /// Set extra subresources listed by discovery.
    pub const fn extra_subresources(mut self, subs: &'static [ExtraSubresource]) -> Self {
        self.extra_subresources = subs;
        self
    }

    /// Set the verbs.
    pub const fn verbs(mut self, verbs: &'static [&'static str]) -> Self {
        self.verbs = verbs;
        self
    }

    /// Set a special behaviour.
    pub const fn behavior(mut self, behavior: Behavior) -> Self {
        self.behavior = behavior;
        self
    }

    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Lower-case kind, as discovery reports `singularName`.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// Whether the main resource accepts a verb.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// `Deployment` → `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether this is the core Namespace kind (which has lifecycle behaviour in the store).
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Defaulting hooks
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
                _ => causes.push(crate::error::cause(
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
// The table
// ---------------------------------------------------------------------------------------------

const COL_PHASE: &[Column] = &[Column {
    name: "Status",
    path: ".status.phase",
    type_: "string",
}];

/// core/v1 Namespace.
pub static NAMESPACE: KindInfo = KindInfo::new("", "v1", "Namespace", "namespaces", false)
    .short(&["ns"])
    .with_status()
    .create_status(CreateStatus::Initial(namespace_initial_status))
    .columns(COL_PHASE)
    .field_selectors(&["status.phase"])
    .prepare(prepare_namespace)
    .extra_subresources(&[ExtraSubresource {
        name: "finalize",
        kind: "Namespace",
        verbs: &["update"],
    }]);

/// core/v1 Secret.
pub static SECRET: KindInfo = KindInfo::new("", "v1", "Secret", "secrets", true)
    .field_selectors(&["type"])
    .columns(&[Column {
        name: "Type",
        path: ".type",
        type_: "string",
    }])
    .prepare(prepare_secret);

/// core/v1 ConfigMap.
pub static CONFIG_MAP: KindInfo = KindInfo::new("", "v1", "ConfigMap", "configmaps", true).short(&["cm"]);

/// core/v1 Pod (status starts `Pending`; port-forward via [`crate::Sim::set_port_forward`]).
pub static POD: KindInfo = KindInfo::new("", "v1", "Pod", "pods", true)
    .short(&["po"])
    .categories(&["all"])
    .with_status()
    .create_status(CreateStatus::Initial(pending_status))
    .columns(COL_PHASE)
    .field_selectors(&["spec.nodeName", "status.phase", "spec.serviceAccountName"])
    .extra_subresources(&[ExtraSubresource {
        name: "portforward",
        kind: "PodPortForwardOptions",
        verbs: &["create", "get"],
    }]);

/// core/v1 Node (cluster-scoped; registered with its status like a kubelet does).
pub static NODE: KindInfo = KindInfo::new("", "v1", "Node", "nodes", false)
    .short(&["no"])
    .with_status()
    .create_status(CreateStatus::Keep)
    .field_selectors(&["spec.unschedulable"]);

/// core/v1 Service.
pub static SERVICE: KindInfo = KindInfo::new("", "v1", "Service", "services", true)
    .short(&["svc"])
    .categories(&["all"])
    .with_status()
    .columns(&[
        Column {
            name: "Type",
            path: ".spec.type",
            type_: "string",
        },
        Column {
            name: "Cluster-IP",
            path: ".spec.clusterIP",
            type_: "string",
        },
    ]);

/// core/v1 PersistentVolumeClaim.
pub static PERSISTENT_VOLUME_CLAIM: KindInfo =
    KindInfo::new("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true)
        .short(&["pvc"])
        .with_status()
        .create_status(CreateStatus::Initial(pending_status))
        .columns(COL_PHASE);

/// apps/v1 Deployment.
pub static DEPLOYMENT: KindInfo = KindInfo::new("apps", "v1", "Deployment", "deployments", true)
    .short(&["deploy"])
    .categories(&["all"])
    .with_status()
    .with_scale(".spec.replicas", ".status.replicas", Some(".spec.selector"))
    .prepare(prepare_replicated)
    .columns(&[
        Column {
            name: "Desired",
            path: ".spec.replicas",
            type_: "integer",
        },
        Column {
            name: "Available",
            path: ".status.availableReplicas",
            type_: "integer",
        },
    ]);

/// apps/v1 StatefulSet.
pub static STATEFUL_SET: KindInfo = KindInfo::new("apps", "v1", "StatefulSet", "statefulsets", true)
    .short(&["sts"])
    .categories(&["all"])
    .with_status()
    .with_scale(".spec.replicas", ".status.replicas", Some(".spec.selector"))
    .prepare(prepare_replicated)
    .columns(&[
        Column {
            name: "Desired",
            path: ".spec.replicas",
            type_: "integer",
        },
        Column {
            name: "Ready",
            path: ".status.readyReplicas",
            type_: "integer",
        },
    ]);

/// route.openshift.io/v1 Route.
pub static ROUTE: KindInfo = KindInfo::new("route.openshift.io", "v1", "Route", "routes", true)
    .with_status()
    .columns(&[Column {
        name: "Host/Port",
        path: ".spec.host",
        type_: "string",
    }]);

/// project.openshift.io/v1 ProjectRequest: create-only; creates a Namespace.
pub static PROJECT_REQUEST: KindInfo =
    KindInfo::new("project.openshift.io", "v1", "ProjectRequest", "projectrequests", false)
        .verbs(&["create"])
        .behavior(Behavior::ProjectRequest);

/// hypershift.openshift.io/v1beta1 HostedCluster.
pub static HOSTED_CLUSTER: KindInfo = KindInfo::new(
    "hypershift.openshift.io",
    "v1beta1",
    "HostedCluster",
    "hostedclusters",
    true,
)
.short(&["hc", "hcs"])
.with_status()
.columns(&[
    Column {
        name: "Version",
        path: ".status.version.history[?(@.state==\"Completed\")].version",
        type_: "string",
    },
    Column {
        name: "KubeConfig",
        path: ".status.kubeconfig.name",
        type_: "string",
    },
    Column {
        name: "Progress",
        path: ".status.version.history[?(@.state!=\"\")].state",
        type_: "string",
    },
    Column {
        name: "Available",
        path: ".status.conditions[?(@.type==\"Available\")].status",
        type_: "string",
    },
    Column {
        name: "Progressing",
        path: ".status.conditions[?(@.type==\"Progressing\")].status",
        type_: "string",
    },
    Column {
        name: "Message",
        path: ".status.conditions[?(@.type==\"Available\")].message",
        type_: "string",
    },
]);

/// hypershift.openshift.io/v1beta1 NodePool (scale via `spec.replicas`).
pub static NODE_POOL: KindInfo = KindInfo::new("hypershift.openshift.io", "v1beta1", "NodePool", "nodepools", true)
    .short(&["np", "nps"])
    .with_status()
    .with_scale(".spec.replicas", ".status.replicas", None)
    .columns(&[
        Column {
            name: "Cluster",
            path: ".spec.clusterName",
            type_: "string",
        },
        Column {
            name: "Desired Nodes",
            path: ".spec.replicas",
            type_: "integer",
        },
        Column {
            name: "Current Nodes",
            path: ".status.replicas",
            type_: "integer",
        },
        Column {
            name: "Version",
            path: ".status.version",
            type_: "string",
        },
    ]);

/// hypershift.openshift.io/v1beta1 HostedControlPlane.
pub static HOSTED_CONTROL_PLANE: KindInfo = KindInfo::new(
    "hypershift.openshift.io",
    "v1beta1",
    "HostedControlPlane",
    "hostedcontrolplanes",
    true,
)
.short(&["hcp", "hcps"])
.with_status();

const CAPI: &[&str] = &["cluster-api"];

const COL_CAPI_PHASE: &[Column] = &[Column {
    name: "Phase",
    path: ".status.phase",
    type_: "string",
}];

/// cluster.x-k8s.io/v1beta1 Cluster.
pub static CAPI_CLUSTER: KindInfo = KindInfo::new("cluster.x-k8s.io", "v1beta1", "Cluster", "clusters", true)
    .short(&["cl"])
    .categories(CAPI)
    .with_status()
    .columns(COL_CAPI_PHASE);

/// cluster.x-k8s.io/v1beta1 MachineDeployment.
pub static MACHINE_DEPLOYMENT: KindInfo = KindInfo::new(
    "cluster.x-k8s.io",
    "v1beta1",
    "MachineDeployment",
    "machinedeployments",
    true,
)
.short(&["md"])
.categories(CAPI)
.with_status()
.with_scale(".spec.replicas", ".status.replicas", Some(".status.selector"))
.columns(COL_CAPI_PHASE);

/// cluster.x-k8s.io/v1beta1 MachineSet.
pub static MACHINE_SET: KindInfo = KindInfo::new("cluster.x-k8s.io", "v1beta1", "MachineSet", "machinesets", true)
    .short(&["ms"])
    .categories(CAPI)
    .with_status()
    .with_scale(".spec.replicas", ".status.replicas", Some(".status.selector"));

/// cluster.x-k8s.io/v1beta1 Machine.
pub static MACHINE: KindInfo = KindInfo::new("cluster.x-k8s.io", "v1beta1", "Machine", "machines", true)
    .short(&["ma"])
    .categories(CAPI)
    .with_status()
    .columns(COL_CAPI_PHASE);

/// infrastructure.cluster.x-k8s.io/v1beta2 AWSCluster.
pub static AWS_CLUSTER: KindInfo = KindInfo::new(
    "infrastructure.cluster.x-k8s.io",
    "v1beta2",
    "AWSCluster",
    "awsclusters",
    true,
)
.categories(&["cluster-api"])
.with_status();

/// infrastructure.cluster.x-k8s.io/v1beta2 AWSMachineTemplate.
pub static AWS_MACHINE_TEMPLATE: KindInfo = KindInfo::new(
    "infrastructure.cluster.x-k8s.io",
    "v1beta2",
    "AWSMachineTemplate",
    "awsmachinetemplates",
    true,
)
.categories(&["cluster-api"]);

/// infrastructure.cluster.x-k8s.io/v1beta2 AWSMachine.
pub static AWS_MACHINE: KindInfo = KindInfo::new(
    "infrastructure.cluster.x-k8s.io",
    "v1beta2",
    "AWSMachine",
    "awsmachines",
    true,
)
.categories(&["cluster-api"])
.with_status();

/// config.openshift.io/v1 ClusterVersion (cluster-scoped).
pub static CLUSTER_VERSION: KindInfo =
    KindInfo::new("config.openshift.io", "v1", "ClusterVersion", "clusterversions", false).with_status();

/// core/v1 Event (what `kubectl describe` and older recorders read and write).
pub static EVENT: KindInfo = KindInfo::new("", "v1", "Event", "events", true)
    .short(&["ev"])
    .field_selectors(&[
        "involvedObject.kind",
        "involvedObject.name",
        "involvedObject.namespace",
        "involvedObject.uid",
        "reason",
        "type",
    ]);

/// events.k8s.io/v1 Event (kube-runtime's `Recorder` writes these).
pub static EVENTS_V1_EVENT: KindInfo =
    KindInfo::new("events.k8s.io", "v1", "Event", "events", true).field_selectors(&[
        "regarding.kind",
        "regarding.name",
        "regarding.namespace",
        "reason",
        "type",
    ]);

/// coordination.k8s.io/v1 Lease (leader election).
pub static LEASE: KindInfo = KindInfo::new("coordination.k8s.io", "v1", "Lease", "leases", true);

/// monitoring.coreos.com/v1 ServiceMonitor (Prometheus operator; carried by site hooks).
pub static SERVICE_MONITOR: KindInfo =
    KindInfo::new("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", true).short(&["smon"]);

/// Every built-in kind, in discovery order (core first, then groups as listed).
pub static BUILTIN: &[&KindInfo] = &[
    &NAMESPACE,
    &SECRET,
    &CONFIG_MAP,
    &POD,
    &NODE,
    &SERVICE,
    &PERSISTENT_VOLUME_CLAIM,
    &EVENT,
    &DEPLOYMENT,
    &STATEFUL_SET,
    &ROUTE,
    &PROJECT_REQUEST,
    &HOSTED_CLUSTER,
    &NODE_POOL,
    &HOSTED_CONTROL_PLANE,
    &CAPI_CLUSTER,
    &MACHINE_DEPLOYMENT,
    &MACHINE_SET,
    &MACHINE,
    &AWS_CLUSTER,
    &AWS_MACHINE_TEMPLATE,
    &AWS_MACHINE,
    &CLUSTER_VERSION,
    &EVENTS_V1_EVENT,
    &LEASE,
    &SERVICE_MONITOR,
];

/// The set of kinds one simulated API server serves.
#[derive(Debug, Clone)]
pub struct Registry {
    kinds: Vec<&'static KindInfo>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// All [`BUILTIN`] kinds.
    pub fn builtin() -> Self {
        Self::new(BUILTIN.iter().copied())
    }

    /// A registry of the given kinds. Namespace is always added because namespaced kinds need it.
    pub fn new(kinds: impl IntoIterator<Item = &'static KindInfo>) -> Self {
        let mut list: Vec<&'static KindInfo> = Vec::new();
        for k in kinds {
            if !list.iter().any(|e| e.group == k.group && e.plural == k.plural) {
                list.push(k);
            }
        }
        if !list.iter().any(|k| k.is_namespace()) {
            list.insert(0, &NAMESPACE);
        }
        Registry { kinds: list }
    }

    /// All kinds, in discovery order.
    pub fn kinds(&self) -> &[&'static KindInfo] {
        &self.kinds
    }

    /// Resolve a URL's group, version and plural.
    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<&'static KindInfo> {
        self.kinds
            .iter()
            .copied()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// Resolve an `apiVersion` + `kind` pair (as found in object bodies and ownerReferences).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&'static KindInfo> {
        let (group, version) = split_api_version(api_version);
        self.kinds
            .iter()
            .copied()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
    }

    /// Resolve a group + kind regardless of version.
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<&'static KindInfo> {
        self.kinds.iter().copied().find(|k| k.group == group && k.kind == kind)
    }

    /// Distinct (group, version) pairs served, in discovery order; the core group is `""`.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for k in &self.kinds {
            if !out.contains(&(k.group, k.version)) {
                out.push((k.group, k.version));
            }
        }
        out
    }

    /// Whether a group/version is served at all (for 404s on unknown paths).
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.kinds.iter().any(|k| k.group == group && k.version == version)
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let reg = Registry::builtin();
        assert_eq!(reg.kinds().len(), BUILTIN.len());
        let d = reg.by_resource("apps", "v1", "deployments");
        assert_eq!(d.map(|k| k.kind), Some("Deployment"));
        assert!(DEPLOYMENT.strategic_merge);
        assert!(!HOSTED_CLUSTER.strategic_merge);
        assert!(CONFIG_MAP.strategic_merge);
        assert_eq!(
            reg.by_kind("hypershift.openshift.io/v1beta1", "NodePool")
                .map(|k| k.plural),
            Some("nodepools")
        );
        assert!(reg.by_kind("v1", "Nope").is_none());
        // Short names are unique across the table: kubectl would otherwise pick arbitrarily.
        let mut seen = std::collections::HashSet::new();
        for k in reg.kinds() {
            for s in k.short_names {
                assert!(seen.insert(*s), "duplicate short name {s}");
            }
        }
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
