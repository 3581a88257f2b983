//! The Java client's `sasl.jaas.config`, read (never executed) for the settings it carries:
//!
//! ```text
//! org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cret";
//! org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cret";
//! org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice";
//! ```
//!
//! One login module, a control flag, then `key=value` options (values quoted with `"` or `'`,
//! or bare), ended by `;`.

use crate::config::config_error;
use crate::error::Error;

/// The login module's class name and its options, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct JaasEntry {
    pub(super) module: String,
    pub(super) options: Vec<(String, String)>,
}

impl JaasEntry {
    pub(super) fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses one JAAS entry. Errors never quote option values: they may be passwords.
pub(super) fn parse(text: &str) -> Result<JaasEntry, Error> {
    let bad = |why: &str| config_error(format!("sasl.jaas.config: {why}"));
    let mut rest = text.trim();
    let (module, after) =
        rest.split_once(char::is_whitespace).ok_or_else(|| bad("no control flag after the login module"))?;
    rest = after.trim_start();
    let flag_end = rest.find(|c: char| c.is_whitespace() || c == ';').unwrap_or(rest.len());
    let flag = &rest[..flag_end];
    if !matches!(flag, "required" | "requisite" | "sufficient" | "optional") {
        return Err(bad("the login module must be followed by required, requisite, sufficient or optional"));
    }
    rest = &rest[flag_end..];
    let mut options = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut ended = false;
    while !ended {
        // Skip blanks.
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let Some(&(start, c)) = chars.peek() else { break };
        if c == ';' {
            chars.next();
            ended = true;
            break;
        }
        let mut key_end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() || c == ';' {
                break;
            }
            key_end = i + c.len_utf8();
            chars.next();
        }
        let key = &rest[start..key_end];
        if key.is_empty() || chars.next().map(|(_, c)| c) != Some('=') {
            return Err(bad("options must be key=value"));
        }
        let value = match chars.peek().map(|&(_, c)| c) {
            Some(q @ ('"' | '\'')) => {
                chars.next();
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        c if c == q => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(bad(&format!("the value of {key} has no closing quote")));
                }
                value
            }
            _ => {
                let mut value = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value
            }
        };
        options.push((key.to_owned(), value));
    }
    if !ended {
        return Err(bad("the entry must end with ;"));
    }
    if chars.any(|(_, c)| !c.is_whitespace()) {
        return Err(bad("only one login module is supported"));
    }
    Ok(JaasEntry { module: module.to_owned(), options })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_forms_parse() {
        let e = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="p a\"s;s";"#,
        )
        .unwrap();
        assert_eq!(e.module, "org.apache.kafka.common.security.plain.PlainLoginModule");
        assert_eq!(e.option("username"), Some("alice"));
        assert_eq!(e.option("password"), Some("p a\"s;s"));
        let e = parse(
            "org.apache.kafka.common.security.scram.ScramLoginModule required\n  username='bob'\n  password=bare ;",
        )
        .unwrap();
        assert_eq!(e.options, [("username".into(), "bob".into()), ("password".into(), "bare".into())]);
        let e =
            parse("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;").unwrap();
        assert!(e.options.is_empty());
    }

    #[test]
    fn malformed_entries_are_refused_without_quoting_secrets() {
        for bad in [
            "",
            "PlainLoginModule",
            "PlainLoginModule maybe username=\"a\";",
            "PlainLoginModule required username=\"a\" password=\"hunter2",
            "PlainLoginModule required username=\"a\" password=\"hunter2\"",
            "PlainLoginModule required =\"hunter2\";",
            "PlainLoginModule required username=\"a\"; Other required;",
        ] {
            let e = parse(bad).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("sasl.jaas.config"), "{bad}: {text}");
            assert!(!text.contains("hunter2"), "{bad}: {text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_fails_cleanly(text in "\\PC{0,80}", tail in "[a-z =\"';\\\\]{0,40}") {
            let _ = parse(&text);
            let _ = parse(&format!("Module required {tail}"));
        }
    }
}
