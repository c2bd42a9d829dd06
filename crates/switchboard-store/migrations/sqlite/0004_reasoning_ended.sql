-- When a reply's reasoning ended (its first answer token): "thought for" survives a reload.
ALTER TABLE messages ADD COLUMN reasoning_ended_at INTEGER;
