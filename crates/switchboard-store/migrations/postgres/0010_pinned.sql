-- Pinned chats stay at the top of the sidebar, newest pin first; NULL is not pinned.
ALTER TABLE chats ADD COLUMN pinned_at BIGINT;
CREATE INDEX chats_pinned ON chats (workspace, pinned_at) WHERE pinned_at IS NOT NULL;
