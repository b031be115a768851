//! The officer directory as stored: imported whole from a file; the store keeps each officer's
//! record (JSON) and knows nothing of routing (that is `doudi-warnings`).

use serde::Serialize;

use crate::db::{begin, on, Db, Fetch, Run};
use crate::error::{Ctx, StoreError};
use crate::open::Store;
use crate::time::now;

/// One officer to store: id, role and region as columns, the whole record as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OfficerRow {
    pub officer_id: String,
    pub role: String,
    pub region_code: String,
    pub record: String,
}

/// What an officer import changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OfficerImport {
    pub added: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// In the store but not in the file: made inactive.
    pub deactivated: u64,
}

impl Store {
    /// Replace the directory with `officers` in one transaction.
    pub async fn import_officers(
        &self,
        officers: &[OfficerRow],
    ) -> Result<OfficerImport, StoreError> {
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting an officer import").await?;
            let mut report = OfficerImport::default();
            let at = now();
            for o in officers {
                let before: Option<(String, i64)> =
                    sqlx::query_as("SELECT record, active FROM officers WHERE officer_id = $1")
                        .bind(&o.officer_id)
                        .optional(&mut *tx, "reading an officer")
                        .await?;
                match before {
                    Some((record, 1)) if record == o.record => report.unchanged += 1,
                    Some(_) => report.changed += 1,
                    None => report.added += 1,
                }
                sqlx::query(
                    "INSERT INTO officers (officer_id, role, region_code, record, active, updated_at) VALUES ($1, $2, $3, $4, 1, $5)
                     ON CONFLICT(officer_id) DO UPDATE SET role = excluded.role, region_code = excluded.region_code,
                       record = excluded.record, active = 1, updated_at = excluded.updated_at",
                )
                .bind(&o.officer_id)
                .bind(&o.role)
                .bind(&o.region_code)
                .bind(&o.record)
                .bind(&at)
                .run(&mut *tx, "storing an officer")
                .await?;
            }
            let active: Vec<String> =
                sqlx::query_scalar("SELECT officer_id FROM officers WHERE active = 1")
                    .all(&mut *tx, "listing officers")
                    .await?;
            let keep: std::collections::HashSet<&str> =
                officers.iter().map(|o| o.officer_id.as_str()).collect();
            for id in active.iter().filter(|id| !keep.contains(id.as_str())) {
                sqlx::query("UPDATE officers SET active = 0, updated_at = $1 WHERE officer_id = $2")
                    .bind(&at)
                    .bind(id)
                    .run(&mut *tx, "deactivating an officer")
                    .await?;
                report.deactivated += 1;
            }
            crate::audit::append(
                Db::from(&mut *tx),
                "doudi",
                "officers_imported",
                "officers",
                &serde_json::to_value(&report).unwrap_or_default(),
            )
            .await?;
            tx.commit().await.ctx("committing an officer import")?;
            Ok(report)
        })
    }

    /// The active officers' records (JSON), by officer id.
    pub async fn load_officers(&self) -> Result<Vec<OfficerRow>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_as(
                "SELECT officer_id, role, region_code, record FROM officers WHERE active = 1 ORDER BY officer_id",
            )
            .all(pool, "loading the officer directory")
            .await
        })
    }
}
