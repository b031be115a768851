//! Who asks: a role (what they may see in clear), the region they are limited to, and the name
//! the audit trail gives them. The HTTP service makes one from an API token; the command line is
//! the operator on the server, an administrator.

use serde::Serialize;

use crate::error::AppError;

/// What a person (or program) may do and see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A township (or village) officer: their region prefix only; acts on their warnings.
    Officer,
    /// A county supervisor: their county prefix; acts on its warnings, sets silences.
    Supervisor,
    /// Reads everything, changes nothing; sees personal data only on a household's trace, and
    /// every such read is audited.
    Auditor,
    /// Runs the service (and the command line on the server): reads everything (masked), replays
    /// dead letters; makes no decision about a household.
    Admin,
    /// A department's program pushing its feed over HTTP (`POST /api/feeds/{source}`), for the
    /// one source its token names: reads nothing, sees no region, and is in no reading route.
    Feeder,
}

impl Role {
    /// The roles of people (and the service's operator): every one of them reads warnings. The
    /// [`Role::Feeder`] is not among them: it reads nothing.
    pub const ALL: [Role; 4] = [Role::Officer, Role::Supervisor, Role::Auditor, Role::Admin];

    pub fn code(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Feeder => "feeder",
        }
    }

    pub fn from_code(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .chain([Role::Feeder])
            .find(|r| r.code() == s)
    }

    /// Whether the role is limited to its region.
    pub fn is_regional(self) -> bool {
        matches!(self, Role::Officer | Role::Supervisor)
    }
}

/// Who asks, as a use case needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub role: Role,
    /// The region prefix the asker was given (a regional role sees only below it).
    pub region: String,
    /// The name the audit trail and a warning's history give the asker (`li`, `token:7`,
    /// `cli:alice`).
    pub actor: String,
    /// The API token the request came with, named in the audit record of a read.
    pub token_id: Option<i64>,
    /// The client's address (the service's, through trusted proxies only), named in the audit
    /// record of a read.
    pub client: Option<String>,
}

impl Who {
    /// The operator on the server (the command line): an administrator of every region.
    pub fn operator(actor: impl Into<String>) -> Who {
        Who {
            role: Role::Admin,
            region: String::new(),
            actor: actor.into(),
            token_id: None,
            client: None,
        }
    }

    /// Whether the asker may see things of `region` (a region code). A feeder sees nothing.
    pub fn sees(&self, region: &str) -> bool {
        self.role != Role::Feeder && (!self.role.is_regional() || region.starts_with(&self.region))
    }

    /// Refuse unless the asker may see `region`: [`AppError::NotFound`] with `missing`, the very
    /// answer given for something that does not exist — so a refusal tells neither where the
    /// thing is (no region code) nor that it exists.
    pub fn require_region(&self, region: &str, missing: &str) -> Result<(), AppError> {
        if self.sees(region) {
            Ok(())
        } else {
            Err(AppError::NotFound(missing.to_string()))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_roles_see_their_region_only_and_others_see_all() {
        let officer = Who {
            role: Role::Officer,
            region: "341502001".into(),
            actor: "li".into(),
            token_id: Some(1),
            client: None,
        };
        assert!(officer.sees("341502001003") && !officer.sees("341502002001"));
        assert_eq!(officer.scope(), "341502001");
        let e = officer
            .require_region("341502002001", "no warning #1")
            .unwrap_err();
        assert!(
            matches!(&e, AppError::NotFound(m) if m == "no warning #1"),
            "{e:?}"
        );
        let cli = Who::operator("cli:alice");
        assert!(cli.sees("999") && cli.scope().is_empty());
        for r in Role::ALL.into_iter().chain([Role::Feeder]) {
            assert_eq!(Role::from_code(r.code()), Some(r));
        }
        let feeder = Who {
            role: Role::Feeder,
            ..Who::operator("token:9")
        };
        assert!(!feeder.sees("341502001003") && !feeder.sees(""));
    }
}
