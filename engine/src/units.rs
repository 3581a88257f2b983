//! Durations and sizes written for people: [`parse_duration`] (`500us`, `10ms`, `1s`,
//! `1m30s`, a bare number of milliseconds) and [`parse_size`] (`512KB`, `10MB`, `1MiB`, a
//! bare number of bytes), as the services that move onto the engine write them in their
//! `KAFKA_*` variables.
//!
//! Durations follow Go's `time.ParseDuration` (the services were Go programs using
//! segmentio/kafka-go): one or more decimal numbers, each with a unit `ns`, `us` (or `µs`),
//! `ms`, `s`, `m` or `h`; a fraction is allowed (`1.5s`). A number without a unit is
//! milliseconds, as in the engine's `*_MS` variables. Negative durations are refused.
//!
//! Sizes take a decimal number and an optional unit, case-insensitive: `B`, decimal `KB`,
//! `MB`, `GB`, `TB` (powers of 1000) and binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024);
//! `K`, `M`, `G`, `T` alone are the decimal ones. A fractional size is rounded down to whole
//! bytes.

use std::time::Duration;

/// Why a duration or a size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// Nothing was given.
    #[error("empty")]
    Empty,
    /// A minus sign: durations and sizes are never negative.
    #[error("must not be negative")]
    Negative,
    /// Something that is not a number where a number was expected.
    #[error("{0:?} is not a number")]
    NotANumber(String),
    /// A number without a unit after another with one (`1s5`).
    #[error("{0:?} has a number without a unit")]
    MissingUnit(String),
    /// A unit this parser does not know; the message lists those it does.
    #[error("unknown unit {unit:?} (use one of {known})")]
    UnknownUnit {
        /// The unit as given.
        unit: String,
        /// The units that are known, for the message.
        known: &'static str,
    },
    /// Too large to hold (a duration beyond `u64` nanoseconds' worth of seconds, a size
    /// beyond `u64` bytes).
    #[error("too large")]
    Overflow,
}

const DURATION_UNITS: &str = "ns, us, ms, s, m, h";
const SIZE_UNITS: &str = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB";

/// A decimal number `int.frac` split off the front of `s`: (whole part, fraction digits,
/// rest). The fraction keeps at most 18 digits (finer than a nanosecond of an hour).
fn split_number(s: &str) -> Result<(u128, u128, u32, &str), UnitError> {
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, rest) = s.split_at(end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(UnitError::NotANumber(s.to_string()));
    }
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| UnitError::Overflow)? };
    let frac = &frac[..frac.len().min(18)];
    let scale = frac.len() as u32;
    let frac: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| UnitError::Overflow)? };
    Ok((whole, frac, scale, rest))
}

/// `whole.frac` (with `scale` fraction digits) times `unit`, rounded down.
fn scaled(whole: u128, frac: u128, scale: u32, unit: u128) -> Result<u128, UnitError> {
    let w = whole.checked_mul(unit).ok_or(UnitError::Overflow)?;
    let f = frac.checked_mul(unit).ok_or(UnitError::Overflow)? / 10u128.pow(scale);
    w.checked_add(f).ok_or(UnitError::Overflow)
}

fn sign_checked(s: &str) -> Result<&str, UnitError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    if s.starts_with('-') {
        return Err(UnitError::Negative);
    }
    Ok(s.strip_prefix('+').unwrap_or(s))
}

/// Reads a duration: Go-style (`500us`, `10ms`, `1s`, `2m`, `1h`, `1m30s`, `1.5s`) or a bare
/// number of milliseconds (`250`).
///
/// ```
/// use std::time::Duration;
/// use klamm_engine::parse_duration;
///
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
/// assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
/// assert!(parse_duration("10 parsecs").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let s = sign_checked(s)?;
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = s.parse().map_err(|_| UnitError::Overflow)?;
        return Ok(Duration::from_millis(ms));
    }
    let mut rest = s;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let (whole, frac, scale, after) = split_number(rest)?;
        let unit_end = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(UnitError::MissingUnit(s.to_string())),
            other => return Err(UnitError::UnknownUnit { unit: other.to_string(), known: DURATION_UNITS }),
        };
        nanos = nanos.checked_add(scaled(whole, frac, scale, per)?).ok_or(UnitError::Overflow)?;
        rest = next;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| UnitError::Overflow)?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Reads a size in bytes: `10MB` (10 000 000), `512KB`, `1MiB` (1 048 576), `64k`, `1.5GiB`,
/// or a bare number of bytes.
///
/// ```
/// use klamm_engine::parse_size;
///
/// assert_eq!(parse_size("10MB"), Ok(10_000_000));
/// assert_eq!(parse_size("1MiB"), Ok(1_048_576));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("10 furlongs").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let s = sign_checked(s)?;
    let (whole, frac, scale, unit) = split_number(s)?;
    let per: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(UnitError::UnknownUnit { unit: unit.trim().to_string(), known: SIZE_UNITS }),
    };
    u64::try_from(scaled(whole, frac, scale, per)?).map_err(|_| UnitError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_syntax_and_bare_milliseconds() {
        let ms = Duration::from_millis;
        for (text, expected) in [
            ("500us", Duration::from_micros(500)),
            ("500µs", Duration::from_micros(500)),
            ("10ms", ms(10)),
            ("1s", ms(1000)),
            ("2m", ms(120_000)),
            ("1h", ms(3_600_000)),
            ("1m30s", ms(90_000)),
            ("1h2m3s4ms", ms(3_723_004)),
            ("1.5s", ms(1500)),
            (".5s", ms(500)),
            ("1.s", ms(1000)),
            ("250ns", Duration::from_nanos(250)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("250", ms(250)),
            (" 7s ", ms(7000)),
            ("+3s", ms(3000)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(parse_duration(""), Err(UnitError::Empty));
        assert_eq!(parse_duration("  "), Err(UnitError::Empty));
        assert_eq!(parse_duration("-1s"), Err(UnitError::Negative));
        assert_eq!(parse_duration("s"), Err(UnitError::NotANumber("s".into())));
        assert_eq!(parse_duration("1..2s"), Err(UnitError::NotANumber("1..2s".into())));
        assert!(matches!(parse_duration("10d"), Err(UnitError::UnknownUnit { unit, .. }) if unit == "d"));
        assert_eq!(parse_duration("1s5"), Err(UnitError::MissingUnit("1s5".into())));
        assert!(matches!(parse_duration("1 s"), Err(UnitError::UnknownUnit { .. })));
        assert_eq!(parse_duration("99999999999999999999999"), Err(UnitError::Overflow));
        assert_eq!(parse_duration("9999999999999999999999h"), Err(UnitError::Overflow));
        let e = parse_duration("5 minutes").unwrap_err().to_string();
        assert!(e.contains("ms, s, m, h"), "{e}");
    }

    #[test]
    fn sizes_decimal_and_binary() {
        for (text, expected) in [
            ("0", 0),
            ("4096", 4096),
            ("10B", 10),
            ("512KB", 512_000),
            ("512kb", 512_000),
            ("64k", 64_000),
            ("10MB", 10_000_000),
            ("10M", 10_000_000),
            ("2GB", 2_000_000_000),
            ("1TB", 1_000_000_000_000),
            ("1KiB", 1024),
            ("1MiB", 1_048_576),
            ("1mib", 1_048_576),
            ("1GiB", 1 << 30),
            ("1TiB", 1 << 40),
            ("1.5KiB", 1536),
            ("1.1KiB", 1126),
            ("10 MB", 10_000_000),
        ] {
            assert_eq!(parse_size(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        assert_eq!(parse_size(""), Err(UnitError::Empty));
        assert_eq!(parse_size("-1"), Err(UnitError::Negative));
        assert_eq!(parse_size("MB"), Err(UnitError::NotANumber("MB".into())));
        assert!(matches!(parse_size("10XB"), Err(UnitError::UnknownUnit { unit, .. }) if unit == "XB"));
        assert!(matches!(parse_size("1MB2"), Err(UnitError::UnknownUnit { .. })));
        assert_eq!(parse_size("99999999999999999999"), Err(UnitError::Overflow));
        assert_eq!(parse_size("20000000TB"), Err(UnitError::Overflow));
        let e = parse_size("3 parsecs").unwrap_err().to_string();
        assert!(e.contains("MiB"), "{e}");
    }
}
