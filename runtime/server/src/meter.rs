//! The meter: a consumer of the build event stream, outside the build path. When a build's
//! end record is kept, it reads the build's stored records back from the database, folds
//! their events with the one fold of a build's events (`monkeyci_build::state::BuildState`)
//! and writes what the build and each job used, once ([`Db::record_usage`] is idempotent).
//! At start, and whenever it fell behind, it meters every ended build not metered yet, so no
//! build is lost to a restart or a crash.
//!
//! It also owns the credit check of a claim ([`claim`]): a build of an org that used its
//! monthly credit limit ends with an error saying so instead of running.

use monkeyci_build::state::BuildState;
use monkeyci_protocol::JobKind;
use tokio::sync::broadcast::error::RecvError;

use crate::db::{Db, DbError};
use crate::model::{Build, RecordBody, Status};
use crate::stream::{Streams, Writer};
use crate::usage::{MeteredBuild, MeteredJob, month_start_ms};

/// How many records are read from the database at once.
const PAGE: i64 = 1000;

/// Meters every build as it ends, and those that ended unmetered before, until the task is
/// dropped.
pub async fn run(db: Db, streams: Streams) {
    // Subscribed before looking back, so an end in between is heard (metering twice is
    // harmless).
    let mut ends = streams.subscribe_ends();
    meter_unmetered(&db).await;
    loop {
        match ends.recv().await {
            Ok(id) => {
                if let Err(err) = meter_build(&db, &id).await {
                    tracing::warn!("cannot meter build {id}: {}", monkeyci_protocol::error_chain(&err));
                }
            }
            Err(RecvError::Lagged(_)) => {
                meter_unmetered(&db).await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Meters every ended build not metered yet; returns how many it metered.
pub async fn meter_unmetered(db: &Db) -> usize {
    let ids = match db.unmetered_builds().await {
        Ok(ids) => ids,
        Err(err) => {
            tracing::warn!("cannot look for builds to meter: {}", monkeyci_protocol::error_chain(&err));
            return 0;
        }
    };
    let mut metered = 0;
    for id in ids {
        match meter_build(db, &id).await {
            Ok(true) => metered += 1,
            Ok(false) => {}
            Err(err) => tracing::warn!("cannot meter build {id}: {}", monkeyci_protocol::error_chain(&err)),
        }
    }
    metered
}

/// Meters the build `id` if it ended and was not metered before; whether it metered it now.
pub async fn meter_build(db: &Db, id: &str) -> Result<bool, DbError> {
    let Some(build) = db.build(id).await? else { return Ok(false) };
    let Some(ended_ms) = build.ended_ms else { return Ok(false) };
    let mut state = BuildState::default();
    let mut after = 0;
    loop {
        let records = db.records_after(id, after, PAGE).await?;
        for record in &records {
            after = record.seq;
            if let RecordBody::Event(event) = &record.body {
                state.apply(event);
            }
        }
        if (records.len() as i64) < PAGE {
            break;
        }
    }
    state.close(u64::try_from(ended_ms).unwrap_or(0));
    db.record_usage(&figures(&build, ended_ms, &state)).await
}

/// What `build`, ended at `ended_ms`, used, from the fold of its events.
pub fn figures(build: &Build, ended_ms: i64, state: &BuildState) -> MeteredBuild {
    let ms = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let mut usage = MeteredBuild {
        build_id: build.id.clone(),
        org: build.org.clone(),
        ended_ms,
        script_ms: ms(state.script_ms()),
        ..MeteredBuild::default()
    };
    for job in state.jobs() {
        let kind = match job.kind {
            Some(JobKind::Action) => "action",
            Some(JobKind::Container) => "container",
            None => "unknown",
        };
        let metered = MeteredJob {
            job_id: job.id.clone(),
            kind: kind.to_owned(),
            container_ms: ms(job.usage.container_ms),
            container_size_ms: ms(job.usage.container_size_ms),
            run_ms: ms(job.usage.run_ms),
        };
        usage.container_ms += metered.container_ms;
        usage.container_size_ms += metered.container_size_ms;
        if job.kind == Some(JobKind::Action) {
            usage.action_ms += metered.run_ms;
        }
        usage.jobs.push(metered);
    }
    usage
}

/// Why the org cannot start a build now, if it used its monthly credit limit: the message
/// the build ends with.
pub async fn credit_refusal(db: &Db, org: &str) -> Result<Option<String>, DbError> {
    let Some(limit) = db.credit_limit(org).await? else { return Ok(None) };
    let now = i64::try_from(monkeyci_protocol::now_ms()).unwrap_or(i64::MAX);
    let used_ms = db.credit_ms_since(org, month_start_ms(now)).await?;
    if used_ms < limit.saturating_mul(1000) {
        return Ok(None);
    }
    let used = used_ms as f64 / 1000.0;
    Ok(Some(format!("the org {org} used its {limit} credits for this month ({used:.1} used)")))
}

/// Claims the oldest queued build for `agent`, as [`Db::claim_build`], but ends (as an
/// error saying why) each claimed build whose org used its credits, and claims the next.
pub async fn claim(db: &Db, streams: &Streams, agent: &str) -> Result<Option<Build>, DbError> {
    loop {
        let Some(build) = db.claim_build(agent).await? else { return Ok(None) };
        let Some(why) = credit_refusal(db, &build.org).await? else { return Ok(Some(build)) };
        tracing::info!("build {}: {why}", build.id);
        Writer::open(db, streams, &build.id).await?.end_build(Status::Error, Some(why)).await?;
    }
}

#[cfg(test)]
mod tests {
    use monkeyci_protocol::{BuildStatus, ContainerSpec, Event, EventKind, JobStatus, PlannedJob};

    use super::*;
    use crate::db::NewBuild;

    async fn db_with_repo() -> (tempfile::TempDir, Db) {
        crate::db::testing::acme_with(&["app"]).await
    }

    fn queue() -> NewBuild {
        NewBuild {
            org: "acme".into(),
            repo: "app".into(),
            source: "api".into(),
            trigger: "manual".into(),
            ..NewBuild::default()
        }
    }

    /// A build with a size-2 container job running 3 s, run to its end on the stream.
    async fn run_build(db: &Db, streams: &Streams) -> Build {
        let build = db.queue_build(&queue()).await.unwrap();
        let claimed = claim(db, streams, "a").await.unwrap().unwrap();
        assert_eq!(claimed.id, build.id);
        let planned = PlannedJob {
            id: "image".into(),
            kind: JobKind::Container,
            depends_on: Vec::new(),
            blocked: false,
            timeout_ms: None,
            retries: 0,
            idempotent: true,
            allow_failure: false,
            runs: Default::default(),
            container: Some(ContainerSpec { image: "alpine".into(), size: 2, ..Default::default() }),
            resolved_at_run_time: false,
            declared_at: None,
        };
        let events = [
            (1_000, EventKind::ScriptStart { jobs: vec![planned], skipped: Vec::new() }),
            (1_000, EventKind::JobStart { job_id: "image".into(), attempt: 1 }),
            (
                1_000,
                EventKind::ContainerStart {
                    job_id: "image".into(),
                    image: "alpine".into(),
                    engine: "shell".into(),
                    size: None,
                },
            ),
            (
                4_000,
                EventKind::ContainerEnd {
                    job_id: "image".into(),
                    status: JobStatus::Success,
                    exit: Some(0),
                    message: None,
                },
            ),
            (
                4_000,
                EventKind::JobEnd {
                    job_id: "image".into(),
                    attempt: 1,
                    status: JobStatus::Success,
                    duration_ms: 3_000,
                    message: None,
                },
            ),
            (5_000, EventKind::ScriptEnd { status: BuildStatus::Success, message: None }),
        ];
        let mut writer = Writer::open(db, streams, &build.id).await.unwrap();
        writer
            .write(events.into_iter().map(|(time, kind)| RecordBody::Event(Event { time, kind })).collect())
            .await
            .unwrap();
        assert!(writer.end_build(Status::Success, None).await.unwrap());
        build
    }

    #[tokio::test]
    async fn an_ended_build_is_metered_once_from_its_stored_records() {
        let (_dir, db) = db_with_repo().await;
        let streams = Streams::default();
        let mut ends = streams.subscribe_ends();
        let build = run_build(&db, &streams).await;
        assert_eq!(ends.recv().await.unwrap(), build.id, "the end is heard");
        assert!(meter_build(&db, &build.id).await.unwrap());
        assert!(!meter_build(&db, &build.id).await.unwrap(), "once");
        assert_eq!(meter_unmetered(&db).await, 0, "nothing left");
        let usage = db.usage("acme", 0, i64::MAX).await.unwrap();
        let [(metered, repo, number)] = &usage[..] else { panic!("one build: {usage:?}") };
        assert_eq!((repo.as_str(), *number), ("app", 1));
        assert_eq!((metered.container_ms, metered.container_size_ms, metered.script_ms), (3_000, 6_000, 4_000));
        assert_eq!(metered.jobs.len(), 1);
        assert_eq!(metered.jobs[0].kind, "container");
    }

    #[tokio::test]
    async fn a_build_that_ended_while_no_meter_listened_is_metered_at_start() {
        let (_dir, db) = db_with_repo().await;
        let build = run_build(&db, &Streams::default()).await;
        let queued = db.queue_build(&queue()).await.unwrap();
        assert_eq!(db.unmetered_builds().await.unwrap(), vec![build.id.clone()], "not the queued {}", queued.id);
        assert_eq!(meter_unmetered(&db).await, 1);
        assert!(db.unmetered_builds().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_build_of_an_org_over_its_credits_ends_with_an_error_instead_of_running() {
        let (_dir, db) = db_with_repo().await;
        let streams = Streams::default();
        let first = run_build(&db, &streams).await;
        meter_build(&db, &first.id).await.unwrap();
        // 6 s of size 2 and 4 s of script: 10 credits.
        db.set_credit_limit("acme", Some(10)).await.unwrap();
        let refused = db.queue_build(&queue()).await.unwrap();
        assert!(claim(&db, &streams, "a").await.unwrap().is_none(), "nothing to run");
        let ended = db.build(&refused.id).await.unwrap().unwrap();
        assert_eq!(ended.status, Status::Error);
        let why = ended.error.unwrap();
        assert_eq!(why, "the org acme used its 10 credits for this month (10.0 used)");
        let records = db.records_after(&refused.id, 0, 10).await.unwrap();
        assert!(matches!(&records[..], [r] if r.body.is_end()), "{records:?}");
        db.set_credit_limit("acme", Some(11)).await.unwrap();
        let next = db.queue_build(&queue()).await.unwrap();
        assert_eq!(claim(&db, &streams, "a").await.unwrap().map(|b| b.id), Some(next.id), "under the limit");
        db.set_credit_limit("acme", None).await.unwrap();
        assert_eq!(db.credit_limit("acme").await.unwrap(), None);
    }
}
