//! Parsing of the value forms shared by every tool: times, sizes and plain numbers.
//!
//! The suffixes are DMon's: times take `s`, `m`, `h`, `d`, `w` (a bare number is
//! seconds, and may have a fraction: `0.5` or `1.5m`); sizes take `k`, `m`, `g`
//! (powers of 1024). Errors are short phrases meant to follow the option's name:
//! `dmon: -t/--timeout: '5x' is not a time (expected seconds or a number with s, m, h, d or w)`.

use std::time::Duration;

/// The longest time any option accepts: 100 years. Larger values are surely a
/// mistake, and keeping them bounded means deadline arithmetic never overflows.
pub const MAX_TIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses a time: `30`, `2.5`, `90s`, `30m`, `4h`, `3d`, `1w`.
pub fn parse_time(text: &str) -> Result<Duration, String> {
    let expected = "expected seconds, or a number with s, m, h, d or w";
    let (number, unit) = split_suffix(text);
    let scale: f64 = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 7.0 * 86400.0,
        _ => return Err(format!("'{text}' is not a time ({expected})")),
    };
    let value = match parse_decimal(number) {
        Some(value) => value,
        None if is_negative(number) => return Err(format!("'{text}' is not a time (a time cannot be negative)")),
        None => return Err(format!("'{text}' is not a time ({expected})")),
    };
    let seconds = value * scale;
    if seconds > MAX_TIME.as_secs_f64() {
        return Err(format!("'{text}' is too long (at most 100 years)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a size in bytes: `512`, `64k`, `10m`, `2g` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let expected = "expected bytes, or a whole number with k, m or g";
    let (number, unit) = split_suffix(text);
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        _ => return Err(format!("'{text}' is not a size ({expected})")),
    };
    let value = parse_whole(number).ok_or_else(|| format!("'{text}' is not a size ({expected})"))?;
    value.checked_mul(1u64 << shift).ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses a whole non-negative number.
pub fn parse_count(text: &str) -> Result<u64, String> {
    parse_whole(text).ok_or_else(|| format!("'{text}' is not a whole number (expected 0, 1, 2, ...)"))
}

/// Parses a non-negative decimal number such as a load average: `3`, `3.5`, `.5`.
pub fn parse_load(text: &str) -> Result<f64, String> {
    let expected = "expected a non-negative decimal such as 3.5";
    match parse_decimal(text) {
        Some(value) => Ok(value),
        None if is_negative(text) => Err(format!("'{text}' is below zero ({expected})")),
        None => Err(format!("'{text}' is not a number ({expected})")),
    }
}

/// Whether `text` is a decimal number below zero: `-5`, `-0.5`.
pub fn is_negative(text: &str) -> bool {
    text.strip_prefix('-').and_then(parse_decimal).is_some_and(|value| value > 0.0)
}

fn split_suffix(text: &str) -> (&str, &str) {
    let end = text.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len();
    text.split_at(end)
}

fn parse_whole(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Only plain digits with an optional fraction: no sign, exponent, `inf` or `NaN`,
/// which `f64::from_str` would all accept.
fn parse_decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) || whole.len() > 15 {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_time("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_time("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_time("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_time("3d"), Ok(Duration::from_secs(3 * 86400)));
        assert_eq!(parse_time("1w"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_time("1.5m"), Ok(Duration::from_secs(90)));
        for bad in ["", "-1", "x", "5x", "1e3", "inf", "NaN", "1.2.3", "m", "99999999999999999999", "+3"] {
            assert!(parse_time(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_time("10000w").unwrap_err().contains("too long"));
        assert_eq!(parse_time("-5").unwrap_err(), "'-5' is not a time (a time cannot be negative)");
        assert!(parse_time("-1.5m").unwrap_err().contains("cannot be negative"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        for bad in ["", "-5", "1.5k", "12q", "k", "18446744073709551615k", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn loads() {
        assert_eq!(parse_load("3.5"), Ok(3.5));
        assert_eq!(parse_load("2"), Ok(2.0));
        assert_eq!(parse_load(".5"), Ok(0.5));
        for bad in ["", "-1", "abc", "NaN", "inf", "1e9", ".", "3,5"] {
            assert!(parse_load(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_load("-1.5").unwrap_err().contains("'-1.5' is below zero"));
        assert!(parse_load("--1").unwrap_err().contains("is not a number"));
    }
}
