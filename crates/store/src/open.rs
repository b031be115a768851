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

/// The page cache of the SQLite connection that writes, by default (MiB): see
/// [`OpenOptions::write_cache_mib`].
pub const DEFAULT_WRITE_CACHE_MIB: u32 = 256;

/// The page cache of each other (reading) SQLite connection (MiB).
const READ_CACHE_MIB: u32 = 64;

/// How a store is opened, beyond its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// SQLite: the page cache of the one connection every write transaction runs on, in MiB (a
    /// bound: memory is taken only as pages are read). The writer keeps it from batch to batch,
    /// so the indexes a batch inserts into at random places (events by key, timelines and
    /// assessments by household) are read from the file once, not again by every batch: size it
    /// to them (about 100 bytes an event). Ignored on PostgreSQL.
    pub write_cache_mib: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            write_cache_mib: DEFAULT_WRITE_CACHE_MIB,
        }
    }
}

/// The store (a pool of connections to one database).
///
/// On SQLite, write transactions ([`Store::write_tx`]: batches, audit records, activations,
/// sessions) run on one connection of their own, kept open: SQLite writes one transaction at a
/// time anyway, and a connection keeps its page cache only while no other connection writes, so
/// batches taking turns over the pool's connections each began with an empty cache and read every
/// index page they touched from the file again (a cost per batch that grew with the store).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// The connection write transactions run on (on PostgreSQL, the pool itself).
    writer: Pool,
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
        Store::open_with(url, password, OpenOptions::default()).await
    }

    /// [`Store::open_with_password`], with these [`OpenOptions`].
    pub async fn open_with(
        url: &str,
        password: Option<&str>,
        options: OpenOptions,
    ) -> Result<Store, StoreError> {
        let (pool, writer) = if url.starts_with("sqlite:") {
            if password.is_some() {
                return Err(StoreError::BadUrl {
                    url: redact_url(url),
                    message: "a database password is given, but only PostgreSQL takes one".into(),
                });
            }
            let (pool, writer) = open_sqlite(url, options).await?;
            (Db::Sqlite(pool), Db::Sqlite(writer))
        } else if crate::connect::is_postgres(url) {
            let pool = Db::Postgres(crate::connect::pg_pool(url, password).await?);
            (pool.clone(), pool)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let store = Store { pool, writer };
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
    /// On SQLite on the writer's own connection (see [`Store`]): a second write transaction
    /// waits for the first to end, as SQLite's write lock would have it wait.
    pub(crate) async fn write_tx(&self, context: &'static str) -> Result<Tx, StoreError> {
        self.writer.begin_write(context).await
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
        on!(&self.writer, p => p.close().await);
        on!(&self.pool, p => p.close().await)
    }
}

/// The pool of reading connections and the writer's (one connection, opened when first used).
async fn open_sqlite(
    url: &str,
    options: OpenOptions,
) -> Result<(SqlitePool, SqlitePool), StoreError> {
    let base = SqliteConnectOptions::from_str(url)
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
        .pragma("temp_store", "memory")
        .pragma("wal_autocheckpoint", "32768");
    // `cache_size` in KiB when negative.
    let cache = |mib: u32| (-(i64::from(mib.max(1)) * 1024)).to_string();
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(base.clone().pragma("cache_size", cache(READ_CACHE_MIB)))
        .await
        .map_err(|e| StoreError::Open {
            url: url.to_string(),
            source: e,
        })?;
    // The database exists now (the pool created it): the writer opens it when first used.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        // No idle or age limit: the writer keeps its connection (and page cache) for good.
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy_with(
            base.create_if_missing(false)
                .pragma("cache_size", cache(options.write_cache_mib)),
        );
    Ok((pool, writer))
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

    /// Write transactions run on the writer's one connection: a second waits for the first to
    /// end (instead of failing on SQLite's lock), then begins.
    #[tokio::test]
    async fn write_transactions_take_turns_on_the_writers_connection() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = Store::open(&url).await.expect("open");
        let first = store.write_tx("first").await.expect("first");
        let second = tokio::spawn({
            let store = store.clone();
            async move { store.write_tx("second").await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second waits for the first");
        drop(first);
        second.await.expect("joined").expect("then begins");
        // Reads go on beside a write transaction, on the other connections.
        let held = store.write_tx("held").await.expect("held");
        assert!(store.positions().await.expect("read beside it").is_empty());
        drop(held);
        store.close().await;
    }

    /// Migration 0009 rebuilds `api_tokens` and `sessions` on SQLite (a CHECK cannot change in
    /// place): a store with tokens and sessions from before keeps every row and id, the foreign
    /// key still holds, and the feeder role comes with its source or not at all.
    #[tokio::test]
    async fn the_feeder_migration_keeps_tokens_and_sessions_on_sqlite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let (pool, _) = open_sqlite(&url, OpenOptions::default())
            .await
            .expect("pool");
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
