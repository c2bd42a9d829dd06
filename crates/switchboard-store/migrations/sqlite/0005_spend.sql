-- The spend ledger: one row per upstream call paid with the server's key.
CREATE TABLE spend (
    workspace         TEXT NOT NULL,
    entry             TEXT NOT NULL,   -- chat, title, proxy, gateway
    model             TEXT,
    provider          TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    reasoning_tokens  INTEGER,
    cached_tokens     INTEGER,
    cost              REAL,            -- USD, as OpenRouter reported it
    at                INTEGER NOT NULL
);
CREATE INDEX spend_by_workspace ON spend (workspace, at);
