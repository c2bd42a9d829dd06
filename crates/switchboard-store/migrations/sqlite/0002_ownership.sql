-- Conversations on several instances (and one instance that restarts): the database owns who
-- generates which reply, the order of a chat's events, and the text of a reply while it streams.

-- Each running process holds a lease, renewed by a heartbeat; a reply whose owner's lease has
-- expired is finished as `interrupted` by whichever instance notices first.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

ALTER TABLE messages ADD COLUMN owner TEXT;
ALTER TABLE messages ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;

-- Event seqs are assigned from this counter inside the transaction that stores the events, so
-- two writers (two instances) can never pick the same one.
ALTER TABLE chats ADD COLUMN last_event_seq INTEGER NOT NULL DEFAULT 0;
UPDATE chats SET last_event_seq = COALESCE((SELECT MAX(seq) FROM chat_events WHERE chat_id = chats.id), 0);

-- While a reply streams its text lives in its delta events (appended, never rewritten); the
-- finished text is written once and the deltas are compacted away.
ALTER TABLE chat_events ADD COLUMN content_part TEXT;
ALTER TABLE chat_events ADD COLUMN reasoning_part TEXT;
CREATE INDEX chat_events_by_message ON chat_events (message_id);

-- One reply per chat at a time, on any instance: a second streaming reply cannot be inserted.
-- Older versions could leave two; the older ones are closed first.
UPDATE messages SET status = 'interrupted'
WHERE status = 'streaming' AND EXISTS (
    SELECT 1 FROM messages later
    WHERE later.chat_id = messages.chat_id AND later.status = 'streaming' AND later.seq > messages.seq
);
CREATE UNIQUE INDEX messages_one_streaming_per_chat ON messages (chat_id) WHERE status = 'streaming';

-- The search index takes a reply once, when it finishes, instead of at every checkpoint.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
INSERT INTO messages_fts (messages_fts, rowid, content)
    SELECT 'delete', rid, content FROM messages WHERE status = 'streaming';

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.status <> 'streaming' BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rid, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.status <> 'streaming' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rid, old.content);
END;

CREATE TRIGGER messages_fts_finish AFTER UPDATE OF status ON messages
WHEN old.status = 'streaming' AND new.status <> 'streaming' BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rid, new.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN old.status <> 'streaming' AND new.status <> 'streaming' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rid, new.content);
END;
