-- Switchboard schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql:
-- the queries in src/ are shared, so column names and meanings must match.

CREATE TABLE chats (
    id          TEXT PRIMARY KEY,
    workspace   TEXT NOT NULL,
    title       TEXT NOT NULL,
    settings    TEXT NOT NULL,   -- ChatSettings as JSON
    forked_from TEXT REFERENCES chats (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Serves list_chats: one workspace, newest first, keyset pagination on (updated_at, id).
CREATE INDEX chats_by_workspace_updated ON chats (workspace, updated_at DESC, id DESC);

CREATE TABLE messages (
    -- An explicit INTEGER PRIMARY KEY makes the rowid stable across VACUUM; the
    -- external-content FTS index below refers to messages by rowid.
    rid               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    chat_id           TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    role              TEXT NOT NULL,
    content           TEXT NOT NULL,
    reasoning         TEXT NOT NULL,
    reasoning_details TEXT,
    tool_calls        TEXT,
    annotations       TEXT,
    attachments       TEXT,
    model             TEXT,
    provider          TEXT,
    generation_id     TEXT,
    status            TEXT NOT NULL,
    error_code        TEXT,
    error_message     TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    reasoning_tokens  INTEGER,
    cached_tokens     INTEGER,
    cost              REAL,
    finish_reason     TEXT,
    created_at        INTEGER NOT NULL,
    first_token_at    INTEGER,
    finished_at       INTEGER,
    UNIQUE (chat_id, seq)
);

-- Start-up recovery looks for messages left `streaming` by a previous process.
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';

CREATE TABLE chat_events (
    chat_id    TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (chat_id, seq)
);

-- Full-text index over message content. External content: the text lives once, in
-- `messages`; the triggers keep the index in step with every insert, update and delete
-- (including deletes cascaded from chats).
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    content,
    content = 'messages',
    content_rowid = 'rid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rid, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rid, old.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rid, new.content);
END;
