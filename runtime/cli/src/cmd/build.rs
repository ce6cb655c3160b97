//! `monkeyci build run|plan|verify|test`: turns the arguments into a local build for
//! `monkeyci_build` (the cache, the sdk, the git context, approvals asked at the terminal) and
//! shows it. Running, recording and judging the build are the library's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use monkeyci_protocol::{BuildInfo, OutputStream, ParamMap, Plan, ScriptMode};
use parking_lot::Mutex;

use crate::args::{AskMode, ContextArgs, PipelineArgs, PlanArgs, RunArgs, TestArgs, VerifyArgs};
use crate::outcome::Outcome;
use crate::planfmt::{self, PlanFormat};
use crate::render::{Console, Style};
use monkeyci_build::compiler::{Compiler, PipelineCrate};
use monkeyci_build::controller::{self, ScriptRequest, Update};
use monkeyci_build::git::{self, GitOverrides};
use monkeyci_build::state::Verdict;

/// A located and compiled pipeline, ready to run.
struct Pipeline {
    binary: PathBuf,
    checkout_dir: PathBuf,
}

/// Finds and compiles the pipeline; `Err(Outcome::Unusable)` once the problem was shown.
fn prepare(args: &PipelineArgs) -> anyhow::Result<Result<Pipeline, Outcome>> {
    let krate = PipelineCrate::locate(&args.dir)?;
    let compiler = Compiler::new(crate::paths::cache_dir()?, crate::paths::sdk_path(args.sdk_path.as_deref()));
    match compiler.compile(&krate) {
        Ok(compiled) => {
            let checkout_dir =
                args.dir.canonicalize().with_context(|| format!("cannot read {}", args.dir.display()))?;
            Ok(Ok(Pipeline { binary: compiled.binary, checkout_dir }))
        }
        Err(err @ monkeyci_build::compiler::Error::CompileFailed) => {
            eprintln!("error: {err}");
            Ok(Err(Outcome::Unusable))
        }
        Err(err) => Err(err.into()),
    }
}

/// The build's context from git and the command line.
fn build_info(checkout_dir: &Path, args: &ContextArgs) -> anyhow::Result<(BuildInfo, ParamMap)> {
    let overrides = GitOverrides {
        branch: args.branch.clone(),
        tag: args.tag.clone(),
        commit: args.commit.clone(),
        main_branch: args.main_branch.clone(),
        changed: args.changed.clone(),
        base: args.base.clone(),
    };
    let git = git::git_info(checkout_dir, &overrides).context("cannot read the git context")?;
    let build = BuildInfo {
        // The process id keeps builds started in the same millisecond apart.
        build_id: format!("local-{}-{}", monkeyci_protocol::now_ms(), std::process::id()),
        checkout_dir: checkout_dir.to_owned(),
        git,
        source: args.source,
        started_at_ms: monkeyci_protocol::now_ms(),
        vars: parse_pairs("--var", &args.vars)?,
        trigger: args.trigger,
    };
    Ok((build, parse_pairs("--param", &args.params)?))
}

/// The values of `flag` (`--param`, `--var`): `NAME=VALUE`, or `NAME` for the environment
/// variable's value.
fn parse_pairs(flag: &str, raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    for item in raw {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let value = std::env::var(item).ok().with_context(|| {
                    format!("{flag} {item}: no value given and no environment variable {item} is set")
                })?;
                (item.clone(), value)
            }
        };
        if name.is_empty() {
            bail!("{flag} {item:?}: the name is empty; write NAME=VALUE");
        }
        pairs.insert(name, value);
    }
    Ok(pairs)
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let pipeline = match prepare(&args.pipeline)? {
        Ok(pipeline) => pipeline,
        Err(outcome) => return Ok(outcome),
    };
    let (build, params) = build_info(&pipeline.checkout_dir, &args.context)?;
    let build_id = build.build_id.clone();
    {
        // First, so the build can be found again however it ends.
        let info = monkeyci_build::record::RecordInfo::of(&build);
        let mut out = std::io::stdout().lock();
        writeln!(out, "build {build_id} of {}", super::records::what_was_built(&info))?;
        out.flush()?;
    }
    let mut events_file = match &args.events {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create the events file {}", path.display()))?,
        )),
        None => None,
    };
    let ask = match args.ask {
        AskMode::Always => true,
        AskMode::Never => false,
        AskMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stdin()),
    };
    let (asker, questions) = if ask {
        let (asker, questions) = tokio::sync::mpsc::unbounded_channel();
        (Some(asker), Some(questions))
    } else {
        (None, None)
    };
    let cache_dir = crate::paths::cache_dir()?;
    let max_parallel = match args.max_parallel {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let request = ScriptRequest {
        build,
        params,
        mode: ScriptMode::Run,
        jobs: args.jobs,
        max_parallel,
        fail_fast: args.fail_fast,
        approvals: monkeyci_build::api::Approvals {
            approved: args.approve.into_iter().collect::<BTreeSet<_>>(),
            asker,
        },
        build_dir: Some(cache_dir.join("builds").join(&build_id)),
        engine: args.engine,
        store_root: cache_dir.clone(),
        suspend: args.suspend,
        suspend_after: args.suspend_after,
        stop: controller::StopSource::Signals,
        sandbox: None,
    };
    let style = if args.plain { Style::Plain } else { Style::detect() };
    let console = Arc::new(Mutex::new(Console::new(style)));
    let outcome = super::runtime::runtime()?.block_on(async {
        if let Some(questions) = questions {
            tokio::spawn(answer_questions(questions, Arc::clone(&console)));
        }
        let ticker = crate::render::live_ticker(&console, style);
        let outcome = controller::run_script(&pipeline.binary, request, |update| {
            if let (Some(file), Update::Event(event)) = (&mut events_file, &update) {
                // Flushed per event, so whoever follows the file sees the build as it goes.
                let _ = serde_json::to_writer(&mut *file, event);
                let _ = file.write_all(b"\n");
                let _ = file.flush();
            }
            console.lock().update(&update);
        })
        .await;
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        outcome
    })?;
    if let Some(mut file) = events_file {
        file.flush().context("cannot write the events file")?;
    }
    let mut console = console.lock();
    console.finish(&format!("build id: {build_id} (`monkeyci build logs {build_id} [JOB]` shows it again)"));
    prune_after_build(&cache_dir);
    Ok(judge(outcome.verdict()))
}

/// Puts each blocked job to the person at stdin, with the live view paused meanwhile.
async fn answer_questions(
    mut questions: tokio::sync::mpsc::UnboundedReceiver<(String, tokio::sync::oneshot::Sender<bool>)>,
    console: Arc<Mutex<Console>>,
) {
    while let Some((job, answer)) = questions.recv().await {
        console.lock().pause();
        // A thread of its own, not the runtime's blocking pool: an unanswered read must not
        // keep the process from exiting once the build is over (Ctrl-C, say).
        let (read, got) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || read.send(ask_on_stdin(&job)));
        let approved = got.await.unwrap_or(false);
        console.lock().resume();
        let _ = answer.send(approved);
    }
}

/// Asks whether blocked `job` may run; anything but `y`/`yes` (or the end of stdin) is no.
fn ask_on_stdin(job: &str) -> bool {
    eprint!("job `{job}` is blocked: run it? [y/N] ");
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => {
            eprintln!("(no answer: not approved)");
            false
        }
        Ok(_) => matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
    }
}

/// Keeps the cache bounded after a build (`MONKEYCI_KEEP_BUILDS` records); a failure only
/// warns: the build's outcome stands.
fn prune_after_build(cache_dir: &Path) {
    let pruned = monkeyci_build::prune::Policy::from_env()
        .map_err(anyhow::Error::msg)
        .and_then(|policy| super::cache::prune_cache(cache_dir, &policy));
    match pruned {
        Ok(pruned) => tracing::info!("cache: {pruned}"),
        Err(err) => eprintln!("warning: the cache was not pruned: {err:#}"),
    }
}

/// The command's outcome from how the build ended; why it could not run is shown here.
fn judge(verdict: Verdict) -> Outcome {
    match verdict {
        Verdict::Success => Outcome::Success,
        Verdict::Failed => Outcome::Failed,
        Verdict::Unusable(why) => {
            eprintln!("error: {why}");
            Outcome::Unusable
        }
    }
}

/// Runs the script in plan mode; `Err` once a planning problem was shown.
fn plan_of(pipeline: &Pipeline, context: &ContextArgs, jobs: Vec<String>) -> anyhow::Result<Result<Plan, Outcome>> {
    let (build, params) = build_info(&pipeline.checkout_dir, context)?;
    let request = ScriptRequest {
        build,
        params,
        mode: ScriptMode::Plan,
        jobs,
        max_parallel: 1,
        fail_fast: false,
        approvals: monkeyci_build::api::Approvals::default(),
        build_dir: None,
        engine: monkeyci_jobs::EngineChoice::Auto,
        store_root: crate::paths::cache_dir()?,
        suspend: monkeyci_protocol::SuspendMode::Never,
        suspend_after: std::time::Duration::ZERO,
        stop: controller::StopSource::Signals,
        sandbox: None,
    };
    let outcome = super::runtime::runtime()?.block_on(controller::run_script(&pipeline.binary, request, |update| {
        // Whatever the script prints while planning (a panic, say) goes to stderr.
        if let Update::ScriptLine(stream, line) = update {
            let marker = if stream == OutputStream::Stderr { "!" } else { "|" };
            eprintln!("[script] {marker} {line}");
        }
    }))?;
    match outcome.plan() {
        Some(plan) => Ok(Ok(plan.clone())),
        None => Ok(Err(judge(match outcome.verdict() {
            // A script that ended well without a plan still could not plan.
            Verdict::Success => Verdict::Unusable("the pipeline script planned nothing".to_owned()),
            verdict => verdict,
        }))),
    }
}

pub(super) fn plan(args: PlanArgs) -> anyhow::Result<Outcome> {
    let pipeline = match prepare(&args.pipeline)? {
        Ok(pipeline) => pipeline,
        Err(outcome) => return Ok(outcome),
    };
    match plan_of(&pipeline, &args.context, args.jobs)? {
        Ok(plan) => {
            std::io::stdout().lock().write_all(planfmt::format(&plan, args.format).as_bytes())?;
            Ok(Outcome::Success)
        }
        Err(outcome) => Ok(outcome),
    }
}

pub(super) fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let pipeline = match prepare(&args.pipeline)? {
        Ok(pipeline) => pipeline,
        Err(outcome) => return Ok(outcome),
    };
    match plan_of(&pipeline, &args.context, Vec::new())? {
        Ok(plan) => {
            let text = planfmt::format(&plan, PlanFormat::Text);
            write!(std::io::stdout().lock(), "pipeline OK: it compiles and plans; {text}")?;
            Ok(Outcome::Success)
        }
        Err(outcome) => Ok(outcome),
    }
}

pub(super) fn test(args: TestArgs) -> anyhow::Result<Outcome> {
    let krate = PipelineCrate::locate(&args.pipeline.dir)?;
    let compiler = Compiler::new(crate::paths::cache_dir()?, crate::paths::sdk_path(args.pipeline.sdk_path.as_deref()));
    let status = compiler.cargo(&krate, "test").args(&args.cargo_args).status().context("cannot run `cargo test`")?;
    Ok(if status.success() { Outcome::Success } else { Outcome::Failed })
}
