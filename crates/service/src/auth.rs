//! Who is asking: API tokens (stored as their SHA-256, with a role, a region, an optional officer,
//! an expiry and a revocation), the per-route authentication middleware, and the rate limit on
//! failed authentication per client address. The roles and what each may see are `doudi_app`'s.
//!
//! An API request carries `Authorization: Bearer TOKEN`; a page request the `doudi_session`
//! cookie (HttpOnly, SameSite=Strict) set by the sign-in form, holding the same token. A form post
//! also carries a form token derived from the session's token ([`form_token`]), so a page of
//! another site can neither read nor forge it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::html::{cookie, error_page_or_json};
use crate::principal::{Principal, Role};
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

/// The client's address (the connection's peer; `0.0.0.0` when unknown, as in in-process tests).
pub fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Why a presented token is refused (said to the client as is: it names no secret).
pub async fn check_token(state: &AppState, token: &str) -> Result<Principal, String> {
    let row = state
        .store()
        .token_by_hash(&hash_token(token))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot look up a token");
            "the token could not be checked (database error)".to_string()
        })?
        .ok_or_else(|| "unknown token".to_string())?;
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
        region: row.region_code,
        officer_id: row.officer_id,
        form_token: form_token(token),
    })
}

/// Addresses with failed authentications kept before the quiet ones are forgotten.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Count a failed authentication from `ip`; `Err` once the address is over its quota (429).
pub fn failed_auth(state: &AppState, ip: IpAddr) -> Result<(), ApiError> {
    doudi_telemetry::auth_failure();
    let limiter = state.auth_limiter();
    // Forget addresses whose quota is whole again, so that a scan from many addresses cannot
    // grow the table without end.
    if limiter.len() > MAX_TRACKED_ADDRESSES {
        limiter.retain_recent();
    }
    if limiter.check_key(&ip).is_err() {
        tracing::warn!("failed authentication over the per-address limit: answering 429");
        return Err(ApiError::RateLimited);
    }
    Ok(())
}

/// Per-route guard: which roles a route admits, and whether it is an API route or a page.
#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    pub roles: &'static [Role],
    pub kind: Kind,
}

/// Middleware: authenticate the request (bearer token for the API, session cookie for pages),
/// refuse roles the route does not admit, and hand the [`Principal`] to the handler.
pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    if g.roles.is_empty() {
        return next.run(req).await;
    }
    let ip = client_ip(&req);
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
    let principal = match check_token(&g.state, &token).await {
        Ok(p) => p,
        Err(why) => {
            if let Err(e) = failed_auth(&g.state, ip) {
                return error_page_or_json(g.kind, &req, e);
            }
            return match g.kind {
                Kind::Page => Redirect::to("/sign-in?expired=1").into_response(),
                _ => ApiError::Unauthenticated(why).into_response(),
            };
        }
    };
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
