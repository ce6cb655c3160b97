//! Glob matching of repository paths, for `Ctx::touched`. Pure functions, no I/O.
//!
//! `*` matches within one path segment, `**` (as a whole segment) matches any number of
//! segments, `?` matches one character other than `/`, `[abc]`/`[a-z]`/`[!abc]` match one
//! character of (or not of) a set. Everything else matches itself.

/// Whether `path` matches `pattern`.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let path: Vec<char> = path.chars().collect();
    match_from(&pattern, &path)
}

fn match_from(pattern: &[char], path: &[char]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some('*') if pattern.get(1) == Some(&'*') => {
            // `**/` matches zero or more whole segments; a trailing `**` matches everything.
            let rest = &pattern[2..];
            let rest = rest.strip_prefix(&['/']).unwrap_or(rest);
            if rest.is_empty() {
                return true;
            }
            if match_from(rest, path) {
                return true;
            }
            path.iter().enumerate().filter(|(_, c)| **c == '/').any(|(i, _)| match_from(rest, &path[i + 1..]))
        }
        Some('*') => {
            let rest = &pattern[1..];
            for i in 0..=path.len() {
                if match_from(rest, &path[i..]) {
                    return true;
                }
                if path.get(i) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Some('?') => matches!(path.first(), Some(c) if *c != '/') && match_from(&pattern[1..], &path[1..]),
        Some('[') => match (path.first(), class_end(pattern)) {
            (Some(c), Some(end)) if *c != '/' => {
                in_class(&pattern[1..end], *c) && match_from(&pattern[end + 1..], &path[1..])
            }
            (Some(c), None) => *c == '[' && match_from(&pattern[1..], &path[1..]),
            _ => false,
        },
        Some(p) => path.first() == Some(p) && match_from(&pattern[1..], &path[1..]),
    }
}

fn class_end(pattern: &[char]) -> Option<usize> {
    // A `]` right after `[` or `[!` is a literal member.
    let start = if pattern.get(1) == Some(&'!') { 3 } else { 2 };
    (start..pattern.len()).find(|&i| pattern[i] == ']')
}

fn in_class(class: &[char], c: char) -> bool {
    let (negated, members) = match class.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut found = false;
    let mut i = 0;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == '-' {
            found |= members[i] <= c && c <= members[i + 2];
            i += 3;
        } else {
            found |= members[i] == c;
            i += 1;
        }
    }
    found != negated
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
}
