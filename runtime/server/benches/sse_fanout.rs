//! SSE fan-out: watchers of one build, each on its own connection to
//! `/api/v1/builds/{id}/events`, while the build's job logs 200 lines 10 ms apart, each line
//! carrying the time it was logged. Delivery latency is the time from the log call to a
//! watcher reading the line (the whole path: script, build API, agent, database, broadcast,
//! SSE), for 1 watcher and for `WATCHERS`; server CPU is the CPU time of the server's threads
//! (its runtime and SQLite's workers) during the build. In the same run, the floor: a bare
//! axum SSE endpoint fanning the same lines out of a `tokio::sync::broadcast` to as many
//! watchers. Run with `cargo bench -p monkeyci-server --bench sse_fanout`.
//!
//! Target (issue 11): 1,000 watchers of one build, server CPU and delivery latency.

// A bench: a failed setup may panic.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::response::sse::{Event as SseEvent, Sse};
use monkeyci_server::config::Config;
use monkeyci_server::db::{Db, NewBuild, NewRepo};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WATCHERS: usize = 1000;
const LINES: usize = 200;

const PIPELINE: &str = r#"use monkeyci_sdk::prelude::*;

#[job]
async fn talk(ctx: &Ctx) -> Result<()> {
    // Time for every watcher to connect.
    ctx.sleep(std::time::Duration::from_secs(WAIT)).await;
    for _ in 0..LINES {
        let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
        ctx.log(format!("sent-at-us={micros}"));
        ctx.sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}

monkeyci_sdk::main!();
"#;

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let sdk = workspace.join("monkeyci-sdk");
    let repo = tempfile::tempdir().unwrap();
    make_repo(repo.path(), &sdk);
    let sandbox = Command::new("bwrap").arg("--version").output().is_ok_and(|o| o.status.success());
    let server_rt = tokio::runtime::Builder::new_multi_thread().thread_name("mci-server").enable_all().build().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        agent_capacity: 1,
        sandbox,
        sdk_path: Some(sdk),
        cache_dir: Some(PathBuf::from(concat!(env!("CARGO_TARGET_TMPDIR"), "/bench-pipelines"))),
        ..Config::defaults(data.path().to_owned())
    };
    let url = format!("file://{}", repo.path().display());
    let (addr, db, token) = server_rt.block_on(async {
        let server = monkeyci_server::Server::start(config.clone()).await.unwrap();
        let db = Db::open(&config.database_url()).await.unwrap();
        db.create_org("bench").await.unwrap();
        let new_repo = NewRepo {
            org: "bench".into(),
            name: "app".into(),
            url,
            main_branch: "main".into(),
            labels: Vec::new(),
            webhook_secret: None,
            retry_lost: false,
        };
        db.create_repo(&new_repo).await.unwrap();
        let token = monkeyci_server::auth::create_token(&db, true, None, "bench").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(server.serve(std::future::pending()));
        (addr, db, token)
    });
    let floor_rt = tokio::runtime::Builder::new_multi_thread().thread_name("floor").enable_all().build().unwrap();
    let watchers_rt = tokio::runtime::Builder::new_multi_thread().thread_name("watchers").enable_all().build().unwrap();

    // Warm up: the first build compiles the pipeline (once ever, with the kept cache).
    let warm = Instant::now();
    let id = queue(&server_rt, &db);
    watchers_rt.block_on(watch(addr, &format!("/api/v1/builds/{id}/events"), &token, 1));
    println!("warm-up build: {:.1} s", warm.elapsed().as_secs_f64());

    println!(
        "SSE fan-out, {LINES} lines 10 ms apart ({} sandbox); latency from the log call to a watcher reading it:",
        if sandbox { "bubblewrap" } else { "no" }
    );
    for watchers in [1, WATCHERS] {
        let id = queue(&server_rt, &db);
        let cpu = cpu_seconds(&["mci-server", "sqlx-sqlite-wor"]);
        let mut latencies = watchers_rt.block_on(watch(addr, &format!("/api/v1/builds/{id}/events"), &token, watchers));
        let cpu = cpu_seconds(&["mci-server", "sqlx-sqlite-wor"]) - cpu;
        report(&format!("monkeyci server, {watchers:>4} watchers"), &mut latencies, watchers, cpu);
    }

    let floor_addr = floor_rt.block_on(floor());
    let cpu = cpu_seconds(&["floor"]);
    let mut latencies = watchers_rt.block_on(watch(floor_addr, "/events", "", WATCHERS));
    let cpu = cpu_seconds(&["floor"]) - cpu;
    report(&format!("bare axum broadcast, {WATCHERS:>4} watchers (floor)"), &mut latencies, WATCHERS, cpu);
}

fn report(name: &str, latencies: &mut [Duration], watchers: usize, cpu: f64) {
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1))];
    let expected = watchers * LINES;
    println!(
        "  {name:<44} p50 {:>7.2} ms  p99 {:>8.2} ms  lines {}/{expected}  server CPU {cpu:.2} s",
        ms(p(0.5)),
        ms(p(0.99)),
        latencies.len()
    );
}

/// Queues a build of `bench/app`; its id.
fn queue(rt: &tokio::runtime::Runtime, db: &Db) -> String {
    let new = NewBuild {
        org: "bench".into(),
        repo: "app".into(),
        source: "api".into(),
        trigger: "manual".into(),
        git_ref: Some("refs/heads/main".into()),
        ..NewBuild::default()
    };
    rt.block_on(db.queue_build(&new)).unwrap().id
}

/// `watchers` connections following `path` to its end; the latency of every line each read.
async fn watch(addr: std::net::SocketAddr, path: &str, token: &str, watchers: usize) -> Vec<Duration> {
    let tasks: Vec<_> = (0..watchers)
        .map(|_| {
            let request = format!(
                "GET {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\naccept: text/event-stream\r\n\r\n"
            );
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut lines = BufReader::new(stream).lines();
                let mut latencies = Vec::with_capacity(LINES);
                // Chunk sizes and SSE fields come as lines of their own; only the times matter.
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(at) = line.split("sent-at-us=").nth(1) {
                        let digits: String = at.chars().take_while(char::is_ascii_digit).collect();
                        let sent = Duration::from_micros(digits.parse().unwrap());
                        latencies.push(now().saturating_sub(sent));
                    }
                    if line.starts_with("event: end") || line == "event: done" {
                        break;
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// The floor: an SSE endpoint sending the same lines from one broadcast to every watcher,
/// once `WATCHERS` are connected.
async fn floor() -> std::net::SocketAddr {
    let (lines, _) = tokio::sync::broadcast::channel::<String>(LINES + 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let subscribe = lines.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::get(move || {
            let receiver = subscribe.subscribe();
            async move {
                let stream = futures_util::stream::unfold(receiver, |mut rx| async move {
                    let line = rx.recv().await.ok()?;
                    let event = if line == "done" {
                        SseEvent::default().event("done").data("")
                    } else {
                        SseEvent::default().event("line").data(line)
                    };
                    Some((Ok::<_, Infallible>(event), rx))
                });
                Sse::new(stream)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::spawn(async move {
        while lines.receiver_count() < WATCHERS {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..LINES {
            let _ = lines.send(format!("sent-at-us={}", now().as_micros()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = lines.send("done".to_owned());
    });
    addr
}

/// CPU seconds (user + system) of this process's threads whose name starts with one of
/// `prefixes`.
fn cpu_seconds(prefixes: &[&str]) -> f64 {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else { continue };
        if !prefixes.iter().any(|p| comm.trim().starts_with(p)) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // Fields after the `(comm)`: utime and stime are the 12th and 13th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        ticks += fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks += fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    }
    // The kernel counts in USER_HZ, 100 on Linux.
    ticks as f64 / 100.0
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A repository with the bench's pipeline on `main`.
fn make_repo(dir: &Path, sdk: &Path) {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.join(".monkeyci/src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"bench-sse-fanout\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nmonkeyci-sdk = {{ path = {:?} }}\n\n[workspace]\n",
        sdk.display().to_string()
    );
    std::fs::write(dir.join(".monkeyci/Cargo.toml"), manifest).unwrap();
    let pipeline = PIPELINE.replace("WAIT", "5").replace("LINES", &LINES.to_string());
    std::fs::write(dir.join(".monkeyci/src/main.rs"), pipeline).unwrap();
    git(&["add", "."]);
    git(&["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "pipeline"]);
}
