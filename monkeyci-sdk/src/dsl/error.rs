//! [`JobError`]: the error an action job returns, with its cause chain, and [`ResultExt`], which
//! says what was being done when an error leaves a job.
//!
//! It is a value with a message; it decides nothing about retries or the job's status (the
//! scheduler does).

use std::fmt;

/// Why a job failed: a message and the chain of causes that led to it.
///
/// Any `std::error::Error` converts into it with `?`, so action jobs can return
/// `Result<T>` (the prelude's alias for `Result<T, JobError>`) and use `?` on I/O, parsing
/// and other errors alike. Its `Display` prints the whole chain, `outer: inner: root`.
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// fn version(text: &str) -> Result<u32> {
///     let n: u32 = text.trim().parse().context("the VERSION file is not a number")?;
///     if n == 0 {
///         return Err(JobError::msg("version 0 cannot be released"));
///     }
///     Ok(n)
/// }
/// assert_eq!(version("3").unwrap(), 3);
/// assert_eq!(
///     version("x").unwrap_err().to_string(),
///     "the VERSION file is not a number: invalid digit found in string"
/// );
/// ```
pub struct JobError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// `From` keeps a converted error as the source so its causes stay reachable; its own
    /// message is then already ours and is not printed twice.
    source_is_self: bool,
}

impl JobError {
    /// An error with just a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        JobError { message: message.to_string(), source: None, source_is_self: false }
    }

    /// An error with a message explaining what was being done, caused by `source`.
    pub fn with_source(
        message: impl fmt::Display,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        JobError { message: message.to_string(), source: Some(source.into()), source_is_self: false }
    }

    fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = self.source.as_deref().map(|e| e as _);
        if self.source_is_self {
            next = next.and_then(|e| e.source());
        }
        std::iter::from_fn(move || {
            let err = next?;
            next = err.source();
            Some(err)
        })
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(err: E) -> Self {
        let message = err.to_string();
        let source = err.source().is_some().then(|| Box::new(err) as Box<dyn std::error::Error + Send + Sync>);
        JobError { message, source_is_self: source.is_some(), source }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in self.causes() {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Adds a message to an error on its way out of a job: `.context("reading VERSION")?`.
pub trait ResultExt<T> {
    /// Wraps the error in a [`JobError`] whose message says what was being done.
    fn context(self, message: impl fmt::Display) -> Result<T, JobError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> ResultExt<T> for Result<T, E> {
    fn context(self, message: impl fmt::Display) -> Result<T, JobError> {
        self.map_err(|err| JobError::with_source(message, err))
    }
}

impl<T> ResultExt<T> for Option<T> {
    fn context(self, message: impl fmt::Display) -> Result<T, JobError> {
        self.ok_or_else(|| JobError::msg(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("reading config")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chain_is_printed_once() {
        let err: JobError = Outer(std::io::Error::other("disk gone")).into();
        assert_eq!(err.to_string(), "reading config: disk gone");
        let plain: JobError = std::io::Error::other("nope").into();
        assert_eq!(plain.to_string(), "nope");
        let ctx = Err::<(), _>(Outer(std::io::Error::other("x"))).context("loading").unwrap_err();
        assert_eq!(ctx.to_string(), "loading: reading config: x");
    }
}
