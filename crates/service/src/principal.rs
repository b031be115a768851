//! The person (or program) behind a request: an API token's role, region and officer, and the
//! form token of a signed-in session. What a role may see is `doudi_app`'s ([`Who`]).

pub use doudi_app::Role;
use doudi_app::Who;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::error::ApiError;
use crate::AppState;

/// The person (or program) behind a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub token_id: i64,
    pub role: Role,
    /// The region prefix the token was created for.
    pub region: String,
    pub officer_id: Option<String>,
    /// The one source a feeder token pushes (`None` for every other role).
    pub feed_source: Option<String>,
    /// The form token of this session (pages).
    pub form_token: String,
    /// The hash of the sign-in session the request came with (pages), for signing out.
    pub session_hash: Option<String>,
    /// The client's address (through trusted proxies only), named in the audit record of a read.
    pub client: Option<std::net::IpAddr>,
}

impl Principal {
    /// Who the audit trail and a warning's history name: the officer, else the token.
    pub fn actor(&self) -> String {
        match &self.officer_id {
            Some(o) => o.clone(),
            None => format!("token:{}", self.token_id),
        }
    }

    /// The asker as the use cases take it.
    pub fn who(&self) -> Who {
        Who {
            role: self.role,
            region: self.region.clone(),
            actor: self.actor(),
            token_id: Some(self.token_id),
            client: self.client.map(|ip| ip.to_string()),
        }
    }

    /// The officer the token acts for; refused for a token that acts for none.
    pub fn officer(&self) -> Result<&str, ApiError> {
        self.officer_id.as_deref().ok_or_else(|| {
            ApiError::Forbidden(format!(
                "token #{} acts for no officer: create one with `doudi tokens create --officer ID`",
                self.token_id
            ))
        })
    }

    /// Whether this principal may see things of `region` (a region code).
    pub fn sees(&self, region: &str) -> bool {
        self.who().sees(region)
    }

    /// Refuse unless this principal may see `region`: 404 with `missing`, the same answer as for
    /// something that does not exist.
    pub fn require_region(&self, region: &str, missing: &str) -> Result<(), ApiError> {
        Ok(self.who().require_region(region, missing)?)
    }

    /// The region prefix lists are limited to (`""`: everything).
    pub fn scope(&self) -> &str {
        if self.role.is_regional() {
            &self.region
        } else {
            ""
        }
    }
}

/// The state and the person behind a request: what every handler behind the token or the
/// session starts from (one extractor, instead of `State` and `Extension<Principal>` in each).
/// Refused as `Extension` refuses when no principal was put on the request (a route mounted
/// without authentication).
pub struct Signed {
    pub state: AppState,
    pub who: Principal,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Signed, Response> {
        let Extension(who) = Extension::<Principal>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Signed {
            state: state.clone(),
            who,
        })
    }
}
