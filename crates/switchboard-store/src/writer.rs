//! SQLite's one writing connection, held open and used by one caller at a time.
//!
//! A sqlx pool of one connection would do the same job, but every time a pooled connection comes
//! back, sqlx spawns a task that pings it; for SQLite a ping is a round trip to the connection's
//! own thread. A chat turn runs dozens of writes, so the pings and their wake-ups cost as much as
//! the writes. Here the connection sits behind a mutex instead: writers queue in order, as they
//! did on the pool, and a statement is one round trip.
//!
//! What the pool did besides, this does too: a transaction left open (its future dropped, its
//! `COMMIT` failed) is rolled back before the next caller uses the connection, and a connection
//! that lived through a storage failure is reopened (SQLite latches some failures into it).

use std::sync::Arc;
use std::time::Instant;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The writing connection; cheap to clone (clones share it).
#[derive(Clone)]
pub(crate) struct Writer {
    state: Arc<Mutex<State>>,
    options: Arc<SqliteConnectOptions>,
    /// An in-memory database lives in its connection: never reopened.
    in_memory: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("in_memory", &self.in_memory)
            .finish_non_exhaustive()
    }
}

struct State {
    conn: Option<SqliteConnection>,
    opened: Instant,
    /// A transaction may be open (set before its `BEGIN` is sent, cleared when its `COMMIT`
    /// succeeds): roll it back before the connection is used again. Set first, because a caller
    /// that gives up mid-`BEGIN` (waiting on a lock) leaves the `BEGIN` to run after it is gone.
    unfinished: bool,
    closed: bool,
}

/// The connection, held by one caller until dropped.
pub(crate) struct Held(OwnedMutexGuard<State>);

impl Held {
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.0
            .conn
            .as_mut()
            .expect("a held connection is open (Writer::hold opens it)")
    }
}

/// A transaction on the writing connection. Dropped without [`WriteTx::commit`], it is rolled
/// back before the connection's next use.
pub(crate) struct WriteTx {
    held: Held,
}

impl WriteTx {
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.held.conn()
    }

    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        // Until `COMMIT` succeeds the transaction counts as open (a failed one is rolled back).
        self.held.conn().execute("COMMIT").await?;
        self.held.0.unfinished = false;
        Ok(())
    }
}

impl Writer {
    pub(crate) async fn open(
        options: SqliteConnectOptions,
        in_memory: bool,
    ) -> Result<Writer, sqlx::Error> {
        let conn = SqliteConnection::connect_with(&options).await?;
        Ok(Writer {
            state: Arc::new(Mutex::new(State {
                conn: Some(conn),
                opened: Instant::now(),
                unfinished: false,
                closed: false,
            })),
            options: Arc::new(options),
            in_memory,
        })
    }

    /// The connection, once the callers before this one are done with it.
    pub(crate) async fn hold(&self) -> Result<Held, sqlx::Error> {
        let mut state = self.state.clone().lock_owned().await;
        if state.closed {
            return Err(sqlx::Error::PoolClosed);
        }
        let worn =
            !self.in_memory && crate::db::lived_through_a_storage_failure(state.opened.elapsed());
        if worn && let Some(old) = state.conn.take() {
            let _ = old.close().await;
        }
        if state.conn.is_none() {
            state.conn = Some(SqliteConnection::connect_with(&self.options).await?);
            state.opened = Instant::now();
            state.unfinished = false;
        }
        if state.unfinished {
            let conn = state.conn.as_mut().expect("opened above");
            // Fails harmlessly when SQLite already rolled it back.
            let _ = conn.execute("ROLLBACK").await;
            state.unfinished = false;
        }
        Ok(Held(state))
    }

    /// A transaction begun with `begin` (`BEGIN IMMEDIATE` to write, `BEGIN` to read).
    pub(crate) async fn begin(&self, begin: &'static str) -> Result<WriteTx, sqlx::Error> {
        let mut held = self.hold().await?;
        held.0.unfinished = true;
        held.conn().execute(begin).await?;
        Ok(WriteTx { held })
    }

    /// Whether the connection is open and whether no one holds it (for metrics).
    pub(crate) fn status(&self) -> (bool, bool) {
        match self.state.try_lock() {
            Ok(state) => (state.conn.is_some(), true),
            Err(_) => (true, false),
        }
    }

    /// Closes the connection once its current holder is done; later use fails.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        state.closed = true;
        if let Some(conn) = state.conn.take() {
            let _ = conn.close().await;
        }
    }
}
