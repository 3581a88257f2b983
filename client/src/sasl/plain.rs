//! SASL PLAIN (RFC 4616): one message with the user name and password, no server answer beyond
//! success or failure. Only safe over TLS: the password crosses the wire as it is.

use super::{Secret, Step};
use crate::error::Error;

/// `authzid NUL authcid NUL passwd`, with the authorization id left empty (the broker then
/// takes the user name as the principal, as the Java client and librdkafka send it).
pub(super) fn initial_response(username: &str, password: &Secret) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + username.len() + password.expose().len());
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.expose().as_bytes());
    out
}

/// The state after the only message: any server answer without an error ends the exchange.
pub(super) fn step(_server: &[u8]) -> Result<Step, Error> {
    Ok(Step::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_nul_separated() {
        let token = initial_response("alice", &Secret::new("wonder land"));
        assert_eq!(token, b"\0alice\0wonder land");
        assert!(matches!(step(b"").unwrap(), Step::Done));
    }
}
