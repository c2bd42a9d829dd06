//! The thin layer that lets every query be written once for both backends.
//!
//! SQLite accepts PostgreSQL's `$1` placeholders, and the two schemas use the same column
//! names and compatible types (TEXT, 64-bit integers, doubles), so almost every statement
//! is one SQL string. What differs is only the Rust type of the pool, the transaction and
//! the row. Rather than a generic `Database` bound on every function, this module hides
//! those behind three small enums ([`Db`], [`Tx`], [`DbRow`]) and a statement value
//! ([`Sql`]) that carries its arguments and a description used in error messages.
//! Queries elsewhere in the crate never mention a backend unless the SQL itself must
//! differ (full-text search).

use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnection, SqliteRow};
use sqlx::{Decode, Encode, Row, Transaction, Type};

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::StoreError;
use crate::slot::{Readers, Slot, SlotTx};

/// One bound argument. The store only ever stores text, 64-bit integers and doubles.
#[derive(Debug)]
enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
}

/// A statement with its arguments, in placeholder order, and what it is for.
#[derive(Debug)]
pub(crate) struct Sql {
    context: &'static str,
    text: Cow<'static, str>,
    args: Vec<Arg>,
}

impl Sql {
    /// `context` finishes the sentence "database error while trying to …".
    pub(crate) fn new(context: &'static str, text: &'static str) -> Sql {
        Sql {
            context,
            text: Cow::Borrowed(text),
            args: Vec::new(),
        }
    }

    /// A statement whose text is built at run time (a number of rows known only then). Each
    /// distinct text is prepared and cached per connection, so keep the number of shapes small.
    pub(crate) fn built(context: &'static str, text: String) -> Sql {
        Sql {
            context,
            text: Cow::Owned(text),
            args: Vec::new(),
        }
    }

    pub(crate) fn text(mut self, value: impl Into<String>) -> Sql {
        self.args.push(Arg::Text(Some(value.into())));
        self
    }

    pub(crate) fn opt_text(mut self, value: Option<impl Into<String>>) -> Sql {
        self.args.push(Arg::Text(value.map(Into::into)));
        self
    }

    pub(crate) fn int(mut self, value: i64) -> Sql {
        self.args.push(Arg::Int(Some(value)));
        self
    }

    pub(crate) fn opt_int(mut self, value: Option<i64>) -> Sql {
        self.args.push(Arg::Int(value));
        self
    }

    pub(crate) fn opt_real(mut self, value: Option<f64>) -> Sql {
        self.args.push(Arg::Real(value));
        self
    }

    fn query<DB>(&self) -> sqlx::query::Query<'_, DB, <DB as sqlx::Database>::Arguments<'_>>
    where
        DB: sqlx::Database,
        for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<f64>: Encode<'q, DB> + Type<DB>,
    {
        let mut query = sqlx::query(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Text(value) => query.bind(value.as_deref()),
                Arg::Int(value) => query.bind(*value),
                Arg::Real(value) => query.bind(*value),
            };
        }
        query
    }

    /// Whether the statement only reads (a `SELECT` that is not `SELECT … FOR UPDATE`).
    fn is_read(&self) -> bool {
        let text = self.text.trim_start();
        text.get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("select"))
    }

    fn error(&self) -> impl FnOnce(sqlx::Error) -> StoreError + use<> {
        let context = self.context;
        move |source| query_error(context, source)
    }
}

/// When a storage-level failure (I/O error, read-only or full disk, lost connection) was last
/// seen, in ms since the Unix epoch; 0 for never.
static LAST_STORAGE_FAILURE_MS: AtomicI64 = AtomicI64::new(0);

/// The error for a failed statement, noting storage-level failures so that connections which
/// lived through one are recycled ([`lived_through_a_storage_failure`]): SQLite latches some
/// errors (a failed WAL write leaves a connection "read-only") until the connection is reopened.
pub(crate) fn query_error(context: &'static str, source: sqlx::Error) -> StoreError {
    if is_storage_failure(&source) {
        LAST_STORAGE_FAILURE_MS.store(crate::ids::now_ms(), Ordering::Relaxed);
    }
    StoreError::Query { context, source }
}

fn is_storage_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            // SQLite's primary result codes: IOERR, READONLY, FULL, CORRUPT, CANTOPEN.
            let code = db.code().and_then(|c| c.parse::<i32>().ok());
            code.is_some_and(|c| matches!(c & 0xff, 8 | 10 | 11 | 13 | 14))
        }
        _ => false,
    }
}

/// Whether a pooled connection of this age was open when a storage failure happened.
pub(crate) fn lived_through_a_storage_failure(age: std::time::Duration) -> bool {
    let last = LAST_STORAGE_FAILURE_MS.load(Ordering::Relaxed);
    if last == 0 {
        return false;
    }
    let since = crate::ids::now_ms().saturating_sub(last).max(0) as u128;
    age.as_millis() >= since
}

/// A connection pool of either backend. Cloning shares the pool.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePools),
    Postgres(PgPool),
}

/// SQLite's connections: one that writes, and a few read-only ones for reads outside a write.
///
/// SQLite has one writer at a time. Writers on several connections wait for each other by
/// sleeping and retrying (`busy_timeout`), and every write makes the other connections drop their
/// page cache at their next read — spread over eight pooled connections, that cost a chat reply
/// more CPU than anything else it did. One writing connection keeps its cache and queues writers
/// in order (see [`Slot`]); the readers still run beside it (WAL).
#[derive(Clone, Debug)]
pub(crate) struct SqlitePools {
    pub(crate) write: Slot,
    /// `None` for an in-memory database, which lives in its one connection: reads go to the
    /// writer too.
    pub(crate) read: Option<Readers>,
}

impl SqlitePools {
    pub(crate) async fn close(&self) {
        self.write.close().await;
        if let Some(read) = &self.read {
            read.close().await;
        }
    }
}

/// Runs `$run` with `$exec` bound to where `$sql` goes on SQLite, held for the statement: a
/// reader for a read, else the writing connection.
macro_rules! on_sqlite {
    ($pools:expr, $sql:expr, |$exec:ident| $run:expr) => {{
        let mut held = match (&$pools.read, $sql.is_read()) {
            (Some(readers), true) => readers.hold().await,
            _ => $pools.write.hold().await,
        }
        .map_err($sql.error())?;
        let $exec = held.conn();
        $run
    }};
}

impl Db {
    pub(crate) async fn fetch_all(&self, sql: Sql) -> Result<Vec<DbRow>, StoreError> {
        match self {
            Db::Sqlite(pools) => on_sqlite!(pools, sql, |exec| Ok(sql
                .query::<Sqlite>()
                .fetch_all(exec)
                .await
                .map_err(sql.error())?
                .into_iter()
                .map(DbRow::Sqlite)
                .collect())),
            Db::Postgres(pool) => Ok(sql
                .query::<Postgres>()
                .fetch_all(pool)
                .await
                .map_err(sql.error())?
                .into_iter()
                .map(DbRow::Postgres)
                .collect()),
        }
    }

    pub(crate) async fn fetch_optional(&self, sql: Sql) -> Result<Option<DbRow>, StoreError> {
        match self {
            Db::Sqlite(pools) => on_sqlite!(pools, sql, |exec| Ok(sql
                .query::<Sqlite>()
                .fetch_optional(exec)
                .await
                .map_err(sql.error())?
                .map(DbRow::Sqlite))),
            Db::Postgres(pool) => Ok(sql
                .query::<Postgres>()
                .fetch_optional(pool)
                .await
                .map_err(sql.error())?
                .map(DbRow::Postgres)),
        }
    }

    /// Runs a statement and returns the number of rows it changed.
    pub(crate) async fn execute(&self, sql: Sql) -> Result<u64, StoreError> {
        let result = match self {
            Db::Sqlite(pools) => {
                let mut held = pools.write.hold().await.map_err(sql.error())?;
                sql.query::<Sqlite>()
                    .execute(held.conn())
                    .await
                    .map(|done| done.rows_affected())
            }
            Db::Postgres(pool) => sql
                .query::<Postgres>()
                .execute(pool)
                .await
                .map(|done| done.rows_affected()),
        };
        result.map_err(sql.error())
    }

    /// Starts a write transaction.
    ///
    /// On SQLite this is `BEGIN IMMEDIATE`: a deferred transaction that reads first and
    /// writes later can fail with SQLITE_BUSY at the write *without* waiting for the busy
    /// timeout (upgrading a read lock would deadlock). Taking the write lock up front
    /// makes concurrent writers queue on `busy_timeout` instead of failing.
    pub(crate) async fn begin(&self, context: &'static str) -> Result<Tx, StoreError> {
        let error = move |source| query_error(context, source);
        match self {
            Db::Sqlite(pools) => Ok(Tx::Sqlite(
                pools.write.begin("BEGIN IMMEDIATE").await.map_err(error)?,
            )),
            Db::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await.map_err(error)?)),
        }
    }
}

/// An open transaction of either backend. Dropping it without [`Tx::commit`] rolls back,
/// so an early `return` or `?` inside a multi-statement operation leaves nothing behind.
pub(crate) enum Tx {
    /// On one of SQLite's connections: the writer, or a reader for a read.
    Sqlite(SlotTx),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    /// The SQLite connection the transaction is on; `None` on PostgreSQL.
    fn sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match self {
            Tx::Sqlite(tx) => Some(tx.conn()),
            Tx::Postgres(_) => None,
        }
    }

    pub(crate) async fn fetch_all(&mut self, sql: Sql) -> Result<Vec<DbRow>, StoreError> {
        if let Tx::Postgres(tx) = self {
            return Ok(sql
                .query::<Postgres>()
                .fetch_all(&mut **tx)
                .await
                .map_err(sql.error())?
                .into_iter()
                .map(DbRow::Postgres)
                .collect());
        }
        let conn = self.sqlite().expect("not PostgreSQL");
        Ok(sql
            .query::<Sqlite>()
            .fetch_all(conn)
            .await
            .map_err(sql.error())?
            .into_iter()
            .map(DbRow::Sqlite)
            .collect())
    }

    pub(crate) async fn fetch_optional(&mut self, sql: Sql) -> Result<Option<DbRow>, StoreError> {
        if let Tx::Postgres(tx) = self {
            return Ok(sql
                .query::<Postgres>()
                .fetch_optional(&mut **tx)
                .await
                .map_err(sql.error())?
                .map(DbRow::Postgres));
        }
        let conn = self.sqlite().expect("not PostgreSQL");
        Ok(sql
            .query::<Sqlite>()
            .fetch_optional(conn)
            .await
            .map_err(sql.error())?
            .map(DbRow::Sqlite))
    }

    /// Like [`Tx::fetch_optional`] for statements that always return a row (aggregates).
    pub(crate) async fn fetch_one(&mut self, sql: Sql) -> Result<DbRow, StoreError> {
        if let Tx::Postgres(tx) = self {
            return Ok(DbRow::Postgres(
                sql.query::<Postgres>()
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(sql.error())?,
            ));
        }
        let conn = self.sqlite().expect("not PostgreSQL");
        Ok(DbRow::Sqlite(
            sql.query::<Sqlite>()
                .fetch_one(conn)
                .await
                .map_err(sql.error())?,
        ))
    }

    pub(crate) async fn execute(&mut self, sql: Sql) -> Result<u64, StoreError> {
        let result = if let Tx::Postgres(tx) = self {
            sql.query::<Postgres>()
                .execute(&mut **tx)
                .await
                .map(|done| done.rows_affected())
        } else {
            let conn = self.sqlite().expect("not PostgreSQL");
            sql.query::<Sqlite>()
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        };
        result.map_err(sql.error())
    }

    /// Runs a multi-statement script without arguments (schema migrations).
    pub(crate) async fn execute_script(&mut self, script: &'static str) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(tx) => sqlx::raw_sql(script).execute(&mut **tx).await.map(drop),
            _ => {
                let conn = self.sqlite().expect("not PostgreSQL");
                sqlx::raw_sql(script).execute(conn).await.map(drop)
            }
        }
    }

    pub(crate) async fn commit(self, context: &'static str) -> Result<(), StoreError> {
        let result = match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        };
        result.map_err(|source| query_error(context, source))
    }
}

/// A result row of either backend.
pub(crate) enum DbRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl DbRow {
    /// Reads one column; `T` must decode on both backends (String, i64, f64 and their
    /// `Option`s are what the schema uses).
    pub(crate) fn get<T>(&self, column: &'static str) -> Result<T, StoreError>
    where
        T: for<'r> Decode<'r, Sqlite>
            + Type<Sqlite>
            + for<'r> Decode<'r, Postgres>
            + Type<Postgres>,
    {
        let result = match self {
            DbRow::Sqlite(row) => row.try_get(column),
            DbRow::Postgres(row) => row.try_get(column),
        };
        result.map_err(|error| StoreError::Corrupt {
            column,
            detail: error.to_string(),
        })
    }

    /// Reads a nullable TEXT column holding JSON.
    pub(crate) fn get_json(
        &self,
        column: &'static str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(text) = self.get::<Option<String>>(column)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| StoreError::Corrupt {
                column,
                detail: error.to_string(),
            })
    }
}

/// Appends `rows` rows of `width` placeholders, `(…), (…)`, for a statement whose arguments are
/// bound in order and each used once. PostgreSQL gets `$1, $2, …`; SQLite gets anonymous `?`:
/// sqlx asks SQLite the name of every numbered placeholder, and SQLite finds it by scanning the
/// statement's whole list, so a statement with n of them would take O(n²) to bind.
pub(crate) fn push_placeholder_rows(sql: &mut String, rows: usize, width: usize, numbered: bool) {
    use std::fmt::Write as _;
    for row in 0..rows {
        sql.push_str(if row > 0 { ", (" } else { "(" });
        for column in 0..width {
            if column > 0 {
                sql.push_str(", ");
            }
            if numbered {
                let _ = write!(sql, "${}", row * width + column + 1);
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
}

/// Serialises an optional JSON value for a TEXT column.
pub(crate) fn json_text(value: &Option<serde_json::Value>) -> Option<String> {
    value.as_ref().map(|value| value.to_string())
}

impl Db {
    /// Starts a read-only transaction that sees one snapshot of the database: a page of messages
    /// and the chat's event counter read inside it agree with each other.
    pub(crate) async fn begin_read(&self, context: &'static str) -> Result<Tx, StoreError> {
        let error = move |source| query_error(context, source);
        match self {
            // A deferred transaction takes its snapshot at the first read (WAL mode).
            Db::Sqlite(pools) => match &pools.read {
                Some(readers) => Ok(Tx::Sqlite(readers.begin().await.map_err(error)?)),
                None => Ok(Tx::Sqlite(pools.write.begin("BEGIN").await.map_err(error)?)),
            },
            Db::Postgres(pool) => Ok(Tx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(error)?,
            )),
        }
    }
}

/// Where a statement runs: the pool (each statement on its own) or an open transaction.
pub(crate) enum Conn<'a> {
    Pool(&'a Db),
    Tx(&'a mut Tx),
}

impl Conn<'_> {
    pub(crate) async fn fetch_all(&mut self, sql: Sql) -> Result<Vec<DbRow>, StoreError> {
        match self {
            Conn::Pool(db) => db.fetch_all(sql).await,
            Conn::Tx(tx) => tx.fetch_all(sql).await,
        }
    }
}

/// The SQL that moves a chat's `updated_at` forward only (`$param` is the new time): an imported or
/// late timestamp must not push a chat down the list behind older activity. Here, beside the other
/// SQL helpers, so that `messages` and `turns` need nothing from `chats`.
macro_rules! bump_updated_at {
    ($param:literal) => {
        concat!(
            "updated_at = CASE WHEN updated_at < ",
            $param,
            " THEN ",
            $param,
            " ELSE updated_at END"
        )
    };
}
pub(crate) use bump_updated_at;
