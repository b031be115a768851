//! Sign-in sessions of the service's pages, apart from API tokens: a session is its own random
//! token (stored as its SHA-256) acting for an API token while both are valid. Signing out ends the
//! session only; the API token, perhaps shared with scripts, stays as it was. A session row is
//! never deleted. Portable SQL; the PostgreSQL twin is `migrations/postgres/0006_sessions.sql`.

use serde::Serialize;

use crate::db::{on, Col, Fetch};
use crate::error::StoreError;
use crate::open::Store;
use crate::time::now;
use crate::tokens::TokenRow;

/// A session as stored (its hash is never shown), with the API token it acts for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub session_id: i64,
    pub created_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
    pub token: TokenRow,
}

impl Store {
    /// Open a session (by its hash) for API token `token_id`, valid until `expires_at` (the
    /// store's time format); returns its id. Audited (`signed_in`, by `actor`, from `client`).
    pub async fn create_session(
        &self,
        session_hash: &str,
        token_id: i64,
        expires_at: &str,
        actor: &str,
        client: Option<&str>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write_tx("starting to open a session").await?;
        let id: i64 = on!(tx.conn(), c => sqlx::query_scalar(
            "INSERT INTO sessions (session_hash, token_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4) RETURNING session_id",
        )
        .bind(session_hash)
        .bind(token_id)
        .bind(now())
        .bind(expires_at)
        .one(&mut *c, "opening a session")
        .await?);
        crate::audit::append(
            tx.conn(),
            actor,
            "signed_in",
            &format!("token:{token_id}"),
            &serde_json::json!({"session_id": id, "expires_at": expires_at, "client": client}),
        )
        .await?;
        tx.commit("committing a new session").await?;
        Ok(id)
    }

    /// The session with this hash and its API token (ended and expired ones too: the caller says
    /// why it is refused).
    pub async fn session_by_hash(
        &self,
        session_hash: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        on!(self.pool(), pool => Ok(sqlx::query(
            "SELECT s.session_id, s.created_at, s.expires_at, s.ended_at,
                    t.token_id, t.role, t.region_code, t.officer_id, t.label, t.created_by,
                    t.created_at, t.expires_at, t.revoked_at, t.revoked_by, t.feed_source
             FROM sessions s JOIN api_tokens t ON t.token_id = s.token_id
             WHERE s.session_hash = $1",
        )
        .bind(session_hash)
        .optional(pool, "looking up a session")
        .await?
        .map(|r| SessionRow {
            session_id: r.col(0),
            created_at: r.col(1),
            expires_at: r.col(2),
            ended_at: r.col(3),
            token: TokenRow {
                token_id: r.col(4),
                role: r.col(5),
                region_code: r.col(6),
                officer_id: r.col(7),
                label: r.col(8),
                created_by: r.col(9),
                created_at: r.col(10),
                expires_at: r.col(11),
                revoked_at: r.col(12),
                revoked_by: r.col(13),
                feed_source: r.col(14),
            },
        })))
    }

    /// End the session with this hash (signing out); `false` when there is none open. Audited
    /// (`signed_out`, by `actor`).
    pub async fn end_session(&self, session_hash: &str, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx("starting to end a session").await?;
        let ended: Option<(i64, i64)> = on!(tx.conn(), c => sqlx::query_as(
            "UPDATE sessions SET ended_at = $1 WHERE session_hash = $2 AND ended_at IS NULL
             RETURNING session_id, token_id",
        )
        .bind(now())
        .bind(session_hash)
        .optional(&mut *c, "ending a session")
        .await?);
        let Some((session_id, token_id)) = ended else {
            return Ok(false);
        };
        crate::audit::append(
            tx.conn(),
            actor,
            "signed_out",
            &format!("token:{token_id}"),
            &serde_json::json!({"session_id": session_id}),
        )
        .await?;
        tx.commit("committing the end of a session").await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_session_acts_for_its_token_and_ends_alone() {
        let (_dir, store, id) = crate::testing::scratch_with_officer_token("tok").await;
        store
            .create_session(
                "sess",
                id,
                "2999-01-01T00:00:00.000000Z",
                "o-1",
                Some("192.0.2.1"),
            )
            .await
            .unwrap();
        let s = store.session_by_hash("sess").await.unwrap().unwrap();
        assert_eq!((s.token.token_id, s.token.role.as_str()), (id, "officer"));
        assert!(s.ended_at.is_none());
        assert!(store.session_by_hash("tok").await.unwrap().is_none());
        assert!(store.end_session("sess", "o-1").await.unwrap());
        assert!(!store.end_session("sess", "o-1").await.unwrap());
        let s = store.session_by_hash("sess").await.unwrap().unwrap();
        assert!(s.ended_at.is_some());
        // The API token is untouched.
        let t = store.token_by_hash("tok").await.unwrap().unwrap();
        assert!(t.revoked_at.is_none());
        // Both in the audit trail, which still verifies.
        let actions: Vec<String> = store
            .audit_records(1, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(actions, ["token_created", "signed_in", "signed_out"]);
        assert!(store.verify_audit().await.unwrap().first_broken.is_none());
    }
}
