//! A minimal HTTP/1.1 client (hyper) for snapshot downloads (plain HTTP) and etcd's JSON
//! gateway (plain HTTP, or HTTPS with rustls on aws-lc-rs and a client certificate).

use std::pin::Pin;
use std::sync::Arc;

use hyper_util::rt::TokioIo;

/// How to speak TLS to an `https://` URL.
#[derive(Clone)]
pub(crate) struct TlsConnect {
    /// The rustls configuration (roots, client certificate).
    pub config: Arc<rustls::ClientConfig>,
    /// The name to verify the server certificate against (default: the URL's host).
    pub server_name: Option<String>,
}

/// Send one request and read the whole response: `http://` in the clear, `https://` over TLS
/// with `tls`. Returns the status and body, or a description of what failed.
pub(crate) async fn request_with(
    method: http::Method,
    url: &str,
    body: String,
    tls: Option<&TlsConnect>,
) -> Result<(u16, Vec<u8>), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let tls = match (uri.scheme_str(), tls) {
        (Some("http"), _) => None,
        (Some("https"), Some(tls)) => Some(tls),
        (Some("https"), None) => return Err(format!("{url} needs TLS settings (a CA and a client certificate)")),
        _ => return Err(format!("only http:// and https:// URLs are supported, not {url}")),
    };
    let host = uri.host().ok_or_else(|| "the URL has no host".to_string())?;
    let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    match tls {
        None => send(TokioIo::new(stream), method, &uri, host, body).await,
        Some(tls) => {
            let name = tls.server_name.as_deref().unwrap_or(host).to_string();
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("invalid TLS server name {name}: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                .connect(server_name, stream)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
            send(TokioIo::new(stream), method, &uri, host, body).await
        }
    }
}

async fn send<T>(
    io: T,
    method: http::Method,
    uri: &http::Uri,
    host: &str,
    body: String,
) -> Result<(u16, Vec<u8>), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, String>(io)
        .await
        .map_err(|e| format!("HTTP handshake: {}", chain(&e)))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {}", chain(&e)))?;
    let status = resp.status().as_u16();
    let mut incoming = resp.into_body();
    let mut out = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| hyper::body::Body::poll_frame(Pin::new(&mut incoming), cx)).await;
        match frame {
            None => break,
            Some(Err(e)) => {
                driver.abort();
                return Err(format!("reading the body: {}", chain(&e)));
            }
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    out.extend_from_slice(&data);
                }
            }
        }
    }
    driver.abort();
    Ok((status, out))
}

/// An error with its sources (hyper's top-level message alone says little, e.g. for a TLS alert
/// the server sent after the handshake).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
