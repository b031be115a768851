//! The store handle: opening either backend, migrating, starting transactions.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::db::{on, Db, Fetch, Pool, Tx};
use crate::error::StoreError;

/// Database page size (set when the file is created).
const PAGE_SIZE: u32 = 8192;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The store (a pool of connections to one database).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Open the database at `url` and run migrations: `sqlite://PATH` (the file is created if
    /// missing) or `postgres://…` / `postgresql://…` (the database must exist).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with_password(url, None).await
    }

    /// [`Store::open`], with the PostgreSQL password given apart from the URL (from a file; `None`:
    /// the URL's, or none). PostgreSQL's TLS parameters: see [`crate::pg_options`].
    pub async fn open_with_password(
        url: &str,
        password: Option<&str>,
    ) -> Result<Store, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            if password.is_some() {
                return Err(StoreError::BadUrl {
                    url: redact_url(url),
                    message: "a database password is given, but only PostgreSQL takes one".into(),
                });
            }
            Db::Sqlite(open_sqlite(url).await?)
        } else if crate::connect::is_postgres(url) {
            Db::Postgres(crate::connect::pg_pool(url, password).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Run the migrations that have not run yet (also done by [`Store::open`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        }
        .map_err(StoreError::Migrate)
    }

    /// Start a transaction that writes: `BEGIN IMMEDIATE` on SQLite (the write lock first, see
    /// the crate docs), `BEGIN` (read committed) on PostgreSQL.
    pub(crate) async fn write_tx(&self, context: &'static str) -> Result<Tx, StoreError> {
        self.pool.begin_write(context).await
    }

    /// Copy committed pages from the write-ahead log into the database file without blocking the
    /// writer (SQLite's PASSIVE checkpoint). Run from a task beside a long write, it moves the
    /// copying (and its fsync) off the writer's connection. Returns (log frames, frames copied).
    /// On PostgreSQL the server checkpoints by itself: nothing to do, `(0, 0)`.
    pub async fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        match &self.pool {
            Db::Sqlite(p) => {
                let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .one(p, "checkpointing the write-ahead log")
                    .await?;
                Ok((row.get(1), row.get(2)))
            }
            Db::Postgres(_) => Ok((0, 0)),
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Close the pool (on SQLite, flushing the WAL).
    pub async fn close(&self) {
        on!(&self.pool, p => p.close().await)
    }
}

async fn open_sqlite(url: &str) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::BadUrl {
            url: url.to_string(),
            message: e.to_string(),
        })?
        .create_if_missing(true)
        .page_size(PAGE_SIZE)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "memory")
        .pragma("wal_autocheckpoint", "32768");
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Open {
            url: url.to_string(),
            source: e,
        })
}

/// The URL without its password (for errors, logs and what a command prints).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            redact_url("postgres://doudi:s3cret@db:5432/doudi"),
            "postgres://doudi:***@db:5432/doudi"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact_url("sqlite://doudi.db"), "sqlite://doudi.db");
    }

    /// Migration 0009 rebuilds `api_tokens` and `sessions` on SQLite (a CHECK cannot change in
    /// place): a store with tokens and sessions from before keeps every row and id, the foreign
    /// key still holds, and the feeder role comes with its source or not at all.
    #[tokio::test]
    async fn the_feeder_migration_keeps_tokens_and_sessions_on_sqlite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let pool = open_sqlite(&url).await.expect("pool");
        let before = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                SQLITE_MIGRATIONS
                    .migrations
                    .iter()
                    .filter(|m| m.version < 9)
                    .cloned()
                    .collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(&pool).await.expect("migrations before 0009");
        sqlx::raw_sql(
            "INSERT INTO api_tokens (token_hash, role, region_code, officer_id, created_by, created_at)
                 VALUES ('h1', 'officer', '341502001', 'o-1', 'test', '2026-12-01T00:00:00.000000Z'),
                        ('h2', 'admin', '34', NULL, 'test', '2026-12-01T00:00:00.000000Z');
             INSERT INTO sessions (session_hash, token_id, created_at, expires_at)
                 VALUES ('s1', 2, '2026-12-01T00:00:00.000000Z', '2026-12-01T12:00:00.000000Z');",
        )
        .execute(&pool)
        .await
        .expect("rows from before");
        SQLITE_MIGRATIONS.run(&pool).await.expect("0009");
        let tokens: Vec<(i64, String, Option<String>)> =
            sqlx::query_as("SELECT token_id, role, feed_source FROM api_tokens ORDER BY token_id")
                .fetch_all(&pool)
                .await
                .expect("tokens");
        assert_eq!(
            tokens,
            vec![(1, "officer".into(), None), (2, "admin".into(), None)]
        );
        let sessions: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT session_id, session_hash, token_id FROM sessions")
                .fetch_all(&pool)
                .await
                .expect("sessions");
        assert_eq!(sessions, vec![(1, "s1".into(), 2)]);
        let insert = |sql: &'static str| {
            let pool = pool.clone();
            async move { sqlx::raw_sql(sql).execute(&pool).await }
        };
        insert("INSERT INTO api_tokens (token_hash, role, region_code, created_by, created_at, feed_source)
                VALUES ('h3', 'feeder', '34', 'test', 'now', 'housing')")
            .await
            .expect("a feeder with its source");
        for refused in [
            "INSERT INTO api_tokens (token_hash, role, region_code, created_by, created_at)
             VALUES ('h4', 'feeder', '34', 'test', 'now')",
            "INSERT INTO api_tokens (token_hash, role, region_code, created_by, created_at, feed_source)
             VALUES ('h5', 'auditor', '34', 'test', 'now', 'housing')",
            "INSERT INTO api_tokens (token_hash, role, region_code, created_by, created_at)
             VALUES ('h6', 'king', '34', 'test', 'now')",
            "INSERT INTO sessions (session_hash, token_id, created_at, expires_at)
             VALUES ('s9', 99, 'now', 'later')",
        ] {
            assert!(insert(refused).await.is_err(), "not refused: {refused}");
        }
        let id: i64 = sqlx::query_scalar("SELECT token_id FROM api_tokens WHERE token_hash = 'h3'")
            .fetch_one(&pool)
            .await
            .expect("id");
        assert_eq!(id, 3, "ids go on after the rebuilt table's");
        pool.close().await;
    }
}
