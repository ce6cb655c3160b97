//! [`Masker`]: the one rule for hiding secret values in text.

use std::collections::BTreeSet;
use std::fmt;

use aho_corasick::{AhoCorasick, Input, MatchKind};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Replaces secret values in text with `***`.
///
/// Output is masked a line at a time (live output, events, logs), so the rule is about what a
/// single line can show. For each value, `mask` hides:
///
/// - the value itself, and the value without surrounding whitespace (a value read from a file
///   often ends with a newline its uses drop);
/// - its base64 encodings: standard and URL-safe alphabets, with and without `=` padding, of
///   the value and of the value followed by a newline (`echo "$TOKEN" | base64`); and, for an
///   encoding longer than a line of `base64` (76 characters) or `openssl base64` (64), each
///   such line of the standard padded encoding that is at least eight characters long;
/// - its URL encoding: every byte but letters, digits and `-._~` percent-encoded with
///   upper-case hex (RFC 3986, as `jq @uri` and most libraries encode a component), and, for a
///   value with a space, the form encoding that writes the space as `+`;
/// - for a value that spans several lines (a PEM key, say), each of its lines, without
///   surrounding whitespace, that is at least eight characters long and is not a PEM armour
///   line (`-----BEGIN …-----`, `-----END …-----`: the same in every key). Shorter lines
///   (`}`, `[ci]`) are structure, not secret, and would hide ordinary text everywhere.
///
/// Values shorter than three characters are not masked at all. A secret that contains another
/// is masked whole, and so are secrets that overlap in the text: every run of text covered by
/// secrets becomes one `***`.
///
/// Not covered: base64 of a value in the middle of other data (its encoding then depends on
/// where it falls, and each of three alignments differs), of a value followed by `\r\n`, or
/// encoded twice; lower-case percent-encoding (`%2f`), other encoders' choices of what to
/// escape (Python's `quote` keeps `/`, `encodeURIComponent` keeps `!'()*`); the encodings of each line of a multi-line value (the
/// whole value's encodings are masked); hex, gzip, any other transformation; short lines of
/// a multi-line value; a value cut by a line break the value does not contain (a wrapped
/// terminal line, a JSON string broken in two).
///
/// ```
/// use monkeyci_protocol::Masker;
///
/// let masker = Masker::new(["hunter22", "x", "a/b c"]);
/// assert_eq!(masker.mask("password hunter22, x"), "password ***, x");
/// // echo hunter22 | base64
/// assert_eq!(masker.mask("aHVudGVyMjIK"), "***");
/// assert_eq!(masker.mask("?q=a%2Fb%20c&r=a%2Fb+c"), "?q=***&r=***");
///
/// // Each line of a multi-line secret, printed a line at a time.
/// let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcw\n-----END PRIVATE KEY-----\n";
/// let masker = Masker::new([key]);
/// let printed: Vec<String> = key.lines().map(|line| masker.mask(line)).collect();
/// assert_eq!(printed, ["-----BEGIN PRIVATE KEY-----", "***", "BKcw", "-----END PRIVATE KEY-----"]);
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
    add_encoded(patterns, value);
    // A value read from a file often ends with a newline that its uses drop.
    let trimmed = value.trim();
    if trimmed.len() >= MIN_MASKED_LEN && trimmed != value {
        add_encoded(patterns, trimmed);
    }
    if trimmed.contains('\n') {
        for line in trimmed.lines().map(str::trim) {
            if line.len() >= MIN_LINE_LEN && !is_pem_armour(line) {
                patterns.insert(line.to_owned());
            }
        }
    }
}

/// Adds `value` and its encodings to `patterns`.
fn add_encoded(patterns: &mut BTreeSet<String>, value: &str) {
    patterns.insert(value.to_owned());
    // `echo "$VALUE" | base64` encodes the newline that echo adds.
    let echoed = format!("{value}\n");
    for bytes in [value, &echoed] {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            patterns.insert(engine.encode(bytes));
        }
        // `base64` wraps its output at 76 columns, `openssl base64` at 64.
        let encoded = STANDARD.encode(bytes);
        for width in WRAP_WIDTHS {
            if encoded.len() > width {
                // Base64 is ASCII: any split is on a character boundary.
                for chunk in encoded.as_bytes().chunks(width) {
                    if chunk.len() >= MIN_LINE_LEN {
                        patterns.insert(String::from_utf8_lossy(chunk).into_owned());
                    }
                }
            }
        }
    }
    let encoded = utf8_percent_encode(value, URL_COMPONENT).to_string();
    if encoded != value {
        // Form encoding (`application/x-www-form-urlencoded`) writes a space as `+`.
        if value.contains(' ') {
            patterns.insert(encoded.replace("%20", "+"));
        }
        patterns.insert(encoded);
    }
}

/// The widths at which tools wrap base64 output: `base64` (76) and `openssl base64` (64).
const WRAP_WIDTHS: [usize; 2] = [64, 76];

/// What percent-encoding (URL encoding) encodes: every byte but the unreserved characters of
/// RFC 3986 (letters, digits, `-`, `.`, `_`, `~`), as `jq @uri` and most libraries do for a
/// query or path component.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

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

    /// A value with every character that base64's two alphabets and URL encoding treat
    /// differently: base64 of it has `+` and `/`, and padding.
    const TOKEN: &str = "a/b+c=d e&f?>>~";

    #[test]
    fn masks_base64_encodings() {
        let masker = Masker::new([TOKEN]);
        // printf '%s' 'a/b+c=d e&f?>>~' | base64
        let standard = "YS9iK2M9ZCBlJmY/Pj5+";
        assert_eq!(STANDARD.encode(TOKEN), standard);
        assert_eq!(masker.mask(&format!("token {standard} end")), "token *** end");
        // Its URL-safe form, with and without padding, and that of the value with a newline.
        for encoded in [
            "YS9iK2M9ZCBlJmY_Pj5-",
            // echo 'a/b+c=d e&f?>>~' | base64
            "YS9iK2M9ZCBlJmY/Pj5+Cg==",
            "YS9iK2M9ZCBlJmY/Pj5+Cg",
            "YS9iK2M9ZCBlJmY_Pj5-Cg==",
            "YS9iK2M9ZCBlJmY_Pj5-Cg",
        ] {
            assert_eq!(masker.mask(&format!("token {encoded} end")), "token *** end", "{encoded}");
        }
    }

    #[test]
    fn masks_the_echo_base64_of_a_value() {
        // echo hunter22 | base64
        let masker = Masker::new(["hunter22"]);
        assert_eq!(masker.mask("aHVudGVyMjIK"), "***");
        // The padded and unpadded forms of a value whose length leaves a remainder.
        let masker = Masker::new(["hunter2"]);
        assert_eq!(masker.mask("aHVudGVyMg=="), "***");
        assert_eq!(masker.mask("aHVudGVyMgo="), "***");
        assert_eq!(masker.mask("aHVudGVyMgo"), "***");
    }

    #[test]
    fn masks_wrapped_base64_line_by_line() {
        // A token long enough that `echo $TOKEN | base64` wraps at 76 columns.
        let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let masker = Masker::new([token]);
        let encoded = STANDARD.encode(format!("{token}\n"));
        let wrapped: Vec<&str> = encoded.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
        assert_eq!(wrapped.len(), 2);
        for line in wrapped {
            assert_eq!(masker.mask(line), "***", "{line}");
        }
        // And a multi-line secret, base64-encoded without wrapping.
        let masker = Masker::new([PEM]);
        assert_eq!(masker.mask(&format!("key: {}", STANDARD.encode(PEM))), "key: ***");
    }

    #[test]
    fn masks_url_encoding() {
        let masker = Masker::new([TOKEN]);
        // jq @uri; encodeURIComponent too, for this value.
        assert_eq!(
            masker.mask("https://example.com/?t=a%2Fb%2Bc%3Dd%20e%26f%3F%3E%3E~&x=1"),
            "https://example.com/?t=***&x=1"
        );
        // Form encoding.
        assert_eq!(masker.mask("t=a%2Fb%2Bc%3Dd+e%26f%3F%3E%3E~&x=1"), "t=***&x=1");
    }

    #[test]
    fn the_readme_promise_holds() {
        // "a Secret: masked in all output": as printed, echoed through base64, in a URL, and
        // a line at a time.
        let masker = Masker::new([TOKEN, PEM]);
        let output = format!(
            "token {TOKEN}\n{}\nurl ?t={}\n{PEM}",
            STANDARD.encode(format!("{TOKEN}\n")),
            utf8_percent_encode(TOKEN, URL_COMPONENT)
        );
        for line in mask_lines(&masker, &output) {
            assert!(!line.contains(TOKEN), "{line}");
            for secret_line in PEM.lines().filter(|l| l.len() >= MIN_LINE_LEN && !is_pem_armour(l)) {
                assert!(!line.contains(secret_line), "{line}");
            }
            assert!(!line.contains("YS9iK2M9ZCBlJmY"), "{line}");
            assert!(!line.contains("a%2Fb"), "{line}");
        }
    }

    #[test]
    fn a_value_with_a_trailing_newline_is_masked_without_it() {
        let masker = Masker::new(["tok3n\n"]);
        assert_eq!(masker.mask("token: tok3n"), "token: ***");
    }
}
