//! [`Sim`]: one simulated API server on `127.0.0.1`, with its store, kubeconfig writer and
//! port-forward routes. Several can run in one process (source and destination management
//! clusters, a hosted cluster's API).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::api::{self, AppState};
use super::crd::CrdSource;
use super::error::SimError;
use super::faults::{self, ConnHandle, FaultListener, FaultPlan, FaultState};
use super::portforward::PortForwards;
use super::registry::{self, Registry};
use super::store::{DEFAULT_HISTORY_LIMIT, Store, WriteOptions};

/// Namespaces every real cluster starts with.
pub const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How to start a [`Sim`].
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Name used in logs and as the kubeconfig cluster/user name.
    pub name: String,
    /// Listen address; the default `127.0.0.1:0` picks a free port.
    pub addr: SocketAddr,
    /// Kinds served before any CRD (the core kinds, plus the HyperShift fallback rows when
    /// `crds` is [`CrdSource::Builtin`]).
    pub registry: Registry,
    /// CustomResourceDefinitions installed at start, through the API as `kubectl apply` would.
    pub crds: CrdSource,
    /// Events kept for watch resumption.
    pub history_limit: usize,
    /// BOOKMARK period for watches with `allowWatchBookmarks=true`.
    pub bookmark_interval: Duration,
    /// Create `default`, `kube-system`, `kube-public` and `kube-node-lease` at start.
    pub default_namespaces: bool,
    /// Fault and latency rules applied to every request (empty by default). Pass a plan shared
    /// with other code to arm faults before the server starts; [`Sim::faults`] returns it.
    pub faults: FaultPlan,
}

impl SimOptions {
    /// Defaults for a server called `name`.
    pub fn new(name: &str) -> Self {
        SimOptions {
            name: name.to_string(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            registry: Registry::builtin(),
            crds: CrdSource::Builtin,
            history_limit: DEFAULT_HISTORY_LIMIT,
            bookmark_interval: Duration::from_secs(10),
            default_namespaces: true,
            faults: FaultPlan::default(),
        }
    }
}

/// A running simulated Kubernetes API server. Dropping it stops the server.
pub struct Sim {
    name: String,
    addr: SocketAddr,
    store: Store,
    port_forwards: PortForwards,
    faults: FaultPlan,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Start a server with default options on a free port of 127.0.0.1.
    pub async fn start(name: &str) -> Result<Sim, SimError> {
        Self::start_with(SimOptions::new(name)).await
    }

    /// Start a server with explicit options.
    pub async fn start_with(opts: SimOptions) -> Result<Sim, SimError> {
        let crds = opts.crds.load().map_err(SimError::Crds)?;
        // Without CRDs, the minimal rows serve HyperShift's kinds; with them, the CRDs do, and
        // a minimal row stays for a kind the CRDs leave out (HyperShift installs the
        // MachineHealthCheck CRD, which the shared upstream data does not hold).
        let provided: Vec<(String, String)> = crds
            .iter()
            .map(|(_, crd)| {
                let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
                (text("/spec/group"), text("/spec/names/plural"))
            })
            .collect();
        let mut registry = opts.registry.clone();
        for k in registry::hypershift_fallback() {
            if provided.iter().any(|(g, p)| *g == k.group && *p == k.plural) {
                registry.uninstall(&k.group, &k.plural);
            }
        }
        let store = Store::new(registry, opts.history_limit);
        for (origin, crd) in crds {
            store
                .create(
                    &registry::CUSTOM_RESOURCE_DEFINITION,
                    None,
                    crd,
                    &WriteOptions::default(),
                )
                .map_err(|source| SimError::Crd { origin, source })?;
        }
        if opts.default_namespaces {
            for ns in DEFAULT_NAMESPACES {
                store.create(
                    &registry::NAMESPACE,
                    None,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    &WriteOptions::default(),
                )?;
            }
        }
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|source| SimError::Bind {
                addr: opts.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: opts.addr,
            source,
        })?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let port_forwards = PortForwards::default();
        let state = Arc::new(AppState {
            name: opts.name.clone(),
            address: addr.to_string(),
            store: store.clone(),
            port_forwards: port_forwards.clone(),
            shutdown: shutdown_rx.clone(),
            bookmark_interval: opts.bookmark_interval,
        });
        let fault_state = FaultState {
            plan: opts.faults.clone(),
            store: store.clone(),
        };
        // Faults run inside the logging layer so that injected answers are logged too.
        let app = Router::new()
            .fallback(api::dispatch)
            .layer(axum::middleware::from_fn_with_state(fault_state, faults::inject))
            .layer(axum::middleware::from_fn_with_state(state.clone(), api::log_requests))
            .with_state(state);
        // The listener hands each request a handle to its connection, so that a fault can drop it.
        let listener = FaultListener::new(listener);
        let mut stop = shutdown_rx;
        let name = opts.name.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app.into_make_service_with_connect_info::<ConnHandle>())
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|down| *down).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(sim = %name, error = %e, "API server stopped with an error");
            }
        });
        tracing::info!(sim = %opts.name, url = %format!("http://{addr}"), "ferry-sim API server started");
        Ok(Sim {
            name: opts.name,
            addr,
            store,
            port_forwards,
            faults: opts.faults,
            shutdown,
            task: Some(task),
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The object store (shared with the HTTP server; writes are visible to clients at once).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The fault and latency rules of this server; changes apply to the next request.
    pub fn faults(&self) -> &FaultPlan {
        &self.faults
    }

    /// The port-forward routing table.
    pub fn port_forwards(&self) -> &PortForwards {
        &self.port_forwards
    }

    /// Route `kubectl/kube-rs port-forward` of `namespace/pod:container_port` to a real TCP
    /// address (e.g. a hosted cluster's etcd).
    pub fn set_port_forward(&self, namespace: &str, pod: &str, container_port: u16, target: SocketAddr) {
        self.port_forwards.set(namespace, pod, container_port, target);
    }

    /// A kubeconfig (YAML) with one cluster, user and context, no credentials.
    pub fn kubeconfig(&self, context: &str) -> String {
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": {"server": self.url()}}],
            "users": [{"name": self.name, "user": {}}],
            "contexts": [{"name": context, "context": {
                "cluster": self.name, "user": self.name, "namespace": "default"}}],
            "current-context": context,
            "preferences": {},
        });
        serde_saphyr::to_string(&doc).unwrap_or_else(|_| doc.to_string())
    }

    /// Write [`Sim::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>, context: &str) -> Result<(), SimError> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig(context)).map_err(|source| SimError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Stop accepting requests, end watches and port-forwards, and wait for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            // Open keep-alive connections are closed by the graceful shutdown; bound the wait
            // anyway so that a stuck client cannot hang the caller.
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
