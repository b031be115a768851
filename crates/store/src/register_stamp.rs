//! What names the register's content as it stands, for a copy of the register kept outside the
//! store (the nightly cross-check's register file beside a SQLite store): the copy is used only
//! while the stamp it was made with is still the store's.

use std::path::PathBuf;

use crate::db::{on, Db, Fetch};
use crate::error::StoreError;
use crate::open::Store;

impl Store {
    /// The database file of a SQLite store; `None` on PostgreSQL and for a store in memory.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match self.pool() {
            Db::Sqlite(p) => {
                let options = p.connect_options();
                let file = options.get_filename();
                let name = file.to_string_lossy();
                (!name.is_empty() && !name.starts_with(':') && file.is_file())
                    .then(|| file.to_path_buf())
            }
            Db::Postgres(_) => None,
        }
    }

    /// The register's stamp: its version, with the id and time of the import that made that
    /// version. The households table changes only by an import, which bumps the version and
    /// logs its changes in the same transaction, so two equal stamps of one store name the same
    /// register; the import's time tells apart two stores made at the same path. `None` when
    /// the register has no such import (version 0: nothing imported since the versions began).
    pub async fn register_stamp(&self) -> Result<Option<String>, StoreError> {
        on!(self.pool(), pool => {
            let version: i64 = sqlx::query_scalar("SELECT version FROM register_version WHERE id = 1")
                .one(pool, "reading the register version")
                .await?;
            if version == 0 {
                return Ok(None);
            }
            let import: Option<(i64, String)> = sqlx::query_as(
                "SELECT i.import_id, i.imported_at FROM register_imports i
                 WHERE i.import_id = (SELECT MAX(c.import_id) FROM register_changes c WHERE c.version = $1)",
            )
            .bind(version)
            .optional(pool, "reading the register's last import")
            .await?;
            Ok(import.map(|(id, at)| format!("register v{version}, import {id} at {at}")))
        })
    }
}
