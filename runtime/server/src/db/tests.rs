//! Unit tests of the database's queries, on SQLite.

use super::*;
use crate::db::testing;

async fn db_with_repo() -> (tempfile::TempDir, Db) {
    testing::acme_with(&["app"]).await
}

fn new_build() -> NewBuild {
    testing::build("app")
}

/// Deliveries that arrive together share a transaction on SQLite: each is still built
/// once, numbers stay one after the other, and one that fails (its repository is gone)
/// fails alone.
#[tokio::test]
async fn deliveries_at_once_are_each_built_once_and_a_bad_one_fails_alone() {
    let (_dir, db) = db_with_repo().await;
    let mut tasks = Vec::new();
    for n in 0..60 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut delivery = format!("d{}", n % 50);
            let mut build = new_build();
            if n == 7 {
                delivery = "bad".into();
                build.repo = "gone".into();
            }
            (n, db.queue_delivery("github", &delivery, &[build]).await)
        }));
    }
    let mut built = std::collections::BTreeMap::new();
    for task in tasks {
        let (n, delivered) = task.await.unwrap();
        match (n, delivered) {
            (7, Err(DbError::Conflict(what))) => assert!(what.contains("acme/gone"), "{what}"),
            (7, other) => panic!("the delivery for a missing repository: {other:?}"),
            (n, Ok(Delivered::Queued(builds))) => {
                assert!(built.insert(n % 50, builds[0].number).is_none(), "delivery d{} built twice", n % 50);
            }
            (_, Ok(Delivered::Seen(_))) => {}
            (n, Err(err)) => panic!("delivery {n}: {err}"),
        }
    }
    assert_eq!(built.len(), 50, "{built:?}");
    let mut numbers: Vec<i64> = built.into_values().collect();
    numbers.sort();
    assert_eq!(numbers, (1..=50).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_build_whose_agent_went_silent_ends_as_agent_lost_and_a_live_one_does_not() {
    let (_dir, db) = db_with_repo().await;
    let silent = db.queue_build(&new_build()).await.unwrap();
    let live = db.queue_build(&new_build()).await.unwrap();
    assert_eq!(db.claim_build("a1").await.unwrap().unwrap().id, silent.id, "the oldest first");
    assert_eq!(db.claim_build("a2").await.unwrap().unwrap().id, live.id);
    assert!(db.claim_build("a3").await.unwrap().is_none(), "nothing left to claim");
    sqlx::query("UPDATE builds SET heartbeat_ms = heartbeat_ms - 60000 WHERE id = $1")
        .bind(&silent.id)
        .execute(&db.pool)
        .await
        .unwrap();
    let reaped = db.reap_and_retry(30_000).await.unwrap();
    assert_eq!(
        reaped.iter().map(|(id, retry)| (id.as_str(), retry.is_some())).collect::<Vec<_>>(),
        [(silent.id.as_str(), false)]
    );
    let lost = db.build(&silent.id).await.unwrap().unwrap();
    assert_eq!((lost.status, lost.error.as_deref()), (Status::Error, Some(AGENT_LOST)));
    assert_eq!(db.build(&live.id).await.unwrap().unwrap().status, Status::Running);
    assert!(db.reap_and_retry(30_000).await.unwrap().is_empty(), "once");
}
