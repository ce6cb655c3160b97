-- Retries, approvals of blocked jobs, and the per-org stream of every build's records.

-- The build a build retries (`POST /api/v1/builds/{id}/retry`), if it is a retry.
ALTER TABLE builds ADD COLUMN retry_of TEXT;

-- A blocked job waiting for a person: `waiting` while the build's script asks, then
-- `approved` or `rejected` (once: a decision stands, also for a build restarted after a crash).
CREATE TABLE approvals (
    build_id TEXT NOT NULL REFERENCES builds (id),
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    asked_ms BIGINT NOT NULL,
    decided_ms BIGINT,
    PRIMARY KEY (build_id, job_id)
);

-- The number of the org's last entry in `org_events`: taken and raised in the transaction
-- that writes the entries, which holds the org's row until it commits, so an org's entries
-- commit in the order of their numbers and a follower resuming after N misses none.
ALTER TABLE orgs ADD COLUMN last_event BIGINT NOT NULL DEFAULT 0;

-- Every build's records and queued builds of an org, in one numbered order: `seq` 0 is "the
-- build was queued", else the build's record `seq` (its body is in `build_events`).
CREATE TABLE org_events (
    org_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    repo TEXT NOT NULL,
    build_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (org_id, n)
);

CREATE INDEX org_events_by_repo ON org_events (org_id, repo, n);
