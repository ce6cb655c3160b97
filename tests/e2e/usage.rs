//! Metering on `monkeyci server` (issue 11): a real build's container, action and script time
//! reach `GET /api/v1/orgs/{org}/usage` and `monkeyci usage`, consistent with the build (the
//! container's size counted, the script's suspension not); a restart meters nothing twice; an
//! org over its credit limit gets its next build ended with the limit's error, no job run.
//! On every database of [`databases`].

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{TestServer, databases};
use crate::util::TestRepo;

/// An action job of about a second, then a size-2 container job of 7 s: longer than the
/// agent's 5 s before a script that only waits for containers suspends.
const METERED: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn tally(ctx: &Ctx) -> Result<()> {
    ctx.shell("sleep 1").await?;
    Ok(())
}

#[job(depends_on = [tally])]
fn pack(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").size(2).script(["sleep 7"])
}

monkeyci_sdk::main!();
"#;

fn f(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

/// The org's usage once the meter wrote `build`'s (the meter runs after the build's end).
fn usage_with(server: &TestServer, org: &str, build: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, usage) = server.call("GET", &format!("/api/v1/orgs/{org}/usage"), None);
        assert_eq!(status, 200, "{usage}");
        if usage["builds"].as_array().unwrap().iter().any(|b| b["build_id"] == build) {
            return usage;
        }
        assert!(Instant::now() < deadline, "build {build} was not metered: {usage}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_build_is_metered_once_and_an_org_over_its_credits_runs_no_more_builds() {
    for db in databases() {
        let repo = TestRepo::with_pipeline("server-usage", METERED);
        let mut server = TestServer::start(&db, 1);
        server.add_repo("acme", "app", repo.path());
        let id = server.trigger("acme", "app");
        let build = server.wait_for_end(&id, Duration::from_secs(300));
        assert_eq!(build["status"], "success", "{db:?}: {build}");
        let records = server.records(&id);
        assert!(
            records.iter().any(|r| r["kind"] == "event" && r["data"]["type"] == "script/suspended"),
            "{db:?}: the script suspended while the container ran"
        );

        let usage = usage_with(&server, "acme", &id);
        let builds = usage["builds"].as_array().unwrap();
        assert_eq!(builds.len(), 1, "{db:?}: {usage}");
        let metered = &builds[0];
        eprintln!("{db:?}: build {id} metered as {metered}");
        let wall = (build["ended_ms"].as_i64().unwrap() - build["started_ms"].as_i64().unwrap()) as f64 / 1000.0;
        let (container, units, action, script) = (
            f(&metered["container_seconds"]),
            f(&metered["container_credit_units"]),
            f(&metered["action_seconds"]),
            f(&metered["script_seconds"]),
        );
        assert!((7.0..wall).contains(&container), "{db:?}: 7 s of sleep in a {wall} s build: {metered}");
        assert!((units - 2.0 * container).abs() < 0.01, "{db:?}: size 2: {metered}");
        assert!((1.0..wall).contains(&action), "{db:?}: {metered}");
        assert!(script > 0.0, "{db:?}: {metered}");
        // The script waited for the container 5 s, then exited until it ended: it ran less
        // than the action job and the container one after the other.
        assert!(script < action + container - 1.0, "{db:?}: the suspension is not counted: {metered}");
        assert!((f(&metered["credits"]) - (units + script)).abs() < 0.01, "{db:?}: {metered}");
        let kinds: Vec<(&str, &str)> = metered["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["job_id"].as_str().unwrap(), j["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(kinds, [("pack", "container"), ("tally", "action")], "{db:?}");
        assert_eq!(usage["totals"]["container_seconds"], metered["container_seconds"], "{db:?}");

        let table = server.cli(&["usage", "acme"]);
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(table.status.success(), "{db:?}: {table:?}");
        let line = text.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{db:?}: {text}"));
        assert!(line.contains("app #1") && line.contains(&format!("{container:.1}")), "{db:?}: {text}");
        assert!(text.contains("credits this month:") && text.contains("(no limit)"), "{db:?}: {text}");
        let json_out = server.cli(&["usage", "acme", "--json", "--from", "2020-01-01"]);
        let from_cli: Value = serde_json::from_slice(&json_out.stdout).unwrap_or_else(|_| panic!("{json_out:?}"));
        assert_eq!(from_cli["builds"], usage["builds"], "{db:?}");
        assert_eq!(from_cli["from"], "2020-01-01", "{db:?}");
        let bad = server.cli(&["usage", "acme", "--from", "last week"]);
        assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM-DD"), "{bad:?}");

        // Who may see and set what: an org's token reaches its own usage only, and may not set
        // credits; a period must be days in order.
        let (status, _) = server.call("POST", "/api/v1/orgs", Some(json!({"id": "other"})));
        assert_eq!(status, 201);
        let (_, token) = server.call("POST", "/api/v1/tokens", Some(json!({"org": "other"})));
        let other = token["token"].as_str().unwrap();
        let (status, body) = server.call_as(other, "GET", "/api/v1/orgs/acme/usage", None);
        assert_eq!(status, 403, "{db:?}: {body}");
        let (status, body) = server.call_as(other, "GET", "/api/v1/orgs/other/usage", None);
        assert_eq!((status, body["builds"].as_array().map(Vec::len)), (200, Some(0)), "{db:?}: {body}");
        let (status, body) =
            server.call_as(other, "PUT", "/api/v1/orgs/other/credits", Some(json!({"monthly_limit": 1000})));
        assert_eq!(status, 403, "{db:?}: {body}");
        let (status, body) = server.call("GET", "/api/v1/orgs/acme/usage?from=2026-02-01&to=2026-01-31", None);
        assert_eq!(status, 422, "{db:?}: {body}");
        let (status, body) = server.call("GET", "/api/v1/orgs/acme/usage?from=2026-02-30", None);
        assert_eq!((status, body["error"]["message"].as_str().is_some_and(|m| m.starts_with("from:"))), (422, true));

        // A restart (after kill -9) meters what ended unmetered, and nothing twice.
        server.kill_9();
        server.launch(1);
        std::thread::sleep(Duration::from_secs(1));
        let after = usage_with(&server, "acme", &id);
        assert_eq!(after["builds"], usage["builds"], "{db:?}: metered once");
        assert_eq!(after["totals"], usage["totals"], "{db:?}");

        // Over the limit: the next build ends in error without running a job.
        let (status, body) =
            server.call_as("not-a-token", "PUT", "/api/v1/orgs/acme/credits", Some(json!({"monthly_limit": 1})));
        assert_eq!(status, 401, "{body}");
        let set = server.cli(&["org", "set-credits", "acme", "1"]);
        assert!(set.status.success(), "{db:?}: {set:?}");
        let refused = server.trigger("acme", "app");
        let ended = server.wait_for_end(&refused, Duration::from_secs(60));
        assert_eq!(ended["status"], "error", "{db:?}: {ended}");
        let why = ended["error"].as_str().unwrap();
        assert!(why.starts_with("the org acme used its 1 credits for this month"), "{db:?}: {why}");
        let records = server.records(&refused);
        assert!(records.iter().all(|r| r["kind"] != "event"), "{db:?}: no job ran: {records:?}");
        assert_eq!(records.last().unwrap()["data"]["error"], why, "{db:?}");
        let table = server.cli(&["usage", "acme"]);
        assert!(String::from_utf8_lossy(&table.stdout).contains(" of 1\n"), "{db:?}: {table:?}");

        // Without the limit, builds run again.
        assert!(server.cli(&["org", "set-credits", "acme", "none"]).status.success());
        let again = server.trigger("acme", "app");
        assert_eq!(server.wait_for_end(&again, Duration::from_secs(120))["status"], "success", "{db:?}");
    }
}
