//! Switchboard's storage: workspaces, chats, messages and chat events, in SQLite or
//! PostgreSQL.
//!
//! Conversations live on the server so every device sees the same chats; this crate is
//! the only code that talks to the database. [`Store::connect`] picks the backend from
//! `DATABASE_URL` — `sqlite://switchboard.db` (the default, created if missing),
//! `sqlite::memory:`, or `postgres://…` / `postgresql://…` — and brings the schema up to
//! date. Everything else is methods on [`Store`], each one statement or one transaction.
//!
//! # How data flows through it
//!
//! A turn — the user's message and an empty `streaming` reply — is stored by
//! [`Store::start_turn`] before any provider is called; the reply's owner (the instance
//! generating it) is recorded with it, and at most one turn per chat streams at a time (a
//! compare streams several replies in one turn). A chat is a tree with one active path
//! (`branches.rs`): regenerate and edit add branches, and nothing is deleted by either.
//! The generation appends its events (which carry the new text) with
//! [`Store::write_generation`], and [`Store::finish_message`] closes the reply with its full
//! text and its `done` event. Events get their seqs here, so any instance can serve a
//! browser that resumes with [`Store::events_after`]. Replies whose owner's lease expired
//! ([`Store::streaming_replies`]) are finished by whichever instance notices.
//!
//! # Invariants
//!
//! - **Workspaces never see each other's chats.** Every chat and message query takes the
//!   caller's workspace key and filters by it; another workspace's chat id behaves exactly
//!   like an id that does not exist.
//! - **A message's `seq` is assigned by the store** as one more than the chat's largest,
//!   atomically on both backends, so concurrent inserts never collide.
//! - **A message leaves `streaming` once.** Writes and finishes only touch messages that
//!   are still streaming under their owner, so a late write cannot change a finished message.
//! - **An event is visible only after every event with a lower seq of its chat.**
//! - **A SQLite file belongs to one process** (a lock file beside it); PostgreSQL serves
//!   several instances.
//! - **Deleting a chat deletes its messages, events and search entries.**
//!
//! # SQLite under concurrency
//!
//! One server runs many generations at once, each flushing a few times a second. SQLite
//! allows one writer at a time, so the store opens it in WAL mode (readers never block the
//! writer), waits up to five seconds for the write lock (`busy_timeout`) rather than
//! failing with "database is locked", starts write transactions with `BEGIN IMMEDIATE`
//! (so queued writers wait instead of failing), and keeps the pool small.
//!
//! # Tests
//!
//! The integration tests run every check against a temporary SQLite file and a fresh
//! PostgreSQL database. They read the admin URL from `SWITCHBOARD_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), create a database
//! `sb_<random>` per test and drop it afterwards. When PostgreSQL is unreachable those
//! tests fail; set `SWITCHBOARD_SKIP_POSTGRES=1` to skip them instead.

mod branches;
mod chats;
mod db;
mod error;
mod files;
mod generation;
mod ids;
mod messages;
mod migrate;
mod model;
mod notify;
mod quota;
mod search;
mod sessions;
mod shares;
mod slot;
mod spend;
mod turns;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use crate::db::{Db, SqlitePools};
use crate::slot::{Readers, Slot};

pub use crate::branches::PathChange;
pub use crate::error::StoreError;
pub use crate::files::{NewFile, StoredFile};
pub use crate::generation::{
    EventDraft, GenerationAck, GenerationWrite, GroupStored, TextPart, TitleChange, WriteGroup,
};
pub use crate::model::{
    Chat, ChatHit, ChatPage, ChatPatch, ChatSettings, ChatSummary, Message, MessageFinish,
    MessageStatus, NewMessage, Role, SearchHit, Sibling, StoredEvent, Usage, WebSearch,
};
pub use crate::notify::{Notice, Notifications};
pub use crate::quota::WorkspaceUsage;
pub use crate::shares::SharedChat;
pub use crate::spend::{Spend, SpendGroup, SpendRow};
pub use crate::turns::{ChatSnapshot, NewTurn, StreamingReply, TurnParent, TurnStarted};

/// Whether a pooled connection may be handed out again. A transaction whose `COMMIT` failed
/// (a disk I/O error, a full disk) can leave the driver believing the connection is still inside
/// it, and SQLite latches some failures into the connection; such connections are closed instead
/// of reused (and new ones opened), so the store recovers as soon as the disk does.
fn reusable<C: sqlx::Connection>(conn: &C, meta: sqlx::pool::PoolConnectionMetadata) -> bool {
    !conn.is_in_transaction() && !db::lived_through_a_storage_failure(meta.age)
}

/// The `DATABASE_URL` used when none is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://switchboard.db";

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the SQLite writer checkpoints its write-ahead log (see `slot::Slot::writer`).
const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Read-only SQLite connections beside the one that writes (see `db::SqlitePools`).
const SQLITE_READERS: usize = 2;

const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// One connection pool's state: connections open, and how many of them are idle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    pub name: &'static str,
    pub open: u32,
    pub idle: usize,
}

impl PoolStatus {
    fn of<DB: sqlx::Database>(name: &'static str, pool: &sqlx::Pool<DB>) -> PoolStatus {
        PoolStatus {
            name,
            open: pool.size(),
            idle: pool.num_idle(),
        }
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Handle to the database. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Held for the store's life on a SQLite file: the kernel releases it when the process ends,
    /// however it ends, so a crashed process never locks its successor out.
    _exclusive: Option<std::sync::Arc<std::fs::File>>,
}

impl Store {
    /// Opens the database named by `database_url` and applies pending migrations.
    ///
    /// A SQLite file is created if it does not exist.
    pub async fn connect(database_url: &str) -> Result<Store, StoreError> {
        let mut exclusive = None;
        let db = if database_url.starts_with("sqlite:") {
            exclusive = lock_sqlite_file(database_url)?.map(std::sync::Arc::new);
            connect_sqlite(database_url).await?
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            connect_postgres(database_url).await?
        } else {
            return Err(StoreError::UnsupportedUrl {
                url: redact(database_url),
            });
        };
        migrate::run(&db).await?;
        Ok(Store {
            db,
            _exclusive: exclusive,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The connection pools as they are now (for metrics).
    pub fn pool_status(&self) -> Vec<PoolStatus> {
        match &self.db {
            Db::Sqlite(pools) => {
                let (open, idle) = pools.write.status();
                let mut status = vec![PoolStatus {
                    name: "write",
                    open: open.into(),
                    idle: idle.into(),
                }];
                if let Some(readers) = &pools.read {
                    let (open, idle) = readers.status();
                    status.push(PoolStatus {
                        name: "read",
                        open,
                        idle,
                    });
                }
                status
            }
            Db::Postgres(pool) => vec![PoolStatus::of("pool", pool)],
        }
    }

    /// Closes every connection, waiting for checked-out ones to come back. Useful before
    /// deleting a database file or dropping a test database.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(pools) => pools.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Takes the lock that makes a SQLite file one process's (`<file>.lock` beside it). `None` for an
/// in-memory database.
fn lock_sqlite_file(url: &str) -> Result<Option<std::fs::File>, StoreError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
        url: redact(url),
        source,
    })?;
    let path = options.get_filename();
    let name = path.to_string_lossy();
    if url.contains(":memory:") || url.contains("mode=memory") || name.is_empty() {
        return Ok(None);
    }
    let lock_path = format!("{name}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::LockFile {
            path: lock_path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse {
            path: name.into_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::LockFile {
            path: lock_path,
            source,
        }),
    }
}

async fn connect_sqlite(url: &str) -> Result<Db, StoreError> {
    let connect_error = |source| StoreError::Connect {
        url: redact(url),
        source,
    };
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut options = SqliteConnectOptions::from_str(url)
        .map_err(connect_error)?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        // A statement's undo journal spilled to a temporary file past 64 KiB (a group of
        // replies' events is more): kept in memory, it is not written at all.
        .pragma("temp_store", "memory");
    if in_memory {
        // An in-memory database lives exactly as long as its connection, and each new
        // connection would otherwise see an empty database: one connection for the life of
        // the store, for reads and writes alike.
        let write = Slot::open(options, true).await.map_err(connect_error)?;
        return Ok(Db::Sqlite(SqlitePools { write, read: None }));
    }
    // WAL lets readers run while a generation writes; with WAL, NORMAL sync is still
    // crash-safe (a power cut can lose the last commits, never corrupt the file).
    options = options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    // The writer stays open: its page cache is what makes it cheap.
    let write = Slot::writer(options.clone(), SQLITE_CHECKPOINT_EVERY)
        .await
        .map_err(connect_error)?;
    // Opened after the writer, which creates the file and turns WAL on. Not opened read-only:
    // a read-only connection cannot recover a WAL whose last writer has just closed.
    let read = Readers::open(&options, SQLITE_READERS)
        .await
        .map_err(connect_error)?;
    Ok(Db::Sqlite(SqlitePools {
        write,
        read: Some(read),
    }))
}

async fn connect_postgres(url: &str) -> Result<Db, StoreError> {
    let pool = PgPoolOptions::new()
        // No ping before each use, a round trip per statement: sqlx pings a connection when it
        // comes back to the pool anyway, and closes it if the server dropped it.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| Box::pin(async move { Ok(reusable(&*conn, meta)) }))
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|source| StoreError::Connect {
            url: redact(url),
            source,
        })?;
    Ok(Db::Postgres(pool))
}

/// The URL with its password replaced by `***`, fit for error messages and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://sb:secret@db:5432/sb"),
            "postgres://sb:***@db:5432/sb"
        );
        assert_eq!(redact("postgres://sb@db/sb"), "postgres://sb@db/sb");
        assert_eq!(redact("sqlite://switchboard.db"), "sqlite://switchboard.db");
    }
}
