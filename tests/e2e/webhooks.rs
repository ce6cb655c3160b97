//! Webhooks into `monkeyci server`: real forge payloads (the fixtures of `monkeyci-webhook`),
//! adapted to a local repository and signed, start builds that run; bad signatures start
//! nothing; deletions, pings and `[skip ci]` answer 204; a redelivery is built once; 200
//! deliveries at once make 200 builds.

use std::time::Duration;

use monkeyci_webhook::Provider;
use serde_json::{Value, json};

use crate::server::{TestServer, databases, http, sse_ids};
use crate::util::{TestRepo, workspace_dir};

const SECRET: &str = "a webhook secret for the tests";

fn fixture(path: &str) -> Value {
    let file = workspace_dir().join("runtime/webhook/tests/fixtures").join(path);
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

/// Posts `body` as `provider` would, signed with `secret`; (status, JSON body).
fn deliver(
    server: &TestServer,
    path: &str,
    provider: Provider,
    event: &str,
    delivery: &str,
    body: &Value,
    secret: &str,
) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let (sig_name, sig_value) = monkeyci_webhook::sign(provider, secret.as_bytes(), &bytes);
    let sig_name = sig_name.as_str().to_owned();
    let headers: Vec<(&str, &str)> = match provider {
        Provider::GitHub => vec![("X-GitHub-Event", event), ("X-GitHub-Delivery", delivery)],
        Provider::GitLab => vec![("X-Gitlab-Event", event), ("X-Gitlab-Event-UUID", delivery)],
        Provider::Bitbucket => vec![("X-Event-Key", event), ("X-Request-UUID", delivery)],
        Provider::Gitea => vec![("X-Gitea-Event", event), ("X-Gitea-Delivery", delivery)],
    };
    let mut all = headers;
    all.push((sig_name.as_str(), sig_value.as_str()));
    all.push(("Content-Type", "application/json"));
    let (status, _, body) = http(server.addr(), "POST", path, &all, &bytes);
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn build_count(server: &TestServer) -> usize {
    let (status, body) = server.call("GET", "/api/v1/builds?limit=1000", None);
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().len()
}

/// GitHub's push fixture, made a push of `repo`'s HEAD to `git_ref`.
fn github_push(repo: &TestRepo, git_ref: &str, message: &str) -> Value {
    let head = repo.git(&["rev-parse", "HEAD"]);
    let mut body = fixture("github/push.json");
    body["ref"] = json!(git_ref);
    body["after"] = json!(head);
    body["head_commit"]["id"] = json!(head);
    body["head_commit"]["message"] = json!(message);
    body["commits"][0]["id"] = json!(head);
    body["commits"][0]["message"] = json!(message);
    body["repository"]["clone_url"] = json!(format!("file://{}", repo.path().display()));
    body
}

const TAGGED: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn which(ctx: &Ctx) -> Result<()> {
    ctx.log(format!("tag={:?} branch={:?} touched-readme={}", ctx.tag(), ctx.branch(), ctx.touched("README.md")));
    Ok(())
}

monkeyci_sdk::main!();
"#;

#[test]
fn a_signed_github_push_starts_a_build_followed_live_and_bad_or_repeated_deliveries_start_nothing() {
    let repo = TestRepo::with_pipeline("webhook-github", TAGGED);
    for db in databases() {
        let server = TestServer::start(&db, 1);
        server.add_repo_with_secret("acme", "app", repo.path(), SECRET);
        let path = "/webhook/github/acme/app";
        let push = github_push(&repo, "refs/heads/main", "change the README");
        let (status, accepted) = deliver(&server, path, Provider::GitHub, "push", "d-1", &push, SECRET);
        assert_eq!(status, 202, "{db:?}: {accepted}");
        let id = accepted["id"].as_str().unwrap().to_owned();
        // Followed live over SSE to its end.
        let auth = format!("Bearer {}", server.token);
        let (_, _, sse) =
            http(server.addr(), "GET", &format!("/api/v1/builds/{id}/events"), &[("Authorization", &auth)], b"");
        assert!(!sse_ids(&sse).is_empty());
        let text = String::from_utf8_lossy(&sse);
        assert!(text.contains("tag=None branch=Some(\\\"main\\\") touched-readme=true"), "{text}");
        let build = server.wait_for_end(&id, Duration::from_secs(600));
        assert_eq!(build["status"], "success", "{build}");
        assert_eq!(build["source"], "webhook");
        assert_eq!(build["message"], "change the README");
        assert_eq!(build["changed"], json!(["README.md"]));
        assert_eq!(build["commit"].as_str(), Some(repo.git(&["rev-parse", "HEAD"]).as_str()));

        // The same delivery again (providers redeliver): the same build, nothing new.
        let before = build_count(&server);
        let (status, again) = deliver(&server, path, Provider::GitHub, "push", "d-1", &push, SECRET);
        assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)), "{again}");
        assert_eq!(again["id"].as_str(), Some(id.as_str()));
        // Badly signed, or for a repository that does not exist: 401, the same words, nothing started.
        let (status, bad) = deliver(&server, path, Provider::GitHub, "push", "d-2", &push, "another secret");
        assert_eq!((status, bad["error"]["code"].as_str()), (401, Some("bad_signature")), "{bad}");
        let (status, none) =
            deliver(&server, "/webhook/github/acme/nope", Provider::GitHub, "push", "d-3", &push, SECRET);
        assert_eq!(status, 401);
        assert_eq!(bad["error"]["message"], none["error"]["message"]);
        // What starts nothing: a branch deletion, a ping, another event, [skip ci].
        let deletion = fixture("github/push-branch-delete.json");
        assert_eq!(deliver(&server, path, Provider::GitHub, "push", "d-4", &deletion, SECRET).0, 204);
        assert_eq!(
            deliver(&server, path, Provider::GitHub, "ping", "d-5", &fixture("github/ping.json"), SECRET).0,
            204
        );
        let pr = fixture("github/pull_request-opened.json");
        assert_eq!(deliver(&server, path, Provider::GitHub, "pull_request", "d-6", &pr, SECRET).0, 204);
        let skipped = github_push(&repo, "refs/heads/main", "docs only [skip ci]");
        assert_eq!(deliver(&server, path, Provider::GitHub, "push", "d-7", &skipped, SECRET).0, 204);
        // A malformed body: 400 naming what is wrong.
        let mut broken = push.clone();
        broken.as_object_mut().unwrap().remove("ref");
        let (status, err) = deliver(&server, path, Provider::GitHub, "push", "d-8", &broken, SECRET);
        assert_eq!(status, 400, "{err}");
        assert!(err["error"]["message"].as_str().unwrap().contains("ref"), "{err}");
        assert_eq!(build_count(&server), before, "nothing else was queued");

        // A tag push gives ctx.tag(); through the route without the repository in it, found by
        // the clone URL in the payload.
        let mut tag = github_push(&repo, "refs/tags/v1.0.0", "release");
        tag["base_ref"] = json!("refs/heads/main");
        let (status, accepted) = deliver(&server, "/webhook/github", Provider::GitHub, "push", "d-9", &tag, SECRET);
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().unwrap();
        let build = server.wait_for_end(id, Duration::from_secs(600));
        assert_eq!((build["status"].as_str(), build["trigger"].as_str()), (Some("success"), Some("tag")), "{build}");
        let log: String = server.records(id).iter().map(|r| r.to_string()).collect();
        assert!(log.contains(r#"tag=Some(\"v1.0.0\")"#), "{log}");
    }
}

#[test]
fn gitlab_bitbucket_and_gitea_pushes_queue_builds_of_the_right_ref_commit_and_files() {
    let repo = TestRepo::new("webhook-others");
    let head = repo.git(&["rev-parse", "HEAD"]);
    for db in databases() {
        // No agent: the builds stay queued as the deliveries made them.
        let server = TestServer::start(&db, 0);
        server.add_repo_with_secret("acme", "app", repo.path(), SECRET);
        let path = |p: &str| format!("/webhook/{p}/acme/app");

        let mut gitlab = fixture("gitlab/push-hook-docs.json");
        gitlab["checkout_sha"] = json!(head);
        gitlab["after"] = json!(head);
        let (status, body) = deliver(&server, &path("gitlab"), Provider::GitLab, "Push Hook", "g-1", &gitlab, SECRET);
        assert_eq!(status, 202, "{body}");
        let build = server.build(body["id"].as_str().unwrap());
        assert_eq!(build["git_ref"], "refs/heads/master");
        assert_eq!(build["commit"].as_str(), Some(head.as_str()));
        // GitLab listed 2 of its 4 commits: the files are not known, so git is asked.
        assert_eq!(build["changed"], Value::Null, "{build}");

        let mut gitea = fixture("gitea/push.json");
        gitea["after"] = json!(head);
        gitea["head_commit"] = gitea["commits"][0].clone();
        gitea["head_commit"]["id"] = json!(head);
        let (status, body) = deliver(&server, &path("gitea"), Provider::Gitea, "push", "t-1", &gitea, SECRET);
        assert_eq!(status, 202, "{body}");
        let build = server.build(body["id"].as_str().unwrap());
        assert_eq!(
            (build["git_ref"].as_str(), build["commit"].as_str()),
            (Some("refs/heads/master"), Some(head.as_str()))
        );
        assert_eq!(build["changed"], json!(["README.md"]));

        let mut bitbucket = fixture("bitbucket/repo-push.json");
        bitbucket["push"]["changes"][0]["new"]["target"]["hash"] = json!(head);
        let (status, body) =
            deliver(&server, &path("bitbucket"), Provider::Bitbucket, "repo:push", "b-1", &bitbucket, SECRET);
        assert_eq!(status, 202, "{body}");
        let build = server.build(body["id"].as_str().unwrap());
        assert_eq!(
            (build["git_ref"].as_str(), build["commit"].as_str()),
            (Some("refs/heads/master"), Some(head.as_str()))
        );
        let deleted = fixture("bitbucket/repo-push-branch-delete.json");
        let (status, _) =
            deliver(&server, &path("bitbucket"), Provider::Bitbucket, "repo:push", "b-2", &deleted, SECRET);
        assert_eq!(status, 204);
        let numbers: Vec<i64> = [1, 2, 3].to_vec();
        let (_, listed) = server.call("GET", "/api/v1/builds?org=acme&repo=app", None);
        let mut got: Vec<i64> = listed.as_array().unwrap().iter().map(|b| b["number"].as_i64().unwrap()).collect();
        got.sort();
        assert_eq!(got, numbers);
    }
}

#[test]
fn two_hundred_deliveries_at_once_make_two_hundred_builds_none_lost_or_doubled() {
    let repo = TestRepo::new("webhook-burst");
    for db in databases() {
        let server = TestServer::start(&db, 0);
        server.add_repo_with_secret("acme", "burst", repo.path(), SECRET);
        let push = github_push(&repo, "refs/heads/main", "burst");
        let threads: Vec<_> = (0..200)
            .map(|i| {
                let (addr, push) = (server.addr().to_owned(), push.clone());
                std::thread::spawn(move || {
                    let bytes = serde_json::to_vec(&push).unwrap();
                    let (name, value) = monkeyci_webhook::sign(Provider::GitHub, SECRET.as_bytes(), &bytes);
                    let delivery = format!("burst-{i}");
                    let headers = [
                        ("X-GitHub-Event", "push"),
                        ("X-GitHub-Delivery", delivery.as_str()),
                        (name.as_str(), value.as_str()),
                    ];
                    http(&addr, "POST", "/webhook/github/acme/burst", &headers, &bytes)
                })
            })
            .collect();
        let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap().0).collect();
        assert!(statuses.iter().all(|s| *s == 202), "{db:?}: {statuses:?}");
        let (_, listed) = server.call("GET", "/api/v1/builds?org=acme&repo=burst&limit=1000", None);
        let mut numbers: Vec<i64> = listed.as_array().unwrap().iter().map(|b| b["number"].as_i64().unwrap()).collect();
        numbers.sort();
        assert_eq!(numbers, (1..=200).collect::<Vec<_>>(), "{db:?}");
        // The server's figures say so too.
        let (status, _, metrics) = http(server.addr(), "GET", "/metrics", &[], b"");
        let metrics = String::from_utf8_lossy(&metrics);
        assert_eq!(status, 200);
        assert!(metrics.contains("monkeyci_builds{status=\"queued\"} 200"), "{metrics}");
        assert!(metrics.contains("monkeyci_webhook_seconds_count 200"), "{metrics}");
    }
}
