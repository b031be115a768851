//! The plumbing every query runs on: one value per backend ([`Db`]) for a pool, a transaction or a
//! connection, and [`on!`] to write a query body once for both.
//!
//! ## Writing a query once for both backends
//! `on!(value, x => body)` expands `body` once per backend, with `x` the inner pool / transaction /
//! connection and `DB` the backend type; rows decode the same way in both (`r.get(i)`, or
//! `r.col(i)` through [`Col`] in a helper written once). To port a SQLite-style method
//! mechanically:
//! 1. use `$1, $2, …` placeholders (SQLite accepts them) and portable SQL (`ON CONFLICT`,
//!    `RETURNING`, `COALESCE`, `CASE`); bind integers as `i64`, never `bool`;
//! 2. wrap the method body in `on!(self.pool(), pool => { … })` and use `pool` where
//!    `self.pool()` was; a transaction is `begin(pool, "starting …")`; pass a
//!    transaction to a helper as `Db::from(&mut *tx)` (a [`Conn`]);
//! 3. run a query with what it was doing: `.all(pool, "reading x").await?` ([`Fetch`]: `all`,
//!    `one`, `optional`; [`Run`]: `run` for `execute`); a row whose columns are a struct's fields
//!    is `sqlx::query_as` into a `#[derive(sqlx::FromRow)]` struct;
//! 4. `QueryBuilder<DB>` for dynamic SQL (an `IN` list with [`push_list`], an update of listed rows
//!    with `crate::bulk::update_listed`); where SQL genuinely differs, choose the text with
//!    `if <DB as Dialect>::POSTGRES { … } else { … }`, or match on the [`Db`] and write both arms;
//!    a bulk insert is a table description in [`crate::bulk`], never two hand-written statements;
//! 5. add the table to `migrations/postgres` under the same number as in `migrations/sqlite`.
//!
//! rustfmt leaves the bodies inside `on!(…)` as they are: keep them formatted by hand. Every
//! method is covered by `tests/conformance.rs`, run against both backends.

use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{
    Database, Executor, FromRow, IntoArguments, PgConnection, PgPool, Postgres, QueryBuilder, Row,
    Sqlite, SqliteConnection, SqlitePool, Transaction,
};

use crate::error::{Ctx, StoreError};

/// One thing per backend: a pool, a transaction, a connection. [`on!`] opens it.
#[derive(Clone, Debug)]
pub(crate) enum Db<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// The connection pool of either backend.
pub(crate) type Pool = Db<SqlitePool, PgPool>;
/// A write transaction of either backend (see [`Pool::begin_write`]).
pub(crate) type Tx = Db<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>;
/// A connection of either backend (borrowed from a transaction or a pool).
pub(crate) type Conn<'a> = Db<&'a mut SqliteConnection, &'a mut PgConnection>;

/// Write a query body once and run it on whichever backend `$value` holds: `on!(value, x => body)`
/// expands `body` once per backend with `x` bound to the inner pool / transaction / connection and
/// `DB` a type alias for the backend (`sqlx::Sqlite` or `sqlx::Postgres`), for `QueryBuilder::<DB>`
/// and [`Dialect`]. Each expansion is type-checked against its backend, so a query written once
/// must be portable SQL (`$1` placeholders, `ON CONFLICT`, `RETURNING`, `COALESCE`); where the SQL
/// genuinely differs, match on the [`Db`] value instead and write both arms.
macro_rules! on {
    ($value:expr, $x:ident => $body:expr) => {
        match $value {
            $crate::db::Db::Sqlite($x) => {
                #[allow(dead_code, clippy::upper_case_acronyms)]
                type DB = ::sqlx::Sqlite;
                $body
            }
            $crate::db::Db::Postgres($x) => {
                #[allow(dead_code, clippy::upper_case_acronyms)]
                type DB = ::sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on;

/// What a query body expanded by [`on!`] may need to know of its backend.
pub(crate) trait Dialect {
    /// PostgreSQL (else SQLite).
    const POSTGRES: bool;
    /// How a transaction that writes begins (see [`begin`]):
    /// `BEGIN IMMEDIATE` on SQLite (the write lock first, see the crate docs), `BEGIN` (read
    /// committed) on PostgreSQL.
    const BEGIN: &'static str;
    /// Bind a packed document in a row of a multi-row statement as this backend stores it: bytes
    /// on SQLite, the text form on PostgreSQL (see `pack`).
    fn push_packed<'args>(
        b: &mut sqlx::query_builder::Separated<'_, 'args, Self, &'static str>,
        packed: &'args crate::pack::Packed,
    ) where
        Self: Database;
}

impl Dialect for Sqlite {
    const POSTGRES: bool = false;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    fn push_packed<'args>(
        b: &mut sqlx::query_builder::Separated<'_, 'args, Self, &'static str>,
        packed: &'args crate::pack::Packed,
    ) {
        b.push_bind(packed.as_bytes());
    }
}

impl Dialect for Postgres {
    const POSTGRES: bool = true;
    const BEGIN: &'static str = "BEGIN";
    fn push_packed<'args>(
        b: &mut sqlx::query_builder::Separated<'_, 'args, Self, &'static str>,
        packed: &'args crate::pack::Packed,
    ) {
        b.push_bind(packed.to_text());
    }
}

/// Decode a column the same way on either backend's row: lets row-mapping helpers be written once
/// (`fn view(r: &impl Col) -> View`).
pub(crate) trait Col {
    fn col<T>(&self, i: usize) -> T
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>;
}

/// [`Col`] for a backend's row type: `r.get(i)`.
macro_rules! col_by_get {
    ($($row:ty),*) => {$(
        impl Col for $row {
            fn col<T>(&self, i: usize) -> T
            where
                T: for<'r> sqlx::Decode<'r, Sqlite>
                    + sqlx::Type<Sqlite>
                    + for<'r> sqlx::Decode<'r, Postgres>
                    + sqlx::Type<Postgres>,
            {
                self.get(i)
            }
        }
    )*};
}

col_by_get!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

/// Start a transaction that writes on one backend's pool (`<DB as Dialect>::BEGIN`): inside an
/// [`on!`] body, `let mut tx = begin(pool, "starting …").await?;`.
pub(crate) async fn begin<DB: Database + Dialect>(
    pool: &sqlx::Pool<DB>,
    context: &'static str,
) -> Result<Transaction<'static, DB>, StoreError> {
    pool.begin_with(DB::BEGIN).await.ctx(context)
}

/// Push `(v1, v2, …)`, each value bound: the list of an `IN`.
pub(crate) fn push_list<'a, DB: Database, T>(
    qb: &mut QueryBuilder<'a, DB>,
    values: impl IntoIterator<Item = T>,
) where
    T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push("(");
    let mut sep = qb.separated(", ");
    for v in values {
        sep.push_bind(v);
    }
    qb.push(")");
}

/// Run a statement and say in its error what it was doing: `.all(pool, "reading x").await?` is
/// `.fetch_all(pool).await.ctx("reading x")?` (likewise [`Fetch::one`], [`Fetch::optional`], and
/// [`Run::run`] for `execute`): the one way a query here turns a database error into
/// [`StoreError::Db`], for `sqlx::query`, `query_as` and `query_scalar` alike. `E` is the executor
/// (a pool or a connection).
pub(crate) trait Fetch<'e, 'c: 'e, DB: Database, E: 'e + Executor<'c, Database = DB>>:
    Sized + 'e
{
    /// What one row becomes.
    type Out;

    async fn all(self, e: E, context: &'static str) -> Result<Vec<Self::Out>, StoreError>;

    async fn one(self, e: E, context: &'static str) -> Result<Self::Out, StoreError>;

    async fn optional(self, e: E, context: &'static str) -> Result<Option<Self::Out>, StoreError>;
}

/// [`Fetch`] for the three kinds of query (their `fetch_*` methods have the same names).
macro_rules! fetch_by_ctx {
    ([$($g:ident),*] $ty:ty, $out:ty, [$($bounds:tt)*]) => {
        impl<'q: 'e, 'e, 'c: 'e, DB, A, E, $($g),*> Fetch<'e, 'c, DB, E> for $ty
        where
            DB: Database,
            A: 'q + 'e + Send + IntoArguments<'q, DB>,
            E: 'e + Executor<'c, Database = DB>,
            $($bounds)*
        {
            type Out = $out;

            async fn all(self, e: E, context: &'static str) -> Result<Vec<$out>, StoreError> {
                self.fetch_all(e).await.ctx(context)
            }

            async fn one(self, e: E, context: &'static str) -> Result<$out, StoreError> {
                self.fetch_one(e).await.ctx(context)
            }

            async fn optional(self, e: E, context: &'static str) -> Result<Option<$out>, StoreError> {
                self.fetch_optional(e).await.ctx(context)
            }
        }
    };
}

fetch_by_ctx!([] Query<'q, DB, A>, DB::Row, []);
fetch_by_ctx!([O] QueryAs<'q, DB, O, A>, O, [O: 'e + Send + Unpin + for<'r> FromRow<'r, DB::Row>,]);
fetch_by_ctx!(
    [O] QueryScalar<'q, DB, O, A>,
    O,
    [O: 'e + Send + Unpin, (O,): Send + Unpin + for<'r> FromRow<'r, DB::Row>,]
);

/// `sqlx::query`, which also runs statements.
pub(crate) trait Run<'e, 'c: 'e, DB: Database, E: 'e + Executor<'c, Database = DB>>:
    Sized + 'e
{
    /// `execute`, its error saying what it was doing; the backend's result (rows affected).
    async fn run(self, e: E, context: &'static str) -> Result<DB::QueryResult, StoreError>;
}

impl<'q: 'e, 'e, 'c: 'e, DB, A, E> Run<'e, 'c, DB, E> for Query<'q, DB, A>
where
    DB: Database,
    A: 'q + 'e + Send + IntoArguments<'q, DB>,
    E: 'e + Executor<'c, Database = DB>,
{
    async fn run(self, e: E, context: &'static str) -> Result<DB::QueryResult, StoreError> {
        self.execute(e).await.ctx(context)
    }
}

impl Pool {
    /// Start a transaction that writes (`<DB as Dialect>::BEGIN`).
    pub(crate) async fn begin_write(&self, context: &'static str) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite(p) => Db::Sqlite(begin(p, context).await?),
            Db::Postgres(p) => Db::Postgres(begin(p, context).await?),
        })
    }
}

impl Tx {
    /// The transaction's connection.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Db::Sqlite(tx) => Db::Sqlite(&mut **tx),
            Db::Postgres(tx) => Db::Postgres(&mut **tx),
        }
    }

    pub(crate) async fn commit(self, context: &'static str) -> Result<(), StoreError> {
        on!(self, tx => tx.commit().await.ctx(context))
    }
}

impl<'a> From<&'a mut SqliteConnection> for Conn<'a> {
    fn from(c: &'a mut SqliteConnection) -> Self {
        Db::Sqlite(c)
    }
}

impl<'a> From<&'a mut PgConnection> for Conn<'a> {
    fn from(c: &'a mut PgConnection) -> Self {
        Db::Postgres(c)
    }
}

impl Conn<'_> {
    /// The same connection, borrowed again (to pass to a helper and go on using it).
    pub(crate) fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Db::Sqlite(c) => Db::Sqlite(&mut **c),
            Db::Postgres(c) => Db::Postgres(&mut **c),
        }
    }
}
