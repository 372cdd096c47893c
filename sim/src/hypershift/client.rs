//! A minimal plain-HTTP/1.1 client (hyper) for snapshot downloads and etcd's JSON gateway.

use std::pin::Pin;

use hyper_util::rt::TokioIo;

/// Send one request to an `http://` URL and read the whole response.
/// Returns the status and body, or a description of what failed.
pub(crate) async fn request(method: http::Method, url: &str, body: String) -> Result<(u16, Vec<u8>), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// URLs are supported, not {url}"));
    }
    let host = uri.host().ok_or_else(|| "the URL has no host".to_string())?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, String>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
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
    let resp = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let mut incoming = resp.into_body();
    let mut out = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| hyper::body::Body::poll_frame(Pin::new(&mut incoming), cx)).await;
        match frame {
            None => break,
            Some(Err(e)) => {
                driver.abort();
                return Err(format!("reading the body: {e}"));
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
