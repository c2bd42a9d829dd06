-- Switchboard schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_initial.sql:
-- the queries in src/ are shared, so column names and meanings must match.

CREATE TABLE chats (
    id          TEXT PRIMARY KEY,
    workspace   TEXT NOT NULL,
    title       TEXT NOT NULL,
    settings    TEXT NOT NULL,   -- ChatSettings as JSON
    forked_from TEXT REFERENCES chats (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Serves list_chats: one workspace, newest first, keyset pagination on (updated_at, id).
CREATE INDEX chats_by_workspace_updated ON chats (workspace, updated_at DESC, id DESC);

CREATE TABLE messages (
    id                TEXT PRIMARY KEY,
    chat_id           TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
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
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    reasoning_tokens  BIGINT,
    cached_tokens     BIGINT,
    cost              DOUBLE PRECISION,
    finish_reason     TEXT,
    created_at        BIGINT NOT NULL,
    first_token_at    BIGINT,
    finished_at       BIGINT,
    -- A tsvector is capped at 1 MB; indexing only the first 100k characters keeps a
    -- huge pasted message from failing its INSERT.
    search            TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', left(content, 100000))) STORED,
    UNIQUE (chat_id, seq)
);

CREATE INDEX messages_search ON messages USING GIN (search);

-- Start-up recovery looks for messages left `streaming` by a previous process.
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';

CREATE TABLE chat_events (
    chat_id    TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chat_id, seq)
);
