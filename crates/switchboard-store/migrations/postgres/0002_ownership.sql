-- Conversations on several instances (and one instance that restarts): the database owns who
-- generates which reply, the order of a chat's events, and the text of a reply while it streams.
-- Keep in step with ../sqlite/0002_ownership.sql.

-- Each running process holds a lease, renewed by a heartbeat; a reply whose owner's lease has
-- expired is finished as `interrupted` by whichever instance notices first.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

ALTER TABLE messages ADD COLUMN owner TEXT;
ALTER TABLE messages ADD COLUMN stop_requested BIGINT NOT NULL DEFAULT 0;

-- Event seqs are assigned from this counter inside the transaction that stores the events (the
-- chat row is locked meanwhile), so two instances can never pick the same one.
ALTER TABLE chats ADD COLUMN last_event_seq BIGINT NOT NULL DEFAULT 0;
UPDATE chats SET last_event_seq = COALESCE((SELECT MAX(seq) FROM chat_events WHERE chat_id = chats.id), 0);

-- While a reply streams its text lives in its delta events (appended, never rewritten); the
-- finished text is written once and the deltas are compacted away.
ALTER TABLE chat_events ADD COLUMN content_part TEXT;
ALTER TABLE chat_events ADD COLUMN reasoning_part TEXT;
CREATE INDEX chat_events_by_message ON chat_events (message_id);

-- One reply per chat at a time, on any instance. Older versions could leave two; the older
-- ones are closed first.
UPDATE messages SET status = 'interrupted'
WHERE status = 'streaming' AND EXISTS (
    SELECT 1 FROM messages later
    WHERE later.chat_id = messages.chat_id AND later.status = 'streaming' AND later.seq > messages.seq
);
CREATE UNIQUE INDEX messages_one_streaming_per_chat ON messages (chat_id) WHERE status = 'streaming';

-- The search vector is computed once, when a message is stored finished or a reply finishes,
-- instead of on every write of a streaming reply (a generated column recomputed each time).
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages ADD COLUMN search TSVECTOR;
UPDATE messages SET search = to_tsvector('simple', left(content, 100000)) WHERE status <> 'streaming';
CREATE INDEX messages_search ON messages USING GIN (search);

CREATE FUNCTION messages_search_vector() RETURNS trigger AS $$
BEGIN
    IF NEW.status = 'streaming' THEN
        NEW.search := NULL;
    ELSIF TG_OP = 'INSERT' OR OLD.status = 'streaming' OR NEW.content IS DISTINCT FROM OLD.content THEN
        NEW.search := to_tsvector('simple', left(NEW.content, 100000));
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER messages_search_vector BEFORE INSERT OR UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_search_vector();
