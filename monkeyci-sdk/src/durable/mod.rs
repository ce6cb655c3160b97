//! The durable-execution engine behind [`Ctx`](crate::Ctx): what makes a build survive the
//! script's exit and come back. `Ctx` is a facade over it; the scheduler drives it.
//!
//! - [`build`]: what all jobs of a build share (info, params, seams, outputs, process slots,
//!   cancellation, the steps an earlier launch journaled);
//! - [`scope`]: who acts, the script or one job (its attempt, step and log-line counts, draws);
//! - [`step`]: taking a `ctx.run` or `ctx.shell` step: replayed, diverged, or run and journaled;
//! - [`journal`]: an earlier launch's journal read back for a resume (which jobs ended, which
//!   were in flight, the recorded results of their steps);
//! - [`suspend`]: which jobs only wait for containers, and when nothing else runs in the
//!   script so it may suspend.
//!
//! The engine interprets journals, keeps count and takes steps; it takes no scheduling decision
//! (the scheduler does, through these types) and never names `Ctx`. This file only lists the
//! modules and re-exports nothing.

pub(crate) mod build;
pub(crate) mod journal;
pub(crate) mod scope;
pub(crate) mod step;
pub(crate) mod suspend;
