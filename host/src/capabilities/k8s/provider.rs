//! The kube side of the k8s capability: manifests in, objects out, and the API server's
//! errors as the guest sees them.

use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::capabilities::{HostError, HostResult};

/// Splits `group/version` (or `v1`) into its parts.
pub(crate) fn split_api_version(api_version: &str) -> (String, String) {
    match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    }
}

/// How many objects a list asks the server for per page.
const PAGE_SIZE: u32 = 500;

/// The API of `ar` a list (or a host-side read) goes to: in `namespace` when the kind is
/// namespaced and one is given, else across the cluster.
pub(crate) fn scoped_api(
    client: kube::Client,
    ar: &ApiResource,
    namespaced: bool,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) if namespaced => Api::namespaced_with(client, ns, ar),
        _ => Api::all_with(client, ar),
    }
}

/// Lists `ar` page by page (following `continue`), with the selectors given, and calls `each`
/// with every item; the first error, the server's or `each`'s, ends it.
pub(crate) async fn list_each(
    api: &Api<DynamicObject>,
    ar: &ApiResource,
    alias: &str,
    selectors: (Option<&str>, Option<&str>),
    mut each: impl FnMut(&DynamicObject) -> HostResult<()>,
) -> HostResult<()> {
    let mut params = ListParams::default().limit(PAGE_SIZE);
    if let Some(l) = selectors.0 {
        params = params.labels(l);
    }
    if let Some(f) = selectors.1 {
        params = params.fields(f);
    }
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| map_kube_error(e, alias, &format!("list {}", ar.plural)))?;
        for item in &page.items {
            each(item)?;
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(()),
        }
    }
}

/// Whether a kube-rs error is worth retrying as it is: throttling (429), a server error
/// (5xx), or a connection that failed or closed before the answer. The guest sees these as
/// `unavailable`; host-side callers (the lease) retry them themselves.
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => matches!(status.code, 429 | 500..=599),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => true,
        _ => false,
    }
}

/// A kube-rs error in one line: an API status as its message, reason and code, never the
/// whole `Status` structure.
pub fn describe_kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({}, HTTP {})", status.message, status.reason, status.code),
        other => other.to_string(),
    }
}

/// Maps a kube-rs error to what the guest sees, naming the cluster and object.
pub(crate) fn map_kube_error(e: kube::Error, alias: &str, what: &str) -> HostError {
    if let Some(why) = credential_failure(&e) {
        return credentials_refused(alias, what, why);
    }
    let transient = is_transient(&e);
    match e {
        kube::Error::Api(status) => {
            let msg = format!("{what} on cluster `{alias}`: {} ({})", status.message, status.reason);
            match status.code {
                404 => HostError::NotFound(msg),
                409 | 410 => HostError::Conflict(msg),
                400 | 403 | 405 | 415 | 422 => HostError::Invalid(msg),
                _ if transient => HostError::Unavailable(msg),
                _ => HostError::Other(msg),
            }
        }
        e if transient => HostError::Unavailable(format!(
            "cluster `{alias}` is unreachable ({what}): {e}; check that its API server is up and the kubeconfig in the run config points at it"
        )),
        kube::Error::SerdeError(e) => HostError::Invalid(format!("{what} on cluster `{alias}`: bad JSON: {e}")),
        other => HostError::Other(format!("{what} on cluster `{alias}`: {other}")),
    }
}

/// The error for a cluster whose credentials failed: what failed and how to see why, never
/// the failure's own text.
pub(crate) fn credentials_refused(alias: &str, what: &str, why: &str) -> HostError {
    HostError::Unavailable(format!(
        "cluster `{alias}` ({what}): {why}. Its output is not shown, since it can hold credentials: \
         run `kubectl --kubeconfig <the kubeconfig of [clusters.{alias}]> get namespaces` to see it"
    ))
}

/// What went wrong with a cluster's credentials, in words that carry none of them, when `e`
/// (or an error inside it: auth runs in the client's service stack) is an authentication
/// failure. kube-rs's own message quotes the exec plugin's command line with its
/// environment, and the plugin's stdout and stderr, where tokens often are.
pub(crate) fn credential_failure(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use kube::client::AuthError as A;
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(auth) = c.downcast_ref::<A>() {
            return Some(match auth {
                A::AuthExecStart(_)
                | A::AuthExecRun { .. }
                | A::AuthExec(_)
                | A::AuthExecParse(_)
                | A::ExecPluginFailed
                | A::MissingCommand => "the kubeconfig's credential plugin (exec) failed",
                _ => "the kubeconfig's credentials could not be used",
            });
        }
        cause = c.source();
    }
    None
}

pub(crate) fn parse_manifest(manifest: &str) -> HostResult<DynamicObject> {
    let value: Value =
        serde_json::from_str(manifest).map_err(|e| HostError::Invalid(format!("manifest is not valid JSON: {e}")))?;
    if value.get("apiVersion").and_then(Value::as_str).is_none() || value.get("kind").and_then(Value::as_str).is_none()
    {
        return Err(HostError::Invalid("manifest needs apiVersion and kind".into()));
    }
    if value.pointer("/metadata/name").and_then(Value::as_str).is_none() {
        return Err(HostError::Invalid("manifest needs metadata.name".into()));
    }
    serde_json::from_value(value).map_err(|e| HostError::Invalid(format!("manifest is not a Kubernetes object: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> HostResult<String> {
    serde_json::to_string(v).map_err(|e| HostError::Other(format!("cannot encode object: {e}")))
}

/// The field manager used when the guest names none.
pub const DEFAULT_FIELD_MANAGER: &str = "ferry";

/// How a whole manifest is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Write {
    /// `POST`: fails with `conflict` when the object exists.
    Create,
    /// Server-side apply, forced.
    Apply,
    /// `PUT`: with a `resourceVersion`, fails with `conflict` when the object changed.
    Replace,
}

/// Writes `obj` (named `name`) through `api`; `manager` is the field manager (`ferry` for an
/// apply without one). Returns the object as stored, as JSON.
pub(crate) async fn write(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
    name: &str,
    how: Write,
    dry_run: bool,
    manager: Option<String>,
    alias: &str,
) -> HostResult<String> {
    let post = PostParams {
        dry_run,
        field_manager: manager.clone(),
    };
    let written = match how {
        Write::Create => api.create(&post, obj).await,
        Write::Replace => api.replace(name, &post, obj).await,
        Write::Apply => {
            let mut pp = PatchParams::apply(manager.as_deref().unwrap_or(DEFAULT_FIELD_MANAGER)).force();
            pp.dry_run = dry_run;
            api.patch(name, &pp, &Patch::Apply(obj)).await
        }
    };
    let verb = match how {
        Write::Create => "create",
        Write::Apply => "apply",
        Write::Replace => "replace",
    };
    written
        .map_err(|e| map_kube_error(e, alias, &format!("{verb} {name}")))
        .and_then(|o| to_json(&o))
}
