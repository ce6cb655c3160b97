-- The server's schema. One text for SQLite and PostgreSQL: TEXT, BIGINT (0/1 for flags) and
-- times as milliseconds since the Unix epoch.

CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL
);

CREATE TABLE repos (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    main_branch TEXT NOT NULL,
    labels TEXT NOT NULL,
    webhook_secret TEXT,
    -- The number of the repository's last build: taken and raised in one statement, which
    -- holds the row, so concurrent builds get numbers one after the other.
    last_build BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE builds (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    repo TEXT NOT NULL,
    number BIGINT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    git_ref TEXT,
    commit_sha TEXT,
    before_sha TEXT,
    message TEXT,
    author TEXT,
    changes TEXT,
    error TEXT,
    agent TEXT,
    cancel_requests BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    started_ms BIGINT,
    ended_ms BIGINT,
    heartbeat_ms BIGINT,
    FOREIGN KEY (org_id, repo) REFERENCES repos (org_id, name),
    UNIQUE (org_id, repo, number)
);

CREATE INDEX builds_by_status ON builds (status, created_ms);
CREATE INDEX builds_by_repo ON builds (org_id, repo, number);

CREATE TABLE build_events (
    build_id TEXT NOT NULL REFERENCES builds (id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);

CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    admin BIGINT NOT NULL,
    org_id TEXT REFERENCES orgs (id),
    description TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE deliveries (
    provider TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    build_id TEXT,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);
