//! [`Masker`]: the one rule for hiding secret values in text.

use std::collections::BTreeSet;
use std::fmt;

use aho_corasick::{AhoCorasick, Input, MatchKind};

/// Replaces secret values in text with `***`.
///
/// Values shorter than three characters are not masked: they would hide ordinary text
/// everywhere. A secret that contains another is masked whole, and so are secrets that overlap
/// in the text: every run of text covered by secrets becomes one `***`.
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
#[derive(Default, Clone)]
pub struct Masker {
    /// What is replaced.
    patterns: Vec<String>,
    /// Finds every pattern in one pass; `None` if there are none, or (never seen) if the
    /// automatons could not be built, and then `mask` searches for each pattern in turn.
    searcher: Option<Searcher>,
}

/// Two automatons for the same patterns.
#[derive(Clone)]
struct Searcher {
    /// Finds the first occurrence fast (leftmost semantics allow the fastest prefilters).
    first: AhoCorasick,
    /// Finds all occurrences, overlapping ones too.
    all: AhoCorasick,
}

/// Shows how many patterns there are, never what they are.
impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker").field("patterns", &self.patterns.len()).finish_non_exhaustive()
    }
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
        let patterns: Vec<String> = patterns.into_iter().collect();
        let searcher = if patterns.is_empty() { None } else { Searcher::new(&patterns) };
        Masker { patterns, searcher }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every secret replaced by `***`: every run of text covered by occurrences of
    /// secrets (overlapping or nested ones together) becomes one `***`.
    pub fn mask(&self, text: &str) -> String {
        match &self.searcher {
            Some(searcher) => replace(text, merge(covered(searcher, text))),
            None => {
                let mut found: Vec<(usize, usize)> = self.patterns.iter().flat_map(|p| occurrences(text, p)).collect();
                found.sort_unstable();
                replace(text, merge(found))
            }
        }
    }
}

/// The runs of `text` covered by occurrences of patterns, overlapping ones included.
fn covered(searcher: &Searcher, text: &str) -> Vec<(usize, usize)> {
    // Text without secrets, the common case, takes one fast leftmost search.
    let Some(first) = searcher.first.find(text) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, usize)> = searcher
        .all
        .find_overlapping_iter(Input::new(text).range(first.start()..))
        .map(|m| (m.start(), m.end()))
        .collect();
    found.sort_unstable();
    found
}

impl Searcher {
    fn new(patterns: &[String]) -> Option<Searcher> {
        let first = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(patterns).ok()?;
        let all = AhoCorasick::new(patterns).ok()?;
        Some(Searcher { first, all })
    }
}

/// Sorted ranges, overlapping ones merged.
fn merge(sorted: Vec<(usize, usize)>) -> impl Iterator<Item = (usize, usize)> {
    let mut sorted = sorted.into_iter().peekable();
    std::iter::from_fn(move || {
        let (start, mut end) = sorted.next()?;
        while let Some(&(next_start, next_end)) = sorted.peek()
            && next_start < end
        {
            end = end.max(next_end);
            sorted.next();
        }
        Some((start, end))
    })
}

/// `text` with each of these ranges (in order, not overlapping, on character boundaries)
/// replaced by `***`.
fn replace(text: &str, ranges: impl Iterator<Item = (usize, usize)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in ranges {
        out.push_str(text.get(copied..start).unwrap_or_default());
        out.push_str("***");
        copied = end;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// The ranges of every occurrence of `pattern` in `text`, overlapping ones too.
fn occurrences<'a>(text: &'a str, pattern: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = from + text.get(from..)?.find(pattern)?;
        // The next search starts one character on.
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        Some((start, start + pattern.len()))
    })
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
    fn masks_overlapping_secrets_together() {
        let masker = Masker::new(["abcd", "xab", "aaa"]);
        assert_eq!(masker.mask("<xabcd> <abcdabcd> <aaaa> é"), "<***> <******> <***> é");
        assert_eq!(masker.mask("nothing here"), "nothing here");
    }

    #[test]
    fn masks_the_same_without_the_automaton() {
        let masker = Masker::new(["abcd", "xab", "aaa", "été", PEM]);
        let slow = Masker { searcher: None, ..masker.clone() };
        for text in ["<xabcd> <abcdabcd> <aaaa>", "ééétéé", PEM, "nothing", ""] {
            assert_eq!(slow.mask(text), masker.mask(text), "{text}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        assert!(!format!("{:?}", Masker::new(["hunter22"])).contains("hunter22"));
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
