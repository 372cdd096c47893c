//! A reverse proxy that throttles: Route53 as it answers under load, in front of moto, which
//! never does.
//!
//! Route53 limits each account to five requests per second and answers the excess with
//! HTTP 400 `Throttling` ("Rate exceeded"); a change while another is being applied gets
//! `PriorRequestNotComplete`. The proxy answers a share of requests that way (drawn by a
//! [`Chaos`]) and forwards the rest to its upstream unchanged.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::chaos::Chaos;

/// A throttling proxy on 127.0.0.1 in front of an HTTP upstream; stops when dropped.
#[derive(Debug)]
pub struct Route53ChaosProxy {
    addr: SocketAddr,
    chaos: Arc<Chaos>,
    task: JoinHandle<()>,
}

fn throttled(code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>ferry-sim-chaos</RequestId></ErrorResponse>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    resp
}

fn bad_gateway(why: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(why)));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp
}

/// Sends `req` to `upstream` on a new connection and returns the whole response.
async fn forward(upstream: SocketAddr, req: Request<Incoming>) -> Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.context("reading the request")?.to_bytes();
    let stream = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("connecting to {upstream}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake with the upstream")?;
    let conn = tokio::spawn(conn);
    let resp = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .context("forwarding the request")?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .context("reading the upstream's response")?
        .to_bytes();
    conn.abort();
    Ok(Response::from_parts(parts, Full::new(body)))
}

impl Route53ChaosProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream` (moto's address), throttling
    /// as `chaos` decides.
    pub async fn start(upstream: SocketAddr, chaos: Arc<Chaos>) -> Result<Route53ChaosProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind 127.0.0.1:0 for the Route53 proxy")?;
        let addr = listener.local_addr().context("the Route53 proxy's address")?;
        let counted = chaos.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                while connections.try_join_next().is_some() {}
                let chaos = chaos.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let chaos = chaos.clone();
                        async move {
                            let change = req.method() == hyper::Method::POST && req.uri().path().ends_with("/rrset");
                            let kinds: &[&str] = if change {
                                &["Throttling", "PriorRequestNotComplete"]
                            } else {
                                &["Throttling"]
                            };
                            let resp = match chaos.pick(kinds) {
                                Some("PriorRequestNotComplete") => throttled(
                                    "PriorRequestNotComplete",
                                    "The request was rejected because Route 53 was still processing a prior request.",
                                ),
                                Some(_) => throttled("Throttling", "Rate exceeded"),
                                None => forward(upstream, req)
                                    .await
                                    .unwrap_or_else(|e| bad_gateway(format!("{e:#}"))),
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Route53ChaosProxy {
            addr,
            chaos: counted,
            task,
        })
    }

    /// The faults it injects, and their counts.
    pub fn chaos(&self) -> Arc<Chaos> {
        self.chaos.clone()
    }

    /// The proxy's endpoint URL, to use as the Route53 endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Route53ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: &str, path: &str) -> String {
        let mut s = TcpStream::connect(addr.trim_start_matches("http://")).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn forwards_or_throttles_as_route53_does() {
        // An upstream that answers every request with "upstream".
        let up = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let up_addr = up.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (s, _) = up.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("upstream"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        let calm = Route53ChaosProxy::start(up_addr, Chaos::for_service("route53", 0.0, 1))
            .await
            .unwrap();
        let out = get(&calm.url(), "/2013-04-01/hostedzone").await;
        assert!(out.starts_with("HTTP/1.1 200") && out.ends_with("upstream"), "{out}");

        let chaos = Chaos::for_service("route53", 1.0, 1);
        let stormy = Route53ChaosProxy::start(up_addr, chaos.clone()).await.unwrap();
        let out = get(&stormy.url(), "/2013-04-01/hostedzone").await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        assert!(out.contains("<Code>Throttling</Code>"), "{out}");
        assert_eq!(chaos.injected().get("Throttling"), Some(&1));
    }
}
