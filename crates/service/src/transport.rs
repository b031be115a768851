//! How people reach the service: behind a reverse proxy that terminates TLS (the usual way; see
//! `deploy/`), or over the service's own TLS (rustls). [`check_transport`] refuses an https
//! `public_url` with neither; [`TrustedProxies`] are the proxies' addresses (whose
//! `X-Forwarded-For` may be believed); [`TlsListener`] accepts TLS connections, each handshake in
//! its own task so that a slow client never holds up the others.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// Addresses and networks of the reverse proxies in front of the service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parse `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`; the error names the entry.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let bad = |why: &str| format!("{entry:?} is not an address or a network ({why})");
            let (addr, len) = match entry.trim().split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (entry.trim(), None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| bad("e.g. 10.0.0.5 or 10.0.0.0/8"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                None => max,
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| bad(&format!("the prefix length is 0 to {max}")))?,
            };
            out.push((ip, len));
        }
        Ok(TrustedProxies(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the proxies (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix(&n.octets(), &a.octets(), *len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix(&n.octets(), &a.octets(), *len),
            _ => false,
        })
    }
}

fn prefix(net: &[u8], addr: &[u8], len: u8) -> bool {
    let (whole, rest) = (usize::from(len / 8), len % 8);
    net[..whole] == addr[..whole]
        && (rest == 0 || (net[whole] ^ addr[whole]) & (0xff_u8 << (8 - rest)) == 0)
}

/// Whether the service may start: an https `public_url` (its session cookies are `Secure`, its
/// tokens must never cross a network in clear) needs the service's own TLS or a trusted proxy
/// that terminates TLS in front of it; its own TLS with an http `public_url` is a mistake too.
pub fn check_transport(
    public_url: &str,
    own_tls: bool,
    proxies: &TrustedProxies,
) -> Result<(), String> {
    let https = public_url.starts_with("https://");
    if https && !own_tls && proxies.is_empty() {
        return Err(format!(
            "serve.public_url is {public_url}, but serve speaks plain HTTP (no serve.tls_cert / \
             serve.tls_key) and no TLS-terminating proxy is configured: put the proxy's address in \
             serve.trusted_proxies (see deploy/README.md, \"TLS in front of doudi serve\"), or give \
             serve a certificate"
        ));
    }
    if !https && own_tls {
        return Err(format!(
            "serve has its own TLS but serve.public_url is {public_url}: make it https://"
        ));
    }
    Ok(())
}

/// The server side of TLS from a PEM certificate chain and key (TLS 1.2 and 1.3, rustls' safe
/// defaults, HTTP/1.1).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("serve.tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "serve.tls_cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("serve.tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("serve.tls_cert and serve.tls_key do not make a pair: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; more connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;

/// A listener of TLS connections for [`serve_tls`].
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task ended (only on shutdown): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// [`crate::serve`] over TLS.
pub async fn serve_tls(
    listener: TlsListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener.tap_io(|_| ()),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> Result<TrustedProxies, String> {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]).unwrap();
        for yes in ["10.1.2.3", "192.168.1.7", "fd12::1", "::ffff:10.9.9.9"] {
            assert!(p.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["11.0.0.1", "192.168.1.8", "fe80::1"] {
            assert!(!p.contains(no.parse().unwrap()), "{no}");
        }
        let p = proxies(&["172.16.0.0/12"]).unwrap();
        assert!(p.contains("172.31.255.255".parse().unwrap()));
        assert!(!p.contains("172.32.0.0".parse().unwrap()));
        let e = proxies(&["10.0.0.0/33"]).unwrap_err();
        assert!(
            e.contains("\"10.0.0.0/33\"") && e.contains("0 to 32"),
            "{e}"
        );
        let e = proxies(&["proxy.local"]).unwrap_err();
        assert!(e.contains("\"proxy.local\""), "{e}");
    }

    #[test]
    fn an_https_public_url_needs_tls_or_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let one = proxies(&["10.0.0.1"]).unwrap();
        let e = check_transport("https://doudi.example", false, &none).unwrap_err();
        assert!(e.contains("serve.trusted_proxies"), "{e}");
        assert!(check_transport("https://doudi.example", false, &one).is_ok());
        assert!(check_transport("https://doudi.example", true, &none).is_ok());
        assert!(check_transport("http://localhost:8080", false, &none).is_ok());
        let e = check_transport("http://localhost:8080", true, &none).unwrap_err();
        assert!(e.contains("make it https://"), "{e}");
    }
}
