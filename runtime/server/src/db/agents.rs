//! The agent protocol's statements: token scopes (the `agent` scope), heartbeats that answer
//! cancel requests, records appended with the numbers the agent gave them (each number stored
//! once: a resend is acknowledged, a gap refused), and the end of builds whose agent was lost,
//! with their one retry when the repository asks for it.

use sqlx::{AssertSqlSafe, Row};

use super::{BUILD_COLUMNS, Db, DbError, NewBuild, insert_build, insert_records, now};
use crate::model::{Build, Record, RecordBody, Status};

/// What a token may reach, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// Everything.
    Admin,
    /// One org.
    Org(String),
    /// The agent protocol only.
    Agent,
}

/// Why an agent's request about a build is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// There is no such build.
    #[error("no build {0}")]
    NoBuild(String),
    /// The build is not running (it ended, was taken for lost, or was never claimed).
    #[error("build {id} is not running ({status})")]
    NotRunning {
        /// The build.
        id: String,
        /// How it stands.
        status: Status,
    },
    /// The records would leave a gap in the build's stream.
    #[error("records must follow the stream without a gap: expected record {expected}, got {got}")]
    Gap {
        /// The number the next record must have.
        expected: i64,
        /// The first number sent.
        got: i64,
    },
}

impl Db {
    /// Keeps the hash of an agent token.
    pub async fn add_agent_token(&self, hash: &str, description: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO tokens (hash, admin, org_id, description, created_ms, agent) VALUES ($1, 0, NULL, $2, $3, 1)",
        )
        .bind(hash)
        .bind(description)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The scope of the token with this hash, if it is one of ours (and has a scope).
    pub async fn token_scope(&self, hash: &str) -> Result<Option<TokenScope>, DbError> {
        let row = sqlx::query("SELECT admin, org_id, agent FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (admin, org, agent) =
            (row.try_get::<i64, _>(0)? != 0, row.try_get::<Option<String>, _>(1)?, row.try_get::<i64, _>(2)? != 0);
        Ok(match (admin, org, agent) {
            (true, _, _) => Some(TokenScope::Admin),
            (false, Some(org), _) => Some(TokenScope::Org(org)),
            (false, None, true) => Some(TokenScope::Agent),
            (false, None, false) => None,
        })
    }

    /// Notes that the agent running `id` is alive (and the commit it found, once known);
    /// answers how many times canceling it was asked.
    pub async fn agent_heartbeat(&self, id: &str, commit: Option<&str>) -> Result<Result<i64, Refusal>, DbError> {
        let row = sqlx::query(
            "UPDATE builds SET heartbeat_ms = $1, commit_sha = COALESCE($2, commit_sha) \
             WHERE id = $3 AND status = 'running' RETURNING cancel_requests",
        )
        .bind(now())
        .bind(commit)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Ok(row.try_get(0)?)),
            None => Ok(Err(self.not_running(id).await?)),
        }
    }

    /// Why `id` takes no more from its agent.
    async fn not_running(&self, id: &str) -> Result<Refusal, DbError> {
        Ok(match self.build(id).await? {
            Some(build) => Refusal::NotRunning { id: id.to_owned(), status: build.status },
            None => Refusal::NoBuild(id.to_owned()),
        })
    }

    /// Appends records numbered by the agent from `first_seq` to a running build's stream, in
    /// one transaction: numbers stored already are acknowledged and skipped (a resend), the
    /// rest must follow the last stored without a gap. Answers the number of the last stored
    /// record and the records stored now (to hand to live followers). An append is also a
    /// sign of life.
    pub async fn append_numbered(
        &self,
        id: &str,
        first_seq: i64,
        bodies: Vec<RecordBody>,
    ) -> Result<Result<(i64, Vec<Record>), Refusal>, DbError> {
        let mut tx = self.pool.begin().await?;
        // A write first: it takes the build's row (PostgreSQL) or the database (SQLite) for
        // the transaction, so appends to one build follow each other.
        let alive = sqlx::query("UPDATE builds SET heartbeat_ms = $1 WHERE id = $2 AND status = 'running'")
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if alive.rows_affected() == 0 {
            drop(tx);
            return Ok(Err(self.not_running(id).await?));
        }
        let last: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM build_events WHERE build_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if first_seq < 1 || first_seq > last + 1 {
            return Ok(Err(Refusal::Gap { expected: last + 1, got: first_seq }));
        }
        let fresh: Vec<Record> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Record { seq: first_seq + i as i64, body })
            .filter(|record| record.seq > last)
            .collect();
        insert_records(&mut tx, id, &fresh).await?;
        tx.commit().await?;
        Ok(Ok((fresh.last().map_or(last, |r| r.seq), fresh)))
    }

    /// Counts the silence of agents from now: running builds' last sign of life is set to now
    /// (a server that was down heard nobody, which is not the agents' fault).
    pub async fn forgive_silence(&self) -> Result<u64, DbError> {
        let done = sqlx::query("UPDATE builds SET heartbeat_ms = $1 WHERE status = 'running'")
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Ends as `error: agent lost` every running build whose agent has not said it is alive
    /// for `silence_ms`, and queues once again each of them whose repository retries lost
    /// builds (a build that is itself a retry is not retried): in one transaction. Returns
    /// each lost build's id with its retry.
    pub async fn reap_and_retry(&self, silence_ms: i64) -> Result<Vec<(String, Option<Build>)>, DbError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "UPDATE builds SET status = 'error', error = $3, ended_ms = $1 \
             WHERE status = 'running' AND heartbeat_ms < $2 RETURNING id",
        )
        .bind(now())
        .bind(now() - silence_ms)
        .bind(super::AGENT_LOST)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<String> = rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
        let mut lost = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = format!(
                "SELECT {BUILD_COLUMNS} FROM builds b WHERE id = $1 AND retry_of_lost IS NULL AND EXISTS \
                 (SELECT 1 FROM repos r WHERE r.org_id = b.org_id AND r.name = b.repo AND r.retry_lost = 1)"
            );
            let row = sqlx::query(AssertSqlSafe(sql)).bind(&id).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                lost.push((id, None));
                continue;
            };
            // The same commit: the retry builds what the lost build built.
            let new = NewBuild::again(super::build_from_row(&row)?);
            let mut retry = insert_build(&mut tx, &new).await?;
            sqlx::query("UPDATE builds SET retry_of_lost = $1 WHERE id = $2")
                .bind(&id)
                .bind(&retry.id)
                .execute(&mut *tx)
                .await?;
            retry.retry_of_lost = Some(id.clone());
            lost.push((id, Some(retry)));
        }
        tx.commit().await?;
        Ok(lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{NewRepo, testing};
    use crate::model::Line;

    async fn db_with_repo(retry_lost: bool) -> (tempfile::TempDir, Db) {
        let (dir, db) = testing::acme_with(&[]).await;
        db.create_repo(&NewRepo { retry_lost, ..testing::repo("app") }).await.unwrap();
        (dir, db)
    }

    fn new_build() -> NewBuild {
        testing::build("app")
    }

    fn lines(texts: &[&str]) -> Vec<RecordBody> {
        texts
            .iter()
            .map(|t| RecordBody::Line(Line { stream: monkeyci_protocol::OutputStream::Stdout, line: (*t).to_owned() }))
            .collect()
    }

    async fn stored(db: &Db, id: &str) -> Vec<(i64, String)> {
        db.records_after(id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| match r.body {
                RecordBody::Line(line) => (r.seq, line.line),
                other => (r.seq, format!("{other:?}")),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_resend_is_acknowledged_once_and_a_gap_is_refused_naming_the_expected_number() {
        let (_dir, db) = db_with_repo(false).await;
        let queued = db.queue_build(&new_build()).await.unwrap();
        // Not claimed yet: no agent may write to it.
        let refused = db.append_numbered(&queued.id, 1, lines(&["early"])).await.unwrap();
        assert_eq!(refused, Err(Refusal::NotRunning { id: queued.id.clone(), status: Status::Queued }));
        let id = db.claim_build("a1").await.unwrap().unwrap().id;

        let (last, fresh) = db.append_numbered(&id, 1, lines(&["one", "two"])).await.unwrap().unwrap();
        assert_eq!((last, fresh.len()), (2, 2));
        // The answer was lost, the agent sends the same again, with one more: only the new one
        // is kept.
        let (last, fresh) = db.append_numbered(&id, 1, lines(&["one", "two", "three"])).await.unwrap().unwrap();
        assert_eq!((last, fresh.iter().map(|r| r.seq).collect::<Vec<_>>()), (3, vec![3]));
        // A resend of only what is stored: acknowledged, nothing stored.
        let (last, fresh) = db.append_numbered(&id, 2, lines(&["two"])).await.unwrap().unwrap();
        assert_eq!((last, fresh.len()), (3, 0));
        // A gap: refused, naming the number expected.
        let gap = db.append_numbered(&id, 5, lines(&["five"])).await.unwrap();
        assert_eq!(gap, Err(Refusal::Gap { expected: 4, got: 5 }));
        assert!(gap.unwrap_err().to_string().contains("expected record 4"));
        assert_eq!(
            db.append_numbered(&id, 0, lines(&["zero"])).await.unwrap(),
            Err(Refusal::Gap { expected: 4, got: 0 })
        );
        assert_eq!(stored(&db, &id).await, vec![(1, "one".to_owned()), (2, "two".to_owned()), (3, "three".to_owned())]);

        // Over: nothing more is taken, and the heartbeat says so.
        assert!(db.finish_build(&id, Status::Success, None).await.unwrap());
        let over = Refusal::NotRunning { id: id.clone(), status: Status::Success };
        assert_eq!(db.append_numbered(&id, 4, lines(&["late"])).await.unwrap(), Err(over.clone()));
        assert_eq!(db.agent_heartbeat(&id, None).await.unwrap(), Err(over));
        assert_eq!(db.append_numbered("nope", 1, lines(&["x"])).await.unwrap(), Err(Refusal::NoBuild("nope".into())));
    }

    #[tokio::test]
    async fn the_heartbeat_answers_cancel_requests() {
        let (_dir, db) = db_with_repo(false).await;
        db.queue_build(&new_build()).await.unwrap();
        let id = db.claim_build("a1").await.unwrap().unwrap().id;
        assert_eq!(db.agent_heartbeat(&id, Some("abc")).await.unwrap(), Ok(0));
        db.request_cancel(&id).await.unwrap();
        assert_eq!(db.agent_heartbeat(&id, None).await.unwrap(), Ok(1));
        assert_eq!(db.build(&id).await.unwrap().unwrap().commit.as_deref(), Some("abc"));
    }

    #[tokio::test]
    async fn a_lost_build_is_retried_once_when_its_repository_says_so() {
        for retry_lost in [false, true] {
            let (_dir, db) = db_with_repo(retry_lost).await;
            let lost = db.queue_build(&new_build()).await.unwrap();
            db.claim_build("a1").await.unwrap().unwrap();
            db.agent_heartbeat(&lost.id, Some("c0ffee")).await.unwrap().unwrap();
            let silence = |id: String| {
                let db = db.clone();
                async move {
                    sqlx::query("UPDATE builds SET heartbeat_ms = heartbeat_ms - 60000 WHERE id = $1")
                        .bind(id)
                        .execute(&db.pool)
                        .await
                        .unwrap();
                }
            };
            silence(lost.id.clone()).await;
            let reaped = db.reap_and_retry(30_000).await.unwrap();
            assert_eq!(reaped.len(), 1);
            assert_eq!(reaped[0].0, lost.id);
            let ended = db.build(&lost.id).await.unwrap().unwrap();
            assert_eq!((ended.status, ended.error.as_deref()), (Status::Error, Some(super::super::AGENT_LOST)));
            if !retry_lost {
                assert!(reaped[0].1.is_none());
                continue;
            }
            let retry = reaped[0].1.clone().unwrap();
            assert_eq!(retry.status, Status::Queued);
            assert_eq!(retry.retry_of_lost.as_deref(), Some(lost.id.as_str()));
            assert_eq!(retry.commit.as_deref(), Some("c0ffee"), "the same commit");
            assert_eq!(retry.number, 2);
            assert_eq!(db.build(&retry.id).await.unwrap().unwrap(), retry);
            // The retry is lost too: it ends, and is not retried again.
            assert_eq!(db.claim_build("a2").await.unwrap().unwrap().id, retry.id);
            silence(retry.id.clone()).await;
            assert_eq!(db.reap_and_retry(30_000).await.unwrap(), vec![(retry.id.clone(), None)]);
            assert!(db.claim_build("a2").await.unwrap().is_none());
        }
    }
}
