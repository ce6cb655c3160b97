//! The queries behind a build's jobs, logs and approvals, and behind the live events of an
//! org or a repository: a build's whole stream, the approvals table, and reading the org's
//! numbered stream (`org_events`, written by `org_log`).

use sqlx::Row;

use super::{Db, DbError, join_record, now};
use crate::model::Record;

/// Where the decision about a blocked job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nobody decided yet.
    Waiting,
    /// It may run.
    Approved,
    /// It may not.
    Rejected,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Waiting => "waiting",
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Result<Decision, DbError> {
        match text {
            "waiting" => Ok(Decision::Waiting),
            "approved" => Ok(Decision::Approved),
            "rejected" => Ok(Decision::Rejected),
            other => Err(DbError::Corrupt { what: "approval state", detail: format!("{other:?}") }),
        }
    }
}

/// One entry of an org's stream: a build queued (`record` is `None`) or one of its records.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgEntry {
    /// Its place in the org's stream, from 1.
    pub n: i64,
    /// The build's repository.
    pub repo: String,
    /// The build.
    pub build_id: String,
    /// The record, or `None` for "the build was queued".
    pub record: Option<Record>,
}

/// Most records a page of a build's stream holds when it is read whole.
const PAGE: i64 = 1000;

impl Db {
    /// Every record of a build's stream, in order.
    pub async fn all_records(&self, build_id: &str) -> Result<Vec<Record>, DbError> {
        let mut all: Vec<Record> = Vec::new();
        loop {
            let after = all.last().map_or(0, |r| r.seq);
            let page = self.records_after(build_id, after, PAGE).await?;
            let done = (page.len() as i64) < PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Notes that the build's script waits for a decision about `job`, unless one was taken
    /// already (a build restarted after a crash asks again); where the decision stands.
    pub async fn ask_approval(&self, build_id: &str, job: &str) -> Result<Decision, DbError> {
        sqlx::query(
            "INSERT INTO approvals (build_id, job_id, state, asked_ms) VALUES ($1, $2, 'waiting', $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(build_id)
        .bind(job)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(self.approval(build_id, job).await?.unwrap_or(Decision::Waiting))
    }

    /// Where the decision about `job` of the build stands, if it was ever asked.
    pub async fn approval(&self, build_id: &str, job: &str) -> Result<Option<Decision>, DbError> {
        let row = sqlx::query("SELECT state FROM approvals WHERE build_id = $1 AND job_id = $2")
            .bind(build_id)
            .bind(job)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Decision::parse(&row.try_get::<String, _>(0)?)).transpose()
    }

    /// Decides about a job that waits for it in a running build; `false` if it does not wait.
    pub async fn decide(&self, build_id: &str, job: &str, approve: bool) -> Result<bool, DbError> {
        let decision = if approve { Decision::Approved } else { Decision::Rejected };
        let done = sqlx::query(
            "UPDATE approvals SET state = $1, decided_ms = $2 \
             WHERE build_id = $3 AND job_id = $4 AND state = 'waiting' \
             AND EXISTS (SELECT 1 FROM builds WHERE id = $3 AND status = 'running')",
        )
        .bind(decision.as_str())
        .bind(now())
        .bind(build_id)
        .bind(job)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Up to `limit` entries of `org`'s stream (only `repo`'s, if given) after `after`, in order.
    pub async fn org_entries(
        &self,
        org: &str,
        repo: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OrgEntry>, DbError> {
        let base = "SELECT o.n, o.repo, o.build_id, o.seq, e.kind, e.body FROM org_events o \
             LEFT JOIN build_events e ON e.build_id = o.build_id AND e.seq = o.seq \
             WHERE o.org_id = $1 AND o.n > $2";
        let query = match repo {
            Some(repo) => sqlx::query(sqlx::AssertSqlSafe(format!("{base} AND o.repo = $3 ORDER BY o.n LIMIT $4")))
                .bind(org)
                .bind(after)
                .bind(repo.to_owned())
                .bind(limit),
            None => sqlx::query(sqlx::AssertSqlSafe(format!("{base} ORDER BY o.n LIMIT $3")))
                .bind(org)
                .bind(after)
                .bind(limit),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(3)?;
                let kind: Option<String> = row.try_get(4)?;
                let body: Option<String> = row.try_get(5)?;
                let record = match (seq, kind, body) {
                    (0, _, _) => None,
                    (seq, Some(kind), Some(body)) => Some(Record { seq, body: join_record(&kind, &body)? }),
                    (seq, _, _) => {
                        return Err(DbError::Corrupt { what: "org event", detail: format!("no record {seq}") });
                    }
                };
                Ok(OrgEntry { n: row.try_get(0)?, repo: row.try_get(1)?, build_id: row.try_get(2)?, record })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::NewBuild;
    use crate::model::{Line, RecordBody};

    async fn db() -> (tempfile::TempDir, Db) {
        crate::db::testing::acme_with(&["one", "two"]).await
    }

    fn queue(repo: &str) -> NewBuild {
        NewBuild {
            org: "acme".into(),
            repo: repo.into(),
            source: "api".into(),
            trigger: "manual".into(),
            ..NewBuild::default()
        }
    }

    fn line(seq: i64, text: &str) -> Record {
        Record {
            seq,
            body: RecordBody::Line(Line { stream: monkeyci_protocol::OutputStream::Stdout, line: text.into() }),
        }
    }

    #[tokio::test]
    async fn an_orgs_stream_numbers_queued_builds_and_their_records_in_one_order() {
        let (_dir, db) = db().await;
        let one = db.queue_build(&queue("one")).await.unwrap();
        let two = db.queue_build(&queue("two")).await.unwrap();
        db.append_records(&one.id, &[line(1, "a"), line(2, "b")]).await.unwrap();
        db.append_records(&two.id, &[line(1, "c")]).await.unwrap();
        let all = db.org_entries("acme", None, 0, 100).await.unwrap();
        let seen: Vec<(i64, &str, Option<i64>)> =
            all.iter().map(|e| (e.n, e.build_id.as_str(), e.record.as_ref().map(|r| r.seq))).collect();
        assert_eq!(
            seen,
            [
                (1, one.id.as_str(), None),
                (2, two.id.as_str(), None),
                (3, &one.id, Some(1)),
                (4, &one.id, Some(2)),
                (5, &two.id, Some(1))
            ]
        );
        assert_eq!(db.org_entries("acme", None, 3, 100).await.unwrap().first().map(|e| e.n), Some(4), "after 3");
        let of_two: Vec<i64> = db.org_entries("acme", Some("two"), 0, 100).await.unwrap().iter().map(|e| e.n).collect();
        assert_eq!(of_two, [2, 5]);
        assert_eq!(db.org_entries("acme", None, 0, 2).await.unwrap().len(), 2, "a page");
    }

    #[tokio::test]
    async fn a_job_is_decided_once_while_it_waits_in_a_running_build() {
        let (_dir, db) = db().await;
        let build = db.queue_build(&queue("one")).await.unwrap();
        assert!(!db.decide(&build.id, "deploy", true).await.unwrap(), "nobody asked");
        assert_eq!(db.claim_build("agent").await.unwrap().map(|b| b.id), Some(build.id.clone()));
        assert_eq!(db.ask_approval(&build.id, "deploy").await.unwrap(), Decision::Waiting);
        assert!(!db.decide(&build.id, "other", true).await.unwrap(), "another job does not wait");
        assert!(db.decide(&build.id, "deploy", false).await.unwrap());
        assert!(!db.decide(&build.id, "deploy", true).await.unwrap(), "decided once");
        assert_eq!(db.approval(&build.id, "deploy").await.unwrap(), Some(Decision::Rejected));
        assert_eq!(db.ask_approval(&build.id, "deploy").await.unwrap(), Decision::Rejected, "asked again: it stands");
        assert_eq!(db.ask_approval(&build.id, "late").await.unwrap(), Decision::Waiting);
        db.finish_build(&build.id, crate::model::Status::Canceled, None).await.unwrap();
        assert!(!db.decide(&build.id, "late", true).await.unwrap(), "the build is over");
    }
}
