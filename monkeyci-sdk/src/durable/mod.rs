//! The durable-execution engine behind [`Ctx`](crate::Ctx): what makes a build survive the
//! script's exit and come back.
//!
//! - [`journal`]: an earlier launch's journal read back for a resume (which jobs ended, which
//!   were in flight, the recorded results of their steps);
//! - [`suspend`]: which jobs only wait for containers, and when nothing else runs in the
//!   script so it may suspend.
//!
//! The engine interprets journals and keeps count; it performs no I/O of its own and takes no
//! scheduling decision (the scheduler does, through these types).

pub(crate) mod journal;
pub(crate) mod suspend;
