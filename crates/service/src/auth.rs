//! Who is asking: API tokens (stored as their SHA-256, with a role, a region, an optional officer,
//! an expiry and a revocation), sign-in sessions of the pages, the per-route authentication
//! middleware, the client's address (through trusted proxies only) and the rate limit on failed
//! authentication per client address. The roles and what each may see are `doudi_app`'s.
//!
//! An API request carries `Authorization: Bearer TOKEN`. Signing in on the sign-in form with an API
//! token opens a session: a new random session token (stored as its SHA-256) in the
//! `doudi_session` cookie (HttpOnly, SameSite=Strict), acting with the API token's role and region
//! for at most [`SESSION_HOURS`] hours and while that token stays valid. Signing out ends the
//! session alone: the API token, perhaps shared with scripts, still works. A form post also
//! carries a form token derived from the session token ([`form_token`]), so a page of another site
//! can neither read nor forge it.
//!
//! A client address over its quota of failed authentications is refused (429) before any token
//! it sends is looked at, valid or not: the limit slows guessing whatever is guessed.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::html::{cookie, error_page_or_json};
use crate::principal::{Principal, Role};
use crate::transport::TrustedProxies;
use crate::{AppState, Kind};

/// The cookie holding a signed-in person's token.
pub const SESSION_COOKIE: &str = "doudi_session";

/// A new token: what to hand out once, and the hex SHA-256 to store.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("doudi_{}", hex::encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

/// How long a sign-in session lasts at most (it also ends when its API token expires or is
/// revoked, and when the person signs out).
pub const SESSION_HOURS: i64 = 12;

/// The hex SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The form token of a session: derived from its token, so it needs no server state and changes
/// with every sign-in token.
pub fn form_token(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"doudi form token\0");
    h.update(token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Compare two strings in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The client's address: the connection's peer (`0.0.0.0` when unknown, as in in-process tests),
/// unless the peer is one of the trusted proxies (`serve.trusted_proxies`): then the last address
/// in `X-Forwarded-For` that is not a trusted proxy (each proxy appends the address it got the
/// request from, so the addresses right of the last untrusted one are proxies' and can be
/// believed; the ones left of it are the client's say). Without trusted proxies the header is
/// never read: a client cannot choose its address for the limiter or the audit trail.
pub fn client_ip(req: &Request, proxies: &TrustedProxies) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    forwarded_client(peer, req.headers(), proxies)
}

/// [`client_ip`] from the peer and the headers.
pub fn forwarded_client(peer: IpAddr, headers: &HeaderMap, proxies: &TrustedProxies) -> IpAddr {
    if proxies.is_empty() || !proxies.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !proxies.contains(ip) {
                    break;
                }
            }
            // Not an address: nothing left of it can be believed.
            Err(_) => break,
        }
    }
    client
}

/// The principal of a stored API token, or why it is refused (said to the client as is: it names
/// no secret). `form_source`: the token the form token is derived from (the session's).
fn principal_of(
    row: &doudi_store::TokenRow,
    form_source: &str,
    session_hash: Option<String>,
) -> Result<Principal, String> {
    if let Some(at) = &row.revoked_at {
        return Err(format!("token #{} was revoked at {at}", row.token_id));
    }
    if let Some(until) = &row.expires_at {
        if *until <= doudi_store::ts(&chrono::Utc::now()) {
            return Err(format!("token #{} expired at {until}", row.token_id));
        }
    }
    let role = Role::from_code(&row.role)
        .ok_or_else(|| format!("token #{} has an unknown role", row.token_id))?;
    Ok(Principal {
        token_id: row.token_id,
        role,
        region: row.region_code.clone(),
        officer_id: row.officer_id.clone(),
        feed_source: row.feed_source.clone(),
        form_token: form_token(form_source),
        session_hash,
        client: None,
    })
}

fn db_error(e: doudi_store::StoreError) -> String {
    tracing::error!(error = %e, "cannot look up a token");
    "the token could not be checked (database error)".to_string()
}

/// Why a presented API token is refused (said to the client as is: it names no secret).
pub async fn check_token(state: &AppState, token: &str) -> Result<Principal, String> {
    let row = state
        .store()
        .token_by_hash(&hash_token(token))
        .await
        .map_err(db_error)?
        .ok_or_else(|| "unknown token".to_string())?;
    principal_of(&row, token, None)
}

/// Why a presented session token (the cookie) is refused: unknown, ended (signed out), expired,
/// or its API token revoked or expired.
pub async fn check_session(state: &AppState, session: &str) -> Result<Principal, String> {
    let hash = hash_token(session);
    let row = state
        .store()
        .session_by_hash(&hash)
        .await
        .map_err(db_error)?
        .ok_or_else(|| "unknown session: sign in again".to_string())?;
    if let Some(at) = &row.ended_at {
        return Err(format!(
            "session #{} was signed out at {at}",
            row.session_id
        ));
    }
    if row.expires_at <= doudi_store::ts(&chrono::Utc::now()) {
        return Err(format!(
            "session #{} expired at {}: sign in again",
            row.session_id, row.expires_at
        ));
    }
    principal_of(&row.token, session, Some(hash))
}

/// Open a session for API token `token` (checked again here) from `client`: the session token
/// for the cookie and the principal. Audited (`signed_in`).
pub async fn open_session(
    state: &AppState,
    token: &str,
    client: IpAddr,
) -> Result<(String, Principal), String> {
    let p = check_token(state, token).await?;
    let (session, hash) = new_token();
    let until = chrono::Utc::now() + chrono::TimeDelta::hours(SESSION_HOURS);
    let client = Some(client)
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| ip.to_string());
    state
        .store()
        .create_session(
            &hash,
            p.token_id,
            &doudi_store::ts(&until),
            &p.actor(),
            client.as_deref(),
        )
        .await
        .map_err(db_error)?;
    Ok((session, p))
}

/// Addresses with failed authentications kept at most (beyond it, the quiet ones are forgotten
/// first, then any).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Failed authentications per client address in the last minute. An address with its quota used
/// up is refused before any token it sends is checked ([`AuthLimiter::is_limited`]), until its
/// oldest failure is a minute old.
pub struct AuthLimiter {
    per_minute: usize,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl AuthLimiter {
    pub fn new(per_minute: u32) -> AuthLimiter {
        AuthLimiter {
            per_minute: usize::try_from(per_minute.max(1)).unwrap_or(usize::MAX),
            window: Duration::from_secs(60),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        // A panic while holding the lock leaves counts only: keep using them.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn forget_old(&self, q: &mut VecDeque<Instant>, now: Instant) {
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
    }

    /// Whether `ip` has used up its failures for now.
    pub fn is_limited(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut table = self.table();
        match table.get_mut(&ip) {
            Some(q) => {
                self.forget_old(q, now);
                q.len() >= self.per_minute
            }
            None => false,
        }
    }

    /// Count a failure of `ip`; `true` when it has now used up its quota.
    pub fn record_failure(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut table = self.table();
        if table.len() >= MAX_TRACKED_ADDRESSES && !table.contains_key(&ip) {
            table.retain(|_, q| {
                self.forget_old(q, now);
                !q.is_empty()
            });
            // Still full (a scan from very many addresses within a minute): make room.
            let excess = (table.len() + 1).saturating_sub(MAX_TRACKED_ADDRESSES);
            let gone: Vec<IpAddr> = table.keys().take(excess).copied().collect();
            for k in gone {
                table.remove(&k);
            }
        }
        let q = table.entry(ip).or_default();
        self.forget_old(q, now);
        if q.len() < self.per_minute {
            q.push_back(now);
        }
        q.len() >= self.per_minute
    }

    /// Addresses tracked now.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Refuse (429) a client address that has used up its failed authentications, before any token
/// is checked.
pub fn limited(state: &AppState, ip: IpAddr) -> Result<(), ApiError> {
    if state.auth_limiter().is_limited(ip) {
        tracing::warn!("authentication from an address over its failure limit: answering 429");
        return Err(ApiError::RateLimited);
    }
    Ok(())
}

/// Count a failed authentication from `ip`. (The next attempt of an address that used up its
/// quota is refused by [`limited`].)
pub fn failed_auth(state: &AppState, ip: IpAddr) {
    doudi_telemetry::auth_failure();
    if state.auth_limiter().record_failure(ip) {
        tracing::warn!("failed authentication: the address used up its quota for a minute");
    }
}

/// Per-route guard: which roles a route admits, and whether it is an API route or a page.
#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    pub roles: &'static [Role],
    pub kind: Kind,
}

/// Middleware: refuse a client address over its failed-authentication limit (before looking at
/// any token), authenticate the request (bearer token for the API, session cookie for pages),
/// refuse roles the route does not admit, and hand the [`Principal`] to the handler.
pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    if g.roles.is_empty() {
        return next.run(req).await;
    }
    let ip = client_ip(&req, &g.state.config().trusted_proxies);
    let presented = match g.kind {
        Kind::Page => cookie(req.headers(), SESSION_COOKIE).map(str::to_owned),
        _ => req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned()),
    };
    let Some(token) = presented.filter(|t| !t.is_empty()) else {
        return match g.kind {
            Kind::Page => Redirect::to("/sign-in").into_response(),
            _ => ApiError::Unauthenticated(
                "no token: send `Authorization: Bearer TOKEN` (create one with `doudi tokens create`)"
                    .into(),
            )
            .into_response(),
        };
    };
    if let Err(e) = limited(&g.state, ip) {
        return error_page_or_json(g.kind, &req, e);
    }
    let checked = match g.kind {
        Kind::Page => check_session(&g.state, &token).await,
        _ => check_token(&g.state, &token).await,
    };
    let mut principal = match checked {
        Ok(p) => p,
        Err(why) => {
            failed_auth(&g.state, ip);
            return match g.kind {
                Kind::Page => Redirect::to("/sign-in?expired=1").into_response(),
                _ => ApiError::Unauthenticated(why).into_response(),
            };
        }
    };
    // Unknown (in-process requests): not named.
    principal.client = Some(ip).filter(|ip| !ip.is_unspecified());
    if !g.roles.contains(&principal.role) {
        let allowed: Vec<&str> = g.roles.iter().map(|r| r.code()).collect();
        let e = ApiError::Forbidden(format!(
            "a {} token may not use this; it is for: {}",
            principal.role.code(),
            allowed.join(", ")
        ));
        return error_page_or_json(g.kind, &req, e);
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let none = TrustedProxies::default();
        let lb = proxies(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.9"]);
        // No trusted proxies: the header is never read.
        assert_eq!(forwarded_client(ip("10.0.0.5"), &h, &none), ip("10.0.0.5"));
        // A peer that is not a trusted proxy: its header is the client's say.
        assert_eq!(
            forwarded_client(ip("198.51.100.7"), &h, &lb),
            ip("198.51.100.7")
        );
        // From the proxy: the address it saw.
        assert_eq!(forwarded_client(ip("10.0.0.5"), &h, &lb), ip("203.0.113.9"));
        // A client that sends its own header cannot choose: the last untrusted address wins.
        let h = xff(&["1.2.3.4, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(forwarded_client(ip("10.0.0.5"), &h, &lb), ip("203.0.113.9"));
        // Garbage stops the walk at the last believed hop.
        let h = xff(&["203.0.113.9, nonsense"]);
        assert_eq!(forwarded_client(ip("10.0.0.5"), &h, &lb), ip("10.0.0.5"));
        // No header from the proxy: the proxy itself.
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), &HeaderMap::new(), &lb),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn the_limiter_refuses_an_address_after_its_quota_until_a_minute_passes() {
        let l = AuthLimiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!l.is_limited(a));
        assert!(!l.record_failure(a));
        assert!(!l.record_failure(a));
        assert!(!l.is_limited(a));
        assert!(l.record_failure(a));
        assert!(l.is_limited(a));
        assert!(!l.is_limited(b), "another address is not limited");
        let short = AuthLimiter {
            window: Duration::from_millis(30),
            ..AuthLimiter::new(1)
        };
        assert!(short.record_failure(a));
        assert!(short.is_limited(a));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            !short.is_limited(a),
            "the failure is forgotten after the window"
        );
    }

    #[test]
    fn the_limiter_tracks_a_bounded_number_of_addresses() {
        let l = AuthLimiter::new(5);
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 500) {
            l.record_failure(IpAddr::V4(Ipv4Addr::from(i)));
        }
        assert!(l.len() <= MAX_TRACKED_ADDRESSES, "{}", l.len());
    }
}
