-- Metering (issue 11): what each ended build, and each of its jobs, used, written once per
-- build by the meter; and each org's optional monthly credit limit. Times in milliseconds.

CREATE TABLE build_usage (
    build_id TEXT PRIMARY KEY REFERENCES builds (id),
    org_id TEXT NOT NULL,
    -- When the build ended: the period it counts in.
    ended_ms BIGINT NOT NULL,
    container_ms BIGINT NOT NULL,
    -- Container milliseconds times each container's size.
    container_size_ms BIGINT NOT NULL,
    action_ms BIGINT NOT NULL,
    script_ms BIGINT NOT NULL,
    metered_ms BIGINT NOT NULL
);

CREATE INDEX build_usage_by_org ON build_usage (org_id, ended_ms);

CREATE TABLE job_usage (
    build_id TEXT NOT NULL REFERENCES build_usage (build_id),
    job_id TEXT NOT NULL,
    -- `action`, `container`, or `unknown` (the plan did not name it).
    kind TEXT NOT NULL,
    container_ms BIGINT NOT NULL,
    container_size_ms BIGINT NOT NULL,
    run_ms BIGINT NOT NULL,
    PRIMARY KEY (build_id, job_id)
);

CREATE TABLE org_credits (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id),
    -- Credits (size-seconds of containers plus seconds of script processes) an org's builds
    -- may use in a calendar month (UTC).
    monthly_limit BIGINT NOT NULL
);
