//! The one job-id rule: job ids appear in file names, URLs, container names and blob keys, so
//! they are kept to a safe alphabet. The `#[job]` macro checks it at compile time, the sdk when
//! a pipeline plans, and every receiver of an id (the build API, the engines) again on its side.

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// The id is empty.
    #[error("a job id cannot be empty")]
    Empty,
    /// The id holds a character outside the alphabet.
    #[error("invalid character {bad:?} in job id {id:?}; use letters, digits, `-`, `_` and `.`")]
    Character {
        /// The id as given.
        id: String,
        /// The first character outside the alphabet.
        bad: char,
    },
    /// The id is `.` or `..`, which mean other things in paths.
    #[error("job id {0:?} is reserved; use letters or digits too")]
    Reserved(String),
}

/// Whether `c` may appear in an id: ASCII letters and digits, `-`, `_` and `.`.
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks that `id` is a valid job id (or another id made of the same alphabet, such as an
/// artifact's or a cache's): not empty, only [`is_id_char`] characters, not `.` or `..`.
///
/// ```
/// use monkeyci_protocol::id::{InvalidId, check};
///
/// assert!(check("unit-test_1.x").is_ok());
/// assert_eq!(check(""), Err(InvalidId::Empty));
/// assert!(matches!(check("../x"), Err(InvalidId::Character { bad: '/', .. })));
/// assert!(check("..").is_err());
/// ```
pub fn check(id: &str) -> Result<(), InvalidId> {
    if id.is_empty() {
        return Err(InvalidId::Empty);
    }
    if let Some(bad) = id.chars().find(|c| !is_id_char(*c)) {
        return Err(InvalidId::Character { id: id.to_owned(), bad });
    }
    if id == "." || id == ".." {
        return Err(InvalidId::Reserved(id.to_owned()));
    }
    Ok(())
}

/// `text` with every character outside the id alphabet replaced by `-`: a name that is safe
/// wherever an id is (container names, for example), for text that need not round-trip.
///
/// ```
/// assert_eq!(monkeyci_protocol::id::sanitize("build 7/a"), "build-7-a");
/// ```
pub fn sanitize(text: &str) -> String {
    text.chars().map(|c| if is_id_char(c) { c } else { '-' }).collect()
}
