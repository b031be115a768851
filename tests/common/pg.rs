//! A fresh database on the PostgreSQL test server for one test, dropped at its end. Shared by the
//! end-to-end tests (`tests/common`) and the service's tests (`crates/service/tests/common`, which
//! include this file by path), so that both create and drop their databases the same way.

use std::sync::atomic::{AtomicU64, Ordering};

/// A new database on the PostgreSQL test server (`DOUDI_TEST_POSTGRES_URL`), dropped with its
/// connections when this is dropped, the test passed or not. Derefs to its URL.
pub struct PgDatabase {
    server: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// `what` goes into the database's name, to tell leftovers apart.
    pub fn create(server: &str, what: &str) -> PgDatabase {
        // Two databases created within the same nanosecond by one process still differ.
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "doudi_{what}_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
            N.fetch_add(1, Ordering::Relaxed)
        );
        pg_admin(server, &format!("CREATE DATABASE {name}"));
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
        PgDatabase {
            server: server.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl std::ops::Deref for PgDatabase {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        pg_admin(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// One statement on the server, on its own thread and runtime (so also from `Drop`, and from
/// inside another runtime).
fn pg_admin(server: &str, sql: &str) {
    let (server, sql) = (server.to_string(), sql.to_string());
    on_own_thread(move || async move {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&server)
            .await
            .expect("connect to DOUDI_TEST_POSTGRES_URL");
        sqlx::raw_sql(&sql)
            .execute(&mut c)
            .await
            .expect("admin sql");
        let _ = c.close().await;
    });
}

/// Run the future `work` makes to its end on a runtime of a thread of its own (so also from `Drop`, and from
/// inside another runtime); what it gives.
pub fn on_own_thread<T: Send + 'static, F: std::future::Future<Output = T>>(
    work: impl FnOnce() -> F + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work())
    })
    .join()
    .expect("a thread of its own")
}
