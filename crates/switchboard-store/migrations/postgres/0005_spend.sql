-- The spend ledger: one row per upstream call paid with the server's key.
CREATE TABLE spend (
    workspace         TEXT NOT NULL,
    entry             TEXT NOT NULL,   -- chat, title, proxy, gateway
    model             TEXT,
    provider          TEXT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    reasoning_tokens  BIGINT,
    cached_tokens     BIGINT,
    cost              DOUBLE PRECISION, -- USD, as OpenRouter reported it
    at                BIGINT NOT NULL
);
CREATE INDEX spend_by_workspace ON spend (workspace, at);
