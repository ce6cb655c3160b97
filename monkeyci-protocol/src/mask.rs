//! [`Masker`]: the one rule for hiding secret values in text.

use std::collections::BTreeSet;

/// Replaces secret values in text with `***`.
///
/// Values shorter than three characters are not masked: they would hide ordinary text
/// everywhere. A secret that contains another is masked whole.
///
/// A value that spans several lines (a PEM key, say) is also masked line by line, since output
/// is masked a line at a time and the whole value never appears in one line: every line of it,
/// without surrounding whitespace, that is at least eight characters long and is not a PEM
/// armour line (`-----BEGIN …-----`, `-----END …-----`).
///
/// ```
/// let masker = monkeyci_protocol::Masker::new(["hunter22", "x"]);
/// assert_eq!(masker.mask("password hunter22, x"), "password ***, x");
/// ```
#[derive(Debug, Default, Clone)]
pub struct Masker {
    /// What is replaced, longest first.
    patterns: Vec<String>,
}

/// A value shorter than this is not masked.
const MIN_MASKED_LEN: usize = 3;

/// A line of a multi-line value shorter than this (without surrounding whitespace) is not
/// masked on its own: short lines (`}`, `end`, `[ci]`) are structure, not secret, and
/// would hide ordinary text everywhere.
const MIN_LINE_LEN: usize = 8;

impl Masker {
    /// Masks these values.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut patterns = BTreeSet::new();
        for value in values {
            add_value(&mut patterns, value);
        }
        let mut patterns: Vec<String> = patterns.into_iter().collect();
        // Longest first, so a secret containing another is masked whole.
        patterns.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Masker { patterns }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for pattern in &self.patterns {
            if out.contains(pattern.as_str()) {
                out = out.replace(pattern.as_str(), "***");
            }
        }
        out
    }
}

/// Adds what masks `value` to `patterns`.
fn add_value(patterns: &mut BTreeSet<String>, value: &str) {
    if value.len() < MIN_MASKED_LEN {
        return;
    }
    patterns.insert(value.to_owned());
    // A value read from a file often ends with a newline that its uses drop.
    let trimmed = value.trim();
    if trimmed.len() >= MIN_MASKED_LEN {
        patterns.insert(trimmed.to_owned());
    }
    if trimmed.contains('\n') {
        for line in trimmed.lines().map(str::trim) {
            if line.len() >= MIN_LINE_LEN && !is_pem_armour(line) {
                patterns.insert(line.to_owned());
            }
        }
    }
}

/// Whether `line` is a PEM armour line (RFC 7468), such as `-----BEGIN PRIVATE KEY-----`: the
/// same in every key, so not secret, and masking it would hide public keys and certificates too.
fn is_pem_armour(line: &str) -> bool {
    let Some(label) = line.strip_prefix("-----BEGIN ").or_else(|| line.strip_prefix("-----END ")) else {
        return false;
    };
    let Some(label) = label.strip_suffix("-----") else {
        return false;
    };
    !label.is_empty() && label.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a real key: the shape of one.
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n\
        MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n\
        NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n\
        AbC=\n\
        -----END PRIVATE KEY-----\n";

    /// Masks `text` a line at a time, as live output is.
    fn mask_lines(masker: &Masker, text: &str) -> Vec<String> {
        text.lines().map(|line| masker.mask(line)).collect()
    }

    #[test]
    fn masks_values_longest_first() {
        let masker = Masker::new(["abc", "abcdef", "x"]);
        assert_eq!(masker.mask("abcdef abc x"), "*** *** x");
        assert!(Masker::new(["", "ab"]).is_empty());
    }

    #[test]
    fn masks_a_multi_line_secret_line_by_line() {
        let masker = Masker::new([PEM]);
        let printed = format!("loaded key:\n{PEM}done");
        assert_eq!(
            mask_lines(&masker, &printed),
            [
                "loaded key:",
                "-----BEGIN PRIVATE KEY-----",
                "***",
                "***",
                "***",
                // Too short to mask on its own.
                "AbC=",
                "-----END PRIVATE KEY-----",
                "done",
            ]
        );
        // Indented, or inside a longer line.
        let line = PEM.lines().nth(2).unwrap_or_default();
        assert_eq!(masker.mask(&format!("    key: {line} # end")), "    key: *** # end");
        // Whole, the value is masked whole.
        assert_eq!(masker.mask(&format!("<{PEM}>")), "<***>");
    }

    #[test]
    fn armour_lines_and_short_lines_are_not_masked() {
        let masker = Masker::new(["[ci]\n  key = 0123456789abcdef\n}\n"]);
        assert_eq!(masker.mask("[ci]"), "[ci]");
        assert_eq!(masker.mask("}"), "}");
        assert_eq!(masker.mask("key = 0123456789abcdef"), "***");
        assert!(is_pem_armour("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(is_pem_armour("-----END OPENSSH PRIVATE KEY-----"));
        assert!(!is_pem_armour("-----BEGIN -----"));
        assert!(!is_pem_armour("-----BEGIN abc/def-----"));
    }

    #[test]
    fn a_value_with_a_trailing_newline_is_masked_without_it() {
        let masker = Masker::new(["tok3n\n"]);
        assert_eq!(masker.mask("token: tok3n"), "token: ***");
    }
}
