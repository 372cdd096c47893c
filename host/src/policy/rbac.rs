//! Kubernetes RBAC derived from a policy: least privilege at both layers from one source.
//!
//! ferry decides every call against Cedar; the identity it uses against each cluster still
//! needs RBAC. Writing that by hand duplicates the policy and drifts from it. Here the policy
//! itself is asked: over every cluster, namespace, kind and name the policy (and the run's
//! owned objects) mention, and every Kubernetes action, in the contexts the policy tells apart,
//! [`PolicyEngine::authorize`] answers, and each allowed call becomes the RBAC verb the API
//! server checks for it. A grant for any name gives a rule without `resourceNames`; a grant
//! for named objects only gives `resourceNames`.
//!
//! What this cannot see, and so never grants: kinds outside [`super::request`]'s known kinds
//! and the ones the policy names (a namespace-wide grant reaches them in Cedar, not in the
//! derived RBAC), and names a policy only matches by pattern (`like "*-suffix"`). Both make
//! the RBAC narrower than the policy, never wider.

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::ResourceConstraint;
use serde::Serialize;

use super::{Action, CallContext, PolicyEngine, ResourceRef};

/// A name no policy names: a grant that allows it allows any name.
const ANY_NAME: &str = "ferry-rbac-probe-any-name";

/// Known kinds that are cluster-scoped, by group (the rest of the known kinds are namespaced).
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("config.openshift.io", "ClusterVersion"),
];

/// Kinds with a `scale` subresource, by group: `k8s:scale` of anything else fails at the
/// server and needs no rule.
const SCALABLE: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "ReplicaSet"),
    ("cluster.x-k8s.io", "MachineDeployment"),
    ("cluster.x-k8s.io", "MachineSet"),
    ("hypershift.openshift.io", "NodePool"),
];

/// The Kubernetes actions and the RBAC verbs (on the resource, or on a subresource) the API
/// server checks for each.
const VERBS: &[(Action, &[(&str, &str)])] = &[
    (Action::K8sGet, &[("", "get")]),
    (Action::K8sList, &[("", "list")]),
    (Action::K8sCreate, &[("", "create")]),
    // Server-side apply is a PATCH; when it creates the object the server also checks `create`
    // (apiserver `handlers/patch.go`, `withAuthorization` of the create validation).
    (Action::K8sApply, &[("", "patch"), ("", "create")]),
    (Action::K8sReplace, &[("", "update")]),
    (Action::K8sPatch, &[("", "patch")]),
    (Action::K8sDelete, &[("", "delete")]),
    // The host reads the scale subresource, then patches it.
    (Action::K8sScale, &[("scale", "get"), ("scale", "patch")]),
];

/// One rule of a derived Role or ClusterRole, in RBAC's own shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The API group ("" for core).
    pub api_groups: Vec<String>,
    /// The resource (plural), or `resource/subresource`.
    pub resources: Vec<String>,
    /// Object names; empty means every name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// The verbs.
    pub verbs: Vec<String>,
}

/// The rules one cluster alias needs in one namespace (a Role), or cluster-wide (a
/// ClusterRole, `namespace` `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DerivedRole {
    /// The cluster alias (the run config's name for the cluster).
    pub cluster: String,
    /// The namespace of a Role; `None` for a ClusterRole.
    pub namespace: Option<String>,
    /// Its rules, sorted.
    pub rules: Vec<Rule>,
}

impl DerivedRole {
    /// Whether a rule allows `verb` on `group`/`resource` named `name` (`None`: a list or a
    /// create, which RBAC cannot restrict by name).
    pub fn allows(&self, group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
        self.rules.iter().any(|r| {
            r.api_groups.iter().any(|g| g == group)
                && r.resources.iter().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
                && (r.resource_names.is_empty() || name.is_some_and(|n| r.resource_names.iter().any(|x| x == n)))
        })
    }
}

/// The RBAC checks of one Kubernetes action: (subresource, "" for the resource itself; verb).
pub fn verbs_of(action: Action) -> &'static [(&'static str, &'static str)] {
    VERBS.iter().find(|(a, _)| *a == action).map_or(&[], |(_, v)| v)
}

/// The plural resource name the API serves `kind` under (kube's rule, as `ApiResource`
/// derives it).
pub fn plural(group: &str, version: &str, kind: &str) -> String {
    kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(group, version, kind)).plural
}

/// What the policy mentions.
#[derive(Default)]
struct Universe {
    /// Per cluster, its namespaces.
    namespaces: BTreeMap<String, BTreeSet<String>>,
    /// (group, version, kind).
    kinds: BTreeSet<(String, String, String)>,
    /// (group, kind) of the cluster-scoped ones.
    cluster_scoped: BTreeSet<(String, String)>,
    /// Names per (cluster, group, kind, namespace; "" for cluster-scoped).
    names: BTreeMap<(String, String, String, String), BTreeSet<String>>,
    /// Strings the policies compare with (kinds, patch fields, phases).
    literals: BTreeSet<String>,
    /// Whether any policy looks at `context.phase`.
    phase_matters: bool,
    /// Etcd members reached through a pod: (cluster, namespace, pod).
    etcd_pods: BTreeSet<(String, String, String)>,
}

impl Universe {
    fn of(engine: &PolicyEngine) -> Universe {
        let mut u = Universe::default();
        for (group, version, kind) in super::request::KNOWN_KINDS {
            u.kinds
                .insert((group.to_string(), version.to_string(), kind.to_string()));
        }
        u.cluster_scoped
            .extend(CLUSTER_SCOPED.iter().map(|(g, k)| (g.to_string(), k.to_string())));
        for policy in engine.cedar_policies().policies() {
            let text = policy.to_string();
            u.phase_matters |= text.contains("context.phase");
            u.literals.extend(string_literals(&text));
            let uid = match policy.resource_constraint() {
                ResourceConstraint::Eq(uid) | ResourceConstraint::In(uid) | ResourceConstraint::IsIn(_, uid) => uid,
                ResourceConstraint::Any | ResourceConstraint::Is(_) => continue,
            };
            let id = uid.id().unescaped().to_string();
            u.add_entity(uid.type_name().basename(), &id);
        }
        for o in &engine.ownership().objects {
            u.namespace(&o.cluster, &o.namespace);
            u.names
                .entry((o.cluster.clone(), o.group.clone(), o.kind.clone(), o.namespace.clone()))
                .or_default()
                .insert(o.name.clone());
        }
        // A Namespace object is named by its namespace.
        let namespaces: Vec<(String, String)> = u
            .namespaces
            .iter()
            .flat_map(|(c, nss)| nss.iter().map(|n| (c.clone(), n.clone())))
            .collect();
        for (cluster, ns) in namespaces {
            u.names
                .entry((cluster, String::new(), "Namespace".into(), String::new()))
                .or_default()
                .insert(ns);
        }
        u
    }

    fn namespace(&mut self, cluster: &str, ns: &str) {
        let set = self.namespaces.entry(cluster.to_string()).or_default();
        if !ns.is_empty() {
            set.insert(ns.to_string());
        }
    }

    fn add_entity(&mut self, ty: &str, id: &str) {
        let parts: Vec<&str> = id.split('/').collect();
        match (ty, parts.as_slice()) {
            ("Cluster", [c]) => self.namespace(c, ""),
            ("Namespace", [c, ns]) | ("Owner", [c, ns, _]) => self.namespace(c, ns),
            ("K8sObject", [c, group, kind, ns, name]) => {
                self.namespace(c, ns);
                if !self.kinds.iter().any(|(g, _, k)| g == group && k == kind) {
                    self.kinds.insert((group.to_string(), String::new(), kind.to_string()));
                    if ns.is_empty() && !name.is_empty() {
                        self.cluster_scoped.insert((group.to_string(), kind.to_string()));
                    }
                }
                if !name.is_empty() {
                    self.names
                        .entry((c.to_string(), group.to_string(), kind.to_string(), ns.to_string()))
                        .or_default()
                        .insert(name.to_string());
                }
            }
            ("EtcdMember", _) => {
                if let Some(rest) = id.strip_prefix("pod:")
                    && let [c, ns, pod] = rest.split('/').collect::<Vec<_>>().as_slice()
                {
                    self.etcd_pods.insert((c.to_string(), ns.to_string(), pod.to_string()));
                }
            }
            _ => {}
        }
    }

    /// The contexts a call is asked in: a real run and a plan; each phase the policies compare
    /// with, when they look at the phase; and for patches, each field path they name.
    fn contexts(&self, action: Action) -> Vec<CallContext> {
        let mut phases = vec![String::new()];
        if self.phase_matters {
            phases.extend(self.literals.iter().filter(|l| is_word(l)).cloned());
        }
        let mut fields: Vec<Option<Vec<String>>> = vec![None];
        if action == Action::K8sPatch {
            fields.extend(
                self.literals
                    .iter()
                    .filter(|l| is_field_path(l))
                    .map(|f| Some(vec![f.clone()])),
            );
        }
        let mut out = Vec::new();
        for phase in &phases {
            for patch_fields in &fields {
                for (plan, dry_run) in [(false, false), (true, true)] {
                    out.push(CallContext {
                        plan,
                        dry_run,
                        phase: phase.clone(),
                        patch_fields: patch_fields.clone(),
                        presign_seconds: None,
                    });
                }
            }
        }
        out
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '-')
}

fn is_field_path(s: &str) -> bool {
    s.contains('.')
        && s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The string literals of a policy's text.
fn string_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        lit.push(n);
                    }
                }
                '"' => break,
                c => lit.push(c),
            }
        }
        out.push(lit);
    }
    out
}

/// Derives the Roles and ClusterRoles `engine`'s grants need, per cluster alias: every call
/// the policy allows on what it mentions, as the RBAC verbs the API server checks, plus what
/// the host itself does for a granted etcd snapshot (read the member's pod, port-forward to
/// it). Sorted by cluster, then ClusterRole before Roles by namespace.
pub fn derive(engine: &PolicyEngine) -> Vec<DerivedRole> {
    let u = Universe::of(engine);
    // (cluster, namespace or None) → (group, resource, name or None) → verbs
    type Grants = BTreeMap<(String, Option<String>), BTreeMap<(String, String, Option<String>), BTreeSet<String>>>;
    let mut grants: Grants = BTreeMap::new();
    let contexts: Vec<(Action, Vec<CallContext>)> = VERBS.iter().map(|(a, _)| (*a, u.contexts(*a))).collect();
    let allowed = |action: Action, r: &ResourceRef| {
        contexts
            .iter()
            .filter(|(a, _)| *a == action)
            .flat_map(|(_, cs)| cs)
            .any(|ctx| engine.authorize(action, r, ctx).allowed)
    };
    for (cluster, namespaces) in &u.namespaces {
        for (group, version, kind) in &u.kinds {
            let scoped = u.cluster_scoped.contains(&(group.clone(), kind.clone()));
            let resource = plural(group, version, kind);
            let scopes: Vec<Option<&String>> = if scoped {
                vec![None]
            } else {
                std::iter::once(None).chain(namespaces.iter().map(Some)).collect()
            };
            for ns in scopes {
                let key = (
                    cluster.clone(),
                    group.clone(),
                    kind.clone(),
                    ns.cloned().unwrap_or_default(),
                );
                let named: Vec<&String> = u.names.get(&key).into_iter().flatten().collect();
                let request = |name: Option<&str>| ResourceRef::K8s {
                    cluster: cluster.clone(),
                    group: group.clone(),
                    version: version.clone(),
                    kind: kind.clone(),
                    namespace: ns.cloned(),
                    name: name.map(str::to_string),
                };
                let role = grants.entry((cluster.clone(), ns.cloned())).or_default();
                for (action, verbs) in VERBS {
                    if *action == Action::K8sScale && !SCALABLE.contains(&(group.as_str(), kind.as_str())) {
                        continue;
                    }
                    let subjects: Vec<Option<&str>> = if *action == Action::K8sList {
                        if allowed(*action, &request(None)) {
                            vec![None]
                        } else {
                            vec![]
                        }
                    } else if allowed(*action, &request(Some(ANY_NAME))) {
                        vec![None]
                    } else {
                        named
                            .iter()
                            .map(|n| n.as_str())
                            .filter(|n| allowed(*action, &request(Some(n))))
                            .map(Some)
                            .collect()
                    };
                    for name in subjects {
                        for (sub, verb) in verbs.iter() {
                            let res = if sub.is_empty() {
                                resource.clone()
                            } else {
                                format!("{resource}/{sub}")
                            };
                            // RBAC cannot restrict a create by name: the name is not known
                            // when the request is authorised.
                            let name = if *verb == "create" { None } else { name };
                            role.entry((group.clone(), res, name.map(str::to_string)))
                                .or_default()
                                .insert(verb.to_string());
                        }
                    }
                }
            }
        }
    }
    for (cluster, ns, pod) in &u.etcd_pods {
        let member = ResourceRef::EtcdMember {
            cluster: cluster.clone(),
            namespace: ns.clone(),
            pod: pod.clone(),
            endpoint: String::new(),
        };
        let ctx = CallContext::default();
        let reached = [Action::EtcdSnapshot, Action::EtcdMemberStatus]
            .iter()
            .any(|a| engine.authorize(*a, &member, &ctx).allowed);
        if reached {
            let role = grants.entry((cluster.clone(), Some(ns.clone()))).or_default();
            role.entry((String::new(), "pods".into(), Some(pod.clone())))
                .or_default()
                .insert("get".into());
            role.entry((String::new(), "pods/portforward".into(), Some(pod.clone())))
                .or_default()
                .insert("create".into());
        }
    }
    grants
        .into_iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|((cluster, namespace), g)| DerivedRole {
            cluster,
            namespace,
            rules: rules(g),
        })
        .collect()
}

/// `extra` roles added to `roles`: rules of the same cluster and namespace join one role.
/// For what the host or its runner does on its own account, which no policy decides.
pub fn merge(roles: Vec<DerivedRole>, extra: Vec<DerivedRole>) -> Vec<DerivedRole> {
    let mut by: BTreeMap<(String, Option<String>), BTreeSet<Rule>> = BTreeMap::new();
    for r in roles.into_iter().chain(extra) {
        by.entry((r.cluster, r.namespace)).or_default().extend(r.rules);
    }
    by.into_iter()
        .map(|((cluster, namespace), rules)| DerivedRole {
            cluster,
            namespace,
            rules: rules.into_iter().collect(),
        })
        .collect()
}

/// One rule per group, resource and verb set; named grants of the same verbs share a rule, and
/// names already covered by an any-name grant of the same verb are dropped.
fn rules(g: BTreeMap<(String, String, Option<String>), BTreeSet<String>>) -> Vec<Rule> {
    let mut any: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for ((group, res, name), verbs) in &g {
        if name.is_none() {
            any.entry((group.clone(), res.clone()))
                .or_default()
                .extend(verbs.iter().cloned());
        }
    }
    let mut named: BTreeMap<(String, String, Vec<String>), BTreeSet<String>> = BTreeMap::new();
    for ((group, res, name), verbs) in g {
        let Some(name) = name else { continue };
        let covered = any.get(&(group.clone(), res.clone()));
        let verbs: Vec<String> = verbs
            .into_iter()
            .filter(|v| !covered.is_some_and(|c| c.contains(v)))
            .collect();
        if !verbs.is_empty() {
            named.entry((group, res, verbs)).or_default().insert(name);
        }
    }
    let mut out: Vec<Rule> = any
        .into_iter()
        .map(|((group, res), verbs)| Rule {
            api_groups: vec![group],
            resources: vec![res],
            resource_names: Vec::new(),
            verbs: verbs.into_iter().collect(),
        })
        .chain(named.into_iter().map(|((group, res, verbs), names)| Rule {
            api_groups: vec![group],
            resources: vec![res],
            resource_names: names.into_iter().collect(),
            verbs,
        }))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::GuestIdentity;

    fn derive_from(src: &str) -> Vec<DerivedRole> {
        let guest = GuestIdentity {
            name: "g".into(),
            sha256: String::new(),
        };
        derive(&PolicyEngine::from_source(src, "test.cedar", &BTreeMap::new(), &guest).unwrap())
    }

    fn rule(groups: &str, resource: &str, names: &[&str], verbs: &[&str]) -> Rule {
        Rule {
            api_groups: vec![groups.into()],
            resources: vec![resource.into()],
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A namespace grant gives rules for any name; a grant on one object gives its name,
    /// except for create (RBAC cannot name what it creates); scale only where the kind has the
    /// subresource; a policy's patch-field condition still grants the patch.
    #[test]
    fn grants_become_rules_with_names_only_where_the_policy_names_objects() {
        let roles = derive_from(
            r#"
            @id("read") permit (principal, action == Ferry::Action::"k8s:get", resource in Ferry::Namespace::"c/team")
            when { resource.kind == "ConfigMap" };
            @id("one") permit (principal, action in Ferry::Action::"k8s:write", resource == Ferry::K8sObject::"c/apps/Deployment/team/web");
            @id("note") permit (principal, action == Ferry::Action::"k8s:patch", resource == Ferry::K8sObject::"c//Secret/team/s")
            when { context has patchFields && ["metadata.annotations"].containsAll(context.patchFields) };
            "#,
        );
        assert_eq!(roles.len(), 1, "{roles:#?}");
        let role = &roles[0];
        assert_eq!((role.cluster.as_str(), role.namespace.as_deref()), ("c", Some("team")));
        assert_eq!(
            role.rules,
            [
                rule("", "configmaps", &[], &["get"]),
                rule("", "secrets", &["s"], &["patch"]),
                rule("apps", "deployments", &[], &["create"]),
                rule("apps", "deployments", &["web"], &["delete", "patch", "update"]),
                rule("apps", "deployments/scale", &["web"], &["get", "patch"]),
            ]
        );
        assert!(role.allows("apps", "deployments", "patch", Some("web")));
        assert!(!role.allows("apps", "deployments", "patch", Some("api")));
        assert!(role.allows("apps", "deployments", "create", None));
    }

    /// A Namespace object is cluster-scoped: a ClusterRole, named by the namespace.
    #[test]
    fn namespaces_go_to_a_cluster_role() {
        let roles = derive_from(
            r#"@id("ns") permit (principal, action == Ferry::Action::"k8s:get", resource in Ferry::Namespace::"c/team");"#,
        );
        let cluster_role = roles.iter().find(|r| r.namespace.is_none()).unwrap();
        assert_eq!(cluster_role.rules, [rule("", "namespaces", &["team"], &["get"])]);
    }

    #[test]
    fn literals_are_read_with_escapes() {
        assert_eq!(string_literals(r#"a == "x" && b == "y\"z""#), ["x", "y\"z"]);
        assert!(is_field_path("metadata.annotations") && !is_field_path("apps") && !is_field_path("a..b"));
    }
}
