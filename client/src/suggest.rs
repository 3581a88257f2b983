//! "Did you mean" hints for misspelled names: a property a config does not know, an
//! environment variable the engine does not read.
//!
//! [`suggest`] picks the closest known name, if one is close: the same once case and the
//! separators `.`, `_` and `-` are ignored (`BOOTSTRAP_SERVERS` for `bootstrap.servers`), a
//! last part left out (`linger` for `linger.ms`), else within a few edits (an optimal string alignment distance of at most a quarter of the name's
//! length, between 1 and 3). The configs report an unknown name as an [`ErrorKind::Config`]
//! error whose source is an [`UnknownProperty`], which carries the hint.

use std::fmt;

use crate::error::{Error, ErrorKind};

/// The known name closest to `name`, when one is close enough to be what was meant.
///
/// ```
/// let known = ["bootstrap.servers", "client.id", "request.timeout.ms"];
/// assert_eq!(klamm::suggest("bootstrap.server", known), Some("bootstrap.servers"));
/// assert_eq!(klamm::suggest("CLIENT_ID", known), Some("client.id"));
/// assert_eq!(klamm::suggest("colour", known), None);
/// ```
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = normalize(name);
    let limit = (wanted.chars().count() / 4).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let known = normalize(candidate);
        // A name without its last part, the unit as a rule (`linger` for `linger.ms`).
        let unit_dropped = known
            .strip_prefix(wanted.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|unit| !unit.is_empty() && !unit.contains('.'));
        let d = if unit_dropped { 1 } else { distance(&wanted, &known) };
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// A property name that a config does not know: the source of its [`ErrorKind::Config`]
/// error, with the closest known name when there is one.
///
/// ```
/// use klamm::{ConsumerConfig, UnknownProperty};
///
/// let e = ConsumerConfig::from_properties([("max.poll.record", "10")]).unwrap_err();
/// assert!(e.to_string().contains(r#"did you mean "max.poll.records"?"#), "{e}");
/// let unknown = UnknownProperty::of(&e).expect("an unknown property");
/// assert_eq!(unknown.suggestion(), Some("max.poll.records"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProperty {
    name: String,
    suggestion: Option<String>,
}

impl UnknownProperty {
    /// The name as it was given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The known name it is closest to, if any is close.
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestion.as_deref()
    }

    /// The unknown property behind `error`, if that is what it is.
    pub fn of(error: &Error) -> Option<&UnknownProperty> {
        std::error::Error::source(error)?.downcast_ref::<UnknownProperty>()
    }
}

impl fmt::Display for UnknownProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown property {:?}", self.name)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean {s:?}?")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownProperty {}

/// The [`ErrorKind::Config`] error for a property `name` that none of `candidates` is, with
/// the closest of them as a hint. For configs built on this crate's, which know more names.
pub fn unknown_property<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Error {
    let suggestion = suggest(name, candidates).map(str::to_owned);
    Error::with_source(ErrorKind::Config, None, UnknownProperty { name: name.to_owned(), suggestion })
}

/// Adds the names a wrapping config knows to an unknown-property error from the config it
/// wraps; other errors pass unchanged.
pub(crate) fn widen<'a>(error: Error, candidates: impl IntoIterator<Item = &'a str>) -> Error {
    match UnknownProperty::of(&error) {
        Some(unknown) => unknown_property(&unknown.name.clone(), candidates),
        None => error,
    }
}

fn normalize(name: &str) -> String {
    name.trim().chars().map(|c| if c == '_' || c == '-' { '.' } else { c.to_ascii_lowercase() }).collect()
}

/// The optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbours, each one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let known = ["bootstrap.servers", "fetch.max.wait.ms", "fetch.min.bytes", "max.poll.records", "acks"];
        for (typo, meant) in [
            ("bootstrap.server", "bootstrap.servers"),
            ("bootstrap_servers", "bootstrap.servers"),
            ("BOOTSTRAP.SERVERS", "bootstrap.servers"),
            ("boostrap.servers", "bootstrap.servers"),
            ("fetch.max.wait", "fetch.max.wait.ms"),
            ("fetch.min.byte", "fetch.min.bytes"),
            ("max.pol.records", "max.poll.records"),
            ("ackss", "acks"),
            ("akcs", "acks"),
            ("max.poll", "max.poll.records"),
        ] {
            assert_eq!(suggest(typo, known), Some(meant), "{typo}");
        }
        for far in ["group", "colour", "fetch", "x", "session.timeout.ms"] {
            assert_eq!(suggest(far, known), None, "{far}");
        }
    }

    #[test]
    fn an_unknown_property_error_says_what_was_meant() {
        let e = unknown_property("client.idd", ["client.id", "client.rack"]);
        assert_eq!(e.kind(), &ErrorKind::Config);
        assert!(!e.is_retriable());
        assert!(e.to_string().contains(r#"unknown property "client.idd"; did you mean "client.id"?"#), "{e}");
        let widened = widen(unknown_property("group.idd", ["client.id"]), ["client.id", "group.id"]);
        assert_eq!(UnknownProperty::of(&widened).and_then(UnknownProperty::suggestion), Some("group.id"));
        let none = unknown_property("zzz", ["client.id"]);
        assert_eq!(none.to_string(), r#"invalid configuration: unknown property "zzz""#);
    }
}
