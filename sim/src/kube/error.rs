//! Typed API errors that serialize to the `meta.k8s.io/v1` `Status` bodies of a real apiserver.
//!
//! kube-rs parses any non-2xx body into `kube::Error::Api(ErrorResponse)` by reading `status`,
//! `message`, `reason` and `code`, and kubectl prints `message` verbatim, so the wording below
//! follows `k8s.io/apimachinery/pkg/api/errors` closely (for example `configmaps "x" not found`,
//! `deployments.apps "x" already exists`).

use serde_json::{Value, json};

use super::field::{self, Cause};
use super::registry::KindInfo;

/// The machine-readable `reason` of a failed request, with its HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 400: the request itself is malformed.
    BadRequest,
    /// 403: the request is understood but refused (for example a terminating namespace).
    Forbidden,
    /// 404: the object, its namespace or the resource type does not exist.
    NotFound,
    /// 405: the resource does not support the verb.
    MethodNotAllowed,
    /// 406: the `Accept` header asks only for an encoding the simulator cannot produce.
    NotAcceptable,
    /// 409: create of an existing name.
    AlreadyExists,
    /// 409: resourceVersion precondition failed.
    Conflict,
    /// 410: a continue token refers to data that is gone.
    Gone,
    /// 410: a watch or list `resourceVersion` is older than the event history.
    Expired,
    /// 415: unknown request body media type (for example strategic merge on a custom resource).
    UnsupportedMediaType,
    /// 422: the object failed validation.
    Invalid,
    /// 500: a bug in the simulator; never expected.
    InternalError,
    /// 500 with an empty `reason` (`StatusReasonUnknown`): what `ErrorToAPIStatus` makes of an
    /// error nothing typed, such as a failed conversion webhook call.
    Unknown,
    /// 503: the server cannot answer now (a hosted cluster's API whose control plane is down).
    ServiceUnavailable,
}

impl Reason {
    /// The `reason` string of the `Status` body.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::InternalError => "InternalError",
            Reason::Unknown => "",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status code that goes with the reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Gone | Reason::Expired => 410,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::InternalError | Reason::Unknown => 500,
            Reason::ServiceUnavailable => 503,
        }
    }
}

/// `details` of a `Status`: which object the error is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// Object name, when known.
    pub name: Option<String>,
    /// API group (omitted for the core group).
    pub group: Option<String>,
    /// Resource plural for most reasons, kind for `Invalid` (as the real server does).
    pub kind: Option<String>,
    /// Field-level causes.
    pub causes: Vec<Cause>,
}

/// An error that the API layer returns to the client as a `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason:?}: {message}")]
pub struct ApiError {
    /// Why the request failed.
    pub reason: Reason,
    /// Human-readable message (kubectl prints it after `Error from server (Reason):`).
    pub message: String,
    /// Object identification and causes (boxed to keep `Result<_, ApiError>` small).
    pub details: Box<Details>,
}

/// `configmaps` for the core group, `deployments.apps` otherwise: the "qualified resource"
/// the real server puts in messages.
fn qualified(kind: &KindInfo) -> String {
    kind.qualified_resource()
}

fn resource_details(kind: &KindInfo, name: &str) -> Box<Details> {
    Box::new(Details {
        name: Some(name.to_string()),
        group: (!kind.group.is_empty()).then(|| kind.group.to_string()),
        kind: Some(kind.plural.to_string()),
        causes: Vec::new(),
    })
}

impl ApiError {
    /// A bare error with no details.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            details: Box::default(),
        }
    }

    /// HTTP status code.
    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// 404 for an object: `configmaps "x" not found`.
    pub fn not_found(kind: &KindInfo, name: &str) -> Self {
        ApiError {
            reason: Reason::NotFound,
            message: format!("{} \"{}\" not found", qualified(kind), name),
            details: resource_details(kind, name),
        }
    }

    /// 404 for a namespace that a namespaced request refers to.
    pub fn namespace_not_found(namespace: &str) -> Self {
        ApiError {
            reason: Reason::NotFound,
            message: format!("namespaces \"{namespace}\" not found"),
            details: Box::new(Details {
                name: Some(namespace.to_string()),
                group: None,
                kind: Some("namespaces".to_string()),
                causes: Vec::new(),
            }),
        }
    }

    /// 404 for a URL that names no known resource.
    pub fn unknown_resource() -> Self {
        Self::new(Reason::NotFound, "the server could not find the requested resource")
    }

    /// 409 AlreadyExists.
    pub fn already_exists(kind: &KindInfo, name: &str) -> Self {
        ApiError {
            reason: Reason::AlreadyExists,
            message: format!("{} \"{}\" already exists", qualified(kind), name),
            details: resource_details(kind, name),
        }
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict(kind: &KindInfo, name: &str) -> Self {
        Self::conflict_msg(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict with a custom tail, e.g. for a failed uid precondition.
    pub fn conflict_msg(kind: &KindInfo, name: &str, why: &str) -> Self {
        ApiError {
            reason: Reason::Conflict,
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                qualified(kind),
                name,
                why
            ),
            details: resource_details(kind, name),
        }
    }

    /// 422 Invalid with one cause per field error, worded as `errors.NewInvalid` words it:
    /// `Kind.group "name" is invalid: <errors>` (one error bare, several in brackets).
    pub fn invalid(kind: &KindInfo, name: &str, causes: Vec<Cause>) -> Self {
        Self::invalid_group_kind(&kind.group, &kind.kind, name, causes)
    }

    /// [`ApiError::invalid`] for a group and kind given as strings (`""`, `""` for the
    /// options errors upstream reports against an empty GroupKind).
    pub fn invalid_group_kind(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let message = if causes.is_empty() {
            format!("{gk} {} is invalid", field::go_quote(name))
        } else {
            format!(
                "{gk} {} is invalid: {}",
                field::go_quote(name),
                field::aggregate(&causes)
            )
        };
        ApiError {
            reason: Reason::Invalid,
            message,
            details: Box::new(Details {
                name: (!name.is_empty()).then(|| name.to_string()),
                group: (!group.is_empty()).then(|| group.to_string()),
                kind: (!kind.is_empty()).then(|| kind.to_string()),
                causes,
            }),
        }
    }

    /// 422 Invalid with a single message and no field (used for failed JSON-patch tests).
    pub fn invalid_plain(message: impl Into<String>) -> Self {
        Self::new(Reason::Invalid, message)
    }

    /// 403 Forbidden for creating content in a terminating namespace.
    pub fn namespace_terminating(kind: &KindInfo, name: &str, namespace: &str) -> Self {
        let mut details = resource_details(kind, name);
        details.causes.push(Cause {
            reason: "NamespaceTerminating".into(),
            message: format!("namespace {namespace} is being terminated"),
            field: "metadata.namespace".into(),
        });
        ApiError {
            reason: Reason::Forbidden,
            message: format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                qualified(kind),
                name,
                namespace
            ),
            details,
        }
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )
    }

    /// 415 for a body media type the endpoint does not accept; `accepted` lists the ones it does.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 410 Expired: a watch from a resourceVersion older than the kept history.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            Reason::Expired,
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 500 for states that should be impossible; never panics instead.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    /// The `Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.details.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.details.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.details.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.details.causes.is_empty() {
            let causes: Vec<Value> = self
                .details
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code(),
        });
        if let Some(map) = status.as_object_mut() {
            if self.reason == Reason::Unknown {
                // StatusReasonUnknown is the empty string, which `omitempty` leaves out.
                map.remove("reason");
            }
            if !details.is_empty() {
                map.insert("details".into(), Value::Object(details));
            }
        }
        status
    }
}

/// Errors of starting or running the simulator itself (not API errors).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or serving the listener failed.
    #[error("cannot bind the API listener on {addr}: {source}")]
    Bind {
        /// The address that was requested.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the kubeconfig file failed.
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Target path.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An API error raised while seeding the store at start-up.
    #[error("seeding the store failed: {0}")]
    Seed(#[from] ApiError),
    /// The CRDs to serve could not be loaded.
    #[error(transparent)]
    Crds(#[from] super::crd::CrdLoadError),
    /// A CRD was refused when installed at start-up.
    #[error("{origin}: the CustomResourceDefinition was refused: {source}")]
    Crd {
        /// The file (or cluster) it came from.
        origin: String,
        /// The API server's answer.
        #[source]
        source: ApiError,
    },
}
