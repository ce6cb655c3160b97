//! `monkeyci server`, `token`, `org` (credit limits too), `repo` and the remote
//! `build trigger|show|watch|cancel`: turns arguments into calls of `monkeyci_server` (the
//! server itself, or its client) and shows the answers. A watched build is shown by the same renderer as a local one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use monkeyci_build::controller::Update;
use monkeyci_server::client::Client;
use monkeyci_server::config::{Config, Layer};
use monkeyci_server::model::{Build, RecordBody, Status};
use parking_lot::Mutex;

use crate::outcome::Outcome;
use crate::remote_args::{BuildIdArgs, OrgCommand, RemoteArgs, RepoCommand, ServerArgs, TokenCommand, TriggerArgs};
use crate::render::{Console, Style};

pub(super) fn server(args: ServerArgs) -> anyhow::Result<Outcome> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => crate::paths::data_dir()?,
    };
    let (file, required) = match &args.config {
        Some(file) => (file.clone(), true),
        None => (data_dir.join(monkeyci_server::config::CONFIG_FILE), false),
    };
    let config = Config::defaults(data_dir.clone()).with(Config::read_layer(&file, required)?).with(Layer {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        agent_capacity: args.agent_capacity,
        engine: args.engine,
        sdk_path: args.sdk_path,
        cache_dir: args.cache_dir,
        sandbox: args.no_sandbox.then_some(false),
        agent_timeout: args.agent_timeout,
        key_file: args.key_file,
    });
    let server_key = match std::env::var(monkeyci_server::secrets::SERVER_KEY_ENV) {
        Ok(text) => Some(monkeyci_server::secrets::Key::parse(&text)?),
        Err(_) => None,
    };
    let config = Config { sdk_path: crate::paths::sdk_path(config.sdk_path.as_deref()), server_key, ..config };
    super::runtime::runtime()?.block_on(async {
        let server = monkeyci_server::Server::start(config.clone()).await?;
        let addr = server.local_addr().context("cannot tell the address listened on")?;
        if let Some(token) = &server.first_admin_token {
            println!("admin token (shown once; keep it): {token}");
        }
        println!("monkeyci server listening on http://{addr} (data in {})", config.data_dir.display());
        server.serve(stop_signal()).await?;
        println!("monkeyci server stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Outcome::Success)
}

/// Ctrl-C or SIGTERM.
pub(super) async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

pub(super) fn client(remote: &RemoteArgs) -> anyhow::Result<Client> {
    let Some(token) = &remote.token else {
        bail!("no token: give --token or set MONKEYCI_TOKEN (an admin token is printed at the server's first start)");
    };
    Ok(Client::new(&remote.server, token)?)
}

/// `ORG/NAME`, split.
fn org_and_name(text: &str) -> anyhow::Result<(&str, &str)> {
    match text.split_once('/') {
        Some((org, name)) if !org.is_empty() && !name.is_empty() && !name.contains('/') => Ok((org, name)),
        _ => bail!("{text:?}: write the repository as ORG/NAME"),
    }
}

pub(super) fn token(command: TokenCommand) -> anyhow::Result<Outcome> {
    let TokenCommand::Create(args) = command;
    let token = super::runtime::runtime()?.block_on(async {
        let offline = match (&args.database_url, &args.data_dir) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(dir)) => Some(Config::defaults(dir.clone()).database_url()),
            (None, None) => None,
        };
        match offline {
            Some(url) => {
                if let Some(dir) = &args.data_dir {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let db = monkeyci_server::db::Db::open(&url).await.context("cannot open the server's database")?;
                if let Some(org) = &args.org
                    && db.org(org).await?.is_none()
                {
                    bail!("no org {org:?} in that database");
                }
                let token = if args.agent {
                    monkeyci_server::auth::create_agent_token(&db, &args.description).await?
                } else {
                    monkeyci_server::auth::create_token(&db, args.admin, args.org.as_deref(), &args.description).await?
                };
                db.close().await;
                Ok(token)
            }
            None => {
                let request = monkeyci_server::api::CreateToken {
                    admin: args.admin,
                    org: args.org.clone(),
                    agent: args.agent,
                    description: args.description.clone(),
                };
                Ok(client(&args.remote)?.create_token(&request).await?.token)
            }
        }
    })?;
    println!("{token}");
    Ok(Outcome::Success)
}

pub(super) fn org(command: OrgCommand) -> anyhow::Result<Outcome> {
    super::runtime::runtime()?.block_on(async {
        match command {
            OrgCommand::Create(args) => {
                let org = client(&args.remote)?.create_org(&args.id).await?;
                println!("created org {}", org.id);
            }
            OrgCommand::List(remote) => {
                for org in client(&remote)?.orgs().await? {
                    println!("{}", org.id);
                }
            }
            OrgCommand::SetCredits(args) => {
                let limit = match args.credits.as_str() {
                    "none" => None,
                    n => Some(n.parse::<u32>().with_context(|| format!("{n:?}: give a number of credits, or none"))?),
                };
                let set = client(&args.remote)?.set_credits(&args.org, limit.map(i64::from)).await?;
                match set.monthly_limit {
                    Some(limit) => println!("org {} may use {limit} credits a month", args.org),
                    None => println!("org {} has no credit limit", args.org),
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Outcome::Success)
}

pub(super) fn repo(command: RepoCommand) -> anyhow::Result<Outcome> {
    super::runtime::runtime()?.block_on(async {
        match command {
            RepoCommand::Add(args) => {
                let (org, name) = org_and_name(&args.repo)?;
                let request = monkeyci_server::api::AddRepo {
                    name: name.to_owned(),
                    url: args.url.clone(),
                    main_branch: args.main_branch.clone(),
                    labels: args.labels.clone(),
                    webhook_secret: args.webhook_secret.clone(),
                    retry_lost: args.retry_lost,
                };
                let repo = client(&args.remote)?.add_repo(org, &request).await?;
                println!("added {}/{} ({}, main branch {})", repo.org, repo.name, repo.url, repo.main_branch);
            }
            RepoCommand::List(args) => {
                for repo in client(&args.remote)?.repos(&args.org).await? {
                    println!("{}/{}\t{}\t{}", repo.org, repo.name, repo.main_branch, repo.url);
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Outcome::Success)
}

pub(super) fn trigger(args: TriggerArgs) -> anyhow::Result<Outcome> {
    let (org, name) = org_and_name(&args.repo)?;
    let client = client(&args.remote)?;
    let what = monkeyci_server::api::Trigger {
        branch: args.branch.clone(),
        tag: args.tag.clone(),
        commit: args.commit.clone(),
    };
    let queued = super::runtime::runtime()?.block_on(client.trigger(org, name, &what))?;
    println!("queued build {} ({org}/{name} #{})", queued.id, queued.number);
    if args.watch { watch_build(&client, &queued.id, args.plain) } else { Ok(Outcome::Success) }
}

pub(super) fn show(args: BuildIdArgs) -> anyhow::Result<Outcome> {
    let build = super::runtime::runtime()?.block_on(client(&args.remote)?.build(&args.id))?;
    print_build(&build);
    Ok(Outcome::Success)
}

pub(super) fn cancel(args: BuildIdArgs) -> anyhow::Result<Outcome> {
    let build = super::runtime::runtime()?.block_on(client(&args.remote)?.cancel(&args.id))?;
    println!("asked to cancel build {} (now {})", build.id, build.status);
    Ok(Outcome::Success)
}

pub(super) fn watch(args: BuildIdArgs) -> anyhow::Result<Outcome> {
    watch_build(&client(&args.remote)?, &args.id, args.plain)
}

fn print_build(build: &Build) {
    println!("build {} ({}/{} #{})", build.id, build.org, build.repo, build.number);
    println!("  status:  {}", build.status);
    if let Some(error) = &build.error {
        println!("  error:   {error}");
    }
    if let Some(git_ref) = &build.git_ref {
        println!("  ref:     {git_ref}");
    }
    if let Some(commit) = &build.commit {
        println!("  commit:  {commit}");
    }
    if let Some(message) = &build.message {
        println!("  message: {}", message.lines().next().unwrap_or(""));
    }
    println!("  source:  {} ({})", build.source, build.trigger);
    if let Some(agent) = &build.agent {
        println!("  agent:   {agent}");
    }
    if let (Some(start), Some(end)) = (build.started_ms, build.ended_ms) {
        println!(
            "  took:    {}",
            monkeyci_protocol::duration::short(Duration::from_millis((end - start).max(0) as u64))
        );
    }
}

/// Follows a build with the local renderer; the outcome as `build run` judges it.
fn watch_build(client: &Client, id: &str, plain: bool) -> anyhow::Result<Outcome> {
    let style = if plain { Style::Plain } else { Style::detect() };
    let console = Arc::new(Mutex::new(Console::new(style)));
    let end = super::runtime::runtime()?.block_on(async {
        let ticker = crate::render::live_ticker(&console, style);
        let end = client
            .follow(id, 0, |record| match &record.body {
                RecordBody::Event(event) => console.lock().update(&Update::Event(event.clone())),
                RecordBody::Line(line) => {
                    console.lock().update(&Update::ScriptLine(line.stream, line.line.clone()));
                }
                RecordBody::End(_) => {}
            })
            .await;
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        end
    })?;
    console.lock().finish(&format!("build id: {id} (`monkeyci build show {id}` shows how it ended)"));
    Ok(match end.status {
        Status::Success => Outcome::Success,
        Status::Failure | Status::Canceled => Outcome::Failed,
        Status::Error | Status::Queued | Status::Running => {
            eprintln!("error: {}", end.error.as_deref().unwrap_or("the build could not run"));
            Outcome::Unusable
        }
    })
}
