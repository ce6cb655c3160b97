//! The async runtime the commands that need one run their work on.

use anyhow::Context as _;

/// A multi-threaded tokio runtime with I/O and timers.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}
