//! The HTTP listener: accepts connections under a cap (in all and per client address), closes those that are slow to send their headers or body, and shuts down gracefully. Half-sent requests cannot take the service down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How many connections the service holds open and how long it waits for a slow
/// client; which reverse proxies it believes about the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections in all; past this, new connections are closed at once. Kept
    /// below the process's open-files limit, so that the database and the log always
    /// have files left.
    pub max_connections: usize,
    /// Open connections from one client address (0: no cap; behind a reverse proxy,
    /// every connection comes from the proxy's address).
    pub max_per_client: usize,
    /// A request's headers must arrive within this, from the moment the connection is
    /// ready for a request (idle keep-alive connections are closed after it too).
    pub header_timeout: Duration,
    /// A request's body must arrive within this once its headers have.
    pub body_timeout: Duration,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` say who the client is
    /// (for per-client limits: sign-in codes, placard reports). A request from any
    /// other address is its own client, whatever its headers claim.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 4096,
            max_per_client: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Limits {
    /// The limits with the connection cap lowered to fit under `open_files` (keeping
    /// a quarter of them, and at least 64, for everything else).
    pub fn within_open_files(mut self, open_files: u64) -> Limits {
        let room = open_files.saturating_sub((open_files / 4).max(64));
        self.max_connections = self
            .max_connections
            .min(usize::try_from(room).unwrap_or(usize::MAX))
            .max(1);
        self
    }
}

/// Raises the soft limit of open files to the hard limit; returns the limit in force.
pub fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Connections open per client address; a guard gives its place back when dropped.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

struct ClientSlot {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.clients.0.lock().expect("client map lock");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl PerClient {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<ClientSlot> {
        let mut map = self.0.lock().expect("client map lock");
        let n = map.entry(ip).or_insert(0);
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

/// The network address of the client of a request: the peer's, or behind a trusted
/// reverse proxy the address the proxies forwarded (see [`client_address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client of a request from `peer`: `peer` itself, unless it is a trusted proxy;
/// then the addresses the proxies forwarded (`Forwarded: for=`, else
/// `X-Forwarded-For`) are walked from the nearest hop back, skipping trusted proxies,
/// and the first other address is the client. A hop that does not parse ends the walk
/// at the proxy that sent it (nothing a client writes can name another client).
pub fn client_address(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    let forwarded: Vec<&str> = headers
        .get_all(axum::http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if forwarded.is_empty() {
        for v in headers.get_all("x-forwarded-for").iter() {
            let Ok(v) = v.to_str() else {
                hops.push(None);
                continue;
            };
            hops.extend(v.split(',').map(|h| parse_hop(h.trim())));
        }
    } else {
        for v in forwarded {
            for element in v.split(',') {
                let node = element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(k, _)| k.eq_ignore_ascii_case("for"))
                    .map(|(_, v)| v.trim().trim_matches('"'));
                hops.push(node.and_then(parse_hop));
            }
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

/// One forwarded address: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or
/// `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// The address a connection came from (a client, or a reverse proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerAddr(IpAddr);

/// TLS for the listener: a certificate chain and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl TlsFiles {
    /// The server's TLS configuration (rustls: TLS 1.2 and 1.3, HTTP/1.1 by ALPN); a
    /// one-line error naming the file that could not be used.
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| format!("TLS certificate {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "TLS certificate {}: no certificate in it",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("TLS key {}: {e}", self.key.display()))?;
        // The provider is named: ring (which sqlx and lettre use) and aws-lc-rs are
        // both in the build, so rustls cannot pick one by itself.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("TLS certificate and key: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown`
/// completes, then lets open requests finish (for at most `grace`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: Duration,
) {
    let trusted: Arc<[ipnet::IpNet]> = limits.trusted_proxies.clone().into();
    let app = app
        .layer(axum::middleware::from_fn(
            move |mut request: axum::extract::Request, next: axum::middleware::Next| {
                let trusted = trusted.clone();
                async move {
                    if let Some(PeerAddr(peer)) = request.extensions().get::<PeerAddr>().copied() {
                        let client = client_address(peer, request.headers(), &trusted);
                        request.extensions_mut().insert(ClientAddr(client));
                    }
                    next.run(request).await
                }
            },
        ))
        .layer(tower_http::timeout::RequestBodyDeadlineLayer::new(
            limits.body_timeout,
        ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of files (or another transient error): the connections
                    // already open go on; wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: the service holds its most connections");
            continue;
        };
        let Some(slot) = clients.take(peer.ip(), limits.max_per_client) else {
            tracing::debug!(%peer, "connection refused: the client holds its most connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Handlers see the client's network address (for per-client limits): the
        // peer's, or what trusted proxies forwarded.
        let service = TowerToHyperService::new(tower_http::add_extension::AddExtension::new(
            app.clone(),
            PeerAddr(peer.ip()),
        ));
        match &tls {
            None => {
                let connection =
                    graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                    drop((permit, slot));
                });
            }
            Some(acceptor) => {
                // The handshake has the header timeout too: a client that opens a
                // connection and says nothing cannot hold it.
                let (acceptor, http, watcher) =
                    (acceptor.clone(), http.clone(), graceful.watcher());
                let handshake = limits.header_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(secure)) => {
                            let connection =
                                watcher.watch(http.serve_connection(TokioIo::new(secure), service));
                            if let Err(e) = connection.await {
                                tracing::debug!(%peer, error = %e, "connection ended");
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                    drop((permit, slot));
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period were closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_stays_under_the_open_files_limit() {
        let l = Limits::default();
        assert_eq!(l.clone().within_open_files(1024).max_connections, 768);
        assert_eq!(l.clone().within_open_files(1 << 20).max_connections, 4096);
        assert_eq!(l.clone().within_open_files(100).max_connections, 36);
        assert_eq!(l.within_open_files(10).max_connections, 1);
    }

    #[test]
    fn a_client_holds_at_most_its_cap_and_gives_places_back() {
        let clients = Arc::new(PerClient::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| clients.take(a, 3).unwrap()).collect();
        assert!(clients.take(a, 3).is_none());
        let other = clients.take(b, 3);
        assert!(other.is_some());
        drop(held);
        assert!(clients.take(a, 3).is_some());
        assert!(clients.take(a, 0).is_some(), "0 means no cap");
    }

    fn headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    /// The client is what trusted proxies say, and only they: a client's own header is
    /// ignored, a chain is walked back past trusted hops, a hop that does not parse
    /// stops at the proxy that sent it.
    #[test]
    fn the_client_is_what_trusted_proxies_forward() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = |v| headers(&[("x-forwarded-for", v)]);
        // Not from a proxy: the peer, whatever it claims.
        assert_eq!(
            client_address(ip("203.0.113.9"), &xff("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // From the proxy: the forwarded client.
        assert_eq!(
            client_address(proxy, &xff("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // A spoofed first entry is passed over: the proxy appended the real one.
        assert_eq!(
            client_address(proxy, &xff("1.2.3.4, 198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // Two proxies in a row.
        assert_eq!(
            client_address(proxy, &xff("198.51.100.7, 10.0.0.6"), &trusted),
            ip("198.51.100.7")
        );
        // Garbage stops at the proxy.
        assert_eq!(client_address(proxy, &xff("not-an-ip"), &trusted), proxy);
        assert_eq!(client_address(proxy, &headers(&[]), &trusted), proxy);
        // RFC 7239, with ports and IPv6.
        let fwd = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=https, for=\"[2001:db8::1]:4711\"",
        )]);
        assert_eq!(client_address(proxy, &fwd, &trusted), ip("2001:db8::1"));
        let fwd = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(client_address(proxy, &fwd, &trusted), ip("192.0.2.60"));
    }
}
