-- Params (issue 11): org param sets with label filters, repositories' own params, each value
-- sealed with its org's data key, which is itself sealed with the server's key (never stored
-- here). And per-build tokens, which reach only their build's params while it runs.

CREATE TABLE org_keys (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id),
    -- The org's data key sealed with the server key (base64 of nonce, ciphertext, tag).
    wrapped_key TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE param_sets (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    -- JSON: an OR of AND clauses, [[{"label": ..., "value": ...}]]; [] matches every repository.
    label_filter TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE param_values (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    -- `set:NAME` for a param set's, `repo:NAME` for a repository's own.
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    -- The value sealed with the org's data key, bound to (org, owner, name).
    sealed TEXT NOT NULL,
    value_len BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, owner, name)
);

CREATE TABLE build_tokens (
    hash TEXT PRIMARY KEY,
    build_id TEXT NOT NULL REFERENCES builds (id),
    created_ms BIGINT NOT NULL
);

CREATE INDEX build_tokens_by_build ON build_tokens (build_id);
