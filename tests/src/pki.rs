//! A throwaway public-key infrastructure for TLS tests, made when the test runs and deleted with
//! it: a CA, broker certificates (one for 127.0.0.1 and localhost, one for another name, one
//! expired), a client certificate signed by the CA, and a second CA that signed nothing the
//! broker uses. Nothing here is ever committed.
//!
//! Files are PEM, in the forms the three clients and Kafka read: certificates as
//! `CERTIFICATE` sections, keys as unencrypted PKCS#8 (`PRIVATE KEY`), a key store as the key
//! followed by its certificate and the CA's (Kafka's and the Java client's
//! `ssl.keystore.type=PEM` file), and the client key once more encrypted as PKCS#8 with PBES2
//! (PBKDF2-HMAC-SHA256, AES-256-CBC), as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
//!
//! [`Pki::ssl_listener`] configures a Kafka listener (see [`BrokerBuilder::listener`]) with a
//! key store and, when asked, required client authentication.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};

use crate::{BrokerBuilder, Error};

/// The password of [`Pki::client_key_encrypted`].
pub const CLIENT_KEY_PASSWORD: &str = "klamm-test-key-password";

/// Which broker certificate a listener presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerCertificate {
    /// Signed by the CA, valid now, for 127.0.0.1 and localhost.
    Good,
    /// Signed by the CA, valid now, for `kafka.invalid` only: a host name mismatch.
    OtherName,
    /// Signed by the CA, for 127.0.0.1 and localhost, but expired in 2020.
    Expired,
}

/// The certificates and keys of one test run, in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Makes the CA, the certificates and the keys (ECDSA P-256) and writes them.
    pub fn new() -> Result<Pki, Error> {
        let dir = tempfile::Builder::new().prefix("klamm-pki-").tempdir()?;
        let path = |name: &str| dir.path().join(name);

        let (ca_params, ca_key, ca_pem) = make_ca("Klamm test CA")?;
        fs::write(path("ca.pem"), &ca_pem)?;
        let ca = Issuer::new(ca_params, ca_key);
        let (_, other_ca_key, other_ca_pem) = make_ca("Klamm untrusted test CA")?;
        drop(other_ca_key);
        fs::write(path("other-ca.pem"), other_ca_pem)?;

        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        for (file, sans, expired) in [
            ("broker", names.clone(), false),
            ("broker-other-name", vec!["kafka.invalid".to_owned()], false),
            ("broker-expired", names, true),
        ] {
            let mut params = CertificateParams::new(sans)?;
            params.distinguished_name.push(DnType::CommonName, file);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            if expired {
                params.not_before = date_time_ymd(2019, 1, 1);
                params.not_after = date_time_ymd(2020, 1, 1);
            }
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca)?;
            fs::write(
                path(&format!("{file}.keystore.pem")),
                format!("{}{}{ca_pem}", key.serialize_pem(), cert.pem()),
            )?;
        }

        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, "klamm-test-client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        fs::write(path("client.pem"), cert.pem())?;
        fs::write(path("client.key"), key.serialize_pem())?;
        fs::write(path("client.keystore.pem"), format!("{}{}", key.serialize_pem(), cert.pem()))?;
        fs::write(path("client-encrypted.key"), encrypt(&key.serialize_der(), CLIENT_KEY_PASSWORD)?)?;
        Ok(Pki { dir })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate that signed every broker and client certificate.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// A CA certificate that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.file("other-ca.pem")
    }

    /// The client certificate (signed by [`ca`](Self::ca)).
    pub fn client_certificate(&self) -> PathBuf {
        self.file("client.pem")
    }

    /// The client's unencrypted PKCS#8 key.
    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }

    /// The client's key encrypted with [`CLIENT_KEY_PASSWORD`].
    pub fn client_key_encrypted(&self) -> PathBuf {
        self.file("client-encrypted.key")
    }

    /// The client's key and certificate in one file (a Java PEM key store).
    pub fn client_keystore(&self) -> PathBuf {
        self.file("client.keystore.pem")
    }

    /// The key store file of a broker certificate.
    pub fn broker_keystore(&self, which: BrokerCertificate) -> PathBuf {
        self.file(match which {
            BrokerCertificate::Good => "broker.keystore.pem",
            BrokerCertificate::OtherName => "broker-other-name.keystore.pem",
            BrokerCertificate::Expired => "broker-expired.keystore.pem",
        })
    }

    /// `builder` with an SSL listener `name` presenting `certificate`, trusting [`ca`](Self::ca)
    /// for client certificates, and requiring one when `client_auth`. `protocols` limits the
    /// TLS versions (`TLSv1.2`, `TLSv1.3`, comma-separated) when given.
    pub fn ssl_listener(
        &self,
        builder: BrokerBuilder,
        name: &str,
        certificate: BrokerCertificate,
        client_auth: bool,
        protocols: Option<&str>,
    ) -> BrokerBuilder {
        self.tls_listener(builder, name, "SSL", certificate, client_auth, protocols)
    }

    /// Like [`ssl_listener`](Self::ssl_listener), with the listener's security protocol
    /// (`SSL`, or `SASL_SSL` with the listener's SASL settings added by the caller).
    pub fn tls_listener(
        &self,
        builder: BrokerBuilder,
        name: &str,
        security_protocol: &str,
        certificate: BrokerCertificate,
        client_auth: bool,
        protocols: Option<&str>,
    ) -> BrokerBuilder {
        let prefix = format!("listener.name.{}.", name.to_ascii_lowercase());
        let key = |k: &str| format!("{prefix}{k}");
        let mut b = builder
            .listener(name, security_protocol)
            .config(&key("ssl.keystore.type"), "PEM")
            .config(&key("ssl.keystore.location"), &shown(&self.broker_keystore(certificate)))
            .config(&key("ssl.truststore.type"), "PEM")
            .config(&key("ssl.truststore.location"), &shown(&self.ca()))
            .config(&key("ssl.client.auth"), if client_auth { "required" } else { "none" });
        if let Some(protocols) = protocols {
            b = b.config(&key("ssl.enabled.protocols"), protocols);
            if !protocols.contains("TLSv1.3") {
                b = b.config(&key("ssl.protocol"), "TLSv1.2");
            }
        }
        b
    }

    /// librdkafka's properties to trust [`ca`](Self::ca), with the client certificate when
    /// `client_certificate`.
    pub fn rdkafka_properties(&self, client_certificate: bool) -> Vec<(String, String)> {
        let mut p = vec![prop("security.protocol", "SSL"), prop("ssl.ca.location", &shown(&self.ca()))];
        if client_certificate {
            p.push(prop("ssl.certificate.location", &shown(&self.client_certificate())));
            p.push(prop("ssl.key.location", &shown(&self.client_key())));
        }
        p
    }

    /// The Java client's properties (PEM stores) for the same.
    pub fn java_properties(&self, client_certificate: bool) -> Vec<(String, String)> {
        let mut p = vec![
            prop("security.protocol", "SSL"),
            prop("ssl.truststore.type", "PEM"),
            prop("ssl.truststore.location", &shown(&self.ca())),
        ];
        if client_certificate {
            p.push(prop("ssl.keystore.type", "PEM"));
            p.push(prop("ssl.keystore.location", &shown(&self.client_keystore())));
        }
        p
    }
}

fn prop(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// A CA's parameters, key and PEM certificate.
fn make_ca(name: &str) -> Result<(CertificateParams, KeyPair, String), Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let pem = params.self_signed(&key)?.pem();
    Ok((params, key, pem))
}

/// `der` (a PKCS#8 key) encrypted with `password` as an `ENCRYPTED PRIVATE KEY` PEM section.
fn encrypt(der: &[u8], password: &str) -> Result<String, Error> {
    use pkcs8::der::pem::LineEnding;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("randomness: {e}"))?;
    getrandom::fill(&mut iv).map_err(|e| format!("randomness: {e}"))?;
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(10_000, &salt, &iv)
        .map_err(|e| format!("PBES2 parameters: {e}"))?;
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| format!("PKCS#8: {e}"))?;
    let encrypted = info.encrypt_with_params(params, password).map_err(|e| format!("encrypt: {e}"))?;
    let pem = encrypted.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF).map_err(|e| format!("PEM: {e}"))?;
    Ok(pem.to_string())
}
