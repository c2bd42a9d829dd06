-- Workspaces known by a user's own key whose key has paid for a completed reply from a configured
-- provider: they get the full storage quota, the others a small one.
CREATE TABLE verified_workspaces (
    workspace   TEXT PRIMARY KEY,
    verified_at BIGINT NOT NULL
);
