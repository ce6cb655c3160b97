//! The API of builds run by `monkeyci server`, and the CLI against it: a finished build's jobs
//! and each job's log from an offset; a retry builds the same commit again; a blocked job waits
//! until it is approved (it runs) or rejected (it does not) through the CLI; `build list`
//! filters; an org's live events see the builds of two repositories and resume after
//! `Last-Event-ID` with nothing lost or repeated; an org token reads nothing of another org.
//! Each test runs on every database of `databases()`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{HELLO, TestServer, databases};
use crate::util::TestRepo;

/// A blocked job between two others.
const BLOCKED: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn build(ctx: &Ctx) -> Result<()> {
    ctx.log("built");
    Ok(())
}

#[job(depends_on = [build], blocked)]
async fn deploy(ctx: &Ctx) -> Result<()> {
    ctx.log("deployed");
    Ok(())
}

#[job(depends_on = [deploy])]
async fn announce(ctx: &Ctx) -> Result<()> {
    ctx.log("announced");
    Ok(())
}

monkeyci_sdk::main!();
"#;

const WITHIN: Duration = Duration::from_secs(300);

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_ok(out: &std::process::Output, what: &str) -> String {
    let text = stdout(out);
    assert_eq!(out.status.code(), Some(0), "{what}: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn jobs(server: &TestServer, id: &str) -> Vec<Value> {
    let (status, body) = server.call("GET", &format!("/api/v1/builds/{id}/jobs"), None);
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

fn job<'a>(jobs: &'a [Value], id: &str) -> &'a Value {
    jobs.iter().find(|j| j["id"] == id).unwrap_or_else(|| panic!("no job {id} in {jobs:?}"))
}

/// Waits until job `job` of the build is blocked, waiting for approval.
fn wait_blocked(server: &TestServer, id: &str, job_id: &str) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let all = jobs(server, id);
        if all.iter().any(|j| j["id"] == job_id && j["status"] == "blocked") {
            return;
        }
        assert!(Instant::now() < deadline, "job {job_id} of build {id} never blocked: {all:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_finished_builds_jobs_and_each_jobs_log_from_an_offset() {
    let repo = TestRepo::with_pipeline("api-jobs", HELLO);
    for db in databases() {
        let server = TestServer::start(&db, 1);
        server.add_repo("acme", "jobs", repo.path());
        let id = server.trigger("acme", "jobs");
        assert_eq!(server.wait_for_end(&id, WITHIN)["status"], "success");
        let all = jobs(&server, &id);
        let ids: Vec<&str> = all.iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["hello", "world"], "{db:?}: plan order");
        for job in &all {
            assert_eq!((job["status"].as_str(), job["attempt"].as_u64()), (Some("success"), Some(1)), "{job}");
            assert!(job["started_ms"].as_u64().unwrap() > 0 && job["duration_ms"].is_u64(), "{job}");
        }
        let world = job(&all, "world");
        assert_eq!(world["commands"][0]["line"], "echo world-from-shell", "{world}");
        assert_eq!(world["commands"][0]["exit"], 0, "{world}");
        // `ctx.shell` commands are numbered by their step in the job.
        let step = world["commands"][0]["index"].as_u64().unwrap();

        // The log: the command as the job script marks it, then its output, inside it.
        let (status, log) = server.call("GET", &format!("/api/v1/builds/{id}/jobs/world/logs"), None);
        assert_eq!(status, 200, "{log}");
        let lines = log["lines"].as_array().unwrap();
        assert_eq!(world["log_lines"].as_u64(), Some(lines.len() as u64));
        assert_eq!(log["done"], true);
        assert_eq!(log["next_offset"].as_u64(), Some(lines.len() as u64));
        let command = lines.iter().position(|l| l["kind"] == "command").expect("a command line");
        assert_eq!(
            (lines[command]["line"].as_str(), lines[command]["command"].as_u64()),
            (Some("echo world-from-shell"), Some(step))
        );
        let output = lines.iter().find(|l| l["line"] == "world-from-shell").expect("its output");
        assert_eq!((output["kind"].as_str(), output["command"].as_u64()), (Some("stdout"), Some(step)), "{output}");
        // From an offset: the same lines, from there.
        let offset = command + 1;
        let (_, rest) = server.call("GET", &format!("/api/v1/builds/{id}/jobs/world/logs?offset={offset}"), None);
        assert_eq!(rest["lines"].as_array().unwrap()[..], lines[offset..], "{db:?}");
        assert_eq!(rest["lines"][0]["offset"].as_u64(), Some(offset as u64));
        let (_, past) = server.call("GET", &format!("/api/v1/builds/{id}/jobs/world/logs?offset=1000"), None);
        assert_eq!((past["lines"].as_array().map(Vec::len), &past["done"]), (Some(0), &json!(true)));
        let (status, _) = server.call("GET", &format!("/api/v1/builds/{id}/jobs/nope/logs"), None);
        assert_eq!(status, 404, "no such job in a build that is over");

        // The CLI shows the same as `build logs` of a local build.
        let text = assert_ok(&server.cli(&["build", "logs", &id, "world"]), "build logs JOB");
        assert!(text.contains(&format!("[world] $ echo world-from-shell  (command {step})")), "{text}");
        assert!(text.contains("[world] | world-from-shell"), "{text}");
        let text = assert_ok(&server.cli(&["build", "logs", &id, "hello", "--follow"]), "build logs JOB --follow");
        assert!(text.contains("[hello] | hello from main"), "{text}");
        let text = assert_ok(&server.cli(&["build", "logs", &id]), "build logs");
        assert!(text.contains("hello") && text.contains("world") && text.contains("success"), "{text}");
    }
}

#[test]
fn a_retry_builds_the_same_commit_again_and_says_which_build_it_retries() {
    let repo = TestRepo::with_pipeline("api-retry", HELLO);
    for db in databases() {
        let server = TestServer::start(&db, 1);
        server.add_repo("acme", "retry", repo.path());
        let first = server.trigger("acme", "retry");
        let built = server.wait_for_end(&first, WITHIN);
        assert_eq!(built["status"], "success");
        // The branch moves on: the retry still builds the commit the first build built.
        repo.write("later.txt", "a later commit");
        repo.commit("later");
        let text = assert_ok(&server.cli(&["build", "retry", &first, "--watch", "--plain"]), "build retry --watch");
        assert!(text.contains(&format!("a retry of {first}")), "{text}");
        let again = text.split("queued build ").nth(1).unwrap().split_whitespace().next().unwrap();
        let retried = server.build(again);
        assert_eq!(retried["status"], "success", "{retried}");
        assert_eq!(retried["retry_of"].as_str(), Some(first.as_str()));
        assert_eq!(retried["number"], 2);
        assert_eq!((&retried["commit"], &retried["git_ref"]), (&built["commit"], &built["git_ref"]), "{db:?}");
        assert_ne!(retried["commit"].as_str(), Some(repo.git(&["rev-parse", "HEAD"]).as_str()));
        let text = assert_ok(&server.cli(&["build", "show", again]), "build show");
        assert!(text.contains(&format!("retries: {first}")), "{text}");
    }
}

#[test]
fn a_blocked_job_approved_through_the_cli_runs_and_a_rejected_one_does_not() {
    let repo = TestRepo::with_pipeline("api-approve", BLOCKED);
    for db in databases() {
        let server = TestServer::start(&db, 2);
        server.add_repo("acme", "gate", repo.path());

        let id = server.trigger("acme", "gate");
        wait_blocked(&server, &id, "deploy");
        // It waits: still blocked a while later, and the build runs on.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(job(&jobs(&server, &id), "deploy")["status"], "blocked", "{db:?}: it waits for a decision");
        assert_eq!(server.build(&id)["status"], "running");
        // Only a job that waits can be decided; a running build cannot be retried.
        let (status, body) = server.call("POST", &format!("/api/v1/builds/{id}/jobs/announce/approve"), None);
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
        assert_eq!(server.call("POST", &format!("/api/v1/builds/{id}/retry"), None).0, 409);
        let text = assert_ok(&server.cli(&["build", "approve", &id, "deploy"]), "build approve");
        assert!(text.contains("approved"), "{text}");
        assert_eq!(server.wait_for_end(&id, WITHIN)["status"], "success");
        let all = jobs(&server, &id);
        for name in ["deploy", "announce"] {
            assert_eq!(job(&all, name)["status"], "success", "{db:?}: {all:?}");
        }
        let (_, log) = server.call("GET", &format!("/api/v1/builds/{id}/jobs/deploy/logs"), None);
        assert!(log["lines"].as_array().unwrap().iter().any(|l| l["line"] == "deployed"), "{log}");
        assert_eq!(server.call("POST", &format!("/api/v1/builds/{id}/jobs/deploy/reject"), None).0, 409, "decided");
        // The wait shows in the build's events, as `watch` renders them.
        let text = assert_ok(&server.cli(&["build", "watch", &id, "--plain"]), "build watch");
        assert!(text.contains("[deploy] blocked: waiting for approval"), "{text}");
        assert!(text.contains("[deploy] approved"), "{text}");

        let id = server.trigger("acme", "gate");
        wait_blocked(&server, &id, "deploy");
        let text = assert_ok(&server.cli(&["build", "reject", &id, "deploy"]), "build reject");
        assert!(text.contains("rejected"), "{text}");
        server.wait_for_end(&id, WITHIN);
        let all = jobs(&server, &id);
        assert_eq!(job(&all, "deploy")["status"], "skipped", "{db:?}: {all:?}");
        assert_eq!(job(&all, "deploy")["message"], "blocked: it was not approved");
        assert_eq!(job(&all, "announce")["status"], "skipped");
        let (_, log) = server.call("GET", &format!("/api/v1/builds/{id}/jobs/deploy/logs"), None);
        assert!(!log.to_string().contains("deployed"), "a rejected job does not run: {log}");
    }
}

#[test]
fn build_list_filters_by_repository_status_and_branch() {
    let good = TestRepo::with_pipeline("api-list-good", HELLO);
    good.git(&["branch", "feature"]);
    let bad = TestRepo::with_pipeline(
        "api-list-bad",
        &HELLO.replace("Ok(())\n}\n\nmonkeyci", "Err(JobError::msg(\"no\"))\n}\n\nmonkeyci"),
    );
    for db in databases() {
        let server = TestServer::start(&db, 2);
        server.add_repo("acme", "good", good.path());
        server.add_repo("acme", "bad", bad.path());
        let main = server.trigger("acme", "good");
        let (status, body) =
            server.call("POST", "/api/v1/orgs/acme/repos/good/builds", Some(json!({"branch": "feature"})));
        assert_eq!(status, 202, "{body}");
        let feature = body["id"].as_str().unwrap().to_owned();
        let failed = server.trigger("acme", "bad");
        for id in [&main, &feature, &failed] {
            server.wait_for_end(id, WITHIN);
        }
        let listed = |args: &[&str]| -> BTreeSet<String> {
            let mut all = vec!["build", "list"];
            all.extend_from_slice(args);
            let text = assert_ok(&server.cli(&all), &all.join(" "));
            text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect()
        };
        let set = |ids: &[&String]| ids.iter().map(|id| id.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(listed(&[]), set(&[&main, &feature, &failed]), "{db:?}");
        assert_eq!(listed(&["--repo", "acme/good"]), set(&[&main, &feature]));
        assert_eq!(listed(&["--status", "failure"]), set(&[&failed]));
        assert_eq!(listed(&["--branch", "feature"]), set(&[&feature]));
        assert_eq!(listed(&["--repo", "acme/good", "--branch", "main", "--status", "success"]), set(&[&main]));
        assert_eq!(listed(&["--limit", "1"]), set(&[&failed]), "newest first");
        let out = server.cli(&["build", "list", "--status", "sleeping"]);
        assert_eq!(out.status.code(), Some(2), "an unknown status is refused");
    }
}

/// The ids and `data` of the SSE events read from `path` until `until` says enough (or 60 s).
fn sse(server: &TestServer, path: &str, last_event_id: Option<i64>, until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n",
        server.addr(),
        server.token
    );
    if let Some(id) = last_event_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut raw = Vec::new();
    let mut events = Vec::new();
    while Instant::now() < deadline {
        let mut buf = [0u8; 65536];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        events = String::from_utf8_lossy(&raw)
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .collect();
        if until(&events) {
            break;
        }
    }
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw));
    events
}

/// Every entry of an org's (or repository's) stream, through the long poll.
fn stored(server: &TestServer, base: &str) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e["id"].as_i64().unwrap());
        let (status, body) = server.call("GET", &format!("{base}/records?after={after}"), None);
        assert_eq!(status, 200, "{body}");
        let page = body.as_array().unwrap().clone();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

#[test]
fn an_orgs_events_see_the_builds_of_two_repositories_and_resume_with_nothing_lost_or_repeated() {
    let repo = TestRepo::with_pipeline("api-org-events", HELLO);
    for db in databases() {
        let server = TestServer::start(&db, 2);
        server.add_repo("acme", "one", repo.path());
        server.add_repo("acme", "two", repo.path());
        // A follower from the start sees both builds queued, run and end, live.
        let one = server.trigger("acme", "one");
        let two = server.trigger("acme", "two");
        let ends = |events: &[Value]| events.iter().filter(|e| e["kind"] == "end").count();
        let live = sse(&server, "/api/v1/orgs/acme/events", None, |events| ends(events) == 2);
        assert_eq!(ends(&live), 2, "{db:?}: both builds end in the org's events");
        let builds: BTreeSet<&str> = live.iter().map(|e| e["build"].as_str().unwrap()).collect();
        assert_eq!(builds, BTreeSet::from([one.as_str(), two.as_str()]));
        let queued: Vec<(&str, &str)> = live
            .iter()
            .filter(|e| e["kind"] == "queued")
            .map(|e| (e["build"].as_str().unwrap(), e["data"]["repo"].as_str().unwrap()))
            .collect();
        assert_eq!(queued, [(one.as_str(), "one"), (two.as_str(), "two")]);
        // One order without gap, the same live as stored; each build's records in its order.
        let all = stored(&server, "/api/v1/orgs/acme");
        assert_eq!(ids(&live), (1..=all.len() as i64).collect::<Vec<_>>(), "{db:?}");
        // (A `queued` entry shows the build as it stands when read: compare what it is of.)
        let what = |events: &[Value]| -> Vec<String> {
            events.iter().map(|e| format!("{} {} {} {}", e["id"], e["build"], e["seq"], e["kind"])).collect()
        };
        assert_eq!(what(&live), what(&all));
        for build in [&one, &two] {
            let seqs: Vec<i64> =
                live.iter().filter(|e| e["build"] == **build).map(|e| e["seq"].as_i64().unwrap()).collect();
            assert_eq!(seqs, (0..seqs.len() as i64).collect::<Vec<_>>(), "queued (0), then records 1..");
        }
        // Resuming after the middle gets exactly the rest.
        let middle = all[all.len() / 2]["id"].as_i64().unwrap();
        let rest = sse(&server, "/api/v1/orgs/acme/events", Some(middle), |events| {
            events.len() >= all.len() - all.len() / 2 - 1
        });
        assert_eq!(ids(&rest), ids(&all[all.len() / 2 + 1..]));
        // Resuming at the end, live: a new build shows up, numbered on without a gap.
        let last = all.last().unwrap()["id"].as_i64().unwrap();
        let three = {
            let server_addr = server.addr().to_owned();
            let token = server.token.clone();
            let trigger = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(1));
                let (status, _, body) = crate::server::http(
                    &server_addr,
                    "POST",
                    "/api/v1/orgs/acme/repos/two/builds",
                    &[("Authorization", &format!("Bearer {token}"))],
                    b"{}",
                );
                assert_eq!(status, 202);
                serde_json::from_slice::<Value>(&body).unwrap()["id"].as_str().unwrap().to_owned()
            });
            let more = sse(&server, "/api/v1/orgs/acme/events", Some(last), |events| ends(events) == 1);
            let three = trigger.join().unwrap();
            assert_eq!(ids(&more), (last + 1..=last + more.len() as i64).collect::<Vec<_>>(), "{db:?}");
            assert_eq!((more[0]["kind"].as_str(), more[0]["build"].as_str()), (Some("queued"), Some(three.as_str())));
            assert!(more.iter().all(|e| e["build"] == three.as_str()));
            three
        };
        // A repository's events: only its builds, with the org's numbers.
        let two_only = stored(&server, "/api/v1/orgs/acme/repos/two");
        let builds: BTreeSet<&str> = two_only.iter().map(|e| e["build"].as_str().unwrap()).collect();
        assert_eq!(builds, BTreeSet::from([two.as_str(), three.as_str()]));
        let everything = stored(&server, "/api/v1/orgs/acme");
        let of_two: Vec<&Value> = everything.iter().filter(|e| e["repo"] == "two").collect();
        assert_eq!(two_only.iter().collect::<Vec<_>>(), of_two);
        let (status, _) = server.call("GET", "/api/v1/orgs/nope/records", None);
        assert_eq!(status, 404);
    }
}

#[test]
fn an_org_token_cannot_read_another_orgs_jobs_logs_or_events() {
    let repo = TestRepo::with_pipeline("api-scopes", HELLO);
    for db in databases() {
        // No agent: the builds stay queued, which is enough to be read.
        let server = TestServer::start(&db, 0);
        server.add_repo("alpha", "app", repo.path());
        server.add_repo("beta", "app", repo.path());
        let beta_build = server.trigger("beta", "app");
        let alpha_build = server.trigger("alpha", "app");
        let (_, token) = server.call("POST", "/api/v1/tokens", Some(json!({"org": "alpha"})));
        let alpha = token["token"].as_str().unwrap().to_owned();
        assert_eq!(server.call_as(&alpha, "GET", &format!("/api/v1/builds/{alpha_build}/jobs"), None).0, 200);
        assert_eq!(server.call_as(&alpha, "GET", "/api/v1/orgs/alpha/records", None).0, 200);
        let missing = "0000000000000000ffff";
        for path in ["/api/v1/builds/{}/jobs", "/api/v1/builds/{}/jobs/hello/logs"] {
            let (other, other_body) = server.call_as(&alpha, "GET", &path.replace("{}", &beta_build), None);
            let (none, none_body) = server.call_as(&alpha, "GET", &path.replace("{}", missing), None);
            assert_eq!((other, none), (403, 403), "{db:?}: {path}");
            assert_eq!(other_body["error"]["code"], none_body["error"]["code"]);
            assert!(!other_body.to_string().contains("beta"), "{other_body}");
        }
        for path in
            ["/api/v1/builds/{}/retry", "/api/v1/builds/{}/jobs/hello/approve", "/api/v1/builds/{}/jobs/hello/reject"]
        {
            assert_eq!(server.call_as(&alpha, "POST", &path.replace("{}", &beta_build), None).0, 403, "{path}");
        }
        for path in [
            "/api/v1/orgs/beta/events",
            "/api/v1/orgs/beta/records",
            "/api/v1/orgs/beta/repos/app/events",
            "/api/v1/orgs/beta/repos/app/records",
            "/api/v1/orgs/nope/records",
        ] {
            assert_eq!(server.call_as(&alpha, "GET", path, None).0, 403, "{db:?}: {path}");
        }
        // What alpha's events show is alpha's only.
        let (_, own) = server.call_as(&alpha, "GET", "/api/v1/orgs/alpha/records", None);
        let builds: Vec<&str> = own.as_array().unwrap().iter().map(|e| e["build"].as_str().unwrap()).collect();
        assert_eq!(builds, [alpha_build.as_str()]);
    }
}
