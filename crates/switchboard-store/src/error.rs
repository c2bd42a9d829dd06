//! The one error type of the store.
//!
//! Callers mostly log these and answer 500, so each variant carries enough context to be
//! read alone in a log line: what the store was trying to do, and the underlying cause as
//! `source()`. "Not found" is never an error: the API returns `Ok(None)` / `Ok(false)`.

/// Everything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `DATABASE_URL` names neither SQLite nor PostgreSQL.
    #[error(
        "unsupported DATABASE_URL {url:?}: expected sqlite://…, sqlite::memory:, postgres://… or postgresql://…"
    )]
    UnsupportedUrl { url: String },

    /// The database could not be opened (bad URL, server down, unwritable file…).
    #[error("could not connect to the database at {url}")]
    Connect {
        /// The URL with any password masked.
        url: String,
        #[source]
        source: sqlx::Error,
    },

    /// A schema migration failed; the database is left at the previous version.
    #[error("could not apply schema migration {version} ({name})")]
    Migrate {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// The database was upgraded by a newer build: this one would write to tables it does not
    /// know as they are, so it does not start.
    #[error(
        "the database's schema is version {found}, newer than this build knows ({known}): a newer Switchboard upgraded it; run that version or a later one, or restore a backup taken before the upgrade"
    )]
    SchemaTooNew { found: i64, known: i64 },

    /// A statement failed. `context` says what the store was doing.
    #[error("database error while trying to {context}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// A stored value could not be read back (wrong type, bad JSON, unknown enum value).
    /// Means the row was written by something other than this crate, or a bug.
    #[error("stored column {column} holds an unreadable value: {detail}")]
    Corrupt {
        column: &'static str,
        detail: String,
    },

    /// Another reply is being generated in the chat (on this instance or another); nothing was
    /// changed.
    #[error("a reply is being generated in chat {chat_id}")]
    Busy { chat_id: String },

    /// Another process has the SQLite file open. SQLite serves one Switchboard process; several
    /// instances share a PostgreSQL database instead.
    #[error(
        "another Switchboard process is using {path}; SQLite serves one process: stop the other one, or use PostgreSQL (DATABASE_URL=postgres://…) to run several instances"
    )]
    InUse { path: String },

    /// The lock file beside a SQLite database could not be opened.
    #[error("could not open the lock file {path}")]
    LockFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
