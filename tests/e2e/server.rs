//! `monkeyci server` as a process on 127.0.0.1: builds triggered through the API and the CLI
//! run on its embedded agent and are followed live; errors have one shape; a token reaches
//! only its org; cancel arrives within 2 s; the event stream resumes without loss or repeat;
//! a server killed with `kill -9` loses no queued build; the OpenAPI document is served without
//! a token. Each test runs on SQLite and, when `MONKEYCI_TEST_POSTGRES_URL` names a server (CI
//! starts one), on PostgreSQL; the OpenAPI one on the first of them only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{CACHE_DIR, TestRepo, bwrap_available, podman_available, sdk_dir};

const MONKEYCI: &str = env!("CARGO_BIN_EXE_monkeyci");

/// The databases every test runs on: SQLite always, PostgreSQL when one is configured (in CI
/// it must be: a missing server fails there rather than skipping).
pub fn databases() -> Vec<Database> {
    // A server sandboxes builds, and refuses the shell engine for their container jobs.
    if !bwrap_available() || !podman_available() {
        return Vec::new();
    }
    let mut all = vec![Database::Sqlite];
    match std::env::var("MONKEYCI_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => all.push(Database::Postgres(url)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must set MONKEYCI_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
        }
        _ => {
            eprintln!("skipping PostgreSQL: MONKEYCI_TEST_POSTGRES_URL is not set (postgres://USER@127.0.0.1:PORT/DB)")
        }
    }
    all
}

#[derive(Debug, Clone)]
pub enum Database {
    Sqlite,
    Postgres(String),
}

impl Database {
    /// A fresh database for one server: SQLite in its data dir, or a new PostgreSQL database.
    fn url_for(&self, data_dir: &Path) -> Option<String> {
        match self {
            Database::Sqlite => None,
            Database::Postgres(admin_url) => {
                let name = format!(
                    "mci_{}",
                    data_dir
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .to_lowercase()
                        .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                );
                let out = Command::new("psql")
                    .arg(admin_url)
                    .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
                    .output()
                    .expect("psql runs");
                assert!(
                    out.status.success(),
                    "cannot create database {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
                Some(format!("{base}/{name}"))
            }
        }
    }
}

/// A `monkeyci server` process with its own data dir (and database).
pub struct TestServer {
    child: Child,
    url: String,
    pub token: String,
    pub data_dir: tempfile::TempDir,
    database_url: Option<String>,
    extra: Vec<String>,
}

impl TestServer {
    pub fn start(db: &Database, agent_capacity: usize) -> TestServer {
        TestServer::start_with(db, agent_capacity, &[])
    }

    /// A server started with `extra` arguments.
    pub fn start_with(db: &Database, agent_capacity: usize, extra: &[&str]) -> TestServer {
        let data_dir = tempfile::Builder::new().prefix("monkeyci-e2e-server-").tempdir().unwrap();
        let database_url = db.url_for(data_dir.path());
        let mut server = TestServer {
            child: spawn_placeholder(),
            url: String::new(),
            token: String::new(),
            data_dir,
            database_url,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        server.token = server.launch(agent_capacity).expect("a first start prints an admin token");
        server
    }

    /// Starts the process (again); returns the admin token if it printed one.
    pub fn launch(&mut self, agent_capacity: usize) -> Option<String> {
        let mut cmd = Command::new(MONKEYCI);
        // A secret of the server's own environment, which no build may see.
        cmd.env("MONKEYCI_E2E_SERVER_SECRET", "the server's own secret");
        // Container jobs would run in podman: the shell engine is refused for sandboxed
        // builds (these tests' pipelines have no container job).
        cmd.arg("server");
        // A fixed address in `extra` (a restart on the same port), else any free port.
        if !self.extra.iter().any(|arg| arg == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(["--engine", "podman"])
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--agent-capacity", &agent_capacity.to_string()])
            .arg("--sdk-path")
            .arg(sdk_dir())
            .env("MONKEYCI_CACHE_DIR", CACHE_DIR)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = &self.database_url {
            cmd.args(["--database-url", url]);
        }
        cmd.args(&self.extra);
        let mut child = cmd.spawn().expect("monkeyci server starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut token = None;
        loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "the server exited before listening");
            if let Some(rest) = line.split("admin token (shown once; keep it): ").nth(1) {
                token = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                self.url = rest.split_whitespace().next().unwrap().to_owned();
                break;
            }
        }
        // The rest of its output is not read: keep the pipe drained.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let _ = std::mem::replace(&mut self.child, child).kill();
        token
    }

    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The server's database URL (SQLite in its data dir unless another was given).
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.path().join("server.db").display()))
    }

    pub fn addr(&self) -> &str {
        self.url.strip_prefix("http://").unwrap()
    }

    /// One request with the admin token; (status, JSON body).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body)
    }

    pub fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, _, bytes) =
            http(self.addr(), method, path, &[("Authorization", &format!("Bearer {token}"))], body.as_bytes());
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// The CLI against this server.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(MONKEYCI)
            .args(args)
            .env("MONKEYCI_SERVER", &self.url)
            .env("MONKEYCI_TOKEN", &self.token)
            .env("MONKEYCI_CACHE_DIR", CACHE_DIR)
            .output()
            .unwrap()
    }

    /// Adds org `org` and the repository `org/name` at `repo`.
    pub fn add_repo(&self, org: &str, name: &str, repo: &Path) {
        self.add_repo_with(org, name, repo, json!({}));
    }

    /// Adds the repository with a webhook secret.
    pub fn add_repo_with_secret(&self, org: &str, name: &str, repo: &Path, secret: &str) {
        self.add_repo_with(org, name, repo, json!({"webhook_secret": secret}));
    }

    fn add_repo_with(&self, org: &str, name: &str, repo: &Path, mut extra: Value) {
        let (status, _) = self.call("POST", "/api/v1/orgs", Some(json!({"id": org})));
        assert!(status == 201 || status == 409, "creating org {org}: {status}");
        extra["name"] = json!(name);
        extra["url"] = json!(format!("file://{}", repo.display()));
        let (status, body) = self.call("POST", &format!("/api/v1/orgs/{org}/repos"), Some(extra));
        assert_eq!(status, 201, "{body}");
    }

    pub fn trigger(&self, org: &str, repo: &str) -> String {
        let (status, body) = self.call("POST", &format!("/api/v1/orgs/{org}/repos/{repo}/builds"), Some(json!({})));
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub fn build(&self, id: &str) -> Value {
        let (status, body) = self.call("GET", &format!("/api/v1/builds/{id}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the build is over; its final state.
    pub fn wait_for_end(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let build = self.build(id);
            if !matches!(build["status"].as_str(), Some("queued" | "running")) {
                return build;
            }
            assert!(Instant::now() < deadline, "build {id} did not end within {within:?}: {build}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every record of a build's stream, through the long poll.
    pub fn records(&self, id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (status, body) = self.call("GET", &format!("/api/v1/builds/{id}/records?after={after}"), None);
            assert_eq!(status, 200, "{body}");
            let page = body.as_array().unwrap().clone();
            if page.is_empty() {
                return all;
            }
            after = page.last().unwrap()["seq"].as_i64().unwrap();
            all.extend(page);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_placeholder() -> Child {
    Command::new("true").spawn().unwrap()
}

/// One HTTP/1.1 request on a new connection, read to its end: (status, headers, body).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let raw = &response[split + 4..];
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(raw) } else { raw.to_vec() };
    (status, head, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

pub const HELLO: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn hello(ctx: &Ctx) -> Result<()> {
    ctx.log(format!("hello from {}", ctx.branch().unwrap_or("no branch")));
    Ok(())
}

#[job(depends_on = [hello])]
async fn world(ctx: &Ctx) -> Result<()> {
    ctx.shell("echo world-from-shell").await?;
    Ok(())
}

monkeyci_sdk::main!();
"#;

#[test]
fn a_triggered_build_runs_on_the_embedded_agent_and_watch_exits_as_build_run_does() {
    let repo = TestRepo::with_pipeline("server-hello", HELLO);
    for db in databases() {
        let server = TestServer::start(&db, 2);
        server.add_repo("acme", "hello", repo.path());
        let out = server.cli(&["build", "trigger", "acme/hello", "--watch", "--plain"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{db:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("queued build "), "{stdout}");
        assert!(stdout.contains("hello from main"), "{stdout}");
        assert!(stdout.contains("world-from-shell"), "{stdout}");
        let id = stdout.split("queued build ").nth(1).unwrap().split_whitespace().next().unwrap();
        let build = server.build(id);
        assert_eq!(build["status"], "success", "{build}");
        assert_eq!(build["number"], 1);
        assert_eq!(build["git_ref"], "refs/heads/main");
        assert_eq!(build["commit"].as_str(), Some(repo.git(&["rev-parse", "HEAD"]).as_str()));
        // The stream is numbered from 1 without a gap and ends with the build's end.
        let records = server.records(id);
        let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        assert_eq!(records.last().unwrap()["kind"], "end");

        // A failing job: exit 1, as `build run`.
        repo.write_main_rs(&HELLO.replace("Ok(())\n}\n\nmonkeyci", "Err(JobError::msg(\"it broke\"))\n}\n\nmonkeyci"));
        repo.commit("break it");
        let out = server.cli(&["build", "trigger", "acme/hello", "--watch", "--plain"]);
        assert_eq!(out.status.code(), Some(1), "{db:?}: {}", String::from_utf8_lossy(&out.stdout));
        // A pipeline that does not compile: exit 2, with cargo's message in the stream.
        repo.write_main_rs("fn main() { this does not compile }\n");
        repo.commit("no longer compiles");
        let out = server.cli(&["build", "trigger", "acme/hello", "--watch", "--plain"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{db:?}: {stdout}");
        assert!(stdout.contains("error"), "{stdout}");
        repo.write_main_rs(HELLO);
        repo.commit("fixed");
    }
}

#[test]
fn api_errors_have_one_shape_and_an_org_token_reaches_only_its_org() {
    let repo = TestRepo::with_pipeline("server-scopes", HELLO);
    for db in databases() {
        let server = TestServer::start(&db, 0);
        let (status, body) = server.call_as("mci_not-a-token", "GET", "/api/v1/orgs", None);
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
        let (status, body) = server.call("POST", "/api/v1/orgs", Some(json!({"name": "x"})));
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("`id`"), "the field is named: {body}");
        let (status, body) = server.call("POST", "/api/v1/orgs", Some(json!({"id": "../etc"})));
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid")), "{body}");
        server.add_repo("alpha", "app", repo.path());
        server.add_repo("beta", "app", repo.path());
        let (status, body) = server.call("POST", "/api/v1/orgs", Some(json!({"id": "alpha"})));
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
        let (status, _) = server.call("GET", "/api/v1/nothing-here", None);
        assert_eq!(status, 404);

        let beta_build = server.trigger("beta", "app");
        let alpha_build = server.trigger("alpha", "app");
        let (_, token) = server.call("POST", "/api/v1/tokens", Some(json!({"org": "alpha"})));
        let alpha = token["token"].as_str().unwrap().to_owned();
        // Its own org: yes. Another org's build, and a build that does not exist: the same 403.
        assert_eq!(server.call_as(&alpha, "GET", &format!("/api/v1/builds/{alpha_build}"), None).0, 200);
        let (other_status, other) = server.call_as(&alpha, "GET", &format!("/api/v1/builds/{beta_build}"), None);
        let (none_status, none) = server.call_as(&alpha, "GET", "/api/v1/builds/0000000000000000ffff", None);
        assert_eq!((other_status, none_status), (403, 403));
        assert_eq!(other["error"]["code"], none["error"]["code"]);
        assert!(!other.to_string().contains("beta"), "nothing of the other org shows: {other}");
        assert_eq!(server.call_as(&alpha, "GET", "/api/v1/orgs/beta/repos", None).0, 403);
        assert_eq!(server.call_as(&alpha, "POST", "/api/v1/orgs/beta/repos/app/builds", Some(json!({}))).0, 403);
        assert_eq!(server.call_as(&alpha, "POST", "/api/v1/tokens", Some(json!({"admin": true}))).0, 403);
        let (_, listed) = server.call_as(&alpha, "GET", "/api/v1/builds", None);
        let orgs: Vec<&str> = listed.as_array().unwrap().iter().map(|b| b["org"].as_str().unwrap()).collect();
        assert_eq!(orgs, ["alpha"]);
        let (_, orgs) = server.call_as(&alpha, "GET", "/api/v1/orgs", None);
        assert_eq!(orgs.as_array().unwrap().len(), 1);
    }
}

#[test]
fn the_openapi_document_is_served_without_a_token_and_names_the_routes() {
    // The document does not depend on the database: one is enough.
    for db in databases().into_iter().take(1) {
        let server = TestServer::start(&db, 0);
        let (status, head, body) = http(server.addr(), "GET", "/api/v1/openapi.json", &[], b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
        for path in ["/api/v1/builds/{id}", "/webhook/{provider}/{org}/{repo}", "/api/v1/builds/{id}/events"] {
            assert!(doc["paths"][path].is_object(), "{path} is not in the document");
        }
        assert_eq!(doc["paths"]["/api/v1/builds/{id}"]["get"]["security"], json!([{ "bearer": [] }]));
    }
}

#[test]
fn a_cancel_reaches_a_running_build_within_two_seconds() {
    let repo = TestRepo::with_pipeline(
        "server-cancel",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn long(ctx: &Ctx) -> Result<()> {
    ctx.log("long job started");
    ctx.shell("sleep 120").await?;
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    for db in databases() {
        let server = TestServer::start(&db, 1);
        server.add_repo("acme", "long", repo.path());
        let id = server.trigger("acme", "long");
        let deadline = Instant::now() + Duration::from_secs(600);
        while !server.records(&id).iter().any(|r| r.to_string().contains("long job started")) {
            assert!(Instant::now() < deadline, "the job never started");
            let build = server.build(&id);
            assert!(matches!(build["status"].as_str(), Some("queued" | "running")), "{db:?}: it ended: {build}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let asked = Instant::now();
        let (status, body) = server.call("POST", &format!("/api/v1/builds/{id}/cancel"), None);
        assert_eq!(status, 202, "{body}");
        let build = server.wait_for_end(&id, Duration::from_secs(30));
        let took = asked.elapsed();
        assert_eq!(build["status"], "canceled", "{build}");
        assert!(took < Duration::from_secs(2), "{db:?}: cancel took {took:?}");
        // Canceling what is over is a conflict.
        assert_eq!(server.call("POST", &format!("/api/v1/builds/{id}/cancel"), None).0, 409);
    }
}

#[test]
fn the_event_stream_resumes_after_last_event_id_with_nothing_lost_or_repeated() {
    let repo = TestRepo::with_pipeline("server-sse", HELLO);
    for db in databases() {
        let server = TestServer::start(&db, 1);
        server.add_repo("acme", "sse", repo.path());
        let id = server.trigger("acme", "sse");
        // Followed live from the start, over SSE: it ends with the build.
        let path = format!("/api/v1/builds/{id}/events");
        let auth = format!("Bearer {}", server.token);
        let (status, head, body) = http(server.addr(), "GET", &path, &[("Authorization", &auth)], b"");
        assert_eq!(status, 200, "{head}");
        assert!(head.to_ascii_lowercase().contains("text/event-stream"), "{head}");
        let live = sse_ids(&body);
        let stored: Vec<i64> = server.records(&id).iter().map(|r| r["seq"].as_i64().unwrap()).collect();
        assert_eq!(live, stored, "{db:?}: live and stored streams differ");
        assert!(String::from_utf8_lossy(&body).contains("event: end"));
        // A reconnect from the middle gets exactly the rest.
        let middle = stored[stored.len() / 2];
        let (_, _, rest) =
            http(server.addr(), "GET", &path, &[("Authorization", &auth), ("Last-Event-ID", &middle.to_string())], b"");
        assert_eq!(sse_ids(&rest), stored[stored.len() / 2 + 1..].to_vec());
        let (status, _, _) =
            http(server.addr(), "GET", &path, &[("Authorization", &auth), ("Last-Event-ID", "x")], b"");
        assert_eq!(status, 400);
    }
}

pub fn sse_ids(body: &[u8]) -> Vec<i64> {
    String::from_utf8_lossy(body).lines().filter_map(|l| l.strip_prefix("id: ")).map(|id| id.parse().unwrap()).collect()
}

#[test]
fn a_server_killed_with_kill_9_loses_no_queued_build_and_runs_them_after_a_restart() {
    let repo = TestRepo::with_pipeline("server-restart", HELLO);
    for db in databases() {
        // No agent: builds stay queued.
        let mut server = TestServer::start(&db, 0);
        server.add_repo("acme", "restart", repo.path());
        let ids: Vec<String> = (0..3).map(|_| server.trigger("acme", "restart")).collect();
        server.kill_9();
        assert_eq!(server.launch(1), None, "no second admin token");
        for id in &ids {
            let build = server.wait_for_end(id, Duration::from_secs(600));
            assert_eq!(build["status"], "success", "{db:?}: {build}");
        }
        let numbers: Vec<i64> = ids.iter().map(|id| server.build(id)["number"].as_i64().unwrap()).collect();
        assert_eq!(numbers, [1, 2, 3]);
        // Each build is a new clone, and still the pipeline compiled at most once: the binary
        // is cached by its sources, wherever they are.
        let compiled = ids
            .iter()
            .filter(|id| server.records(id).iter().any(|r| r.to_string().contains("compiling pipeline")))
            .count();
        assert!(compiled <= 1, "{db:?}: {compiled} of 3 builds compiled the pipeline");
        // The token made offline works on the running server.
        let out = Command::new(MONKEYCI)
            .args(["token", "create", "--org", "acme", "--data-dir"])
            .arg(server.data_dir.path())
            .args(server.database_url.iter().flat_map(|url| ["--database-url", url.as_str()]))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(server.call_as(&token, "GET", &format!("/api/v1/builds/{}", ids[0]), None).0, 200);
    }
}

/// What a repository's code tries, at compile time (`build.rs`) and at run time (a job and
/// its `ctx.shell`), to reach outside its build. `DATA` is the server's data dir.
const ESCAPE_BUILD_RS: &str = r#"
fn main() {
    let db = "DATA/server.db";
    if std::fs::read(db).is_ok() { panic!("build.rs read the server's database {db}"); }
    if std::env::var("MONKEYCI_E2E_SERVER_SECRET").is_ok() { panic!("build.rs saw the server's environment"); }
}
"#;

const ESCAPE_MAIN_RS: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn escape(ctx: &Ctx) -> Result<()> {
    let mut reached = Vec::new();
    for path in ["DATA/server.db", "DATA/agent/another-build/secret.txt"] {
        if std::fs::read(path).is_ok() { reached.push(path.to_owned()); }
    }
    if std::env::var("MONKEYCI_E2E_SERVER_SECRET").is_ok() { reached.push("the server's environment".to_owned()); }
    if std::fs::read_dir("/run").map(|d| d.count()).unwrap_or(0) > 0 { reached.push("/run (container engine sockets)".to_owned()); }
    let out = ctx.shell("cat DATA/server.db >/dev/null 2>&1 && echo READ || echo hidden").await?;
    if out.stdout.contains("READ") { reached.push("DATA/server.db from ctx.shell".to_owned()); }
    if reached.is_empty() { Ok(()) } else { Err(JobError::msg(format!("reached {}", reached.join(", ")))) }
}

monkeyci_sdk::main!();
"#;

#[test]
fn a_build_cannot_reach_the_servers_data_other_builds_or_its_environment() {
    for db in databases() {
        for sandboxed in [true, false] {
            let server =
                if sandboxed { TestServer::start(&db, 1) } else { TestServer::start_with(&db, 1, &["--no-sandbox"]) };
            let data = server.data_dir.path().canonicalize().unwrap();
            let data = data.to_str().unwrap();
            let other = server.data_dir.path().join("agent/another-build");
            std::fs::create_dir_all(&other).unwrap();
            std::fs::write(other.join("secret.txt"), "another build's file").unwrap();
            let repo = TestRepo::with_pipeline("server-escape", &ESCAPE_MAIN_RS.replace("DATA", data));
            server.add_repo("acme", "escape", repo.path());
            let id = server.trigger("acme", "escape");
            let build = server.wait_for_end(&id, Duration::from_secs(600));
            let log: String = server.records(&id).iter().map(|r| r.to_string()).collect();
            if sandboxed {
                assert_eq!(build["status"], "success", "{db:?}: {build}\n{log}");
                // Compile time too: a build script is the repository's code.
                repo.write(".monkeyci/build.rs", &ESCAPE_BUILD_RS.replace("DATA", data));
                repo.commit("a build script");
                let id = server.trigger("acme", "escape");
                let build = server.wait_for_end(&id, Duration::from_secs(600));
                let log: String = server.records(&id).iter().map(|r| r.to_string()).collect();
                assert_eq!(build["status"], "success", "{db:?}: {build}\n{log}");
            } else {
                // The same pipeline without the sandbox does reach them: the checks are real.
                assert_eq!(build["status"], "failure", "{db:?}: {build}\n{log}");
                assert!(log.contains("server.db") && log.contains("another-build"), "{log}");
            }
        }
    }
}
