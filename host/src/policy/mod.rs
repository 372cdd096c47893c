//! Deny-by-default Cedar policies for guests.
//!
//! Every host call a guest makes is turned into one Cedar request and checked
//! here before any I/O:
//!
//! * principal: `Ferry::Guest::"<name>"` (attributes `name`, `sha256`);
//! * action: one [`Action`], e.g. `Ferry::Action::"k8s:get"`;
//! * resource: an entity the host builds from the call's arguments
//!   ([`ResourceRef`]), with its parent chain (namespace, prefix, directory);
//!   never from entity data a guest supplies;
//! * context: `{ plan, dryRun, phase, patchFields?, presignSeconds? }` from [`CallContext`].
//!
//! The schema is `policies/ferry.cedarschema` (see its header for the entity
//! model). A policy file is Cedar text; policies are named by `@id("...")`,
//! and templates are linked per run from parameters through `@link(...)`:
//!
//! ```cedar
//! @id("hc-namespaces")
//! @link("resource=Ferry::Namespace::\"{source}/{hc_namespace}\"; resource=Ferry::Namespace::\"{source}/{hcp_namespace}\"")
//! permit (principal == ?principal, action in Ferry::Action::"k8s:read", resource in ?resource);
//! ```
//!
//! Each `;`-separated entry is one link; an entry sets `resource=` and/or
//! `principal=` (comma-separated); an unset `?principal` is the running
//! guest. `{param}` is replaced by the run parameter (`{{`/`}}` for braces);
//! `hcp_namespace` is derived from `hc_namespace` and `hc_name` when not
//! given. Links are named `<template id>#<n>`, 1-based.
//!
//! Loading parses, links and validates strictly, and fails closed on any
//! problem. Each action gets the subset of policies whose scope can match it
//! once, at load, and calls are decided off the guest's fiber ([`desk`]):
//! a whole policy-checked host call costs about what Cedar alone costs on the
//! whole set (P2 in `BENCHMARKS.md`), far below the I/O it guards.

pub mod desk;
mod entities;
mod explain;
mod load;
mod ownership;
pub mod rbac;
pub mod request;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression,
};

pub use entities::{WORKSPACE_ID, strip_interface_version};
pub use load::hcp_namespace;
pub use ownership::{OwnedObject, Ownership};

/// The Cedar schema every policy is validated against, compiled in.
const SCHEMA_SRC: &str = include_str!("../../../policies/ferry.cedarschema");

/// Who is running: the guest's configured name and the SHA-256 (hex) of its
/// component bytes. Becomes the principal `Ferry::Guest::"<name>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestIdentity {
    /// The guest's name from the run config.
    pub name: String,
    /// SHA-256 of the component, lower-case hex.
    pub sha256: String,
}

/// Defines [`Action`] from one table: variant, schema name, whether it is in the `mutating`
/// group. The names follow the WIT interfaces (`objects:*`, `workspace:*`).
macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $mutating:literal;)*) => {
        /// A host capability call, one per schema action (`Display` gives the
        /// schema name, e.g. `k8s:get`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($(#[$doc])* $variant,)*
        }

        impl Action {
            /// Every action, in schema order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The schema's action name, e.g. `k8s:get`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            /// True for actions in the schema's `mutating` group.
            pub fn is_mutating(self) -> bool {
                match self {
                    $(Action::$variant => $mutating,)*
                }
            }
        }
    };
}

actions! {
    /// Load time: import a `ferry:host` interface (resource: Interface).
    Import => "import", false;
    /// Open a cluster by alias (resource: Cluster).
    K8sOpen => "k8s:open", false;
    /// Get one object.
    K8sGet => "k8s:get", false;
    /// List objects of a kind (name "" in the resource).
    K8sList => "k8s:list", false;
    /// Create an object.
    K8sCreate => "k8s:create", true;
    /// Server-side apply an object.
    K8sApply => "k8s:apply", true;
    /// Replace an object.
    K8sReplace => "k8s:replace", true;
    /// Patch an object.
    K8sPatch => "k8s:patch", true;
    /// Delete an object.
    K8sDelete => "k8s:delete", true;
    /// Scale an object through its scale subresource.
    K8sScale => "k8s:scale", true;
    /// Open a bucket (resource: Bucket).
    ObjectsOpen => "objects:open", false;
    /// Read an object.
    ObjectsGet => "objects:get", false;
    /// Read an object's metadata.
    ObjectsHead => "objects:head", false;
    /// Write an object.
    ObjectsPut => "objects:put", true;
    /// Delete an object.
    ObjectsDelete => "objects:delete", true;
    /// Presign a GET URL for an object.
    ObjectsPresign => "objects:presign", false;
    /// List objects under a prefix (resource: S3Prefix, or Bucket for "").
    ObjectsList => "objects:list", false;
    /// Stream an etcd snapshot into an object.
    ObjectsSnapshotUpload => "objects:snapshot-upload", true;
    /// Open a hosted zone (resource: Zone).
    DnsOpen => "dns:open", false;
    /// List a zone's record sets (resource: Zone).
    DnsList => "dns:list", false;
    /// Change one record set (checked once per change of a batch).
    DnsChange => "dns:change", true;
    /// Take a snapshot of an etcd member.
    EtcdSnapshot => "etcd:snapshot", true;
    /// Ask an etcd member which cluster it is in (member list and ids).
    EtcdMemberStatus => "etcd:member-status", false;
    /// Read a workspace file.
    WorkspaceRead => "workspace:read", false;
    /// Write a workspace file.
    WorkspaceWrite => "workspace:write", true;
    /// List a workspace directory.
    WorkspaceList => "workspace:list", false;
}

/// Action names policies written before the names followed the WIT interfaces use:
/// (old prefix, new prefix). Loading rewrites them and warns.
pub const DEPRECATED_ACTION_PREFIXES: &[(&str, &str)] = &[("s3:", "objects:"), ("fs:", "workspace:")];

impl Action {
    /// The action with schema name `name` (groups such as `k8s:read` are not actions).
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a call acts on, as the host knows it from the call's arguments. The
/// policy layer derives the Cedar entity and its parents from this alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceRef {
    /// A `ferry:host` interface; a version suffix (`@0.1.0`) is ignored.
    Interface {
        /// e.g. `ferry:host/k8s`.
        name: String,
    },
    /// A Kubernetes cluster alias (for `k8s:open`).
    Cluster {
        /// The alias from the run config.
        alias: String,
    },
    /// A Kubernetes object, or a collection when `name` is `None`.
    K8s {
        /// The cluster alias.
        cluster: String,
        /// API group, `""` for the core group.
        group: String,
        /// API version, e.g. `v1`.
        version: String,
        /// Kind, e.g. `HostedCluster`.
        kind: String,
        /// Namespace; `None` for cluster-scoped kinds and all-namespace lists.
        namespace: Option<String>,
        /// Name; `None` for list/collection operations.
        name: Option<String>,
    },
    /// A bucket (for `objects:open`, or `objects:list` of the whole bucket).
    Bucket {
        /// Bucket name.
        bucket: String,
    },
    /// One object.
    S3Object {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// A listing prefix (for `objects:list`); checked on the directory part of
    /// the prefix, see the schema header.
    S3Prefix {
        /// Bucket name.
        bucket: String,
        /// The prefix as passed to the listing.
        prefix: String,
    },
    /// A Route53 hosted zone.
    Zone {
        /// Zone id, with or without `/hostedzone/`.
        zone: String,
    },
    /// One record set of a change batch.
    RecordSet {
        /// Zone id.
        zone: String,
        /// Record name (normalised: lower case, no trailing dot, escapes decoded).
        name: String,
        /// Record type, e.g. `A`.
        rtype: String,
    },
    /// An etcd member: either a pod (cluster/namespace/pod, endpoint "") or
    /// a configured endpoint alias (endpoint set, the others "").
    EtcdMember {
        /// Cluster alias of the pod.
        cluster: String,
        /// Namespace of the pod.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Endpoint alias from the run config.
        endpoint: String,
    },
    /// A workspace path, relative (`""` is the root for `workspace:list`).
    Path {
        /// The path as the guest passed it.
        path: String,
    },
}

/// Per-call facts the policy may look at (`context` in Cedar).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The run is a plan: nothing may really change.
    pub plan: bool,
    /// This particular call is a server-side dry-run.
    pub dry_run: bool,
    /// The phase the guest runs, e.g. `backup`.
    pub phase: String,
    /// For `k8s:patch`, the fields the patch sets, as the host read them from its body
    /// (`metadata.annotations`, `spec.replicas`): a policy can then allow a patch of an
    /// object's annotations without allowing one of its image. `None` for other calls.
    pub patch_fields: Option<Vec<String>>,
    /// For `objects:presign`, the lifetime asked for, in seconds: a policy can cap how long
    /// a bearer URL for an object lives. `None` for other calls.
    pub presign_seconds: Option<u64>,
}

/// The answer for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may proceed.
    pub allowed: bool,
    /// Ids of the policies that decided: the permits that matched when
    /// allowed; the forbids that matched when denied (empty = default deny).
    pub policies: Vec<String>,
    /// Problems met while deciding (invalid arguments, policy evaluation
    /// errors). Any of them leaves the call denied unless a permit matched
    /// and no forbid could have matched.
    pub errors: Vec<String>,
    /// For a default deny of an object in a namespace where the run has an owner but does
    /// not own it: which owner, so a denied sibling's Secret reads as that, not as a gap.
    pub not_owned: Option<String>,
}

impl Decision {
    /// A sentence saying why `action` on `resource` was denied, for the
    /// guest's error value and the audit trail.
    pub fn denial_reason(&self, action: Action, resource: &ResourceRef) -> String {
        let shape = match entities::shape(action, resource) {
            Ok(shape) => shape,
            Err(e) => return format!("invalid {action} request: {e}"),
        };
        let mut reason = if self.allowed {
            format!("allowed by {}", policy_list(&self.policies))
        } else if !self.policies.is_empty() {
            format!("denied by {} (forbid)", policy_list(&self.policies))
        } else {
            format!(
                "no policy permits {action} on {} \"{}\" (deny by default)",
                shape.ty.name(),
                shape.id
            )
        };
        if let Some(owner) = self
            .not_owned
            .as_ref()
            .filter(|_| !self.allowed && self.policies.is_empty())
        {
            reason.push_str(&format!(
                "; it is not among the objects ferry resolved as {owner}'s before the run, so a grant \
                 `in Ferry::Owner` does not reach it"
            ));
        }
        if !self.errors.is_empty() {
            reason.push_str(&format!("; errors: {}", self.errors.join("; ")));
        }
        reason
    }

    fn deny(errors: Vec<String>) -> Self {
        Decision {
            allowed: false,
            policies: Vec::new(),
            errors,
            not_owned: None,
        }
    }
}

fn policy_list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
    if quoted.len() == 1 {
        format!("policy {}", quoted[0])
    } else {
        format!("policies {}", quoted.join(", "))
    }
}

/// Why a policy could not be loaded. Every variant stops the run.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid Cedar.
    #[error("policy {origin} does not parse:\n{message}")]
    Parse {
        /// Where the text came from (a path).
        origin: String,
        /// Cedar's diagnostics, each `origin:line:col: message`.
        message: String,
    },
    /// The built-in schema does not parse (a build defect).
    #[error("the ferry policy schema is invalid: {message}")]
    Schema {
        /// Cedar's diagnostic.
        message: String,
    },
    /// A policy does not fit the schema (unknown type, attribute, action...).
    #[error("policy {origin} fails strict schema validation:\n  {}", errors.join("\n  "))]
    Validation {
        /// Where the text came from.
        origin: String,
        /// Cedar's messages, each naming the policy id and its location.
        errors: Vec<String>,
    },
    /// A template's `@link` could not be applied.
    #[error("cannot link template `{template}`: {message}")]
    Link {
        /// The template's id.
        template: String,
        /// What is wrong.
        message: String,
    },
    /// A `@link` names a run parameter that is not set.
    #[error("template `{template}` needs run parameter `{param}`, which is not set")]
    MissingParam {
        /// The template's id.
        template: String,
        /// The parameter.
        param: String,
    },
}

/// A loaded, linked and validated policy set for one guest. Immutable after
/// load, `Send + Sync`, and meant to be shared behind an `Arc`.
pub struct PolicyEngine {
    policies: PolicySet,
    /// Per action, indexed by `Action as usize`: the policies whose action scope can match
    /// it. Cedar evaluates every policy of the set it is given; a policy whose scope names
    /// other actions is false before any condition, so leaving it out changes no decision,
    /// reason or error and saves most of Cedar's work on a large policy.
    by_action: Vec<PolicySet>,
    authorizer: Authorizer,
    types: entities::Types,
    guest: GuestIdentity,
    guest_uid: EntityUid,
    guest_entity: Entity,
    /// Per action, indexed by `Action as usize`, so a call only clones.
    actions: Vec<ActionInfo>,
    order: Vec<load::Entry>,
    origin: String,
    source: String,
    params: BTreeMap<String, String>,
    warnings: Vec<String>,
    /// What the run's owner owns ([`Ownership`]); empty unless the runner set it.
    ownership: Ownership,
}

/// The policies of `all` whose action scope can match `action` (itself or one of its
/// groups), with every template so that linked policies keep their ids.
fn policies_for(all: &PolicySet, action: &EntityUid, groups: &HashSet<EntityUid>) -> Result<PolicySet, String> {
    let matches = |uid: &EntityUid| uid == action || groups.contains(uid);
    let mut set = PolicySet::new();
    for template in all.templates() {
        set.add_template(template.clone()).map_err(|e| e.to_string())?;
    }
    for policy in all.policies() {
        let applies = match policy.action_constraint() {
            cedar_policy::ActionConstraint::Any => true,
            cedar_policy::ActionConstraint::Eq(uid) => matches(&uid),
            cedar_policy::ActionConstraint::In(uids) => uids.iter().any(matches),
        };
        if !applies {
            continue;
        }
        match (policy.template_id(), policy.template_links()) {
            (Some(template), Some(links)) => set.link(template.clone(), policy.id().clone(), links),
            _ => set.add(policy.clone()),
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(set)
}

/// An action's uid, its entity (with every group as an ancestor) and the
/// names of those groups.
struct ActionInfo {
    uid: EntityUid,
    entity: Entity,
    groups: Vec<String>,
}

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("origin", &self.origin)
            .field("guest", &self.guest)
            .field("policies", &self.order.len())
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    /// Reads, parses, links (from `params`) and strictly validates the policy
    /// file at `path` for `guest`.
    pub fn load(path: &Path, params: &BTreeMap<String, String>, guest: &GuestIdentity) -> Result<Self, PolicyError> {
        let src = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_source(&src, &path.display().to_string(), params, guest)
    }

    /// Same as [`PolicyEngine::load`] for policy text; `origin` names it in
    /// error messages.
    pub fn from_source(
        src: &str,
        origin: &str,
        params: &BTreeMap<String, String>,
        guest: &GuestIdentity,
    ) -> Result<Self, PolicyError> {
        let schema = load::schema()?;
        let loaded = load::load(src, origin, params, guest)?;
        let internal = |message: String| PolicyError::Schema { message };

        let types = entities::Types::new().map_err(internal)?;
        let guest_uid = load::guest_uid(guest).map_err(internal)?;
        let guest_entity = Entity::new(
            guest_uid.clone(),
            [
                ("name".to_string(), RestrictedExpression::new_string(guest.name.clone())),
                (
                    "sha256".to_string(),
                    RestrictedExpression::new_string(guest.sha256.clone()),
                ),
            ]
            .into_iter()
            .collect(),
            HashSet::new(),
        )
        .map_err(|e| internal(e.to_string()))?;

        let action_store = schema.action_entities().map_err(|e| internal(e.to_string()))?;
        let action_ty = EntityTypeName::from_str("Ferry::Action").map_err(|e| internal(e.to_string()))?;
        let mut actions = Vec::with_capacity(Action::ALL.len());
        let mut by_action = Vec::with_capacity(Action::ALL.len());
        for &action in Action::ALL {
            let uid = EntityUid::from_type_name_and_id(action_ty.clone(), EntityId::new(action.name()));
            // The schema's action store has the transitive closure, so these
            // are all the groups; the group entities themselves need not be
            // in each request's store.
            let Some(ancestors) = action_store.ancestors(&uid) else {
                return Err(internal(format!("action `{action}` is missing from the schema")));
            };
            let ancestors: HashSet<EntityUid> = ancestors.cloned().collect();
            let mut groups: Vec<String> = ancestors.iter().map(|g| g.id().unescaped().to_string()).collect();
            groups.sort();
            by_action.push(
                policies_for(&loaded.policies, &uid, &ancestors)
                    .map_err(|e| internal(format!("cannot index the policies by action: {e}")))?,
            );
            let entity = Entity::new_no_attrs(uid.clone(), ancestors);
            actions.push(ActionInfo { uid, entity, groups });
        }

        Ok(PolicyEngine {
            by_action,
            policies: loaded.policies,
            authorizer: Authorizer::new(),
            types,
            guest: guest.clone(),
            guest_uid,
            guest_entity,
            actions,
            order: loaded.order,
            origin: origin.to_string(),
            source: src.to_string(),
            params: loaded.params,
            warnings: loaded.warnings,
            ownership: Ownership::default(),
        })
    }

    /// Decides one call. Never does I/O; denies (with `errors`) when the
    /// resource cannot be expressed safely.
    pub fn authorize(&self, action: Action, resource: &ResourceRef, ctx: &CallContext) -> Decision {
        let (request, entities) = match self.cedar_request(action, resource, ctx) {
            Ok(built) => built,
            Err(e) => return Decision::deny(vec![e]),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.by_action[action as usize], &entities);
        let mut policies: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        policies.sort();
        let mut errors = Vec::new();
        let mut failed_forbids = Vec::new();
        for err in response.diagnostics().errors() {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = err;
            errors.push(err.to_string());
            if self
                .policies
                .policy(e.policy_id())
                .is_some_and(|p| p.effect() == cedar_policy::Effect::Forbid)
            {
                failed_forbids.push(e.policy_id().to_string());
            }
        }
        let allowed = response.decision() == cedar_policy::Decision::Allow;
        if allowed && !failed_forbids.is_empty() {
            // Cedar skips a policy whose evaluation errors. For a forbid that
            // would fail open, so a forbid that cannot be evaluated denies.
            failed_forbids.sort();
            return Decision {
                allowed: false,
                policies: failed_forbids,
                errors,
                not_owned: None,
            };
        }
        let not_owned = (!allowed && policies.is_empty())
            .then(|| self.ownership.shares_namespace_with(resource))
            .flatten();
        Decision {
            allowed,
            policies,
            errors,
            not_owned,
        }
    }

    /// The Cedar request and entity store [`PolicyEngine::authorize`] evaluates for one call:
    /// the resource entity and its parents (built from `resource` alone), the guest and the
    /// action. Public so that a benchmark can time Cedar alone on exactly this input.
    pub fn cedar_request(
        &self,
        action: Action,
        resource: &ResourceRef,
        ctx: &CallContext,
    ) -> Result<(Request, Entities), String> {
        let mut shape = entities::shape(action, resource).map_err(|e| format!("invalid resource: {e}"))?;
        if let Some(owner) = self.ownership.owner_of(resource) {
            // Nearest first: the object's Namespace follows, and the Owner is in it.
            shape.ancestors.insert(0, (entities::Ty::Owner, owner));
        }
        let (resource_uid, resource_entities) = self
            .types
            .build(&shape)
            .map_err(|e| format!("cannot build the resource entity: {e}"))?;
        let ActionInfo {
            uid: action_uid,
            entity: action_entity,
            ..
        } = &self.actions[action as usize];
        let context = Context::from_pairs(
            [
                ("plan".to_string(), RestrictedExpression::new_bool(ctx.plan)),
                ("dryRun".to_string(), RestrictedExpression::new_bool(ctx.dry_run)),
                ("phase".to_string(), RestrictedExpression::new_string(ctx.phase.clone())),
            ]
            .into_iter()
            .chain(ctx.patch_fields.as_ref().map(|fields| {
                let set = fields.iter().map(|f| RestrictedExpression::new_string(f.clone()));
                ("patchFields".to_string(), RestrictedExpression::new_set(set))
            }))
            .chain(ctx.presign_seconds.map(|s| {
                let s = i64::try_from(s).unwrap_or(i64::MAX);
                ("presignSeconds".to_string(), RestrictedExpression::new_long(s))
            })),
        )
        .map_err(|e| format!("cannot build the context: {e}"))?;
        // No schema check per call: the request and entities are built by
        // this module to the schema's shape, which the unit test
        // `built_entities_conform_to_the_schema` checks once, with the schema.
        let request = Request::new(self.guest_uid.clone(), action_uid.clone(), resource_uid, context, None)
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let store = resource_entities
            .into_iter()
            .chain([self.guest_entity.clone(), action_entity.clone()]);
        let entities = Entities::from_entities(store, None).map_err(|e| format!("cannot build the entities: {e}"))?;
        Ok((request, entities))
    }

    /// The engine with `ownership` deciding which objects sit in a `Ferry::Owner`. Set once,
    /// before the run, by the trusted runner.
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// What the run's owner owns.
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// The linked, validated policy set (for [`PolicyEngine::cedar_request`]'s benchmark).
    pub fn cedar_policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Decides, at load time, whether the guest may import `interface`
    /// (`ferry:host/k8s@0.1.0`; the version is ignored). The context is
    /// `{ plan: false, dryRun: false, phase: "load" }`; use
    /// [`PolicyEngine::check_import_with`] to pass the run's own.
    pub fn check_import(&self, interface: &str) -> Decision {
        let ctx = CallContext {
            phase: "load".to_string(),
            ..CallContext::default()
        };
        self.check_import_with(interface, &ctx)
    }

    /// [`PolicyEngine::check_import`] with an explicit context.
    pub fn check_import_with(&self, interface: &str, ctx: &CallContext) -> Decision {
        let name = strip_interface_version(interface).to_string();
        self.authorize(Action::Import, &ResourceRef::Interface { name }, ctx)
    }

    /// What the guest may and may never do, in plain words.
    pub fn explain(&self) -> String {
        let members = |group: &str| -> Vec<&'static str> {
            Action::ALL
                .iter()
                .copied()
                .filter(|a| self.is_in_group(*a, group))
                .map(Action::name)
                .collect()
        };
        explain::explain(&self.policies, &self.order, &self.guest, &members)
    }

    fn is_in_group(&self, action: Action, group: &str) -> bool {
        self.actions[action as usize].groups.iter().any(|g| g == group)
    }

    /// The Cedar schema (human-readable format) policies are validated against.
    pub fn schema() -> &'static str {
        SCHEMA_SRC
    }

    /// Re-runs strict validation of the loaded set (load already did).
    pub fn validate(&self) -> Result<(), PolicyError> {
        load::validate(&self.policies, &self.source, &self.origin).map(|_| ())
    }

    /// Validator warnings from load (e.g. a policy that can never apply).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The run parameters templates were linked with, derived ones included.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// Ids of the active policies (static and linked), in file order.
    pub fn policy_ids(&self) -> Vec<String> {
        self.order.iter().map(|e| e.id.to_string()).collect()
    }

    /// The guest this engine decides for.
    pub fn guest(&self) -> &GuestIdentity {
        &self.guest
    }

    /// Where the policy text came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// SHA-256 of the policy text: a plan applies only under the policy it was made with.
    pub fn sha256(&self) -> String {
        crate::plan::sha256_hex(self.source.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(src: &str) -> Result<PolicyEngine, PolicyError> {
        let guest = GuestIdentity {
            name: "g".into(),
            sha256: "00".into(),
        };
        PolicyEngine::from_source(src, "test.cedar", &BTreeMap::new(), &guest)
    }

    #[test]
    fn action_table_is_indexed_by_discriminant() {
        for (i, &a) in Action::ALL.iter().enumerate() {
            assert_eq!(a as usize, i, "{a}");
            assert_eq!(Action::from_name(a.name()), Some(a));
            assert_eq!(a.to_string(), a.name());
        }
    }

    #[test]
    fn engine_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<PolicyEngine>();
    }

    #[test]
    fn actions_map_one_to_one_to_the_schema() -> Result<(), PolicyError> {
        let schema = load::schema()?;
        let groups: HashSet<String> = schema.action_groups().map(|g| g.id().unescaped().to_string()).collect();
        let mut schema_actions: Vec<String> = schema
            .actions()
            .map(|a| a.id().unescaped().to_string())
            .filter(|a| !groups.contains(a))
            .collect();
        schema_actions.sort();
        let mut ours: Vec<String> = Action::ALL.iter().map(|a| a.name().to_string()).collect();
        ours.sort();
        assert_eq!(schema_actions, ours);
        let e = engine("")?;
        for &a in Action::ALL {
            assert_eq!(e.is_in_group(a, "mutating"), a.is_mutating(), "{a}");
        }
        Ok(())
    }

    /// One resource of every kind, with the action it goes with.
    fn one_of_every_kind() -> Vec<(Action, ResourceRef)> {
        vec![
            (
                Action::Import,
                ResourceRef::Interface {
                    name: "ferry:host/k8s@0.1.0".into(),
                },
            ),
            (Action::K8sOpen, ResourceRef::Cluster { alias: "src".into() }),
            (
                Action::K8sDelete,
                ResourceRef::K8s {
                    cluster: "src".into(),
                    group: String::new(),
                    version: "v1".into(),
                    kind: "Namespace".into(),
                    namespace: None,
                    name: Some("clusters".into()),
                },
            ),
            (Action::ObjectsOpen, ResourceRef::Bucket { bucket: "b".into() }),
            (
                Action::ObjectsPut,
                ResourceRef::S3Object {
                    bucket: "b".into(),
                    key: "a/b/c".into(),
                },
            ),
            (
                Action::ObjectsList,
                ResourceRef::S3Prefix {
                    bucket: "b".into(),
                    prefix: "a/b/".into(),
                },
            ),
            (Action::DnsList, ResourceRef::Zone { zone: "Z1".into() }),
            (
                Action::DnsChange,
                ResourceRef::RecordSet {
                    zone: "Z1".into(),
                    name: "a.b.".into(),
                    rtype: "A".into(),
                },
            ),
            (
                Action::EtcdSnapshot,
                ResourceRef::EtcdMember {
                    cluster: "m".into(),
                    namespace: "ns".into(),
                    pod: "etcd-0".into(),
                    endpoint: String::new(),
                },
            ),
            (
                Action::WorkspaceWrite,
                ResourceRef::Path {
                    path: "a/b.json".into(),
                },
            ),
            (Action::WorkspaceList, ResourceRef::Path { path: String::new() }),
        ]
    }

    /// The entities `authorize` builds without a schema check must conform
    /// to the schema: check one of every kind with the schema here.
    #[test]
    fn built_entities_conform_to_the_schema() -> Result<(), Box<dyn std::error::Error>> {
        let e = engine("")?;
        let schema = load::schema()?;
        let cases = one_of_every_kind();
        for (action, r) in cases {
            let shape = entities::shape(action, &r)?;
            let (uid, ents) = e.types.build(&shape)?;
            let action_uid = &e.actions[action as usize].uid;
            let store = ents.into_iter().chain([e.guest_entity.clone()]);
            Entities::from_entities(store, Some(schema))?;
            let ctx = Context::from_pairs([
                ("plan".to_string(), RestrictedExpression::new_bool(true)),
                ("dryRun".to_string(), RestrictedExpression::new_bool(false)),
                ("phase".to_string(), RestrictedExpression::new_string("x".into())),
            ])?;
            Request::new(e.guest_uid.clone(), action_uid.clone(), uid, ctx, Some(schema))?;
        }
        Ok(())
    }

    /// An owned object sits in its `Owner`, which sits in its Namespace (the entities conform
    /// to the schema); an unowned sibling in the same namespace, a list, and the same name on
    /// another cluster do not, and a default deny of the sibling names the owner.
    #[test]
    fn owned_objects_and_only_they_are_in_the_owner() -> Result<(), Box<dyn std::error::Error>> {
        let k8s = |cluster: &str, name: Option<&str>| ResourceRef::K8s {
            cluster: cluster.into(),
            group: String::new(),
            version: "v1".into(),
            kind: "Secret".into(),
            namespace: Some("clusters".into()),
            name: name.map(str::to_string),
        };
        let mut ownership = Ownership {
            owner: "prod-a".into(),
            ..Ownership::default()
        };
        ownership.objects.insert(OwnedObject {
            cluster: "src".into(),
            group: String::new(),
            kind: "Secret".into(),
            namespace: "clusters".into(),
            name: "prod-a-pull".into(),
        });
        let e = engine(
            r#"@id("owned") permit (principal, action == Ferry::Action::"k8s:get", resource in Ferry::Owner::"src/clusters/prod-a");
               @id("ns") permit (principal, action == Ferry::Action::"k8s:list", resource in Ferry::Namespace::"src/clusters");"#,
        )?
        .with_ownership(ownership);
        let ctx = CallContext::default();
        let (_, entities) = e.cedar_request(Action::K8sGet, &k8s("src", Some("prod-a-pull")), &ctx)?;
        Entities::from_entities(entities, Some(load::schema()?))?;
        let own = e.authorize(Action::K8sGet, &k8s("src", Some("prod-a-pull")), &ctx);
        assert!(own.allowed, "{own:?}");
        assert_eq!(own.policies, ["owned"]);
        let sibling = e.authorize(Action::K8sGet, &k8s("src", Some("prod-b-pull")), &ctx);
        assert!(!sibling.allowed);
        let why = sibling.denial_reason(Action::K8sGet, &k8s("src", Some("prod-b-pull")));
        assert!(
            why.contains("not among the objects ferry resolved as prod-a's"),
            "{why}"
        );
        assert!(
            !e.authorize(Action::K8sGet, &k8s("dst", Some("prod-a-pull")), &ctx)
                .allowed
        );
        assert!(!e.authorize(Action::K8sGet, &k8s("src", None), &ctx).allowed);
        // The Namespace grant still reaches what is in it: the Owner is inside it.
        assert!(e.authorize(Action::K8sList, &k8s("src", None), &ctx).allowed);
        Ok(())
    }

    /// Cedar's raw answer, for comparing policy sets.
    fn cedar_answer(
        e: &PolicyEngine,
        set: &PolicySet,
        action: Action,
        r: &ResourceRef,
        ctx: &CallContext,
    ) -> Option<(bool, Vec<String>, Vec<String>)> {
        let (request, entities) = e.cedar_request(action, r, ctx).ok()?;
        let response = e.authorizer.is_authorized(&request, set, &entities);
        let mut reasons: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        reasons.sort();
        let mut errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        errors.sort();
        Some((response.decision() == cedar_policy::Decision::Allow, reasons, errors))
    }

    /// Deciding on the policies indexed by action gives Cedar's answer on the whole set:
    /// the same decision, reasons and errors, for every action on every kind of resource,
    /// under every policy ferry ships (templates linked), in every context.
    #[test]
    fn policies_indexed_by_action_decide_as_the_whole_set() -> Result<(), Box<dyn std::error::Error>> {
        let params: BTreeMap<String, String> = [
            ("source", "src"),
            ("destination", "dst"),
            ("hosted", "hosted"),
            ("hc_namespace", "clusters"),
            ("hc_name", "hc"),
            ("bucket", "b"),
            ("zone_id", "Z1"),
            ("s3_prefix", "backups/"),
            ("txt_api", "api-hc-external-dns.example.com"),
            ("txt_api_cname", "cname-api-hc-external-dns.example.com"),
            ("txt_api_a", "a-api-hc-external-dns.example.com"),
            ("txt_oauth", "oauth-hc-external-dns.example.com"),
            ("txt_oauth_cname", "cname-oauth-hc-external-dns.example.com"),
            ("txt_oauth_a", "a-oauth-hc-external-dns.example.com"),
            ("txt_konnectivity", "konnectivity-hc-external-dns.example.com"),
            (
                "txt_konnectivity_cname",
                "cname-konnectivity-hc-external-dns.example.com",
            ),
            ("txt_konnectivity_a", "a-konnectivity-hc-external-dns.example.com"),
            ("txt_ignition", "ignition-hc-external-dns.example.com"),
            ("txt_ignition_cname", "cname-ignition-hc-external-dns.example.com"),
            ("txt_ignition_a", "a-ignition-hc-external-dns.example.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let guest = GuestIdentity {
            name: "hosted-cluster-dr".into(),
            sha256: "00".into(),
        };
        let sources = [
            include_str!("../../../policies/hosted-cluster-dr.cedar"),
            include_str!("../../../policies/examples/allow-list.cedar"),
            include_str!("../../../policies/examples/hosted-cluster-template.cedar"),
            include_str!("../../../policies/examples/plan-mode.cedar"),
            include_str!("../../../policies/examples/delete-empty-hc-namespace.cedar"),
            include_str!("../../../tests/fixtures/test-guest.cedar"),
            include_str!("../../../tests/fixtures/test-hook.cedar"),
        ];
        let mut resources: Vec<ResourceRef> = one_of_every_kind().into_iter().map(|(_, r)| r).collect();
        for (kind, group, namespace, name) in [
            ("HostedCluster", "hypershift.openshift.io", Some("clusters"), Some("hc")),
            (
                "HostedCluster",
                "hypershift.openshift.io",
                Some("clusters"),
                Some("sibling"),
            ),
            ("Secret", "", Some("clusters-hc"), Some("pull-secret")),
            ("Deployment", "apps", Some("hypershift"), Some("operator")),
            ("Namespace", "", None, Some("clusters")),
        ] {
            for cluster in ["src", "dst"] {
                resources.push(ResourceRef::K8s {
                    cluster: cluster.into(),
                    group: group.into(),
                    version: "v1".into(),
                    kind: kind.into(),
                    namespace: namespace.map(Into::into),
                    name: name.map(Into::into),
                });
            }
        }
        let mut compared = 0;
        let mut allowed = 0;
        for src in sources {
            let e = PolicyEngine::from_source(src, "shipped.cedar", &params, &guest)?;
            for &action in Action::ALL {
                for r in &resources {
                    for (plan, dry_run) in [(false, false), (true, false), (false, true)] {
                        let ctx = CallContext {
                            plan,
                            dry_run,
                            phase: "backup".into(),
                            patch_fields: None,
                            presign_seconds: None,
                        };
                        let whole = cedar_answer(&e, &e.policies, action, r, &ctx);
                        let indexed = cedar_answer(&e, &e.by_action[action as usize], action, r, &ctx);
                        assert_eq!(indexed, whole, "{action} on {r:?} ({plan}, {dry_run})");
                        compared += 1;
                        allowed += usize::from(whole.is_some_and(|w| w.0));
                    }
                }
            }
        }
        // The comparison means something only if the policies allow some of these calls.
        assert!(allowed > 20, "only {allowed} of {compared} calls were allowed");
        Ok(())
    }
}
