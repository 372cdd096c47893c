//! CustomResourceDefinitions: what turns a CRD object into served kinds, and what the API
//! server does to custom resources.
//!
//! - [`kinds_of`] checks a CRD the way `k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation`
//!   does (names, scope, versions, one storage version, structural schemas, CEL rules that
//!   compile against the simulator's library) and builds one [`KindInfo`] per served version;
//! - [`admit`] prunes, defaults and validates a custom resource on create, update and status
//!   writes ([`validation`]);
//! - [`load_dir`] and [`CrdSource`] bring CRDs in from files or from another cluster.
//!
//! A CRD that is malformed, not structural, or uses a CEL function the simulator lacks is
//! refused with the field path and the reason, at load and through the API alike.

pub mod cel;
pub mod cel_k8s;
pub mod re2;
pub mod schema;
pub mod validation;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use self::schema::Schema;
use self::validation::{Report, Write};
use super::field::{self, Cause, Path};
use super::names::{self, NameRule};
use super::registry::{Behavior, Column, CreateStatus, KindInfo, ScaleInfo};

/// `fieldValidation` of a write: what to do with fields the schema does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently (what in-process controllers get).
    #[default]
    Ignore,
    /// Drop them and warn (what HTTP requests get when they do not say).
    Warn,
    /// Refuse the request.
    Strict,
}

impl FieldValidation {
    /// Parse the query parameter (`None` = absent = Warn).
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(other.to_string()),
        }
    }
}

/// What admission did to a custom resource.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// Fields dropped by pruning (for `fieldValidation`), sorted.
    pub unknown_fields: Vec<String>,
    /// Validation results.
    pub report: Report,
}

/// Prune, default and validate `obj` (already in `kind`'s version), as the custom resource
/// strategy and decoder do. `obj` is changed in place; the caller turns a non-empty
/// `report.errors` into a 422 and `unknown_fields` into a 400 or warnings.
pub fn admit(kind: &KindInfo, obj: &mut Value, write: Write<'_>) -> Admitted {
    let Some(schema) = kind.schema.as_deref() else {
        return Admitted::default();
    };
    let unknown_fields = validation::prune(obj, schema);
    validation::default(obj, schema);
    let report = validation::validate(schema, obj, write);
    Admitted { unknown_fields, report }
}

/// What a read through `kind` does to a stored custom resource: the API server prunes and
/// defaults objects decoded from storage with the served version's schema too.
pub fn on_read(kind: &KindInfo, obj: &mut Value) {
    if let Some(schema) = kind.schema.as_deref() {
        validation::prune(obj, schema);
        validation::default(obj, schema);
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn strings(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Fill what the API server defaults on a CRD (`SetDefaults_CustomResourceDefinition`):
/// `singular`, `listKind`, the conversion strategy.
pub fn default_crd(crd: &mut Value) {
    let kind = s(crd, "/spec/names/kind").unwrap_or_default().to_string();
    if let Some(names) = crd.pointer_mut("/spec/names").and_then(Value::as_object_mut) {
        if names.get("singular").and_then(Value::as_str).is_none_or(str::is_empty) && !kind.is_empty() {
            names.insert("singular".into(), json!(kind.to_ascii_lowercase()));
        }
        if names.get("listKind").and_then(Value::as_str).is_none_or(str::is_empty) && !kind.is_empty() {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut)
        && spec.get("conversion").is_none_or(Value::is_null)
    {
        spec.insert("conversion".into(), json!({"strategy": "None"}));
    }
}

/// Check a CRD and build one row per served version.
pub fn kinds_of(crd: &Value) -> Result<Vec<KindInfo>, Vec<Cause>> {
    let mut causes = Vec::new();
    let group = s(crd, "/spec/group").unwrap_or_default();
    let plural = s(crd, "/spec/names/plural").unwrap_or_default();
    let kind = s(crd, "/spec/names/kind").unwrap_or_default();
    let name = s(crd, "/metadata/name").unwrap_or_default();
    let spec = Path::root().child("spec");
    if group.is_empty() {
        causes.push(field::required(&spec.child("group"), ""));
    } else if !group.contains('.') {
        causes.push(field::invalid_str(
            &spec.child("group"),
            group,
            "should be a domain with at least one dot",
        ));
    } else {
        for m in names::dns1123_subdomain(group) {
            causes.push(field::invalid_str(&spec.child("group"), group, &m));
        }
    }
    let npath = spec.child("names");
    if plural.is_empty() {
        causes.push(field::required(&npath.child("plural"), ""));
    } else {
        for m in names::dns1035_label(plural) {
            causes.push(field::invalid_str(&npath.child("plural"), plural, &m));
        }
    }
    if kind.is_empty() {
        causes.push(field::required(&npath.child("kind"), ""));
    }
    if name != format!("{plural}.{group}") {
        causes.push(field::invalid_str(
            &Path::root().child("metadata").child("name"),
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let namespaced = match s(crd, "/spec/scope") {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            causes.push(field::not_supported(
                &spec.child("scope"),
                &json!(other.unwrap_or_default()),
                &[json!("Cluster"), json!("Namespaced")],
            ));
            true
        }
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let vpath = spec.child("versions");
    if versions.is_empty() {
        causes.push(field::required(
            &vpath,
            "must have exactly one version marked as storage version",
        ));
    }
    let storage: Vec<&str> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    if !versions.is_empty() && storage.len() != 1 {
        causes.push(field::invalid(
            &vpath,
            &Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    let storage_version = storage.first().copied().unwrap_or_default().to_string();
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let ipath = vpath.index(i);
        let vname = v.get("name").and_then(Value::as_str).unwrap_or_default();
        for m in names::dns1035_label(vname) {
            causes.push(field::invalid_str(&ipath.child("name"), vname, &m));
        }
        if seen.contains(&vname) {
            causes.push(field::invalid_str(&ipath.child("name"), vname, "must be unique"));
        }
        seen.push(vname);
        let schema_path = ipath.child("schema").child("openAPIV3Schema");
        let Some(raw) = v.pointer("/schema/openAPIV3Schema") else {
            causes.push(field::required(&schema_path, "schemas are required"));
            continue;
        };
        if raw.get("type").and_then(Value::as_str) != Some("object") {
            causes.push(field::invalid(
                &schema_path.child("type"),
                raw.get("type").unwrap_or(&Value::Null),
                "must be object at the root",
            ));
        }
        let schema = match Schema::parse_at(raw, &schema_path) {
            Ok(s) => s,
            Err(mut c) => {
                causes.append(&mut c);
                continue;
            }
        };
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let mut row = KindInfo::builtin(group, vname, kind, plural, namespaced);
        row.strategic_merge = false;
        row.generation = true;
        row.name_rule = NameRule::Subdomain;
        row.singular = s(crd, "/spec/names/singular")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_ascii_lowercase());
        row.list_kind = s(crd, "/spec/names/listKind")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("{kind}List"));
        row.short_names = strings(crd, "/spec/names/shortNames");
        row.categories = strings(crd, "/spec/names/categories");
        row.storage_version = storage_version.clone();
        if v.pointer("/subresources/status").is_some() {
            row.status = true;
            row.create_status = CreateStatus::Clear;
        }
        if let Some(sc) = v.pointer("/subresources/scale") {
            row.scale = Some(ScaleInfo {
                spec_replicas: s(sc, "/specReplicasPath").unwrap_or(".spec.replicas").to_string(),
                status_replicas: s(sc, "/statusReplicasPath").unwrap_or(".status.replicas").to_string(),
                label_selector: s(sc, "/labelSelectorPath").map(str::to_string),
            });
        }
        row.columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(Column {
                            name: c.get("name")?.as_str()?.to_string(),
                            path: c.get("jsonPath")?.as_str()?.to_string(),
                            type_: c.get("type").and_then(Value::as_str).unwrap_or("string").to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        row.field_selectors = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        if v.get("deprecated").and_then(Value::as_bool) == Some(true) {
            row.deprecation_warning = Some(
                v.get("deprecationWarning")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{group}/{vname} {kind} is deprecated")),
            );
        }
        row.behavior = Behavior::Stored;
        row.schema = Some(Arc::new(schema));
        row.openapi = Some(Arc::new(raw.clone()));
        row.crd = Some(name.to_string());
        out.push(row);
    }
    if causes.is_empty() { Ok(out) } else { Err(causes) }
}

/// The status the API server's CRD controllers give an accepted CRD (names accepted,
/// established, stored versions).
pub fn status_of(crd: &Value, old_status: Option<&Value>) -> Value {
    let mut stored: Vec<String> = old_status.map(|s| strings(s, "/storedVersions")).unwrap_or_default();
    if let Some(v) = crd.pointer("/spec/versions").and_then(Value::as_array).and_then(|vs| {
        vs.iter()
            .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .and_then(|v| v.get("name").and_then(Value::as_str))
    }) && !stored.iter().any(|s| s == v)
    {
        stored.push(v.to_string());
    }
    let since = old_status
        .and_then(|s| s.pointer("/conditions/0/lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(super::meta::now()));
    json!({
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({})),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since},
        ],
        "storedVersions": stored,
    })
}

/// Where a simulated server's CustomResourceDefinitions come from.
#[derive(Debug, Clone, Default)]
pub enum CrdSource {
    /// The minimal built-in definitions (no schemas): [`super::registry::hypershift_fallback`].
    #[default]
    Builtin,
    /// Every CRD file of a directory (`--crds DIR`).
    Dir(PathBuf),
    /// CRD objects read from a live cluster (`--crds-from KUBECONFIG`), with where from.
    Objects {
        /// What the objects came from, for messages.
        origin: String,
        /// The `CustomResourceDefinition` objects.
        crds: Vec<Value>,
    },
}

impl CrdSource {
    /// One line saying which definitions a simulator serves.
    pub fn describe(&self) -> String {
        match self {
            CrdSource::Builtin => "built-in minimal definitions (no schemas, no validation)".into(),
            CrdSource::Dir(d) => format!("CRDs from {}", d.display()),
            CrdSource::Objects { origin, crds } => format!("{} CRDs read from {origin}", crds.len()),
        }
    }

    /// The CRD objects, each with a label for messages (its file, or its origin).
    pub fn load(&self) -> Result<Vec<(String, Value)>, CrdLoadError> {
        match self {
            CrdSource::Builtin => Ok(Vec::new()),
            CrdSource::Dir(d) => load_dir(d),
            CrdSource::Objects { origin, crds } => Ok(crds
                .iter()
                .map(|c| {
                    (
                        format!("{origin}: {}", s(c, "/metadata/name").unwrap_or("?")),
                        c.clone(),
                    )
                })
                .collect()),
        }
    }
}

/// Why CRDs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CrdLoadError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not YAML or JSON.
    #[error("{path} is not a valid YAML or JSON document: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A document is not a CustomResourceDefinition.
    #[error(
        "{path}: not an apiextensions.k8s.io/v1 CustomResourceDefinition (apiVersion {api_version:?}, kind {kind:?})"
    )]
    NotACrd {
        /// The file.
        path: PathBuf,
        /// What it says it is.
        api_version: String,
        /// Its kind.
        kind: String,
    },
    /// A CRD was refused.
    #[error(
        "{origin}: CustomResourceDefinition {name:?} is refused: {}",
        field::aggregate(causes)
    )]
    Invalid {
        /// The file or origin.
        origin: String,
        /// The CRD name.
        name: String,
        /// Each problem with its field path.
        causes: Vec<Cause>,
    },
    /// The directory holds no CRD.
    #[error("{0} holds no CustomResourceDefinition (*.yaml, *.yml or *.json)")]
    Empty(PathBuf),
}

/// Read every `*.yaml`, `*.yml` and `*.json` file of `dir` (sorted; multi-document YAML
/// allowed) and check each CRD, so that a bad one is refused naming its file.
pub fn load_dir(dir: &FsPath) -> Result<Vec<(String, Value)>, CrdLoadError> {
    let read = |p: &FsPath| CrdLoadError::Read {
        path: p.to_path_buf(),
        source: std::io::Error::other("unreadable"),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| CrdLoadError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| CrdLoadError::Read {
            path: path.clone(),
            source,
        })?;
        for doc in split_documents(&text) {
            let v: Value = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(doc).map_err(|e| CrdLoadError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            } else {
                serde_saphyr::from_str(doc).map_err(|e| CrdLoadError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            };
            if v.is_null() {
                continue;
            }
            check_file_crd(&path, &v)?;
            out.push((path.display().to_string(), v));
        }
    }
    if out.is_empty() {
        return Err(read(dir)).or(Err(CrdLoadError::Empty(dir.to_path_buf())));
    }
    Ok(out)
}

fn check_file_crd(path: &FsPath, v: &Value) -> Result<(), CrdLoadError> {
    let api_version = s(v, "/apiVersion").unwrap_or_default();
    let kind = s(v, "/kind").unwrap_or_default();
    if api_version != "apiextensions.k8s.io/v1" || kind != "CustomResourceDefinition" {
        return Err(CrdLoadError::NotACrd {
            path: path.to_path_buf(),
            api_version: api_version.into(),
            kind: kind.into(),
        });
    }
    let mut defaulted = v.clone();
    default_crd(&mut defaulted);
    kinds_of(&defaulted)
        .map(|_| ())
        .map_err(|causes| CrdLoadError::Invalid {
            origin: path.display().to_string(),
            name: s(v, "/metadata/name").unwrap_or_default().to_string(),
            causes,
        })
}

/// Split a YAML stream on `---` document markers.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.io"},
            "spec": {
                "group": "example.io",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
                "scope": "Namespaced",
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}}}}}},
                    {"name": "v1beta1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            }
        })
    }

    #[test]
    fn a_crd_becomes_its_served_versions() {
        let mut c = crd();
        default_crd(&mut c);
        let kinds = kinds_of(&c).expect("valid");
        assert_eq!(kinds.len(), 1);
        let k = &kinds[0];
        assert_eq!(
            (k.group.as_str(), k.version.as_str(), k.list_kind.as_str()),
            ("example.io", "v1", "WidgetList")
        );
        assert!(k.status && k.schema.is_some() && !k.strategic_merge);
        assert_eq!(k.short_names, ["wd"]);
        let status = status_of(&c, None);
        assert_eq!(status["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn bad_crds_are_refused_with_paths() {
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["x"] =
            json!({"type": "string", "x-kubernetes-validations": [{"rule": "self.nope()"}]});
        let causes = kinds_of(&c).expect_err("refused");
        let text = field::aggregate(&causes);
        assert!(
            text.contains("metadata.name: Invalid value: \"wrong\": must be spec.names.plural+\".\"+spec.group"),
            "{text}"
        );
        assert!(
            text.contains("must have exactly one version marked as storage version"),
            "{text}"
        );
        assert!(
            text.contains("properties[x].x-kubernetes-validations[0].rule"),
            "{text}"
        );
    }

    #[test]
    fn documents_split_on_markers() {
        assert_eq!(split_documents("a: 1\n---\nb: 2\n"), ["a: 1\n", "b: 2\n"]);
        assert_eq!(split_documents("---\na: 1\n"), ["a: 1\n"]);
    }
}
