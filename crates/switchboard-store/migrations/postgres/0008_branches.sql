-- Branches: a conversation is a tree. Every message but a chat's first has a parent; among the
-- children of one parent exactly one is `active` (the branch a switch back to that point shows),
-- and the chat's active path (what the page shows and what is sent to the model) is marked
-- `on_path`, kept in step by the writes that change it (a new turn, a select), so reading the
-- path is one indexed query and no walk of the tree.
-- Keep in step with the other dialect's 0008_branches.sql: the queries in src/ are shared.

ALTER TABLE messages ADD COLUMN parent_id TEXT;
ALTER TABLE messages ADD COLUMN active BIGINT NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN on_path BIGINT NOT NULL DEFAULT 1;

-- Existing chats become single-path trees: each message's parent is the one before it.
UPDATE messages SET parent_id = (
    SELECT p.id FROM messages p
    WHERE p.chat_id = messages.chat_id AND p.seq < messages.seq
    ORDER BY p.seq DESC LIMIT 1
);

-- Siblings (the children of one parent) and the walks up and down the tree.
CREATE INDEX messages_by_parent ON messages (chat_id, parent_id);
-- The branches beside a page of the path: few rows, so reading a chat without branches costs an
-- empty index probe.
CREATE INDEX messages_off_path ON messages (chat_id, parent_id) WHERE on_path = 0;

-- One *turn* per chat at a time: a compare streams several replies, siblings under one user
-- message. `start_turn` checks for a running turn with the chat row locked, which serialises
-- turns of one chat on both databases.
DROP INDEX messages_one_streaming_per_chat;
