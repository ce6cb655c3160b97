//! The environment of the processes MonkeyCI starts on this machine for a build: the pipeline
//! (so its action jobs and their `ctx.shell` commands) and container jobs on the host shell
//! engine. It owns that policy, read from this process's environment, and nothing else: it
//! starts no process. (The pipeline's own compilation chooses its toolchain in the build
//! crate's compiler, and container jobs in podman or docker get only their image's
//! environment and their spec's.)
//!
//! - **The pipeline** gets the user's environment: this process's, less what cargo and rustup
//!   set for MonkeyCI's own run when it runs under `cargo run` or `cargo test`
//!   ([`is_for_this_run`]). So `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` or the `RUSTUP_TOOLCHAIN`
//!   rustup chose for MonkeyCI's own checkout never reach a job, and the repository's own
//!   `rust-toolchain.toml` decides which toolchain its jobs' `cargo` runs. A
//!   `RUSTUP_TOOLCHAIN` the user set themselves is theirs, and is passed on.
//! - **Container jobs on the host shell engine** get [`HOST_JOB_VARS`] of that (where the
//!   tools are and how they are configured: `PATH`, `HOME`, rustup's and cargo's homes and
//!   settings, proxies and certificates), then their spec's own variables: nothing else of
//!   the user's environment, as in a container.

use std::ffi::{OsStr, OsString};

/// The user's variables a container job on the host shell engine gets, when they are set.
pub const HOST_JOB_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    // Where the toolchains are, which one the user chose, and rustup's settings (a dropped
    // `RUSTUP_AUTO_INSTALL=0` lets rustup download a toolchain unasked).
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_AUTO_INSTALL",
    "RUSTUP_DIST_SERVER",
    "RUSTUP_UPDATE_ROOT",
    // Reaching the registries from behind a proxy or a private certificate authority.
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Variables cargo sets for a program it runs, by name.
const CARGO_RUN_VARS: &[&str] = &[
    "CARGO",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
    "RUST_RECURSION_COUNT",
];

/// Prefixes of variables cargo sets for a program it runs.
const CARGO_RUN_PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_EXE_"];

/// Whether `name` is a variable cargo or rustup set for running MonkeyCI itself, not one of
/// the user's: cargo's variables for a program it runs, and the toolchain rustup chose for
/// this run (`RUSTUP_TOOLCHAIN` with a `RUSTUP_TOOLCHAIN_SOURCE` other than `env`, which
/// marks a toolchain the user set in the environment).
///
/// ```
/// use monkeyci_jobs::hostenv::is_for_this_run;
///
/// assert!(is_for_this_run("CARGO_MANIFEST_DIR", None));
/// assert!(is_for_this_run("RUSTUP_TOOLCHAIN", Some("toolchain-file")));
/// assert!(!is_for_this_run("RUSTUP_TOOLCHAIN", Some("env")));
/// assert!(!is_for_this_run("RUSTUP_TOOLCHAIN", None));
/// assert!(!is_for_this_run("CARGO_HOME", None));
/// ```
pub fn is_for_this_run(name: &str, toolchain_source: Option<&str>) -> bool {
    match name {
        "RUSTUP_TOOLCHAIN" => toolchain_source.is_some_and(|source| source != "env"),
        "RUSTUP_TOOLCHAIN_SOURCE" => true,
        _ => CARGO_RUN_VARS.contains(&name) || CARGO_RUN_PREFIXES.iter().any(|prefix| name.starts_with(prefix)),
    }
}

/// The user's environment: this process's, without what cargo and rustup set for running
/// MonkeyCI itself ([`is_for_this_run`]). The pipeline runs with it.
pub fn user_vars() -> Vec<(OsString, OsString)> {
    let source = std::env::var("RUSTUP_TOOLCHAIN_SOURCE").ok();
    std::env::vars_os()
        .filter(|(name, _)| !name.to_str().is_some_and(|name| is_for_this_run(name, source.as_deref())))
        .collect()
}

/// [`HOST_JOB_VARS`] of the user's environment ([`user_vars`]): what a container job on the
/// host shell engine starts with.
pub fn host_job_vars() -> Vec<(OsString, OsString)> {
    user_vars().into_iter().filter(|(name, _)| HOST_JOB_VARS.iter().any(|var| OsStr::new(var) == name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_run_variables_are_not_the_users() {
        for name in ["CARGO", "CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "CARGO_BIN_EXE_monkeyci", "OUT_DIR"] {
            assert!(is_for_this_run(name, None), "{name}");
        }
        for name in ["CARGO_HOME", "CARGO_TARGET_DIR", "RUSTUP_HOME", "PATH", "CARGO_REGISTRIES_X_TOKEN"] {
            assert!(!is_for_this_run(name, Some("default")), "{name}");
        }
    }

    #[test]
    fn a_toolchain_rustup_chose_for_this_run_is_dropped_and_the_users_kept() {
        for source in ["default", "toolchain-file", "override", "cli"] {
            assert!(is_for_this_run("RUSTUP_TOOLCHAIN", Some(source)), "{source}");
        }
        assert!(!is_for_this_run("RUSTUP_TOOLCHAIN", Some("env")));
        assert!(!is_for_this_run("RUSTUP_TOOLCHAIN", None));
        assert!(is_for_this_run("RUSTUP_TOOLCHAIN_SOURCE", Some("env")));
    }

    #[test]
    fn host_jobs_get_only_the_listed_variables() {
        // Under `cargo test`, cargo's variables are set: none of them reaches a host job.
        let vars = host_job_vars();
        assert!(vars.iter().any(|(name, _)| name == "PATH"));
        for (name, _) in &vars {
            assert!(HOST_JOB_VARS.iter().any(|var| OsStr::new(var) == name), "{name:?}");
        }
        assert!(!user_vars().iter().any(|(name, _)| name == "CARGO_MANIFEST_DIR"));
    }
}
