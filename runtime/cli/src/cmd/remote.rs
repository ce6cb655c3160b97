//! `monkeyci server`, `token`, `org` (credit limits too), `repo` and the remote `build
//! trigger|show|watch|cancel|retry|approve|reject|list|logs`: turns arguments into calls of
//! `monkeyci_server` (the server itself, or its client) and shows the answers. A watched build
//! is shown by the same renderer as a local one, and a job's log by the same lines as
//! `build logs` of a local build.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use monkeyci_build::controller::Update;
use monkeyci_server::client::Client;
use monkeyci_server::config::{Config, Layer};
use monkeyci_server::model::{Build, RecordBody, Status};
use parking_lot::Mutex;

use crate::args::{ListArgs, LogsArgs};
use crate::outcome::Outcome;
use crate::remote_args::{
    BuildIdArgs, JobDecisionArgs, OrgCommand, RemoteArgs, RepoCommand, RetryArgs, ServerArgs, TokenCommand, TriggerArgs,
};
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
    let file = crate::settings::file();
    let settings = match &file {
        Some(path) => crate::settings::read(path)?,
        None => Default::default(),
    };
    let (server, token) = crate::settings::resolve(remote.server.as_deref(), remote.token.as_deref(), &settings);
    let Some(token) = token else {
        let file = file.map_or_else(|| "cli.toml".to_owned(), |f| f.display().to_string());
        bail!(
            "no token: give --token, set MONKEYCI_TOKEN or write `token = \"...\"` in {file} (an admin token \
             is printed at the server's first start)"
        );
    };
    Ok(Client::new(&server, &token)?)
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

pub(super) fn retry(args: RetryArgs) -> anyhow::Result<Outcome> {
    let client = client(&args.remote)?;
    let queued = super::runtime::runtime()?.block_on(client.retry(&args.id))?;
    println!("queued build {} (#{}), a retry of {}", queued.id, queued.number, args.id);
    if args.watch { watch_build(&client, &queued.id, args.plain) } else { Ok(Outcome::Success) }
}

pub(super) fn decide(args: JobDecisionArgs, approve: bool) -> anyhow::Result<Outcome> {
    let decided = super::runtime::runtime()?.block_on(client(&args.remote)?.decide(&args.id, &args.job, approve))?;
    let what = if decided.approved { "approved: it runs" } else { "rejected: it is skipped" };
    println!("job {} of build {} {what}", decided.job, decided.build);
    Ok(Outcome::Success)
}

/// Whether `build list` lists a server's builds: one is named (flag or environment), or a
/// filter only a server knows is given.
pub(super) fn lists_remotely(args: &ListArgs) -> bool {
    args.remote.server.is_some() || args.repo.is_some() || args.status.is_some() || args.branch.is_some()
}

pub(super) fn list(args: ListArgs) -> anyhow::Result<Outcome> {
    let mut query = vec![format!("limit={}", if args.limit == 0 { 1000 } else { args.limit.min(1000) })];
    if let Some(repo) = &args.repo {
        let (org, name) = org_and_name(repo)?;
        query.push(format!("org={org}&repo={name}"));
    }
    for (key, value) in [("status", &args.status), ("branch", &args.branch)] {
        if let Some(value) = value {
            query.push(format!("{key}={}", query_value(value)));
        }
    }
    let builds = super::runtime::runtime()?.block_on(client(&args.remote)?.builds(&query.join("&")))?;
    if builds.is_empty() {
        println!("no builds");
        return Ok(Outcome::Success);
    }
    let mut rows = vec![["BUILD", "REPOSITORY", "#", "REF", "COMMIT", "STATUS", "DURATION"].map(str::to_owned)];
    for build in &builds {
        let took = match (build.started_ms, build.ended_ms) {
            (Some(start), Some(end)) => crate::render::format_ms((end - start).max(0) as u64),
            _ => "-".to_owned(),
        };
        rows.push([
            build.id.clone(),
            format!("{}/{}", build.org, build.repo),
            build.number.to_string(),
            build.git_ref.clone().unwrap_or_else(|| "-".to_owned()),
            build.commit.as_deref().map_or_else(|| "-".to_owned(), |c| c.chars().take(8).collect()),
            build.status.to_string(),
            took,
        ]);
    }
    print!("{}", table(&rows));
    Ok(Outcome::Success)
}

/// `text` for a query string: the characters a ref or status may hold, percent-encoded
/// where they would end the value.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Rows as aligned columns.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N).map(|c| rows.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = (0..N).map(|c| format!("{:<w$}", row[c], w = widths[c])).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

pub(super) fn logs(args: LogsArgs) -> anyhow::Result<Outcome> {
    let Some(id) = args.first.clone() else {
        bail!("give the build's id: `monkeyci build logs ID [JOB]` (`monkeyci build list` lists them)");
    };
    let client = client(&args.remote)?;
    match (&args.second, args.follow) {
        (None, true) => watch_build(&client, &id, true),
        (None, false) => {
            let (build, jobs) = super::runtime::runtime()?
                .block_on(async { Ok::<_, anyhow::Error>((client.build(&id).await?, client.jobs(&id).await?)) })?;
            print_build(&build);
            let mut rows = vec![["JOB", "STATUS", "ATTEMPT", "DURATION", "LINES"].map(str::to_owned)];
            for job in &jobs {
                rows.push([
                    job.id.clone(),
                    job.status.to_string(),
                    job.attempt.to_string(),
                    job.duration_ms.map_or_else(|| "-".to_owned(), crate::render::format_ms),
                    job.log_lines.to_string(),
                ]);
            }
            println!();
            print!("{}", table(&rows));
            println!("show a job's output with `monkeyci build logs {id} JOB`");
            Ok(Outcome::Success)
        }
        (Some(job), follow) => {
            super::runtime::runtime()?.block_on(job_log(&client, &id, job, follow))?;
            Ok(Outcome::Success)
        }
    }
}

/// Prints a job's log as `build logs` shows a local job's, following it to its end if asked.
async fn job_log(client: &Client, id: &str, job: &str, follow: bool) -> anyhow::Result<()> {
    use monkeyci_protocol::{Event, EventKind, OutputStream};
    use monkeyci_server::api::LogKind;
    use std::io::Write as _;
    let mut offset = 0;
    loop {
        let page = client.job_log(id, job, offset).await?;
        let events: Vec<Event> = page
            .lines
            .iter()
            .map(|line| {
                let job_id = job.to_owned();
                let command = line.command.unwrap_or(0);
                let kind = match line.kind {
                    LogKind::Command => EventKind::CommandStart { job_id, command, line: line.line.clone() },
                    LogKind::Stdout => {
                        EventKind::JobOutput { job_id, stream: OutputStream::Stdout, line: line.line.clone() }
                    }
                    LogKind::Stderr => {
                        EventKind::JobOutput { job_id, stream: OutputStream::Stderr, line: line.line.clone() }
                    }
                    LogKind::Exit => EventKind::CommandEnd { job_id, command, exit: line.line.parse().unwrap_or(-1) },
                };
                Event { time: line.time_ms, kind }
            })
            .collect();
        let mut out = Vec::new();
        crate::render::job_log(&events, &mut out);
        if offset == 0 && page.lines.is_empty() && (page.done || !follow) {
            let _ = writeln!(out, "(job {job} printed nothing{})", if page.done { "" } else { " yet" });
        }
        std::io::stdout().lock().write_all(&out)?;
        offset = page.next_offset;
        if page.done || !follow {
            return Ok(());
        }
        if page.lines.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
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
    if let Some(retried) = &build.retry_of {
        println!("  retries: {retried}");
    }
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
    let console = Arc::new(Mutex::new(Console::new(style).of_server_build(id)));
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
