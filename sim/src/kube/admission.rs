//! Admission and conversion webhooks, called the way kube-apiserver calls them.
//!
//! - **Admission** (`admissionregistration.k8s.io/v1` Mutating and Validating
//!   WebhookConfigurations): `k8s.io/apiserver/pkg/admission/plugin/webhook`. Mutating webhooks
//!   run before schema validation, validating ones after it (`handlers/create.go`,
//!   `registry/generic/registry/store.go`); a webhook is called when one of its rules matches
//!   (`predicates/rules/rules.go` `Matches`, with `matchPolicy: Equivalent` trying the other
//!   served versions of a custom resource), its `namespaceSelector` matches the namespace's
//!   labels and its `objectSelector` the old or the new object (`predicates/namespace`,
//!   `predicates/object`). A call that cannot be made fails the request under
//!   `failurePolicy: Fail` with kube-apiserver's words (`util/webhook/error.go`,
//!   `validating/dispatcher.go` `callHook`) and is skipped under `Ignore`; a denial is never
//!   ignored (`webhook/errors/statuserror.go` `ToStatusErr`).
//! - **Conversion** (a CRD's `spec.conversion.strategy: Webhook`):
//!   `apiextensions-apiserver/pkg/apiserver/conversion/webhook_converter.go` `Convert`. An
//!   object is converted only when the version asked for differs from the version the object
//!   itself is stored in (`getObjectsToConvert`); an unreachable webhook fails the request with
//!   HTTP 500 and an empty reason.
//!
//! Calls are routed as kube-apiserver with `--enable-aggregator-routing=true` routes them (as
//! HyperShift's kube-apiservers do, `kas/config.go`): to the ready endpoints of the Service the
//! clientConfig names (`pkg/util/proxy/proxy.go` `ResolveEndpoint`), here the pods its selector
//! picks that are Ready and not terminating. What answers at a Service and path is an
//! in-process handler registered with [`WebhookServers`] by whoever serves it (the simulated
//! HyperShift operator): it answers only while its pods are Ready, because the call is never
//! made otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::error::{ApiError, Reason};
use super::registry::KindInfo;
use super::selector::{LabelSelector, selector_string};

/// The group of webhook configurations.
pub const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";

/// An admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// POST.
    Create,
    /// PUT and PATCH (also a patch that only removes finalizers).
    Update,
    /// DELETE (of one object, by a client).
    Delete,
}

impl Operation {
    /// The name rules use (`CREATE`, `UPDATE`, `DELETE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// One admission call: the `request` of an `admission.k8s.io/v1` AdmissionReview.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    /// The webhook called (its `name`).
    pub webhook: String,
    /// The operation.
    pub operation: Operation,
    /// Group, version (the matched rule's) and kind.
    pub group: String,
    /// Version the object is sent in.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`""` for the main resource).
    pub sub_resource: String,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Name (may be empty on CREATE with `generateName`).
    pub name: String,
    /// The new object (none on DELETE).
    pub object: Option<Value>,
    /// The stored object (none on CREATE).
    pub old_object: Option<Value>,
    /// A dry run.
    pub dry_run: bool,
}

impl AdmissionRequest {
    /// The request as an AdmissionReview v1 (what a real webhook server receives).
    pub fn review(&self) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": uuid::Uuid::new_v4().to_string(),
                "kind": {"group": self.group, "version": self.version, "kind": self.kind},
                "resource": {"group": self.group, "version": self.version, "resource": self.resource},
                "subResource": self.sub_resource,
                "name": self.name, "namespace": self.namespace,
                "operation": self.operation.as_str(),
                "userInfo": {"username": "system:admin"},
                "object": self.object, "oldObject": self.old_object,
                "dryRun": self.dry_run,
            },
        })
    }
}

/// A webhook's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionResponse {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The HTTP code of a denial (controller-runtime answers 403 for a plain error).
    pub code: u16,
    /// Why it was denied.
    pub message: String,
    /// JSON patch operations a mutating webhook applies.
    pub patch: Option<Value>,
}

impl AdmissionResponse {
    /// Allowed, unchanged.
    pub fn allow() -> Self {
        AdmissionResponse {
            allowed: true,
            code: 200,
            message: String::new(),
            patch: None,
        }
    }

    /// Allowed with a JSON patch (mutating webhooks).
    pub fn patched(ops: Vec<Value>) -> Self {
        AdmissionResponse {
            patch: (!ops.is_empty()).then_some(Value::Array(ops)),
            ..Self::allow()
        }
    }

    /// Denied with `code` and `message`.
    pub fn deny(code: u16, message: impl Into<String>) -> Self {
        AdmissionResponse {
            allowed: false,
            code,
            message: message.into(),
            patch: None,
        }
    }
}

/// Read access to the server's objects while a webhook answers (a webhook server's informer
/// cache): the stored object of `group`/`plural` at `namespace`/`name`.
pub trait Lookup {
    /// The stored object, if any.
    fn lookup(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value>;
}

/// What an admission webhook server answers.
pub type AdmissionHandler = Arc<dyn Fn(&AdmissionRequest, &dyn Lookup) -> AdmissionResponse + Send + Sync>;

/// What a conversion webhook server answers: the object converted to the version (of its
/// group) asked for, or why it could not.
pub type ConversionHandler = Arc<dyn Fn(&Value, &str) -> Result<Value, String> + Send + Sync>;

/// Where a webhook is served: a Service and a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port (443 when the clientConfig leaves it out).
    pub port: u16,
    /// The path.
    pub path: String,
}

impl ServiceRef {
    /// A clientConfig's `service` (port 443 and path `/` when absent).
    pub fn from_client_config(client_config: &Value) -> Option<ServiceRef> {
        let svc = client_config.get("service")?;
        Some(ServiceRef {
            namespace: svc.get("namespace")?.as_str()?.to_string(),
            name: svc.get("name")?.as_str()?.to_string(),
            port: svc
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(443),
            path: svc.get("path").and_then(Value::as_str).unwrap_or("/").to_string(),
        })
    }

    /// The URL kube-apiserver posts to, with the timeout it sets (`?timeout=15s`).
    pub fn url(&self, timeout_seconds: u64) -> String {
        format!(
            "https://{}.{}.svc:{}{}?timeout={timeout_seconds}s",
            self.name, self.namespace, self.port, self.path
        )
    }

    fn key(&self) -> (String, String, String) {
        (self.namespace.clone(), self.name.clone(), self.path.clone())
    }
}

/// The in-process webhook servers of one API server, by Service and path.
#[derive(Clone, Default)]
pub struct WebhookServers {
    admission: HashMap<(String, String, String), AdmissionHandler>,
    conversion: HashMap<(String, String, String), ConversionHandler>,
}

impl std::fmt::Debug for WebhookServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookServers")
            .field("admission", &self.admission.keys().collect::<Vec<_>>())
            .field("conversion", &self.conversion.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebhookServers {
    /// Serve admission at Service `namespace/service`, `path`.
    pub fn serve_admission(&mut self, namespace: &str, service: &str, path: &str, handler: AdmissionHandler) {
        self.admission
            .insert((namespace.into(), service.into(), path.into()), handler);
    }

    /// Serve conversion at Service `namespace/service`, `path`.
    pub fn serve_conversion(&mut self, namespace: &str, service: &str, path: &str, handler: ConversionHandler) {
        self.conversion
            .insert((namespace.into(), service.into(), path.into()), handler);
    }

    /// The admission handler behind `svc`, if any.
    pub fn admission(&self, svc: &ServiceRef) -> Option<&AdmissionHandler> {
        self.admission.get(&svc.key())
    }

    /// The conversion handler behind `svc`, if any.
    pub fn conversion(&self, svc: &ServiceRef) -> Option<&ConversionHandler> {
        self.conversion.get(&svc.key())
    }
}

/// `ResolveEndpoint` (`k8s.io/apiserver/pkg/util/proxy/proxy.go`): the Service exists, has the
/// port, is not ExternalName, and some pod it selects is Ready and not terminating. `pods`
/// are the pods of the Service's namespace. The error is resolver's text.
pub fn resolve_endpoint(service: Option<&Value>, pods: &[Arc<Value>], svc: &ServiceRef) -> Result<(), String> {
    let Some(service) = service else {
        return Err(format!("service \"{}\" not found", svc.name));
    };
    if service.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return Err("unsupported service type \"ExternalName\"".to_string());
    }
    let has_port = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .is_some_and(|ports| {
            ports
                .iter()
                .any(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(svc.port)))
        });
    if !has_port {
        return Err(format!(
            "no service port {} found for service \"{}\"",
            svc.port, svc.name
        ));
    }
    let selector = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty());
    let ready = selector.is_some_and(|sel| {
        pods.iter().any(|p| {
            let labels = p.pointer("/metadata/labels");
            let selected = sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            let deleting = p.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null());
            let is_ready = p
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("type").and_then(Value::as_str) == Some("Ready")
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
                });
            selected && is_ready && !deleting
        })
    });
    if ready {
        Ok(())
    } else {
        Err(format!("no endpoints available for service \"{}\"", svc.name))
    }
}

/// The `message` of a failed conversion call (`webhook_converter.go` `Convert`): the version
/// converted *from* is named.
pub fn conversion_failure(from_api_version: &str, kind: &str, svc: &ServiceRef, why: &str) -> ApiError {
    ApiError::new(
        Reason::Unknown,
        format!(
            "conversion webhook for {from_api_version}, Kind={kind} failed: Post \"{}\": {why}",
            // The conversion client has no per-call timeout: the client default of 30 s.
            svc.url(30)
        ),
    )
}

/// One webhook of a configuration, as kube-apiserver defaults it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Its name.
    pub name: String,
    /// Where it is served.
    pub service: Option<ServiceRef>,
    /// Its rules.
    pub rules: Vec<Value>,
    /// `Fail` (default) or `Ignore`.
    pub ignore_failures: bool,
    /// `Equivalent` (default) or `Exact`.
    pub equivalent: bool,
    /// `namespaceSelector` (empty matches all).
    pub namespace_selector: LabelSelector,
    /// `objectSelector` (empty matches all).
    pub object_selector: LabelSelector,
    /// `timeoutSeconds` (default 10).
    pub timeout_seconds: u64,
    /// `sideEffects` is `None` or `NoneOnDryRun`: it may be called for dry runs.
    pub dry_run_safe: bool,
}

impl Webhook {
    /// The webhooks of a stored configuration, in their order.
    pub fn of_configuration(config: &Value) -> Vec<Webhook> {
        config
            .get("webhooks")
            .and_then(Value::as_array)
            .map(|hooks| hooks.iter().map(Webhook::from_value).collect())
            .unwrap_or_default()
    }

    fn from_value(w: &Value) -> Webhook {
        let selector = |field: &str| {
            w.get(field)
                .and_then(selector_string)
                .and_then(|s| LabelSelector::parse(&s).ok())
                .unwrap_or_default()
        };
        Webhook {
            name: w.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
            service: w.get("clientConfig").and_then(ServiceRef::from_client_config),
            rules: w.get("rules").and_then(Value::as_array).cloned().unwrap_or_default(),
            ignore_failures: w.get("failurePolicy").and_then(Value::as_str) == Some("Ignore"),
            equivalent: w.get("matchPolicy").and_then(Value::as_str) != Some("Exact"),
            namespace_selector: selector("namespaceSelector"),
            object_selector: selector("objectSelector"),
            timeout_seconds: w.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(10),
            dry_run_safe: matches!(
                w.get("sideEffects").and_then(Value::as_str),
                Some("None" | "NoneOnDryRun")
            ),
        }
    }

    /// Whether a rule of this webhook matches (`Matcher.Matches`): operation, group, version,
    /// resource/subresource (`"*"` matches no subresource), scope.
    pub fn rule_matches(&self, op: Operation, kind: &KindInfo, version: &str, sub: &str, namespace: &str) -> bool {
        self.rules.iter().any(|r| {
            let list = |field: &str| -> Vec<&str> {
                r.get(field)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default()
            };
            let exact_or_any = |field: &str, want: &str| list(field).iter().any(|v| *v == "*" || *v == want);
            let resource_ok = list("resources").iter().any(|entry| {
                let (res, entry_sub) = entry.split_once('/').unwrap_or((entry, ""));
                (res == "*" || res == kind.plural) && (entry_sub == "*" || entry_sub == sub)
            });
            let is_ns = kind.is_namespace();
            let scope_ok = match r.get("scope").and_then(Value::as_str) {
                Some("Namespaced") => !namespace.is_empty() && !is_ns,
                Some("Cluster") => namespace.is_empty() || is_ns,
                _ => true,
            };
            exact_or_any("operations", op.as_str())
                && exact_or_any("apiGroups", &kind.group)
                && exact_or_any("apiVersions", version)
                && resource_ok
                && scope_ok
        })
    }

    /// `ErrCallingWebhook` for this webhook: `failed calling webhook "…": failed to call
    /// webhook: Post "…": <why>`.
    pub fn call_error(&self, why: &str) -> String {
        let url = self
            .service
            .as_ref()
            .map(|s| s.url(self.timeout_seconds))
            .unwrap_or_else(|| "<no service>".into());
        format!(
            "failed calling webhook \"{}\": failed to call webhook: Post \"{url}\": {why}",
            self.name
        )
    }
}

/// The error a denial turns into (`ToStatusErr`): `admission webhook "…" denied the request:
/// <message>`, with the webhook's code (at least 400).
pub fn denied(webhook: &str, response: &AdmissionResponse) -> ApiError {
    let message = if response.message.is_empty() {
        format!("admission webhook \"{webhook}\" denied the request without explanation")
    } else {
        format!(
            "admission webhook \"{webhook}\" denied the request: {}",
            response.message
        )
    };
    let reason = match response.code.max(400) {
        404 => Reason::NotFound,
        409 => Reason::Conflict,
        422 => Reason::Invalid,
        400 => Reason::BadRequest,
        c if c >= 500 => Reason::InternalError,
        _ => Reason::Forbidden,
    };
    ApiError::new(reason, message)
}

/// A dry run refused by a webhook whose `sideEffects` are not `None`/`NoneOnDryRun`
/// (`NewDryRunUnsupportedErr`): 400, never ignored.
pub fn dry_run_unsupported(webhook: &str) -> ApiError {
    ApiError::bad_request(format!("admission webhook \"{webhook}\" does not support dry run"))
}

/// Defaults and checks a Validating or Mutating WebhookConfiguration gets on every write
/// (`admissionregistration/v1/defaults.go`, `validation.go`).
pub fn prepare_configuration(obj: &mut Value) -> Result<(), Vec<super::field::Cause>> {
    let mutating = obj.get("kind").and_then(Value::as_str) == Some("MutatingWebhookConfiguration");
    let mut causes = Vec::new();
    if let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) {
        for (i, w) in hooks.iter_mut().enumerate() {
            let Some(m) = w.as_object_mut() else { continue };
            m.entry("failurePolicy").or_insert_with(|| json!("Fail"));
            m.entry("matchPolicy").or_insert_with(|| json!("Equivalent"));
            m.entry("namespaceSelector").or_insert_with(|| json!({}));
            m.entry("objectSelector").or_insert_with(|| json!({}));
            m.entry("timeoutSeconds").or_insert_with(|| json!(10));
            if mutating {
                m.entry("reinvocationPolicy").or_insert_with(|| json!("Never"));
            }
            if let Some(rules) = m.get_mut("rules").and_then(Value::as_array_mut) {
                for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                    r.entry("scope").or_insert_with(|| json!("*"));
                }
            }
            if let Some(Value::Object(svc)) = m.get_mut("clientConfig").and_then(|c| c.get_mut("service")) {
                svc.entry("port").or_insert_with(|| json!(443));
            }
            let path = super::field::Path::new(&format!("webhooks[{i}]"));
            if let Some(t) = m.get("timeoutSeconds").and_then(Value::as_i64)
                && !(1..=30).contains(&t)
            {
                causes.push(super::field::invalid(
                    &path.child("timeoutSeconds"),
                    &json!(t),
                    "the timeout value must be between 1 and 30 seconds",
                ));
            }
            match m.get("sideEffects").and_then(Value::as_str) {
                Some("None" | "NoneOnDryRun") => {}
                Some(other) => causes.push(super::field::not_supported(
                    &path.child("sideEffects"),
                    &json!(other),
                    &[json!("None"), json!("NoneOnDryRun")],
                )),
                None => causes.push(super::field::required(
                    &path.child("sideEffects"),
                    "must specify one of None, NoneOnDryRun",
                )),
            }
        }
    }
    if causes.is_empty() { Ok(()) } else { Err(causes) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::registry;

    fn hook(rules: Value) -> Webhook {
        Webhook::from_value(
            &json!({"name": "hostedclusters.hypershift.openshift.io", "rules": rules,
            "clientConfig": {"service": {"namespace": "hypershift", "name": "operator",
                "path": "/validate-hypershift-openshift-io-v1beta1-hostedcluster"}},
            "timeoutSeconds": 15, "sideEffects": "None"}),
        )
    }

    /// `Matcher.Matches`: a rule naming the main resource matches neither its subresources nor
    /// operations it does not list; `*` matches no subresource; scope splits namespaced and
    /// cluster-scoped requests.
    #[test]
    fn rules_match_as_kube_apiserver_matches_them() {
        let hc = &*registry::HOSTED_CLUSTER;
        let h = hook(
            json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": ["hypershift.openshift.io"],
            "apiVersions": ["v1beta1"], "resources": ["hostedclusters"], "scope": "Namespaced"}]),
        );
        assert!(h.rule_matches(Operation::Update, hc, "v1beta1", "", "clusters"));
        assert!(!h.rule_matches(Operation::Delete, hc, "v1beta1", "", "clusters"));
        assert!(!h.rule_matches(Operation::Update, hc, "v1beta1", "status", "clusters"));
        assert!(!h.rule_matches(Operation::Update, hc, "v1beta2", "", "clusters"));
        assert!(!h.rule_matches(Operation::Update, &registry::NODE_POOL, "v1beta1", "", "clusters"));
        let any = hook(json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]));
        assert!(any.rule_matches(Operation::Delete, hc, "v1beta1", "", "clusters"));
        assert!(!any.rule_matches(Operation::Update, hc, "v1beta1", "status", "clusters"));
        let status =
            hook(json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]}]));
        assert!(status.rule_matches(Operation::Update, hc, "v1beta1", "status", "clusters"));
        let cluster = hook(
            json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}]),
        );
        assert!(!cluster.rule_matches(Operation::Update, hc, "v1beta1", "", "clusters"));
        assert!(cluster.rule_matches(Operation::Update, &registry::NAMESPACE, "v1", "", "clusters"));
    }

    /// The words of `ErrCallingWebhook` and of the resolver, with HyperShift's 15 s timeout.
    #[test]
    fn an_unreachable_webhook_is_reported_in_kube_apiservers_words() {
        let h = hook(json!([]));
        let svc = h.service.clone().expect("service");
        let why = resolve_endpoint(None, &[], &svc).expect_err("no service");
        assert_eq!(why, "service \"operator\" not found");
        let service = json!({"spec": {"selector": {"name": "operator"}, "ports": [{"name": "manager", "port": 443}]}});
        let terminating = Arc::new(
            json!({"metadata": {"labels": {"name": "operator"}, "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        let why =
            resolve_endpoint(Some(&service), &[terminating], &svc).expect_err("terminating pods are no endpoints");
        assert_eq!(
            h.call_error(&why),
            "failed calling webhook \"hostedclusters.hypershift.openshift.io\": failed to call webhook: Post \
             \"https://operator.hypershift.svc:443/validate-hypershift-openshift-io-v1beta1-hostedcluster?timeout=15s\": \
             no endpoints available for service \"operator\""
        );
        let ready = Arc::new(
            json!({"metadata": {"labels": {"name": "operator", "pod-template-hash": "x"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert!(resolve_endpoint(Some(&service), std::slice::from_ref(&ready), &svc).is_ok());
        let other_port = ServiceRef {
            port: 9443,
            ..svc.clone()
        };
        assert_eq!(
            resolve_endpoint(Some(&service), &[ready], &other_port).expect_err("port"),
            "no service port 9443 found for service \"operator\""
        );
        let e = conversion_failure(
            "cluster.x-k8s.io/v1beta1",
            "Machine",
            &ServiceRef {
                path: "/convert".into(),
                ..svc
            },
            &why,
        );
        assert_eq!(e.code(), 500);
        assert_eq!(e.to_status().get("reason"), None, "StatusReasonUnknown is omitted");
        assert!(e.message.starts_with(
            "conversion webhook for cluster.x-k8s.io/v1beta1, Kind=Machine failed: Post \"https://operator.hypershift.svc:443/convert?timeout=30s\""
        ));
    }

    #[test]
    fn denials_keep_the_webhooks_code_and_words() {
        let e = denied(
            "hostedclusters.hypershift.openshift.io",
            &AdmissionResponse::deny(403, "no"),
        );
        assert_eq!(
            (e.code(), e.message.as_str()),
            (
                403,
                "admission webhook \"hostedclusters.hypershift.openshift.io\" denied the request: no"
            )
        );
        let e = denied("w", &AdmissionResponse::deny(200, ""));
        assert_eq!(
            (e.code(), e.message.as_str()),
            (400, "admission webhook \"w\" denied the request without explanation")
        );
        assert_eq!(dry_run_unsupported("w").code(), 400);
    }

    #[test]
    fn configurations_are_defaulted_and_checked() {
        let mut c = json!({"kind": "ValidatingWebhookConfiguration", "webhooks": [{"name": "a", "sideEffects": "None",
            "rules": [{"operations": ["CREATE"]}], "clientConfig": {"service": {"namespace": "n", "name": "s"}}}]});
        prepare_configuration(&mut c).expect("valid");
        let w = &c["webhooks"][0];
        assert_eq!(
            (
                &w["failurePolicy"],
                &w["matchPolicy"],
                &w["timeoutSeconds"],
                &w["rules"][0]["scope"],
                &w["clientConfig"]["service"]["port"]
            ),
            (
                &json!("Fail"),
                &json!("Equivalent"),
                &json!(10),
                &json!("*"),
                &json!(443)
            )
        );
        let mut bad =
            json!({"kind": "ValidatingWebhookConfiguration", "webhooks": [{"name": "a", "timeoutSeconds": 31}]});
        let causes = prepare_configuration(&mut bad).expect_err("invalid");
        assert_eq!(causes.len(), 2, "{causes:?}");
    }
}
