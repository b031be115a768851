//! The register: import with additions, changes and removals, keeping every version in history.

use std::collections::{HashMap, HashSet, VecDeque};

use doudi_model::Household;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{QueryBuilder, Row};

use doudi_model::LinkOutcome;

use crate::batch::{BatchTx, LinkRow, Position};
use crate::bulk::{update_listed, CHUNK};
use crate::codec::{decode_code, decode_stored, Typed};
use crate::db::{on, push_list, Db, Dialect, Fetch, Run, Tx};
use crate::error::{corrupt, Ctx, StoreError};
use crate::open::Store;
use crate::pack::{decode_household_record, pack_bytes, Dict, Packed, Stored};
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
    /// The register's version after the import (unchanged when the import changed nothing).
    pub version: i64,
}

/// One household an import added, changed, restored or removed, at register version `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RegisterChange {
    pub version: i64,
    pub household_id: String,
    /// `added`, `changed`, `restored` or `removed`.
    pub change: String,
}

/// An identity decision that may change now that the register moved past the version it was made
/// with (an `unmatched` or `review` record no person has decided), claimed by one worker.
#[derive(Clone, Debug)]
pub struct WaitingLink {
    pub seq: i64,
    pub source: String,
    pub event_id: String,
    pub outcome: LinkOutcome,
    pub household_id: Option<String>,
    pub member_id: Option<String>,
    /// The evidence as stored (JSON, or packed: [`WaitingLink::decoded_evidence`] reads it).
    pub evidence: Stored,
    pub decided_at: String,
    pub register_version: i64,
    /// The event as stored (normalised JSON).
    pub event: String,
    /// Where the event was read (stream and line or offset): the identity model of that position
    /// decides it again (`doudi_pipeline::versions`).
    pub stream: String,
    pub line: u64,
}

impl WaitingLink {
    /// The stored evidence, read in either form.
    pub fn decoded_evidence(&self) -> Result<doudi_model::Evidence, StoreError> {
        decode_stored(&self.evidence.0, "link_decisions.evidence")
    }
}

/// Households per chunk of [`Store::import_register`].
const IMPORT_CHUNK: usize = 5_000;

/// Active households read per step when looking for the removed ones.
const REMOVAL_PAGE: i64 = 5_000;

/// Register history ids copied into the change log per statement (each well under a second).
const CHANGES_STEP: i64 = 100_000;

/// A register import under way ([`Store::begin_register_import`]): one transaction, written a
/// chunk of households at a time; [`RegisterImport::finish`] marks the removed households, logs
/// the changes under a new register version and commits. Dropped before it finishes, the
/// transaction is rolled back and nothing of the import is kept.
pub struct RegisterImport {
    tx: Tx,
    file: String,
    full_snapshot: bool,
    at: String,
    /// The register history's rows of this import have ids above this.
    history_after: i64,
    report: ImportReport,
}

impl std::fmt::Debug for RegisterImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterImport")
            .field("file", &self.file)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl RegisterImport {
    /// Apply these households (additions, changes and restorations; each household once in an
    /// import): compared by digest with their current version, read now for these alone.
    pub async fn write(&mut self, households: &[Household]) -> Result<(), StoreError> {
        if households.is_empty() {
            return Ok(());
        }
        let (import_id, at) = (self.report.import_id, self.at.as_str());
        let report = &mut self.report;
        let mut conn = self.tx.conn();
        let ids: Vec<String> = households.iter().map(|h| h.household_id.clone()).collect();
        // household → (digest, active)
        let existing: HashMap<String, (String, bool)> =
            crate::batch::rows_for_households::<(String, String, i64)>(
                conn.reborrow(),
                "SELECT household_id, digest, active FROM households WHERE household_id",
                "",
                &ids,
                "reading the current register",
            )
            .await?
            .into_iter()
            .map(|(id, digest, active)| (id, (digest, active != 0)))
            .collect();
        // (household, its record, digest, change)
        let mut changes: Vec<(&Household, String, String, &'static str)> = Vec::new();
        for h in households {
            let record = serde_json::to_string(h).map_err(|e| corrupt("household", e))?;
            let digest = hex::encode(Sha256::digest(record.as_bytes()));
            let change = match existing.get(&h.household_id) {
                None => "added",
                Some((d, true)) if *d == digest => {
                    report.unchanged += 1;
                    continue;
                }
                Some((_, true)) => "changed",
                Some((_, false)) => "restored",
            };
            match change {
                "added" => report.added += 1,
                "changed" => report.changed += 1,
                _ => report.restored += 1,
            }
            changes.push((h, record, digest, change));
        }
        drop(existing);
        // The versions the changed and restored households replace, for their history.
        let replaced: Vec<String> = changes
            .iter()
            .filter(|(.., change)| *change != "added")
            .map(|(h, ..)| h.household_id.clone())
            .collect();
        let mut before: HashMap<String, Stored> =
            crate::batch::rows_for_households::<(String, Stored)>(
                conn.reborrow(),
                "SELECT household_id, record FROM households WHERE household_id",
                "",
                &replaced,
                "reading the current register",
            )
            .await?
            .into_iter()
            .collect();
        // (household, its record packed, digest, change, version before)
        let writes: Vec<(&Household, Packed, String, &'static str, Option<Stored>)> = changes
            .into_iter()
            .map(|(h, record, digest, change)| {
                let was = before.remove(&h.household_id);
                // Kept packed (see `pack`): in `households.record` and the history's `after`.
                (h, pack_bytes(Dict::Register, &record), digest, change, was)
            })
            .collect();
        on!(conn, c => {
            for chunk in writes.chunks(CHUNK) {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "INSERT INTO households (household_id, region_code, category, area, record, digest, active, updated_at) ",
                );
                qb.push_values(chunk, |mut b, (h, record, digest, _, _)| {
                    b.push_bind(&h.household_id)
                        .push_bind(h.region_code.as_str())
                        .push_bind(h.category.code())
                        .push_bind(h.area.code());
                    <DB as Dialect>::push_packed(&mut b, record);
                    b.push_bind(digest)
                        .push_bind(1i64)
                        .push_bind(at);
                });
                qb.push(
                    " ON CONFLICT (household_id) DO UPDATE SET region_code = excluded.region_code, category = excluded.category,
                       area = excluded.area, record = excluded.record, digest = excluded.digest, active = 1, updated_at = excluded.updated_at",
                );
                qb.build()
                    .run(&mut *c, "writing households")
                    .await?;

                let mut qb: QueryBuilder<DB> =
                    QueryBuilder::new("UPDATE members SET active = 0 WHERE household_id IN ");
                push_list(&mut qb, chunk.iter().map(|(h, ..)| &h.household_id));
                qb.build()
                    .run(&mut *c, "retiring old members")
                    .await?;

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
                    qb.build().run(&mut *c, "writing members").await?;
                }

                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "INSERT INTO register_history (import_id, household_id, change, before, after) ",
                );
                qb.push_values(chunk, |mut b, (h, record, _, change, before)| {
                    b.push_bind(import_id)
                        .push_bind(&h.household_id)
                        .push_bind(*change);
                    if <DB as Dialect>::POSTGRES {
                        b.push_bind(before.clone().map(Stored::into_text));
                    } else {
                        b.push_bind(before.clone().map(Stored::into_bytes));
                    }
                    <DB as Dialect>::push_packed(&mut b, record);
                });
                qb.build()
                    .run(&mut *c, "recording register history")
                    .await?;
            }
            Ok(())
        })
    }

    /// Finish the import: with a full snapshot, mark removed (never delete) every active household
    /// `in_file` does not know (the file's household ids); log the changes under a new register
    /// version when there are any; record the import and commit.
    pub async fn finish(
        mut self,
        in_file: impl Fn(&str) -> bool,
    ) -> Result<ImportReport, StoreError> {
        if self.full_snapshot {
            self.remove_absent(&in_file).await?;
        }
        let RegisterImport {
            mut tx,
            file,
            at: _,
            history_after,
            mut report,
            ..
        } = self;
        let import_id = report.import_id;
        on!(tx.conn(), c => {
            // A new register version when anything changed, with the households it changed: what
            // running workers poll and apply (the version row's lock, held to commit, orders
            // concurrent imports so that versions follow commits).
            let changes = report.added + report.changed + report.restored + report.removed;
            if changes > 0 {
                let version: i64 = sqlx::query_scalar(
                    "UPDATE register_version SET version = version + 1 WHERE id = 1 RETURNING version",
                )
                .one(&mut *c, "bumping the register version")
                .await?;
                report.version = version;
                // The changes are the import's history rows (in the order they were written):
                // copied, not held, a range of ids a statement. The numbers are written into
                // the statement.
                let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM register_history")
                    .one(&mut *c, "reading the register history")
                    .await?;
                let mut from = history_after;
                while from < last {
                    let to = last.min(from.saturating_add(CHANGES_STEP));
                    sqlx::query(&format!(
                        "INSERT INTO register_changes (version, import_id, household_id, change)
                         SELECT {version}, import_id, household_id, change FROM register_history
                         WHERE id > {from} AND id <= {to} AND import_id = {import_id} ORDER BY id"
                    ))
                    .run(&mut *c, "logging register changes")
                    .await?;
                    from = to;
                }
            } else {
                report.version = sqlx::query_scalar("SELECT version FROM register_version WHERE id = 1")
                    .one(&mut *c, "reading the register version")
                    .await?;
            }
            sqlx::query(
                "UPDATE register_imports SET added = $1, changed = $2, removed = $3, unchanged = $4 WHERE import_id = $5",
            )
            .bind(report.added as i64)
            .bind((report.changed + report.restored) as i64)
            .bind(report.removed as i64)
            .bind(report.unchanged as i64)
            .bind(import_id)
            .run(&mut *c, "recording the import")
            .await?;
            crate::audit::append(
                Db::from(&mut *c),
                "doudi",
                "register_imported",
                &format!("import:{import_id}"),
                &serde_json::json!({"file": file, "added": report.added, "changed": report.changed,
                    "restored": report.restored, "removed": report.removed, "unchanged": report.unchanged}),
            )
            .await?;
        });
        tx.commit("committing the register import").await?;
        Ok(report)
    }

    /// Give the import up: nothing of it is kept (as when it is dropped, but waited for).
    pub async fn rollback(self) -> Result<(), StoreError> {
        on!(self.tx, tx => tx.rollback().await.ctx("rolling back the register import"))
    }

    /// Mark removed the active households `in_file` does not know, reading the active ones a page
    /// at a time in household id order.
    async fn remove_absent(&mut self, in_file: &impl Fn(&str) -> bool) -> Result<(), StoreError> {
        let (import_id, at) = (self.report.import_id, self.at.as_str());
        let report = &mut self.report;
        let mut conn = self.tx.conn();
        let mut last: Option<String> = None;
        loop {
            let page: Vec<String> = on!(conn.reborrow(), c => {
                match &last {
                    None => sqlx::query_scalar(
                        "SELECT household_id FROM households WHERE active = 1 ORDER BY household_id LIMIT $1",
                    )
                    .bind(REMOVAL_PAGE),
                    Some(after) => sqlx::query_scalar(
                        "SELECT household_id FROM households WHERE active = 1 AND household_id > $1 ORDER BY household_id LIMIT $2",
                    )
                    .bind(after.clone())
                    .bind(REMOVAL_PAGE),
                }
                .all(&mut *c, "reading the current register")
                .await?
            });
            let Some(end) = page.last().cloned() else {
                break;
            };
            let removed: Vec<String> = page.into_iter().filter(|id| !in_file(id)).collect();
            last = Some(end);
            if removed.is_empty() {
                continue;
            }
            report.removed += removed.len() as u64;
            let before: Vec<(String, Stored)> = crate::batch::rows_for_households(
                conn.reborrow(),
                "SELECT household_id, record FROM households WHERE household_id",
                "ORDER BY household_id",
                &removed,
                "reading the current register",
            )
            .await?;
            on!(conn.reborrow(), c => {
                for ids in removed.chunks(CHUNK) {
                    let mut qb: QueryBuilder<DB> = QueryBuilder::new("UPDATE households SET active = 0, updated_at = ");
                    qb.push_bind(at);
                    qb.push(" WHERE household_id IN ");
                    push_list(&mut qb, ids);
                    qb.build().run(&mut *c, "removing households").await?;
                    let mut qb: QueryBuilder<DB> = QueryBuilder::new("UPDATE members SET active = 0 WHERE household_id IN ");
                    push_list(&mut qb, ids);
                    qb.build().run(&mut *c, "removing members").await?;
                }
                for chunk in before.chunks(CHUNK) {
                    let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                        "INSERT INTO register_history (import_id, household_id, change, before, after) ",
                    );
                    qb.push_values(chunk, |mut b, (id, before)| {
                        b.push_bind(import_id).push_bind(id).push("'removed'");
                        if <DB as Dialect>::POSTGRES {
                            b.push_bind(before.clone().into_text());
                        } else {
                            b.push_bind(before.clone().into_bytes());
                        }
                        b.push("NULL");
                    });
                    qb.build().run(&mut *c, "recording register history").await?;
                }
            });
        }
        Ok(())
    }
}

impl Store {
    /// Import households. With `full_snapshot`, households active in the store but absent from
    /// `households` are marked removed (never deleted); otherwise only additions and changes apply.
    /// All in one transaction: an import applies whole or not at all. A file too large to hold
    /// goes through [`Store::begin_register_import`] a chunk at a time.
    pub async fn import_register(
        &self,
        households: &[Household],
        file: &str,
        full_snapshot: bool,
    ) -> Result<ImportReport, StoreError> {
        let mut import = self.begin_register_import(file, full_snapshot).await?;
        for chunk in households.chunks(IMPORT_CHUNK) {
            import.write(chunk).await?;
        }
        let ids: HashSet<&str> = households.iter().map(|h| h.household_id.as_str()).collect();
        import.finish(|id| ids.contains(id)).await
    }

    /// Start a register import from `file` that takes its households a chunk at a time
    /// ([`RegisterImport::write`]) and applies them all or none ([`RegisterImport::finish`]
    /// commits; dropped before, nothing of it is kept). Holds what one chunk needs, never the
    /// register: the current version of a chunk's households is read with the chunk.
    pub async fn begin_register_import(
        &self,
        file: &str,
        full_snapshot: bool,
    ) -> Result<RegisterImport, StoreError> {
        let mut tx = self
            .pool()
            .begin_write("starting the register import")
            .await?;
        let at = now();
        let (import_id, history_after) = on!(tx.conn(), c => {
            let import_id: i64 = sqlx::query_scalar(
                "INSERT INTO register_imports (file, imported_at, full_snapshot, added, changed, removed, unchanged) VALUES ($1, $2, $3, 0, 0, 0, 0) RETURNING import_id",
            )
            .bind(file)
            .bind(&at)
            .bind(i64::from(full_snapshot))
            .one(&mut *c, "recording the import")
            .await?;
            // The history rows this import writes come after it (its changes are logged from them).
            let after: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM register_history")
                .one(&mut *c, "reading the register history")
                .await?;
            (import_id, after)
        });
        Ok(RegisterImport {
            tx,
            file: file.to_string(),
            full_snapshot,
            at,
            history_after,
            report: ImportReport {
                import_id,
                ..ImportReport::default()
            },
        })
    }

    /// The register's version: 0 before the first import that changed anything, then one more
    /// for each.
    pub async fn register_version(&self) -> Result<i64, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_scalar("SELECT version FROM register_version WHERE id = 1")
                .one(pool, "reading the register version")
                .await
        })
    }

    /// The households changed after version `after` up to `upto`, in the order they changed.
    pub async fn register_changes(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Vec<RegisterChange>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_as(
                "SELECT version, household_id, change FROM register_changes
                 WHERE version > $1 AND version <= $2 ORDER BY seq",
            )
            .bind(after)
            .bind(upto)
            .all(pool, "reading register changes")
            .await
        })
    }

    /// Whether some `unmatched` or `review` record (not decided by a person) was decided with a
    /// register older than `version`.
    pub async fn links_waiting(&self, version: i64) -> Result<bool, StoreError> {
        on!(self.pool(), pool => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT l.seq FROM link_decisions l WHERE l.outcome <> 'linked' AND l.register_version < $1
                 AND NOT EXISTS (SELECT 1 FROM review_decisions r WHERE r.seq = l.seq) LIMIT 1",
            )
            .bind(version)
            .optional(pool, "looking for records decided with an older register")
            .await?;
            Ok(found.is_some())
        })
    }

    /// The active households of the register, in household id order.
    pub async fn load_register(&self) -> Result<Vec<Household>, StoreError> {
        let mut out: Vec<Household> = Vec::new();
        self.load_register_in_batches(|batch| out.extend(batch))
            .await?;
        Ok(out)
    }

    /// The active households of the register, in household id order, given to `each` a batch at
    /// a time (a few thousand): a worker that keeps only some of them never holds them all.
    ///
    /// One query, streamed: records are decoded (JSON) in batches on the blocking threads while
    /// the next rows are still being read, so the decoding (most of the time at provincial scale)
    /// runs beside the reading and on every core.
    pub async fn load_register_in_batches(
        &self,
        mut each: impl FnMut(Vec<Household>),
    ) -> Result<(), StoreError> {
        /// Records decoded per task.
        const BATCH: usize = 4096;
        let in_flight = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        let mut pending: VecDeque<tokio::task::JoinHandle<Result<Vec<Household>, StoreError>>> =
            VecDeque::new();
        on!(self.pool(), pool => {
            let mut rows = sqlx::query_scalar::<_, Stored>(
                "SELECT record FROM households WHERE active = 1 ORDER BY household_id",
            )
            .fetch(pool);
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let next = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await;
                let done = next.is_none();
                if let Some(r) = next {
                    batch.push(r.ctx("loading the register")?);
                }
                if batch.len() == BATCH || (done && !batch.is_empty()) {
                    let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    pending.push_back(tokio::task::spawn_blocking(move || decode_households(records)));
                    while pending.len() > in_flight {
                        if let Some(h) = pending.pop_front() {
                            each(joined(h.await)?);
                        }
                    }
                }
                if done {
                    break;
                }
            }
        });
        for h in pending {
            each(joined(h.await)?);
        }
        Ok(())
    }

    /// The households among `ids` as the register held them at `version` (in household id order):
    /// [`households_as_of`]. What a worker holding only some households reads on a miss.
    pub async fn households_as_of(
        &self,
        ids: &[String],
        version: i64,
    ) -> Result<Vec<Household>, StoreError> {
        on!(self.pool(), p => {
            let mut conn = p.acquire().await.ctx("loading households")?;
            households_as_of(Db::from(&mut *conn), ids, version).await
        })
    }

    /// The active households of the register among `ids`, in household id order: what a request
    /// about a few households reads instead of the whole register.
    pub async fn register_households(&self, ids: &[String]) -> Result<Vec<Household>, StoreError> {
        let rows: Vec<(Stored,)> = on!(self.pool(), p => {
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
            .map(|(stored,)| decode_household_record(&stored.0))
            .collect()
    }

    /// The stored read positions of every stream of every source: `(source, stream) → position`.
    pub async fn positions(&self) -> Result<HashMap<(String, String), Position>, StoreError> {
        on!(self.pool(), pool => {
            let rows = sqlx::query("SELECT source, stream, byte_offset, line FROM positions")
                .all(pool, "reading source positions")
                .await?;
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

impl BatchTx {
    /// The households among `ids` as the register held them at `version`, read in this
    /// transaction: [`households_as_of`].
    pub async fn households_as_of(
        &mut self,
        ids: &[String],
        version: i64,
    ) -> Result<Vec<Household>, StoreError> {
        households_as_of(self.conn(), ids, version).await
    }

    /// Claim up to `limit` records decided with a register older than `version` (`unmatched` or
    /// `review`, not decided by a person), oldest first, for this transaction to decide again.
    /// Each is claimed by one transaction only: on PostgreSQL the rows are locked (those another
    /// worker holds are passed over) and checked again once locked; SQLite has one writer.
    /// Record each claim's outcome with [`BatchTx::redecide_link`] or [`BatchTx::keep_links`].
    pub async fn claim_waiting_links(
        &mut self,
        version: i64,
        limit: i64,
    ) -> Result<Vec<WaitingLink>, StoreError> {
        on!(self.conn(), c => {
            let lock = if <DB as Dialect>::POSTGRES { " FOR NO KEY UPDATE OF l SKIP LOCKED" } else { "" };
            let sql = format!(
                "SELECT l.seq, e.source, e.event_id, l.outcome, l.household_id, l.member_id, l.evidence,
                        COALESCE(l.decided_at, e.received_at), l.register_version, e.normalised, e.stream, e.position
                 FROM link_decisions l JOIN events e ON e.seq = l.seq
                 WHERE l.outcome <> 'linked' AND l.register_version < $1
                   AND NOT EXISTS (SELECT 1 FROM review_decisions r WHERE r.seq = l.seq)
                 ORDER BY l.seq LIMIT $2{lock}"
            );
            let rows = sqlx::query(&sql)
                .bind(version)
                .bind(limit)
                .all(&mut *c, "claiming records to link again")
                .await?;
            rows.into_iter()
                .map(|r| {
                    let outcome: String = r.get(3);
                    Ok(WaitingLink {
                        seq: r.get(0),
                        source: r.get(1),
                        event_id: r.get(2),
                        outcome: decode_code(&outcome, "link_decisions.outcome")?,
                        household_id: r.get(4),
                        member_id: r.get(5),
                        evidence: r.get(6),
                        decided_at: r.get(7),
                        register_version: r.get(8),
                        event: r.unpacked(9, "events.normalised")?,
                        stream: r.get(10),
                        line: r.get::<i64, _>(11).max(0) as u64,
                    })
                })
                .collect()
        })
    }

    /// The claimed records whose decision stands: mark them decided with register `version`.
    pub async fn keep_links(&mut self, seqs: &[i64], version: i64) -> Result<(), StoreError> {
        update_listed(
            self.conn(),
            "UPDATE link_decisions SET register_version = ",
            version,
            " WHERE seq IN ",
            seqs,
            "marking records decided again",
        )
        .await
    }

    /// Replace a claimed record's decision with `new`, made with register `version`, keeping the
    /// earlier one in `link_history`.
    pub async fn redecide_link(
        &mut self,
        old: &WaitingLink,
        new: &LinkRow,
        version: i64,
    ) -> Result<(), StoreError> {
        let at = now();
        on!(self.conn(), c => {
            // Documents as stored: bytes on SQLite, text on PostgreSQL (see `pack`).
            let (old_evidence, new_evidence) = match new.evidence.packed() {
                Some(p) if !<DB as Dialect>::POSTGRES => (Ok(old.evidence.clone().into_bytes()), Ok(p.as_bytes().to_vec())),
                Some(p) => (Err(old.evidence.clone().into_text()), Err(p.to_text())),
                None => (Err(old.evidence.clone().into_text()), Err(new.evidence.as_str().to_string())),
            };
            let q = sqlx::query(
                "INSERT INTO link_history (seq, outcome, household_id, member_id, evidence, decided_at,
                   register_version, superseded_at, superseded_by_register_version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(old.seq)
            .bind(old.outcome.code())
            .bind(&old.household_id)
            .bind(&old.member_id);
            let q = match old_evidence {
                Ok(bytes) => q.bind(bytes),
                Err(text) => q.bind(text),
            };
            q.bind(&old.decided_at)
            .bind(old.register_version)
            .bind(&at)
            .bind(version)
            .run(&mut *c, "keeping the earlier identity decision")
            .await?;
            let q = sqlx::query(
                "UPDATE link_decisions SET outcome = $1, household_id = $2, member_id = $3, evidence = $4,
                   decided_at = $5, register_version = $6 WHERE seq = $7",
            )
            .bind(new.outcome.code())
            .bind(&new.household_id)
            .bind(&new.member_id);
            let q = match new_evidence {
                Ok(bytes) => q.bind(bytes),
                Err(text) => q.bind(text),
            };
            q.bind(&at)
            .bind(version)
            .bind(old.seq)
            .run(&mut *c, "recording the new identity decision")
            .await?;
            Ok(())
        })
    }

    /// Of these records, those a person has decided since they were claimed (they keep the
    /// person's decision).
    pub async fn reviewed_among(&mut self, seqs: &[i64]) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::new();
        if seqs.is_empty() {
            return Ok(out);
        }
        on!(self.conn(), c => {
            for chunk in seqs.chunks(CHUNK) {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new("SELECT seq FROM review_decisions WHERE seq IN ");
                push_list(&mut qb, chunk.iter().copied());
                let found: Vec<i64> = qb
                    .build_query_scalar()
                    .all(&mut *c, "reading review decisions")
                    .await?;
                out.extend(found);
            }
            Ok(out)
        })
    }
}

/// The households among `ids` as the register held them at `version` (in household id order;
/// those not in the register then are left out): the current record of each household no import
/// changed after `version`, else what the first import after it found (`before`: the record it
/// replaced or removed; none for a household it added or restored). The current records are read
/// before the changes, so an import committing in between is seen among the changes.
async fn households_as_of(
    mut conn: crate::db::Conn<'_>,
    ids: &[String],
    version: i64,
) -> Result<Vec<Household>, StoreError> {
    const CONTEXT: &str = "loading households as of a register version";
    let current: Vec<(String, Stored)> = crate::batch::rows_for_households(
        conn.reborrow(),
        "SELECT household_id, record FROM households WHERE active = 1 AND household_id",
        "ORDER BY household_id",
        ids,
        CONTEXT,
    )
    .await?;
    // `version` is a number: written into the statement, the ids stay bound.
    let changed: Vec<(String, String, Option<Stored>)> = crate::batch::rows_for_households(
        conn,
        &format!(
            "SELECT c.household_id, c.change, h.before FROM register_changes c
             JOIN register_history h ON h.import_id = c.import_id AND h.household_id = c.household_id
             WHERE c.version > {} AND c.household_id",
            version.max(0)
        ),
        "ORDER BY c.seq",
        ids,
        CONTEXT,
    )
    .await?;
    let mut records: std::collections::BTreeMap<String, Option<Stored>> =
        current.into_iter().map(|(id, r)| (id, Some(r))).collect();
    let mut first_change: HashSet<String> = HashSet::new();
    for (id, change, before) in changed {
        if first_change.insert(id.clone()) {
            let held = match change.as_str() {
                "changed" | "removed" => before,
                _ => None,
            };
            records.insert(id, held);
        }
    }
    records
        .into_values()
        .flatten()
        .map(|stored| decode_household_record(&stored.0))
        .collect()
}

/// Household records as stored (any form, see [`decode_household_record`]), decoded.
fn decode_households(records: Vec<Stored>) -> Result<Vec<Household>, StoreError> {
    records
        .iter()
        .map(|stored| decode_household_record(&stored.0))
        .collect()
}

/// A decoding task's result; a panic in it is the caller's panic.
fn joined<T>(r: Result<T, tokio::task::JoinError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            // Only when the runtime shuts down under the load.
            Err(e) => panic!("a register decoding task was cancelled: {e}"),
        },
    }
}
