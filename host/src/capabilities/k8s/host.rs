//! `ferry:host/k8s`: Kubernetes clusters by alias, through kube-rs.
//!
//! The kind of each call is resolved through API discovery (cached per
//! cluster), so guests can address any kind the server serves, including
//! HyperShift and Cluster API kinds, as JSON. Names are checked first
//! (`names`), and every call is decided before any I/O it causes,
//! discovery included.

use super::ClusterHandle;
use super::fields::patch_fields;
use super::names;
use super::provider::{self, DEFAULT_FIELD_MANAGER, Write, map_kube_error, parse_manifest, split_api_version, to_json};
use crate::capabilities::{Approved, Change, Facts};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde_json::Value;
use wasmtime::component::Resource;

use crate::capabilities::View;
use crate::capabilities::bindings::ObjectRef;
use crate::capabilities::bindings::automation::ferry::host::k8s::{
    DeleteOutcome, Host, HostCluster, ListOptions, PatchKind, Propagation, ServedKind, WriteOptions,
};
use crate::capabilities::{HostError, HostResult};
use crate::policy::{Action, ResourceRef};

impl View<'_> {
    fn cluster(&self, h: &Resource<ClusterHandle>) -> HostResult<(String, kube::Client)> {
        let c = self.table.get(h)?;
        Ok((c.alias.clone(), c.client.clone()))
    }

    /// A kind this run has discovered on `alias`: its resource and whether it is namespaced.
    fn discovered(&self, alias: &str, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        let key = (api_version.to_string(), kind.to_string());
        self.state
            .k8s
            .discovery
            .get(alias)
            .and_then(|d| d.kinds.get(&key))
            .cloned()
    }

    /// Decides `action` on an object or collection, then resolves its kind. A kind already
    /// discovered is checked against its scope first (a missing namespace is bad arguments,
    /// not a confusing denial). Otherwise the decision is taken on the names as the guest
    /// gave them, before discovery sends anything to the server; a failed discovery or a
    /// namespace that does not fit the kind's scope is then audited as that call's failure.
    /// Both decide on the same resource whenever the scope fits.
    #[allow(clippy::too_many_arguments, reason = "one call's whole identity, decided as one")]
    async fn decide_and_resolve(
        &mut self,
        alias: &str,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: Option<&str>,
        action: Action,
        dry_run: bool,
        facts: Facts,
    ) -> HostResult<(ApiResource, bool, Approved)> {
        names::check_type(api_version, kind)?;
        let namespace = namespace.filter(|ns| !ns.is_empty());
        if let Some(ns) = namespace {
            names::check_namespace(ns)?;
        }
        let (group, version) = split_api_version(api_version);
        if let Some(name) = name {
            names::check_name(&group, kind, name)?;
        }
        let fits = |ar: &ApiResource, namespaced: bool| {
            if action == Action::K8sList && namespaced {
                Ok(()) // a namespaced kind lists in one namespace or in all
            } else {
                Self::check_scope(ar, namespaced, namespace)
            }
        };
        // Once the namespace fits the kind's scope, the names as given are the discovered
        // ones (discovery answers for exactly this group, version and kind).
        let as_given = ResourceRef::K8s {
            cluster: alias.to_string(),
            group,
            version,
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
        };
        let cached = self.discovered(alias, api_version, kind);
        if let Some((ar, namespaced)) = &cached {
            fits(ar, *namespaced)?;
        }
        let approved = self.authorize_with(action, as_given, dry_run, facts).await?;
        if let Some((ar, namespaced)) = cached {
            return Ok((ar, namespaced, approved));
        }
        let (ar, namespaced) = match self.discover(alias, client, api_version, kind).await {
            Ok(found) => found,
            Err(e) => return self.fail(approved, e),
        };
        if let Err(e) = fits(&ar, namespaced) {
            return self.fail(approved, e);
        }
        Ok((ar, namespaced, approved))
    }

    /// Resolves (apiVersion, kind) through discovery and caches it for the run.
    async fn discover(
        &mut self,
        alias: &str,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
    ) -> HostResult<(ApiResource, bool)> {
        let key = (api_version.to_string(), kind.to_string());
        let (group, version) = split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(&group, &version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await.map_err(|e| match e {
            kube::Error::Discovery(d) => {
                HostError::NotFound(format!("cluster `{alias}` does not serve {api_version} {kind}: {d}"))
            }
            other => map_kube_error(other, alias, &format!("discovering {api_version} {kind}")),
        })?;
        let namespaced = caps.scope == Scope::Namespaced;
        self.state
            .k8s
            .discovery
            .entry(alias.to_string())
            .or_default()
            .kinds
            .insert(key, (ar.clone(), namespaced));
        Ok((ar, namespaced))
    }

    /// Checks an object reference against the kind's scope before the policy
    /// sees it, so a missing namespace is reported as bad arguments rather
    /// than as a confusing denial.
    fn check_scope(ar: &ApiResource, namespaced: bool, namespace: Option<&str>) -> HostResult<()> {
        match (namespaced, namespace) {
            (true, None) | (true, Some("")) => Err(HostError::Invalid(format!(
                "{} is namespaced: give a namespace",
                ar.kind
            ))),
            (false, Some(ns)) if !ns.is_empty() => Err(HostError::Invalid(format!(
                "{} is cluster-scoped: give no namespace (got `{ns}`)",
                ar.kind
            ))),
            _ => Ok(()),
        }
    }

    fn api(
        client: &kube::Client,
        ar: &ApiResource,
        namespaced: bool,
        namespace: Option<&str>,
    ) -> HostResult<Api<DynamicObject>> {
        if namespaced {
            match namespace {
                Some(ns) if !ns.is_empty() => Ok(Api::namespaced_with(client.clone(), ns, ar)),
                _ => Err(HostError::Invalid(format!(
                    "{} is namespaced: give a namespace",
                    ar.kind
                ))),
            }
        } else {
            Ok(Api::all_with(client.clone(), ar))
        }
    }

    /// Effective dry-run: asked for, or forced by a plan run.
    fn dry_run(&self, options: &WriteOptions) -> bool {
        options.dry_run || self.env.plan
    }

    /// Shared path of create/apply/replace: parse, resolve, authorize.
    async fn prepare_write(
        &mut self,
        h: &Resource<ClusterHandle>,
        manifest: &str,
        action: Action,
        dry_run: bool,
    ) -> HostResult<(
        String,
        Api<DynamicObject>,
        DynamicObject,
        String,
        crate::capabilities::Approved,
    )> {
        let (alias, client) = self.cluster(h)?;
        let obj = parse_manifest(manifest)?;
        let types = obj
            .types
            .clone()
            .ok_or_else(|| HostError::Invalid("manifest needs apiVersion and kind".into()))?;
        let name = obj.metadata.name.clone().unwrap_or_default();
        let ns = obj.metadata.namespace.clone();
        // A create may leave the name to `generateName` (the policy sees no name then);
        // everything else names its object.
        let named = !(name.is_empty() && action == Action::K8sCreate);
        let verb = match action {
            Action::K8sApply => "server-side apply",
            Action::K8sReplace => "replace",
            _ => "create",
        };
        let change = Change::new(verb, serde_json::to_vec(&obj).unwrap_or_default());
        let (ar, namespaced, approved) = self
            .decide_and_resolve(
                &alias,
                &client,
                &types.api_version,
                &types.kind,
                ns.as_deref(),
                Some(name.as_str()).filter(|_| named),
                action,
                dry_run,
                Facts {
                    change,
                    ..Facts::default()
                },
            )
            .await?;
        let api = match Self::api(&client, &ar, namespaced, ns.as_deref()) {
            Ok(api) => api,
            Err(e) => return self.fail(approved, e),
        };
        Ok((alias, api, obj, name, approved))
    }

    /// Create, apply and replace: parse, resolve, authorize, then the provider's write.
    async fn write(
        &mut self,
        h: Resource<ClusterHandle>,
        manifest: String,
        options: WriteOptions,
        action: Action,
        how: Write,
    ) -> HostResult<String> {
        let dry_run = self.dry_run(&options);
        let (alias, api, obj, name, approved) = self.prepare_write(&h, &manifest, action, dry_run).await?;
        let manager = options.field_manager.clone();
        let segment = names::path_segment(&name);
        let result = provider::write(&api, &obj, &segment, how, dry_run, manager, &alias).await;
        self.finish(approved, result)
    }

    /// Shared path of calls on one existing object: resolve the kind, check
    /// the namespace against its scope, authorize, and build the API.
    async fn prepare_object(
        &mut self,
        h: &Resource<ClusterHandle>,
        object: &ObjectRef,
        action: Action,
        dry_run: bool,
        facts: Facts,
    ) -> HostResult<(String, ApiResource, Api<DynamicObject>, crate::capabilities::Approved)> {
        let (alias, client) = self.cluster(h)?;
        let (ar, namespaced, approved) = self
            .decide_and_resolve(
                &alias,
                &client,
                &object.api_version,
                &object.kind,
                object.namespace.as_deref(),
                Some(&object.name),
                action,
                dry_run,
                facts,
            )
            .await?;
        let api = match Self::api(&client, &ar, namespaced, object.namespace.as_deref()) {
            Ok(api) => api,
            Err(e) => return self.fail(approved, e),
        };
        Ok((alias, ar, api, approved))
    }
}

impl Host for View<'_> {
    async fn open_cluster(&mut self, alias: String) -> HostResult<Resource<ClusterHandle>> {
        let approved = self
            .authorize(Action::K8sOpen, ResourceRef::Cluster { alias: alias.clone() }, false)
            .await?;
        let result = self.env.clients.kube(&self.env.config, &alias).await;
        let client = self.finish(approved, result)?;
        Ok(self.table.push(ClusterHandle { alias, client })?)
    }
}

impl HostCluster for View<'_> {
    async fn alias(&mut self, h: Resource<ClusterHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&h)?.alias.clone())
    }

    async fn get(&mut self, h: Resource<ClusterHandle>, object: ObjectRef) -> HostResult<String> {
        let (alias, ar, api, approved) = self
            .prepare_object(&h, &object, Action::K8sGet, false, Facts::default())
            .await?;
        let target = crate::audit::describe(&approved.resource);
        let book = self.env.plan_book.clone();
        let result = async {
            let found = api.get(&names::path_segment(&object.name)).await;
            if let Some(book) = &book {
                let read = |resource_version: Option<String>| crate::plan::Read {
                    target: target.clone(),
                    query: crate::plan::Query {
                        cluster: alias.clone(),
                        api_version: object.api_version.clone(),
                        kind: object.kind.clone(),
                        namespace: object.namespace.clone(),
                        name: Some(object.name.clone()),
                        label_selector: None,
                        field_selector: None,
                    },
                    resource_version,
                    items: None,
                };
                match &found {
                    Ok(obj) => book.read(read(Some(obj.metadata.resource_version.clone().unwrap_or_default()))),
                    Err(kube::Error::Api(s)) if s.code == 404 => book.read(read(None)),
                    Err(_) => {}
                }
            }
            let obj = found.map_err(|e| map_kube_error(e, &alias, &format!("get {} {}", ar.kind, object.name)))?;
            to_json(&obj)
        }
        .await;
        self.finish(approved, result)
    }

    async fn list_objects(
        &mut self,
        h: Resource<ClusterHandle>,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        options: ListOptions,
    ) -> HostResult<Vec<String>> {
        let (alias, client) = self.cluster(&h)?;
        let (ar, namespaced, approved) = self
            .decide_and_resolve(
                &alias,
                &client,
                &api_version,
                &kind,
                namespace.as_deref(),
                None,
                Action::K8sList,
                false,
                Facts::default(),
            )
            .await?;
        let max_bytes = self.env.config.limits.max_list_bytes;
        let target = crate::audit::describe(&approved.resource);
        let book = self.env.plan_book.clone();
        let mut items = std::collections::BTreeMap::new();
        let result = async {
            let api = provider::scoped_api(client.clone(), &ar, namespaced, namespace.as_deref());
            let selectors = (options.label_selector.as_deref(), options.field_selector.as_deref());
            let mut out = Vec::new();
            let mut bytes: u64 = 0;
            provider::list_each(&api, &ar, &alias, selectors, |item| {
                if let Some(n) = &item.metadata.name {
                    items.insert(n.clone(), item.metadata.resource_version.clone().unwrap_or_default());
                }
                let mut v = serde_json::to_value(item).map_err(|e| HostError::Other(e.to_string()))?;
                // Items of a list carry no apiVersion/kind; put them back so
                // every object the guest sees is self-describing.
                if let Some(o) = v.as_object_mut() {
                    o.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
                    o.insert("kind".into(), Value::String(ar.kind.clone()));
                }
                let text = v.to_string();
                bytes += text.len() as u64;
                if bytes > max_bytes {
                    return Err(HostError::Invalid(format!(
                        "listing {} on `{alias}` returns more than [limits] max_list_bytes ({max_bytes} bytes); \
                         narrow it with a namespace or a label selector, or raise the limit",
                        ar.plural
                    )));
                }
                out.push(text);
                Ok(())
            })
            .await?;
            Ok(out)
        }
        .await;
        if let (Some(book), Ok(_)) = (&book, &result) {
            book.read(crate::plan::Read {
                target,
                query: crate::plan::Query {
                    cluster: alias.clone(),
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    namespace: namespace.clone(),
                    name: None,
                    label_selector: options.label_selector.clone(),
                    field_selector: options.field_selector.clone(),
                },
                resource_version: None,
                items: Some(items),
            });
        }
        self.finish(approved, result)
    }

    async fn create(
        &mut self,
        h: Resource<ClusterHandle>,
        manifest: String,
        options: WriteOptions,
    ) -> HostResult<String> {
        self.write(h, manifest, options, Action::K8sCreate, Write::Create).await
    }

    async fn apply(
        &mut self,
        h: Resource<ClusterHandle>,
        manifest: String,
        options: WriteOptions,
    ) -> HostResult<String> {
        self.write(h, manifest, options, Action::K8sApply, Write::Apply).await
    }

    async fn replace(
        &mut self,
        h: Resource<ClusterHandle>,
        manifest: String,
        options: WriteOptions,
    ) -> HostResult<String> {
        self.write(h, manifest, options, Action::K8sReplace, Write::Replace)
            .await
    }

    async fn patch(
        &mut self,
        h: Resource<ClusterHandle>,
        object: ObjectRef,
        kind: PatchKind,
        patch: String,
        options: WriteOptions,
    ) -> HostResult<String> {
        let dry_run = self.dry_run(&options);
        // The body is read before the decision: the fields it sets are part of what is decided.
        let body: Value =
            serde_json::from_str(&patch).map_err(|e| HostError::Invalid(format!("patch is not valid JSON: {e}")))?;
        let fields = patch_fields(&kind, &body)?;
        let (alias, ar, api, approved) = self
            .prepare_object(
                &h,
                &object,
                Action::K8sPatch,
                dry_run,
                Facts {
                    patch_fields: Some(fields),
                    change: Change::new(format!("{} patch", patch_kind_name(&kind)), patch.clone()),
                    ..Facts::default()
                },
            )
            .await?;
        let result = async {
            let what = format!("patch {} {}", ar.kind, object.name);
            let mut pp = PatchParams {
                dry_run,
                field_manager: options.field_manager.clone(),
                ..Default::default()
            };
            let res = match kind {
                PatchKind::Merge => {
                    api.patch(&names::path_segment(&object.name), &pp, &Patch::Merge(&body))
                        .await
                }
                PatchKind::Json => {
                    let ops: json_patch::Patch = serde_json::from_value(body)
                        .map_err(|e| HostError::Invalid(format!("not a JSON patch (RFC 6902): {e}")))?;
                    match api
                        .patch(&names::path_segment(&object.name), &pp, &Patch::<()>::Json(ops))
                        .await
                    {
                        // A JSON patch whose `test` fails is a precondition
                        // failure: the object is not in the expected state.
                        Err(kube::Error::Api(s)) if s.code == 422 => {
                            return Err(HostError::Conflict(format!(
                                "{what} on cluster `{alias}`: {}",
                                s.message
                            )));
                        }
                        other => other,
                    }
                }
                PatchKind::Apply => {
                    pp.field_manager = Some(
                        options
                            .field_manager
                            .clone()
                            .unwrap_or_else(|| DEFAULT_FIELD_MANAGER.into()),
                    );
                    pp.force = true;
                    api.patch(&names::path_segment(&object.name), &pp, &Patch::Apply(&body))
                        .await
                }
            };
            res.map_err(|e| map_kube_error(e, &alias, &what))
                .and_then(|o| to_json(&o))
        }
        .await;
        self.finish(approved, result)
    }

    async fn delete(
        &mut self,
        h: Resource<ClusterHandle>,
        object: ObjectRef,
        propagation: Option<Propagation>,
        options: WriteOptions,
    ) -> HostResult<DeleteOutcome> {
        let dry_run = self.dry_run(&options);
        let how = match propagation {
            Some(Propagation::Background) => "delete (background propagation)",
            Some(Propagation::Foreground) => "delete (foreground propagation)",
            Some(Propagation::Orphan) => "delete (orphaning dependents)",
            None => "delete",
        };
        let facts = Facts {
            change: Change::new(how, how),
            ..Facts::default()
        };
        let (alias, ar, api, approved) = self
            .prepare_object(&h, &object, Action::K8sDelete, dry_run, facts)
            .await?;
        let result = async {
            let dp = DeleteParams {
                dry_run,
                propagation_policy: propagation.map(|p| match p {
                    Propagation::Background => PropagationPolicy::Background,
                    Propagation::Foreground => PropagationPolicy::Foreground,
                    Propagation::Orphan => PropagationPolicy::Orphan,
                }),
                ..Default::default()
            };
            match api.delete(&names::path_segment(&object.name), &dp).await {
                Ok(either) => Ok(match either {
                    // The server answered with the object: it is gone unless it
                    // still carries finalizers and a deletion timestamp.
                    either::Either::Left(obj) => {
                        let waiting = obj.metadata.deletion_timestamp.is_some()
                            && obj.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty());
                        if waiting {
                            DeleteOutcome::Pending
                        } else {
                            DeleteOutcome::Deleted
                        }
                    }
                    either::Either::Right(_) => DeleteOutcome::Deleted,
                }),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(DeleteOutcome::Absent),
                Err(e) => Err(map_kube_error(
                    e,
                    &alias,
                    &format!("delete {} {}", ar.kind, object.name),
                )),
            }
        }
        .await;
        self.finish(approved, result)
    }

    async fn scale(
        &mut self,
        h: Resource<ClusterHandle>,
        object: ObjectRef,
        replicas: u32,
        options: WriteOptions,
    ) -> HostResult<u32> {
        let dry_run = self.dry_run(&options);
        let how = format!("scale to {replicas} replicas");
        let facts = Facts {
            change: Change::new(how.clone(), how),
            ..Facts::default()
        };
        let (alias, ar, api, approved) = self
            .prepare_object(&h, &object, Action::K8sScale, dry_run, facts)
            .await?;
        let result = async {
            let what = format!("scale {} {}", ar.kind, object.name);
            let before = api
                .get_scale(&names::path_segment(&object.name))
                .await
                .map_err(|e| map_kube_error(e, &alias, &what))?;
            let previous = before.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
            let pp = PatchParams {
                dry_run,
                ..Default::default()
            };
            let body = serde_json::json!({ "spec": { "replicas": replicas } });
            api.patch_scale(&names::path_segment(&object.name), &pp, &Patch::Merge(&body))
                .await
                .map_err(|e| map_kube_error(e, &alias, &what))?;
            Ok(previous)
        }
        .await;
        self.finish(approved, result)
    }

    async fn preferred_version(
        &mut self,
        h: Resource<ClusterHandle>,
        group: String,
        kind: String,
    ) -> HostResult<String> {
        let (alias, client) = self.cluster(&h)?;
        names::check_group(&group)?;
        names::check_kind(&kind)?;
        // Discovery comes with an open cluster (every call resolves its kind this way).
        let approved = self
            .authorize(Action::K8sOpen, ResourceRef::Cluster { alias: alias.clone() }, false)
            .await?;
        let result = async {
            let what = format!("discovering {kind} in group `{group}`");
            let g = kube::discovery::group(&client, &group).await.map_err(|e| match e {
                kube::Error::Discovery(d) => {
                    HostError::NotFound(format!("cluster `{alias}` does not serve group `{group}`: {d}"))
                }
                other => map_kube_error(other, &alias, &what),
            })?;
            g.recommended_kind(&kind)
                .map(|(ar, _)| ar.version)
                .ok_or_else(|| HostError::NotFound(format!("cluster `{alias}` serves no {kind} in group `{group}`")))
        }
        .await;
        self.finish(approved, result)
    }

    async fn owned_names(
        &mut self,
        h: Resource<ClusterHandle>,
        group: String,
        kind: String,
        namespace: String,
    ) -> wasmtime::Result<Vec<String>> {
        let alias = self.table.get(&h)?.alias.clone();
        Ok(self.env.policy.ownership().names(&alias, &group, &kind, &namespace))
    }

    async fn namespaced_kinds(&mut self, h: Resource<ClusterHandle>) -> HostResult<Vec<ServedKind>> {
        let (alias, client) = self.cluster(&h)?;
        let approved = self
            .authorize(Action::K8sOpen, ResourceRef::Cluster { alias: alias.clone() }, false)
            .await?;
        let result = async {
            let discovery = kube::Discovery::new(client)
                .run()
                .await
                .map_err(|e| map_kube_error(e, &alias, "discovering the kinds it serves"))?;
            let mut kinds: Vec<ServedKind> = discovery
                .groups()
                .flat_map(|g| g.recommended_resources())
                .filter(|(_, caps)| {
                    caps.scope == Scope::Namespaced && caps.supports_operation(kube::discovery::verbs::LIST)
                })
                .map(|(ar, _)| ServedKind {
                    api_version: ar.api_version,
                    kind: ar.kind,
                })
                .collect();
            kinds.sort_by(|a, b| (&a.api_version, &a.kind).cmp(&(&b.api_version, &b.kind)));
            kinds.dedup_by(|a, b| a.api_version == b.api_version && a.kind == b.kind);
            Ok(kinds)
        }
        .await;
        self.finish(approved, result)
    }

    async fn drop(&mut self, h: Resource<ClusterHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

/// A patch kind's name in a plan's words.
fn patch_kind_name(kind: &PatchKind) -> &'static str {
    match kind {
        PatchKind::Merge => "merge",
        PatchKind::Json => "JSON",
        PatchKind::Apply => "apply",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_split() {
        assert_eq!(split_api_version("v1"), (String::new(), "v1".into()));
        assert_eq!(
            split_api_version("hypershift.openshift.io/v1beta1"),
            ("hypershift.openshift.io".into(), "v1beta1".into())
        );
    }

    #[test]
    fn manifests_are_checked() {
        assert!(matches!(parse_manifest("not json"), Err(HostError::Invalid(_))));
        assert!(matches!(
            parse_manifest(r#"{"kind":"ConfigMap"}"#),
            Err(HostError::Invalid(_))
        ));
        assert!(matches!(
            parse_manifest(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#),
            Err(HostError::Invalid(_))
        ));
        let o = parse_manifest(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"b"}}"#)
            .expect("valid");
        assert_eq!(o.metadata.name.as_deref(), Some("a"));
    }
}
