//! Typed Kubernetes access over the host's `k8s` interface.
//!
//! Objects travel as JSON; [`Cluster`] parses them into `serde_json::Value`
//! (or any serde type with [`Cluster::get_as`]), turns `not-found` into
//! `None` and `absent`, and retries `unavailable` a few times on the host's
//! clock before giving up.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::ferry::host::k8s as wit;
use crate::{Error, ObjectRef, Result, invalid, other};

pub use wit::{DeleteOutcome, PatchKind, Propagation};

/// How often a call that failed with `unavailable` is tried in all.
pub const ATTEMPTS: u32 = 5;

/// Retries `call` while it fails with `unavailable` (up to [`ATTEMPTS`] tries,
/// backing off 200 ms, 400 ms, ... on the host's clock).
pub fn retry<T>(mut call: impl FnMut() -> Result<T>) -> Result<T> {
    let mut delay = 200;
    let mut attempt = 1;
    loop {
        match call() {
            Err(Error::Unavailable(m)) if attempt < ATTEMPTS => {
                crate::log::debug("retrying after a transient error", &[("error", &m)]);
                crate::context::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Builds an [`ObjectRef`].
pub fn obj(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    }
}

/// The [`ObjectRef`] of a manifest.
pub fn ref_of(manifest: &Value) -> Result<ObjectRef> {
    let s = |p: &str| manifest.pointer(p).and_then(Value::as_str);
    match (s("/apiVersion"), s("/kind"), s("/metadata/name")) {
        (Some(a), Some(k), Some(n)) => Ok(obj(a, k, s("/metadata/namespace"), n)),
        _ => Err(invalid("manifest lacks apiVersion, kind or metadata.name")),
    }
}

/// `kind namespace/name` for messages.
pub fn describe(r: &ObjectRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
        None => format!("{} {}", r.kind, r.name),
    }
}

/// The name of an object.
pub fn name(o: &Value) -> &str {
    o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

/// A string at a JSON pointer.
pub fn str_at<'a>(o: &'a Value, pointer: &str) -> Option<&'a str> {
    o.pointer(pointer).and_then(Value::as_str)
}

/// The status (`"True"`, `"False"`, `"Unknown"`) of condition `type_`.
pub fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// True when condition `type_` has status `True`.
pub fn condition_true(o: &Value, type_: &str) -> bool {
    condition(o, type_)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| other(format!("the host returned invalid JSON: {e}")))
}

/// An open cluster (by alias).
pub struct Cluster {
    inner: wit::Cluster,
    dry_run: bool,
}

impl Cluster {
    /// Opens the cluster the run config names `alias`.
    pub fn open(alias: &str) -> Result<Cluster> {
        let inner = retry(|| wit::open_cluster(alias)).map_err(|e| crate::context(e, format!("cluster `{alias}`")))?;
        Ok(Cluster { inner, dry_run: false })
    }

    /// Every mutation through this handle is a server-side dry run.
    pub fn dry_run(mut self, on: bool) -> Cluster {
        self.dry_run = on;
        self
    }

    /// The raw WIT handle (for calls that borrow a cluster, like `etcd`).
    pub fn handle(&self) -> &wit::Cluster {
        &self.inner
    }

    /// The alias.
    pub fn alias(&self) -> String {
        self.inner.alias()
    }

    fn opts(&self) -> wit::WriteOptions {
        wit::WriteOptions {
            dry_run: self.dry_run,
            field_manager: Some("ferry".to_string()),
        }
    }

    /// Gets an object; `None` when it does not exist.
    pub fn get(&self, r: &ObjectRef) -> Result<Option<Value>> {
        match retry(|| self.inner.get(r)) {
            Ok(text) => parse(&text).map(Some),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gets an object as a serde type; `None` when it does not exist.
    pub fn get_as<T: DeserializeOwned>(&self, r: &ObjectRef) -> Result<Option<T>> {
        match self.get(r)? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| invalid(format!("{} does not have the expected shape: {e}", describe(r)))),
        }
    }

    /// Gets an object that must exist.
    pub fn must_get(&self, r: &ObjectRef) -> Result<Value> {
        self.get(r)?
            .ok_or_else(|| Error::NotFound(format!("{} does not exist on cluster `{}`", describe(r), self.alias())))
    }

    /// Lists objects of a kind (all pages), optionally in one namespace and
    /// with a label selector.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Vec<Value>> {
        let opts = wit::ListOptions {
            label_selector: labels.map(str::to_string),
            field_selector: None,
        };
        let items = retry(|| self.inner.list_objects(api_version, kind, namespace, &opts))?;
        items.iter().map(|t| parse(t)).collect()
    }

    /// Server-side applies a manifest (forced, field manager `ferry`).
    pub fn apply(&self, manifest: &Value) -> Result<Value> {
        let text = manifest.to_string();
        parse(&retry(|| self.inner.apply(&text, &self.opts()))?)
    }

    /// Creates an object; `Ok(None)` if it exists already.
    pub fn create(&self, manifest: &Value) -> Result<Option<Value>> {
        let text = manifest.to_string();
        match retry(|| self.inner.create(&text, &self.opts())) {
            Ok(t) => parse(&t).map(Some),
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// JSON-merge-patches an object; `None` when it does not exist.
    pub fn merge_patch(&self, r: &ObjectRef, patch: &Value) -> Result<Option<Value>> {
        let text = patch.to_string();
        match retry(|| self.inner.patch(r, PatchKind::Merge, &text, &self.opts())) {
            Ok(t) => parse(&t).map(Some),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes every finalizer of an object (a merge patch, so it also works
    /// when there are none). `false` when the object does not exist.
    pub fn clear_finalizers(&self, r: &ObjectRef) -> Result<bool> {
        Ok(self
            .merge_patch(r, &serde_json::json!({"metadata": {"finalizers": null}}))?
            .is_some())
    }

    /// Deletes an object (background propagation).
    pub fn delete(&self, r: &ObjectRef) -> Result<DeleteOutcome> {
        retry(|| self.inner.delete(r, Some(Propagation::Background), &self.opts()))
    }

    /// Sets replicas through the scale subresource; returns the previous count.
    pub fn scale(&self, r: &ObjectRef, replicas: u32) -> Result<u32> {
        retry(|| self.inner.scale(r, replicas, &self.opts()))
    }

    /// The `apiVersion` (`group/version`) in which this cluster serves `kind` of `group`, the
    /// version its discovery prefers: how to address kinds whose served versions change across
    /// releases (Cluster API `v1beta1` → `v1beta2`).
    pub fn api_version(&self, group: &str, kind: &str) -> Result<String> {
        let version = retry(|| self.inner.preferred_version(group, kind))?;
        Ok(if group.is_empty() {
            version
        } else {
            format!("{group}/{version}")
        })
    }

    /// Every namespaced kind this cluster serves and can list, as (`apiVersion`, `kind`):
    /// the only honest basis for "nothing else lives in this namespace".
    pub fn namespaced_kinds(&self) -> Result<Vec<(String, String)>> {
        let kinds = retry(|| self.inner.namespaced_kinds())?;
        Ok(kinds.into_iter().map(|k| (k.api_version, k.kind)).collect())
    }

    /// The objects of `kind` (`apiVersion`, `kind`) in `namespace` that the runner assigned
    /// to this run's owner, each read by name (and decided); absent ones are left out. For
    /// namespaces shared with others, where a policy grants only the owner's objects and
    /// listing the kind is denied.
    pub fn owned(&self, api_version: &str, kind: &str, namespace: &str) -> Result<Vec<Value>> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let mut out = Vec::new();
        for name in self.inner.owned_names(group, kind, namespace) {
            let r = crate::ObjectRef {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace: Some(namespace.to_string()),
                name,
            };
            if let Some(o) = self.get(&r)? {
                out.push(o);
            }
        }
        Ok(out)
    }
}
