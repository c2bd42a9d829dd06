-- Files stored with a message: what a user attached (PDFs, text files) and the images a model
-- generated. The bytes are kept as base64 text, as they arrived in their data URL, so both backends
-- store them alike; a message's `attachments` names its files ({"file": id, "name", "mime",
-- "size"}) and pages fetch them from their own route, never inline.
CREATE TABLE message_files (
    id         TEXT PRIMARY KEY,
    chat_id    TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    mime       TEXT NOT NULL,
    size       BIGINT NOT NULL,   -- decoded bytes
    data       TEXT NOT NULL,     -- base64
    created_at BIGINT NOT NULL
);

-- The quota's per-chat sums, and deletes cascading from a message.
CREATE INDEX message_files_by_chat ON message_files (chat_id);
CREATE INDEX message_files_by_message ON message_files (message_id);
