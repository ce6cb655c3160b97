//! `monkeyci param set|list|delete`: an org's param sets and a repository's own params on a
//! server, through its client. Values go to the server once and are never printed: listings
//! show names, lengths and label filters.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use monkeyci_protocol::ParamMap;
use monkeyci_server::api::{PutParamSet, PutRepoParams};
use monkeyci_server::params::{LabelFilter, LabelMatch, ParamInfo, ParamOwner, split_label};

use super::remote::client;
use crate::outcome::Outcome;
use crate::param_args::{ParamCommand, ParamDeleteArgs, ParamListArgs, ParamSetArgs};

/// The param set a command means when it names none.
const DEFAULT_SET: &str = "default";

pub(super) fn run(command: ParamCommand) -> anyhow::Result<Outcome> {
    super::runtime::runtime()?.block_on(async {
        match command {
            ParamCommand::Set(args) => set(args).await,
            ParamCommand::List(args) => list(args).await,
            ParamCommand::Delete(args) => delete(args).await,
        }
    })?;
    Ok(Outcome::Success)
}

/// `ORG` or `ORG/REPO`.
fn target(text: &str) -> anyhow::Result<(&str, Option<&str>)> {
    match text.split_once('/') {
        None if !text.is_empty() => Ok((text, None)),
        Some((org, repo)) if !org.is_empty() && !repo.is_empty() && !repo.contains('/') => Ok((org, Some(repo))),
        _ => bail!("{text:?}: write ORG (an org's param set) or ORG/REPO (a repository's own params)"),
    }
}

async fn set(args: ParamSetArgs) -> anyhow::Result<()> {
    let (org, repo) = target(&args.target)?;
    let value = match (&args.value, &args.from_file) {
        (Some(value), _) => value.clone(),
        (None, Some(file)) => {
            std::fs::read_to_string(file).with_context(|| format!("cannot read the value from {}", file.display()))?
        }
        (None, None) => {
            let mut value = String::new();
            std::io::stdin().read_to_string(&mut value).context("cannot read the value from standard input")?;
            // `echo secret | monkeyci param set ...`: the newline is not part of it.
            value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value).to_owned()
        }
    };
    let values = ParamMap::from([(args.name.clone(), value)]);
    let client = client(&args.remote)?;
    match repo {
        Some(repo) => {
            if args.set.is_some() || !args.labels.is_empty() {
                bail!("--set and --label are for an org's param sets: give ORG, not ORG/REPO");
            }
            client.put_repo_params(org, repo, &PutRepoParams { values }).await?;
            println!("set {} of {org}/{repo}", args.name);
        }
        None => {
            let set = args.set.as_deref().unwrap_or(DEFAULT_SET);
            let label_filter = (!args.labels.is_empty()).then(|| filter(&args.labels)).transpose()?;
            let body = PutParamSet { description: None, label_filter, values };
            let set = client.put_param_set(org, set, &body).await?;
            println!("set {} in param set {org}/{} (for {})", args.name, set.name, set.label_filter.describe());
        }
    }
    Ok(())
}

/// One AND clause of `NAME=VALUE` labels.
fn filter(labels: &[String]) -> anyhow::Result<LabelFilter> {
    let clause = labels
        .iter()
        .map(|label| {
            let (name, value) = split_label(label);
            if name.is_empty() {
                bail!("--label {label:?}: write NAME=VALUE");
            }
            Ok(LabelMatch { label: name.to_owned(), value: value.to_owned() })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(LabelFilter(vec![clause]))
}

async fn list(args: ParamListArgs) -> anyhow::Result<()> {
    let (org, repo) = target(&args.target)?;
    let client = client(&args.remote)?;
    let line = |p: &ParamInfo| format!("  {} (set, {} bytes)", p.name, p.length);
    match repo {
        Some(repo) => {
            for param in client.repo_params(org, repo).await?.params {
                println!("{}", line(&param));
            }
        }
        None => {
            for set in client.param_sets(org).await? {
                println!("{} (for {})", set.name, set.label_filter.describe());
                for param in &set.params {
                    println!("{}", line(param));
                }
            }
        }
    }
    Ok(())
}

async fn delete(args: ParamDeleteArgs) -> anyhow::Result<()> {
    let (org, repo) = target(&args.target)?;
    let client = client(&args.remote)?;
    match (repo, args.name.as_deref()) {
        (Some(_), _) if args.set.is_some() => bail!("--set is for an org's param sets: give ORG, not ORG/REPO"),
        (Some(repo), Some(name)) => {
            client.delete_param(org, &ParamOwner::Repo(repo.to_owned()), Some(name)).await?;
            println!("deleted {name} of {org}/{repo}");
        }
        (Some(_), None) => bail!("name the param to delete"),
        (None, name) => {
            let Some(set) = args.set.as_deref().or(name.is_some().then_some(DEFAULT_SET)) else {
                bail!("name the param to delete, or the param set (--set NAME) to delete whole");
            };
            client.delete_param(org, &ParamOwner::Set(set.to_owned()), name).await?;
            match name {
                Some(name) => println!("deleted {name} of param set {org}/{set}"),
                None => println!("deleted param set {org}/{set}"),
            }
        }
    }
    Ok(())
}
