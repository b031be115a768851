//! API tokens of the HTTP service, stored hashed: the store sees only the SHA-256 of a token, never
//! the token. Creating and revoking a token are audited; a token row is never deleted.
//!
//! Portable SQL only (`$n` placeholders, `RETURNING`, integers as i64): the PostgreSQL twin of the
//! table is `migrations/postgres/0004_service.sql`.

use crate::db::{begin, on, Col, Db, Fetch, Run};
use crate::error::{Ctx, StoreError};
use crate::open::Store;
use crate::time::now;
use serde::Serialize;

/// A token as stored (its hash is never shown).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub token_id: i64,
    pub role: String,
    pub region_code: String,
    pub officer_id: Option<String>,
    pub label: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    /// The one source a `feeder` token pushes (`None` for every other role).
    pub feed_source: Option<String>,
}

/// A token to create.
#[derive(Clone, Debug)]
pub struct NewToken<'a> {
    /// Hex SHA-256 of the token.
    pub token_hash: &'a str,
    pub role: &'a str,
    pub region_code: &'a str,
    pub officer_id: Option<&'a str>,
    pub label: &'a str,
    pub created_by: &'a str,
    /// Stored timestamp format ([`crate::ts`]); `None`: never expires.
    pub expires_at: Option<String>,
    /// The one source a `feeder` token pushes; `None` for every other role (the table refuses a
    /// feeder without one, and a source on any other role).
    pub feed_source: Option<&'a str>,
}

const TOKEN_COLUMNS: &str = "SELECT token_id, role, region_code, officer_id, label, created_by, created_at, expires_at, revoked_at, revoked_by, feed_source FROM api_tokens";

fn token_row(r: &impl Col) -> TokenRow {
    TokenRow {
        token_id: r.col(0),
        role: r.col(1),
        region_code: r.col(2),
        officer_id: r.col(3),
        label: r.col(4),
        created_by: r.col(5),
        created_at: r.col(6),
        expires_at: r.col(7),
        revoked_at: r.col(8),
        revoked_by: r.col(9),
        feed_source: r.col(10),
    }
}

impl Store {
    /// Store a new token (by its hash); returns its id. Audited.
    pub async fn create_token(&self, t: &NewToken<'_>) -> Result<i64, StoreError> {
        on!(self.pool(), pool => {
        let mut tx = begin(pool, "starting to create a token").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (token_hash, role, region_code, officer_id, label, created_by, created_at, expires_at, feed_source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING token_id",
        )
        .bind(t.token_hash)
        .bind(t.role)
        .bind(t.region_code)
        .bind(t.officer_id)
        .bind(t.label)
        .bind(t.created_by)
        .bind(now())
        .bind(&t.expires_at)
        .bind(t.feed_source)
        .one(&mut *tx, "creating a token")
        .await?;
        crate::audit::append(
            Db::from(&mut *tx),
            t.created_by,
            "token_created",
            &format!("token:{id}"),
            &serde_json::json!({"role": t.role, "region_code": t.region_code,
                "officer_id": t.officer_id, "expires_at": t.expires_at,
                "feed_source": t.feed_source}),
        )
        .await?;
        tx.commit().await.ctx("committing a new token")?;
        Ok(id)
        })
    }

    /// The token with this hash (revoked and expired ones too: the caller says why it is refused).
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let sql = format!("{TOKEN_COLUMNS} WHERE token_hash = $1");
        on!(self.pool(), pool => Ok(sqlx::query(&sql)
            .bind(token_hash)
            .optional(pool, "looking up a token")
            .await?
            .map(|r| token_row(&r))))
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!("{TOKEN_COLUMNS} ORDER BY token_id");
        on!(self.pool(), pool => Ok(sqlx::query(&sql)
            .all(pool, "listing tokens")
            .await?
            .iter()
            .map(token_row)
            .collect()))
    }

    /// Revoke a token. Refused with [`StoreError::Conflict`] when there is no such token or it was
    /// revoked already. Audited.
    pub async fn revoke_token(&self, token_id: i64, revoked_by: &str) -> Result<(), StoreError> {
        on!(self.pool(), pool => {
        let mut tx = begin(pool, "starting to revoke a token").await?;
        let at = now();
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1, revoked_by = $2 WHERE token_id = $3 AND revoked_at IS NULL",
        )
        .bind(&at)
        .bind(revoked_by)
        .bind(token_id)
        .run(&mut *tx, "revoking a token")
        .await?;
        if done.rows_affected() != 1 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT token_id FROM api_tokens WHERE token_id = $1")
                    .bind(token_id)
                    .optional(&mut *tx, "looking up a token")
                    .await?;
            return Err(StoreError::Conflict(match exists {
                None => format!("there is no token #{token_id} (see `doudi tokens list`)"),
                Some(_) => format!("token #{token_id} was revoked already"),
            }));
        }
        crate::audit::append(
            Db::from(&mut *tx),
            revoked_by,
            "token_revoked",
            &format!("token:{token_id}"),
            &serde_json::json!({"revoked_at": at}),
        )
        .await?;
        tx.commit().await.ctx("committing a token revocation")
        })
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_token_is_found_by_its_hash_and_revoked_once() {
        let (_dir, store, id) = crate::testing::scratch_with_officer_token("abc").await;
        let t = store.token_by_hash("abc").await.unwrap().unwrap();
        assert_eq!((t.token_id, t.role.as_str()), (id, "officer"));
        assert!(store.token_by_hash("abd").await.unwrap().is_none());
        store.revoke_token(id, "cli:root").await.unwrap();
        let e = store.revoke_token(id, "cli:root").await.unwrap_err();
        assert!(e.to_string().contains("revoked already"), "{e}");
        let e = store.revoke_token(99, "cli:root").await.unwrap_err();
        assert!(e.to_string().contains("no token #99"), "{e}");
        assert!(store.tokens().await.unwrap()[0].revoked_at.is_some());
        assert!(store.verify_audit().await.unwrap().first_broken.is_none());
    }
}
