//! Turning a call's arguments ([`ResourceRef`]) into Cedar entities.
//!
//! This is the part of the policy layer that must be trusted most: a policy
//! line such as `resource in Ferry::S3Prefix::"dr-backups/prod-a/"` means
//! what it says only if every key is split into the right prefix chain, every
//! Kubernetes object gets the right Namespace parent and no name can smuggle
//! a `/` into an id. Anything odd is rejected here (the call is denied)
//! rather than normalised into something a policy author did not foresee.
//!
//! The code is split in two: [`shape`] is pure string work (ids, attributes,
//! ancestors) and is reused for messages; [`Types::build`] turns a shape into
//! Cedar values with type names parsed once per engine.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};

use super::{Action, ResourceRef};

/// The id of the one workspace entity. There is a single workspace per run,
/// so a fixed, readable id is enough: `resource in Ferry::Workspace::"workspace"`.
pub const WORKSPACE_ID: &str = "workspace";

/// The entity types of the schema, in one place so ids and names agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Guest,
    Interface,
    Cluster,
    Namespace,
    Owner,
    K8sObject,
    Bucket,
    S3Prefix,
    S3Object,
    Zone,
    RecordSet,
    EtcdMember,
    Workspace,
    Path,
}

impl Ty {
    const ALL: [Ty; 14] = [
        Ty::Guest,
        Ty::Interface,
        Ty::Cluster,
        Ty::Namespace,
        Ty::Owner,
        Ty::K8sObject,
        Ty::Bucket,
        Ty::S3Prefix,
        Ty::S3Object,
        Ty::Zone,
        Ty::RecordSet,
        Ty::EtcdMember,
        Ty::Workspace,
        Ty::Path,
    ];

    /// The type name without the `Ferry::` namespace.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Guest => "Guest",
            Ty::Interface => "Interface",
            Ty::Cluster => "Cluster",
            Ty::Namespace => "Namespace",
            Ty::Owner => "Owner",
            Ty::K8sObject => "K8sObject",
            Ty::Bucket => "Bucket",
            Ty::S3Prefix => "S3Prefix",
            Ty::S3Object => "S3Object",
            Ty::Zone => "Zone",
            Ty::RecordSet => "RecordSet",
            Ty::EtcdMember => "EtcdMember",
            Ty::Workspace => "Workspace",
            Ty::Path => "Path",
        }
    }
}

/// One entity as plain strings: its type, id and attributes, and the
/// ancestors it sits in, nearest first. Every ancestor is itself in all the
/// ancestors after it (the hierarchies here are chains), which lets
/// [`Types::build`] give each entity its full ancestor set directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) ty: Ty,
    pub(crate) id: String,
    pub(crate) attrs: Vec<(&'static str, String)>,
    pub(crate) ancestors: Vec<(Ty, String)>,
}

/// Strips a WIT package version: `ferry:host/k8s@0.1.0` → `ferry:host/k8s`.
pub fn strip_interface_version(name: &str) -> &str {
    name.split_once('@').map_or(name, |(base, _)| base).trim()
}

/// Which resource variants an action accepts. A mismatch is a host bug, and
/// is denied rather than evaluated against a resource the schema does not
/// expect for that action.
fn accepts(action: Action, r: &ResourceRef) -> bool {
    use Action as A;
    use ResourceRef as R;
    match action {
        A::Import => matches!(r, R::Interface { .. }),
        A::K8sOpen => matches!(r, R::Cluster { .. }),
        A::K8sGet
        | A::K8sList
        | A::K8sCreate
        | A::K8sApply
        | A::K8sReplace
        | A::K8sPatch
        | A::K8sDelete
        | A::K8sScale => matches!(r, R::K8s { .. }),
        A::ObjectsOpen => matches!(r, R::Bucket { .. }),
        A::ObjectsGet
        | A::ObjectsHead
        | A::ObjectsPut
        | A::ObjectsDelete
        | A::ObjectsPresign
        | A::ObjectsSnapshotUpload => {
            matches!(r, R::S3Object { .. })
        }
        A::ObjectsList => matches!(r, R::S3Prefix { .. } | R::Bucket { .. }),
        A::DnsOpen | A::DnsList => matches!(r, R::Zone { .. }),
        A::DnsChange => matches!(r, R::RecordSet { .. }),
        A::EtcdSnapshot | A::EtcdMemberStatus => matches!(r, R::EtcdMember { .. }),
        A::WorkspaceRead | A::WorkspaceWrite | A::WorkspaceList => matches!(r, R::Path { .. }),
    }
}

/// The resource entity (with its ancestors) for `action` on `r`, or why the
/// arguments cannot be turned into one.
pub(crate) fn shape(action: Action, r: &ResourceRef) -> Result<Shape, String> {
    if !accepts(action, r) {
        return Err(format!("{action} does not apply to a {} resource", variant_name(r)));
    }
    match r {
        ResourceRef::Interface { name } => {
            let name = strip_interface_version(name);
            plain_segment("interface name", name, &[])?;
            Ok(leaf(Ty::Interface, name.to_string()))
        }
        ResourceRef::Cluster { alias } => {
            segment("cluster alias", alias)?;
            Ok(leaf(Ty::Cluster, alias.clone()))
        }
        ResourceRef::K8s {
            cluster,
            group,
            version,
            kind,
            namespace,
            name,
        } => k8s_shape(cluster, group, version, kind, namespace.as_deref(), name.as_deref()),
        ResourceRef::Bucket { bucket } => {
            segment("bucket name", bucket)?;
            Ok(leaf(Ty::Bucket, bucket.clone()))
        }
        ResourceRef::S3Object { bucket, key } => s3_object_shape(bucket, key),
        ResourceRef::S3Prefix { bucket, prefix } => s3_list_shape(bucket, prefix),
        ResourceRef::Zone { zone } => {
            let zone = normalise_zone(zone)?;
            Ok(leaf(Ty::Zone, zone))
        }
        ResourceRef::RecordSet { zone, name, rtype } => {
            let zone = normalise_zone(zone)?;
            let name = normalise_record_name(name)?;
            let rtype = rtype.trim().to_ascii_uppercase();
            if rtype.is_empty() || !rtype.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!("record type `{rtype}` is not a DNS record type"));
            }
            Ok(Shape {
                ty: Ty::RecordSet,
                id: format!("{zone}/{name}/{rtype}"),
                attrs: vec![("zone", zone.clone()), ("name", name), ("type", rtype)],
                ancestors: vec![(Ty::Zone, zone)],
            })
        }
        ResourceRef::EtcdMember {
            cluster,
            namespace,
            pod,
            endpoint,
        } => etcd_shape(cluster, namespace, pod, endpoint),
        ResourceRef::Path { path } => path_shape(path, action == Action::WorkspaceList),
    }
}

fn variant_name(r: &ResourceRef) -> &'static str {
    match r {
        ResourceRef::Interface { .. } => "Interface",
        ResourceRef::Cluster { .. } => "Cluster",
        ResourceRef::K8s { .. } => "K8s",
        ResourceRef::Bucket { .. } => "Bucket",
        ResourceRef::S3Object { .. } => "S3Object",
        ResourceRef::S3Prefix { .. } => "S3Prefix",
        ResourceRef::Zone { .. } => "Zone",
        ResourceRef::RecordSet { .. } => "RecordSet",
        ResourceRef::EtcdMember { .. } => "EtcdMember",
        ResourceRef::Path { .. } => "Path",
    }
}

fn leaf(ty: Ty, id: String) -> Shape {
    Shape {
        ty,
        id,
        attrs: Vec::new(),
        ancestors: Vec::new(),
    }
}

/// Checks text that becomes one `/`-separated part of an entity id. A `/`
/// would make ids ambiguous (and could walk a URL path on the wire), `%`
/// could be decoded into one by a server, and `.`/`..` are path segments
/// some servers resolve.
fn segment(what: &str, s: &str) -> Result<(), String> {
    plain_segment(what, s, &['/', '%'])?;
    if s == "." || s == ".." {
        return Err(format!("{what} `{s}` is not allowed"));
    }
    Ok(())
}

/// Non-empty, no control characters or whitespace, none of `banned`.
fn plain_segment(what: &str, s: &str, banned: &[char]) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || banned.contains(c))
    {
        return Err(format!(
            "{what} `{}` contains {c:?}, which is not allowed",
            s.escape_debug()
        ));
    }
    Ok(())
}

fn k8s_shape(
    cluster: &str,
    group: &str,
    version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Shape, String> {
    segment("cluster alias", cluster)?;
    if !group.is_empty() {
        segment("API group", group)?;
    }
    if !version.is_empty() {
        segment("API version", version)?;
    }
    segment("kind", kind)?;
    if let Some(ns) = namespace {
        segment("namespace", ns)?;
    }
    if let Some(n) = name {
        segment("object name", n)?;
    }
    let is_namespace_kind = group.is_empty() && kind == "Namespace";
    if is_namespace_kind && namespace.is_some() {
        // A Namespace object is cluster-scoped; a namespace here means the
        // caller confused something, and guessing which one wins is unsafe.
        return Err("a Namespace object has no namespace of its own".to_string());
    }
    let ns = namespace.unwrap_or("");
    let nm = name.unwrap_or("");
    let cluster_anc = (Ty::Cluster, cluster.to_string());
    let ancestors = match (namespace, name) {
        // Namespaced objects (and lists within one namespace).
        (Some(ns), _) => vec![(Ty::Namespace, format!("{cluster}/{ns}")), cluster_anc],
        // The Namespace object X lives inside its own Namespace entity, so
        // "everything in namespace X" covers X itself (and a forbid on
        // deleting Namespaces still sees kind == "Namespace").
        (None, Some(n)) if is_namespace_kind => {
            vec![(Ty::Namespace, format!("{cluster}/{n}")), cluster_anc]
        }
        // Cluster-scoped objects, and lists across all namespaces: only the
        // cluster contains them, so a namespace grant never covers them.
        (None, _) => vec![cluster_anc],
    };
    Ok(Shape {
        ty: Ty::K8sObject,
        id: format!("{cluster}/{group}/{kind}/{ns}/{nm}"),
        attrs: vec![
            ("cluster", cluster.to_string()),
            ("group", group.to_string()),
            ("version", version.to_string()),
            ("kind", kind.to_string()),
            ("namespace", ns.to_string()),
            ("name", nm.to_string()),
        ],
        ancestors,
    })
}

/// Checks an S3 key or prefix. S3 keys are opaque, but `.`/`..` segments and
/// a leading `/` are rejected: some S3-compatible stores and proxies
/// normalise them, so the key written could differ from the key the policy
/// saw.
fn check_key(what: &str, key: &str) -> Result<(), String> {
    if key.starts_with('/') {
        return Err(format!("{what} `{key}` starts with `/`"));
    }
    if key.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("{what} `{key}` contains a `.` or `..` segment"));
    }
    if key.contains('\0') {
        return Err(format!("{what} contains a NUL character"));
    }
    Ok(())
}

/// `bucket/` prefix chain for every `/` in `dirs` (which is a key or a
/// directory prefix), farthest (the bucket) last.
fn s3_prefix_chain(bucket: &str, dirs: &str) -> Vec<(Ty, String)> {
    let mut chain: Vec<(Ty, String)> = dirs
        .match_indices('/')
        .map(|(i, _)| (Ty::S3Prefix, format!("{bucket}/{}", &dirs[..=i])))
        .collect();
    chain.reverse();
    chain.push((Ty::Bucket, bucket.to_string()));
    chain
}

fn s3_object_shape(bucket: &str, key: &str) -> Result<Shape, String> {
    segment("bucket name", bucket)?;
    if key.is_empty() {
        return Err("object key is empty".to_string());
    }
    check_key("object key", key)?;
    Ok(Shape {
        ty: Ty::S3Object,
        id: format!("{bucket}/{key}"),
        attrs: vec![("bucket", bucket.to_string()), ("key", key.to_string())],
        // Every prefix ending in '/' contains the key, including the key
        // itself when it is a "folder marker" ending in '/'.
        ancestors: s3_prefix_chain(bucket, key),
    })
}

/// objects:list is checked on the narrowest entity containing every key the
/// listing can return: the directory part of the prefix (up to its last
/// `/`), or the bucket when there is none. Listing `prod-a` (no slash) also
/// returns `prod-ab/...`, so it needs the whole bucket.
fn s3_list_shape(bucket: &str, prefix: &str) -> Result<Shape, String> {
    segment("bucket name", bucket)?;
    check_key("list prefix", prefix)?;
    let dir = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
    if dir.is_empty() {
        return Ok(leaf(Ty::Bucket, bucket.to_string()));
    }
    let mut chain = s3_prefix_chain(bucket, dir);
    // The first element is the prefix itself; the rest are its ancestors.
    let (ty, id) = chain.remove(0);
    Ok(Shape {
        ty,
        id,
        attrs: Vec::new(),
        ancestors: chain,
    })
}

/// Route53 accepts zone ids with or without the `/hostedzone/` prefix.
fn normalise_zone(zone: &str) -> Result<String, String> {
    let z = zone.trim();
    let z = z
        .strip_prefix("/hostedzone/")
        .or_else(|| z.strip_prefix("hostedzone/"))
        .unwrap_or(z);
    segment("hosted zone id", z)?;
    Ok(z.to_string())
}

/// Record names compare the way Route53 does: case-insensitive, the
/// trailing dot optional, and `\052`-style octal escapes (which Route53
/// returns for `*` and other specials) equal to the character.
pub(crate) fn normalise_record_name(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if digits.len() == 3 && digits.chars().all(|d| ('0'..='7').contains(&d)) {
                let code = u32::from_str_radix(&digits, 8).map_err(|e| e.to_string())?;
                // Only printable ASCII is decoded; anything else keeps its
                // escape so two different names never collapse into one.
                if let Some(ch) = char::from_u32(code).filter(|ch| ch.is_ascii_graphic()) {
                    out.push(ch);
                    for _ in 0..3 {
                        chars.next();
                    }
                    continue;
                }
            }
        }
        out.push(c);
    }
    let mut out = out.to_ascii_lowercase();
    if out.ends_with('.') {
        out.pop();
    }
    plain_segment("record name", &out, &['/'])?;
    Ok(out)
}

fn etcd_shape(cluster: &str, namespace: &str, pod: &str, endpoint: &str) -> Result<Shape, String> {
    let attrs = |c: &str, n: &str, p: &str, e: &str| {
        vec![
            ("cluster", c.to_string()),
            ("namespace", n.to_string()),
            ("pod", p.to_string()),
            ("endpoint", e.to_string()),
        ]
    };
    if endpoint.is_empty() {
        segment("cluster alias", cluster)?;
        segment("namespace", namespace)?;
        segment("pod name", pod)?;
        Ok(Shape {
            ty: Ty::EtcdMember,
            id: format!("pod:{cluster}/{namespace}/{pod}"),
            attrs: attrs(cluster, namespace, pod, ""),
            ancestors: Vec::new(),
        })
    } else {
        if !(cluster.is_empty() && namespace.is_empty() && pod.is_empty()) {
            return Err("an etcd member is either a pod or a configured endpoint, not both".to_string());
        }
        segment("etcd endpoint alias", endpoint)?;
        Ok(Shape {
            ty: Ty::EtcdMember,
            id: format!("endpoint:{endpoint}"),
            attrs: attrs("", "", "", endpoint),
            ancestors: Vec::new(),
        })
    }
}

/// Normalises a workspace path: relative, `/`-separated, without empty or
/// `.` segments. `..` is rejected outright rather than resolved: a path that
/// climbs is either an escape attempt or a bug, and resolving it would let a
/// policy on `a/` be checked against what was written as `b/../a/x`.
pub(crate) fn normalise_path(path: &str) -> Result<Vec<&str>, String> {
    if path.starts_with('/') {
        return Err(format!("workspace path `{path}` is absolute"));
    }
    let mut parts = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(format!("workspace path `{path}` contains `..`")),
            s => {
                if s.contains('\0') {
                    return Err("workspace path contains a NUL character".to_string());
                }
                parts.push(s);
            }
        }
    }
    Ok(parts)
}

/// Files are `Path "a/b/c"`; directories (what workspace:list reads) are
/// `Path "a/b/"`, like S3 prefixes; the root directory is the Workspace.
fn path_shape(path: &str, is_dir: bool) -> Result<Shape, String> {
    let parts = normalise_path(path)?;
    let workspace = (Ty::Workspace, WORKSPACE_ID.to_string());
    if parts.is_empty() {
        if is_dir {
            return Ok(leaf(Ty::Workspace, WORKSPACE_ID.to_string()));
        }
        return Err("workspace path is empty".to_string());
    }
    let mut dirs = Vec::with_capacity(parts.len());
    let mut acc = String::new();
    let last = parts.len() - 1;
    for part in &parts[..last] {
        acc.push_str(part);
        acc.push('/');
        dirs.push((Ty::Path, acc.clone()));
    }
    acc.push_str(parts[last]);
    if is_dir {
        acc.push('/');
    }
    dirs.reverse();
    dirs.push(workspace);
    Ok(Shape {
        ty: Ty::Path,
        id: acc.clone(),
        attrs: vec![("path", acc)],
        ancestors: dirs,
    })
}

/// Entity type names of the schema, parsed once per engine (parsing a name
/// per call would cost more than the rest of building the entities).
pub(crate) struct Types {
    names: Vec<EntityTypeName>,
}

impl Types {
    /// Parses every `Ferry::<Type>` name.
    pub(crate) fn new() -> Result<Self, String> {
        let names = Ty::ALL
            .iter()
            .map(|t| EntityTypeName::from_str(&format!("Ferry::{}", t.name())).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Types { names })
    }

    /// The uid of an entity of type `ty` with id `id`.
    pub(crate) fn uid(&self, ty: Ty, id: &str) -> EntityUid {
        // `Ty::ALL` lists the variants in declaration order, so the
        // discriminant indexes `names`.
        EntityUid::from_type_name_and_id(self.names[ty as usize].clone(), EntityId::new(id))
    }

    /// The resource entity and one entity per ancestor, each carrying its
    /// full ancestor set, so no transitive closure has to be discovered.
    pub(crate) fn build(&self, shape: &Shape) -> Result<(EntityUid, Vec<Entity>), String> {
        let uids: Vec<EntityUid> = shape.ancestors.iter().map(|(t, id)| self.uid(*t, id)).collect();
        let uid = self.uid(shape.ty, &shape.id);
        let attrs: HashMap<String, RestrictedExpression> = shape
            .attrs
            .iter()
            .map(|(k, v)| ((*k).to_string(), RestrictedExpression::new_string(v.clone())))
            .collect();
        let mut out = Vec::with_capacity(uids.len() + 1);
        let resource =
            Entity::new(uid.clone(), attrs, uids.iter().cloned().collect::<HashSet<_>>()).map_err(|e| e.to_string())?;
        out.push(resource);
        for (i, (parent, (ty, id))) in uids.iter().zip(&shape.ancestors).enumerate() {
            let anc: HashSet<EntityUid> = uids[i + 1..].iter().cloned().collect();
            // Directories are `Path` entities too, and `Path` requires `path`.
            let entity = if *ty == Ty::Path {
                let attrs = HashMap::from([("path".to_string(), RestrictedExpression::new_string(id.clone()))]);
                Entity::new(parent.clone(), attrs, anc).map_err(|e| e.to_string())?
            } else {
                Entity::new_no_attrs(parent.clone(), anc)
            };
            out.push(entity);
        }
        Ok((uid, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &Shape) -> Vec<String> {
        s.ancestors.iter().map(|(t, id)| format!("{}:{id}", t.name())).collect()
    }

    #[test]
    fn s3_object_chain() -> Result<(), String> {
        let s = shape(
            Action::ObjectsGet,
            &ResourceRef::S3Object {
                bucket: "b".into(),
                key: "prod-a/etcd/x.db".into(),
            },
        )?;
        assert_eq!(s.id, "b/prod-a/etcd/x.db");
        assert_eq!(ids(&s), ["S3Prefix:b/prod-a/etcd/", "S3Prefix:b/prod-a/", "Bucket:b"]);
        let s = shape(
            Action::ObjectsGet,
            &ResourceRef::S3Object {
                bucket: "b".into(),
                key: "top".into(),
            },
        )?;
        assert_eq!(ids(&s), ["Bucket:b"]);
        Ok(())
    }

    #[test]
    fn s3_list_entity() -> Result<(), String> {
        let list = |p: &str| {
            shape(
                Action::ObjectsList,
                &ResourceRef::S3Prefix {
                    bucket: "b".into(),
                    prefix: p.into(),
                },
            )
        };
        assert_eq!(list("")?.ty, Ty::Bucket);
        assert_eq!(list("prod-a")?.ty, Ty::Bucket, "no slash: may return prod-ab/...");
        let s = list("prod-a/2024")?;
        assert_eq!((s.ty, s.id.as_str()), (Ty::S3Prefix, "b/prod-a/"));
        let s = list("prod-a/x/")?;
        assert_eq!(s.id, "b/prod-a/x/");
        assert_eq!(ids(&s), ["S3Prefix:b/prod-a/", "Bucket:b"]);
        assert!(list("../x/").is_err());
        assert!(list("/x/").is_err());
        Ok(())
    }

    #[test]
    fn k8s_parents() -> Result<(), String> {
        let k = |ns: Option<&str>, kind: &str, name: Option<&str>| {
            shape(
                Action::K8sGet,
                &ResourceRef::K8s {
                    cluster: "src".into(),
                    group: String::new(),
                    version: "v1".into(),
                    kind: kind.into(),
                    namespace: ns.map(Into::into),
                    name: name.map(Into::into),
                },
            )
        };
        let s = k(Some("clusters"), "Secret", Some("x"))?;
        assert_eq!(s.id, "src//Secret/clusters/x");
        assert_eq!(ids(&s), ["Namespace:src/clusters", "Cluster:src"]);
        let s = k(None, "Namespace", Some("clusters"))?;
        assert_eq!(s.id, "src//Namespace//clusters");
        assert_eq!(ids(&s), ["Namespace:src/clusters", "Cluster:src"]);
        let s = k(None, "Namespace", None)?;
        assert_eq!(ids(&s), ["Cluster:src"]);
        let s = k(None, "Secret", None)?;
        assert_eq!(ids(&s), ["Cluster:src"], "all-namespaces list needs the cluster");
        assert!(k(Some("a/b"), "Secret", Some("x")).is_err());
        assert!(k(Some("a"), "Secret", Some("..")).is_err());
        assert!(k(Some("a"), "Secret", Some("x%2Fy")).is_err());
        assert!(k(Some("a"), "Namespace", Some("x")).is_err());
        Ok(())
    }

    #[test]
    fn record_names() -> Result<(), String> {
        assert_eq!(normalise_record_name("\\052.Example.COM.")?, "*.example.com");
        assert_eq!(normalise_record_name("api.example.com")?, "api.example.com");
        assert_eq!(normalise_record_name("a\\001b.example.com")?, "a\\001b.example.com");
        assert!(normalise_record_name(".").is_err());
        let s = shape(
            Action::DnsChange,
            &ResourceRef::RecordSet {
                zone: "/hostedzone/Z1".into(),
                name: "API.x.".into(),
                rtype: "cname".into(),
            },
        )?;
        assert_eq!(s.id, "Z1/api.x/CNAME");
        Ok(())
    }

    #[test]
    fn paths() -> Result<(), String> {
        let p = |path: &str, a| shape(a, &ResourceRef::Path { path: path.into() });
        let s = p("./backup//prod-a/m.json", Action::WorkspaceRead)?;
        assert_eq!(s.id, "backup/prod-a/m.json");
        assert_eq!(ids(&s), ["Path:backup/prod-a/", "Path:backup/", "Workspace:workspace"]);
        let s = p("backup/prod-a", Action::WorkspaceList)?;
        assert_eq!(s.id, "backup/prod-a/");
        assert_eq!(p("", Action::WorkspaceList)?.ty, Ty::Workspace);
        assert!(p("", Action::WorkspaceRead).is_err());
        assert!(p("a/../../etc", Action::WorkspaceRead).is_err());
        assert!(p("/etc/passwd", Action::WorkspaceRead).is_err());
        Ok(())
    }

    #[test]
    fn etcd_ids() -> Result<(), String> {
        let e = |c: &str, n: &str, p: &str, ep: &str| {
            shape(
                Action::EtcdSnapshot,
                &ResourceRef::EtcdMember {
                    cluster: c.into(),
                    namespace: n.into(),
                    pod: p.into(),
                    endpoint: ep.into(),
                },
            )
        };
        assert_eq!(e("m", "ns", "etcd-0", "")?.id, "pod:m/ns/etcd-0");
        assert_eq!(e("", "", "", "test")?.id, "endpoint:test");
        assert!(e("m", "", "", "test").is_err());
        assert!(e("m", "", "etcd-0", "").is_err());
        Ok(())
    }

    #[test]
    fn action_resource_mismatch_is_refused() {
        assert!(shape(Action::ObjectsGet, &ResourceRef::Bucket { bucket: "b".into() }).is_err());
        assert!(shape(Action::K8sOpen, &ResourceRef::Bucket { bucket: "b".into() }).is_err());
    }

    #[test]
    fn type_table_is_indexed_by_discriminant() -> Result<(), String> {
        let types = Types::new()?;
        for (i, t) in Ty::ALL.into_iter().enumerate() {
            assert_eq!(t as usize, i);
            assert_eq!(
                types.uid(t, "x").type_name().to_string(),
                format!("Ferry::{}", t.name())
            );
        }
        Ok(())
    }

    #[test]
    fn versions_are_stripped() {
        assert_eq!(strip_interface_version("ferry:host/k8s@0.1.0"), "ferry:host/k8s");
        assert_eq!(strip_interface_version("ferry:host/k8s"), "ferry:host/k8s");
    }
}
