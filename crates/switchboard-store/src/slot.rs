//! SQLite connections held open, each used by one caller at a time: the one that writes
//! ([`Slot`]) and the few that read beside it ([`Readers`]).
//!
//! A sqlx pool would do the same job, but every time a pooled connection comes back, sqlx spawns
//! a task that pings it; for SQLite a ping is a round trip to the connection's own thread. A chat
//! turn runs dozens of statements, so the pings and their wake-ups cost as much as the statements.
//! Here each connection sits behind a mutex instead: callers queue in order, as they did on the
//! pool, and a statement is one round trip.
//!
//! What the pool did besides, this does too: a transaction left open (its future dropped, its
//! `COMMIT` failed) is rolled back before the next caller uses the connection, and a connection
//! that lived through a storage failure is reopened (SQLite latches some failures into it).
//!
//! The writing connection also checkpoints the write-ahead log on a clock ([`Slot::writer`])
//! rather than SQLite's default of after every commit once the log holds 1,000 pages: while
//! readers keep the log from being taken whole, that default tried again after *every* commit,
//! each try sorting the whole log and syncing it to disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// One connection; cheap to clone (clones share it).
#[derive(Clone)]
pub(crate) struct Slot {
    state: Arc<Mutex<State>>,
    options: Arc<SqliteConnectOptions>,
    /// An in-memory database lives in its connection: never reopened.
    in_memory: bool,
    /// The writer's checkpoint interval; `None`: SQLite's own (readers never write).
    checkpoint_every: Option<Duration>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
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
    last_checkpoint: Instant,
}

/// The connection, held by one caller until dropped.
pub(crate) struct Held(OwnedMutexGuard<State>);

impl Held {
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.0
            .conn
            .as_mut()
            .expect("a held connection is open (Slot::hold opens it)")
    }

    async fn begin(mut self, begin: &'static str) -> Result<SlotTx, sqlx::Error> {
        self.0.unfinished = true;
        self.conn().execute(begin).await?;
        Ok(SlotTx { held: self })
    }
}

/// A transaction on a slot's connection. Dropped without [`SlotTx::commit`], it is rolled back
/// before the connection's next use.
pub(crate) struct SlotTx {
    held: Held,
}

impl SlotTx {
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

impl Slot {
    pub(crate) async fn open(
        options: SqliteConnectOptions,
        in_memory: bool,
    ) -> Result<Slot, sqlx::Error> {
        Slot::open_with(options, in_memory, None).await
    }

    /// The connection that writes a file database in WAL mode: SQLite's automatic checkpoints are
    /// off, and the holder after each `every` runs a passive checkpoint first (one that copies
    /// what no reader still needs and never waits). The log then holds at most about `every` of
    /// writes beyond what readers pin, and a busy writer checkpoints once per `every`, not per
    /// commit.
    pub(crate) async fn writer(
        options: SqliteConnectOptions,
        every: Duration,
    ) -> Result<Slot, sqlx::Error> {
        let options = options.pragma("wal_autocheckpoint", "0");
        Slot::open_with(options, false, Some(every)).await
    }

    async fn open_with(
        options: SqliteConnectOptions,
        in_memory: bool,
        checkpoint_every: Option<Duration>,
    ) -> Result<Slot, sqlx::Error> {
        let conn = SqliteConnection::connect_with(&options).await?;
        Ok(Slot {
            state: Arc::new(Mutex::new(State {
                conn: Some(conn),
                opened: Instant::now(),
                unfinished: false,
                closed: false,
                last_checkpoint: Instant::now(),
            })),
            options: Arc::new(options),
            in_memory,
            checkpoint_every,
        })
    }

    /// The connection, once the callers before this one are done with it.
    pub(crate) async fn hold(&self) -> Result<Held, sqlx::Error> {
        let state = self.state.clone().lock_owned().await;
        self.ready(state).await
    }

    /// The connection if no one holds it now.
    async fn try_hold(&self) -> Option<Result<Held, sqlx::Error>> {
        let state = self.state.clone().try_lock_owned().ok()?;
        Some(self.ready(state).await)
    }

    /// Makes a locked connection fit to use: open, and outside any transaction.
    async fn ready(&self, mut state: OwnedMutexGuard<State>) -> Result<Held, sqlx::Error> {
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
        if let Some(every) = self.checkpoint_every
            && state.last_checkpoint.elapsed() >= every
        {
            state.last_checkpoint = Instant::now();
            let conn = state.conn.as_mut().expect("opened above");
            // A checkpoint that fails leaves the log as it was: the next one takes it.
            let _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await;
        }
        Ok(Held(state))
    }

    /// A transaction begun with `begin` (`BEGIN IMMEDIATE` to write, `BEGIN` to read).
    pub(crate) async fn begin(&self, begin: &'static str) -> Result<SlotTx, sqlx::Error> {
        let held = self.hold().await?;
        held.begin(begin).await
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

/// The read-only connections beside the writer, opened together and used in turn: a caller tries
/// the next one in turn first, then any other no one holds, else queues on the one in turn.
///
/// In turn rather than "the first free one", so that every reader is used again soon: a read
/// transaction dropped unfinished is rolled back only at its connection's next use, and until
/// then its snapshot keeps the WAL from being checkpointed past it (the WAL would grow).
#[derive(Clone, Debug)]
pub(crate) struct Readers {
    slots: Arc<[Slot]>,
    next: Arc<AtomicUsize>,
}

impl Readers {
    pub(crate) async fn open(
        options: &SqliteConnectOptions,
        count: usize,
    ) -> Result<Readers, sqlx::Error> {
        let mut slots = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            slots.push(Slot::open(options.clone(), false).await?);
        }
        Ok(Readers {
            slots: slots.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub(crate) async fn hold(&self) -> Result<Held, sqlx::Error> {
        let n = self.slots.len();
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Some(held) = self.slots[(turn + i) % n].try_hold().await {
                return held;
            }
        }
        self.slots[turn].hold().await
    }

    /// A read transaction (a deferred `BEGIN`: its snapshot is taken at the first read).
    pub(crate) async fn begin(&self) -> Result<SlotTx, sqlx::Error> {
        self.hold().await?.begin("BEGIN").await
    }

    /// Connections open, and how many of them no one holds (for metrics).
    pub(crate) fn status(&self) -> (u32, usize) {
        self.slots.iter().fold((0, 0), |(open, idle), slot| {
            let (is_open, is_idle) = slot.status();
            (open + u32::from(is_open), idle + usize::from(is_idle))
        })
    }

    pub(crate) async fn close(&self) {
        for slot in self.slots.iter() {
            slot.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;
    use sqlx::sqlite::SqliteJournalMode;

    /// 8 MB written in one transaction: 2,000 pages, twice SQLite's automatic checkpoint.
    async fn write_8_mb(writer: &Slot) {
        writer
            .hold()
            .await
            .unwrap()
            .conn()
            .execute(
                "CREATE TABLE t (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2048)
                 INSERT INTO t SELECT randomblob(4000) FROM n",
            )
            .await
            .unwrap();
    }

    fn size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }

    /// The writer copies its log into the database only on its clock: not after a commit, even
    /// one far past SQLite's automatic threshold, and always at the first use once it is due.
    #[tokio::test]
    async fn the_writer_checkpoints_on_its_clock_not_after_each_commit() {
        let dir = tempfile::tempdir().unwrap();
        let options = |name: &str| {
            SqliteConnectOptions::new()
                .filename(dir.path().join(name))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
        };

        let db = dir.path().join("later.db");
        let writer = Slot::writer(options("later.db"), Duration::from_secs(3600))
            .await
            .unwrap();
        write_8_mb(&writer).await;
        drop(writer.hold().await.unwrap());
        assert!(
            size(&db) < 1_000_000,
            "not checkpointed: {} bytes",
            size(&db)
        );
        assert!(size(&dir.path().join("later.db-wal")) > 8_000_000);

        let db = dir.path().join("due.db");
        let writer = Slot::writer(options("due.db"), Duration::ZERO)
            .await
            .unwrap();
        write_8_mb(&writer).await;
        assert!(size(&db) < 1_000_000, "not before the next use");
        drop(writer.hold().await.unwrap());
        assert!(size(&db) > 8_000_000, "checkpointed: {} bytes", size(&db));
    }

    /// A read transaction dropped on a reader no one picks first must not pin the WAL: the next
    /// reads reach that reader, roll it back, and a checkpoint can then take the whole WAL.
    #[tokio::test]
    async fn a_dropped_read_transaction_is_rolled_back_by_the_next_reads() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A checkpoint that cannot finish says so at once instead of after a wait.
            .busy_timeout(std::time::Duration::ZERO);
        let writer = Slot::open(options.clone(), false).await.unwrap();
        writer
            .hold()
            .await
            .unwrap()
            .conn()
            .execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let readers = Readers::open(&options, 2).await.unwrap();

        // Reader 0 is busy, so the read transaction goes to reader 1; it reads (takes its
        // snapshot) and is dropped unfinished.
        let busy = readers.slots[0].hold().await.unwrap();
        let mut tx = readers.hold().await.unwrap().begin("BEGIN").await.unwrap();
        sqlx::query("SELECT x FROM t")
            .fetch_one(tx.conn())
            .await
            .unwrap();
        drop(tx);
        drop(busy);

        let mut w = writer.hold().await.unwrap();
        w.conn().execute("INSERT INTO t VALUES (2)").await.unwrap();
        let blocked = |row: sqlx::sqlite::SqliteRow| row.get::<i64, _>(0);
        let pinned = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(w.conn())
            .await
            .unwrap();
        assert_eq!(
            blocked(pinned),
            1,
            "the dropped snapshot pins the WAL until rolled back"
        );
        drop(w);

        for _ in 0..readers.slots.len() {
            let mut held = readers.hold().await.unwrap();
            sqlx::query("SELECT x FROM t")
                .fetch_all(held.conn())
                .await
                .unwrap();
        }
        let mut w = writer.hold().await.unwrap();
        let freed = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(w.conn())
            .await
            .unwrap();
        assert_eq!(blocked(freed), 0, "a checkpoint takes the whole WAL");
    }
}
