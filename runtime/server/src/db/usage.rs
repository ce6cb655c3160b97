//! Metering's statements: each ended build's usage, written once; usage by org and period;
//! builds not metered yet; orgs' credit limits.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError};
use crate::usage::{MeteredBuild, MeteredJob};

impl Db {
    /// Keeps what an ended build used and what each of its jobs did, in one transaction;
    /// `false` if it was metered before (nothing is written twice).
    pub async fn record_usage(&self, usage: &MeteredBuild) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO build_usage (build_id, org_id, ended_ms, container_ms, container_size_ms, action_ms, \
             script_ms, metered_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&usage.build_id)
        .bind(&usage.org)
        .bind(usage.ended_ms)
        .bind(usage.container_ms)
        .bind(usage.container_size_ms)
        .bind(usage.action_ms)
        .bind(usage.script_ms)
        .bind(super::now())
        .execute(&mut *tx)
        .await?;
        if fresh.rows_affected() == 0 {
            return Ok(false);
        }
        for job in &usage.jobs {
            sqlx::query(
                "INSERT INTO job_usage (build_id, job_id, kind, container_ms, container_size_ms, run_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&usage.build_id)
            .bind(&job.job_id)
            .bind(&job.kind)
            .bind(job.container_ms)
            .bind(job.container_size_ms)
            .bind(job.run_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The ids of ended builds not metered yet, oldest first.
    pub async fn unmetered_builds(&self) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT b.id FROM builds b LEFT JOIN build_usage u ON u.build_id = b.id \
             WHERE b.ended_ms IS NOT NULL AND u.build_id IS NULL ORDER BY b.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// The org's metered builds that ended in `[from_ms, to_ms)`, oldest end first, each
    /// with its repository and number.
    pub async fn usage(
        &self,
        org: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(MeteredBuild, String, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT u.build_id, u.org_id, u.ended_ms, u.container_ms, u.container_size_ms, u.action_ms, \
             u.script_ms, b.repo, b.number FROM build_usage u JOIN builds b ON b.id = u.build_id \
             WHERE u.org_id = $1 AND u.ended_ms >= $2 AND u.ended_ms < $3 ORDER BY u.ended_ms, u.build_id",
        )
        .bind(org)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut builds = rows.iter().map(metered_from_row).collect::<Result<Vec<_>, DbError>>()?;
        let jobs = sqlx::query(
            "SELECT j.build_id, j.job_id, j.kind, j.container_ms, j.container_size_ms, j.run_ms \
             FROM job_usage j JOIN build_usage u ON u.build_id = j.build_id \
             WHERE u.org_id = $1 AND u.ended_ms >= $2 AND u.ended_ms < $3 ORDER BY j.build_id, j.job_id",
        )
        .bind(org)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        for row in &jobs {
            let build_id: String = row.try_get(0)?;
            let job = MeteredJob {
                job_id: row.try_get(1)?,
                kind: row.try_get(2)?,
                container_ms: row.try_get(3)?,
                container_size_ms: row.try_get(4)?,
                run_ms: row.try_get(5)?,
            };
            if let Some((build, _, _)) = builds.iter_mut().find(|(b, _, _)| b.build_id == build_id) {
                build.jobs.push(job);
            }
        }
        Ok(builds)
    }

    /// Milliseconds of credit the org's builds that ended since `since_ms` used.
    pub async fn credit_ms_since(&self, org: &str, since_ms: i64) -> Result<i64, DbError> {
        // PostgreSQL sums BIGINTs as NUMERIC: cast back.
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(container_size_ms + script_ms), 0) AS BIGINT) FROM build_usage \
             WHERE org_id = $1 AND ended_ms >= $2",
        )
        .bind(org)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Sets (or, with `None`, removes) the org's monthly credit limit.
    pub async fn set_credit_limit(&self, org: &str, limit: Option<i64>) -> Result<(), DbError> {
        match limit {
            Some(limit) => {
                sqlx::query(
                    "INSERT INTO org_credits (org_id, monthly_limit) VALUES ($1, $2) \
                     ON CONFLICT (org_id) DO UPDATE SET monthly_limit = excluded.monthly_limit",
                )
                .bind(org)
                .bind(limit)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM org_credits WHERE org_id = $1").bind(org).execute(&self.pool).await?;
            }
        }
        Ok(())
    }

    /// The org's monthly credit limit, if it has one.
    pub async fn credit_limit(&self, org: &str) -> Result<Option<i64>, DbError> {
        let row = sqlx::query("SELECT monthly_limit FROM org_credits WHERE org_id = $1")
            .bind(org)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }
}

fn metered_from_row(row: &AnyRow) -> Result<(MeteredBuild, String, i64), DbError> {
    let build = MeteredBuild {
        build_id: row.try_get(0)?,
        org: row.try_get(1)?,
        ended_ms: row.try_get(2)?,
        container_ms: row.try_get(3)?,
        container_size_ms: row.try_get(4)?,
        action_ms: row.try_get(5)?,
        script_ms: row.try_get(6)?,
        jobs: Vec::new(),
    };
    Ok((build, row.try_get(7)?, row.try_get(8)?))
}
