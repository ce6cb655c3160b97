//! [`Outcome`]: how a command ended, which `main` turns into the exit code. Commands return
//! it once they have shown the details; it carries no message of its own.

/// How a command ended, when it did not fail with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything asked for succeeded.
    Success,
    /// A job (or test) failed; the details were shown.
    Failed,
    /// The pipeline could not be built or planned; the details were shown.
    Unusable,
}
