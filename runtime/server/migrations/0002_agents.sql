-- Remote agents: agent tokens, retries of builds whose agent was lost.

-- A token of the `agent` scope (1): it reaches only the agent protocol's routes.
ALTER TABLE tokens ADD COLUMN agent BIGINT NOT NULL DEFAULT 0;

-- Whether a build of the repository whose agent was lost is queued again, once (1), or not (0).
ALTER TABLE repos ADD COLUMN retry_lost BIGINT NOT NULL DEFAULT 0;

-- The build a build runs again because that build's agent was lost; at most one retry each.
ALTER TABLE builds ADD COLUMN retry_of_lost TEXT;
CREATE UNIQUE INDEX builds_retry_of_lost ON builds (retry_of_lost);
