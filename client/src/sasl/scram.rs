//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the client's side, as Kafka runs them
//! (KIP-84): no channel binding (`n,,`), no authorization id, iterations of at least 4096.
//!
//! Two round trips:
//!
//! ```text
//! client-first   n,,n=<user>,r=<client nonce>
//! server-first   r=<client nonce + server nonce>,s=<salt>,i=<iterations>
//! client-final   c=biws,r=<nonce>,p=<client proof>
//! server-final   v=<server signature>        or   e=<error>
//! ```
//!
//! The server signature is checked: a server that does not know the password cannot compute
//! it, so a match proves that we talk to a broker that holds our credentials. The password is
//! used as given (no SASLprep), as the Java client and librdkafka do.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::{authentication_error, Secret, Step};
use crate::error::Error;

/// The fewest iterations accepted from a server: Kafka's own minimum for both hashes.
const MIN_ITERATIONS: u32 = 4096;
/// The most iterations accepted from a server (Kafka stores at most 16384), so that a hostile
/// server cannot make us hash for minutes.
const MAX_ITERATIONS: u32 = 100_000;

/// Which hash the mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC takes keys of any length.
            let mut mac =
                <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramHash::Sha256 => run::<Hmac<Sha256>>(key, parts),
            ScramHash::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// PBKDF2 with HMAC of this hash, one block: the output is as long as the hash.
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
            ScramHash::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec(),
        }
    }
}

/// The client's side of one SCRAM exchange.
pub(super) struct Scram {
    hash: ScramHash,
    password: Secret,
    client_nonce: String,
    client_first_bare: String,
    state: State,
}

enum State {
    /// client-first sent; waiting for server-first.
    SentFirst,
    /// client-final sent; waiting for server-final, which must carry this signature.
    SentFinal {
        server_signature: Vec<u8>,
    },
    Done,
}

impl Scram {
    /// A fresh exchange with a random nonce.
    pub(super) fn new(hash: ScramHash, username: &str, password: &Secret) -> Result<Scram, Error> {
        let mut random = [0u8; 24];
        getrandom::fill(&mut random)
            .map_err(|e| authentication_error(None, format!("no random nonce for SCRAM: {e}")))?;
        Ok(Scram::with_nonce(hash, username, password, BASE64.encode(random)))
    }

    /// An exchange with a given nonce (printable, without commas): for the RFC's test vectors.
    fn with_nonce(hash: ScramHash, username: &str, password: &Secret, client_nonce: String) -> Scram {
        let client_first_bare = format!("n={},r={client_nonce}", escape_name(username));
        Scram { hash, password: password.clone(), client_nonce, client_first_bare, state: State::SentFirst }
    }

    /// The first message: the GS2 header (no channel binding, no authorization id) and the
    /// bare part.
    pub(super) fn initial_response(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Takes the server's message and says what to send next.
    pub(super) fn step(&mut self, server: &[u8]) -> Result<Step, Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::SentFirst => {
                let (reply, server_signature) = self.client_final(server)?;
                self.state = State::SentFinal { server_signature };
                Ok(Step::Respond(reply))
            }
            State::SentFinal { server_signature } => {
                verify_server_final(server, &server_signature)?;
                Ok(Step::Done)
            }
            State::Done => {
                Err(authentication_error(None, "SCRAM: the server sent more after the last message"))
            }
        }
    }

    /// Builds client-final from server-first; returns it and the server signature to expect.
    fn client_final(&self, server_first: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let bad =
            |why: &str| authentication_error(None, format!("SCRAM: invalid server-first message: {why}"));
        let text = std::str::from_utf8(server_first).map_err(|_| bad("not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("m", _)) => return Err(bad("it requires an extension this client does not know")),
                Some(("e", v)) => {
                    return Err(authentication_error(None, format!("SCRAM: the server refused: {v}")))
                }
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| bad("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(bad("its nonce does not extend ours"));
        }
        let salt =
            BASE64.decode(salt.ok_or_else(|| bad("no salt"))?).map_err(|_| bad("the salt is not base64"))?;
        let iterations: u32 = iterations
            .ok_or_else(|| bad("no iteration count"))?
            .parse()
            .map_err(|_| bad("the iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(bad(&format!(
                "{iterations} iterations, outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }

        let h = self.hash;
        let salted = h.salted_password(self.password.expose().as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, &[b"Client Key"]);
        let stored_key = h.hash(&client_key);
        // c=biws is base64("n,,"): the GS2 header we sent.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message: [&[u8]; 5] =
            [self.client_first_bare.as_bytes(), b",", server_first, b",", without_proof.as_bytes()];
        let client_signature = h.hmac(&stored_key, &auth_message);
        let proof: Vec<u8> = client_key.iter().zip(&client_signature).map(|(k, s)| k ^ s).collect();
        let server_key = h.hmac(&salted, &[b"Server Key"]);
        let server_signature = h.hmac(&server_key, &auth_message);
        let reply = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((reply.into_bytes(), server_signature))
    }
}

fn verify_server_final(server_final: &[u8], expected: &[u8]) -> Result<(), Error> {
    let text = String::from_utf8_lossy(server_final);
    let first = text.split(',').next().unwrap_or("");
    if let Some(error) = first.strip_prefix("e=") {
        return Err(authentication_error(None, format!("SCRAM: the server refused: {error}")));
    }
    let Some(signature) = first.strip_prefix("v=") else {
        return Err(authentication_error(None, "SCRAM: the server-final message has no signature"));
    };
    match BASE64.decode(signature) {
        Ok(sig) if sig == expected => Ok(()),
        _ => Err(authentication_error(
            None,
            "SCRAM: the server's signature is wrong: the broker does not know this user's credentials",
        )),
    }
}

/// RFC 5802's `saslname`: `=` and `,` escaped.
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// RFC 7677, section 3.
    #[test]
    fn rfc7677_sha256_vector() {
        let mut scram = Scram::with_nonce(
            ScramHash::Sha256,
            "user",
            &Secret::new("pencil"),
            "rOprNGfwEbeRWgbNEkqO".to_owned(),
        );
        assert_eq!(scram.initial_response(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let Step::Respond(client_final) = scram.step(server_first).unwrap() else { panic!("a reply") };
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let done = scram.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(matches!(done, Step::Done));
    }

    /// Plays the server's side with the same formulas, for SHA-512 (which has no RFC vector):
    /// the proof must verify against the stored key, as a broker checks it.
    #[test]
    fn sha512_proof_verifies_as_a_server_checks_it() {
        let h = ScramHash::Sha512;
        let mut scram = Scram::new(h, "a,b=c", &Secret::new("secret")).unwrap();
        let first = String::from_utf8(scram.initial_response()).unwrap();
        assert!(first.starts_with("n,,n=a=2Cb=3Dc,r="), "{first}");
        let bare = &first[3..];
        let client_nonce = bare.split(",r=").nth(1).unwrap();
        let salt = b"0123456789abcdef";
        let server_first = format!("r={client_nonce}XYZ,s={},i=4096", BASE64.encode(salt));
        let Step::Respond(client_final) = scram.step(server_first.as_bytes()).unwrap() else {
            panic!("a reply")
        };
        let client_final = String::from_utf8(client_final).unwrap();
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let auth = format!("{bare},{server_first},{without_proof}");
        let salted = h.salted_password(b"secret", salt, 4096);
        let stored_key = h.hash(&h.hmac(&salted, &[b"Client Key"]));
        let signature = h.hmac(&stored_key, &[auth.as_bytes()]);
        let client_key: Vec<u8> =
            BASE64.decode(proof).unwrap().iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        assert_eq!(h.hash(&client_key), stored_key, "the proof does not verify");
        let server_sig = h.hmac(&h.hmac(&salted, &[b"Server Key"]), &[auth.as_bytes()]);
        let done = scram.step(format!("v={}", BASE64.encode(&server_sig)).as_bytes()).unwrap();
        assert!(matches!(done, Step::Done));
    }

    fn after_first(server_first: &str) -> Result<Step, Error> {
        let mut scram = Scram::with_nonce(ScramHash::Sha256, "u", &Secret::new("p"), "abc".to_owned());
        scram.step(server_first.as_bytes())
    }

    #[test]
    fn bad_server_messages_are_authentication_errors() {
        for (server_first, why) in [
            ("r=xyz,s=AAAA,i=4096", "nonce"),
            ("r=abc,s=AAAA,i=4096", "nonce"),
            ("r=abcd,s=!!,i=4096", "base64"),
            ("r=abcd,s=AAAA,i=100", "iterations"),
            ("r=abcd,s=AAAA,i=999999999", "iterations"),
            ("r=abcd,s=AAAA", "iteration count"),
            ("m=x,r=abcd,s=AAAA,i=4096", "extension"),
            ("e=unknown-user", "unknown-user"),
        ] {
            let Err(e) = after_first(server_first) else { panic!("{server_first} accepted") };
            assert_eq!(e.kind(), &ErrorKind::Authentication, "{server_first}");
            assert!(e.to_string().contains(why), "{server_first}: {e}");
        }
        assert!(after_first("\u{0}\u{ff}").is_err());
    }

    #[test]
    fn a_wrong_server_signature_or_an_error_fails() {
        let mut scram = Scram::with_nonce(ScramHash::Sha256, "u", &Secret::new("p"), "abc".to_owned());
        scram.step(b"r=abcd,s=AAAA,i=4096").unwrap();
        let e = scram.step(b"v=AAAA").unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        let mut scram = Scram::with_nonce(ScramHash::Sha256, "u", &Secret::new("p"), "abc".to_owned());
        scram.step(b"r=abcd,s=AAAA,i=4096").unwrap();
        let e = scram.step(b"e=invalid-proof").unwrap_err();
        assert!(e.to_string().contains("invalid-proof"), "{e}");
    }

    proptest::proptest! {
        /// Whatever a server sends, in either round, the client answers or fails; it never
        /// panics.
        #[test]
        fn any_server_message_is_handled(
            first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            nonce_tail in "[a-zA-Z0-9%$)]{0,12}",
            salt in "[A-Za-z0-9+/=!]{0,12}",
            iterations in "(4096|[0-9]{1,7}|x)",
            last in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        ) {
            let mut scram = Scram::with_nonce(ScramHash::Sha256, "u", &Secret::new("p"), "abc".to_owned());
            let _ = scram.step(&first);
            let mut scram = Scram::with_nonce(ScramHash::Sha512, "u", &Secret::new("p"), "abc".to_owned());
            let structured = format!("r=abc{nonce_tail},s={salt},i={iterations}");
            if scram.step(structured.as_bytes()).is_ok() {
                let _ = scram.step(&last);
                proptest::prop_assert!(scram.step(b"v=").is_err(), "nothing after the last message");
            }
        }
    }
}
