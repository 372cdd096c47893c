//! [`Environment`]: management clusters with HyperShift operators, the source seeded with a
//! realistic hosted cluster from a [`Scenario`].
//!
//! Seeded on the source (HC namespace `ns`, HCP namespace `ns-name` with `.` → `-`):
//! - HC namespace: the HostedCluster (unpaused; the operator adds its finalizer, HCP, routes and
//!   etcd), its NodePools, secrets `<hc>-pull-secret`, `<hc>-ssh-key`,
//!   `<hc>-etcd-encryption-key` and a ConfigMap `<hc>-ca-bundle` referenced from
//!   `spec.additionalTrustBundle`, and the other HostedClusters of the scenario;
//! - HCP namespace: CAPI `Cluster` (name = infraID, finalizer), `AWSCluster`,
//!   `AWSMachineTemplate` `<np>-<hash>`, `MachineDeployment` `<np>`, `MachineSet`
//!   `<np>-<hash>`, `Machine`s and `AWSMachine`s (with finalizers), secrets the backup carries
//!   (`root-ca`, `kube-apiserver-cert`, scenario `carry_secrets`) and secrets it must leave
//!   (`builder-dockercfg-*`, `default-token-*` service-account token, `oauth-openshift-*`,
//!   `token-<hc>-*`, scenario `leave_secrets`);
//! - the hosted cluster's own API ([`HostedClusterApi`], kubeconfig `<name>-hosted`), following
//!   whichever management cluster runs the control plane;
//! - every cluster: the Deployment `hypershift/operator` (replicas 2; scaling it to 0 stops the
//!   simulated operator);
//! - with [`EnvironmentOptions::external_dns`], every cluster: the Deployment
//!   `hypershift/external-dns` configured as HyperShift installs it (`--provider=aws
//!   --domain-filter=<domain> --registry=txt --txt-suffix=<suffix> --txt-owner-id=<owner id>
//!   --source=openshift-route`). The Deployment only describes the configuration; the controller
//!   itself is [`crate::external_dns::ExternalDns`], started by the caller against its Route53.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::error::{ApiError, Reason, SimError};
use crate::hypershift::{
    EXTERNAL_DNS_DOMAIN_ANNOTATION, HostedApiOptions, HostedClusterApi, HyperShiftOperator, OperatorOptions,
    RestoreUrlPolicy, hcp_namespace, registry_with_admission,
};
use crate::registry::{self, KindInfo};
use crate::scenario::Scenario;
use crate::server::{Sim, SimOptions};
use crate::store::Store;

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
    /// The operator failed to start.
    #[error(transparent)]
    Operator(#[from] crate::hypershift::operator::OperatorError),
    /// The hosted etcd did not come up in time.
    #[error("the hosted etcd of {0} did not start; operator log: {1}")]
    EtcdTimeout(String, String),
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

/// How to start an [`Environment`].
#[derive(Debug, Clone)]
pub struct EnvironmentOptions {
    /// Run real hosted etcds (needs etcd binaries).
    pub hosted_etcd: bool,
    /// Admission accepts `http://127.0.0.1` restore URLs (loopback S3 in tests).
    pub allow_http_restore_urls: bool,
    /// How long to wait for the source's hosted etcd.
    pub etcd_timeout: Duration,
    /// Start the hosted cluster's own API ([`HostedClusterApi`]).
    pub hosted_api: bool,
    /// How long the control plane must run before the hosted cluster's Nodes turn Ready.
    pub node_ready_delay: Duration,
    /// Seed a `hypershift/external-dns` Deployment on every management cluster.
    pub external_dns: Option<ExternalDnsDeployment>,
    /// The CA (PEM) the operators trust for `https://` restore URLs (the S3 of a drill).
    pub restore_trusted_ca: Option<String>,
}

/// How the seeded `hypershift/external-dns` Deployments are configured.
#[derive(Debug, Clone)]
pub struct ExternalDnsDeployment {
    /// Owner id prefix: management cluster `c` gets `--txt-owner-id=<prefix><c>`.
    pub owner_id_prefix: String,
    /// `--txt-suffix`.
    pub txt_suffix: String,
}

impl ExternalDnsDeployment {
    /// The `--txt-owner-id` of management cluster `cluster`.
    pub fn owner_id(&self, cluster: &str) -> String {
        format!("{}{cluster}", self.owner_id_prefix)
    }
}

/// The container args of HyperShift's external-dns Deployment.
pub fn external_dns_args(domain: &str, txt_suffix: &str, owner_id: &str) -> Vec<String> {
    vec![
        "--provider=aws".to_string(),
        format!("--domain-filter={domain}"),
        "--registry=txt".to_string(),
        format!("--txt-suffix={txt_suffix}"),
        format!("--txt-owner-id={owner_id}"),
        "--source=openshift-route".to_string(),
    ]
}

/// Seeds the Deployment `hypershift/external-dns` (ready, one replica) with
/// [`external_dns_args`] into `store`.
pub fn seed_external_dns_deployment(
    store: &Store,
    domain: &str,
    txt_suffix: &str,
    owner_id: &str,
) -> Result<(), EnvironmentError> {
    namespace(store, "hypershift")?;
    create(
        store,
        &registry::DEPLOYMENT,
        "hypershift",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "external-dns", "namespace": "hypershift", "labels": {"app": "external-dns"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "external-dns"}},
                "template": {"metadata": {"labels": {"app": "external-dns"}},
                    "spec": {"containers": [{"name": "external-dns",
                        "image": "registry.k8s.io/external-dns/external-dns:sim",
                        "args": external_dns_args(domain, txt_suffix, owner_id)}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1},
        }),
    )
}

impl Default for EnvironmentOptions {
    fn default() -> Self {
        EnvironmentOptions {
            hosted_etcd: true,
            allow_http_restore_urls: false,
            etcd_timeout: Duration::from_secs(60),
            hosted_api: true,
            node_ready_delay: Duration::from_secs(2),
            external_dns: None,
            restore_trusted_ca: None,
        }
    }
}

/// One management cluster: its API server and HyperShift operator.
#[derive(Debug)]
pub struct ManagementCluster {
    /// The API server.
    pub sim: Sim,
    /// The operator.
    pub operator: HyperShiftOperator,
}

/// Running management clusters, the first seeded from the scenario.
#[derive(Debug)]
pub struct Environment {
    /// The clusters, in scenario order (source first).
    pub clusters: Vec<ManagementCluster>,
    /// The scenario.
    pub scenario: Scenario,
    /// The hosted cluster's API (shared by all management clusters), when started.
    pub hosted: Option<HostedClusterApi>,
}

impl Environment {
    /// Start every management cluster and operator, seed the source and wait for its hosted
    /// etcd (then write the scenario's etcd keys).
    pub async fn start(scenario: Scenario, opts: EnvironmentOptions) -> Result<Environment, EnvironmentError> {
        if scenario.management_clusters.is_empty() {
            return Err(EnvironmentError::NoClusters);
        }
        let policy = RestoreUrlPolicy {
            allow_http_restore_urls: opts.allow_http_restore_urls,
        };
        let mut clusters = Vec::new();
        for name in &scenario.management_clusters {
            let sim = Sim::start_with(SimOptions {
                registry: registry_with_admission(policy),
                ..SimOptions::new(name)
            })
            .await?;
            let mut oo = OperatorOptions::new(name);
            oo.hosted_etcd = opts.hosted_etcd;
            oo.restore_policy = policy;
            oo.restore_trusted_ca = opts.restore_trusted_ca.clone();
            oo.default_external_dns_domain = scenario.hosted_cluster.external_dns_domain.clone();
            let operator = HyperShiftOperator::start(&sim, oo)?;
            seed_operator_deployment(sim.store())?;
            if let Some(ed) = &opts.external_dns {
                seed_external_dns_deployment(
                    sim.store(),
                    &scenario.hosted_cluster.external_dns_domain,
                    &ed.txt_suffix,
                    &ed.owner_id(name),
                )?;
            }
            clusters.push(ManagementCluster { sim, operator });
        }
        let hosted = if opts.hosted_api {
            let mut ho = HostedApiOptions::new(&scenario.hosted_cluster.namespace, &scenario.hosted_cluster.name);
            ho.node_ready_delay = opts.node_ready_delay;
            let stores = clusters.iter().map(|c| c.sim.store().clone()).collect();
            Some(HostedClusterApi::start(ho, stores).await?)
        } else {
            None
        };
        let env = Environment {
            clusters,
            scenario,
            hosted,
        };
        env.seed_source(&opts).await?;
        Ok(env)
    }

    /// The source (first) cluster.
    pub fn source(&self) -> &ManagementCluster {
        &self.clusters[0]
    }

    /// The destination (second) cluster, if any.
    pub fn destination(&self) -> Option<&ManagementCluster> {
        self.clusters.get(1)
    }

    /// The HCP namespace of the scenario's hosted cluster.
    pub fn hcp_namespace(&self) -> String {
        hcp_namespace(
            &self.scenario.hosted_cluster.namespace,
            &self.scenario.hosted_cluster.name,
        )
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
        if let Some(h) = &self.hosted {
            let name = h.sim().name().to_string();
            let path = dir.join(format!("{name}.kubeconfig"));
            h.sim().write_kubeconfig(&path, &name)?;
            out.push((name, h.sim().url(), path));
        }
        Ok(out)
    }

    /// Stop operators (and their etcds) and servers.
    pub async fn shutdown(self) {
        if let Some(h) = self.hosted {
            h.shutdown().await;
        }
        for c in self.clusters {
            c.operator.shutdown().await;
            c.sim.shutdown().await;
        }
    }

    async fn seed_source(&self, opts: &EnvironmentOptions) -> Result<(), EnvironmentError> {
        let src = self.source();
        let store = src.sim.store();
        let sc = &self.scenario;
        let hc = &sc.hosted_cluster;
        let ns = hc.namespace.as_str();
        let hcp_ns = self.hcp_namespace();
        let infra = hc.infra_id();
        namespace(store, ns)?;
        // HC namespace: secrets and the configmap the HC references.
        secret(
            store,
            ns,
            &format!("{}-pull-secret", hc.name),
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            r#"{"auths":{"quay.io":{"auth":"ZmVycnk6c2ltCg=="}}}"#,
        )?;
        secret(
            store,
            ns,
            &format!("{}-ssh-key", hc.name),
            "Opaque",
            "id_rsa.pub",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFerrySim ferry@sim",
        )?;
        secret(
            store,
            ns,
            &format!("{}-etcd-encryption-key", hc.name),
            "Opaque",
            "key",
            "c2ltdWxhdGVkLWFlcy1jYmMta2V5LTMyLWJ5dGVzISE=",
        )?;
        create(
            store,
            &registry::CONFIG_MAP,
            ns,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{}-ca-bundle", hc.name), "namespace": ns},
            "data": {"ca-bundle.crt": "-----BEGIN CERTIFICATE-----\nSIM\n-----END CERTIFICATE-----\n"}}),
        )?;
        create(
            store,
            &registry::HOSTED_CLUSTER,
            ns,
            hosted_cluster(sc, &hc.name, &infra),
        )?;
        for other in &sc.other_hosted_clusters {
            create(
                store,
                &registry::HOSTED_CLUSTER,
                ns,
                hosted_cluster(sc, other, &format!("{other}-infra")),
            )?;
        }
        for np in &sc.node_pools {
            create(
                store,
                &registry::NODE_POOL,
                ns,
                json!({
                    "apiVersion": "hypershift.openshift.io/v1beta1", "kind": "NodePool",
                    "metadata": {"name": np.name, "namespace": ns},
                    "spec": {
                        "clusterName": hc.name,
                        "replicas": np.replicas,
                        "management": {"upgradeType": "Replace", "autoRepair": false},
                        "platform": {"type": "AWS", "aws": {"instanceType": np.instance_type}},
                        "release": {"image": hc.release_image},
                    },
                }),
            )?;
        }
        // The operator builds the control plane; wait for it before adding CAPI objects.
        if opts.hosted_etcd {
            let Some(client) = src.operator.wait_for_etcd(&hcp_ns, opts.etcd_timeout).await else {
                return Err(EnvironmentError::EtcdTimeout(
                    hcp_ns.clone(),
                    format!("{:?}", src.operator.log().entries()),
                ));
            };
            for (k, v) in &sc.etcd_keys {
                client.put(k, v).await?;
            }
        } else {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while store.get(&registry::NAMESPACE, None, &hcp_ns).is_err() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            namespace(store, &hcp_ns)?;
        }
        self.seed_capi(store, &hcp_ns, &infra)?;
        // HCP namespace secrets: carried by the backup ...
        for name in ["root-ca", "kube-apiserver-cert"]
            .into_iter()
            .map(str::to_string)
            .chain(sc.carry_secrets.iter().cloned())
        {
            secret(store, &hcp_ns, &name, "Opaque", "tls.crt", "simulated")?;
        }
        // ... and left by its filters (docker, service-account-token, oauth-openshift, token-<hc>).
        secret(
            store,
            &hcp_ns,
            "builder-dockercfg-x7k2p",
            "kubernetes.io/dockercfg",
            ".dockercfg",
            "{}",
        )?;
        secret(
            store,
            &hcp_ns,
            "default-token-x7k2p",
            "kubernetes.io/service-account-token",
            "token",
            "simulated",
        )?;
        secret(
            store,
            &hcp_ns,
            "oauth-openshift-session-x7k2p",
            "Opaque",
            "session",
            "simulated",
        )?;
        for np in &sc.node_pools {
            secret(
                store,
                &hcp_ns,
                &format!("token-{}-{}", hc.name, np.name),
                "Opaque",
                "token",
                "simulated",
            )?;
        }
        for name in &sc.leave_secrets {
            secret(store, &hcp_ns, name, "Opaque", "token", "simulated")?;
        }
        Ok(())
    }

    fn seed_capi(&self, store: &Store, hcp_ns: &str, infra: &str) -> Result<(), EnvironmentError> {
        let hc = &self.scenario.hosted_cluster;
        let cluster_label = json!({"cluster.x-k8s.io/cluster-name": infra});
        create(
            store,
            &registry::CAPI_CLUSTER,
            hcp_ns,
            json!({
                "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
                "metadata": {"name": infra, "namespace": hcp_ns, "labels": cluster_label,
                    "finalizers": ["cluster.cluster.x-k8s.io"]},
                "spec": {
                    "controlPlaneRef": {"apiVersion": "hypershift.openshift.io/v1beta1", "kind": "HostedControlPlane",
                        "name": hc.name, "namespace": hcp_ns},
                    "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSCluster",
                        "name": hc.name, "namespace": hcp_ns},
                },
                "status": {"phase": "Provisioned"},
            }),
        )?;
        create(
            store,
            &registry::AWS_CLUSTER,
            hcp_ns,
            json!({
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSCluster",
                "metadata": {"name": hc.name, "namespace": hcp_ns, "labels": cluster_label,
                    "finalizers": ["awscluster.infrastructure.cluster.x-k8s.io"]},
                "spec": {"region": hc.region},
                "status": {"ready": true},
            }),
        )?;
        for np in &self.scenario.node_pools {
            let template = format!("{}-{}", np.name, short_hash(&format!("{infra}/{}/template", np.name)));
            let ms = format!("{}-{}", np.name, short_hash(&format!("{infra}/{}/ms", np.name)));
            let np_labels =
                json!({"cluster.x-k8s.io/cluster-name": infra, "hypershift.openshift.io/nodePool": np.name});
            create(
                store,
                &registry::AWS_MACHINE_TEMPLATE,
                hcp_ns,
                json!({
                    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachineTemplate",
                    "metadata": {"name": template, "namespace": hcp_ns, "labels": np_labels},
                    "spec": {"template": {"spec": {"instanceType": np.instance_type}}},
                }),
            )?;
            create(
                store,
                &registry::MACHINE_DEPLOYMENT,
                hcp_ns,
                json!({
                    "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment",
                    "metadata": {"name": np.name, "namespace": hcp_ns, "labels": np_labels},
                    "spec": {"clusterName": infra, "replicas": np.replicas,
                        "selector": {"matchLabels": {"hypershift.openshift.io/nodePool": np.name}},
                        "template": {"spec": {"clusterName": infra, "infrastructureRef": {
                            "kind": "AWSMachineTemplate", "name": template}}}},
                    "status": {"replicas": np.replicas, "readyReplicas": np.replicas, "phase": "Running"},
                }),
            )?;
            create(
                store,
                &registry::MACHINE_SET,
                hcp_ns,
                json!({
                    "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineSet",
                    "metadata": {"name": ms, "namespace": hcp_ns, "labels": np_labels},
                    "spec": {"clusterName": infra, "replicas": np.replicas,
                        "selector": {"matchLabels": {"hypershift.openshift.io/nodePool": np.name}}},
                    "status": {"replicas": np.replicas, "readyReplicas": np.replicas},
                }),
            )?;
            for i in 0..np.replicas {
                let machine = format!("{ms}-{}", short_hash(&format!("{ms}/{i}")).get(5..).unwrap_or("m0000"));
                let aws_machine = format!(
                    "{}-{}",
                    np.name,
                    short_hash(&format!("{ms}/{i}/aws")).get(5..).unwrap_or("a0000")
                );
                create(
                    store,
                    &registry::AWS_MACHINE,
                    hcp_ns,
                    json!({
                        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachine",
                        "metadata": {"name": aws_machine, "namespace": hcp_ns, "labels": np_labels,
                            "finalizers": ["awsmachine.infrastructure.cluster.x-k8s.io"]},
                        "spec": {"instanceType": np.instance_type, "providerID": format!("aws:///{}a/i-0{:015x}", hc.region, i)},
                        "status": {"ready": true, "instanceState": "running"},
                    }),
                )?;
                create(
                    store,
                    &registry::MACHINE,
                    hcp_ns,
                    json!({
                        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
                        "metadata": {"name": machine, "namespace": hcp_ns, "labels": np_labels,
                            "finalizers": ["machine.cluster.x-k8s.io"]},
                        "spec": {"clusterName": infra, "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
                            "kind": "AWSMachine", "name": aws_machine, "namespace": hcp_ns}},
                        "status": {"phase": "Running", "nodeRef": {"kind": "Node", "name": format!("{}-{i}", np.name)}},
                    }),
                )?;
            }
        }
        Ok(())
    }
}

fn hosted_cluster(sc: &Scenario, name: &str, infra: &str) -> Value {
    let hc = &sc.hosted_cluster;
    json!({
        "apiVersion": "hypershift.openshift.io/v1beta1",
        "kind": "HostedCluster",
        "metadata": {"name": name, "namespace": hc.namespace,
            "annotations": {EXTERNAL_DNS_DOMAIN_ANNOTATION: hc.external_dns_domain}},
        "spec": {
            "release": {"image": hc.release_image},
            "infraID": infra,
            "controllerAvailabilityPolicy": hc.availability_policy,
            "infrastructureAvailabilityPolicy": "SingleReplica",
            "pullSecret": {"name": format!("{name}-pull-secret")},
            "sshKey": {"name": format!("{name}-ssh-key")},
            "secretEncryption": {"type": "aescbc", "aescbc": {"activeKey": {"name": format!("{name}-etcd-encryption-key")}}},
            "additionalTrustBundle": {"name": format!("{name}-ca-bundle")},
            "etcd": {"managementType": "Managed", "managed": {"storage": {"type": "PersistentVolume",
                "persistentVolume": {"size": "8Gi"}}}},
            "platform": {"type": "AWS", "aws": {"region": hc.region}},
            "networking": {"networkType": "OVNKubernetes"},
            "services": [
                {"service": "APIServer", "servicePublishingStrategy": {"type": "Route",
                    "route": {"hostname": format!("api-{name}.{}", hc.external_dns_domain)}}},
                {"service": "OAuthServer", "servicePublishingStrategy": {"type": "Route"}},
                {"service": "Konnectivity", "servicePublishingStrategy": {"type": "Route"}},
                {"service": "Ignition", "servicePublishingStrategy": {"type": "Route"}},
            ],
        },
    })
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

fn create(store: &Store, kind: &'static KindInfo, ns: &str, obj: Value) -> Result<(), EnvironmentError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
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

fn seed_operator_deployment(store: &Store) -> Result<(), EnvironmentError> {
    namespace(store, "hypershift")?;
    create(
        store,
        &registry::DEPLOYMENT,
        "hypershift",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "operator", "namespace": "hypershift", "labels": {"app": "operator"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "operator"}},
                "template": {"metadata": {"labels": {"app": "operator"}},
                    "spec": {"containers": [{"name": "operator", "image": "quay.io/hypershift/hypershift-operator:sim"}]}}},
            "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2},
        }),
    )?;
    Ok(())
}
