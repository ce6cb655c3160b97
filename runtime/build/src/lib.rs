//! A MonkeyCI build, from a pipeline crate on disk to a finished event stream.
//!
//! This library is what runs one build, whoever starts it: today the `monkeyci` command (a
//! local build), soon a server and its agents. It owns what a build needs besides its
//! container jobs:
//! - [`compiler`]: finds the pipeline crate and compiles it with cargo into a shared target
//!   directory, caching the binary by a hash of its sources;
//! - [`git`]: the build's context (ref, commit, changed files) from the repository;
//! - [`api`]: the build API, the HTTP interface the pipeline script talks to;
//! - `journal` (internal to the crate): the journal of a build, kept for a resumed script
//!   (large records in the blob store);
//! - [`controller`]: wiring — serves the build API, launches (and relaunches, on resume) the
//!   script process, and turns what happens into one ordered stream of [`controller::Update`]s;
//! - [`state`]: the one fold of a build's event stream, which everything above reads;
//! - [`record`]: what a build leaves on disk, and reading it back;
//! - [`prune`]: keeping the cache bounded;
//! - [`sandbox`]: where a service runs other people's pipelines (compile and script).
//!
//! Container jobs are the `monkeyci-jobs` crate's; blobs, artifacts and caches the
//! `monkeyci-store` crate's. This crate never renders a build for people and never parses a
//! command line: that is the caller's (the `monkeyci` binary's, for a local build).

#![doc(test(attr(deny(warnings))))]

pub mod api;
pub mod compiler;
pub mod controller;
pub mod git;
mod journal;
pub mod prune;
pub mod record;
pub mod sandbox;
pub mod state;
