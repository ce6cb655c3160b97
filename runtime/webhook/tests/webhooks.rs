//! The published example payloads in `tests/fixtures/` (see its README for where each comes from
//! and what it holds), read and verified as a server would: `fixtures` checks every file parses to
//! the values in the README's tables, `signatures` checks each provider's signature scheme over
//! the fixture bytes, and `rules` checks skip-ci, Forgejo headers and Bitbucket's several ref
//! changes on fixtures edited in the test.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use http::{HeaderMap, HeaderName};
use monkeyci_webhook::{
    ChangedFiles, Hook, Ignored, Person, Provider, Push, RefName, Repository, VerifyError, parse, sign, verify,
};

const ZERO: &str = "0000000000000000000000000000000000000000";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    map
}

/// The headers each provider sends with a push (and the delivery id it is read from).
fn push_headers(provider: Provider, event: &str) -> HeaderMap {
    match provider {
        Provider::GitHub => headers(&[("X-GitHub-Event", event), ("X-GitHub-Delivery", "gh-1")]),
        Provider::GitLab => headers(&[("X-Gitlab-Event", event), ("X-Gitlab-Event-UUID", "gl-1")]),
        Provider::Bitbucket => headers(&[("X-Event-Key", event), ("X-Request-UUID", "bb-1")]),
        Provider::Gitea => headers(&[("X-Gitea-Event", event), ("X-Gitea-Delivery", "gt-1")]),
    }
}

fn delivery(provider: Provider) -> Option<String> {
    Some(
        match provider {
            Provider::GitHub => "gh-1",
            Provider::GitLab => "gl-1",
            Provider::Bitbucket => "bb-1",
            Provider::Gitea => "gt-1",
        }
        .to_owned(),
    )
}

fn read(provider: Provider, event: &str, body: &[u8]) -> Hook {
    parse(provider, &push_headers(provider, event), body).unwrap_or_else(|err| panic!("{provider} {event}: {err}"))
}

fn one_push(provider: Provider, event: &str, file: &str) -> Push {
    match read(provider, event, &fixture(file)) {
        Hook::Push(mut pushes) if pushes.len() == 1 => pushes.remove(0),
        other => panic!("{file}: expected one push, got {other:?}"),
    }
}

fn ignored(provider: Provider, event: &str, file: &str) -> Ignored {
    match read(provider, event, &fixture(file)) {
        Hook::Ignored { delivery: d, reason } => {
            assert_eq!(d, delivery(provider), "{file}: the delivery id is kept");
            reason
        }
        other => panic!("{file}: expected ignored, got {other:?}"),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn files(added: &[&str], modified: &[&str], removed: &[&str], complete: bool) -> ChangedFiles {
    let mut paths: Vec<String> = Vec::new();
    for path in added.iter().chain(modified).chain(removed) {
        if !paths.iter().any(|p| p == path) {
            paths.push(path.to_string());
        }
    }
    ChangedFiles { paths, added: strings(added), modified: strings(modified), removed: strings(removed), complete }
}

fn person(name: Option<&str>, email: Option<&str>, login: Option<&str>) -> Option<Person> {
    Some(Person { name: name.map(str::to_owned), email: email.map(str::to_owned), login: login.map(str::to_owned) })
}

fn repo(full_name: &str, html: &str, clone: Option<&str>, ssh: Option<&str>) -> Repository {
    Repository {
        full_name: full_name.to_owned(),
        html_url: Some(html.to_owned()),
        clone_url: clone.map(str::to_owned),
        ssh_url: ssh.map(str::to_owned),
    }
}

fn hello_world() -> Repository {
    repo(
        "Codertocat/Hello-World",
        "https://github.com/Codertocat/Hello-World",
        Some("https://github.com/Codertocat/Hello-World.git"),
        Some("git@github.com:Codertocat/Hello-World.git"),
    )
}

fn drone_test_go() -> Repository {
    repo(
        "bradrydzewski/drone-test-go",
        "https://github.com/bradrydzewski/drone-test-go",
        Some("https://github.com/bradrydzewski/drone-test-go.git"),
        Some("git@github.com:bradrydzewski/drone-test-go.git"),
    )
}

mod fixtures {
    use super::*;

    #[test]
    fn github_push() {
        let push = one_push(Provider::GitHub, "push", "github/push.json");
        assert_eq!(
            push,
            Push {
                delivery: Some("gh-1".into()),
                git_ref: "refs/heads/master".into(),
                target: RefName::Branch("master".into()),
                commit: "199eddf46df50de8d02e99bf1c5fdb4101338224".into(),
                before: Some("a10867b14bb761a232cd80139fbd4c0d33264240".into()),
                author: person(
                    Some("Codertocat"),
                    Some("21031067+Codertocat@users.noreply.github.com"),
                    Some("Codertocat")
                ),
                message: Some("Update README".into()),
                repository: hello_world(),
                files: files(&[], &["README.md"], &[], true),
            }
        );
        assert_eq!(push.branch(), Some("master"));
        assert_eq!(push.tag(), None);
    }

    #[test]
    fn github_push_new_branch() {
        let push = one_push(Provider::GitHub, "push", "github/push-new-branch.json");
        assert_eq!(push.git_ref, "refs/heads/master");
        assert_eq!(push.target, RefName::Branch("master".into()));
        assert_eq!(push.commit, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        assert_eq!(push.before, None, "created: the zero `before` is no commit");
        assert_eq!(push.message.as_deref(), Some("Initial commit"));
        assert_eq!(push.repository, hello_world());
        assert_eq!(push.files, files(&["README.md"], &[], &[], true));
    }

    #[test]
    fn github_push_tag_create() {
        let push = one_push(Provider::GitHub, "push", "github/push-tag-create.json");
        assert_eq!(push.git_ref, "refs/tags/v0.0.1");
        assert_eq!(push.target, RefName::Tag("v0.0.1".into()));
        assert_eq!(push.tag(), Some("v0.0.1"));
        assert_eq!(push.commit, "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd");
        assert_eq!(push.before, None);
        assert_eq!(push.message.as_deref(), Some("Update .drone.yml"));
        assert_eq!(
            push.author,
            person(Some("Brad Rydzewski"), Some("brad.rydzewski@gmail.com"), Some("bradrydzewski"))
        );
        assert_eq!(push.repository, drone_test_go());
        // `commits` is empty: the head commit's own lists are not the push's.
        assert_eq!(push.files, files(&[], &[], &[], true));
    }

    #[test]
    fn github_deletions_are_ignored() {
        assert_eq!(
            ignored(Provider::GitHub, "push", "github/push-tag-delete.json"),
            Ignored::Deleted { git_ref: "refs/tags/simple-tag".into() }
        );
        assert_eq!(
            ignored(Provider::GitHub, "push", "github/push-branch-delete.json"),
            Ignored::Deleted { git_ref: "refs/heads/feature-branch".into() }
        );
    }

    #[test]
    fn github_ping_and_pull_request_are_ignored() {
        assert_eq!(ignored(Provider::GitHub, "ping", "github/ping.json"), Ignored::Ping);
        assert_eq!(
            ignored(Provider::GitHub, "pull_request", "github/pull_request-opened.json"),
            Ignored::Event("pull_request".into())
        );
    }

    #[test]
    fn gitlab_push_lists_only_20_commits() {
        let push = one_push(Provider::GitLab, "Push Hook", "gitlab/push-hook-docs.json");
        assert_eq!(
            push,
            Push {
                delivery: Some("gl-1".into()),
                git_ref: "refs/heads/master".into(),
                target: RefName::Branch("master".into()),
                commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into(),
                before: Some("95790bf891e76fee5e1747ab589903a6a1f80f22".into()),
                author: person(Some("GitLab dev user"), Some("gitlabdev@dv6700.(none)"), None),
                message: Some("fixed readme".into()),
                repository: repo(
                    "mike/diaspora",
                    "http://example.com/mike/diaspora",
                    Some("http://example.com/mike/diaspora.git"),
                    Some("git@example.com:mike/diaspora.git"),
                ),
                // `total_commits_count` is 4 while 2 commits are listed.
                files: files(&["CHANGELOG"], &["app/controller/application.rb"], &[], false),
            }
        );
    }

    #[test]
    fn gitlab_tag_push() {
        let push = one_push(Provider::GitLab, "Tag Push Hook", "gitlab/tag-push-hook-docs.json");
        assert_eq!(push.git_ref, "refs/tags/v1.0.0");
        assert_eq!(push.target, RefName::Tag("v1.0.0".into()));
        assert_eq!(push.commit, "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7");
        assert_eq!(push.before, None);
        assert_eq!(push.message, None, "a tag push lists no commit");
        assert_eq!(push.author, person(Some("John Smith"), None, None), "the pusher");
        assert_eq!(push.repository.full_name, "jsmith/example");
        assert_eq!(push.files, files(&[], &[], &[], true));
    }

    #[test]
    fn gitlab_com_push() {
        let push = one_push(Provider::GitLab, "Push Hook", "gitlab/push-hook-gitlab-com.json");
        assert_eq!(push.git_ref, "refs/heads/master");
        assert_eq!(push.commit, "2adc9465c4edfc33834e173fe89436a7cb899a1d");
        assert_eq!(push.before.as_deref(), Some("9217710ce8c7e1eae7a5d1c45f6e43e1c769f866"));
        assert_eq!(push.message.as_deref(), Some("added readme\n"));
        assert_eq!(
            push.repository,
            repo(
                "gitlab-org/hello-world",
                "https://gitlab.com/gitlab-org/hello-world",
                Some("https://gitlab.com/gitlab-org/hello-world.git"),
                Some("git@gitlab.com:gitlab-org/hello-world.git"),
            )
        );
        assert_eq!(push.files, files(&["README.md"], &[], &[], true));
    }

    #[test]
    fn gitlab_deletions_are_ignored() {
        assert_eq!(
            ignored(Provider::GitLab, "Push Hook", "gitlab/push-hook-branch-delete.json"),
            Ignored::Deleted { git_ref: "refs/heads/feature".into() }
        );
        assert_eq!(
            ignored(Provider::GitLab, "Tag Push Hook", "gitlab/tag-push-hook-delete.json"),
            Ignored::Deleted { git_ref: "refs/tags/v1.0.0".into() }
        );
    }

    #[test]
    fn bitbucket_push_has_no_file_lists() {
        let push = one_push(Provider::Bitbucket, "repo:push", "bitbucket/repo-push.json");
        assert_eq!(
            push,
            Push {
                delivery: Some("bb-1".into()),
                git_ref: "refs/heads/master".into(),
                target: RefName::Branch("master".into()),
                commit: "141977fedf5cf35aa290ac87d4b5177ac4cd9de1".into(),
                before: Some("40e7580cf11311d84a6e5e97e2cbba6df1675750".into()),
                author: person(Some("Brad Rydzewski"), Some("brad.rydzewski@gmail.com"), Some("brydzewski")),
                message: Some("Update README\n".into()),
                repository: repo("brydzewski/foo", "https://bitbucket.org/brydzewski/foo", None, None),
                files: files(&[], &[], &[], false),
            }
        );
    }

    #[test]
    fn bitbucket_tag_create() {
        let push = one_push(Provider::Bitbucket, "repo:push", "bitbucket/repo-push-tag-create.json");
        assert_eq!(push.git_ref, "refs/tags/feature/x");
        assert_eq!(push.target, RefName::Tag("feature/x".into()));
        assert_eq!(push.commit, "141977fedf5cf35aa290ac87d4b5177ac4cd9de1");
        assert_eq!(push.before, None, "`old` is null");
        assert!(!push.files.complete);
    }

    #[test]
    fn bitbucket_branch_delete_is_ignored() {
        assert_eq!(
            ignored(Provider::Bitbucket, "repo:push", "bitbucket/repo-push-branch-delete.json"),
            Ignored::Deleted { git_ref: "refs/heads/develop".into() }
        );
    }

    #[test]
    fn gitea_docs_push_without_file_lists_is_unknown_not_empty() {
        let push = one_push(Provider::Gitea, "push", "gitea/push-docs.json");
        assert_eq!(
            push,
            Push {
                delivery: Some("gt-1".into()),
                git_ref: "refs/heads/develop".into(),
                target: RefName::Branch("develop".into()),
                commit: "bffeb74224043ba2feb48d137756c8a9331c449a".into(),
                before: Some("28e1879d029cb852e4844d9c718537df08844e03".into()),
                author: person(Some("Gitea"), Some("someone@gitea.io"), Some("gitea")),
                message: Some("Webhooks Yay!".into()),
                repository: repo(
                    "gitea/webhooks",
                    "http://localhost:3000/gitea/webhooks",
                    Some("http://localhost:3000/gitea/webhooks.git"),
                    Some("ssh://gitea@localhost:2222/gitea/webhooks.git"),
                ),
                files: files(&[], &[], &[], false),
            }
        );
    }

    #[test]
    fn gitea_push() {
        let push = one_push(Provider::Gitea, "push", "gitea/push.json");
        assert_eq!(push.git_ref, "refs/heads/master");
        assert_eq!(push.commit, "4522cbcefc20728a5b72b3a86af35e608622c514");
        assert_eq!(push.before.as_deref(), Some("9836a96a253cce25d17988fcf41b8c4205cf779f"));
        assert_eq!(push.message.as_deref(), Some("Updated readme\n"));
        assert_eq!(push.author, person(Some("Unknwon"), Some("noreply@gogs.io"), Some("unknwon")));
        assert_eq!(
            push.repository,
            repo(
                "gogits/hello-world",
                "http://try.gitea.io/gogits/hello-world",
                Some("http://try.gitea.io/gogits/hello-world.git"),
                Some("git@localhost:gogits/hello-world.git"),
            )
        );
        assert_eq!(push.files, files(&[], &["README.md"], &[], true));
    }

    /// Every file in `tests/fixtures/` is covered by a test above.
    #[test]
    fn every_fixture_is_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut count = 0;
        for provider in ["github", "gitlab", "bitbucket", "gitea"] {
            for entry in std::fs::read_dir(root.join(provider)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let this = include_str!("webhooks.rs");
                assert!(this.contains(&format!("\"{provider}/{name}\"")), "{provider}/{name} has no test");
                count += 1;
            }
        }
        assert_eq!(count, 17);
    }
}

mod signatures {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";

    fn cases() -> [(Provider, &'static str); 4] {
        [
            (Provider::GitHub, "github/push.json"),
            (Provider::GitLab, "gitlab/push-hook-docs.json"),
            (Provider::Bitbucket, "bitbucket/repo-push.json"),
            (Provider::Gitea, "gitea/push.json"),
        ]
    }

    fn signed(provider: Provider, secret: &[u8], body: &[u8]) -> (HeaderMap, &'static str) {
        let (name, value) = sign(provider, secret, body);
        let header = match provider {
            Provider::GitHub => "X-Hub-Signature-256",
            Provider::GitLab => "X-Gitlab-Token",
            Provider::Bitbucket => "X-Hub-Signature",
            Provider::Gitea => "X-Gitea-Signature",
        };
        assert!(name.as_str().eq_ignore_ascii_case(header));
        (headers(&[(header, &value)]), header)
    }

    #[test]
    fn a_correct_signature_over_the_fixture_bytes_is_accepted() {
        for (provider, file) in cases() {
            let body = fixture(file);
            let (sent, _) = signed(provider, SECRET, &body);
            assert_eq!(verify(provider, SECRET, &sent, &body), Ok(()), "{provider}");
        }
    }

    #[test]
    fn the_signature_headers_are_as_documented() {
        // Computed independently: `openssl dgst -sha256 -hmac "It's a Secret to Everybody"`
        // over github/push.json as stored.
        let body = fixture("github/push.json");
        let (name, value) = sign(Provider::GitHub, SECRET, &body);
        assert_eq!(name, "x-hub-signature-256");
        assert_eq!(value, format!("sha256={}", GITHUB_PUSH_HMAC));
        let (_, gitea) = sign(Provider::Gitea, SECRET, &body);
        assert_eq!(gitea, GITHUB_PUSH_HMAC);
        let (_, gitlab) = sign(Provider::GitLab, SECRET, &body);
        assert_eq!(gitlab, "It's a Secret to Everybody");
    }

    const GITHUB_PUSH_HMAC: &str = "f34850706d3e5e5a04a0ce1fc8cdec591b62e15f33636253edad1b9d3eb78385";

    #[test]
    fn a_signature_made_with_another_secret_is_rejected() {
        for (provider, file) in cases() {
            let body = fixture(file);
            let (sent, header) = signed(provider, b"not the secret", &body);
            assert_eq!(verify(provider, SECRET, &sent, &body), Err(VerifyError::Mismatch { header }), "{provider}");
        }
    }

    #[test]
    fn a_missing_header_is_rejected() {
        for (provider, file) in cases() {
            let body = fixture(file);
            let (sent, header) = signed(provider, SECRET, &body);
            let mut stripped = sent.clone();
            stripped.remove(header);
            let expected = match provider {
                Provider::Gitea => "X-Gitea-Signature` or `X-Forgejo-Signature",
                _ => header,
            };
            let err = verify(provider, SECRET, &stripped, &body).unwrap_err();
            assert_eq!(err, VerifyError::MissingHeader { header: expected });
            assert_eq!(err.to_string(), format!("header `{expected}` is missing"));
        }
    }

    #[test]
    fn a_body_altered_by_one_byte_is_rejected() {
        for (provider, file) in cases() {
            let body = fixture(file);
            let (sent, header) = signed(provider, SECRET, &body);
            let mut altered = body.clone();
            let at = altered.len() / 2;
            altered[at] ^= 0x01;
            let result = verify(provider, SECRET, &sent, &altered);
            if provider == Provider::GitLab {
                // GitLab's token is the secret itself, not a signature of the body: it proves
                // the sender knows the secret, not that the body is intact (TLS does that).
                assert_eq!(result, Ok(()));
            } else {
                assert_eq!(result, Err(VerifyError::Mismatch { header }), "{provider}");
            }
        }
    }

    #[test]
    fn an_empty_secret_accepts_nothing() {
        for (provider, file) in cases() {
            let body = fixture(file);
            let (sent, _) = signed(provider, b"", &body);
            assert_eq!(verify(provider, b"", &sent, &body), Err(VerifyError::EmptySecret), "{provider}");
        }
    }

    #[test]
    fn forgejo_signatures_are_accepted_beside_or_instead_of_gitea_ones() {
        let body = fixture("gitea/push.json");
        let (_, value) = sign(Provider::Gitea, SECRET, &body);
        let forgejo_only = headers(&[("X-Forgejo-Signature", &value)]);
        assert_eq!(verify(Provider::Gitea, SECRET, &forgejo_only, &body), Ok(()));
        let both = headers(&[("X-Forgejo-Signature", &value), ("X-Gitea-Signature", &value)]);
        assert_eq!(verify(Provider::Gitea, SECRET, &both, &body), Ok(()));
        // Every signature sent must hold: a good one does not excuse a bad one.
        let (_, other) = sign(Provider::Gitea, b"another secret", &body);
        let mixed = headers(&[("X-Forgejo-Signature", &value), ("X-Gitea-Signature", &other)]);
        assert_eq!(
            verify(Provider::Gitea, SECRET, &mixed, &body),
            Err(VerifyError::Mismatch { header: "X-Gitea-Signature" })
        );
    }
}

mod rules {
    use serde_json::{Value, json};

    use super::*;

    type Edit = fn(&mut Value);

    fn edit(file: &str, change: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(&fixture(file)).unwrap();
        change(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn skip_ci_in_the_head_commit_message_is_ignored_for_every_provider() {
        let cases: [(Provider, &str, &str, Edit); 4] = [
            (Provider::GitHub, "push", "github/push.json", |v| {
                v["head_commit"]["message"] = json!("Update README [skip ci]");
            }),
            (Provider::GitLab, "Push Hook", "gitlab/push-hook-docs.json", |v| {
                v["commits"][1]["message"] = json!("fixed readme\n\n[CI SKIP]");
            }),
            (Provider::Bitbucket, "repo:push", "bitbucket/repo-push.json", |v| {
                v["push"]["changes"][0]["new"]["target"]["message"] = json!("[Skip CI] docs");
            }),
            (Provider::Gitea, "push", "gitea/push.json", |v| {
                v["commits"][0]["message"] = json!("Updated readme [ci skip]\n");
            }),
        ];
        for (provider, event, file, change) in cases {
            let hook = read(provider, event, &edit(file, change));
            assert!(
                matches!(
                    &hook,
                    Hook::Ignored { reason: Ignored::SkipCi { git_ref, .. }, .. }
                        if git_ref.starts_with("refs/heads/")
                ),
                "{provider}: {hook:?}"
            );
        }
        // Only the head commit counts: an earlier commit asking to skip does not.
        let body = edit("gitlab/push-hook-docs.json", |v| {
            v["commits"][0]["message"] = json!("wip [skip ci]");
        });
        assert!(matches!(read(Provider::GitLab, "Push Hook", &body), Hook::Push(_)));
    }

    #[test]
    fn forgejo_headers_are_read_beside_or_instead_of_gitea_ones() {
        let body = fixture("gitea/push.json");
        let forgejo = headers(&[("X-Forgejo-Event", "push"), ("X-Forgejo-Delivery", "fj-1")]);
        let hook = parse(Provider::Gitea, &forgejo, &body).unwrap();
        assert!(matches!(hook, Hook::Push(_)));
        assert_eq!(hook.delivery(), Some("fj-1"));
        let both = headers(&[
            ("X-Forgejo-Event", "push"),
            ("X-Gitea-Event", "push"),
            ("X-Forgejo-Delivery", "fj-2"),
            ("X-Gitea-Delivery", "fj-2"),
        ]);
        assert_eq!(parse(Provider::Gitea, &both, &body).unwrap().delivery(), Some("fj-2"));
    }

    #[test]
    fn delivery_ids_are_read_from_each_providers_header() {
        for provider in Provider::ALL {
            let hook = parse(provider, &push_headers(provider, "unhandled"), b"").unwrap();
            assert_eq!(hook.delivery().map(str::to_owned), delivery(provider));
        }
        // GitLab's `Idempotency-Key`, when `X-Gitlab-Event-UUID` is absent.
        let sent = headers(&[("X-Gitlab-Event", "Push Hook"), ("Idempotency-Key", "ik-1")]);
        let hook = parse(Provider::GitLab, &sent, &fixture("gitlab/push-hook-docs.json")).unwrap();
        assert_eq!(hook.delivery(), Some("ik-1"));
        // No delivery header: no id, and still read.
        let sent = headers(&[("X-GitHub-Event", "push")]);
        let hook = parse(Provider::GitHub, &sent, &fixture("github/push.json")).unwrap();
        assert_eq!(hook.delivery(), None);
    }

    #[test]
    fn bitbucket_builds_each_ref_change_and_drops_deletions() {
        let tag = edit("bitbucket/repo-push-tag-create.json", |v| {
            *v = v["push"]["changes"][0].take();
        });
        let deleted = edit("bitbucket/repo-push-branch-delete.json", |v| {
            *v = v["push"]["changes"][0].take();
        });
        let body = edit("bitbucket/repo-push.json", |v| {
            let changes = v["push"]["changes"].as_array_mut().unwrap();
            changes.insert(0, serde_json::from_slice(&deleted).unwrap());
            changes.push(serde_json::from_slice(&tag).unwrap());
        });
        let Hook::Push(pushes) = read(Provider::Bitbucket, "repo:push", &body) else {
            panic!("two refs moved");
        };
        let refs: Vec<_> = pushes.iter().map(|p| (p.git_ref.as_str(), p.delivery.as_deref())).collect();
        assert_eq!(refs, [("refs/heads/master", Some("bb-1")), ("refs/tags/feature/x", Some("bb-1"))]);
        // No change at all.
        let body = edit("bitbucket/repo-push.json", |v| v["push"]["changes"] = json!([]));
        assert!(matches!(
            read(Provider::Bitbucket, "repo:push", &body),
            Hook::Ignored { reason: Ignored::NoChanges, .. }
        ));
    }

    #[test]
    fn bitbucket_ref_types_other_than_branch_and_tag_are_named() {
        let body = edit("bitbucket/repo-push.json", |v| {
            v["push"]["changes"][0]["new"]["type"] = json!("bookmark");
        });
        let err = parse(Provider::Bitbucket, &push_headers(Provider::Bitbucket, "repo:push"), &body).unwrap_err();
        assert_eq!(err.to_string(), "invalid bitbucket `repo:push` body at `push.changes[0].new.type`");
    }

    #[test]
    fn gitea_total_commits_beyond_the_list_makes_the_files_incomplete() {
        let body = edit("gitea/push.json", |v| v["total_commits"] = json!(12));
        let Hook::Push(pushes) = read(Provider::Gitea, "push", &body) else {
            panic!("a push");
        };
        assert_eq!(pushes[0].files.modified, ["README.md"]);
        assert!(!pushes[0].files.complete);
        // Without `total_commits`, five listed commits may be Gitea's default cut.
        let body = edit("gitea/push.json", |v| {
            let commit = v["commits"][0].clone();
            v["commits"] = json!([commit.clone(), commit.clone(), commit.clone(), commit.clone(), commit]);
        });
        let Hook::Push(pushes) = read(Provider::Gitea, "push", &body) else {
            panic!("a push");
        };
        assert!(!pushes[0].files.complete);
    }

    #[test]
    fn a_ref_that_is_neither_branch_nor_tag_is_ignored() {
        let body = edit("github/push.json", |v| v["ref"] = json!("refs/notes/commits"));
        assert_eq!(
            read(Provider::GitHub, "push", &body),
            Hook::Ignored {
                delivery: Some("gh-1".into()),
                reason: Ignored::OtherRef { git_ref: "refs/notes/commits".into() }
            }
        );
    }

    #[test]
    fn a_zero_after_is_a_deletion_even_without_the_flag() {
        let body = edit("gitea/push.json", |v| {
            v["after"] = json!(ZERO);
            v["commits"] = json!([]);
        });
        assert!(matches!(read(Provider::Gitea, "push", &body), Hook::Ignored { reason: Ignored::Deleted { .. }, .. }));
    }
}
