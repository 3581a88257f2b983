//! TLS for broker connections (`security.protocol=SSL`): which certificates the client trusts,
//! which one it shows, and how a failed handshake is reported.
//!
//! [`TlsConfig`] holds the settings under the property names of the Java client and librdkafka
//! (see [`ClientConfig::set`](crate::ClientConfig::set)); the rustls configuration built from
//! them is made once and shared by every connection of every clone. A connection wraps its TCP
//! stream with tokio-rustls, with the broker's host name from the bootstrap list or the
//! metadata as the server name (SNI, and the name checked against the certificate).
//!
//! The cryptography comes from a rustls crypto provider: the one the process installed with
//! `CryptoProvider::install_default`, if any; else `rustls-graviola` (written in Rust) when the
//! `pure-rust` feature is on; else `ring` (the `ring` feature, on by default).
//!
//! Handshake failures become [`ErrorKind::Tls`] with a [`TlsFailure`] that says what went wrong.
//! None of them is retriable: a certificate that is not trusted now will not be trusted in a
//! second.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::error::{Error, ErrorKind};

/// What went wrong in a TLS handshake or with the TLS settings (see [`ErrorKind::Tls`]).
///
/// Retrying does not help with any of them but [`TlsFailure::HandshakeInterrupted`]: the
/// certificates or the settings have to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The broker's certificate is not signed by a trusted CA (`ssl.ca.location`), or its
    /// chain is broken.
    UntrustedCertificate,
    /// The broker's certificate does not name the host the client connected to
    /// (`ssl.endpoint.identification.algorithm`).
    HostnameMismatch,
    /// The broker's certificate has expired or is not valid yet.
    ExpiredCertificate,
    /// The broker refused the client's certificate, or wanted one and got none
    /// (`ssl.certificate.location`, `ssl.key.location`).
    ClientCertificateRejected,
    /// The handshake failed otherwise: the other side does not speak TLS, or there is no
    /// protocol version or cipher suite in common.
    Handshake,
    /// The broker closed the connection during the handshake: most likely a plaintext
    /// listener (which reads the TLS greeting as an absurd request size and hangs up), but a
    /// broker going away looks the same. The one TLS failure that is retriable.
    HandshakeInterrupted,
    /// The broker answered in TLS on a connection the client opened in plaintext: the listener
    /// wants `security.protocol=SSL`.
    BrokerExpectsTls,
    /// A CA, certificate or key could not be read or parsed, or the key does not decrypt with
    /// `ssl.key.password`.
    BadCertificateOrKey,
    /// The settings do not make a TLS configuration (a JKS or PKCS#12 store, a certificate
    /// without a key, no crypto provider in this build).
    Unsupported,
}

impl TlsFailure {
    /// What it means, in a sentence fragment.
    pub fn description(self) -> &'static str {
        match self {
            TlsFailure::UntrustedCertificate => {
                "the broker's certificate is not signed by a trusted CA (check ssl.ca.location)"
            }
            TlsFailure::HostnameMismatch => {
                "the broker's certificate does not name the host connected to \
                 (its subject alternative names must include the advertised host)"
            }
            TlsFailure::ExpiredCertificate => "the broker's certificate has expired or is not valid yet",
            TlsFailure::ClientCertificateRejected => {
                "the broker refused the client certificate, or requires one and none is configured \
                 (ssl.certificate.location, ssl.key.location)"
            }
            TlsFailure::Handshake => "the TLS handshake failed",
            TlsFailure::HandshakeInterrupted => {
                "the broker closed the connection during the TLS handshake \
                 (is it a plaintext listener? then set security.protocol=PLAINTEXT)"
            }
            TlsFailure::BrokerExpectsTls => {
                "the broker answered in TLS on a plaintext connection: set security.protocol=SSL"
            }
            TlsFailure::BadCertificateOrKey => "a certificate or key cannot be used",
            TlsFailure::Unsupported => "the TLS settings are not supported",
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Where a PEM document comes from: a file (read when the configuration is first used) or the
/// text itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file holding PEM sections.
    File(PathBuf),
    /// PEM text.
    Text(String),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(path) => f.debug_tuple("File").field(path).finish(),
            // Inline PEM may be a private key: never print it.
            Pem::Text(text) => write!(f, "Text({} bytes)", text.len()),
        }
    }
}

impl Pem {
    fn read(&self, what: &str) -> Result<Vec<u8>, Error> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|e| {
                tls_error(
                    TlsFailure::BadCertificateOrKey,
                    format!("{what}: cannot read {}: {e}", path.display()),
                )
            }),
            Pem::Text(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    fn describe(&self, what: &str) -> String {
        match self {
            Pem::File(path) => format!("{what} {}", path.display()),
            Pem::Text(_) => format!("{what} (inline PEM)"),
        }
    }
}

/// A password whose `Debug` prints nothing.
#[derive(Clone, PartialEq, Eq)]
struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// TLS settings of broker connections.
///
/// By default the broker's certificate must chain to a root of the operating system's store
/// and name the host connected to; no client certificate is sent. Each setting has a Kafka
/// property name (in parentheses), so the same `key=value` lines that configure the Java client
/// or librdkafka configure this.
///
/// ```
/// use klamm::{ClientConfig, TlsConfig};
///
/// // In code: a private CA, and a client certificate for mutual TLS.
/// let tls = TlsConfig::new()
///     .ca_file("/etc/kafka/ca.pem")
///     .client_certificate_files("/etc/kafka/client.pem", "/etc/kafka/client.key");
/// let config = ClientConfig::new("kafka.example.com:9093").tls(tls);
/// assert!(config.connection.security_protocol.uses_tls());
///
/// // The same with properties:
/// let same = ClientConfig::from_properties([
///     ("bootstrap.servers", "kafka.example.com:9093"),
///     ("security.protocol", "SSL"),
///     ("ssl.ca.location", "/etc/kafka/ca.pem"),
///     ("ssl.certificate.location", "/etc/kafka/client.pem"),
///     ("ssl.key.location", "/etc/kafka/client.key"),
/// ])?;
/// assert_eq!(same.connection.tls, config.connection.tls);
/// # Ok::<(), klamm::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    ca: Option<Pem>,
    certificate: Option<Pem>,
    key: Option<Pem>,
    key_password: Option<Password>,
    verify_hostname: bool,
    verify_certificate: bool,
    /// What the Java client's store properties said.
    java_stores: JavaStores,
    /// The rustls configuration, built on first use and shared by clones.
    built: Arc<OnceLock<Result<Arc<rustls::ClientConfig>, Error>>>,
}

impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.ca == other.ca
            && self.certificate == other.certificate
            && self.key == other.key
            && self.key_password == other.key_password
            && self.verify_hostname == other.verify_hostname
            && self.verify_certificate == other.verify_certificate
            // Java store properties that name PEM stores change nothing.
            && self.java_stores.check().is_ok() == other.java_stores.check().is_ok()
    }
}

impl Eq for TlsConfig {}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca)
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .field("key_password", &self.key_password)
            .field("verify_hostname", &self.verify_hostname)
            .field("verify_certificate", &self.verify_certificate)
            .finish()
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca: None,
            certificate: None,
            key: None,
            key_password: None,
            verify_hostname: true,
            verify_certificate: true,
            java_stores: JavaStores::default(),
            built: Arc::new(OnceLock::new()),
        }
    }
}

impl TlsConfig {
    /// The defaults: the system's roots, host names verified, no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificates in a PEM file instead of the system's roots
    /// (`ssl.ca.location`).
    pub fn ca_file(self, path: impl Into<PathBuf>) -> Self {
        self.changed(|c| c.ca = Some(Pem::File(path.into())))
    }

    /// Trusts the CA certificates in PEM text instead of the system's roots (`ssl.ca.pem`).
    pub fn ca_pem(self, pem: impl Into<String>) -> Self {
        self.changed(|c| c.ca = Some(Pem::Text(pem.into())))
    }

    /// Sends the certificate chain and uses the private key in these PEM files, for brokers
    /// that authenticate clients (`ssl.certificate.location`, `ssl.key.location`). The key may
    /// be PKCS#8 (encrypted or not), PKCS#1 or SEC1; both may be the same file.
    pub fn client_certificate_files(self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.changed(|c| {
            c.certificate = Some(Pem::File(chain.into()));
            c.key = Some(Pem::File(key.into()));
        })
    }

    /// The same as [`client_certificate_files`](Self::client_certificate_files) from PEM text
    /// (`ssl.certificate.pem`, `ssl.key.pem`).
    pub fn client_certificate_pem(self, chain: impl Into<String>, key: impl Into<String>) -> Self {
        self.changed(|c| {
            c.certificate = Some(Pem::Text(chain.into()));
            c.key = Some(Pem::Text(key.into()));
        })
    }

    /// The password of an encrypted PKCS#8 client key (`ssl.key.password`).
    pub fn key_password(self, password: impl Into<String>) -> Self {
        self.changed(|c| c.key_password = Some(Password(password.into())))
    }

    /// Whether the broker's certificate must name the host connected to (default: true;
    /// `ssl.endpoint.identification.algorithm=https`, empty or `none` turns it off). With it
    /// off, the certificate must still chain to a trusted CA.
    pub fn verify_hostname(self, verify: bool) -> Self {
        self.changed(|c| c.verify_hostname = verify)
    }

    /// Whether the broker's certificate is checked at all (default: true;
    /// `enable.ssl.certificate.verification`). Turning it off accepts any certificate, so
    /// anyone on the path can read and change the traffic: for tests only.
    pub fn verify_certificate(self, verify: bool) -> Self {
        self.changed(|c| c.verify_certificate = verify)
    }

    /// The name of the crypto provider connections will use: `"process default"` when the
    /// application installed one, else `"graviola"` or `"ring"` by the crate's features, or
    /// `"none"` when the build has no provider.
    pub fn crypto_provider_name() -> &'static str {
        if CryptoProvider::get_default().is_some() {
            return "process default";
        }
        compiled_provider().map_or("none", |(name, _)| name)
    }

    fn changed(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self.built = Arc::new(OnceLock::new());
        self
    }

    /// Sets one `ssl.*` property; `Ok(false)` when `key` is not a TLS property.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        let file = || Pem::File(PathBuf::from(value.trim()));
        let text = || Pem::Text(value.to_owned());
        let stores = &mut self.java_stores;
        match key {
            "ssl.truststore.location" | "ssl.truststore.certificates" => stores.truststore_used = true,
            "ssl.keystore.location" | "ssl.keystore.certificate.chain" | "ssl.keystore.key" => {
                stores.keystore_used = true
            }
            _ => {}
        }
        match key {
            "ssl.ca.location" | "ssl.truststore.location" => self.ca = Some(file()),
            "ssl.ca.pem" | "ssl.truststore.certificates" => self.ca = Some(text()),
            "ssl.certificate.location" => self.certificate = Some(file()),
            "ssl.certificate.pem" | "ssl.keystore.certificate.chain" => self.certificate = Some(text()),
            "ssl.key.location" => self.key = Some(file()),
            "ssl.key.pem" | "ssl.keystore.key" => self.key = Some(text()),
            // The Java client's PEM key store: the key and its certificate chain in one file.
            "ssl.keystore.location" => {
                self.certificate = Some(file());
                self.key = Some(file());
            }
            "ssl.key.password" => self.key_password = Some(Password(value.to_owned())),
            "ssl.endpoint.identification.algorithm" => {
                self.verify_hostname = match value.trim().to_ascii_lowercase().as_str() {
                    "https" => true,
                    "" | "none" => false,
                    _ => {
                        return Err(crate::config::config_error(format!(
                            "ssl.endpoint.identification.algorithm: {value:?} is not https, none or empty"
                        )))
                    }
                }
            }
            "enable.ssl.certificate.verification" => {
                self.verify_certificate = crate::config::parse_bool(key, value)?
            }
            "ssl.truststore.type" => self.java_stores.truststore_type = Some(value.trim().to_owned()),
            "ssl.keystore.type" => self.java_stores.keystore_type = Some(value.trim().to_owned()),
            "ssl.truststore.password" => self.java_stores.passwords.push("ssl.truststore.password"),
            "ssl.keystore.password" => self.java_stores.passwords.push("ssl.keystore.password"),
            _ => return Ok(false),
        }
        self.built = Arc::new(OnceLock::new());
        Ok(true)
    }

    /// The rustls configuration, built on first use (files are read then).
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        self.built.get_or_init(|| self.build().map(Arc::new)).clone()
    }

    fn build(&self) -> Result<rustls::ClientConfig, Error> {
        self.java_stores.check()?;
        let provider = match CryptoProvider::get_default() {
            Some(p) => Arc::clone(p),
            None => compiled_provider().map(|(_, p)| Arc::new(p)).ok_or_else(|| {
                tls_error(
                    TlsFailure::Unsupported,
                    "this build has no TLS crypto provider: enable the `ring` or `pure-rust` feature \
                     of klamm, or install a process default rustls CryptoProvider"
                        .to_owned(),
                )
            })?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(TlsFailure::Unsupported, format!("TLS protocol versions: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.verify_certificate {
            let roots = Arc::new(self.roots()?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| tls_error(TlsFailure::BadCertificateOrKey, format!("CA certificates: {e}")))?;
            if self.verify_hostname {
                webpki
            } else {
                Arc::new(AnyHostName(webpki))
            }
        } else {
            Arc::new(NoVerification(provider))
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        match (&self.certificate, &self.key) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let chain = read_certificates(cert, "client certificate (ssl.certificate.location)")?;
                let key_der = self.read_key(key)?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    tls_error(
                        TlsFailure::BadCertificateOrKey,
                        format!("{} with {}: {e}", cert.describe("client certificate"), key.describe("key")),
                    )
                })
            }
            (Some(_), None) => Err(tls_error(
                TlsFailure::Unsupported,
                "a client certificate is configured without its key (ssl.key.location or ssl.key.pem)"
                    .to_owned(),
            )),
            (None, Some(_)) => Err(tls_error(
                TlsFailure::Unsupported,
                "a client key is configured without its certificate (ssl.certificate.location or \
                 ssl.certificate.pem)"
                    .to_owned(),
            )),
        }
    }

    fn roots(&self) -> Result<RootCertStore, Error> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                for cert in read_certificates(ca, "CA certificates (ssl.ca.location)")? {
                    roots.add(cert).map_err(|e| {
                        tls_error(
                            TlsFailure::BadCertificateOrKey,
                            format!("{}: {e}", ca.describe("CA certificate")),
                        )
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::debug!(error = %e, "reading the system's CA certificates");
                }
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(tls_error(
                        TlsFailure::BadCertificateOrKey,
                        "no CA certificates found in the system's store: set ssl.ca.location".to_owned(),
                    ));
                }
            }
        }
        Ok(roots)
    }

    fn read_key(&self, source: &Pem) -> Result<PrivateKeyDer<'static>, Error> {
        let what = source.describe("client key (ssl.key.location)");
        let bytes = source.read("client key (ssl.key.location)")?;
        let bad = |why: String| tls_error(TlsFailure::BadCertificateOrKey, format!("{what}: {why}"));
        if let Some(der) = pem_section(&bytes, "ENCRYPTED PRIVATE KEY").map_err(bad)? {
            let Some(password) = &self.key_password else {
                return Err(bad("the key is encrypted and ssl.key.password is not set".to_owned()));
            };
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                .map_err(|e| bad(format!("not an encrypted PKCS#8 key: {e}")))?;
            let plain = info.decrypt(password.0.as_bytes()).map_err(|e| {
                bad(format!("cannot decrypt the key with ssl.key.password (wrong password, or an unsupported scheme: {e})"))
            })?;
            return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec())));
        }
        if String::from_utf8_lossy(&bytes).contains("Proc-Type: 4,ENCRYPTED") {
            return Err(bad(
                "legacy OpenSSL key encryption is not supported: convert the key to encrypted PKCS#8 \
                 (openssl pkcs8 -topk8 -v2 aes-256-cbc)"
                    .to_owned(),
            ));
        }
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| bad(format!("no usable private key: {e}")))
    }
}

/// What the Java client's store properties said, checked when the configuration is built
/// (whatever order the properties came in), so that a configuration written for JKS or PKCS#12
/// stores gets an error that says what to do instead of a PEM parse error.
#[derive(Debug, Clone, Default)]
struct JavaStores {
    truststore_type: Option<String>,
    keystore_type: Option<String>,
    /// Whether `ssl.truststore.location` or `ssl.truststore.certificates` was set.
    truststore_used: bool,
    /// Whether `ssl.keystore.location`, `.certificate.chain` or `.key` was set.
    keystore_used: bool,
    /// Store password properties that were set (PEM stores have none).
    passwords: Vec<&'static str>,
}

impl JavaStores {
    fn check(&self) -> Result<(), Error> {
        for (name, given, used) in [
            ("ssl.truststore.type", &self.truststore_type, self.truststore_used),
            ("ssl.keystore.type", &self.keystore_type, self.keystore_used),
        ] {
            let (kind, note) = match given {
                Some(kind) => (kind.as_str(), ""),
                // The Java client reads a store without a type as JKS.
                None if used => ("JKS", ", the Java client's default,"),
                None => continue,
            };
            if !kind.eq_ignore_ascii_case("PEM") {
                return Err(tls_error(
                    TlsFailure::Unsupported,
                    format!(
                        "{name}={kind}{note} is not supported: convert the store to PEM and set \
                         {name}=PEM, or use ssl.ca.location / ssl.certificate.location / \
                         ssl.key.location"
                    ),
                ));
            }
        }
        if let Some(password) = self.passwords.first() {
            return Err(tls_error(
                TlsFailure::Unsupported,
                format!(
                    "{password}: PEM stores have no password (as in the Java client); the password of \
                     an encrypted key is ssl.key.password"
                ),
            ));
        }
        Ok(())
    }
}

/// The provider compiled in by the crate's features, with its name.
fn compiled_provider() -> Option<(&'static str, CryptoProvider)> {
    #[cfg(feature = "pure-rust")]
    {
        Some(("graviola", rustls_graviola::default_provider()))
    }
    #[cfg(all(feature = "ring", not(feature = "pure-rust")))]
    {
        Some(("ring", rustls::crypto::ring::default_provider()))
    }
    #[cfg(not(any(feature = "ring", feature = "pure-rust")))]
    {
        None
    }
}

fn read_certificates(source: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = source.read(what)?;
    let bad =
        |why: String| tls_error(TlsFailure::BadCertificateOrKey, format!("{}: {why}", source.describe(what)));
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("cannot parse PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE section".to_owned()));
    }
    Ok(certs)
}

/// The DER bytes of the first PEM section labelled `label`, if there is one.
fn pem_section(bytes: &[u8], label: &str) -> Result<Option<Vec<u8>>, String> {
    let text = String::from_utf8_lossy(bytes);
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = text.find(&begin) else { return Ok(None) };
    let Some(stop) = text[start..].find(&end).map(|i| start + i + end.len()) else {
        return Err(format!("{begin} without {end}"));
    };
    let (_label, der) = pkcs8::der::pem::decode_vec(text[start..stop].as_bytes())
        .map_err(|e| format!("cannot parse the {label} PEM section: {e}"))?;
    Ok(Some(der))
}

pub(crate) fn tls_error(failure: TlsFailure, why: String) -> Error {
    Error::with_message(ErrorKind::Tls(failure), why)
}

/// The server name to verify and send as SNI: the host part of `host:port`.
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>, Error> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| {
        tls_error(TlsFailure::Unsupported, format!("{host:?} is not a valid TLS server name: {e}"))
    })
}

/// The error for an IO error of a TLS stream: `Tls` when rustls gave up (naming why),
/// `None` when it is a plain IO error.
pub(crate) fn classify(e: &std::io::Error) -> Option<(TlsFailure, String)> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    use rustls::AlertDescription as A;
    let failure = match inner {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::HostnameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::ExpiredCertificate,
            _ => TlsFailure::UntrustedCertificate,
        },
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::CertificateRequired
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied,
        ) => TlsFailure::ClientCertificateRejected,
        _ => TlsFailure::Handshake,
    };
    Some((failure, inner.to_string()))
}

/// Checks the chain but not the host name (`ssl.endpoint.identification.algorithm=`).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate (`enable.ssl.certificate.verification=false`), but still checks
/// that the broker holds the key of the certificate it sent.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
