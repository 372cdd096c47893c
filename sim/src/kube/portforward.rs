//! `pods/{name}/portforward` over WebSocket, the way kube-rs (`Api::<Pod>::portforward`) and
//! the kubelet's WebSocket port-forward speak it.
//!
//! Protocol (`v4.channel.k8s.io`, binary frames, first byte = channel): for the i-th requested
//! port, channel `2i` carries data and `2i+1` errors. The server's first frame on each of the two
//! channels is the port number as two little-endian bytes. Errors are plain text on the error
//! channel, after which the port is unusable.
//!
//! A pod port is mapped to a real TCP address with [`PortForwards::set`]; the connection is made
//! when the WebSocket opens (one TCP connection per port per WebSocket, like the kubelet).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};

/// The subprotocols accepted, in order of preference (kube-rs offers v5 then v4; the kubelet's
/// port-forward only implements the v4 framing, so v4 wins).
pub const PROTOCOLS: [&str; 3] = ["v4.channel.k8s.io", "channel.k8s.io", "portforward.k8s.io"];

/// (namespace, pod, container port) → target address.
type Routes = HashMap<(String, String, u16), SocketAddr>;

/// Told of every port-forward connection: (namespace, pod, container port).
pub type Observer = Arc<dyn Fn(&str, &str, u16) + Send + Sync>;

/// Map from (namespace, pod, container port) to the real address that receives the traffic.
#[derive(Clone, Default)]
pub struct PortForwards {
    inner: Arc<Mutex<Routes>>,
    observers: Arc<Mutex<Vec<Observer>>>,
}

impl std::fmt::Debug for PortForwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortForwards")
            .field("routes", &self.map().len())
            .finish_non_exhaustive()
    }
}

impl PortForwards {
    fn map(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Call `f` for every port-forward connection from now on (a simulated cluster's
    /// controllers use it to check what a client reaches, and when).
    pub fn observe(&self, f: Observer) {
        self.observers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(f);
    }

    /// A client opens a port-forward to `namespace/pod:port`: tell the observers, and return
    /// the target, if any.
    pub fn connect(&self, namespace: &str, pod: &str, port: u16) -> Option<SocketAddr> {
        let observers = self
            .observers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for o in observers {
            o(namespace, pod, port);
        }
        self.lookup(namespace, pod, port)
    }

    /// Route `namespace/pod:port` to `target`.
    pub fn set(&self, namespace: &str, pod: &str, port: u16, target: SocketAddr) {
        self.map()
            .insert((namespace.to_string(), pod.to_string(), port), target);
    }

    /// Remove a route; later port-forwards to it report an error on the error channel.
    pub fn remove(&self, namespace: &str, pod: &str, port: u16) {
        self.map().remove(&(namespace.to_string(), pod.to_string(), port));
    }

    /// The target of `namespace/pod:port`, if any.
    pub fn lookup(&self, namespace: &str, pod: &str, port: u16) -> Option<SocketAddr> {
        self.map().get(&(namespace.to_string(), pod.to_string(), port)).copied()
    }
}

/// Parse the `ports` query parameters (repeated and/or comma-separated).
pub fn parse_ports<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for v in values {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => out.push(n),
                _ => return Err(format!("invalid port: {p:?}")),
            }
        }
    }
    if out.is_empty() {
        return Err("at least one port must be specified".into());
    }
    Ok(out)
}

enum FromTarget {
    Data(u8, Bytes),
    Eof,
}

fn frame(channel: u8, payload: &[u8]) -> Message {
    let mut buf = Vec::with_capacity(payload.len() + 1);
    buf.push(channel);
    buf.extend_from_slice(payload);
    Message::Binary(Bytes::from(buf))
}

/// Serve one upgraded port-forward WebSocket until either side closes or the server stops.
pub async fn serve(
    socket: WebSocket,
    pod: String,
    ports: Vec<(u16, Option<SocketAddr>)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut sink, mut stream) = socket.split();
    for (i, (port, _)) in ports.iter().enumerate() {
        let Ok(ch) = u8::try_from(2 * i) else {
            return;
        };
        for c in [ch, ch + 1] {
            if sink.send(frame(c, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<FromTarget>(64);
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::new();
    let mut readers = Vec::new();
    let mut open = 0usize;
    for (i, (port, target)) in ports.iter().enumerate() {
        let ch = (2 * i) as u8;
        let conn = match target {
            Some(addr) => TcpStream::connect(addr)
                .await
                .map_err(|e| format!("failed to connect to {addr}: {e}")),
            None => Err(format!("no port-forward target is configured for port {port}")),
        };
        match conn {
            Ok(tcp) => {
                let (mut r, w) = tcp.into_split();
                writers.push(Some(w));
                open += 1;
                let tx = tx.clone();
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let data = Bytes::copy_from_slice(&buf[..n]);
                                if tx.send(FromTarget::Data(ch, data)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send(FromTarget::Eof).await;
                }));
            }
            Err(e) => {
                writers.push(None);
                let msg = format!("error forwarding port {port} to pod {pod}, uid : {e}");
                if sink.send(frame(ch + 1, msg.as_bytes())).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(tx);
    if open == 0 {
        let _ = sink.send(Message::Close(None)).await;
        return;
    }
    loop {
        tokio::select! {
            _ = wait_down(&mut shutdown) => break,
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(data))) if data.len() > 1 => {
                    let ch = usize::from(data[0]);
                    // Only even (data) channels carry client bytes; odd ones are ignored.
                    if ch % 2 == 0
                        && let Some(Some(w)) = writers.get_mut(ch / 2)
                        && w.write_all(&data[1..]).await.is_err()
                    {
                        writers[ch / 2] = None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(FromTarget::Data(ch, data)) => {
                    if sink.send(frame(ch, &data)).await.is_err() {
                        break;
                    }
                }
                Some(FromTarget::Eof) => {
                    open -= 1;
                    if open == 0 {
                        // Every target closed: v4 has no per-channel close, so end the socket,
                        // which kube-rs turns into EOF on the port streams.
                        let _ = sink.send(Message::Close(None)).await;
                        break;
                    }
                }
                None => break,
            },
        }
    }
    for w in writers.iter_mut().flatten() {
        let _ = w.shutdown().await;
    }
    for r in readers {
        r.abort();
    }
    let _ = sink.close().await;
}

/// Resolves once the server is shutting down. The `wait_for` guard is dropped inside, so the
/// future stays `Send` (the guard is not).
async fn wait_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        assert_eq!(parse_ports(["80,1234"].into_iter()), Ok(vec![80, 1234]));
        assert_eq!(parse_ports(["80", "81"].into_iter()), Ok(vec![80, 81]));
        assert!(parse_ports(["x"].into_iter()).is_err());
        assert!(parse_ports([""].into_iter()).is_err());
        assert!(parse_ports(["0"].into_iter()).is_err());
    }

    #[test]
    fn routes() {
        let pf = PortForwards::default();
        let addr: SocketAddr = "127.0.0.1:2379".parse().expect("addr");
        pf.set("ns", "etcd-0", 2379, addr);
        assert_eq!(pf.lookup("ns", "etcd-0", 2379), Some(addr));
        pf.remove("ns", "etcd-0", 2379);
        assert_eq!(pf.lookup("ns", "etcd-0", 2379), None);
    }
}
