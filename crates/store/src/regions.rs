//! Region names (issue 20): what a region code is called, so that pages, notices and reports say
//! 东河口镇大塘村, not 341502102003.
//!
//! Each code (6 digits a county, 9 a township, 12 a village) has its own name: 金安区, 东河口镇,
//! 大塘村. What people read for a village is its township's name and its own
//! ([`display_name`]: 东河口镇大塘村); for a township or a county, its own name. A code without a
//! stored name has no display name: callers show the code.
//!
//! Imported from a file (`doudi regions import`): an import adds new codes and renames known ones
//! in one transaction, never deletes (codes are stable; a region that stops being used keeps its
//! name for the history that mentions it).

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use sqlx::{QueryBuilder, Row};

use crate::bulk::{text, OnConflict, Table, CHUNK};
use crate::db::{begin, on, push_list, Db, Fetch};
use crate::error::{Ctx, StoreError};
use crate::open::Store;
use crate::time::now;

/// One region and its own name (not the joined display name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RegionName {
    /// 6 (county), 9 (township) or 12 (village) digits.
    pub code: String,
    /// The region's own name: `金安区`, `东河口镇`, `大塘村`.
    pub name: String,
}

/// What a region-name import changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RegionImport {
    /// Codes not named before.
    pub added: u64,
    /// Codes whose name changed.
    pub renamed: u64,
    pub unchanged: u64,
}

const REGION_NAMES: Table<RegionName> = Table {
    name: "region_names",
    doing: "writing region names",
    columns: &[text!("code", r => &r.code), text!("name", r => &r.name)],
    stamp: Some("updated_at"),
    on_conflict: Some(OnConflict {
        key: &["code"],
        then: "DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
    }),
};

/// The codes whose own names make up the display names of `codes`: each code, and for a village
/// its township.
fn wanted(codes: &[String]) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    for c in codes {
        out.insert(c.as_str());
        if let (12, Some(township)) = (c.len(), c.get(..9)) {
            out.insert(township);
        }
    }
    out
}

/// What people read for `code`, given the regions' own names (`own`): a village (12 digits) is its
/// township's name followed by its own (`东河口镇` + `大塘村`; its own alone when the township has
/// no name); a township or a county is its own name. `None` when `code` has no name of its own.
pub fn display_name<'a>(code: &str, own: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let name = own(code)?;
    if code.len() == 12 {
        if let Some(township) = code.get(..9).and_then(&own) {
            return Some(format!("{township}{name}"));
        }
    }
    Some(name.to_string())
}

impl Store {
    /// Store `regions` (codes unique, names non-empty: the caller checks), adding new codes and
    /// renaming known ones, in one transaction with an audit record naming `file`.
    pub async fn import_region_names(
        &self,
        regions: &[RegionName],
        file: &str,
    ) -> Result<RegionImport, StoreError> {
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting a region-name import").await?;
            let before: HashMap<String, String> =
                sqlx::query("SELECT code, name FROM region_names")
                    .all(&mut *tx, "reading region names")
                    .await?
                    .into_iter()
                    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
                    .collect();
            let mut report = RegionImport::default();
            let mut writes = Vec::new();
            for r in regions {
                match before.get(&r.code) {
                    Some(name) if *name == r.name => report.unchanged += 1,
                    Some(_) => {
                        report.renamed += 1;
                        writes.push(r.clone());
                    }
                    None => {
                        report.added += 1;
                        writes.push(r.clone());
                    }
                }
            }
            REGION_NAMES.insert(Db::from(&mut *tx), &writes, &now()).await?;
            crate::audit::append(
                Db::from(&mut *tx),
                "doudi",
                "region_names_imported",
                "region_names",
                &serde_json::json!({"file": file, "added": report.added,
                    "renamed": report.renamed, "unchanged": report.unchanged}),
            )
            .await?;
            tx.commit().await.ctx("committing a region-name import")?;
            Ok(report)
        })
    }

    /// The display names of `codes` (see [`display_name`]): code → `东河口镇大塘村`. Codes without a
    /// name of their own are absent (show the code).
    pub async fn region_names(
        &self,
        codes: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let wanted: Vec<&str> = wanted(codes).into_iter().collect();
        let mut own: HashMap<String, String> = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(CHUNK) {
            on!(self.pool(), pool => {
                let mut qb: QueryBuilder<DB> =
                    QueryBuilder::new("SELECT code, name FROM region_names WHERE code IN ");
                push_list(&mut qb, chunk.iter().copied());
                for r in qb.build().all(pool, "reading region names").await? {
                    own.insert(r.get(0), r.get(1));
                }
            });
        }
        Ok(codes
            .iter()
            .filter_map(|c| {
                display_name(c, |k| own.get(k).map(String::as_str)).map(|n| (c.clone(), n))
            })
            .collect())
    }

    /// Every named region under `prefix` (`""`: all), in code order, with its own name.
    pub async fn list_region_names(&self, prefix: &str) -> Result<Vec<RegionName>, StoreError> {
        // A table of thousands of rows at most (one a village): filtered here, the same on both
        // backends.
        on!(self.pool(), pool => {
            let all: Vec<RegionName> = sqlx::query_as("SELECT code, name FROM region_names ORDER BY code")
                .all(pool, "listing region names")
                .await?;
            Ok(all.into_iter().filter(|r| r.code.starts_with(prefix)).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_village_reads_as_its_township_and_its_own_name() {
        let own: HashMap<&str, &str> = [
            ("341502", "金安区"),
            ("341502102", "东河口镇"),
            ("341502102003", "大塘村"),
            ("341502103001", "桥头村"),
        ]
        .into_iter()
        .collect();
        let name = |c: &str| display_name(c, |k| own.get(k).copied());
        assert_eq!(name("341502102003").as_deref(), Some("东河口镇大塘村"));
        assert_eq!(name("341502102").as_deref(), Some("东河口镇"));
        assert_eq!(name("341502").as_deref(), Some("金安区"));
        assert_eq!(
            name("341502103001").as_deref(),
            Some("桥头村"),
            "township unnamed: the village alone"
        );
        assert_eq!(name("341502102009"), None, "no name of its own: the code");
    }

    #[test]
    fn a_village_also_needs_its_townships_name() {
        let codes = vec!["341502102003".to_string(), "341502".to_string()];
        assert_eq!(
            wanted(&codes).into_iter().collect::<Vec<_>>(),
            ["341502", "341502102", "341502102003"]
        );
    }
}
