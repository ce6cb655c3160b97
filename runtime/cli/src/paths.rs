//! Where a local build keeps things on this machine (the cache) and finds the local sdk. It
//! only works out paths: it creates and removes nothing.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// The cache of compiled pipelines and their shared target directory: `MONKEYCI_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/monkeyci`, else `~/.cache/monkeyci`.
pub(crate) fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MONKEYCI_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("monkeyci"));
    }
    match std::env::home_dir().filter(|home| !home.as_os_str().is_empty()) {
        Some(home) => Ok(home.join(".cache").join("monkeyci")),
        None => bail!("cannot tell where to cache compiled pipelines: set MONKEYCI_CACHE_DIR or HOME"),
    }
}

/// Where `monkeyci server` keeps its data by default: `$XDG_DATA_HOME/monkeyci`, else
/// `~/.local/share/monkeyci`.
pub(crate) fn data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("monkeyci"));
    }
    match std::env::home_dir().filter(|home| !home.as_os_str().is_empty()) {
        Some(home) => Ok(home.join(".local").join("share").join("monkeyci")),
        None => bail!("cannot tell where to keep the server's data: give --data-dir or set HOME"),
    }
}

/// The local sdk for pipelines that depend on `monkeyci-sdk` by version: the one given, else
/// the sdk this runtime was built from, if that checkout still exists.
pub(crate) fn sdk_path(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = given {
        return Some(path.canonicalize().unwrap_or_else(|_| path.to_owned()));
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../monkeyci-sdk");
    built_from.join("Cargo.toml").is_file().then(|| built_from.canonicalize().unwrap_or(built_from))
}
