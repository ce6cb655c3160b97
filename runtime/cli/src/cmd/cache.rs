//! `monkeyci cache prune`: keeps the local cache bounded. What is kept is decided by
//! `monkeyci_build::prune`; this module only reads the arguments and prints what went.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context;

use crate::args::PruneArgs;
use crate::outcome::Outcome;
use monkeyci_build::prune::{self, Policy};
use monkeyci_store::LocalBlobStore;

pub(super) fn prune(args: PruneArgs) -> anyhow::Result<Outcome> {
    let mut policy = Policy::from_env().map_err(anyhow::Error::msg)?;
    if let Some(keep) = args.keep_builds {
        policy.keep_builds = keep;
    }
    policy.unused_binaries = Duration::from_secs(args.unused_days.saturating_mul(24 * 3600));
    policy.keep_cache_archives = args.keep_cache_archives;
    let cache_dir = crate::paths::cache_dir()?;
    let pruned = prune_cache(&cache_dir, &policy)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: {pruned}", cache_dir.display())?;
    if args.target {
        let freed = prune::remove_target_dir(&cache_dir.join("target"))?;
        writeln!(out, "removed the shared target directory: {:.1} MiB", freed as f64 / (1024.0 * 1024.0))?;
    }
    Ok(Outcome::Success)
}

/// Prunes the cache in `cache_dir` by `policy`.
pub(super) fn prune_cache(cache_dir: &std::path::Path, policy: &Policy) -> anyhow::Result<prune::Pruned> {
    let store = LocalBlobStore::new(cache_dir)
        .with_context(|| format!("cannot open the blob store of {}", cache_dir.display()))?;
    prune::prune(cache_dir, &store, policy).with_context(|| format!("cannot prune {}", cache_dir.display()))
}
