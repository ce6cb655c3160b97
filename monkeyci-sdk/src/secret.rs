//! [`Secret`]: a build parameter's value, kept out of logs and outputs by its type.
//!
//! This module only wraps the value; masking secrets in job output is the build's (through
//! `monkeyci_protocol::Masker`), and reading params is [`Ctx::param`](crate::Ctx::param)'s.

use std::fmt;

/// A build parameter's value. It has no `Display` and no `Serialize`, and its `Debug`
/// prints only the name, so it cannot end up in logs or outputs by accident.
///
/// ```
/// let ctx = monkeyci_sdk::testing::TestCtx::new().param("TOKEN", "s3cr3t-value").ctx();
/// let token = ctx.param("TOKEN").unwrap();
/// assert_eq!(format!("{token:?}"), "Secret(TOKEN)");
/// assert_eq!(token.expose(), "s3cr3t-value");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    name: String,
    value: String,
}

impl Secret {
    /// The value `value` of the parameter `name`.
    pub(crate) fn new(name: &str, value: &str) -> Secret {
        Secret { name: name.to_owned(), value: value.to_owned() }
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value itself, for handing to a command or an API. Keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.name)
    }
}
