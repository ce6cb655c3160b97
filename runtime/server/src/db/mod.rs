//! The server's database: SQLite (WAL, in the data dir) or PostgreSQL, through one set of
//! queries (`sqlx`'s `Any` driver; `$1` parameters, which both understand) and one embedded
//! migration set applied at start.
//!
//! This module owns every SQL statement of the server. It knows nothing of HTTP, tokens'
//! meaning or how builds run: it stores and claims.

pub mod agents;
mod batch;
pub mod jobs_api;
mod org_log;
mod params;
#[cfg(test)]
pub(crate) mod testing;
mod usage;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
// Every statement built at run time below is made of constants and numbered parameters.
use sqlx::{AnyPool, AssertSqlSafe, Row, SqlSafeStr};

use crate::model::{Build, Org, Record, RecordBody, Repo, Status};

use self::batch::Batcher;

/// Why the database could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or answered with an error.
    #[error("database error")]
    Sql(#[from] sqlx::Error),
    /// The embedded migrations could not be applied.
    #[error("cannot apply the database migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names a database this server does not speak.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    Url(String),
    /// What was to be created exists already.
    #[error("{0} exists already")]
    Conflict(String),
    /// Params cannot be stored or read without the server key (the database was opened
    /// without one).
    #[error("params need the server key, and this database was opened without one")]
    NoServerKey,
    /// A sealed value or key does not open.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// A stored value could not be read back.
    #[error("the stored {what} is not valid: {detail}")]
    Corrupt {
        /// What was read.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// Which database is behind the pool: the few statements that differ branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file in WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The server's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// On SQLite, webhook deliveries are written in groups (see [`batch`]).
    deliveries: Option<Batcher<Delivery>>,
    /// The key params' data keys are sealed with (`with_server_key`).
    server_key: Option<std::sync::Arc<crate::secrets::Key>>,
}

/// A webhook delivery waiting for its group's transaction.
#[derive(Debug)]
struct Delivery {
    provider: String,
    delivery_id: String,
    builds: Vec<NewBuild>,
    reply: tokio::sync::oneshot::Sender<Result<Delivered, DbError>>,
}

/// The most deliveries written in one transaction.
const DELIVERY_GROUP: usize = 256;

/// A repository to add.
#[derive(Debug, Clone)]
pub struct NewRepo {
    /// The org it belongs to.
    pub org: String,
    /// Its name.
    pub name: String,
    /// Where git clones it from.
    pub url: String,
    /// Its main branch.
    pub main_branch: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// The secret webhooks are checked with.
    pub webhook_secret: Option<String>,
    /// Whether a build whose agent was lost is queued again, once.
    pub retry_lost: bool,
}

/// A build to queue.
#[derive(Debug, Clone, Default)]
pub struct NewBuild {
    /// The org of its repository.
    pub org: String,
    /// Its repository.
    pub repo: String,
    /// `api` or `webhook`.
    pub source: String,
    /// `push`, `tag`, `manual`, ...
    pub trigger: String,
    /// The full ref to build.
    pub git_ref: Option<String>,
    /// The commit to build (`None`: the ref's head when the agent clones).
    pub commit: Option<String>,
    /// The commit a push started from.
    pub before: Option<String>,
    /// The head commit's message.
    pub message: Option<String>,
    /// Who pushed.
    pub author: Option<String>,
    /// The files the push changed, when the forge listed them.
    pub changed: Option<Vec<String>>,
    /// The build this one retries.
    pub retry_of: Option<String>,
}

impl NewBuild {
    /// `build` again: the same repository, ref and commit (the one it built, not the ref's
    /// head now), with what its trigger said (source, message, author, changed files).
    pub fn again(build: Build) -> NewBuild {
        NewBuild {
            org: build.org,
            repo: build.repo,
            source: build.source,
            trigger: build.trigger,
            git_ref: build.git_ref,
            commit: build.commit,
            before: build.before,
            message: build.message,
            author: build.author,
            changed: build.changed,
            retry_of: None,
        }
    }
}

/// Which builds to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct BuildFilter {
    /// Only these orgs' builds (`None`: every org).
    pub orgs: Option<Vec<String>>,
    /// Only this repository's (needs one org).
    pub repo: Option<String>,
    /// Only builds in this status.
    pub status: Option<Status>,
    /// Only builds of this ref.
    pub git_ref: Option<String>,
    /// Only builds queued before this one (paging: the last id of the previous page).
    pub before_id: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// What queuing a webhook delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// New builds were queued.
    Queued(Vec<Build>),
    /// The delivery was seen before: the build it made then, if it made one.
    Seen(Option<String>),
}

/// Why a build whose agent stopped answering ended.
pub const AGENT_LOST: &str = "agent lost";

/// A repository's columns, in the order `repo_from_row` reads them.
const REPO_COLUMNS: &str = "org_id, name, url, main_branch, labels, webhook_secret, created_ms, retry_lost";

const BUILD_COLUMNS: &str = "id, org_id, repo, number, status, source, trigger_kind, git_ref, commit_sha, \
     before_sha, message, author, changes, error, agent, created_ms, started_ms, ended_ms, retry_of_lost, retry_of";

impl Db {
    /// Opens the database at `url` (`sqlite://PATH` or `postgres://...`), creating an SQLite
    /// file if missing, and applies the migrations.
    pub async fn open(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::Url(url.to_owned()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30)).max_connections(match backend {
            // SQLite has one writer; more connections only wait on its lock.
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        });
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL makes a commit one append (the mode itself is kept in the file);
                    // NORMAL syncs at checkpoints, which WAL keeps consistent on a crash.
                    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA busy_timeout = 30000").execute(&mut *conn).await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(&url).await?;
        migrator().run(&pool).await?;
        let deliveries = (backend == Backend::Sqlite).then(|| {
            let pool = pool.clone();
            Batcher::spawn(DELIVERY_GROUP, move |group| deliver_group(pool.clone(), group))
        });
        Ok(Db { pool, backend, deliveries, server_key: None })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- orgs ----

    /// Creates an org.
    pub async fn create_org(&self, id: &str) -> Result<Org, DbError> {
        let now = now();
        let done = sqlx::query("INSERT INTO orgs (id, created_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::Conflict(format!("org {id:?}")));
        }
        Ok(Org { id: id.to_owned(), created_ms: now })
    }

    /// Every org, or only `only`'s.
    pub async fn orgs(&self, only: Option<&str>) -> Result<Vec<Org>, DbError> {
        let rows = match only {
            Some(id) => {
                sqlx::query("SELECT id, created_ms FROM orgs WHERE id = $1").bind(id).fetch_all(&self.pool).await?
            }
            None => sqlx::query("SELECT id, created_ms FROM orgs ORDER BY id").fetch_all(&self.pool).await?,
        };
        rows.iter().map(|row| Ok(Org { id: row.try_get(0)?, created_ms: row.try_get(1)? })).collect()
    }

    /// The org `id`, if it exists.
    pub async fn org(&self, id: &str) -> Result<Option<Org>, DbError> {
        Ok(self.orgs(Some(id)).await?.into_iter().next())
    }

    // ---- repos ----

    /// Adds a repository.
    pub async fn create_repo(&self, repo: &NewRepo) -> Result<Repo, DbError> {
        let now = now();
        let done = sqlx::query(
            "INSERT INTO repos (org_id, name, url, main_branch, labels, webhook_secret, created_ms, retry_lost) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&repo.org)
        .bind(&repo.name)
        .bind(&repo.url)
        .bind(&repo.main_branch)
        .bind(to_json(&repo.labels))
        .bind(repo.webhook_secret.as_deref())
        .bind(now)
        .bind(i64::from(repo.retry_lost))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::Conflict(format!("repository {}/{}", repo.org, repo.name)));
        }
        Ok(Repo {
            org: repo.org.clone(),
            name: repo.name.clone(),
            url: repo.url.clone(),
            main_branch: repo.main_branch.clone(),
            labels: repo.labels.clone(),
            webhook_secret_set: repo.webhook_secret.is_some(),
            created_ms: now,
            retry_lost: repo.retry_lost,
        })
    }

    /// The org's repositories, by name.
    pub async fn repos(&self, org: &str) -> Result<Vec<Repo>, DbError> {
        let rows =
            sqlx::query(AssertSqlSafe(format!("SELECT {REPO_COLUMNS} FROM repos WHERE org_id = $1 ORDER BY name")))
                .bind(org)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|row| repo_from_row(row).map(|(repo, _)| repo)).collect()
    }

    /// The repository `org/name` and its webhook secret, if it exists.
    pub async fn repo(&self, org: &str, name: &str) -> Result<Option<(Repo, Option<String>)>, DbError> {
        let row =
            sqlx::query(AssertSqlSafe(format!("SELECT {REPO_COLUMNS} FROM repos WHERE org_id = $1 AND name = $2")))
                .bind(org)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(repo_from_row).transpose()
    }

    /// The repositories (and their webhook secrets) added under any of `urls`.
    pub async fn repos_by_url(&self, urls: &[String]) -> Result<Vec<(Repo, Option<String>)>, DbError> {
        let mut found = Vec::new();
        for url in urls {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {REPO_COLUMNS} FROM repos WHERE url = $1 ORDER BY org_id, name"
            )))
            .bind(url)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                let repo = repo_from_row(row)?;
                if !found.iter().any(|(r, _): &(Repo, _)| r.org == repo.0.org && r.name == repo.0.name) {
                    found.push(repo);
                }
            }
        }
        Ok(found)
    }

    // ---- tokens ----

    /// Keeps a token's hash with its scope.
    pub async fn add_token(
        &self,
        hash: &str,
        admin: bool,
        org: Option<&str>,
        description: &str,
    ) -> Result<(), DbError> {
        sqlx::query("INSERT INTO tokens (hash, admin, org_id, description, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash)
            .bind(i64::from(admin))
            .bind(org)
            .bind(description)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether any admin token exists.
    pub async fn has_admin_token(&self) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT COUNT(*) FROM tokens WHERE admin = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    // ---- builds ----

    /// Queues a build, numbered after the repository's last.
    pub async fn queue_build(&self, new: &NewBuild) -> Result<Build, DbError> {
        let mut tx = self.pool.begin().await?;
        let build = insert_build(&mut tx, new).await?;
        tx.commit().await?;
        Ok(build)
    }

    /// Queues the builds of one webhook delivery, unless the delivery was seen before (forges
    /// redeliver): in one transaction, so a delivery makes its builds once or not at all. On
    /// SQLite, deliveries that arrive together share that transaction (group commit).
    pub async fn queue_delivery(
        &self,
        provider: &str,
        delivery_id: &str,
        builds: &[NewBuild],
    ) -> Result<Delivered, DbError> {
        if let Some(batcher) = &self.deliveries {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let delivery = Delivery {
                provider: provider.to_owned(),
                delivery_id: delivery_id.to_owned(),
                builds: builds.to_vec(),
                reply,
            };
            if batcher.send(delivery).is_ok()
                && let Ok(delivered) = answer.await
            {
                return delivered;
            }
        }
        deliver_alone(&self.pool, provider, delivery_id, builds).await
    }

    /// The build `id`, if it exists.
    pub async fn build(&self, id: &str) -> Result<Option<Build>, DbError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(build_from_row).transpose()
    }

    /// Builds matching `filter`, newest first.
    pub async fn builds(&self, filter: &BuildFilter) -> Result<Vec<Build>, DbError> {
        let mut sql = format!("SELECT {BUILD_COLUMNS} FROM builds WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, value: String| {
            args.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(orgs) = &filter.orgs {
            if orgs.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(" AND org_id IN (");
            for (i, org) in orgs.iter().enumerate() {
                arg(&mut sql, if i == 0 { "?" } else { ", ?" }, org.clone());
            }
            sql.push(')');
        }
        if let Some(repo) = &filter.repo {
            arg(&mut sql, " AND repo = ?", repo.clone());
        }
        if let Some(status) = filter.status {
            arg(&mut sql, " AND status = ?", status.as_str().to_owned());
        }
        if let Some(git_ref) = &filter.git_ref {
            arg(&mut sql, " AND git_ref = ?", git_ref.clone());
        }
        if let Some(before) = &filter.before_id {
            arg(&mut sql, " AND id < ?", before.clone());
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", filter.limit.clamp(1, 1000)));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in &args {
            query = query.bind(value.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(build_from_row).collect()
    }

    /// How many builds there are in each state (every state listed, zeros included).
    pub async fn count_builds_by_status(&self) -> Result<Vec<(Status, i64)>, DbError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM builds GROUP BY status").fetch_all(&self.pool).await?;
        let mut counts: Vec<(Status, i64)> = Status::ALL.iter().map(|(_, s)| (*s, 0)).collect();
        for row in &rows {
            let status: String = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
                entry.1 = count;
            }
        }
        Ok(counts)
    }

    /// Claims the oldest queued build for `agent`: it is then running, and no other agent
    /// can claim it (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer).
    pub async fn claim_build(&self, agent: &str) -> Result<Option<Build>, DbError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let now = now();
        let sql = format!(
            "UPDATE builds SET status = 'running', agent = $1, started_ms = $2, heartbeat_ms = $2 \
             WHERE id = (SELECT id FROM builds WHERE status = 'queued' ORDER BY id LIMIT 1{lock}) \
             AND status = 'queued' RETURNING {BUILD_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql)).bind(agent).bind(now).fetch_optional(&self.pool).await?;
        row.as_ref().map(build_from_row).transpose()
    }

    /// Hands the builds `agent` was running back to the queue (it stopped, or it is the
    /// embedded agent of a server that was killed); returns how many.
    pub async fn requeue_agent_builds(&self, agent: &str) -> Result<u64, DbError> {
        let done = sqlx::query(
            "UPDATE builds SET status = 'queued', agent = NULL, started_ms = NULL, heartbeat_ms = NULL, \
             cancel_requests = 0 WHERE status = 'running' AND agent = $1",
        )
        .bind(agent)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Ends a build that is not over yet; `false` if it was.
    pub async fn finish_build(&self, id: &str, status: Status, error: Option<&str>) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE builds SET status = $1, error = $2, ended_ms = $3 \
             WHERE id = $4 AND status IN ('queued', 'running')",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Counts a request to cancel a running build; returns how many there were.
    pub async fn request_cancel(&self, id: &str) -> Result<i64, DbError> {
        let row = sqlx::query(
            "UPDATE builds SET cancel_requests = cancel_requests + 1 WHERE id = $1 AND status = 'running' \
             RETURNING cancel_requests",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get::<i64, _>(0)).transpose()?.unwrap_or(0))
    }

    // ---- a build's stream ----

    /// Appends records to a build's stream, numbered from `first_seq` on.
    pub async fn append_records(&self, build_id: &str, records: &[Record]) -> Result<(), DbError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        insert_records(&mut tx, build_id, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` records of a build's stream after `after`, in order.
    pub async fn records_after(&self, build_id: &str, after: i64, limit: i64) -> Result<Vec<Record>, DbError> {
        let rows = sqlx::query(
            "SELECT seq, kind, body FROM build_events WHERE build_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(build_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get(1)?;
                let body: String = row.try_get(2)?;
                Ok(Record { seq: row.try_get(0)?, body: join_record(&kind, &body)? })
            })
            .collect()
    }

    /// The number of the last record of a build's stream (0: none).
    pub async fn last_seq(&self, build_id: &str) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM build_events WHERE build_id = $1")
            .bind(build_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

/// The migrations, embedded: one SQL text each for both databases, applied in order once.
fn migrator() -> Migrator {
    let migrations = [
        (1, "init", include_str!("../../migrations/0001_init.sql")),
        (2, "agents", include_str!("../../migrations/0002_agents.sql")),
        (3, "params", include_str!("../../migrations/0003_params.sql")),
        (4, "usage", include_str!("../../migrations/0004_usage.sql")),
        (5, "jobs_api", include_str!("../../migrations/0005_jobs_api.sql")),
    ];
    Migrator::with_migrations(
        migrations
            .into_iter()
            .map(|(version, name, sql)| {
                Migration::new(version, name.into(), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}

/// One delivery in `tx`: its builds, or the build it made before.
async fn deliver_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    provider: &str,
    delivery_id: &str,
    builds: &[NewBuild],
) -> Result<Delivered, DbError> {
    let fresh = sqlx::query(
        "INSERT INTO deliveries (provider, delivery_id, received_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(provider)
    .bind(delivery_id)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    if fresh.rows_affected() == 0 {
        let row = sqlx::query("SELECT build_id FROM deliveries WHERE provider = $1 AND delivery_id = $2")
            .bind(provider)
            .bind(delivery_id)
            .fetch_one(&mut **tx)
            .await?;
        return Ok(Delivered::Seen(row.try_get(0)?));
    }
    let mut queued = Vec::with_capacity(builds.len());
    for new in builds {
        queued.push(insert_build(tx, new).await?);
    }
    if let Some(first) = queued.first() {
        sqlx::query("UPDATE deliveries SET build_id = $1 WHERE provider = $2 AND delivery_id = $3")
            .bind(&first.id)
            .bind(provider)
            .bind(delivery_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Delivered::Queued(queued))
}

/// One delivery in a transaction of its own.
async fn deliver_alone(
    pool: &AnyPool,
    provider: &str,
    delivery_id: &str,
    builds: &[NewBuild],
) -> Result<Delivered, DbError> {
    let mut tx = pool.begin().await?;
    let delivered = deliver_in(&mut tx, provider, delivery_id, builds).await?;
    tx.commit().await?;
    Ok(delivered)
}

/// A group of deliveries in one transaction; when that fails, each in its own, so one bad
/// delivery (its repository removed meanwhile) does not fail the others. Each is answered
/// once its transaction committed.
async fn deliver_group(pool: AnyPool, group: Vec<Delivery>) {
    let together = async {
        let mut tx = pool.begin().await?;
        let mut delivered = Vec::with_capacity(group.len());
        for d in &group {
            delivered.push(deliver_in(&mut tx, &d.provider, &d.delivery_id, &d.builds).await?);
        }
        tx.commit().await?;
        Ok::<_, DbError>(delivered)
    }
    .await;
    match together {
        Ok(delivered) => {
            for (d, delivered) in group.into_iter().zip(delivered) {
                let _ = d.reply.send(Ok(delivered));
            }
        }
        Err(_) => {
            for d in group {
                let delivered = deliver_alone(&pool, &d.provider, &d.delivery_id, &d.builds).await;
                let _ = d.reply.send(delivered);
            }
        }
    }
}

/// Stores `records` of a build's stream in `tx`, and notes them in its org's stream.
async fn insert_records(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    build_id: &str,
    records: &[Record],
) -> Result<(), DbError> {
    for record in records {
        let (kind, body) = record.body.kind_and_data();
        sqlx::query("INSERT INTO build_events (build_id, seq, kind, body) VALUES ($1, $2, $3, $4)")
            .bind(build_id)
            .bind(record.seq)
            .bind(kind)
            .bind(body)
            .execute(&mut **tx)
            .await?;
    }
    Ok(org_log::note_records(tx, build_id, records).await?)
}

async fn insert_build(tx: &mut sqlx::Transaction<'_, sqlx::Any>, new: &NewBuild) -> Result<Build, DbError> {
    let now = now();
    let id = crate::ids::new_build_id(now).map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?;
    let changes = new.changed.as_ref().map(to_json);
    org_log::note_queued(tx, &new.org, &new.repo, &id).await?;
    // The row lock this takes holds other builds of the repository until the commit.
    let number: i64 = sqlx::query(
        "UPDATE repos SET last_build = last_build + 1 WHERE org_id = $1 AND name = $2 RETURNING last_build",
    )
    .bind(&new.org)
    .bind(&new.repo)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| DbError::Conflict(format!("no repository {}/{}", new.org, new.repo)))?
    .try_get(0)?;
    let sql = format!(
        "INSERT INTO builds (id, org_id, repo, number, status, source, trigger_kind, git_ref, commit_sha, \
         before_sha, message, author, changes, created_ms, retry_of) \
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {BUILD_COLUMNS}"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(&id)
        .bind(&new.org)
        .bind(&new.repo)
        .bind(number)
        .bind(&new.source)
        .bind(&new.trigger)
        .bind(new.git_ref.as_deref())
        .bind(new.commit.as_deref())
        .bind(new.before.as_deref())
        .bind(new.message.as_deref())
        .bind(new.author.as_deref())
        .bind(changes)
        .bind(now)
        .bind(new.retry_of.as_deref())
        .fetch_one(&mut **tx)
        .await?;
    build_from_row(&row)
}

fn build_from_row(row: &AnyRow) -> Result<Build, DbError> {
    let status: String = row.try_get(4)?;
    let status = status.parse().map_err(|detail| DbError::Corrupt { what: "build status", detail })?;
    let changes: Option<String> = row.try_get(12)?;
    let changed = changes
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| DbError::Corrupt { what: "list of changed files", detail: e.to_string() })?;
    Ok(Build {
        id: row.try_get(0)?,
        org: row.try_get(1)?,
        repo: row.try_get(2)?,
        number: row.try_get(3)?,
        status,
        source: row.try_get(5)?,
        trigger: row.try_get(6)?,
        git_ref: row.try_get(7)?,
        commit: row.try_get(8)?,
        before: row.try_get(9)?,
        message: row.try_get(10)?,
        author: row.try_get(11)?,
        changed,
        error: row.try_get(13)?,
        agent: row.try_get(14)?,
        created_ms: row.try_get(15)?,
        started_ms: row.try_get(16)?,
        ended_ms: row.try_get(17)?,
        retry_of_lost: row.try_get(18)?,
        retry_of: row.try_get(19)?,
    })
}

fn repo_from_row(row: &AnyRow) -> Result<(Repo, Option<String>), DbError> {
    let labels: String = row.try_get(4)?;
    let labels = serde_json::from_str(&labels)
        .map_err(|e| DbError::Corrupt { what: "repository labels", detail: e.to_string() })?;
    let secret: Option<String> = row.try_get(5)?;
    let repo = Repo {
        org: row.try_get(0)?,
        name: row.try_get(1)?,
        url: row.try_get(2)?,
        main_branch: row.try_get(3)?,
        labels,
        webhook_secret_set: secret.is_some(),
        created_ms: row.try_get(6)?,
        retry_lost: row.try_get::<i64, _>(7)? != 0,
    };
    Ok((repo, secret))
}

fn join_record(kind: &str, body: &str) -> Result<RecordBody, DbError> {
    let corrupt = |detail: String| DbError::Corrupt { what: "build record", detail };
    RecordBody::from_kind_and_data(kind, body)
        .map_err(|e| corrupt(e.to_string()))?
        .ok_or_else(|| corrupt(format!("unknown kind {kind:?}")))
}

fn to_json(list: &Vec<String>) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn now() -> i64 {
    i64::try_from(monkeyci_protocol::now_ms()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
