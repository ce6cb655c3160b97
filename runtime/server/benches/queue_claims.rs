//! The build queue: builds claimed per second by 1 and by 4 agents claiming at once, on
//! SQLite and (when `MONKEYCI_TEST_POSTGRES_URL` names a server: a fresh database is made on
//! it) on PostgreSQL. Each claim is the whole claim an agent makes (`Dispatch::claim`: take
//! the oldest queued build, the org's credit check, the repository, the stream's last
//! number, the build's token), in process, so the figure is the queue's, not HTTP's. In the
//! same run, the floor: the bare claim statement alone (`Db::claim_build`). Run with
//! `cargo bench -p monkeyci-server --bench queue_claims`.
//!
//! Target (issue 11): builds claimed per second with 1 and 4 agents, SQLite and PostgreSQL.

// A bench: a failed setup may panic.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Instant;

use monkeyci_server::db::{Db, NewBuild, NewRepo};
use monkeyci_server::dispatch::Dispatch;
use monkeyci_server::stream::Streams;

const BUILDS: usize = 2000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut databases = vec![("SQLite", format!("sqlite://{}", dir.path().join("queue.db").display()))];
    match std::env::var("MONKEYCI_TEST_POSTGRES_URL") {
        Ok(admin) => databases.push(("PostgreSQL", fresh_postgres(&admin))),
        Err(_) => println!("(PostgreSQL skipped: MONKEYCI_TEST_POSTGRES_URL is not set)"),
    }
    println!("queue claims, {BUILDS} queued builds each round, in process:");
    for (name, url) in databases {
        runtime.block_on(async {
            let db = Db::open(&url).await.unwrap();
            db.create_org("bench").await.unwrap();
            let repo = NewRepo {
                org: "bench".into(),
                name: "app".into(),
                url: "file:///nowhere".into(),
                main_branch: "main".into(),
                labels: Vec::new(),
                webhook_secret: None,
                retry_lost: false,
            };
            db.create_repo(&repo).await.unwrap();
            let dispatch = Dispatch::new(db.clone(), Streams::default());
            for agents in [1, 4] {
                for (what, whole) in [("claim statement alone (floor)", false), ("whole claim (Dispatch)", true)] {
                    queue(&db).await;
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..agents)
                        .map(|n| {
                            let (db, dispatch) = (db.clone(), dispatch.clone());
                            tokio::spawn(async move {
                                let agent = format!("agent-{n}");
                                let mut claimed = 0usize;
                                loop {
                                    let got = if whole {
                                        dispatch.claim(&agent).await.unwrap().is_some()
                                    } else {
                                        db.claim_build(&agent).await.unwrap().is_some()
                                    };
                                    if !got {
                                        return claimed;
                                    }
                                    claimed += 1;
                                }
                            })
                        })
                        .collect();
                    let mut claimed = 0;
                    for task in tasks {
                        claimed += task.await.unwrap();
                    }
                    let seconds = started.elapsed().as_secs_f64();
                    assert_eq!(claimed, BUILDS, "every build claimed once");
                    println!(
                        "  {name:<10} {agents} agent{}  {what:<30} {:>8.0} builds/s",
                        if agents == 1 { " " } else { "s" },
                        claimed as f64 / seconds
                    );
                }
            }
            db.close().await;
        });
    }
}

/// Queues `BUILDS` builds.
async fn queue(db: &Db) {
    let new = NewBuild {
        org: "bench".into(),
        repo: "app".into(),
        source: "api".into(),
        trigger: "manual".into(),
        git_ref: Some("refs/heads/main".into()),
        ..NewBuild::default()
    };
    for _ in 0..BUILDS {
        db.queue_build(&new).await.unwrap();
    }
}

/// A new database on the PostgreSQL server of `admin_url`.
fn fresh_postgres(admin_url: &str) -> String {
    let name = format!("mci_bench_queue_{}", std::process::id());
    let out =
        Command::new("psql").arg(admin_url).args(["-q", "-c", &format!("CREATE DATABASE {name}")]).output().unwrap();
    assert!(out.status.success(), "cannot create database {name}: {}", String::from_utf8_lossy(&out.stderr));
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    format!("{base}/{name}")
}
