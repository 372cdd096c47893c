//! `ferry-sim crd-tests`: CRD validation suites in the format of HyperShift's
//! `cmd/install/assets/crds/.../tests` (and openshift/api's `tests/`), run through the
//! simulator's HTTP API exactly as upstream's envtest harness (`test/envtest/generator.go`)
//! runs them against kube-apiserver:
//! - each suite runs against every CRD file of the directory whose `metadata.name` is its
//!   `crdName`; a suite that names `featureGates` runs against the CRDs of a feature set other
//!   than Default (here: the TechPreviewNoUpgrade one), since Default enables no gated field;
//! - the CRD is installed with only the suite's version, served and stored;
//! - every object is created with `generateName: test-` in namespace `default`;
//! - `expectedError` is a substring of the API server's message; `expected` is compared on
//!   `spec` and `status` only;
//! - `onUpdate` creates `initial`, then PUTs `updated` and, when it has a status, PUTs
//!   `/status`; `initialCRDPatches` loosen the CRD for the create and restore it after, with
//!   the harness's sentinel field proving the restored schema is live;
//! - after each case the objects of `default` are deleted, after each suite the CRD.
//!
//! Any suite file in this format runs as it is, read as upstream reads it: the suite with
//! `sigs.k8s.io/yaml.Unmarshal` into `SuiteSpec` (`loadSuiteFile`), each object with
//! `k8s.io/apimachinery/pkg/util/yaml.Unmarshal` (`newUnstructuredFrom`); see [`sigs_yaml`]
//! for what that means (YAML 1.1 scalars, the last duplicate key winning, field names matched
//! case-insensitively, unknown fields ignored).

mod sigs_yaml;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kube::crd::CrdSource;
use crate::kube::registry::Registry;
use crate::kube::{Sim, SimOptions};

/// One suite file (upstream `test/envtest/types.go`, `SuiteSpec`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suite {
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// `metadata.name` of the CRD under test.
    pub crd_name: String,
    /// The version the cases are written in (`None` when the suite names none, or an empty one).
    #[serde(default)]
    pub version: Option<String>,
    /// Feature gates the suite needs.
    #[serde(default)]
    pub feature_gates: Vec<String>,
    /// The cases.
    #[serde(default)]
    pub tests: Tests,
}

/// The cases of a suite.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tests {
    /// Create-only cases.
    #[serde(default)]
    pub on_create: Vec<CreateCase>,
    /// Create-then-update cases.
    #[serde(default)]
    pub on_update: Vec<UpdateCase>,
}

/// A create case.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateCase {
    /// Its name.
    pub name: String,
    /// The object, as YAML text.
    pub initial: String,
    /// A substring of the error the create must fail with.
    #[serde(default)]
    pub expected_error: String,
    /// The object as stored, as YAML text (`spec` and `status` compared).
    #[serde(default)]
    pub expected: String,
}

/// An update case.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCase {
    /// Its name.
    pub name: String,
    /// The object created first, as YAML text.
    pub initial: String,
    /// The object it is replaced with, as YAML text.
    pub updated: String,
    /// The object as stored after the update.
    #[serde(default)]
    pub expected: String,
    /// A substring of the error the update must fail with.
    #[serde(default)]
    pub expected_error: String,
    /// A substring of the error the status update must fail with.
    #[serde(default)]
    pub expected_status_error: String,
    /// JSON patch operations applied to the CRD file before `initial` is created.
    #[serde(default, rename = "initialCRDPatches")]
    pub initial_crd_patches: Vec<Patch>,
}

/// One operation of `initialCRDPatches` (upstream `types.go`, `Patch`: `op`, `path` and a
/// `*interface{}` `value`; it has no `from`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Patch {
    /// `add`, `remove`, `replace`, `test`.
    pub op: String,
    /// A JSON pointer into the CRD.
    pub path: String,
    /// The value, `None` when absent or null.
    #[serde(default)]
    pub value: Option<Value>,
}

/// The Go types of upstream's suite format (`test/envtest/types.go`) as `encoding/json` sees
/// them: JSON names in declaration order. `sigs.k8s.io/yaml` matches a suite's keys against
/// these (and turns a number or boolean headed for one of the strings into its text).
mod spec_types {
    use super::sigs_yaml::GoType::{self, Interface, Slice, String, Struct};

    const PATCH: GoType = Struct(&[("op", String), ("path", String), ("value", Interface)]);
    const ON_CREATE: GoType = Struct(&[
        ("name", String),
        ("initial", String),
        ("expectedError", String),
        ("expected", String),
    ]);
    const ON_UPDATE: GoType = Struct(&[
        ("name", String),
        ("initialCRDPatches", Slice(&PATCH)),
        ("initial", String),
        ("updated", String),
        ("expectedError", String),
        ("expectedStatusError", String),
        ("expected", String),
    ]);
    const TESTS: GoType = Struct(&[("onCreate", Slice(&ON_CREATE)), ("onUpdate", Slice(&ON_UPDATE))]);
    /// `SuiteSpec` (`PerTestRuntimeInfo` is `json:"-"`).
    pub(super) const SUITE_SPEC: GoType = Struct(&[
        ("name", String),
        ("crdName", String),
        ("featureGates", Slice(&String)),
        ("version", String),
        ("tests", TESTS),
    ]);
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// As expected.
    Pass,
    /// Not as expected: what was seen.
    Fail(String),
    /// Failed, and listed as a known divergence with this reason.
    Known(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The suite file.
    pub suite: String,
    /// The CRD file it ran against.
    pub crd_file: String,
    /// `onCreate` or `onUpdate`.
    pub phase: &'static str,
    /// The case's name.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
}

impl std::fmt::Display for CaseResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = format!("[{}][{}] {}: {}", self.suite, self.crd_file, self.phase, self.name);
        match &self.outcome {
            Outcome::Pass => write!(f, "PASS {head}"),
            Outcome::Fail(why) => write!(f, "FAIL {head}\n     {why}"),
            Outcome::Known(why) => write!(f, "KNOWN {head} (known divergence: {why})"),
        }
    }
}

/// A case upstream's suites hold that the simulator is known not to pass, with the reason.
#[derive(Debug, Clone, Deserialize)]
pub struct KnownDivergence {
    /// The suite file name.
    pub suite: String,
    /// The case name.
    pub case: String,
    /// Why it cannot pass yet.
    pub reason: String,
}

#[derive(Debug, Default, Deserialize)]
struct KnownFile {
    #[serde(default)]
    divergence: Vec<KnownDivergence>,
}

/// Where HyperShift's upstream data (CRDs and CRD test suites) lives for ferry's own tests:
/// `$FERRY_UPSTREAM_DIR`, else the nearest `shared/upstream` beside the checkout or one of its
/// parents (`../shared/upstream` for a checkout next to it). The files stay out of the project
/// (they are upstream's); `None` when no such directory holds `hypershift/crds`.
pub fn upstream_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FERRY_UPSTREAM_DIR").map(PathBuf::from) {
        return dir.join("hypershift/crds").is_dir().then_some(dir);
    }
    // The sim crate sits in the checkout: start beside the checkout, then go up.
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    checkout
        .ancestors()
        .skip(1)
        .map(|a| a.join("shared/upstream"))
        .find(|d| d.join("hypershift/crds").is_dir())
}

/// Read a known-divergences file (TOML, `[[divergence]]` tables).
pub fn load_known(path: &Path) -> anyhow::Result<Vec<KnownDivergence>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let f: KnownFile = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display()))?;
    Ok(f.divergence)
}

/// Parse a suite file (see [`parse_suite`]).
pub fn load_suite(path: &Path) -> anyhow::Result<Suite> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    parse_suite(&text).map_err(|e| anyhow::anyhow!("{} is not a CRD test suite: {e:#}", path.display()))
}

/// Parse a suite's text as upstream's `loadSuiteFile` (`test/envtest/generator.go`) does:
/// `sigs.k8s.io/yaml.Unmarshal` into `SuiteSpec` ([`sigs_yaml`]), so every file upstream
/// accepts is accepted with the same meaning: YAML 1.1 scalars, the last of duplicate keys
/// winning, field names matched exactly or else case-insensitively (`Name`, `NAME`), unknown
/// fields ignored, a number or boolean given for a text field taken as its text. As upstream,
/// a suite without `crdName` is refused.
pub fn parse_suite(text: &str) -> anyhow::Result<Suite> {
    let json = sigs_yaml::unmarshal_struct(text, spec_types::SUITE_SPEC)?;
    let mut suite: Suite = serde_json::from_value(json)?;
    if suite.crd_name.is_empty() {
        anyhow::bail!("the suite is invalid: missing required field `crdName` (the CRD's metadata.name)");
    }
    if suite.version.as_deref() == Some("") {
        suite.version = None;
    }
    for case in &mut suite.tests.on_update {
        for p in &mut case.initial_crd_patches {
            // A `*interface{}` holds numbers as float64; the patched CRD is YAML again upstream,
            // where an integral one reads back as an integer.
            if let Some(v) = p.value.as_mut() {
                sigs_yaml::convert_numbers(v);
            }
            if p.value == Some(Value::Null) {
                p.value = None;
            }
        }
    }
    Ok(suite)
}

/// The CRD files of `dir` a suite runs against.
fn crd_files_for(dir: &Path, suite: &Suite) -> anyhow::Result<Vec<(PathBuf, Value)>> {
    let mut out = Vec::new();
    for (origin, crd) in CrdSource::Dir(dir.to_path_buf()).load()? {
        if crd.pointer("/metadata/name").and_then(Value::as_str) != Some(suite.crd_name.as_str()) {
            continue;
        }
        let feature_set = crd
            .pointer("/metadata/annotations/release.openshift.io~1feature-set")
            .and_then(Value::as_str)
            .unwrap_or("");
        let gated = !suite.feature_gates.is_empty();
        let default_set = feature_set.is_empty() || feature_set == "Default";
        if gated && default_set {
            continue;
        }
        out.push((PathBuf::from(origin), crd));
    }
    Ok(out)
}

/// The CRD with only `version`, served and stored (`loadVersionedCRD`).
fn versioned(crd: &Value, version: Option<&str>) -> anyhow::Result<Value> {
    let mut c = crd.clone();
    let versions = c
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let keep: Vec<Value> = match version {
        Some(v) => versions
            .into_iter()
            .filter(|x| x.get("name").and_then(Value::as_str) == Some(v))
            .collect(),
        None if versions.len() == 1 => versions,
        None => anyhow::bail!("the suite names no version and the CRD has {}", versions.len()),
    };
    let Some(mut only) = keep.into_iter().next() else {
        anyhow::bail!("the CRD has no version {version:?}");
    };
    only["served"] = json!(true);
    only["storage"] = json!(true);
    c["spec"]["versions"] = json!([only]);
    if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        m.retain(|k, _| k == "name" || k == "annotations" || k == "labels");
    }
    if let Some(m) = c.as_object_mut() {
        m.remove("status");
    }
    Ok(c)
}

/// A case's object as upstream's `newUnstructuredFrom` makes it: the YAML read with
/// `k8s.io/apimachinery/pkg/util/yaml.Unmarshal` ([`sigs_yaml::unmarshal_object`]), then
/// `generateName: test-`, no `name`, namespace `default`.
fn decode(yaml: &str) -> anyhow::Result<Value> {
    let mut v = Value::Object(sigs_yaml::unmarshal_object(yaml)?);
    let meta = v
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("the object is not a map"))?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("name");
        m.insert("generateName".into(), json!("test-"));
        m.insert("namespace".into(), json!("default"));
    }
    Ok(v)
}

fn to_dynamic(v: &Value) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(v.clone())?)
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn message(e: &::kube::Error) -> String {
    match e {
        ::kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn compare(got: &Value, expected: &Value) -> Result<(), String> {
    for part in ["spec", "status"] {
        if let Some(want) = expected.get(part)
            && got.get(part) != Some(want)
        {
            return Err(format!(
                "{part} differs:\n       expected {}\n       got      {}",
                want,
                got.get(part).unwrap_or(&Value::Null)
            ));
        }
    }
    Ok(())
}

fn expect_error(result: Result<DynamicObject, ::kube::Error>, want: &str, what: &str) -> Result<(), String> {
    match result {
        Ok(_) => Err(format!("{what} succeeded; expected an error containing {want:?}")),
        Err(e) if message(&e).contains(want) => Ok(()),
        Err(e) => Err(format!(
            "{what} failed with {:?}; expected it to contain {want:?}",
            message(&e)
        )),
    }
}

struct Runner {
    client: ::kube::Client,
    crds: Api<DynamicObject>,
}

fn crd_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    )
}

impl Runner {
    fn objects(&self, crd: &Value, version: &str) -> Api<DynamicObject> {
        let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        let gvk = GroupVersionKind::gvk(&s("/spec/group"), version, &s("/spec/names/kind"));
        let ar = ApiResource::from_gvk_with_plural(&gvk, &s("/spec/names/plural"));
        Api::namespaced_with(self.client.clone(), "default", &ar)
    }

    async fn install(&self, crd: &Value) -> anyhow::Result<()> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match self.crds.get_opt(name).await? {
            None => {
                self.crds.create(&PostParams::default(), &to_dynamic(crd)?).await?;
            }
            Some(live) => {
                let mut c = crd.clone();
                c["metadata"]["resourceVersion"] = json!(live.metadata.resource_version);
                self.crds
                    .replace(name, &PostParams::default(), &to_dynamic(&c)?)
                    .await?;
            }
        }
        // WaitForCRDs: the resource shows in discovery.
        let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
        let version = crd
            .pointer("/spec/versions/0/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for _ in 0..100 {
            let req = http::Request::get(format!("/apis/{group}/{version}")).body(Vec::new())?;
            if let Ok(list) = self.client.request::<Value>(req).await
                && list["resources"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x["name"] == plural))
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("{plural}.{group}/{version} never appeared in discovery")
    }

    async fn uninstall(&self, crd: &Value) -> anyhow::Result<()> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let _ = self.crds.delete(name, &DeleteParams::default()).await;
        for _ in 0..100 {
            if self.crds.get_opt(name).await?.is_none() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the CRD {name} was never deleted")
    }

    async fn on_create(&self, objects: &Api<DynamicObject>, case: &CreateCase) -> Result<(), String> {
        let initial = decode(&case.initial).map_err(|e| format!("initial: {e}"))?;
        let created = objects
            .create(
                &PostParams::default(),
                &to_dynamic(&initial).map_err(|e| e.to_string())?,
            )
            .await;
        if !case.expected_error.is_empty() {
            return expect_error(created, &case.expected_error, "create");
        }
        let created = created.map_err(|e| format!("create failed: {}", message(&e)))?;
        if !case.expected.is_empty() {
            let name = created.metadata.name.clone().unwrap_or_default();
            let got = objects.get(&name).await.map_err(|e| message(&e))?;
            let expected = decode(&case.expected).map_err(|e| format!("expected: {e}"))?;
            compare(&to_value(&got), &expected)?;
        }
        Ok(())
    }

    /// Put the CRD at `spec` with the harness's sentinel property, whose only allowed value is
    /// `sentinel`.
    async fn put_crd_with_sentinel(&self, crd_name: &str, spec: &Value, sentinel: Option<&str>) -> Result<(), String> {
        let live = self.crds.get(crd_name).await.map_err(|e| message(&e))?;
        let mut c = to_value(&live);
        c["spec"] = spec.clone();
        if let Some(s) = sentinel {
            c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["sentinel"] =
                json!({"type": "string", "enum": [s]});
        }
        self.crds
            .replace(
                crd_name,
                &PostParams::default(),
                &to_dynamic(&c).map_err(|e| e.to_string())?,
            )
            .await
            .map_err(|e| format!("cannot update the CRD: {}", message(&e)))?;
        Ok(())
    }

    async fn on_update(
        &self,
        objects: &Api<DynamicObject>,
        file_crd: &Value,
        crd_name: &str,
        case: &UpdateCase,
    ) -> Result<(), String> {
        let set = [&case.expected, &case.expected_error, &case.expected_status_error]
            .iter()
            .filter(|s| !s.is_empty())
            .count();
        if set != 1 {
            return Err("exactly one of expected, expectedError and expectedStatusError must be set".into());
        }
        let mut initial = decode(&case.initial).map_err(|e| format!("initial: {e}"))?;
        let original_spec = to_value(&self.crds.get(crd_name).await.map_err(|e| message(&e))?)["spec"].clone();
        let patched = !case.initial_crd_patches.is_empty();
        if patched {
            let ops: Vec<Value> = case
                .initial_crd_patches
                .iter()
                .map(|p| json!({"op": p.op, "path": p.path, "value": p.value.clone().unwrap_or(Value::Null)}))
                .collect();
            let ops: json_patch::Patch =
                serde_json::from_value(Value::Array(ops)).map_err(|e| format!("initialCRDPatches: {e}"))?;
            let mut on_disk = file_crd.clone();
            json_patch::patch(&mut on_disk, &ops).map_err(|e| format!("initialCRDPatches: {e}"))?;
            self.put_crd_with_sentinel(crd_name, &on_disk["spec"], Some("+patched"))
                .await?;
            initial["sentinel"] = json!("+patched");
        }
        let status = initial.get("status").cloned();
        let mut created = None;
        let mut last = String::new();
        for _ in 0..50 {
            match objects
                .create(
                    &PostParams::default(),
                    &to_dynamic(&initial).map_err(|e| e.to_string())?,
                )
                .await
            {
                Ok(o) => {
                    created = Some(o);
                    break;
                }
                Err(e) => last = message(&e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut created = created.ok_or_else(|| format!("the initial object was refused: {last}"))?;
        let name = created.metadata.name.clone().unwrap_or_default();
        if let Some(s) = status.filter(|s| !s.is_null()) {
            let mut v = to_value(&created);
            v["status"] = s;
            created = objects
                .replace_status(
                    &name,
                    &PostParams::default(),
                    &to_dynamic(&v).map_err(|e| e.to_string())?,
                )
                .await
                .map_err(|e| format!("the initial status was refused: {}", message(&e)))?;
        }
        if patched {
            let uid = created.metadata.uid.clone().unwrap_or_default();
            let restored = format!("{uid}+restored");
            self.put_crd_with_sentinel(crd_name, &original_spec, Some(&restored))
                .await?;
            let mut ok = false;
            for _ in 0..50 {
                let mut v = to_value(&created);
                v["sentinel"] = json!(restored);
                if objects
                    .replace(
                        &name,
                        &PostParams::default(),
                        &to_dynamic(&v).map_err(|e| e.to_string())?,
                    )
                    .await
                    .is_ok()
                {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !ok {
                return Err("the object was never accepted by the restored CRD".into());
            }
            self.put_crd_with_sentinel(crd_name, &original_spec, None).await?;
        }
        let current = objects.get(&name).await.map_err(|e| message(&e))?;
        let mut updated = decode(&case.updated).map_err(|e| format!("updated: {e}"))?;
        updated["metadata"]["name"] = json!(name);
        updated["metadata"]["resourceVersion"] = json!(current.metadata.resource_version);
        let updated_status = updated.get("status").cloned();
        let result = objects
            .replace(
                &name,
                &PostParams::default(),
                &to_dynamic(&updated).map_err(|e| e.to_string())?,
            )
            .await;
        if !case.expected_error.is_empty() {
            return expect_error(result, &case.expected_error, "update");
        }
        let after = result.map_err(|e| format!("update failed: {}", message(&e)))?;
        if let Some(s) = updated_status.filter(|s| !s.is_null()) {
            let mut v = to_value(&after);
            v["status"] = s;
            let result = objects
                .replace_status(
                    &name,
                    &PostParams::default(),
                    &to_dynamic(&v).map_err(|e| e.to_string())?,
                )
                .await;
            if !case.expected_status_error.is_empty() {
                return expect_error(result, &case.expected_status_error, "status update");
            }
            result.map_err(|e| format!("status update failed: {}", message(&e)))?;
        }
        if !case.expected.is_empty() {
            let got = objects.get(&name).await.map_err(|e| message(&e))?;
            let expected = decode(&case.expected).map_err(|e| format!("expected: {e}"))?;
            compare(&to_value(&got), &expected)?;
        }
        Ok(())
    }
}

/// Run suite files against the CRDs of `crd_dir`, each on a fresh simulated API server.
/// Cases listed in `known` that fail are reported as known divergences.
pub async fn run(crd_dir: &Path, files: &[PathBuf], known: &[KnownDivergence]) -> anyhow::Result<Vec<CaseResult>> {
    let mut results = Vec::new();
    for file in files {
        let suite = load_suite(file)?;
        let suite_name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let crds = crd_files_for(crd_dir, &suite)?;
        if crds.is_empty() {
            anyhow::bail!(
                "{}: no CRD named {} in {} fits the suite (featureGates {:?})",
                file.display(),
                suite.crd_name,
                crd_dir.display(),
                suite.feature_gates
            );
        }
        for (crd_file, file_crd) in crds {
            let crd_label = crd_file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let sim = Sim::start_with(SimOptions {
                registry: Registry::core(),
                crds: CrdSource::Builtin,
                ..SimOptions::new("crd-tests")
            })
            .await?;
            let config = ::kube::Config::new(sim.url().parse()?);
            let client = ::kube::Client::try_from(config)?;
            let runner = Runner {
                crds: Api::all_with(client.clone(), &crd_resource()),
                client,
            };
            let crd = versioned(&file_crd, suite.version.as_deref())?;
            runner.install(&crd).await?;
            let version = crd
                .pointer("/spec/versions/0/name")
                .and_then(Value::as_str)
                .unwrap_or("v1");
            let objects = runner.objects(&crd, version);
            let mut record = |phase: &'static str, name: &str, r: Result<(), String>| {
                let outcome = match r {
                    Ok(()) => Outcome::Pass,
                    Err(why) => match known.iter().find(|k| k.suite == suite_name && k.case == name) {
                        Some(k) => Outcome::Known(k.reason.clone()),
                        None => Outcome::Fail(why),
                    },
                };
                results.push(CaseResult {
                    suite: suite_name.clone(),
                    crd_file: crd_label.clone(),
                    phase,
                    name: name.to_string(),
                    outcome,
                });
            };
            for case in &suite.tests.on_create {
                let r = runner.on_create(&objects, case).await;
                record("onCreate", &case.name, r);
                let _ = objects
                    .delete_collection(&DeleteParams::default(), &ListParams::default())
                    .await;
            }
            let crd_name = suite.crd_name.clone();
            for case in &suite.tests.on_update {
                let r = runner.on_update(&objects, &file_crd, &crd_name, case).await;
                record("onUpdate", &case.name, r);
                let _ = objects
                    .delete_collection(&DeleteParams::default(), &ListParams::default())
                    .await;
            }
            runner.uninstall(&crd).await?;
            sim.shutdown().await;
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A suite as upstream's `loadSuiteFile` accepts it: duplicate keys (the last wins),
    /// field names in any case, unknown fields, YAML 1.1 scalars, numbers and booleans for
    /// text fields.
    const SUITE: &str = r#"
name: first
Name: ignored, `name` sorts after `Name` and wins
crdName: widgets.ferry.test
version: v2
version: v1
description: an unknown field, ignored
FeatureGates: [Gate, 7]
tests:
  onCreate:
  - name: duplicate keys
    initial: "first"
    initial: "last"
    expectedError: yes
    owner: an unknown field of a case
  - NAME: 42
    Initial: upper
    EXPECTED: 1.5
  onUpdate:
  - Name: patches
    InitialCRDPatches:
    - {Op: add, PATH: /a, value: yes}
    - {op: remove, path: /b, value: ~}
    - {op: add, path: /c, value: 1.0}
    - {op: replace, path: /d, value: {x: off}}
    initial: i
    updated: u
    ExpectedStatusError: e
"#;

    #[test]
    fn a_suite_has_the_meaning_upstreams_loader_gives_it() {
        let s = parse_suite(SUITE).unwrap();
        assert_eq!(s.name, "first");
        assert_eq!(s.crd_name, "widgets.ferry.test");
        assert_eq!(s.version.as_deref(), Some("v1"));
        assert_eq!(s.feature_gates, ["Gate", "7"]);
        let c = &s.tests.on_create;
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].name.as_str(), c[0].initial.as_str()), ("duplicate keys", "last"));
        assert_eq!(c[0].expected_error, "true");
        assert_eq!(
            (c[1].name.as_str(), c[1].initial.as_str(), c[1].expected.as_str()),
            ("42", "upper", "1.5")
        );
        let u = &s.tests.on_update[0];
        assert_eq!(
            (u.name.as_str(), u.initial.as_str(), u.updated.as_str()),
            ("patches", "i", "u")
        );
        assert_eq!(u.expected_status_error, "e");
        let p = &u.initial_crd_patches;
        assert_eq!(
            (p[0].op.as_str(), p[0].path.as_str(), &p[0].value),
            ("add", "/a", &Some(json!(true)))
        );
        assert_eq!((p[1].op.as_str(), &p[1].value), ("remove", &None));
        assert_eq!(p[2].value, Some(json!(1)));
        assert_eq!(p[3].value, Some(json!({"x": false})));
    }

    #[test]
    fn the_objects_of_a_case_are_read_as_upstream_sends_them() {
        // The last `a` wins, `017` is octal, the key `y` is the boolean true, `2.0` an integer.
        let v = decode("apiVersion: v1\nkind: Thing\nmetadata:\n  name: x\nspec:\n  a: yes\n  a: off\n  mode: 017\n  y: 1\n  f: 2.0\n")
            .unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Thing",
                   "metadata": {"generateName": "test-", "namespace": "default"},
                   "spec": {"a": false, "mode": 15, "true": 1, "f": 2}})
        );
    }

    #[test]
    fn a_suite_upstream_refuses_is_refused_with_the_reason() {
        let e = parse_suite("name: no crdName\n").unwrap_err().to_string();
        assert!(e.contains("missing required field `crdName`"), "{e}");
        let e = parse_suite("crdName: c\ntests:\n  onCreate:\n  - name: a\n    initial: {kind: X}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`tests.onCreate[0].initial` must be a string"), "{e}");
        assert!(parse_suite("crdName: c\nversion: ''\n").unwrap().version.is_none());
    }
}
