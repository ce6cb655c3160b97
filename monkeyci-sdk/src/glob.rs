//! Glob matching of repository paths, for `Ctx::touched`. Pure functions, no I/O.
//!
//! `*` matches within one path segment, `**` (as a whole segment) matches any number of
//! segments, `?` matches one character other than `/`, `[abc]`/`[a-z]`/`[!abc]` match one
//! character of (or not of) a set. Everything else matches itself.
//!
//! Matching takes time linear in the path's length, whatever the pattern: the pattern is
//! compiled with `globset` (no backtracking), and the last pattern compiled on each thread is
//! kept, since `touched` matches one pattern against every changed path. To keep the rules
//! above, the pattern is rewritten for globset first: `*`, `?` and classes never match `/`
//! (`literal_separator`); `\`, `{` and `}` match themselves (no escapes, no alternatives); a
//! `[` without its `]` matches itself; `**` inside a segment (`a**b`) is a `*`. Two details
//! are globset's: a class also negates with `^` (`[^abc]`), and a pattern globset still
//! refuses matches nothing.

use std::cell::RefCell;

use globset::{GlobBuilder, GlobMatcher};

/// Whether `path` matches `pattern`.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    thread_local! {
        static LAST: RefCell<Option<(String, Option<GlobMatcher>)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.as_ref().is_none_or(|(compiled, _)| compiled != pattern) {
            *last = Some((pattern.to_owned(), compile(pattern)));
        }
        matches!(&*last, Some((_, Some(matcher))) if matcher.is_match(path))
    })
}

/// `pattern` compiled with the rules above; `None` if globset refuses it.
fn compile(pattern: &str) -> Option<GlobMatcher> {
    let glob = GlobBuilder::new(&for_globset(pattern))
        .literal_separator(true)
        .backslash_escape(false)
        .case_insensitive(false)
        .build()
        .ok()?;
    Some(glob.compile_matcher())
}

/// `pattern` in globset's syntax, meaning what the module's rules say.
fn for_globset(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                let mut end = i;
                while chars.get(end) == Some(&'*') {
                    end += 1;
                }
                let whole_segment = (i == 0 || chars[i - 1] == '/') && (end == chars.len() || chars[end] == '/');
                out.push_str(if whole_segment { "**" } else { "*" });
                i = end;
            }
            '[' => match class_end(&chars[i..]) {
                Some(len) => {
                    let class: String = chars[i..=i + len].iter().collect();
                    out.push_str(&class);
                    i += len + 1;
                }
                None => {
                    out.push_str("[[]");
                    i += 1;
                }
            },
            '{' => {
                out.push_str("[{]");
                i += 1;
            }
            '}' => {
                out.push_str("[}]");
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Where the class opened by `pattern[0]` (`[`) closes; a `]` right after `[` or `[!` is a
/// member.
fn class_end(pattern: &[char]) -> Option<usize> {
    let start = if pattern.get(1) == Some(&'!') { 3 } else { 2 };
    (start..pattern.len()).find(|&i| pattern[i] == ']')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_segments() {
        assert!(matches("app/**", "app/src/main.rs"));
        assert!(matches("app/**", "app/x"));
        assert!(!matches("app/**", "application/x"));
        assert!(matches("**/*.rs", "main.rs"));
        assert!(matches("**/*.rs", "a/b/c.rs"));
        assert!(!matches("*.rs", "a/b.rs"));
        assert!(matches("*.md", "README.md"));
        assert!(matches("a/**/z.txt", "a/z.txt"));
        assert!(matches("a/**/z.txt", "a/b/c/z.txt"));
        assert!(!matches("a/**/z.txt", "b/z.txt"));
        assert!(matches("src/?ain.rs", "src/main.rs"));
        assert!(!matches("src/?", "src//"));
        assert!(matches("Cargo.lock", "Cargo.lock"));
        assert!(!matches("Cargo.lock", "sub/Cargo.lock"));
    }

    #[test]
    fn classes() {
        assert!(matches("v[0-9].txt", "v3.txt"));
        assert!(!matches("v[0-9].txt", "vx.txt"));
        assert!(matches("v[!0-9].txt", "vx.txt"));
        assert!(matches("[ab]", "b"));
        assert!(matches("[", "["));
    }

    #[test]
    fn other_characters_match_themselves() {
        assert!(matches("a{b,c}", "a{b,c}"));
        assert!(!matches("a{b,c}", "ab"));
        assert!(matches(r"a\*", r"a\x"));
        assert!(!matches(r"a\*", "a*"));
        assert!(matches("[*.rs", "[x.rs"));
        assert!(matches("a**b", "axxb"));
        assert!(!matches("a**b", "a/b"));
        assert!(matches("src/***", "src/a/b"));
    }

    #[test]
    fn matching_takes_linear_time() {
        // With backtracking, this took seconds (exponential in the number of stars).
        let pattern = format!("{}b", "*a".repeat(10));
        let path = "a".repeat(40);
        let started = std::time::Instant::now();
        for _ in 0..100 {
            assert!(!matches(&pattern, &path));
        }
        assert!(!matches("**/*a*a*a*a*a*a*a*a*a*a*b", &format!("x/{path}")));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
