//! Params on `monkeyci server`: set through the CLI, read by a pipeline through the sdk on the
//! embedded agent (with its build token), and never shown again: not in a build's records, its
//! event stream, `build watch`, any API answer, nor in clear in the database. Label filters give
//! a set only to matching repositories. A build token reads only its own build's params, and
//! only while the build runs; an org token reaches only its org's params. Each test runs on
//! every database of [`databases`].

use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{TestServer, databases, http};
use crate::util::TestRepo;

/// The secret: nothing may show it, nor its base64.
const TOKEN: &str = "s3cr3t-Tok3n-for-e2e";

/// A pipeline that shows its `DEPLOY_TOKEN` param every way it can: logged plainly and
/// base64-encoded, printed on stdout and stderr, echoed by a shell, and in its error.
const SHOWS_ITS_PARAM: &str = r#"
use monkeyci_sdk::prelude::*;

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[job]
async fn deploy(ctx: &Ctx) -> Result<()> {
    let Ok(token) = ctx.param("DEPLOY_TOKEN") else {
        ctx.log("no DEPLOY_TOKEN for this repository");
        return Ok(());
    };
    let value = token.expose().to_owned();
    ctx.log(format!("plain {value}"));
    ctx.log(format!("encoded {}", b64(value.as_bytes())));
    println!("stdout {value}");
    eprintln!("stderr {value}");
    ctx.shell(&format!("echo shell {value}")).await?;
    Err(JobError::msg(format!("deploy failed with token {value}")))
}

monkeyci_sdk::main!();
"#;

/// The same base64 as the pipeline's.
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Panics if `text` shows the secret or its base64.
fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(TOKEN), "{what} shows the secret: {text}");
    let encoded = b64(TOKEN.as_bytes());
    assert!(!text.contains(encoded.trim_end_matches('=')), "{what} shows its base64: {text}");
}

fn add_org_and_repo(server: &TestServer, org: &str, name: &str, repo: &TestRepo, labels: &[&str]) {
    let (status, _) = server.call("POST", "/api/v1/orgs", Some(json!({"id": org})));
    assert!(status == 201 || status == 409, "creating org {org}: {status}");
    let body = json!({"name": name, "url": format!("file://{}", repo.path().display()), "labels": labels});
    let (status, body) = server.call("POST", &format!("/api/v1/orgs/{org}/repos"), Some(body));
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_param_reaches_only_matching_repositories_and_nothing_shows_its_value() {
    let repo = TestRepo::with_pipeline("server-params", SHOWS_ITS_PARAM);
    assert_eq!(b64(b"hunter22\n"), "aHVudGVyMjIK", "the test's base64 is base64");
    for db in databases() {
        let server = TestServer::start(&db, 2);
        add_org_and_repo(&server, "acme", "web", &repo, &["env=prod"]);
        add_org_and_repo(&server, "acme", "lib", &repo, &["env=dev"]);
        // Through the CLI: the value from a file, in a set for `env=prod` repositories.
        let file = server.data_dir.path().join("token.txt");
        std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
        let from_file = file.to_str().unwrap();
        let args = ["param", "set", "acme", "DEPLOY_TOKEN", "--from-file", from_file, "--set", "prod"];
        let out = server.cli(&[&args[..], &["--label", "env=prod"]].concat());
        assert!(out.status.success(), "{db:?}: {}", String::from_utf8_lossy(&out.stderr));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("env=prod"), "{said}");
        assert_hidden("param set", &said);
        // A param of the lib repository itself, which web does not get.
        let out = server.cli(&["param", "set", "acme/lib", "LIB_ONLY", "lib-value-123"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let web = server.trigger("acme", "web");
        let lib = server.trigger("acme", "lib");
        let web_build = server.wait_for_end(&web, Duration::from_secs(600));
        let lib_build = server.wait_for_end(&lib, Duration::from_secs(600));
        assert_eq!(web_build["status"], "failure", "{db:?}: the job failed with its error: {web_build}");
        assert_eq!(lib_build["status"], "success", "{db:?}: {lib_build}");

        // The web build got the value (every form of it is masked), lib did not.
        let records = Value::Array(server.records(&web)).to_string();
        assert_hidden("the records", &records);
        for shown in
            ["plain ***", "encoded ***", "stdout ***", "stderr ***", "shell ***", "deploy failed with token ***"]
        {
            assert!(records.contains(shown), "{db:?}: {shown:?} is not in the records: {records}");
        }
        let lib_records = Value::Array(server.records(&lib)).to_string();
        assert!(lib_records.contains("no DEPLOY_TOKEN for this repository"), "{db:?}: {lib_records}");

        // The event stream, `build watch`, and every API answer.
        let auth = format!("Bearer {}", server.token);
        let (status, _, sse) =
            http(server.addr(), "GET", &format!("/api/v1/builds/{web}/events"), &[("Authorization", &auth)], b"");
        assert_eq!(status, 200);
        let sse = String::from_utf8_lossy(&sse);
        assert_hidden("the event stream", &sse);
        assert!(sse.contains("plain ***"), "{sse}");
        let out = server.cli(&["build", "watch", &web, "--plain"]);
        assert_hidden("build watch", &String::from_utf8_lossy(&out.stdout));
        assert_hidden("build watch's stderr", &String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("plain ***"));
        for path in [
            format!("/api/v1/builds/{web}"),
            "/api/v1/builds".to_owned(),
            "/api/v1/orgs/acme/params".to_owned(),
            "/api/v1/orgs/acme/repos/web/params".to_owned(),
            "/api/v1/orgs/acme/repos/lib/params".to_owned(),
            "/api/v1/orgs/acme/repos".to_owned(),
            format!("/api/v1/builds/{web}/params"),
        ] {
            let (_, _, body) = http(server.addr(), "GET", &path, &[("Authorization", &auth)], b"");
            let body = String::from_utf8_lossy(&body);
            assert_hidden(&path, &body);
            assert!(!body.contains("lib-value-123"), "{path}: {body}");
        }
        // Lists show names, lengths and filters.
        let (_, sets) = server.call("GET", "/api/v1/orgs/acme/params", None);
        assert_eq!(sets[0]["name"], "prod", "{sets}");
        assert_eq!(sets[0]["label_filter"], json!([[{"label": "env", "value": "prod"}]]));
        assert_eq!(sets[0]["params"][0]["name"], "DEPLOY_TOKEN");
        assert_eq!(sets[0]["params"][0]["length"], TOKEN.len() + 1, "read from the file with its newline");
        let out = server.cli(&["param", "list", "acme"]);
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.contains("prod (for env=prod)") && listed.contains("DEPLOY_TOKEN"), "{listed}");
        assert_hidden("param list", &listed);
        let out = server.cli(&["param", "list", "acme/lib"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("LIB_ONLY"));

        // Nothing in clear in the database's files (SQLite).
        if matches!(db, crate::server::Database::Sqlite) {
            for entry in std::fs::read_dir(server.data_dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().unwrap().to_string_lossy().starts_with("server.db") {
                    let bytes = std::fs::read(&path).unwrap();
                    let text = String::from_utf8_lossy(&bytes);
                    assert!(!text.contains(TOKEN), "{} holds the secret in clear", path.display());
                    assert!(!text.contains("lib-value-123"), "{} holds a param in clear", path.display());
                }
            }
        }

        // Deleting: the param, then the set.
        let out = server.cli(&["param", "delete", "acme/lib", "LIB_ONLY"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = server.cli(&["param", "delete", "acme", "--set", "prod"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let (_, sets) = server.call("GET", "/api/v1/orgs/acme/params", None);
        assert_eq!(sets, json!([]));
    }
}

#[test]
fn a_build_token_reads_only_its_own_running_build_and_an_org_token_only_its_org() {
    let repo = TestRepo::with_pipeline("server-param-tokens", SHOWS_ITS_PARAM);
    for db in databases() {
        // No agent: the test claims the builds and makes their tokens as an agent does.
        let server = TestServer::start(&db, 0);
        add_org_and_repo(&server, "alpha", "app", &repo, &[]);
        add_org_and_repo(&server, "beta", "app", &repo, &[]);
        let put = json!({"values": {"DEPLOY_TOKEN": TOKEN}});
        let (status, body) = server.call("PUT", "/api/v1/orgs/alpha/params/default", Some(put.clone()));
        assert_eq!(status, 200, "{body}");
        assert_hidden("the PUT answer", &body.to_string());
        assert_eq!(server.call("PUT", "/api/v1/orgs/beta/repos/app/params", Some(put)).0, 200);
        let first = server.trigger("alpha", "app");
        let second = server.trigger("alpha", "app");
        let ((first_token, second_token), early) = {
            let url = server.database_url();
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let db = monkeyci_server::db::Db::open(&url).await.unwrap();
                let auth = monkeyci_server::auth::create_build_token;
                // A token made before the claim reaches nothing.
                let early = auth(&db, &first).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert_eq!(db.claim_build("e2e-agent").await.unwrap().unwrap().id, first);
                assert_eq!(db.claim_build("e2e-agent").await.unwrap().unwrap().id, second);
                let tokens = (auth(&db, &first).await.unwrap(), auth(&db, &second).await.unwrap());
                db.close().await;
                (tokens, early)
            })
        };
        let params = |token: &str, id: &str| server.call_as(token, "GET", &format!("/api/v1/builds/{id}/params"), None);
        let (status, body) = params(&first_token, &first);
        assert_eq!((status, body["DEPLOY_TOKEN"].as_str()), (200, Some(TOKEN)), "{db:?}: {body}");
        // Another build's params: 403, and nothing of them.
        let (status, body) = params(&first_token, &second);
        assert_eq!(status, 403, "{body}");
        assert_hidden("a refusal", &body.to_string());
        // Not even an admin or the org's own token read a build's params.
        let (_, org_token) = server.call("POST", "/api/v1/tokens", Some(json!({"org": "alpha"})));
        let alpha = org_token["token"].as_str().unwrap().to_owned();
        assert_eq!(params(&server.token, &first).0, 403);
        assert_eq!(params(&alpha, &first).0, 403);
        // A build token reaches nothing else.
        assert_eq!(server.call_as(&first_token, "GET", &format!("/api/v1/builds/{first}"), None).0, 403);
        assert_eq!(server.call_as(&first_token, "GET", "/api/v1/orgs/alpha/params", None).0, 403);
        assert_eq!(params(&early, &first).0, 401, "a token older than the claim");
        // Once its build is over, the token is refused.
        let url = server.database_url();
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let db = monkeyci_server::db::Db::open(&url).await.unwrap();
            assert!(db.finish_build(&first, monkeyci_server::model::Status::Success, None).await.unwrap());
            db.close().await;
        });
        assert_eq!(params(&first_token, &first).0, 401);
        assert_eq!(params(&second_token, &second).0, 200, "the other build's token still works");

        // An org token: its own org's params, not another's (through the API and the CLI).
        assert_eq!(server.call_as(&alpha, "GET", "/api/v1/orgs/alpha/params", None).0, 200);
        for path in ["/api/v1/orgs/beta/params", "/api/v1/orgs/beta/repos/app/params"] {
            let (status, body) = server.call_as(&alpha, "GET", path, None);
            assert_eq!(status, 403, "{path}: {body}");
        }
        let denied = json!({"values": {"X": "value"}});
        assert_eq!(server.call_as(&alpha, "PUT", "/api/v1/orgs/beta/params/default", Some(denied)).0, 403);
        assert_eq!(server.call_as(&alpha, "DELETE", "/api/v1/orgs/beta/repos/app/params/DEPLOY_TOKEN", None).0, 403);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyci"))
            .args(["param", "list", "beta", "--server", &format!("http://{}", server.addr()), "--token", &alpha])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot reach org"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
