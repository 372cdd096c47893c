//! [`Environment`]: HyperShift management clusters, the source seeded with realistic hosted
//! clusters from a [`Scenario`] (the first and its fleet), and each hosted cluster's own API.
//!
//! Each management cluster serves the CRDs of [`EnvironmentOptions::crds`] with HyperShift
//! installed as `hypershift install` installs it: the CAPI kinds stored as `v1beta2` behind the
//! HO's conversion webhook ([`super::capi::convert`]), the Deployments `hypershift/operator`
//! and (optionally) `hypershift/external-dns`, and the controllers of [`super::controllers`].
//!
//! Seeded on the source, all valid against the upstream CRDs (HC namespace `ns`, control-plane
//! namespace `ns-name` with `.` → `-`):
//! - HC namespace: the HostedCluster (its control plane built by the controllers), its
//!   NodePools, the Secrets and ConfigMaps it references (pull secret, SSH key, encryption key,
//!   trust bundle; with `identity_providers`, the `spec.configuration` references under names
//!   unrelated to the hosted cluster), and the other HostedClusters of the scenario;
//! - control-plane namespace: what Cluster API made of the NodePools (MachineDeployments,
//!   MachineSets, Machines, AWSMachines, AWSMachineTemplates, owned as CAPI owns them, with
//!   their finalizers), their EC2 instances ([`super::aws::Ec2`]), secrets the backup carries
//!   (`root-ca`, `kube-apiserver-cert`, scenario `carry_secrets`) and secrets it must leave
//!   (`builder-dockercfg-*`, `default-token-*`, `oauth-openshift-*`, `token-<hc>-*`, scenario
//!   `leave_secrets`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::aws::{Ec2, Instance};
use super::context::ControllersOptions;
use super::controllers::{Controllers, ControllersError};
use super::dns::{Resolver, Zone};
use super::external_dns::{ExternalDns, ExternalDnsOptions};
use super::hosted::{HostedApiOptions, HostedClusterApi, HostedDns, running_on};
use super::install::{self, ExternalDnsInstall, InstallOptions};
use super::scenario::{EndpointAccess, HostedClusterSpec, Publishing, Scenario, Seeded};
use super::{Condition, capi, hcp_namespace};
use crate::clock::SimClock;
use crate::kube::crd::CrdSource;
use crate::kube::error::{ApiError, Reason, SimError};
use crate::kube::patch::Patch;
use crate::kube::registry::{self, KindInfo, Registry};
use crate::kube::server::{Sim, SimOptions};
use crate::kube::store::{ListOptions, Store, WriteOptions};

/// Errors of starting an environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    /// A simulator failed to start or write its kubeconfig.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Seeding an object failed.
    #[error("cannot seed {what}: {source}")]
    Seed {
        /// The object.
        what: String,
        /// The API error.
        source: ApiError,
    },
    /// The controllers failed to start.
    #[error(transparent)]
    Controllers(#[from] ControllersError),
    /// The hosted control plane did not come up in time.
    #[error("the hosted control plane of {0} did not become available: {1}")]
    NotAvailable(String, String),
    /// Seeding etcd keys failed.
    #[error(transparent)]
    Etcd(#[from] crate::hypershift::etcd::HostedEtcdError),
    /// The scenario names no management cluster.
    #[error("the scenario names no management cluster")]
    NoClusters,
    /// The kubeconfig directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Route53, for the kubelets' view of the API hostname.
#[derive(Debug, Clone)]
pub struct DnsLookup {
    /// Route53 endpoint (moto's URL).
    pub endpoint_url: String,
    /// The hosted zone.
    pub zone_id: String,
    /// Signing region.
    pub region: String,
}

/// How to start an [`Environment`].
#[derive(Debug, Clone)]
pub struct EnvironmentOptions {
    /// Run real hosted etcds (needs etcd binaries).
    pub hosted_etcd: bool,
    /// How long to wait for the source's control plane.
    pub ready_timeout: Duration,
    /// Start the hosted cluster's own API ([`HostedClusterApi`]).
    pub hosted_api: bool,
    /// How long the control plane must be reachable before the hosted cluster's Nodes turn
    /// Ready (upstream time: the kubelet's next status update, `nodeStatusUpdateFrequency`).
    pub node_ready_delay: Duration,
    /// Install external-dns (`--external-dns-provider=aws`) on every management cluster.
    pub external_dns: Option<ExternalDnsDeployment>,
    /// The clock upstream's timings run on.
    pub clock: SimClock,
    /// The CA (PEM) `etcd-init` trusts for `https://` restore URLs (the S3 of a drill).
    pub restore_trusted_ca: Option<String>,
    /// The CRDs every management cluster serves.
    pub crds: CrdSource,
    /// Route53, where kubelets look up the API hostname (`None`: they reach wherever the
    /// control plane runs).
    pub dns: Option<DnsLookup>,
    /// How long a deleted pod takes to terminate.
    pub pod_termination: Duration,
}

impl Default for EnvironmentOptions {
    fn default() -> Self {
        EnvironmentOptions {
            hosted_etcd: true,
            ready_timeout: Duration::from_secs(60),
            hosted_api: true,
            node_ready_delay: Duration::from_secs(10),
            external_dns: None,
            clock: SimClock::real_time(),
            restore_trusted_ca: None,
            crds: CrdSource::Builtin,
            dns: None,
            pod_termination: Duration::from_millis(500),
        }
    }
}

/// How external-dns is installed on the management clusters.
#[derive(Debug, Clone)]
pub struct ExternalDnsDeployment {
    /// Owner id prefix: management cluster `c` gets `--txt-owner-id=<prefix><c>`.
    pub owner_id_prefix: String,
}

impl ExternalDnsDeployment {
    /// The `--txt-owner-id` of management cluster `cluster`.
    pub fn owner_id(&self, cluster: &str) -> String {
        format!("{}{cluster}", self.owner_id_prefix)
    }
}

/// The `hypershift install` flags of a scenario, for management cluster `cluster`.
pub fn install_options(scenario: &Scenario, opts: &EnvironmentOptions, cluster: &str) -> InstallOptions {
    let image = scenario.hypershift.operator_image();
    let mut io = if scenario.install.webhooks {
        InstallOptions::mce(&image)
    } else {
        InstallOptions::upstream(&image)
    };
    io.disable_capi_migration = scenario.install.capi_storage == "v1beta1";
    io.external_dns = opts.external_dns.as_ref().map(|ed| ExternalDnsInstall {
        domain_filter: scenario.hosted_cluster.external_dns_domain.clone(),
        txt_owner_id: ed.owner_id(cluster),
        interval: scenario.install.external_dns_interval.clone(),
    });
    io
}

/// A newer CAPI that no longer serves `v1beta1` (`capi_v1beta1_served = false`).
fn stop_serving_v1beta1(store: &Store) -> Result<(), ApiError> {
    for plural in super::install::CAPI_RESOURCES {
        let name = format!("{plural}.{}", capi::CAPI_GROUP);
        let Ok(crd) = store.get(&registry::CUSTOM_RESOURCE_DEFINITION, None, &name) else {
            continue;
        };
        let mut versions = crd.pointer("/spec/versions").cloned().unwrap_or(json!([]));
        for v in versions.as_array_mut().into_iter().flatten() {
            if v.get("name").and_then(Value::as_str) == Some("v1beta1") {
                v["served"] = json!(false);
            }
        }
        store.patch(
            &registry::CUSTOM_RESOURCE_DEFINITION,
            None,
            &name,
            &Patch::Merge(json!({"spec": {"versions": versions}})),
            &WriteOptions::default(),
        )?;
    }
    // A kind the CRD data leaves out (the MachineHealthCheck) is served from its minimal row,
    // in `v1beta1`: it moves to `v1beta2` with the rest of the group.
    let mhc = format!("machinehealthchecks.{}", capi::CAPI_GROUP);
    if store.get(&registry::CUSTOM_RESOURCE_DEFINITION, None, &mhc).is_err() {
        let mut row = (*registry::MACHINE_HEALTH_CHECK.clone()).clone();
        row.version = "v1beta2".into();
        row.storage_version = "v1beta2".into();
        store.update_registry(|r| r.install(vec![row.build()]));
    }
    Ok(())
}

/// One management cluster: its API server and controllers.
#[derive(Debug)]
pub struct ManagementCluster {
    /// The API server.
    pub sim: Sim,
    /// The controllers (HyperShift operator, control-plane operators, Cluster API, pods).
    pub controllers: Controllers,
    /// external-dns, when installed and the environment has Route53.
    pub external_dns: Option<ExternalDns>,
}

/// Running management clusters, the first seeded from the scenario.
#[derive(Debug)]
pub struct Environment {
    /// The clusters, in scenario order (source first).
    pub clusters: Vec<ManagementCluster>,
    /// The scenario.
    pub scenario: Scenario,
    /// The seeded hosted clusters' APIs (each shared by all management clusters), in
    /// [`Scenario::seeded`] order, when started.
    pub hosted_apis: Vec<HostedClusterApi>,
    /// The account's EC2 instances.
    pub ec2: Ec2,
}

/// The API hostname of the scenario's hosted cluster.
pub fn api_hostname(sc: &Scenario, name: &str) -> String {
    format!(
        "api-{}.{}",
        name.replace('.', "-"),
        sc.hosted_cluster.external_dns_domain
    )
}

impl Environment {
    /// Start every management cluster and its controllers, seed the source, and wait until its
    /// hosted control plane is available (then write the scenario's etcd keys).
    pub async fn start(scenario: Scenario, opts: EnvironmentOptions) -> Result<Environment, EnvironmentError> {
        if scenario.management_clusters.is_empty() {
            return Err(EnvironmentError::NoClusters);
        }
        let ec2 = Ec2::default();
        let mut clusters = Vec::new();
        let mut upgrades = Vec::new();
        let hosted_stores = super::hosted::HostedStores::default();
        for name in &scenario.management_clusters {
            let sim = Sim::start_with(SimOptions {
                registry: Registry::builtin(),
                crds: opts.crds.clone(),
                ..SimOptions::new(name)
            })
            .await?;
            let io = install_options(&scenario, &opts, name);
            let seed = |what: &str| {
                let what = what.to_string();
                move |source: ApiError| EnvironmentError::Seed { what, source }
            };
            // An upgraded install: the CAPI objects were written while v1beta1 stored them.
            let stored_as_v1beta1 =
                scenario.install.capi_stored_as() == "v1beta1" && scenario.install.capi_storage != "v1beta1";
            let mut first = io.clone();
            first.disable_capi_migration |= stored_as_v1beta1;
            install::install(sim.store(), &first).map_err(seed("HyperShift (hypershift install)"))?;
            if !scenario.capi_v1beta1_served {
                stop_serving_v1beta1(sim.store()).map_err(seed("a CAPI that does not serve v1beta1"))?;
            }
            super::operator_webhooks::serve(sim.store());
            let mut co = ControllersOptions::new(name);
            co.hosted_etcd = opts.hosted_etcd;
            co.restore_trusted_ca = opts.restore_trusted_ca.clone();
            co.region = scenario.hosted_cluster.region.clone();
            co.workloads.termination = opts.pod_termination;
            co.clock = opts.clock;
            co.profile = scenario.hypershift;
            co.capi_migration = scenario.install.capi_migration;
            co.etcd_init_transient_failures = scenario.etcd_init_transient_failures;
            co.hosted = hosted_stores.clone();
            co.oidc_storage = !scenario.install.without_oidc_storage.iter().any(|c| c == name);
            let controllers = Controllers::start(&sim, co, ec2.clone())?;
            upgrades.push((stored_as_v1beta1, io));
            let external_dns = match (&opts.dns, &opts.external_dns) {
                (Some(dns), Some(_)) => {
                    let mut eo = ExternalDnsOptions::new(&dns.endpoint_url, &dns.zone_id);
                    eo.region = dns.region.clone();
                    eo.clock = opts.clock;
                    Some(ExternalDns::start(sim.store().clone(), eo).map_err(|e| {
                        EnvironmentError::NotAvailable(format!("external-dns of {name}"), e.to_string())
                    })?)
                }
                _ => None,
            };
            clusters.push(ManagementCluster {
                sim,
                controllers,
                external_dns,
            });
        }
        let mut hosted_apis = Vec::new();
        let mut kubelets = Vec::new();
        let zone = opts.dns.as_ref().map(Zone::new);
        if opts.hosted_api {
            for seeded in scenario.seeded() {
                let hc = &seeded.spec;
                let mut ho = HostedApiOptions::new(&hc.namespace, &hc.name, ec2.clone());
                ho.node_ready_delay = opts.node_ready_delay;
                ho.clock = opts.clock;
                ho.etcds = clusters.iter().map(|c| c.controllers.etcd_access()).collect();
                if let Some(zone) = &zone
                    && hc.endpoint_access != EndpointAccess::Private
                {
                    ho.dns = Some(HostedDns {
                        zone: zone.clone(),
                        // The VPC's resolver: one per hosted cluster.
                        resolver: Resolver::new(
                            zone.clone(),
                            opts.clock,
                            Duration::from_secs(scenario.dns.negative_ttl_seconds),
                        ),
                        clusters: scenario.management_clusters.clone(),
                        api_host: api_hostname(&scenario, &hc.name),
                    });
                }
                // The kubelets start once the environment has published the API's name.
                ho.kubelets
                    .store(ho.dns.is_none(), std::sync::atomic::Ordering::Relaxed);
                kubelets.push(ho.kubelets.clone());
                let stores = clusters.iter().map(|c| c.sim.store().clone()).collect();
                let api = HostedClusterApi::start(ho, stores).await?;
                hosted_stores.insert(&format!("{}/{}", hc.namespace, hc.name), &api);
                hosted_apis.push(api);
            }
        }
        let env = Environment {
            clusters,
            scenario,
            hosted_apis,
            ec2,
        };
        env.seed_source(&opts).await?;
        for (c, (upgrade, io)) in env.clusters.iter().zip(&upgrades) {
            if *upgrade {
                // The storage version moves to v1beta2: storedVersions keeps v1beta1 until the
                // operator's migration rewrites every object.
                install::setup_crds(c.sim.store(), io, false).map_err(|source| EnvironmentError::Seed {
                    what: "the CAPI storage version of an upgraded install".into(),
                    source,
                })?;
            }
        }
        // Settling runs on upstream's timings (external-dns' interval, DNS TTLs, the kubelets'
        // status updates): at least ten minutes of them, however fast the clock.
        let settle = opts.ready_timeout.max(opts.clock.real(Duration::from_secs(600)));
        env.quiesce(opts.ready_timeout).await;
        if let Some(zone) = &zone {
            env.settle_dns(zone, settle).await?;
            for k in &kubelets {
                k.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            env.settle_nodes(settle).await?;
        }
        Ok(env)
    }

    /// The hosted clusters have run for a while: every running instance's kubelet registered
    /// its Node, Ready, and kube-apiserver stored it in etcd (`/kubernetes.io/minions/`), so a
    /// snapshot holds the Nodes, as one of a cluster in service does.
    async fn settle_nodes(&self, timeout: Duration) -> Result<(), EnvironmentError> {
        let deadline = Instant::now() + timeout;
        for (s, api) in self.scenario.seeded().iter().zip(&self.hosted_apis) {
            if s.spec.endpoint_access == EndpointAccess::Private {
                continue;
            }
            let key = format!("{}/{}", s.spec.namespace, s.spec.name);
            let cp_ns = hcp_namespace(&s.spec.namespace, &s.spec.name);
            let nodes: Vec<String> = self.ec2.running(&key).into_iter().map(|i| i.node_name).collect();
            loop {
                let ready = nodes.iter().all(|n| {
                    api.sim()
                        .store()
                        .get(&registry::NODE, None, n)
                        .is_ok_and(|node| super::hosted::ready_transition(&node).is_some_and(|(st, _)| st == "True"))
                });
                let stored = match self.source().controllers.etcd_client(&cp_ns) {
                    Some(client) => match client.range_prefix("/kubernetes.io/minions/").await {
                        Ok(kv) => nodes
                            .iter()
                            .all(|n| kv.iter().any(|(k, _)| k.ends_with(&format!("/{n}")))),
                        Err(_) => false,
                    },
                    None => true,
                };
                if ready && stored {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(EnvironmentError::NotAvailable(
                        key,
                        format!(
                            "its nodes ({}) did not register, Ready and stored in etcd",
                            nodes.join(", ")
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Waits (at most `timeout`) until the controllers of every management cluster have run
    /// two passes that wrote nothing: the seeded world converged (the siblings' and the fleet's
    /// statuses too), so what changes afterwards is what a test or a run did.
    pub async fn quiesce(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for c in &self.clusters {
            loop {
                let before = c.sim.store().resource_version();
                let left = deadline.saturating_duration_since(Instant::now());
                if !c.controllers.settle(left).await || c.sim.store().resource_version() == before {
                    break;
                }
            }
        }
    }

    /// A management cluster's external-dns has run for a while: the source's has published
    /// the seeded hosted clusters' API names, and every external-dns has read the zone since
    /// (its cache holds those records, owned by the source, as it would within the hour).
    async fn settle_dns(&self, zone: &Zone, timeout: Duration) -> Result<(), EnvironmentError> {
        if self.clusters.iter().all(|c| c.external_dns.is_none()) {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        for s in self.scenario.seeded() {
            if s.spec.endpoint_access == EndpointAccess::Private {
                continue;
            }
            let host = api_hostname(&self.scenario, &s.spec.name);
            while zone.lookup(&host).await.is_none() {
                if Instant::now() >= deadline {
                    return Err(EnvironmentError::NotAvailable(
                        host,
                        "the source's external-dns did not publish it".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for c in &self.clusters {
            if let Some(ed) = &c.external_dns {
                ed.refresh_now().await.map_err(|e| {
                    EnvironmentError::NotAvailable(format!("external-dns of {}", c.sim.name()), e.to_string())
                })?;
            }
        }
        Ok(())
    }

    /// The source (first) cluster.
    pub fn source(&self) -> &ManagementCluster {
        &self.clusters[0]
    }

    /// The destination (second) cluster, if any.
    pub fn destination(&self) -> Option<&ManagementCluster> {
        self.clusters.get(1)
    }

    /// The first hosted cluster's API, when started.
    pub fn hosted(&self) -> Option<&HostedClusterApi> {
        self.hosted_apis.first()
    }

    /// The API of the seeded hosted cluster `namespace/name`, when started.
    pub fn hosted_api(&self, namespace: &str, name: &str) -> Option<&HostedClusterApi> {
        let i = self
            .scenario
            .seeded()
            .iter()
            .position(|s| s.spec.namespace == namespace && s.spec.name == name)?;
        self.hosted_apis.get(i)
    }

    /// The control-plane namespace of the scenario's hosted cluster.
    pub fn hcp_namespace(&self) -> String {
        hcp_namespace(
            &self.scenario.hosted_cluster.namespace,
            &self.scenario.hosted_cluster.name,
        )
    }

    /// Which management cluster (index) runs the hosted cluster's control plane now.
    pub fn running_on(&self) -> Option<usize> {
        let hc = &self.scenario.hosted_cluster;
        let opts = HostedApiOptions::new(&hc.namespace, &hc.name, self.ec2.clone());
        let stores: Vec<Store> = self.clusters.iter().map(|c| c.sim.store().clone()).collect();
        running_on(&opts, &stores)
    }

    /// Write `<cluster>.kubeconfig` for every cluster (and the hosted API) into `dir`; returns
    /// (name, url, path).
    pub fn write_kubeconfigs(&self, dir: &Path) -> Result<Vec<(String, String, PathBuf)>, EnvironmentError> {
        std::fs::create_dir_all(dir).map_err(|source| EnvironmentError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut out = Vec::new();
        for c in &self.clusters {
            let name = c.sim.name().to_string();
            let path = dir.join(format!("{name}.kubeconfig"));
            c.sim.write_kubeconfig(&path, &name)?;
            out.push((name, c.sim.url(), path));
        }
        for h in &self.hosted_apis {
            let name = h.sim().name().to_string();
            let path = dir.join(format!("{name}.kubeconfig"));
            h.sim().write_kubeconfig(&path, &name)?;
            out.push((name, h.sim().url(), path));
        }
        Ok(out)
    }

    /// The simplest restore there is, for tests of the simulated operators (not what ferry's
    /// guest does): the scenario's HostedCluster and the Secrets and ConfigMaps of its
    /// namespace re-created on management cluster `to`, with `url` as the single
    /// `restoreSnapshotURL` and, when `annotate`, the restored-from-backup annotation.
    /// Returns the created HostedCluster.
    pub fn recreate_hosted_cluster(&self, to: usize, url: &str, annotate: bool) -> Result<Value, EnvironmentError> {
        let hc = &self.scenario.hosted_cluster;
        let dst = self.clusters.get(to).ok_or(EnvironmentError::NoClusters)?.sim.store();
        let src = self.source().sim.store();
        let seed = |what: String| move |source: ApiError| EnvironmentError::Seed { what, source };
        namespace(dst, &hc.namespace)?;
        for kind in [&*registry::SECRET, &*registry::CONFIG_MAP] {
            let items = src
                .list(kind, Some(&hc.namespace), &ListOptions::default())
                .map_err(seed(format!("{}s of {}", kind.kind, hc.namespace)))?
                .items;
            for o in items {
                create(dst, kind, &hc.namespace, portable(&o))?;
            }
        }
        let mut obj = portable(
            &src.get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
                .map_err(seed(format!("HostedCluster {}/{}", hc.namespace, hc.name)))?,
        );
        obj["spec"]["etcd"]["managed"]["storage"]["restoreSnapshotURL"] = json!([url]);
        if let Some(spec) = obj["spec"].as_object_mut() {
            spec.remove("pausedUntil");
        }
        if annotate {
            obj["metadata"]["annotations"][super::RESTORED_FROM_BACKUP_ANNOTATION] = json!("true");
        }
        dst.create(
            &registry::HOSTED_CLUSTER,
            Some(&hc.namespace),
            obj,
            &WriteOptions::default(),
        )
        .map_err(seed(format!("HostedCluster {}/{} on {}", hc.namespace, hc.name, to)))
    }

    /// Stop controllers (and their etcds) and servers.
    pub async fn shutdown(self) {
        for h in self.hosted_apis {
            h.shutdown().await;
        }
        for c in &self.clusters {
            if let Some(ed) = &c.external_dns {
                ed.stop().await;
            }
        }
        for c in self.clusters {
            c.controllers.shutdown().await;
            c.sim.shutdown().await;
        }
    }

    async fn seed_source(&self, opts: &EnvironmentOptions) -> Result<(), EnvironmentError> {
        let src = self.source();
        let store = src.sim.store();
        // HostedClusters and NodePools go through the operator's webhooks (when installed) and
        // CAPI objects through its conversion: seeding waits for a Ready operator pod.
        let deadline = Instant::now() + opts.ready_timeout;
        while !super::controllers::operator_running(store) {
            if Instant::now() >= deadline {
                return Err(EnvironmentError::NotAvailable(
                    "hypershift/operator".into(),
                    "the HyperShift operator has no running pod".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sc = &self.scenario;
        let seeded = sc.seeded();
        for s in &seeded {
            self.seed_hosted_cluster(store, s)?;
        }
        // The operators build the control planes; wait until they are available.
        let deadline = Instant::now() + opts.ready_timeout;
        for s in &seeded {
            let cp_ns = hcp_namespace(&s.spec.namespace, &s.spec.name);
            loop {
                let hcp = store
                    .get(&registry::HOSTED_CONTROL_PLANE, Some(&cp_ns), &s.spec.name)
                    .ok();
                let available = hcp
                    .as_ref()
                    .and_then(|h| Condition::read(h, "Available"))
                    .is_some_and(|c| c.status == "True");
                if available {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(EnvironmentError::NotAvailable(
                        cp_ns.clone(),
                        format!(
                            "HostedControlPlane conditions: {}; controller log: {:?}",
                            hcp.and_then(|h| h.pointer("/status/conditions").cloned())
                                .unwrap_or(Value::Null),
                            src.controllers.log().entries()
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let cp_ns = self.hcp_namespace();
        if opts.hosted_etcd
            && let Some(client) = src.controllers.etcd_client(&cp_ns)
        {
            for (k, v) in &sc.etcd_keys {
                client.put(k, v).await?;
            }
        }
        for s in &seeded {
            self.seed_control_plane_namespace(store, s)?;
        }
        Ok(())
    }

    /// A hosted cluster's objects in its namespace: the Secrets and ConfigMaps it refers to, the
    /// HostedCluster (and, for the first, the scenario's bare siblings) and its NodePools.
    fn seed_hosted_cluster(&self, store: &Store, s: &Seeded) -> Result<(), EnvironmentError> {
        let sc = &self.scenario;
        let hc = &s.spec;
        let ns = hc.namespace.as_str();
        let infra = hc.infra_id();
        let siblings: &[String] = if s.index == 0 { &sc.other_hosted_clusters } else { &[] };
        namespace(store, ns)?;
        for name in std::iter::once(hc.name.as_str()).chain(siblings.iter().map(String::as_str)) {
            seed_references(store, ns, name)?;
        }
        if hc.identity_providers {
            seed_configuration_refs(store, ns)?;
        }
        create(
            store,
            &registry::HOSTED_CLUSTER,
            ns,
            hosted_cluster(sc, hc, &hc.name, &infra),
        )?;
        for other in siblings {
            create(
                store,
                &registry::HOSTED_CLUSTER,
                ns,
                hosted_cluster(sc, hc, other, &format!("{}-infra", other.replace('.', "-"))),
            )?;
        }
        for np in &s.node_pools {
            let mut metadata = json!({"name": np.name, "namespace": ns});
            if let Some(t) = &np.machine_health_check_timeout {
                metadata["annotations"] = json!({super::nodepool::MHC_TIMEOUT_ANNOTATION: t});
            }
            create(
                store,
                &registry::NODE_POOL,
                ns,
                json!({
                    "apiVersion": "hypershift.openshift.io/v1beta1", "kind": "NodePool",
                    "metadata": metadata,
                    "spec": {
                        "clusterName": hc.name,
                        "replicas": np.replicas,
                        "management": {"upgradeType": "Replace", "autoRepair": np.auto_repair},
                        "platform": {"type": "AWS", "aws": {"instanceType": np.instance_type,
                            "instanceProfile": format!("{infra}-worker"),
                            "subnet": {"id": format!("subnet-{}", short_hash(&hc.name))}}},
                        "release": {"image": hc.release_image},
                    },
                }),
            )?;
        }
        Ok(())
    }

    /// A running hosted cluster's control-plane namespace: what Cluster API made of its
    /// NodePools, and the Secrets a backup carries and leaves.
    fn seed_control_plane_namespace(&self, store: &Store, s: &Seeded) -> Result<(), EnvironmentError> {
        let sc = &self.scenario;
        let hc = &s.spec;
        let cp_ns = hcp_namespace(&hc.namespace, &hc.name);
        self.seed_capi(store, s, &cp_ns)?;
        let first = s.index == 0;
        let (carry, leave): (&[String], &[String]) = if first {
            (&sc.carry_secrets, &sc.leave_secrets)
        } else {
            (&[], &[])
        };
        // Control-plane namespace secrets: carried by the backup ...
        for name in ["root-ca", "kube-apiserver-cert"]
            .into_iter()
            .map(str::to_string)
            .chain(carry.iter().cloned())
        {
            secret(store, &cp_ns, &name, "Opaque", "tls.crt", "simulated")?;
        }
        // ... and left by its filters (docker, service-account-token, oauth-openshift, token-<hc>).
        secret(
            store,
            &cp_ns,
            "builder-dockercfg-x7k2p",
            "kubernetes.io/dockercfg",
            ".dockercfg",
            "{}",
        )?;
        secret(
            store,
            &cp_ns,
            "default-token-x7k2p",
            "kubernetes.io/service-account-token",
            "token",
            "simulated",
        )?;
        secret(
            store,
            &cp_ns,
            "oauth-openshift-session-x7k2p",
            "Opaque",
            "session",
            "simulated",
        )?;
        for np in &s.node_pools {
            secret(
                store,
                &cp_ns,
                &format!("token-{}-{}", hc.name, np.name),
                "Opaque",
                "token",
                "simulated",
            )?;
        }
        for name in leave {
            secret(store, &cp_ns, name, "Opaque", "token", "simulated")?;
        }
        Ok(())
    }

    /// What Cluster API made of the NodePools (`v1beta2`, as CAPI writes it), and the instances.
    fn seed_capi(&self, store: &Store, s: &Seeded, cp_ns: &str) -> Result<(), EnvironmentError> {
        let hc = &s.spec;
        let infra = hc.infra_id();
        let infra = infra.as_str();
        let hc_key = format!("{}/{}", hc.namespace, hc.name);
        // CAPI writes its objects in the version it stores (v1beta2); without CRDs, the
        // built-in rows serve only v1beta1.
        let (md_kind, ms_kind, m_kind) = (
            capi::kind_in(store, &registry::MACHINE_DEPLOYMENT, "v1beta2"),
            capi::kind_in(store, &registry::MACHINE_SET, "v1beta2"),
            capi::kind_in(store, &registry::MACHINE, "v1beta2"),
        );
        let served_v1beta2 = md_kind.version == "v1beta2";
        let api_version = format!("cluster.x-k8s.io/{}", md_kind.version);
        let infra_ref = |kind: &str, name: &str| {
            if served_v1beta2 {
                json!({"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": kind, "name": name})
            } else {
                json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": kind, "name": name, "namespace": cp_ns})
            }
        };
        let mut surge = if s.index == 0 { self.scenario.surge_nodes } else { 0 };
        for (pool_index, np) in s.node_pools.iter().enumerate() {
            let template = format!("{}-{}", np.name, short_hash(&format!("{infra}/{}/template", np.name)));
            let ms = format!("{}-{}", np.name, short_hash(&format!("{infra}/{}/ms", np.name)));
            let labels = json!({super::CAPI_CLUSTER_LABEL: infra, super::NODE_POOL_LABEL: np.name});
            create(
                store,
                &registry::AWS_MACHINE_TEMPLATE,
                cp_ns,
                json!({
                    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachineTemplate",
                    "metadata": {"name": template, "namespace": cp_ns, "labels": labels},
                    "spec": {"template": {"spec": {"instanceType": np.instance_type,
                        "iamInstanceProfile": format!("{infra}-worker")}}},
                }),
            )?;
            let spec_template = json!({"metadata": {"labels": {super::NODE_POOL_LABEL: np.name}},
                "spec": {"clusterName": infra, "bootstrap": {"dataSecretName": format!("user-data-{}", np.name)},
                    "infrastructureRef": infra_ref("AWSMachineTemplate", &template)}});
            let md = create_get(
                store,
                &md_kind,
                cp_ns,
                json!({
                    "apiVersion": api_version, "kind": "MachineDeployment",
                    "metadata": {"name": np.name, "namespace": cp_ns, "labels": labels,
                        "annotations": {super::CLUSTER_ANNOTATION: hc_key}},
                    "spec": {"clusterName": infra, "replicas": np.replicas,
                        "selector": {"matchLabels": {super::NODE_POOL_LABEL: np.name}},
                        "template": spec_template},
                    "status": {"replicas": np.replicas, "readyReplicas": np.replicas, "phase": "Running"},
                }),
            )?;
            let owner = |o: &Value, kind: &str| {
                json!([{"apiVersion": api_version, "kind": kind, "name": super::name_of(o),
                    "uid": o.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    "controller": true, "blockOwnerDeletion": true}])
            };
            let ms_obj = create_get(
                store,
                &ms_kind,
                cp_ns,
                json!({
                    "apiVersion": api_version, "kind": "MachineSet",
                    "metadata": {"name": ms, "namespace": cp_ns, "labels": labels, "ownerReferences": owner(&md, "MachineDeployment")},
                    "spec": {"clusterName": infra, "replicas": np.replicas,
                        "selector": {"matchLabels": {super::NODE_POOL_LABEL: np.name}},
                        "template": spec_template},
                    "status": {"replicas": np.replicas, "readyReplicas": np.replicas},
                }),
            )?;
            let extra = std::mem::take(&mut surge);
            for i in 0..np.replicas {
                let machine = format!("{ms}-{}", short_hash(&format!("{ms}/{i}")).get(5..).unwrap_or("m0000"));
                let aws_machine = format!(
                    "{}-{}",
                    np.name,
                    short_hash(&format!("{ms}/{i}/aws")).get(5..).unwrap_or("a0000")
                );
                // Pools are told apart by their position (and hosted clusters by theirs): names
                // that differ in one letter must not share instance IDs or node names.
                let slot = s.index * 64 + pool_index + 1;
                let provider_id = format!("aws:///{}a/i-0{slot:07x}{i:08x}", hc.region);
                let node = format!("ip-10-{}-{}-{}.ec2.internal", s.index, pool_index + 1, 10 + i);
                let m = create_get(
                    store,
                    &m_kind,
                    cp_ns,
                    json!({
                        "apiVersion": api_version, "kind": "Machine",
                        "metadata": {"name": machine, "namespace": cp_ns, "labels": labels,
                            "finalizers": [capi::MACHINE_FINALIZER], "ownerReferences": owner(&ms_obj, "MachineSet")},
                        "spec": {"clusterName": infra, "bootstrap": {"dataSecretName": format!("user-data-{}", np.name)},
                            "infrastructureRef": infra_ref("AWSMachine", &aws_machine), "providerID": provider_id},
                        // No `nodeRef` yet: the Machine controller sets it once the kubelet has
                        // registered the Node (a MachineHealthCheck would otherwise find the
                        // Node gone, `NodeDeleted`, in the moment before it registers).
                        "status": {"phase": "Running"},
                    }),
                )?;
                create(
                    store,
                    &registry::AWS_MACHINE,
                    cp_ns,
                    json!({
                        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachine",
                        "metadata": {"name": aws_machine, "namespace": cp_ns, "labels": labels,
                            "finalizers": [capi::AWS_MACHINE_FINALIZER],
                            "ownerReferences": [{"apiVersion": api_version, "kind": "Machine", "name": machine,
                                "uid": m.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                                "controller": true, "blockOwnerDeletion": true}]},
                        "spec": {"instanceType": np.instance_type, "providerID": provider_id},
                        "status": {"ready": true, "instanceState": "running"},
                    }),
                )?;
                self.ec2.launch(Instance {
                    provider_id,
                    node_name: node,
                    node_pool: np.name.clone(),
                    hosted_cluster: hc_key.clone(),
                    terminated: false,
                });
            }
            for s in 0..extra {
                self.ec2.launch(Instance {
                    provider_id: format!("aws:///{}a/i-0surge{:011x}", hc.region, s),
                    node_name: format!("ip-10-0-200-{}.ec2.internal", 10 + s),
                    node_pool: np.name.clone(),
                    hosted_cluster: hc_key.clone(),
                    terminated: false,
                });
            }
        }
        Ok(())
    }
}

/// The HostedCluster `name` of a seeded hosted cluster `hc` (itself or one of its bare
/// siblings), valid against the upstream CRD.
fn hosted_cluster(sc: &Scenario, hc: &HostedClusterSpec, name: &str, infra: &str) -> Value {
    let domain = &hc.external_dns_domain;
    let api = api_hostname(sc, name);
    let api_strategy = match hc.api_publishing {
        Publishing::Route => json!({"type": "Route", "route": {"hostname": api}}),
        Publishing::LoadBalancer => json!({"type": "LoadBalancer", "loadBalancer": {"hostname": api}}),
    };
    let arn = |role: &str| format!("arn:aws:iam::123456789012:role/{infra}-{role}");
    let mut spec = json!({
        "release": {"image": hc.release_image},
        "infraID": infra,
        "controllerAvailabilityPolicy": hc.availability_policy,
        "infrastructureAvailabilityPolicy": "SingleReplica",
        "dns": {"baseDomain": domain},
        "pullSecret": {"name": format!("{name}-pull-secret")},
        "sshKey": {"name": format!("{name}-ssh-key")},
        "secretEncryption": {"type": "aescbc", "aescbc": {"activeKey": {"name": format!("{name}-etcd-encryption-key")}}},
        "additionalTrustBundle": {"name": format!("{name}-ca-bundle")},
        "etcd": {"managementType": "Managed", "managed": {"storage": {"type": "PersistentVolume",
            "persistentVolume": {"size": "8Gi"}}}},
        "platform": {"type": "AWS", "aws": {
            "region": hc.region,
            "endpointAccess": hc.endpoint_access.as_str(),
            "cloudProviderConfig": {"vpc": format!("vpc-{}", short_hash(infra)), "subnet": {"id": format!("subnet-{}", short_hash(name))}},
            "rolesRef": {
                "controlPlaneOperatorARN": arn("control-plane-operator"), "imageRegistryARN": arn("openshift-image-registry"),
                "ingressARN": arn("openshift-ingress"), "kubeCloudControllerARN": arn("cloud-controller"),
                "networkARN": arn("cloud-network-config-controller"), "nodePoolManagementARN": arn("node-pool"),
                "storageARN": arn("aws-ebs-csi-driver-controller"),
            },
        }},
        "networking": {"networkType": "OVNKubernetes", "clusterNetwork": [{"cidr": "10.132.0.0/14"}],
            "serviceNetwork": [{"cidr": "172.31.0.0/16"}], "machineNetwork": [{"cidr": "10.0.0.0/16"}]},
        "services": [
            {"service": "APIServer", "servicePublishingStrategy": api_strategy},
            {"service": "OAuthServer", "servicePublishingStrategy": {"type": "Route", "route": {"hostname": format!("oauth-{}.{domain}", name.replace('.', "-"))}}},
            {"service": "Konnectivity", "servicePublishingStrategy": {"type": "Route"}},
            {"service": "Ignition", "servicePublishingStrategy": {"type": "Route"}},
        ],
    });
    let mut metadata = json!({"name": name, "namespace": hc.namespace});
    if name == hc.name {
        if hc.identity_providers {
            spec["configuration"] = configuration_with_refs();
        }
        if !hc.labels.is_empty() {
            metadata["labels"] = json!(hc.labels);
        }
    }
    json!({
        "apiVersion": "hypershift.openshift.io/v1beta1",
        "kind": "HostedCluster",
        "metadata": metadata,
        "spec": spec,
    })
}

/// `spec.configuration` naming Secrets and ConfigMaps under names unrelated to the hosted
/// cluster: every kind of reference `api/util/configrefs` collects.
fn configuration_with_refs() -> Value {
    json!({
        "apiServer": {"clientCA": {"name": "corp-client-ca"},
            "servingCerts": {"namedCertificates": [{"names": ["api.corp.example"], "servingCertificate": {"name": "corp-api-cert"}}]}},
        "authentication": {"oauthMetadata": {"name": "corp-oauth-metadata"}},
        "image": {"additionalTrustedCA": {"name": "corp-registry-ca"}},
        "oauth": {
            "identityProviders": [
                {"name": "local", "type": "HTPasswd", "mappingMethod": "claim", "htpasswd": {"fileData": {"name": "htpass-secret"}}},
                {"name": "corp-sso", "type": "OpenID", "mappingMethod": "claim", "openID": {"clientID": "ferry",
                    "clientSecret": {"name": "sso-client-secret"}, "ca": {"name": "sso-ca"},
                    "issuer": "https://sso.corp.example", "claims": {"preferredUsername": ["preferred_username"], "name": ["name"], "email": ["email"]}}},
                {"name": "corp-ldap", "type": "LDAP", "mappingMethod": "claim", "ldap": {"url": "ldaps://ldap.corp.example/ou=users,dc=corp?uid",
                    "bindDN": "cn=ferry", "bindPassword": {"name": "ldap-bind-password"}, "ca": {"name": "ldap-ca"},
                    "attributes": {"id": ["dn"], "preferredUsername": ["uid"]}}},
            ],
            "templates": {"login": {"name": "corp-login-template"}, "providerSelection": {"name": "corp-provider-template"},
                "error": {"name": "corp-error-template"}},
        },
        "proxy": {"trustedCA": {"name": "corp-proxy-ca"}},
        "scheduler": {"policy": {"name": "corp-scheduler-policy"}},
    })
}

/// The Secrets and ConfigMaps of [`configuration_with_refs`].
fn seed_configuration_refs(store: &Store, ns: &str) -> Result<(), EnvironmentError> {
    secret(
        store,
        ns,
        "htpass-secret",
        "Opaque",
        "htpasswd",
        "ferry:$2y$05$simulatedhash",
    )?;
    secret(store, ns, "sso-client-secret", "Opaque", "clientSecret", "s3cr3t")?;
    secret(store, ns, "ldap-bind-password", "Opaque", "bindPassword", "s3cr3t")?;
    secret(store, ns, "corp-api-cert", "kubernetes.io/tls", "tls.crt", "simulated")?;
    for t in ["corp-login-template", "corp-provider-template", "corp-error-template"] {
        secret(
            store,
            ns,
            t,
            "Opaque",
            &format!("{}.html", t.trim_start_matches("corp-").trim_end_matches("-template")),
            "<html/>",
        )?;
    }
    for (cm, key) in [
        ("corp-client-ca", "ca-bundle.crt"),
        ("corp-oauth-metadata", "oauthMetadata"),
        ("corp-registry-ca", "registry.corp.example"),
        ("sso-ca", "ca.crt"),
        ("ldap-ca", "ca.crt"),
        ("corp-proxy-ca", "ca-bundle.crt"),
        ("corp-scheduler-policy", "policy.cfg"),
    ] {
        create(
            store,
            &registry::CONFIG_MAP,
            ns,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm, "namespace": ns},
                "data": {key: "-----BEGIN CERTIFICATE-----\nSIM\n-----END CERTIFICATE-----\n"}}),
        )?;
    }
    Ok(())
}

/// The pull secret, SSH key, encryption key and trust bundle of a HostedCluster.
fn seed_references(store: &Store, ns: &str, name: &str) -> Result<(), EnvironmentError> {
    secret(
        store,
        ns,
        &format!("{name}-pull-secret"),
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        r#"{"auths":{"quay.io":{"auth":"ZmVycnk6c2ltCg=="}}}"#,
    )?;
    secret(
        store,
        ns,
        &format!("{name}-ssh-key"),
        "Opaque",
        "id_rsa.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFerrySim ferry@sim",
    )?;
    secret(
        store,
        ns,
        &format!("{name}-etcd-encryption-key"),
        "Opaque",
        "key",
        "c2ltdWxhdGVkLWFlcy1jYmMta2V5LTMyLWJ5dGVzISE=",
    )?;
    create(
        store,
        &registry::CONFIG_MAP,
        ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-ca-bundle"), "namespace": ns},
        "data": {"ca-bundle.crt": "-----BEGIN CERTIFICATE-----\nSIM\n-----END CERTIFICATE-----\n"}}),
    )
}

/// An object as a client re-creates it elsewhere: no server-set metadata, no status.
pub fn portable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "finalizers",
            "ownerReferences",
            "deletionTimestamp",
        ] {
            m.remove(k);
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    o
}

/// A stable 10-hex-digit FNV-1a hash (for `<np>-<hash>` names).
fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

fn create_get(store: &Store, kind: &KindInfo, ns: &str, obj: Value) -> Result<Value, EnvironmentError> {
    let name = super::name_of(&obj).to_string();
    create(store, kind, ns, obj)?;
    store
        .get(kind, Some(ns), &name)
        .map_err(|source| EnvironmentError::Seed {
            what: format!("{} {ns}/{name}", kind.kind),
            source,
        })
}

fn create(store: &Store, kind: &KindInfo, ns: &str, obj: Value) -> Result<(), EnvironmentError> {
    let name = super::name_of(&obj).to_string();
    let ns_opt = (!ns.is_empty()).then_some(ns);
    match store.create_with_status(kind, ns_opt, obj) {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
        Err(source) => Err(EnvironmentError::Seed {
            what: format!("{} {ns}/{name}", kind.kind),
            source,
        }),
    }
}

fn namespace(store: &Store, name: &str) -> Result<(), EnvironmentError> {
    create(
        store,
        &registry::NAMESPACE,
        "",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
}

fn secret(store: &Store, ns: &str, name: &str, type_: &str, key: &str, value: &str) -> Result<(), EnvironmentError> {
    create(
        store,
        &registry::SECRET,
        ns,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "type": type_,
            "data": {key: B64.encode(value)},
        }),
    )
}
