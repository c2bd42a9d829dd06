-- Login sessions of the web UI. The cookie carries a random session id (never anything derived
-- from an access code); the row says which workspace it logged in to and until when it is good.
-- Logging out deletes the row, so a copied cookie dies with it.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,   -- SHA-256 (hex) of the cookie's session id
    workspace  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL     -- ms since the epoch; moved on as the session is used
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
