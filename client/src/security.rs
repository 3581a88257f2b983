//! How a connection is secured: the `security.protocol` setting shared by TLS and SASL.
//!
//! The names are Kafka's own (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`), matched without
//! regard to case as the Java client and librdkafka do.

use std::fmt;
use std::str::FromStr;

use crate::config::config_error;
use crate::error::Error;

/// Whether a connection uses TLS, SASL, both or neither (`security.protocol`).
///
/// ```
/// use klamm::SecurityProtocol;
///
/// let protocol: SecurityProtocol = "sasl_ssl".parse()?;
/// assert!(protocol.uses_tls() && protocol.uses_sasl());
/// assert_eq!(protocol.to_string(), "SASL_SSL");
/// # Ok::<(), klamm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication. The default.
    #[default]
    Plaintext,
    /// TLS, no SASL (the broker may still ask for a client certificate).
    Ssl,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether the connection is wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the client authenticates with SASL after connecting.
    pub fn uses_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    /// The name Kafka uses for it.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(config_error(format!(
                "security.protocol: {s:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        for p in [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ] {
            assert_eq!(p.name().parse::<SecurityProtocol>().unwrap(), p);
            assert_eq!(p.name().to_ascii_lowercase().parse::<SecurityProtocol>().unwrap(), p);
        }
        let e = "TLS".parse::<SecurityProtocol>().unwrap_err();
        assert!(e.to_string().contains("security.protocol"), "{e}");
    }
}
