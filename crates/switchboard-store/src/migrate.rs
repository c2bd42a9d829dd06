//! Schema migrations, embedded in the binary.
//!
//! The SQL dialects differ (FTS5 virtual table and triggers vs. a generated tsvector
//! column), so each backend has its own folder under `migrations/`; both must describe
//! the same tables and columns. A tiny runner records applied versions in
//! `schema_version` instead of `sqlx::migrate!`, which would pull in sqlx's proc-macro
//! stack for one feature. All pending migrations run in one transaction: a failed upgrade
//! leaves the previous schema intact. A database a newer build has upgraded is refused (an
//! older build writing to it could lose what the newer columns hold).

use crate::StoreError;
use crate::db::{Db, Sql};
use crate::ids::now_ms;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "reply ownership, event order and streaming text",
        sql: include_str!("../migrations/sqlite/0002_ownership.sql"),
    },
    Migration {
        version: 3,
        name: "share links",
        sql: include_str!("../migrations/sqlite/0003_shares.sql"),
    },
    Migration {
        version: 4,
        name: "when reasoning ended",
        sql: include_str!("../migrations/sqlite/0004_reasoning_ended.sql"),
    },
    Migration {
        version: 5,
        name: "spend ledger",
        sql: include_str!("../migrations/sqlite/0005_spend.sql"),
    },
    Migration {
        version: 6,
        name: "login sessions",
        sql: include_str!("../migrations/sqlite/0006_sessions.sql"),
    },
    Migration {
        version: 7,
        name: "verified own-key workspaces",
        sql: include_str!("../migrations/sqlite/0007_quota.sql"),
    },
    Migration {
        version: 8,
        name: "branches",
        sql: include_str!("../migrations/sqlite/0008_branches.sql"),
    },
    Migration {
        version: 9,
        name: "files stored with messages",
        sql: include_str!("../migrations/sqlite/0009_files.sql"),
    },
    Migration {
        version: 10,
        name: "pinned chats",
        sql: include_str!("../migrations/sqlite/0010_pinned.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "reply ownership, event order and streaming text",
        sql: include_str!("../migrations/postgres/0002_ownership.sql"),
    },
    Migration {
        version: 3,
        name: "share links",
        sql: include_str!("../migrations/postgres/0003_shares.sql"),
    },
    Migration {
        version: 4,
        name: "when reasoning ended",
        sql: include_str!("../migrations/postgres/0004_reasoning_ended.sql"),
    },
    Migration {
        version: 5,
        name: "spend ledger",
        sql: include_str!("../migrations/postgres/0005_spend.sql"),
    },
    Migration {
        version: 6,
        name: "login sessions",
        sql: include_str!("../migrations/postgres/0006_sessions.sql"),
    },
    Migration {
        version: 7,
        name: "verified own-key workspaces",
        sql: include_str!("../migrations/postgres/0007_quota.sql"),
    },
    Migration {
        version: 8,
        name: "branches",
        sql: include_str!("../migrations/postgres/0008_branches.sql"),
    },
    Migration {
        version: 9,
        name: "files stored with messages",
        sql: include_str!("../migrations/postgres/0009_files.sql"),
    },
    Migration {
        version: 10,
        name: "pinned chats",
        sql: include_str!("../migrations/postgres/0010_pinned.sql"),
    },
];

/// Arbitrary constant naming the PostgreSQL advisory lock that serialises migrations when
/// several servers start at once against one database.
const MIGRATION_LOCK_KEY: i64 = 0x5357_4254_4348;

pub(crate) async fn run(db: &Db) -> Result<(), StoreError> {
    let migrations = match db {
        Db::Sqlite(_) => SQLITE,
        Db::Postgres(_) => POSTGRES,
    };
    let mut tx = db.begin("start the schema migration").await?;
    if tx.is_postgres() {
        tx.execute(
            Sql::new(
                "lock the schema for migration",
                "SELECT pg_advisory_xact_lock($1)",
            )
            .int(MIGRATION_LOCK_KEY),
        )
        .await?;
    }
    tx.execute(Sql::new(
        "create the schema_version table",
        "CREATE TABLE IF NOT EXISTS schema_version (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    ))
    .await?;
    let current: i64 = tx
        .fetch_one(Sql::new(
            "read the schema version",
            "SELECT COALESCE(MAX(version), 0) AS version FROM schema_version",
        ))
        .await?
        .get("version")?;
    let known = migrations.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }

    for migration in migrations.iter().filter(|m| m.version > current) {
        tx.execute_script(migration.sql)
            .await
            .map_err(|source| StoreError::Migrate {
                version: migration.version,
                name: migration.name,
                source,
            })?;
        tx.execute(
            Sql::new(
                "record the schema version",
                "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .int(migration.version)
            .text(migration.name)
            .int(now_ms()),
        )
        .await?;
    }
    tx.commit("commit the schema migration").await
}
