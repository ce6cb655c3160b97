//! The one way durations are written and read: `500ms`, `30s`, `10m`, `2h`, `1h30m` on the
//! way in (job timeouts, command-line flags), and [`short`] or [`clock`] on the way out.

use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}; write a number and a unit: `500ms`, `30s`, `10m`, `2h`, `1h30m`")]
pub struct InvalidDuration(pub String);

/// Parses `500ms`, `30s`, `10m`, `2h` or a sum such as `1h30m`. A value too large for
/// milliseconds in a `u64` is refused, never wrapped.
///
/// ```
/// use std::time::Duration;
/// use monkeyci_protocol::duration::parse;
///
/// assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
/// assert!(parse("10").is_err());
/// assert!(parse("400000000000000000m").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, InvalidDuration> {
    let bad = || InvalidDuration(text.to_owned());
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number.checked_mul(factor).and_then(|ms| total.checked_add(ms)).ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total))
}

/// The shortest exact form of a duration, in the syntax [`parse`] reads: `1h2m3s`, `10m`,
/// `250ms`.
///
/// ```
/// use std::time::Duration;
/// use monkeyci_protocol::duration::short;
///
/// assert_eq!(short(Duration::from_secs(3723)), "1h2m3s");
/// assert_eq!(short(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn short(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 || !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// A measured duration for people, as progress and summaries show it: `0.25s`, `12.3s`,
/// `2m05s`.
///
/// ```
/// assert_eq!(monkeyci_protocol::duration::clock(250), "0.25s");
/// assert_eq!(monkeyci_protocol::duration::clock(125_000), "2m05s");
/// ```
pub fn clock(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_what_short_writes() {
        for ms in [1, 250, 1000, 61_000, 3_723_000, 5_400_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&short(d)), Ok(d), "{ms} ms");
        }
    }

    #[test]
    fn bad_durations_are_refused() {
        for text in ["", "s", "10", "10x", "1.5s", "-1s", "18446744073709551615h", "1h 30m"] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }
}
