//! A local TCP port that forwards to a pod's port through the Kubernetes API
//! (`pods/portforward`), so clients that need a socket address (etcd-client's
//! tonic channel) can reach a pod that is not routable from the host.
//!
//! Each accepted connection gets its own port-forward request: the API
//! server multiplexes one stream per request, and a fresh request per
//! connection lets tonic reconnect after a dropped stream.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::capabilities::provider::ProviderError;

/// How long a finished connection may take to close its port-forward stream
/// before the background task is cut off.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A listening 127.0.0.1 port forwarding to a pod's port. Dropping it stops
/// the listener and every forwarded connection.
#[derive(Debug)]
pub struct LocalForward {
    /// The local address to connect to.
    pub local_addr: SocketAddr,
    /// `namespace/pod:port`, for messages.
    pub target: String,
    task: tokio::task::JoinHandle<()>,
}

impl LocalForward {
    /// `http://127.0.0.1:PORT` (or `https://` with `tls`), for clients that want a URL.
    pub fn url(&self, tls: bool) -> String {
        format!("{}://{}", if tls { "https" } else { "http" }, self.local_addr)
    }
}

impl Drop for LocalForward {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task and with it their port-forward streams.
        self.task.abort();
    }
}

fn kube_error(action: &str, target: &str, e: kube::Error) -> ProviderError {
    match e {
        kube::Error::Api(status) => {
            let text = format!("{action} {target}: {} (HTTP {})", status.message, status.code);
            match status.code {
                404 => ProviderError::NotFound(text),
                401 | 403 => ProviderError::Other(format!(
                    "{text}; the kubeconfig's identity needs `get pods` and `create pods/portforward` in that namespace"
                )),
                409 => ProviderError::Conflict(text),
                429 | 500..=599 => ProviderError::Unavailable(format!("{text}; retry")),
                _ => ProviderError::Other(text),
            }
        }
        other => ProviderError::Unavailable(format!(
            "{action} {target}: {}; check that the API server is reachable",
            crate::capabilities::provider::error_chain(&other)
        )),
    }
}

/// Checks that `namespace/pod` exists and runs, binds 127.0.0.1:0, and
/// forwards every connection accepted there to the pod's `port`.
pub async fn forward_pod_port(
    client: kube::Client,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<LocalForward, ProviderError> {
    let target = format!("pod {namespace}/{pod}:{port}");
    if namespace.is_empty() || pod.is_empty() {
        return Err(ProviderError::Invalid(format!(
            "port-forward to {target}: namespace and pod name are required"
        )));
    }
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let found = api.get(pod).await.map_err(|e| kube_error("looking up", &target, e))?;
    // Fail here with a clear message rather than on the first connection with
    // an opaque stream error. A pod without a reported phase is given the
    // benefit of the doubt.
    if let Some(phase) = found.status.as_ref().and_then(|s| s.phase.as_deref())
        && phase != "Running"
    {
        return Err(ProviderError::Unavailable(format!(
            "{target} is {phase}, not Running; wait for it or pick another member"
        )));
    }
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| ProviderError::Other(format!("port-forward to {target}: cannot bind 127.0.0.1: {e}")))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| ProviderError::Other(format!("port-forward to {target}: {e}")))?;
    let task = tokio::spawn(accept_loop(listener, api, pod.to_string(), port, target.clone()));
    tracing::debug!(%local_addr, %target, "port-forward listening");
    Ok(LocalForward {
        local_addr,
        target,
        task,
    })
}

async fn accept_loop(listener: TcpListener, api: Api<Pod>, pod: String, port: u16, target: String) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(forward_connection(api.clone(), pod.clone(), port, tcp, peer, target.clone()));
                }
                Err(e) => {
                    // Usually EMFILE; back off instead of spinning.
                    tracing::warn!(error = %e, %target, "port-forward: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn forward_connection(
    api: Api<Pod>,
    pod: String,
    port: u16,
    mut tcp: TcpStream,
    peer: SocketAddr,
    target: String,
) {
    let mut forwarder = match api.portforward(&pod, &[port]).await {
        Ok(f) => f,
        Err(e) => {
            // Dropping `tcp` closes the client's connection; the client sees
            // a reset and retries or reports, the reason is logged here.
            tracing::warn!(error = %kube_error("port-forward to", &target, e), %peer, "port-forward: stream not opened");
            return;
        }
    };
    let Some(mut upstream) = forwarder.take_stream(port) else {
        tracing::warn!(%target, "port-forward: no stream for the port");
        forwarder.abort();
        return;
    };
    let errors = forwarder.take_error(port);
    let pod_error = async {
        match errors {
            Some(rx) => rx.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut tcp, &mut upstream) => match copied {
            Ok((to_pod, from_pod)) => tracing::debug!(%target, %peer, to_pod, from_pod, "port-forward: connection closed"),
            Err(e) => tracing::debug!(%target, %peer, error = %e, "port-forward: connection ended with an error"),
        },
        // A message on the error channel means the kubelet could not reach
        // the port (nothing listening, container gone).
        Some(message) = pod_error => {
            tracing::warn!(%target, %peer, %message, "port-forward: the pod side reported an error");
        }
    }
    drop(upstream);
    drop(tcp);
    match tokio::time::timeout(CLOSE_GRACE, forwarder.join()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(%target, error = %e, "port-forward: stream closed with an error")
        }
        Err(_) => tracing::debug!(%target, "port-forward: stream did not close in time"),
    }
}
