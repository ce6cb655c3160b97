//! [`Masker`]: the one rule for hiding secret values in text.

/// Replaces secret values in text with `***`. Values shorter than three characters are not
/// masked: they would hide ordinary text everywhere.
///
/// ```
/// let masker = monkeyci_protocol::Masker::new(["hunter22", "x"]);
/// assert_eq!(masker.mask("password hunter22, x"), "password ***, x");
/// ```
#[derive(Debug, Default, Clone)]
pub struct Masker {
    secrets: Vec<String>,
}

const MIN_MASKED_LEN: usize = 3;

impl Masker {
    /// Masks these values.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut secrets: Vec<String> =
            values.into_iter().filter(|v| v.len() >= MIN_MASKED_LEN).map(str::to_owned).collect();
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Masker { secrets }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}
