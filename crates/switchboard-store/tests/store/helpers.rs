//! Test databases: one fresh database per test, on either backend.

use rand::Rng;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use switchboard_store::{
    EventDraft, GenerationAck, GenerationWrite, Message, MessageFinish, MessageStatus, NewMessage,
    NewTurn, Role, Store, TextPart, TurnParent, Usage,
};
use tempfile::TempDir;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store on its own database, removed when this value is dropped (even when the test
/// panics).
pub struct TestDb {
    pub store: Store,
    _dir: Option<TempDir>,
    postgres: Option<PgDatabase>,
}

struct PgDatabase {
    admin_url: String,
    name: String,
}

impl TestDb {
    /// A store on a new SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = Store::connect(&url)
            .await
            .expect("open the SQLite test database");
        TestDb {
            store,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A store on a new PostgreSQL database `sb_<random>`; `None` only when
    /// `SWITCHBOARD_SKIP_POSTGRES=1`. An unreachable server fails the test.
    pub async fn postgres() -> Option<TestDb> {
        if std::env::var("SWITCHBOARD_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("SWITCHBOARD_SKIP_POSTGRES=1: skipping a PostgreSQL test");
            return None;
        }
        let admin_url = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = format!("sb_{}", random_suffix());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach PostgreSQL at {admin_url} ({error}); start it, point \
                 SWITCHBOARD_TEST_POSTGRES_URL at it, or set SWITCHBOARD_SKIP_POSTGRES=1"
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let database = PgDatabase { admin_url, name };
        let store = Store::connect(&database.url())
            .await
            .expect("open the PostgreSQL test database");
        Some(TestDb {
            store,
            _dir: None,
            postgres: Some(database),
        })
    }
}

/// A database left by an older version: `scripts` run on an empty one (its migrations, then
/// data), and `versions` are recorded as applied; then [`Store::connect`] migrates the rest.
/// `None` for PostgreSQL when `SWITCHBOARD_SKIP_POSTGRES=1`.
pub async fn upgraded(postgres: bool, scripts: &[&str], versions: i64) -> Option<TestDb> {
    let record = format!(
        "CREATE TABLE schema_version (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL);
         INSERT INTO schema_version (version, name, applied_at) VALUES {};",
        (1..=versions)
            .map(|v| format!("({v}, 'old', 0)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !postgres {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .expect("create the old SQLite database");
        for script in scripts.iter().copied().chain([record.as_str()]) {
            sqlx::raw_sql(script)
                .execute(&mut conn)
                .await
                .expect("the old schema and data apply");
        }
        let _ = conn.close().await;
        let store = Store::connect(&url)
            .await
            .expect("migrate the old database");
        return Some(TestDb {
            store,
            _dir: Some(dir),
            postgres: None,
        });
    }
    if std::env::var("SWITCHBOARD_SKIP_POSTGRES").as_deref() == Ok("1") {
        return None;
    }
    let admin_url = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    let name = format!("sb_{}", random_suffix());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("reach PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let _ = admin.close().await;
    let database = PgDatabase { admin_url, name };
    let mut conn = PgConnection::connect(&database.url())
        .await
        .expect("open the old PostgreSQL database");
    for script in scripts.iter().copied().chain([record.as_str()]) {
        sqlx::raw_sql(script)
            .execute(&mut conn)
            .await
            .expect("the old schema and data apply");
    }
    let _ = conn.close().await;
    let store = Store::connect(&database.url())
        .await
        .expect("migrate the old database");
    Some(TestDb {
        store,
        _dir: None,
        postgres: Some(database),
    })
}

impl PgDatabase {
    /// The admin URL with the database name replaced.
    fn url(&self) -> String {
        let (base, query) = match self.admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (self.admin_url.as_str(), String::new()),
        };
        let (scheme, rest) = base.split_once("://").expect("admin URL has a scheme");
        let authority = rest.split('/').next().unwrap_or(rest);
        format!("{scheme}://{authority}/{}{query}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(database) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; a separate
        // thread with its own runtime can. Best effort: a leftover database is harmless.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&database.admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.name);
                    let _ = sqlx::query(&sql).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

pub fn user(text: &str) -> NewMessage {
    NewMessage::new(Role::User, text)
}

/// The instance that owns the replies the tests start.
pub const OWNER: &str = "test-instance";

/// An event to store, with a small JSON body naming it.
pub fn event(kind: &str) -> EventDraft {
    EventDraft::new(kind, "", format!(r#"{{"kind":"{kind}"}}"#))
}

/// Starts a turn in `chat_id`: a user message `text` and a streaming reply owned by [`OWNER`].
/// Returns the reply.
pub async fn start_reply(store: &Store, chat_id: &str, text: &str) -> Message {
    let turn = NewTurn {
        parent: TurnParent::End,
        messages: vec![user(text), NewMessage::streaming_reply("m")],
        owner: OWNER.into(),
        settings: None,
        files: Vec::new(),
    };
    let mut started = store
        .start_turn("default", chat_id, &turn, |_, _| Vec::new())
        .await
        .unwrap()
        .expect("chat exists");
    started.messages.pop().unwrap()
}

/// Appends `text` to a streaming reply as one delta event, as a generation does.
pub async fn append(store: &Store, reply: &Message, text: &str) -> Option<GenerationAck> {
    let mut delta = EventDraft::new("delta", &reply.id, format!(r#"{{"content":"{text}"}}"#));
    delta.part = Some(TextPart {
        content: text.into(),
        reasoning: String::new(),
    });
    store
        .write_generation(&GenerationWrite {
            chat_id: reply.chat_id.clone(),
            message_id: reply.id.clone(),
            owner: OWNER.into(),
            events: vec![delta],
            ..GenerationWrite::default()
        })
        .await
        .unwrap()
}

/// The final write of a reply by [`OWNER`], with a `done` event; deltas compacted.
pub fn finish(reply: &Message, status: MessageStatus, content: &str) -> MessageFinish {
    MessageFinish {
        chat_id: reply.chat_id.clone(),
        message_id: reply.id.clone(),
        owner: Some(OWNER.into()),
        status,
        content: content.into(),
        reasoning: String::new(),
        reasoning_details: None,
        tool_calls: None,
        annotations: None,
        usage: Usage::default(),
        finish_reason: Some("stop".into()),
        error_code: None,
        error_message: None,
        finished_at: 1,
        generation_id: None,
        provider: None,
        model: None,
        first_token_at: None,
        reasoning_ended_at: None,
        events: vec![EventDraft::new("done", &reply.id, "{}".into())],
        compact: vec!["delta".into()],
        attachments: None,
        files: Vec::new(),
    }
}
