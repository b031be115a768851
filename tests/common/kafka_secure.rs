//! A TLS- and SASL-terminating Kafka proxy in front of `doudi dev-broker` (librdkafka's mock
//! cluster, which speaks neither TLS nor SASL), for the tests of doudi's Kafka security.
//!
//! One listener per mock broker on loopback. Each connection: a real TLS handshake (rustls; the
//! test CA's certificate for `localhost`; optionally a client certificate required, verified
//! against the same CA: mutual TLS); then the proxy itself speaks enough of the Kafka protocol to
//! authenticate — ApiVersions (forwarded to the broker, its answer amended: SaslHandshake v0–1 and
//! SaslAuthenticate v0–1 added, Metadata capped at v8, FindCoordinator at v2, Produce at v9 and
//! Fetch at v15, the versions whose broker addresses it rewrites or that carry none), SaslHandshake
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), SaslAuthenticate (the complete SCRAM exchange of RFC
//! 5802: server nonce, salt, iterations, the client proof checked against the stored key, the
//! server signature sent back, which librdkafka verifies); any other request before that closes
//! the connection. Once authenticated it relays frames both ways to its broker, rewriting the
//! broker addresses in Metadata and FindCoordinator responses to its own listeners, so that the
//! client's every connection (bootstrap, partition leaders, group coordinator) goes through TLS
//! and SASL.

// Each test file uses some of these.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::pki::Pki;

/// What the proxy saw.
#[derive(Default)]
pub struct Stats {
    /// TLS handshakes completed (with a verified client certificate when one is required).
    pub handshakes: AtomicU64,
    /// TLS handshakes that failed, and why (the last few).
    pub handshake_failures: AtomicU64,
    pub handshake_errors: Mutex<Vec<String>>,
    /// SASL authentications that succeeded / failed, per mechanism.
    pub authenticated: Mutex<HashMap<String, u64>>,
    pub auth_failures: AtomicU64,
    /// Requests relayed to the broker after authentication.
    pub relayed: AtomicU64,
}

impl Stats {
    pub fn authenticated(&self, mechanism: &str) -> u64 {
        self.authenticated
            .lock()
            .unwrap()
            .get(mechanism)
            .copied()
            .unwrap_or(0)
    }
}

/// The running proxy (stopped when dropped).
pub struct SecureProxy {
    /// `localhost:PORT` of the first listener: the clients' bootstrap.
    pub bootstrap: String,
    /// The same by address (`127.0.0.1:PORT`): not the certificate's name.
    pub bootstrap_by_address: String,
    pub stats: Arc<Stats>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for SecureProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct Shared {
    stats: Arc<Stats>,
    user: String,
    password: String,
    /// Broker port → the proxy's port for it.
    ports: HashMap<u16, u16>,
}

impl SecureProxy {
    /// A proxy for each broker of `upstream` (`127.0.0.1:P,…`), with `pki`'s server certificate,
    /// requiring a client certificate when `mutual`, admitting `user` with `password`.
    pub fn start(
        upstream: &str,
        pki: &Pki,
        mutual: bool,
        user: &str,
        password: &str,
    ) -> SecureProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(pki, mutual));
        let brokers: Vec<String> = upstream.split(',').map(str::to_string).collect();
        let listeners: Vec<(String, TcpListener)> = runtime.block_on(async {
            let mut out = Vec::new();
            for b in &brokers {
                out.push((b.clone(), TcpListener::bind("127.0.0.1:0").await.unwrap()));
            }
            out
        });
        let port = |a: &str| -> u16 { a.rsplit(':').next().unwrap().parse().unwrap() };
        let ports: HashMap<u16, u16> = listeners
            .iter()
            .map(|(b, l)| (port(b), l.local_addr().unwrap().port()))
            .collect();
        let first = listeners[0].1.local_addr().unwrap().port();
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            stats: Arc::clone(&stats),
            user: user.into(),
            password: password.into(),
            ports,
        });
        for (broker, listener) in listeners {
            let (acceptor, shared) = (acceptor.clone(), Arc::clone(&shared));
            runtime.spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, shared, broker) =
                        (acceptor.clone(), Arc::clone(&shared), broker.clone());
                    tokio::spawn(async move {
                        let _ = connection(tcp, acceptor, &broker, shared).await;
                    });
                }
            });
        }
        SecureProxy {
            bootstrap: format!("localhost:{first}"),
            bootstrap_by_address: format!("127.0.0.1:{first}"),
            stats,
            runtime: Some(runtime),
        }
    }
}

fn server_config(pki: &Pki, mutual: bool) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if mutual {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

// Kafka API keys and error codes used here.
const PRODUCE: i16 = 0;
const FETCH: i16 = 1;
const METADATA: i16 = 3;
const FIND_COORDINATOR: i16 = 10;
const SASL_HANDSHAKE: i16 = 17;
const API_VERSIONS: i16 = 18;
const SASL_AUTHENTICATE: i16 = 36;
const DESCRIBE_CLUSTER: i16 = 60;
const DESCRIBE_TOPIC_PARTITIONS: i16 = 75;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let len = r.read_i32().await?;
    if !(0..=64 << 20).contains(&len) {
        return Err(invalid(format!("frame of {len} bytes")));
    }
    let mut buf = vec![0; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> io::Result<()> {
    w.write_i32(frame.len() as i32).await?;
    w.write_all(frame).await?;
    w.flush().await
}

/// A reader over a frame.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, at: 0 }
    }
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| invalid("frame ends early"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn i16(&mut self) -> io::Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> io::Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn uvarint(&mut self) -> io::Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(invalid("varint too long"))
    }
    /// STRING / NULLABLE_STRING (int16 length, -1 null).
    fn string(&mut self) -> io::Result<Option<&'a [u8]>> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
    /// BYTES (int32 length).
    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let len = self.i32()?;
        self.take(usize::try_from(len).map_err(|_| invalid("negative length"))?)
    }
    /// Skip a TAG_BUFFER.
    fn tags(&mut self) -> io::Result<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.at..]
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A request's header: (api key, api version, correlation id, where the body starts). Every
/// request the proxy answers itself has a non-flexible header (v1): the versions it advertises
/// for them are not flexible.
fn request_header(frame: &[u8]) -> io::Result<(i16, i16, i32, usize)> {
    let mut c = Cursor::new(frame);
    let (key, version, correlation) = (c.i16()?, c.i16()?, c.i32()?);
    c.string()?; // client id
    Ok((key, version, correlation, c.at))
}

/// One client connection: TLS, authentication, then the relay.
async fn connection(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    broker: &str,
    shared: Arc<Shared>,
) -> io::Result<()> {
    let stats = &shared.stats;
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => {
            stats.handshakes.fetch_add(1, Ordering::Relaxed);
            tls
        }
        Err(e) => {
            stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
            stats.handshake_errors.lock().unwrap().push(e.to_string());
            return Err(e);
        }
    };
    let upstream = TcpStream::connect(broker).await?;
    let (mut client_r, mut client_w) = tokio::io::split(tls);
    let (mut up_r, mut up_w) = upstream.into_split();

    // Authentication, one request at a time.
    let mut sasl: Option<Sasl> = None;
    loop {
        let frame = read_frame(&mut client_r).await?;
        let (key, version, correlation, body) = request_header(&frame)?;
        match key {
            API_VERSIONS => {
                write_frame(&mut up_w, &frame).await?;
                let answer = read_frame(&mut up_r).await?;
                write_frame(&mut client_w, &amend_api_versions(&answer, version)?).await?;
            }
            SASL_HANDSHAKE => {
                let mechanism = Cursor::new(&frame[body..])
                    .string()?
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default();
                sasl = Sasl::start(&mechanism);
                let mut out = correlation.to_be_bytes().to_vec();
                let code = if sasl.is_some() {
                    0
                } else {
                    UNSUPPORTED_SASL_MECHANISM
                };
                out.extend_from_slice(&code.to_be_bytes());
                out.extend_from_slice(&3i32.to_be_bytes());
                for m in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
                    put_string(&mut out, m.as_bytes());
                }
                write_frame(&mut client_w, &out).await?;
            }
            SASL_AUTHENTICATE => {
                let token = Cursor::new(&frame[body..]).bytes()?;
                let step = match sasl.as_mut() {
                    Some(s) => s.step(token, &shared.user, &shared.password),
                    None => Step::Failed(ILLEGAL_SASL_STATE, "no SaslHandshake first".into()),
                };
                let (code, message, reply, done) = match step {
                    Step::Continue(reply) => (0, None, reply, false),
                    Step::Done(reply) => (0, None, reply, true),
                    Step::Failed(code, why) => (code, Some(why), Vec::new(), false),
                };
                let mut out = correlation.to_be_bytes().to_vec();
                out.extend_from_slice(&code.to_be_bytes());
                match &message {
                    Some(m) => put_string(&mut out, m.as_bytes()),
                    None => out.extend_from_slice(&(-1i16).to_be_bytes()),
                }
                out.extend_from_slice(&(reply.len() as i32).to_be_bytes());
                out.extend_from_slice(&reply);
                if version >= 1 {
                    out.extend_from_slice(&0i64.to_be_bytes()); // no re-authentication
                }
                write_frame(&mut client_w, &out).await?;
                if message.is_some() {
                    stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(invalid("authentication failed"));
                }
                if done {
                    let name = sasl.as_ref().map(Sasl::name).unwrap_or_default();
                    *stats.authenticated.lock().unwrap().entry(name).or_default() += 1;
                    break;
                }
            }
            other => return Err(invalid(format!("API {other} before authentication"))),
        }
    }

    // The relay: requests as they are; responses with broker addresses rewritten.
    let pending: Arc<Mutex<VecDeque<(i32, i16, i16)>>> = Arc::default();
    let to_broker = {
        let (pending, shared) = (Arc::clone(&pending), Arc::clone(&shared));
        async move {
            loop {
                let frame = read_frame(&mut client_r).await?;
                let (key, version, correlation, _) = request_header(&frame)?;
                pending
                    .lock()
                    .unwrap()
                    .push_back((correlation, key, version));
                shared.stats.relayed.fetch_add(1, Ordering::Relaxed);
                write_frame(&mut up_w, &frame).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        }
    };
    let to_client = async move {
        loop {
            let frame = read_frame(&mut up_r).await?;
            let correlation = Cursor::new(&frame).i32()?;
            let request = {
                let mut p = pending.lock().unwrap();
                // Requests without a response (acks=0) leave entries behind: skip them.
                loop {
                    match p.pop_front() {
                        Some((c, key, version)) if c == correlation => break Some((key, version)),
                        Some(_) => continue,
                        None => break None,
                    }
                }
            };
            let frame = match request {
                Some((METADATA, v)) => rewrite_metadata(&frame, v, &shared)?,
                Some((FIND_COORDINATOR, v)) => rewrite_coordinator(&frame, v, &shared)?,
                _ => frame,
            };
            write_frame(&mut client_w, &frame).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), io::Error>(())
    };
    tokio::try_join!(to_broker, to_client).map(|_| ())
}

/// The broker's ApiVersions answer with SASL added and the versions the proxy handles.
fn amend_api_versions(frame: &[u8], version: i16) -> io::Result<Vec<u8>> {
    let mut c = Cursor::new(frame);
    let correlation = c.i32()?; // ApiVersions answers always have header v0
    let error = c.i16()?;
    if error != 0 {
        return Ok(frame.to_vec()); // e.g. an unsupported version: the client retries lower
    }
    let flexible = version >= 3;
    let count = if flexible {
        c.uvarint()?.saturating_sub(1)
    } else {
        c.i32()? as u64
    };
    let mut apis = Vec::new();
    for _ in 0..count {
        let (key, min, max) = (c.i16()?, c.i16()?, c.i16()?);
        if flexible {
            c.tags()?;
        }
        let cap = match key {
            SASL_HANDSHAKE | SASL_AUTHENTICATE | DESCRIBE_CLUSTER | DESCRIBE_TOPIC_PARTITIONS => {
                continue
            }
            METADATA => 8,
            FIND_COORDINATOR => 2,
            PRODUCE => 9,
            FETCH => 15,
            _ => max,
        };
        apis.push((key, min, max.min(cap)));
    }
    apis.push((SASL_HANDSHAKE, 0, 1));
    apis.push((SASL_AUTHENTICATE, 0, 1));
    let mut out = correlation.to_be_bytes().to_vec();
    out.extend_from_slice(&0i16.to_be_bytes());
    if flexible {
        put_uvarint(&mut out, apis.len() as u64 + 1);
    } else {
        out.extend_from_slice(&(apis.len() as i32).to_be_bytes());
    }
    for (key, min, max) in apis {
        for v in [key, min, max] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        if flexible {
            out.push(0);
        }
    }
    out.extend_from_slice(c.rest()); // throttle time, top-level tags
    Ok(out)
}

/// host and port of a broker, replaced by the proxy's listener for it.
fn put_address(out: &mut Vec<u8>, port: i32, shared: &Shared) -> io::Result<()> {
    let mine = u16::try_from(port)
        .ok()
        .and_then(|p| shared.ports.get(&p))
        .ok_or_else(|| invalid(format!("a broker on port {port} the proxy does not front")))?;
    put_string(out, b"localhost");
    out.extend_from_slice(&i32::from(*mine).to_be_bytes());
    Ok(())
}

/// Metadata v0–v8: the brokers' addresses rewritten.
fn rewrite_metadata(frame: &[u8], version: i16, shared: &Shared) -> io::Result<Vec<u8>> {
    if version > 8 {
        return Err(invalid(format!("Metadata v{version} was not offered")));
    }
    let mut c = Cursor::new(frame);
    let mut out = c.take(4)?.to_vec(); // correlation id
    if version >= 3 {
        out.extend_from_slice(c.take(4)?); // throttle time
    }
    let brokers = c.i32()?;
    out.extend_from_slice(&brokers.to_be_bytes());
    for _ in 0..brokers {
        out.extend_from_slice(c.take(4)?); // node id
        c.string()?;
        let port = c.i32()?;
        put_address(&mut out, port, shared)?;
        if version >= 1 {
            let rack_start = c.at;
            c.string()?;
            out.extend_from_slice(&frame[rack_start..c.at]);
        }
    }
    out.extend_from_slice(c.rest());
    Ok(out)
}

/// FindCoordinator v0–v2: the coordinator's address rewritten (unless it is an error).
fn rewrite_coordinator(frame: &[u8], version: i16, shared: &Shared) -> io::Result<Vec<u8>> {
    if version > 2 {
        return Err(invalid(format!(
            "FindCoordinator v{version} was not offered"
        )));
    }
    let mut c = Cursor::new(frame);
    let start = c.at;
    c.take(4)?; // correlation id
    if version >= 1 {
        c.take(4)?; // throttle time
    }
    let error = c.i16()?;
    if version >= 1 {
        c.string()?; // error message
    }
    c.take(4)?; // node id
    let mut out = frame[start..c.at].to_vec();
    c.string()?;
    let port = c.i32()?;
    if error == 0 {
        put_address(&mut out, port, shared)?;
    } else {
        put_string(&mut out, b"");
        out.extend_from_slice(&port.to_be_bytes());
    }
    out.extend_from_slice(c.rest());
    Ok(out)
}

/// The server side of one SASL exchange.
enum Sasl {
    Plain,
    Scram { hash: Hash, state: Scram },
}

enum Scram {
    Start,
    /// The client's first message (without its GS2 header) and the server's answer.
    Sent {
        client_first_bare: String,
        server_first: String,
        nonce: String,
        salt: Vec<u8>,
        iterations: u32,
    },
    Done,
}

enum Step {
    Continue(Vec<u8>),
    Done(Vec<u8>),
    Failed(i16, String),
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha512 => {
                let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// RFC 5802's Hi(): PBKDF2 with this HMAC.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut u = self.hmac(password, &[salt, &1u32.to_be_bytes()].concat());
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.hmac(password, &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }
}

/// `key=value` attributes of a SCRAM message.
fn attribute(message: &str, key: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(key) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

impl Sasl {
    fn start(mechanism: &str) -> Option<Sasl> {
        match mechanism {
            "PLAIN" => Some(Sasl::Plain),
            "SCRAM-SHA-256" => Some(Sasl::Scram {
                hash: Hash::Sha256,
                state: Scram::Start,
            }),
            "SCRAM-SHA-512" => Some(Sasl::Scram {
                hash: Hash::Sha512,
                state: Scram::Start,
            }),
            _ => None,
        }
    }

    fn name(&self) -> String {
        match self {
            Sasl::Plain => "PLAIN".into(),
            Sasl::Scram {
                hash: Hash::Sha256, ..
            } => "SCRAM-SHA-256".into(),
            Sasl::Scram {
                hash: Hash::Sha512, ..
            } => "SCRAM-SHA-512".into(),
        }
    }

    fn step(&mut self, token: &[u8], user: &str, password: &str) -> Step {
        let fail = |why: &str| Step::Failed(SASL_AUTHENTICATION_FAILED, why.to_string());
        let Ok(text) = std::str::from_utf8(token) else {
            return fail("not UTF-8");
        };
        match self {
            Sasl::Plain => {
                // [authzid] NUL authcid NUL passwd
                let parts: Vec<&str> = text.split('\0').collect();
                match parts.as_slice() {
                    [_, u, p] if *u == user && *p == password => Step::Done(Vec::new()),
                    _ => fail("Authentication failed: invalid credentials"),
                }
            }
            Sasl::Scram { hash, state } => match std::mem::replace(state, Scram::Done) {
                Scram::Start => {
                    let Some(bare) = text.strip_prefix("n,,") else {
                        return fail("a GS2 header of n,, was expected (no channel binding)");
                    };
                    let (Some(name), Some(client_nonce)) =
                        (attribute(bare, 'n'), attribute(bare, 'r'))
                    else {
                        return fail("n= and r= were expected");
                    };
                    if name != user {
                        return fail("Authentication failed: unknown user");
                    }
                    let salt: [u8; 16] = rand::random();
                    let server_nonce = B64.encode(rand::random::<[u8; 18]>());
                    let nonce = format!("{client_nonce}{server_nonce}");
                    let iterations = 4096;
                    let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
                    let reply = server_first.clone().into_bytes();
                    *state = Scram::Sent {
                        client_first_bare: bare.to_string(),
                        server_first,
                        nonce,
                        salt: salt.to_vec(),
                        iterations,
                    };
                    Step::Continue(reply)
                }
                Scram::Sent {
                    client_first_bare,
                    server_first,
                    nonce,
                    salt,
                    iterations,
                } => {
                    let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
                        return fail("the client's final message has no proof");
                    };
                    if attribute(without_proof, 'r') != Some(nonce.as_str())
                        || attribute(without_proof, 'c') != Some("biws")
                    {
                        return fail("the nonce or the channel binding do not match");
                    }
                    let Ok(proof) = B64.decode(proof) else {
                        return fail("the proof is not base64");
                    };
                    let h = *hash;
                    let auth_message =
                        format!("{client_first_bare},{server_first},{without_proof}");
                    let salted = h.hi(password.as_bytes(), &salt, iterations);
                    let stored_key = h.digest(&h.hmac(&salted, b"Client Key"));
                    let signature = h.hmac(&stored_key, auth_message.as_bytes());
                    if proof.len() != signature.len() {
                        return fail("Authentication failed: the proof has the wrong length");
                    }
                    let client_key: Vec<u8> =
                        proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
                    if h.digest(&client_key) != stored_key {
                        return fail("Authentication failed: invalid credentials");
                    }
                    let server_key = h.hmac(&salted, b"Server Key");
                    let server_signature = h.hmac(&server_key, auth_message.as_bytes());
                    Step::Done(format!("v={}", B64.encode(server_signature)).into_bytes())
                }
                Scram::Done => Step::Failed(ILLEGAL_SASL_STATE, "already authenticated".into()),
            },
        }
    }
}

#[cfg(test)]
mod scram_tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example: the client proof for user/pencil checks out.
    #[test]
    fn the_scram_arithmetic_matches_rfc_7677() {
        let h = Hash::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = h.hi(b"pencil", &salt, 4096);
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                    r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                    c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let client_key = h.hmac(&salted, b"Client Key");
        let signature = h.hmac(&h.digest(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server = h.hmac(&h.hmac(&salted, b"Server Key"), auth.as_bytes());
        assert_eq!(
            B64.encode(server),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }
}
