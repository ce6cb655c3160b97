//! An org's stream: every record of its builds, and each build queued, in one numbered order
//! (`org_events`). Written in the transaction that keeps what it numbers: the org's row holds
//! its last number and stays locked until that transaction commits, so an org's entries commit
//! in the order of their numbers, and a follower that resumes after number N misses none and
//! sees none twice.

use sqlx::Row;

use crate::model::Record;

/// Numbers `records` of `build_id` in its org's stream, in the transaction that keeps them.
pub(super) async fn note_records(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    build_id: &str,
    records: &[Record],
) -> Result<(), sqlx::Error> {
    let Some(row) =
        sqlx::query("SELECT org_id, repo FROM builds WHERE id = $1").bind(build_id).fetch_optional(&mut **tx).await?
    else {
        return Ok(());
    };
    let (org, repo): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
    note(tx, &org, &repo, build_id, &seqs).await
}

/// Notes a build queued in its org's stream, first in the transaction that queues it: the
/// org's row is taken before the repository's (whose row numbers the build), so two
/// transactions that take both take them in the same order and cannot wait on each other.
pub(super) async fn note_queued(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &str,
    repo: &str,
    build_id: &str,
) -> Result<(), sqlx::Error> {
    note(tx, org, repo, build_id, &[0]).await
}

/// Takes the next numbers of `org`'s stream (holding its row until the commit, so entries
/// commit in their order) and keeps the entries.
async fn note(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &str,
    repo: &str,
    build_id: &str,
    seqs: &[i64],
) -> Result<(), sqlx::Error> {
    let count = seqs.len() as i64;
    let Some(row) = sqlx::query("UPDATE orgs SET last_event = last_event + $1 WHERE id = $2 RETURNING last_event")
        .bind(count)
        .bind(org)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(());
    };
    let last: i64 = row.try_get(0)?;
    for (i, seq) in seqs.iter().enumerate() {
        sqlx::query("INSERT INTO org_events (org_id, n, repo, build_id, seq) VALUES ($1, $2, $3, $4, $5)")
            .bind(org)
            .bind(last - count + 1 + i as i64)
            .bind(repo)
            .bind(build_id)
            .bind(*seq)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
