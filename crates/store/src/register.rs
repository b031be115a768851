//! The register: import with additions, changes and removals, keeping every version in history.

use std::collections::{HashMap, HashSet};

use doudi_model::Household;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{QueryBuilder, Row};

use crate::batch::Position;
use crate::bulk::CHUNK;
use crate::db::{on, Db, Dialect};
use crate::error::{corrupt, Ctx, StoreError};
use crate::open::Store;
use crate::time::now;

/// What an import changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub import_id: i64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub restored: u64,
    pub unchanged: u64,
}

impl Store {
    /// Import households. With `full_snapshot`, households active in the store but absent from
    /// `households` are marked removed (never deleted); otherwise only additions and changes apply.
    /// All in one transaction: an import applies whole or not at all.
    pub async fn import_register(
        &self,
        households: &[Household],
        file: &str,
        full_snapshot: bool,
    ) -> Result<ImportReport, StoreError> {
        on!(self.pool(), pool => {
            let mut tx = pool
                .begin_with(<DB as Dialect>::BEGIN)
                .await
                .ctx("starting the register import")?;
            let existing: HashMap<String, (String, bool, String)> =
                sqlx::query("SELECT household_id, digest, active, record FROM households")
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("reading the current register")?
                    .into_iter()
                    .map(|r| {
                        (
                            r.get::<String, _>(0),
                            (r.get::<String, _>(1), r.get::<i64, _>(2) != 0, r.get(3)),
                        )
                    })
                    .collect();
            let at = now();
            let import_id: i64 = sqlx::query_scalar(
                "INSERT INTO register_imports (file, imported_at, full_snapshot, added, changed, removed, unchanged) VALUES ($1, $2, $3, 0, 0, 0, 0) RETURNING import_id",
            )
            .bind(file)
            .bind(&at)
            .bind(i64::from(full_snapshot))
            .fetch_one(&mut *tx)
            .await
            .ctx("recording the import")?;
            let mut report = ImportReport {
                import_id,
                ..ImportReport::default()
            };
            let mut seen = HashSet::with_capacity(households.len());
            // (household, its JSON, digest, change, version before)
            let mut writes: Vec<(&Household, String, String, &'static str, Option<String>)> =
                Vec::new();
            for h in households {
                let record = serde_json::to_string(h).map_err(|e| corrupt("household", e))?;
                let digest = hex::encode(Sha256::digest(record.as_bytes()));
                seen.insert(h.household_id.clone());
                let (change, before) = match existing.get(&h.household_id) {
                    None => ("added", None),
                    Some((d, true, _)) if *d == digest => {
                        report.unchanged += 1;
                        continue;
                    }
                    Some((_, true, before)) => ("changed", Some(before.clone())),
                    Some((_, false, before)) => ("restored", Some(before.clone())),
                };
                match change {
                    "added" => report.added += 1,
                    "changed" => report.changed += 1,
                    _ => report.restored += 1,
                }
                writes.push((h, record, digest, change, before));
            }
            for chunk in writes.chunks(CHUNK) {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "INSERT INTO households (household_id, region_code, category, area, record, digest, active, updated_at) ",
                );
                qb.push_values(chunk, |mut b, (h, record, digest, _, _)| {
                    b.push_bind(&h.household_id)
                        .push_bind(h.region_code.as_str())
                        .push_bind(h.category.code())
                        .push_bind(h.area.code())
                        .push_bind(record)
                        .push_bind(digest)
                        .push_bind(1i64)
                        .push_bind(&at);
                });
                qb.push(
                    " ON CONFLICT (household_id) DO UPDATE SET region_code = excluded.region_code, category = excluded.category,
                       area = excluded.area, record = excluded.record, digest = excluded.digest, active = 1, updated_at = excluded.updated_at",
                );
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .ctx("writing households")?;

                let mut qb: QueryBuilder<DB> =
                    QueryBuilder::new("UPDATE members SET active = 0 WHERE household_id IN (");
                let mut sep = qb.separated(", ");
                for (h, ..) in chunk {
                    sep.push_bind(&h.household_id);
                }
                qb.push(")");
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .ctx("retiring old members")?;

                let members: Vec<(&str, &doudi_model::Member)> = chunk
                    .iter()
                    .flat_map(|(h, ..)| h.members.iter().map(|m| (h.household_id.as_str(), m)))
                    .collect();
                for members in members.chunks(CHUNK) {
                    let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                        "INSERT INTO members (member_id, household_id, id_number, active) ",
                    );
                    qb.push_values(members, |mut b, (hh, m)| {
                        b.push_bind(&m.member_id)
                            .push_bind(*hh)
                            .push_bind(m.id_number.expose())
                            .push_bind(1i64);
                    });
                    qb.push(
                        " ON CONFLICT (member_id) DO UPDATE SET household_id = excluded.household_id, id_number = excluded.id_number, active = 1",
                    );
                    qb.build().execute(&mut *tx).await.ctx("writing members")?;
                }

                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "INSERT INTO register_history (import_id, household_id, change, before, after) ",
                );
                qb.push_values(chunk, |mut b, (h, record, _, change, before)| {
                    b.push_bind(import_id)
                        .push_bind(&h.household_id)
                        .push_bind(*change)
                        .push_bind(before)
                        .push_bind(record);
                });
                qb.build()
                    .execute(&mut *tx)
                    .await
                    .ctx("recording register history")?;
            }
            if full_snapshot {
                for (id, (_, active, before)) in &existing {
                    if *active && !seen.contains(id) {
                        report.removed += 1;
                        sqlx::query(
                            "UPDATE households SET active = 0, updated_at = $1 WHERE household_id = $2",
                        )
                        .bind(&at)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .ctx("removing a household")?;
                        sqlx::query("UPDATE members SET active = 0 WHERE household_id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .ctx("removing members")?;
                        sqlx::query(
                            "INSERT INTO register_history (import_id, household_id, change, before, after) VALUES ($1, $2, 'removed', $3, NULL)",
                        )
                        .bind(import_id)
                        .bind(id)
                        .bind(before)
                        .execute(&mut *tx)
                        .await
                        .ctx("recording register history")?;
                    }
                }
            }
            sqlx::query(
                "UPDATE register_imports SET added = $1, changed = $2, removed = $3, unchanged = $4 WHERE import_id = $5",
            )
            .bind(report.added as i64)
            .bind((report.changed + report.restored) as i64)
            .bind(report.removed as i64)
            .bind(report.unchanged as i64)
            .bind(import_id)
            .execute(&mut *tx)
            .await
            .ctx("recording the import")?;
            crate::audit::append(
                Db::from(&mut *tx),
                "doudi",
                "register_imported",
                &format!("import:{import_id}"),
                &serde_json::json!({"file": file, "added": report.added, "changed": report.changed,
                    "restored": report.restored, "removed": report.removed, "unchanged": report.unchanged}),
            )
            .await?;
            tx.commit().await.ctx("committing the register import")?;
            Ok(report)
        })
    }

    /// The active households of the register.
    pub async fn load_register(&self) -> Result<Vec<Household>, StoreError> {
        on!(self.pool(), pool => {
            let rows =
                sqlx::query("SELECT record FROM households WHERE active = 1 ORDER BY household_id")
                    .fetch_all(pool)
                    .await
                    .ctx("loading the register")?;
            rows.into_iter()
                .map(|r| {
                    let text: String = r.get(0);
                    serde_json::from_str(&text).map_err(|e| corrupt("household record", e))
                })
                .collect()
        })
    }

    /// The active households of the register among `ids`, in household id order: what a request
    /// about a few households reads instead of the whole register.
    pub async fn register_households(&self, ids: &[String]) -> Result<Vec<Household>, StoreError> {
        let rows: Vec<(String,)> = on!(self.pool(), p => {
            let mut conn = p.acquire().await.ctx("loading households")?;
            crate::batch::rows_for_households(
                Db::from(&mut *conn),
                "SELECT record FROM households WHERE active = 1 AND household_id",
                "ORDER BY household_id",
                ids,
                "loading households",
            )
            .await?
        });
        rows.into_iter()
            .map(|(text,)| serde_json::from_str(&text).map_err(|e| corrupt("households.record", e)))
            .collect()
    }

    /// The stored read positions of every stream of every source: `(source, stream) → position`.
    pub async fn positions(&self) -> Result<HashMap<(String, String), Position>, StoreError> {
        on!(self.pool(), pool => {
            let rows = sqlx::query("SELECT source, stream, byte_offset, line FROM positions")
                .fetch_all(pool)
                .await
                .ctx("reading source positions")?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    (
                        (r.get::<String, _>(0), r.get::<String, _>(1)),
                        Position {
                            byte_offset: r.get::<i64, _>(2) as u64,
                            line: r.get::<i64, _>(3) as u64,
                        },
                    )
                })
                .collect())
        })
    }
}
