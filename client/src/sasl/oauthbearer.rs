//! SASL OAUTHBEARER (RFC 7628) as Kafka runs it (KIP-255): the client sends a bearer token it
//! got from a [`TokenProvider`]; the broker validates it.
//!
//! ```text
//! client   n,,<SOH>auth=Bearer <token><SOH>[<key>=<value><SOH>...]<SOH>
//! server   (empty: accepted)   or   {"status":"invalid_token",...}
//! client   <SOH>               (only after an error: the RFC's acknowledgement)
//! server   SaslAuthenticate error SASL_AUTHENTICATION_FAILED
//! ```
//!
//! Tokens are cached and shared by every connection of a client; a new one is asked for once
//! 80% of the cached token's lifetime has passed, so that a connection that authenticates or
//! re-authenticates (KIP-368) near the end of a token's life presents a fresh one.
//!
//! [`UnsecuredJwt`] makes tokens the way librdkafka's `sasl.oauthbearer.config` and the Java
//! client's `unsecuredLoginStringClaim_sub` do: unsigned JWTs (`alg: none`) that only a broker
//! with Kafka's unsecured validator accepts. For local use and tests, never for production.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;

use super::{authentication_error, Secret, Step};
use crate::config::config_error;
use crate::error::Error;

/// A bearer token for OAUTHBEARER, with what the client needs to know about it.
///
/// ```
/// use std::time::Duration;
/// use klamm::OAuthBearerToken;
///
/// let token = OAuthBearerToken::new("eyJhbGciOi...", Duration::from_secs(3600), "alice");
/// assert_eq!(token.principal, "alice");
/// assert!(!format!("{token:?}").contains("eyJ")); // the token itself is never printed
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct OAuthBearerToken {
    /// The token, as the broker's validator expects it (a JWT, usually).
    pub value: Secret,
    /// When the token stops being valid.
    pub expires_at: SystemTime,
    /// Whom the token names (for logs; the broker takes the principal from the token).
    pub principal: String,
    /// SASL extensions sent with the token (KIP-342), `key=value`.
    pub extensions: Vec<(String, String)>,
}

impl OAuthBearerToken {
    /// A token valid for `lifetime` from now.
    pub fn new(value: impl Into<String>, lifetime: Duration, principal: impl Into<String>) -> Self {
        Self {
            value: Secret::new(value),
            expires_at: SystemTime::now() + lifetime,
            principal: principal.into(),
            extensions: Vec::new(),
        }
    }

    /// This token with a SASL extension (KIP-342) added.
    pub fn extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.push((key.into(), value.into()));
        self
    }
}

impl fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("value", &self.value)
            .field("expires_at", &self.expires_at)
            .field("principal", &self.principal)
            .field("extensions", &self.extensions)
            .finish()
    }
}

/// The future a [`TokenProvider`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<OAuthBearerToken, Error>> + Send + 'a>>;

/// Where OAUTHBEARER tokens come from: your identity provider's client, say.
///
/// The client calls it when a connection authenticates and holds no fresh token (one with more
/// than 20% of its lifetime left), and again before the token expires. An error fails the
/// connection's authentication with that error.
///
/// ```
/// use std::time::Duration;
/// use klamm::{ClientConfig, OAuthBearerToken, TokenFuture, TokenProvider};
///
/// struct MyIdentityProvider;
///
/// impl TokenProvider for MyIdentityProvider {
///     fn token(&self) -> TokenFuture<'_> {
///         Box::pin(async {
///             // Ask the identity provider here.
///             Ok(OAuthBearerToken::new("eyJhbGciOi...", Duration::from_secs(3600), "svc-billing"))
///         })
///     }
/// }
///
/// let config = ClientConfig::new("broker:9093").sasl_oauthbearer(MyIdentityProvider);
/// # let _ = config;
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// A new token.
    fn token(&self) -> TokenFuture<'_>;
}

/// Unsigned JWTs for Kafka's unsecured validator (`sasl.oauthbearer.config`), for local use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredJwt {
    /// The principal, in the `sub` claim (or `principal_claim`).
    pub principal: String,
    /// The claim that names the principal. Default: `sub`.
    pub principal_claim: String,
    /// Scopes, in the `scope` claim (or `scope_claim`) when any.
    pub scope: Vec<String>,
    /// The claim that carries the scopes. Default: `scope`.
    pub scope_claim: String,
    /// How long each token lives. Default: one hour.
    pub lifetime: Duration,
    /// SASL extensions sent with the token.
    pub extensions: Vec<(String, String)>,
}

impl UnsecuredJwt {
    /// Tokens for `principal`, with the defaults.
    pub fn new(principal: impl Into<String>) -> Self {
        Self {
            principal: principal.into(),
            principal_claim: "sub".to_owned(),
            scope: Vec::new(),
            scope_claim: "scope".to_owned(),
            lifetime: Duration::from_secs(3600),
            extensions: Vec::new(),
        }
    }

    /// Parses librdkafka's `sasl.oauthbearer.config` for its unsecured JWTs:
    /// space-separated `principal=...`, `principalClaimName=...`, `scope=a,b`,
    /// `scopeClaimName=...`, `lifeSeconds=...`, `extension_<name>=...`.
    pub fn parse(config: &str) -> Result<Self, Error> {
        let mut out = Self::new("");
        let bad = |why: String| config_error(format!("sasl.oauthbearer.config: {why}"));
        for item in config.split_whitespace() {
            let Some((key, value)) = item.split_once('=') else {
                return Err(bad(format!("{item:?} is not key=value")));
            };
            match key {
                "principal" => out.principal = value.to_owned(),
                "principalClaimName" => out.principal_claim = value.to_owned(),
                "scope" => {
                    out.scope = value.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
                }
                "scopeClaimName" => out.scope_claim = value.to_owned(),
                "lifeSeconds" => {
                    let secs: u64 = value.parse().map_err(|_| bad(format!("lifeSeconds={value:?}")))?;
                    out.lifetime = Duration::from_secs(secs);
                }
                _ => match key.strip_prefix("extension_") {
                    Some(name) if !name.is_empty() => {
                        out.extensions.push((name.to_owned(), value.to_owned()))
                    }
                    _ => return Err(bad(format!("unknown key {key:?}"))),
                },
            }
        }
        if out.principal.is_empty() {
            return Err(bad("no principal=".to_owned()));
        }
        if out.lifetime.is_zero() {
            return Err(bad("lifeSeconds must be above zero".to_owned()));
        }
        Ok(out)
    }

    /// A token issued now.
    pub fn issue(&self) -> OAuthBearerToken {
        self.issue_at(SystemTime::now())
    }

    fn issue_at(&self, now: SystemTime) -> OAuthBearerToken {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let exp = iat + self.lifetime.as_secs().max(1);
        let mut claims = format!(
            "{{{}:{},\"iat\":{iat},\"exp\":{exp}",
            json_string(&self.principal_claim),
            json_string(&self.principal)
        );
        if !self.scope.is_empty() {
            let scopes: Vec<String> = self.scope.iter().map(|s| json_string(s)).collect();
            claims.push_str(&format!(",{}:[{}]", json_string(&self.scope_claim), scopes.join(",")));
        }
        claims.push('}');
        let jwt = format!("{}.{}.", BASE64URL.encode(br#"{"alg":"none"}"#), BASE64URL.encode(claims));
        OAuthBearerToken {
            value: Secret::new(jwt),
            expires_at: UNIX_EPOCH + Duration::from_secs(exp),
            principal: self.principal.clone(),
            extensions: self.extensions.clone(),
        }
    }
}

impl TokenProvider for UnsecuredJwt {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async { Ok(self.issue()) })
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A provider with its last token, shared by the connections of one client.
#[derive(Clone)]
pub(crate) struct TokenSource {
    provider: Arc<dyn TokenProvider>,
    cached: Arc<Mutex<Option<(OAuthBearerToken, SystemTime)>>>,
}

impl TokenSource {
    pub(crate) fn new(provider: Arc<dyn TokenProvider>) -> Self {
        Self { provider, cached: Arc::new(Mutex::new(None)) }
    }

    /// The cached token while it has more than 20% of its life left, else a new one.
    pub(crate) async fn token(&self) -> Result<OAuthBearerToken, Error> {
        let now = SystemTime::now();
        if let Some((token, refresh_at)) = self.lock().as_ref() {
            if now < *refresh_at {
                return Ok(token.clone());
            }
        }
        let token = self.provider.token().await?;
        if token.expires_at <= now {
            return Err(authentication_error(
                None,
                "the OAUTHBEARER token provider returned an expired token",
            ));
        }
        let life = token.expires_at.duration_since(now).unwrap_or_default();
        *self.lock() = Some((token.clone(), now + life.mul_f64(0.8)));
        Ok(token)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(OAuthBearerToken, SystemTime)>> {
        self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The client's side of one OAUTHBEARER exchange.
pub(super) struct OAuthBearer {
    /// The server's error challenge, once it sent one.
    server_error: Option<String>,
}

impl OAuthBearer {
    pub(super) fn new() -> Self {
        Self { server_error: None }
    }

    /// The client's only real message: GS2 header, the token, the extensions.
    pub(super) fn initial_response(token: &OAuthBearerToken) -> Vec<u8> {
        let mut out = format!("n,,\x01auth=Bearer {}\x01", token.value.expose());
        for (key, value) in &token.extensions {
            out.push_str(&format!("{key}={value}\x01"));
        }
        out.push('\x01');
        out.into_bytes()
    }

    /// An empty answer means success; anything else is the server's error, which the RFC has
    /// us acknowledge with a lone SOH before the server fails the exchange.
    pub(super) fn step(&mut self, server: &[u8]) -> Result<Step, Error> {
        if server.is_empty() {
            return Ok(Step::Done);
        }
        if self.server_error.is_some() {
            return Err(authentication_error(None, "OAUTHBEARER: the server sent more after its error"));
        }
        self.server_error = Some(String::from_utf8_lossy(server).into_owned());
        Ok(Step::Respond(vec![0x01]))
    }

    /// The server's error challenge, if it sent one: it says why the token was refused.
    pub(super) fn server_error(&self) -> Option<&str> {
        self.server_error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsecured_jwt_config_parses_and_issues_claims() {
        let jwt = UnsecuredJwt::parse("principal=alice scope=read,write lifeSeconds=60 extension_traceId=42")
            .unwrap();
        assert_eq!(jwt.principal, "alice");
        assert_eq!(jwt.scope, ["read", "write"]);
        assert_eq!(jwt.lifetime, Duration::from_secs(60));
        assert_eq!(jwt.extensions, [("traceId".to_owned(), "42".to_owned())]);
        let token = jwt.issue_at(UNIX_EPOCH + Duration::from_secs(1000));
        let parts: Vec<&str> = token.value.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(BASE64URL.decode(parts[0]).unwrap(), br#"{"alg":"none"}"#);
        let claims = String::from_utf8(BASE64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims, r#"{"sub":"alice","iat":1000,"exp":1060,"scope":["read","write"]}"#);
        assert_eq!(parts[2], "");
        assert_eq!(token.expires_at, UNIX_EPOCH + Duration::from_secs(1060));

        for bad in ["", "scope=a", "principal=a lifeSeconds=x", "principal=a colour=blue", "principal"] {
            let e = UnsecuredJwt::parse(bad).unwrap_err();
            assert!(e.to_string().contains("sasl.oauthbearer.config"), "{bad}: {e}");
        }
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn messages_follow_rfc7628() {
        let token = OAuthBearerToken::new("tok", Duration::from_secs(5), "p").extension("k", "v");
        assert_eq!(OAuthBearer::initial_response(&token), b"n,,\x01auth=Bearer tok\x01k=v\x01\x01");
        let mut ok = OAuthBearer::new();
        assert!(matches!(ok.step(b"").unwrap(), Step::Done));
        let mut refused = OAuthBearer::new();
        let Step::Respond(ack) = refused.step(br#"{"status":"invalid_token"}"#).unwrap() else {
            panic!("an acknowledgement")
        };
        assert_eq!(ack, [0x01]);
        assert_eq!(refused.server_error(), Some(r#"{"status":"invalid_token"}"#));
        assert!(refused.step(b"again").is_err());
    }

    struct Counting(std::sync::atomic::AtomicU32, Duration);

    impl TokenProvider for Counting {
        fn token(&self) -> TokenFuture<'_> {
            Box::pin(async move {
                let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(OAuthBearerToken::new(format!("t{n}"), self.1, "p"))
            })
        }
    }

    #[tokio::test]
    async fn tokens_are_cached_until_most_of_their_life_is_gone() {
        let long = TokenSource::new(Arc::new(Counting(Default::default(), Duration::from_secs(3600))));
        assert_eq!(long.token().await.unwrap().value.expose(), "t0");
        assert_eq!(long.clone().token().await.unwrap().value.expose(), "t0");
        // 80% of 100 ms pass quickly: the next connection gets a new token.
        let short = TokenSource::new(Arc::new(Counting(Default::default(), Duration::from_millis(100))));
        assert_eq!(short.token().await.unwrap().value.expose(), "t0");
        tokio::time::sleep(Duration::from_millis(90)).await;
        assert_eq!(short.token().await.unwrap().value.expose(), "t1");
    }
}
