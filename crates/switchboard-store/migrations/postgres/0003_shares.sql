-- Share links: a read-only copy of a chat as it was when it was shared, reachable by a random token.
-- Deleting the chat (or revoking the link) deletes the copy.
CREATE TABLE shares (
    token      TEXT PRIMARY KEY,
    chat_id    TEXT NOT NULL UNIQUE REFERENCES chats (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    messages   TEXT NOT NULL,   -- the chat's finished messages, as JSON
    created_at BIGINT NOT NULL
);
