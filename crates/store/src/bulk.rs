//! Bulk writes, each table described once: its columns, how each takes its value from a row (which
//! fixes its PostgreSQL array type), the column stamped with the batch's time, and what a row
//! whose unique key is taken already does. Both backends' statements are made from the
//! description:
//! - SQLite: multi-row `INSERT OR FAIL … VALUES (…), (…)`, [`CHUNK`] rows a statement (no statement
//!   journal: see [`Table::insert`]);
//! - PostgreSQL: one `INSERT … SELECT … FROM UNNEST($1::text[], …)` a batch, arrays not rows of
//!   parameters, rows in key order (then batch order) where the table has a unique key, so two
//!   workers inserting overlapping rows wait for each other in one direction only.

use std::borrow::Cow;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::db::{on, push_list, Conn, Db, Fetch, Run};
use crate::error::StoreError;
use crate::pack::Packed;

/// Rows per multi-row statement on SQLite (well under its 32,766 bound parameters).
pub(crate) const CHUNK: usize = 500;

/// A column of text borrowed from the row.
macro_rules! text {
    ($name:literal, $r:ident => $e:expr) => {
        $crate::bulk::Column {
            name: $name,
            bind: $crate::bulk::Bind::Text(|$r| ::std::borrow::Cow::Borrowed($e)),
        }
    };
}

/// A column of text or NULL borrowed from the row.
macro_rules! maybe_text {
    ($name:literal, $r:ident => $e:expr) => {
        $crate::bulk::Column {
            name: $name,
            bind: $crate::bulk::Bind::MaybeText(|$r| $e.map(::std::borrow::Cow::Borrowed)),
        }
    };
}

/// A column of integers.
macro_rules! int {
    ($name:literal, $r:ident => $e:expr) => {
        $crate::bulk::Column {
            name: $name,
            bind: $crate::bulk::Bind::Int(|$r| $e),
        }
    };
}

/// A column of bytes borrowed from the row.
macro_rules! bytes {
    ($name:literal, $r:ident => $e:expr) => {
        $crate::bulk::Column {
            name: $name,
            bind: $crate::bulk::Bind::Bytes(|$r| $e),
        }
    };
}

pub(crate) use {bytes, int, maybe_text, text};

/// How a column takes its value from a row; the variant is the column's type.
pub(crate) enum Bind<R> {
    /// TEXT (`text[]` on PostgreSQL).
    Text(for<'a> fn(&'a R) -> Cow<'a, str>),
    /// TEXT or NULL.
    MaybeText(for<'a> fn(&'a R) -> Option<Cow<'a, str>>),
    /// INTEGER / BIGINT (`bigint[]`).
    Int(fn(&R) -> i64),
    /// BLOB / BYTEA (`bytea[]`).
    Bytes(for<'a> fn(&'a R) -> &'a [u8]),
    /// A packed document or NULL (see [`crate::pack`]): its bytes on SQLite (a BLOB in a TEXT
    /// column), its text form on PostgreSQL (`text[]`).
    Packed(for<'a> fn(&'a R) -> Option<Cow<'a, Packed>>),
}

impl<R> Bind<R> {
    fn pg_array(&self) -> &'static str {
        match self {
            Bind::Text(_) | Bind::MaybeText(_) | Bind::Packed(_) => "text[]",
            Bind::Int(_) => "bigint[]",
            Bind::Bytes(_) => "bytea[]",
        }
    }
}

/// One column of a [`Table`].
pub(crate) struct Column<R> {
    pub name: &'static str,
    pub bind: Bind<R>,
}

/// A unique key and what a row that repeats it does (`DO NOTHING`, `DO UPDATE SET … WHERE …`).
pub(crate) struct OnConflict {
    pub key: &'static [&'static str],
    pub then: &'static str,
}

/// A table as bulk writes fill it.
pub(crate) struct Table<R: 'static> {
    pub name: &'static str,
    /// What a write is doing, for errors ("inserting events").
    pub doing: &'static str,
    pub columns: &'static [Column<R>],
    /// The column that takes the batch's time, if any.
    pub stamp: Option<&'static str>,
    pub on_conflict: Option<OnConflict>,
}

impl<R> Table<R> {
    /// Write `rows` (with `stamp`, the batch's time, in the stamp column); returns how many rows
    /// were written (not those a conflict left out).
    ///
    /// On SQLite `INSERT OR FAIL`: a broken constraint ends the statement where it is instead of
    /// undoing its rows (the default, ABORT), so SQLite keeps no statement journal (a copy of every
    /// page a statement changes, taken before it changes it: a third of the inserts' cost). The
    /// error still ends the write, and the transaction around it is rolled back whole, as every
    /// caller's is on an error. The table's own conflict clause (its unique key) is unchanged.
    pub(crate) async fn insert(
        &self,
        conn: Conn<'_>,
        rows: &[R],
        stamp: &str,
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        match conn {
            Db::Sqlite(c) => {
                let mut written = 0;
                for chunk in rows.chunks(CHUNK) {
                    let mut qb: QueryBuilder<sqlx::Sqlite> =
                        QueryBuilder::new(format!("{} ", self.head("INSERT OR FAIL", None)));
                    qb.push_values(chunk, |mut b, r| {
                        for c in self.columns {
                            match &c.bind {
                                Bind::Text(f) => b.push_bind(f(r)),
                                Bind::MaybeText(f) => b.push_bind(f(r)),
                                Bind::Int(f) => b.push_bind(f(r)),
                                Bind::Bytes(f) => b.push_bind(f(r)),
                                Bind::Packed(f) => match f(r) {
                                    Some(Cow::Borrowed(p)) => b.push_bind(Some(p.as_bytes())),
                                    Some(Cow::Owned(p)) => b.push_bind(Some(p.into_bytes())),
                                    None => b.push_bind(None::<Vec<u8>>),
                                },
                            };
                        }
                        if self.stamp.is_some() {
                            b.push_bind(stamp);
                        }
                    });
                    qb.push(self.conflict_clause());
                    written += qb.build().run(&mut *c, self.doing).await?.rows_affected();
                }
                Ok(written)
            }
            Db::Postgres(c) => {
                let sql = self.unnest_sql(None);
                Ok(self
                    .bind_arrays(&sql, rows, stamp, None)
                    .run(&mut *c, self.doing)
                    .await?
                    .rows_affected())
            }
        }
    }

    /// PostgreSQL: write `rows` with the numbers drawn for them (`seqs[i]` for `rows[i]`) in
    /// column `numbered`; returns the numbers of the rows written (not those a conflict left out).
    pub(crate) async fn insert_numbered(
        &self,
        c: &mut PgConnection,
        rows: &[R],
        stamp: &str,
        numbered: &str,
        seqs: &[i64],
    ) -> Result<Vec<i64>, StoreError> {
        let sql = format!("{} RETURNING {numbered}", self.unnest_sql(Some(numbered)));
        let rows = self
            .bind_arrays(&sql, rows, stamp, Some(seqs))
            .all(&mut *c, self.doing)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The PostgreSQL statement with its arrays bound (see [`Table::unnest_sql`]).
    fn bind_arrays<'q>(
        &self,
        sql: &'q str,
        rows: &'q [R],
        stamp: &'q str,
        seqs: Option<&'q [i64]>,
    ) -> Query<'q, Postgres, PgArguments> {
        let mut q = sqlx::query(sql);
        for c in self.columns {
            q = match &c.bind {
                Bind::Text(f) => q.bind(rows.iter().map(*f).collect::<Vec<_>>()),
                Bind::MaybeText(f) => q.bind(rows.iter().map(*f).collect::<Vec<_>>()),
                Bind::Int(f) => q.bind(rows.iter().map(*f).collect::<Vec<_>>()),
                Bind::Bytes(f) => q.bind(rows.iter().map(*f).collect::<Vec<_>>()),
                Bind::Packed(f) => q.bind(
                    rows.iter()
                        .map(|r| f(r).map(|p| p.to_text()))
                        .collect::<Vec<_>>(),
                ),
            };
        }
        if self.stamp.is_some() {
            q = q.bind(stamp);
        }
        if let Some(seqs) = seqs {
            q = q.bind(seqs);
        }
        q
    }

    /// `{insert} INTO table (columns…[, stamp][, numbered])`, `insert` the verb (`INSERT`,
    /// SQLite's `INSERT OR FAIL`).
    fn head(&self, insert: &str, numbered: Option<&str>) -> String {
        let names = self.columns.iter().map(|c| c.name);
        let names: Vec<&str> = names.chain(self.stamp).chain(numbered).collect();
        format!("{insert} INTO {} ({})", self.name, names.join(", "))
    }

    fn conflict_clause(&self) -> String {
        match &self.on_conflict {
            Some(c) => format!(" ON CONFLICT ({}) {}", c.key.join(", "), c.then),
            None => String::new(),
        }
    }

    /// The PostgreSQL statement: `$1…$n` the columns' arrays, then the stamp (if the table has
    /// one), then the numbers drawn (if `numbered`).
    fn unnest_sql(&self, numbered: Option<&str>) -> String {
        let n = self.columns.len();
        let mut select: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("u.{}", c.name))
            .collect();
        let mut arrays: Vec<String> = (self.columns.iter().enumerate())
            .map(|(i, c)| format!("${}::{}", i + 1, c.bind.pg_array()))
            .collect();
        let mut alias: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        let mut next = n + 1;
        if self.stamp.is_some() {
            select.push(format!("${next}"));
            next += 1;
        }
        if let Some(seq) = numbered {
            select.push(format!("u.{seq}"));
            arrays.push(format!("${next}::bigint[]"));
            alias.push(seq);
        }
        let order = match &self.on_conflict {
            Some(c) => {
                let keys = c.key.iter().copied().chain(numbered);
                let keys: Vec<String> = keys.map(|k| format!("u.{k}")).collect();
                format!(" ORDER BY {}", keys.join(", "))
            }
            None => String::new(),
        };
        format!(
            "{} SELECT {} FROM UNNEST({}) AS u({}){order}{}",
            self.head("INSERT", numbered),
            select.join(", "),
            arrays.join(", "),
            alias.join(", "),
            self.conflict_clause()
        )
    }
}

/// `{set}$value{list}(id, …)` for every [`CHUNK`] of `ids`: the listed rows set to one value
/// (`set` ends in `= `, `list` in `IN `). Nothing for no ids.
pub(crate) async fn update_listed<V>(
    conn: Conn<'_>,
    set: &str,
    value: V,
    list: &str,
    ids: &[i64],
    context: &'static str,
) -> Result<(), StoreError>
where
    V: Clone
        + Send
        + for<'q> sqlx::Encode<'q, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'q> sqlx::Encode<'q, Postgres>
        + sqlx::Type<Postgres>,
{
    on!(conn, c => {
        for chunk in ids.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(set);
            qb.push_bind(value.clone());
            qb.push(list);
            push_list(&mut qb, chunk.iter().copied());
            qb.build().run(&mut *c, context).await?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row2 {
        k: String,
        n: i64,
        note: Option<String>,
    }

    const T: Table<Row2> = Table {
        name: "t",
        doing: "testing",
        columns: &[
            text!("k", r => &r.k),
            int!("n", r => r.n),
            maybe_text!("note", r => r.note.as_deref()),
        ],
        stamp: Some("at"),
        on_conflict: Some(OnConflict {
            key: &["k"],
            then: "DO NOTHING",
        }),
    };

    #[test]
    fn a_table_description_makes_both_backends_statements() {
        assert_eq!(T.head("INSERT", None), "INSERT INTO t (k, n, note, at)");
        assert_eq!(
            T.head("INSERT OR FAIL", None),
            "INSERT OR FAIL INTO t (k, n, note, at)"
        );
        assert_eq!(T.conflict_clause(), " ON CONFLICT (k) DO NOTHING");
        assert_eq!(
            T.unnest_sql(None),
            "INSERT INTO t (k, n, note, at) SELECT u.k, u.n, u.note, $4 \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[]) AS u(k, n, note) \
             ORDER BY u.k ON CONFLICT (k) DO NOTHING"
        );
        assert_eq!(
            T.unnest_sql(Some("seq")),
            "INSERT INTO t (k, n, note, at, seq) SELECT u.k, u.n, u.note, $4, u.seq \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $5::bigint[]) AS u(k, n, note, seq) \
             ORDER BY u.k, u.seq ON CONFLICT (k) DO NOTHING"
        );
        let r = Row2 {
            k: "a".into(),
            n: 7,
            note: None,
        };
        match (&T.columns[1].bind, &T.columns[2].bind) {
            (Bind::Int(n), Bind::MaybeText(note)) => assert_eq!((n(&r), note(&r)), (7, None)),
            _ => panic!("the columns' binds are of their declared kinds"),
        }
    }
}
