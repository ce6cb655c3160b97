//! Remote agents: `monkeyci agent` processes take the builds of a `monkeyci server` that has no
//! embedded agent (`--agent-capacity 0`). Two agents share a queue and no build runs twice; an
//! agent killed with `kill -9` mid-build loses it as `error: agent lost`, and with the
//! repository's `retry_lost` the retry runs and succeeds on the other agent; a server killed
//! with `kill -9` mid-build and restarted gets the rest of the remote build, every line once
//! and in order; a cancel reaches a remote build at its next heartbeat. Each test runs on every
//! database of [`databases`].

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{TestServer, databases, http, sse_ids};
use crate::util::{CACHE_DIR, TestRepo, sdk_dir};

const MONKEYCI: &str = env!("CARGO_BIN_EXE_monkeyci");

/// A `monkeyci agent` process.
struct TestAgent {
    child: Child,
    _work: tempfile::TempDir,
}

impl TestAgent {
    fn start(server: &TestServer, token: &str, name: &str, capacity: usize) -> TestAgent {
        let work = tempfile::Builder::new().prefix("monkeyci-e2e-agent-").tempdir().unwrap();
        let child = Command::new(MONKEYCI)
            .args(["agent", "--name", name, "--capacity", &capacity.to_string(), "--engine", "podman"])
            .arg("--work-dir")
            .arg(work.path())
            .arg("--sdk-path")
            .arg(sdk_dir())
            .env("MONKEYCI_SERVER", format!("http://{}", server.addr()))
            .env("MONKEYCI_TOKEN", token)
            .env("MONKEYCI_CACHE_DIR", CACHE_DIR)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("monkeyci agent starts");
        TestAgent { child, _work: work }
    }

    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_token(server: &TestServer) -> String {
    let (status, body) = server.call("POST", "/api/v1/tokens", Some(json!({"agent": true, "description": "e2e"})));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["agent"], true, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// The lines of the build's jobs' output, in the order of its stream.
fn job_lines(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["kind"] == "event" && r["data"]["job_id"].is_string())
        .filter_map(|r| r["data"]["line"].as_str().map(str::to_owned))
        .collect()
}

/// The agents the build's stream says ran it.
fn agents_in(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["kind"] == "line")
        .filter_map(|r| r["data"]["line"].as_str()?.strip_prefix("agent ")?.split(' ').next().map(str::to_owned))
        .collect()
}

/// The stream is numbered from 1 without a gap and ends with one end record.
fn assert_whole(records: &[Value], what: &str) {
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "{what}");
    assert_eq!(records.iter().filter(|r| r["kind"] == "end").count(), 1, "{what}");
    assert_eq!(records.last().unwrap()["kind"], "end", "{what}");
}

/// Waits until the build's stream holds `text`.
fn wait_for_record(server: &TestServer, id: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !server.records(id).iter().any(|r| r.to_string().contains(text)) {
        let build = server.build(id);
        assert!(matches!(build["status"].as_str(), Some("queued" | "running")), "it ended: {build}");
        assert!(Instant::now() < deadline, "{text:?} never came: {build}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SHORT: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn short(ctx: &Ctx) -> Result<()> {
    ctx.log("short job ran");
    ctx.shell("sleep 1").await?;
    Ok(())
}

monkeyci_sdk::main!();
"#;

#[test]
fn two_agents_share_a_queue_and_no_build_runs_twice() {
    let repo = TestRepo::with_pipeline("agents-share", SHORT);
    for db in databases() {
        let server = TestServer::start(&db, 0);
        server.add_repo("acme", "share", repo.path());
        let token = agent_token(&server);
        // An agent token reaches only the agent protocol; other tokens do not claim builds.
        let (status, body) = server.call_as(&token, "GET", "/api/v1/builds", None);
        assert_eq!(status, 403, "{body}");
        let (status, body) = server.call("POST", "/api/v1/agent/claim", Some(json!({"agent": "admin"})));
        assert_eq!(status, 403, "{db:?}: an admin token claims nothing: {body}");
        // The CLI makes agent tokens too.
        let out = server.cli(&["token", "create", "--agent", "--description", "agent b"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token_b = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let ids: Vec<String> = (0..8).map(|_| server.trigger("acme", "share")).collect();
        // Followed live from before it starts: what remote agents append reaches followers.
        let (addr, auth, path) =
            (server.addr().to_owned(), format!("Bearer {}", server.token), format!("/api/v1/builds/{}/events", ids[0]));
        let live = std::thread::spawn(move || http(&addr, "GET", &path, &[("Authorization", &auth)], b"").2);
        let _a = TestAgent::start(&server, &token, "agent-a", 2);
        let _b = TestAgent::start(&server, &token_b, "agent-b", 2);
        let mut ran_on = BTreeSet::new();
        for id in &ids {
            let build = server.wait_for_end(id, Duration::from_secs(900));
            let records = server.records(id);
            assert_eq!(build["status"], "success", "{db:?}: {build}\n{records:?}");
            assert_whole(&records, id);
            let agents = agents_in(&records);
            assert_eq!(agents.len(), 1, "{db:?}: build {id} ran on {agents:?}");
            assert_eq!(build["agent"].as_str(), Some(agents[0].as_str()));
            assert_eq!(job_lines(&records).iter().filter(|l| l.contains("short job ran")).count(), 1);
            ran_on.insert(agents[0].clone());
        }
        assert_eq!(ran_on.len(), 2, "{db:?}: both agents took builds: {ran_on:?}");
        let stored: Vec<i64> = server.records(&ids[0]).iter().map(|r| r["seq"].as_i64().unwrap()).collect();
        assert_eq!(sse_ids(&live.join().unwrap()), stored, "{db:?}: live and stored streams differ");
    }
}

const LONG: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn long(ctx: &Ctx) -> Result<()> {
    ctx.log("long job started");
    ctx.shell("sleep 6").await?;
    ctx.log("long job done");
    Ok(())
}

monkeyci_sdk::main!();
"#;

#[test]
fn an_agent_killed_mid_build_loses_it_and_the_retry_runs_on_the_other_agent() {
    let repo = TestRepo::with_pipeline("agents-lost", LONG);
    for db in databases() {
        let server = TestServer::start_with(&db, 0, &["--agent-timeout", "3s"]);
        server.add_repo("acme", "once", repo.path());
        let (status, body) = server.call(
            "POST",
            "/api/v1/orgs/acme/repos",
            Some(json!({"name": "again", "url": format!("file://{}", repo.path().display()), "retry_lost": true})),
        );
        assert_eq!((status, body["retry_lost"].as_bool()), (201, Some(true)), "{body}");
        let token = agent_token(&server);
        for (name, retry) in [("once", false), ("again", true)] {
            let mut doomed = TestAgent::start(&server, &token, &format!("doomed-{name}"), 1);
            let id = server.trigger("acme", name);
            wait_for_record(&server, &id, "long job started");
            // The other agent is there before the first dies, and takes only what is queued.
            let _other = TestAgent::start(&server, &token, &format!("other-{name}"), 1);
            let killed = Instant::now();
            doomed.kill_9();
            let lost = server.wait_for_end(&id, Duration::from_secs(60));
            assert_eq!(
                (lost["status"].as_str(), lost["error"].as_str()),
                (Some("error"), Some("agent lost")),
                "{lost}"
            );
            assert!(killed.elapsed() < Duration::from_secs(20), "{db:?}: lost after {:?}", killed.elapsed());
            assert_eq!(lost["agent"].as_str(), Some(format!("doomed-{name}").as_str()));
            let records = server.records(&id);
            assert_whole(&records, &id);
            let (_, builds) = server.call("GET", &format!("/api/v1/builds?org=acme&repo={name}"), None);
            let builds = builds.as_array().unwrap().clone();
            if !retry {
                assert_eq!(builds.len(), 1, "{db:?}: no retry without retry_lost: {builds:?}");
                continue;
            }
            let retry = builds.iter().find(|b| b["retry_of_lost"] == json!(id)).expect("a retry is queued");
            let retry_id = retry["id"].as_str().unwrap();
            assert!(records.iter().any(|r| r.to_string().contains(retry_id)), "the lost build names its retry");
            let done = server.wait_for_end(retry_id, Duration::from_secs(600));
            let retry_records = server.records(retry_id);
            assert_eq!(done["status"], "success", "{db:?}: {done}\n{retry_records:?}");
            assert_eq!(done["agent"].as_str(), Some(format!("other-{name}").as_str()));
            assert_eq!(agents_in(&retry_records), [format!("other-{name}")]);
            assert!(job_lines(&retry_records).iter().any(|l| l.contains("long job done")));
            // Once: the retry is the only other build.
            assert_eq!(builds.len(), 2, "{builds:?}");
        }
    }
}

const TICKS: usize = 40;

const TICKING: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn ticking(ctx: &Ctx) -> Result<()> {
    ctx.shell("for i in $(seq 1 40); do printf 'tick<%02d>\n' $i; sleep 0.2; done").await?;
    Ok(())
}

monkeyci_sdk::main!();
"#;

#[test]
fn a_server_killed_mid_build_comes_back_and_the_remote_builds_log_is_complete() {
    let repo = TestRepo::with_pipeline("agents-restart", TICKING);
    for db in databases() {
        // A fixed port, so the agent finds the server again after its restart.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let mut server = TestServer::start_with(&db, 0, &["--listen", &listen]);
        server.add_repo("acme", "ticking", repo.path());
        let token = agent_token(&server);
        let _agent = TestAgent::start(&server, &token, "steady", 1);
        let id = server.trigger("acme", "ticking");
        wait_for_record(&server, &id, "tick<05>");
        server.kill_9();
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(server.launch(0), None, "no second admin token");
        let build = server.wait_for_end(&id, Duration::from_secs(300));
        let records = server.records(&id);
        assert_eq!(build["status"], "success", "{db:?}: {build}\n{records:?}");
        assert_whole(&records, &id);
        let ticks: Vec<String> = job_lines(&records).into_iter().filter(|l| l.starts_with("tick<")).collect();
        let expected: Vec<String> = (1..=TICKS).map(|i| format!("tick<{i:02}>")).collect();
        assert_eq!(ticks, expected, "{db:?}: every line once, in order");
    }
}

#[test]
fn a_cancel_reaches_a_build_on_a_remote_agent_at_its_next_heartbeat() {
    let repo = TestRepo::with_pipeline("agents-cancel", LONG);
    for db in databases() {
        let server = TestServer::start(&db, 0);
        server.add_repo("acme", "long", repo.path());
        let token = agent_token(&server);
        let _agent = TestAgent::start(&server, &token, "remote", 1);
        let id = server.trigger("acme", "long");
        wait_for_record(&server, &id, "long job started");
        let asked = Instant::now();
        let (status, body) = server.call("POST", &format!("/api/v1/builds/{id}/cancel"), None);
        assert_eq!(status, 202, "{body}");
        let build = server.wait_for_end(&id, Duration::from_secs(30));
        let took = asked.elapsed();
        assert_eq!(build["status"], "canceled", "{db:?}: {build}");
        assert!(took < Duration::from_secs(4), "{db:?}: cancel took {took:?}");
        assert_whole(&server.records(&id), &id);
    }
}

const SECRET_AND_BLOCKED: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn uses_secret(ctx: &Ctx) -> Result<()> {
    let token = ctx.param("REMOTE_TOKEN")?;
    ctx.log(format!("token length {}", token.expose().len()));
    ctx.log(format!("token is {}", token.expose()));
    Ok(())
}

#[job(depends_on = [uses_secret], blocked)]
async fn deploy(ctx: &Ctx) -> Result<()> {
    ctx.log("deployed");
    Ok(())
}

monkeyci_sdk::main!();
"#;

/// Issue 11: a remote agent reads its build's params with the build's own token (through its
/// link, as the embedded agent does), the server masks what it appends, and a blocked job
/// waits on the remote agent for a decision taken through the CLI.
#[test]
fn a_remote_build_gets_its_params_masked_and_waits_for_an_approval() {
    let repo = TestRepo::with_pipeline("agents-params", SECRET_AND_BLOCKED);
    for db in databases() {
        let server = TestServer::start(&db, 0);
        server.add_repo("acme", "app", repo.path());
        let secret = "remote-s3cr3t-value";
        let out = server.cli(&["param", "set", "acme/app", "REMOTE_TOKEN", secret]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = agent_token(&server);
        let _agent = TestAgent::start(&server, &token, "agent-p", 1);
        let id = server.trigger("acme", "app");
        wait_for_record(&server, &id, "job/blocked");
        let out = server.cli(&["build", "approve", &id, "deploy"]);
        assert!(out.status.success(), "{db:?}: {}", String::from_utf8_lossy(&out.stderr));
        let build = server.wait_for_end(&id, Duration::from_secs(600));
        let records = server.records(&id);
        assert_eq!(build["status"], "success", "{db:?}: {build}\n{records:?}");
        let lines = job_lines(&records);
        assert!(lines.iter().any(|l| l == &format!("token length {}", secret.len())), "{db:?}: {lines:?}");
        assert!(lines.iter().any(|l| l == "token is ***"), "{db:?}: {lines:?}");
        assert!(lines.iter().any(|l| l == "deployed"), "{db:?}: the approved job ran: {lines:?}");
        assert!(!format!("{records:?}").contains(secret), "{db:?}: the secret shows in the records");
    }
}
