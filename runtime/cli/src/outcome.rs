//! [`Outcome`]: how a command ended, which becomes the exit code.

/// How a command ended, when it did not fail with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// A job (or test) failed; the details were shown.
    Failed,
    /// The pipeline could not be built or planned; the details were shown.
    Unusable,
}
