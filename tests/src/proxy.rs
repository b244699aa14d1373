//! A reverse proxy on loopback, as a service behind nginx sees one: each request is forwarded to the service with the client's address appended to `X-Forwarded-For` (and the client's own header kept in front of it, as proxies do).

use std::net::SocketAddr;

use http_body_util::BodyExt as _;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// A running proxy: its address; it stops with the test process.
pub struct Proxy {
    pub addr: SocketAddr,
}

/// Starts a proxy on 127.0.0.1 (port 0) in front of `upstream`. It connects to the
/// service from 127.0.0.1.
pub async fn start(upstream: SocketAddr) -> Proxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = reqwest::Client::builder()
        .local_address(Some("127.0.0.1".parse().unwrap()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let client = client.clone();
                    async move { forward(&client, upstream, peer, req).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Proxy { addr }
}

async fn forward(
    client: &reqwest::Client,
    upstream: SocketAddr,
    peer: SocketAddr,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forwarded = client.request(parts.method.clone(), format!("http://{upstream}{path}"));
    let mut chain = Vec::new();
    for (name, value) in &parts.headers {
        if name == "x-forwarded-for" {
            chain.push(value.to_str().unwrap_or("").to_string());
        } else if name != "host" && name != "connection" && name != "content-length" {
            forwarded = forwarded.header(name, value);
        }
    }
    chain.push(peer.ip().to_string());
    forwarded = forwarded.header("x-forwarded-for", chain.join(", "));
    let answer = forwarded.body(body).send().await.unwrap();
    let mut out = hyper::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "transfer-encoding" && name != "connection" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    Ok(out.body(http_body_util::Full::new(bytes)).unwrap())
}
