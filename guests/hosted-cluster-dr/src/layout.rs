//! The backup: its directory layout, `index.json`, checksums and where it
//! lives in S3.
//!
//! Local (the run's workspace), one folder per backup, in the layout of the
//! documented procedure so a person can fall back to it with the same files:
//!
//! ```text
//! <backup-id>/namespaces/<hc-ns>/hc-<name>.yaml, np-<pool>.yaml, secret-<s>.yaml, configmap-<c>.yaml
//! <backup-id>/namespaces/<hcp-ns>/secret-<s>.yaml, hcp-<name>.yaml, cl-<infra>.yaml, awscl-*, awsmt-*, awsm-*,
//!                                 machinedeployment-*, machineset-*, machine-*
//! <backup-id>/index.json
//! ```
//!
//! S3: `<s3_prefix>/<hc-ns>/<hc-name>/<backup-id>/` holds the same files, the
//! etcd snapshot `<hc-name>-<pod>-snapshot.db`, and `index.json`, written last.

use ferry_sdk::objects::{self, Bucket, PutOptions};
use ferry_sdk::{Error, Result, ResultExt, invalid, workspace};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ctx::Ctx;

/// The `format` of an index this guest writes and reads.
pub const FORMAT: &str = "ferry.dev/hosted-cluster-backup/v1";

/// `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    /// [`FORMAT`].
    pub format: String,
    /// The backup id (UTC time, sortable).
    pub backup_id: String,
    /// When the backup was taken (RFC 3339).
    pub created: String,
    /// Where it came from.
    pub source: Source,
    /// Versions of what wrote it.
    pub versions: Versions,
    /// The etcd snapshot.
    pub snapshot: Snapshot,
    /// `reuse` or `control-plane-only`.
    pub nodes: String,
    /// The NodePools and their replicas.
    pub node_pools: Vec<Pool>,
    /// Hosts of the control-plane Routes (their Route53 records move).
    pub route_hosts: Vec<String>,
    /// The etcd encryption key secret (AES-CBC active key), if the cluster has one.
    pub encryption_key: Option<String>,
    /// When backup found the etcd writers stopped (ms since the epoch, the run's clock): the
    /// hosted cluster's API is down from then until the destination serves a write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writers_stopped_at: Option<u64>,
    /// Every manifest file.
    pub files: Vec<FileEntry>,
}

/// The source of a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    /// The source cluster's alias.
    pub cluster: String,
    /// HostedCluster namespace.
    pub hc_namespace: String,
    /// HostedCluster name.
    pub hc_name: String,
    /// HCP namespace.
    pub hcp_namespace: String,
    /// `spec.infraID`.
    pub infra_id: String,
    /// `spec.controllerAvailabilityPolicy`.
    pub availability_policy: String,
}

/// Versions recorded with a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Versions {
    /// This guest.
    pub guest: String,
    /// The hosted cluster's release image.
    pub release_image: String,
}

/// The stored etcd snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Object key.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// etcd revision.
    pub revision: i64,
    /// The member (pod) it came from.
    pub member: String,
}

/// A NodePool and its replicas.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pool {
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: u64,
}

/// One manifest file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the backup folder.
    pub path: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// apiVersion.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The file-name prefix of a kind in the documented layout.
pub fn file_prefix(kind: &str) -> &'static str {
    match kind {
        "HostedCluster" => "hc",
        "NodePool" => "np",
        "Secret" => "secret",
        "ConfigMap" => "configmap",
        "HostedControlPlane" => "hcp",
        "Cluster" => "cl",
        "AWSCluster" => "awscl",
        "AWSMachineTemplate" => "awsmt",
        "AWSMachine" => "awsm",
        "MachineDeployment" => "machinedeployment",
        "MachineSet" => "machineset",
        "Machine" => "machine",
        _ => "",
    }
}

/// The file name of a manifest: `<prefix>-<name>.yaml`, the lower-case kind
/// for kinds the documented procedure does not name (objects hooks add).
fn file_name(kind: &str, name: &str) -> String {
    match file_prefix(kind) {
        "" => format!("{}-{name}.yaml", kind.to_ascii_lowercase()),
        p => format!("{p}-{name}.yaml"),
    }
}

/// Renders a manifest as YAML for the backup folder.
pub fn to_yaml(obj: &Value) -> Result<Vec<u8>> {
    serde_saphyr::to_string(obj)
        .map(String::into_bytes)
        .map_err(|e| Error::Other(format!("cannot render YAML: {e}")))
}

/// Parses a manifest file of the backup folder.
pub fn from_yaml(path: &str, data: &[u8]) -> Result<Value> {
    let text = std::str::from_utf8(data).map_err(|_| invalid(format!("backup file {path} is not UTF-8")))?;
    serde_saphyr::from_str(text).map_err(|e| invalid(format!("backup file {path} is not valid YAML: {e}")))
}

/// A manifest file and its index entry.
pub fn entry(obj: &Value, data: &[u8]) -> FileEntry {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = s("/kind");
    let namespace = s("/metadata/namespace");
    let name = s("/metadata/name");
    FileEntry {
        path: format!("namespaces/{namespace}/{}", file_name(&kind, &name)),
        sha256: sha256_hex(data),
        size: data.len() as u64,
        api_version: s("/apiVersion"),
        kind,
        namespace,
        name,
    }
}

/// Where a backup of this hosted cluster lives in S3: `<prefix>/<ns>/<name>/`.
pub fn s3_root(c: &Ctx) -> String {
    ferry_hcp_model::backup_root(
        c.p.or("s3_prefix", ferry_hcp_model::DEFAULT_S3_PREFIX),
        &c.hc.ns,
        &c.hc.name,
    )
}

/// The S3 folder of one backup.
pub fn s3_dir(c: &Ctx, id: &str) -> String {
    format!("{}{id}/", s3_root(c))
}

/// Opens the backup bucket (`bucket` parameter).
pub fn open_bucket(c: &Ctx) -> Result<Bucket> {
    let name = c.p.require("bucket")?;
    ferry_sdk::k8s::retry(|| objects::open_bucket(name)).ctx(format!("bucket `{name}`"))
}

/// Writes one object to S3 (the host records its SHA-256).
pub fn put(bucket: &Bucket, key: &str, data: &[u8], content_type: &str) -> Result<()> {
    write(bucket, key, data, content_type, false)
}

/// Writes a backup's index, signed by the host: later runs act on what it lists.
pub fn put_index(bucket: &Bucket, key: &str, data: &[u8]) -> Result<()> {
    write(bucket, key, data, "application/json", true)
}

fn write(bucket: &Bucket, key: &str, data: &[u8], content_type: &str, seal: bool) -> Result<()> {
    let opts = PutOptions {
        content_type: Some(content_type.to_string()),
        create_only: false,
        seal,
    };
    ferry_sdk::k8s::retry(|| bucket.put(key, data, &opts)).ctx(format!("writing s3://{}/{key}", bucket.name()))?;
    Ok(())
}

/// Reads a local backup file, or `None` when absent.
pub fn read_local(path: &str) -> Result<Option<Vec<u8>>> {
    match workspace::read_file(path) {
        Ok(d) => Ok(Some(d)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Backup ids with an `index.json` in S3.
fn s3_ids(c: &Ctx, bucket: &Bucket) -> Result<Vec<String>> {
    let root = s3_root(c);
    let listed =
        ferry_sdk::k8s::retry(|| bucket.list_objects(&root)).ctx(format!("listing s3://{}/{root}", bucket.name()))?;
    let mut ids: Vec<String> = listed
        .iter()
        .filter_map(|o| ferry_hcp_model::indexed_backup_id(&root, &o.key).map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// A loaded backup: its index and its manifest files (verified).
pub struct Backup {
    /// The index.
    pub index: Index,
    /// Where the index was read (`S3`, or `S3, same as local`).
    pub origin: &'static str,
}

/// Finds the backup to use: `backup_id` if given, else the newest one in S3. Its index is
/// read from S3 with its signature checked (`get-sealed`): restore applies and teardown
/// deletes what the index lists, so it is used only as ferry wrote it, and the S3 copy
/// needs nothing from the machine that took the backup. A local copy must be the same
/// bytes; one that differs is refused, never preferred.
pub fn load(c: &Ctx, bucket: &Bucket) -> Result<Option<Backup>> {
    let id = match c.p.get("backup_id") {
        Some(id) => Some(id.to_string()),
        None => s3_ids(c, bucket)?.into_iter().max(),
    };
    let Some(id) = id else { return Ok(None) };
    let key = format!("{}index.json", s3_dir(c, &id));
    let data = match ferry_sdk::k8s::retry(|| bucket.get_sealed(&key)) {
        Ok(d) => d,
        Err(Error::NotFound(_)) => {
            return Err(Error::NotFound(format!(
                "backup {id} has no index.json at s3://{}/{key}; it is incomplete (the index is written \
                 last, and a local copy alone is not trusted). Re-run `ferry backup`.",
                bucket.name()
            )));
        }
        Err(e) => return Err(ferry_sdk::context(e, format!("reading s3://{}/{key}", bucket.name()))),
    };
    let local_index = format!("{id}/index.json");
    let origin = match read_local(&local_index)? {
        Some(local) if local != data => {
            return Err(invalid(format!(
                "the local index {local_index} differs from the signed one at s3://{}/{key}: one of them \
                 was changed after the backup. Nothing was changed. Find out who changed it; then remove \
                 the local folder {id}/ to use the S3 copy.",
                bucket.name()
            )));
        }
        Some(_) => "S3, same as local",
        None => "S3",
    };
    let index: Index = serde_json::from_slice(&data)
        .map_err(|e| invalid(format!("the index of backup {id} is corrupt ({e}); take a new backup")))?;
    if index.format != FORMAT {
        return Err(invalid(format!(
            "backup {id} has format `{}`; this guest reads `{FORMAT}`",
            index.format
        )));
    }
    if index.source.hc_namespace != c.hc.ns || index.source.hc_name != c.hc.name {
        return Err(invalid(format!(
            "backup {id} is of {}/{}, not of {}/{}",
            index.source.hc_namespace, index.source.hc_name, c.hc.ns, c.hc.name
        )));
    }
    Ok(Some(Backup { index, origin }))
}

/// Reads one manifest file of a backup (local, else S3 into the workspace)
/// and checks it against the index's SHA-256.
pub fn read_file(c: &Ctx, bucket: &Bucket, id: &str, f: &FileEntry) -> Result<Vec<u8>> {
    let local = format!("{id}/{}", f.path);
    let data = match read_local(&local)? {
        Some(d) => d,
        None => {
            let key = format!("{}{}", s3_dir(c, id), f.path);
            let d = ferry_sdk::k8s::retry(|| bucket.get(&key)).ctx(format!("reading s3://{}/{key}", bucket.name()))?;
            if !c.plan {
                workspace::write_file(&local, &d)?;
            }
            d
        }
    };
    let got = sha256_hex(&data);
    if got != f.sha256 {
        return Err(invalid(format!(
            "backup {id} is corrupt: {} has SHA-256 {got} but the index says {}. Nothing was changed on the \
             destination. Restore from the S3 copy (remove the local folder {id}/) or take a new backup.",
            f.path, f.sha256
        )));
    }
    Ok(data)
}
