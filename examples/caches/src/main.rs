//! Caches: files kept between builds of a repository, restored before a container job and
//! saved after it succeeded.
//!
//! `test` keeps three, as every Rust CI does:
//! - `target`, keyed by the branch (computed here from the context) and `Cargo.lock`:
//!   `linux-main-3fa2…`. A new branch, or a new lock file, has no archive of its own yet: the
//!   newest archive of the branch (restore key `linux-<branch>-`) is restored, else main's
//!   (`linux-main-`), as `actions/cache`'s `restore-keys`. The job's log says which.
//! - `~/.cargo/registry` and `~/.cargo/git` ([`Cache::cargo_registry`], [`Cache::cargo_git`]):
//!   the crates cargo downloaded. They are the job's *own* cargo home, which its `CARGO_HOME`
//!   names, on every engine; on the host shell engine (`--engine shell`) too, so the machine's
//!   `~/.cargo` is never restored into or saved from.
//!
//! A cache restored by its exact key is not saved again. Any other `~`, absolute or `..` path
//! fails `monkeyci build verify`, naming the job and the path.

use monkeyci_sdk::prelude::*;

/// Tests the crate with a warm `target` and the crates cargo downloaded before.
#[job]
fn test(ctx: &Ctx) -> ContainerJob {
    let branch = ctx.branch().unwrap_or("detached");
    container("docker.io/rust:1.95")
        // cargo downloads what the registry cache does not hold yet.
        .network()
        .cache(
            cache("target", "target")
                .key(format!("linux-{branch}"))
                .key_files(["Cargo.lock"])
                .restore_keys([format!("linux-{branch}-"), "linux-main-".to_owned()]),
        )
        .cache(Cache::cargo_registry())
        .cache(Cache::cargo_git())
        .script(["cargo test --locked"])
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn the_target_cache_is_keyed_by_branch_and_falls_back_on_main() {
        let plan = TestCtx::new().branch("feature/x").plan().unwrap();
        let caches = &plan.job("test").unwrap().container.as_ref().unwrap().caches;
        assert_eq!(caches[0].key.as_deref(), Some("linux-feature/x"));
        assert_eq!(caches[0].restore_keys, ["linux-feature/x-", "linux-main-"]);
        let paths: Vec<&str> = caches.iter().map(|cache| cache.path.as_str()).collect();
        assert_eq!(paths, ["target", "~/.cargo/registry", "~/.cargo/git"]);
    }
}
