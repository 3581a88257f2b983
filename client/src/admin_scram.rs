//! SCRAM credentials through [`Admin`] (KIP-554): AlterUserScramCredentials creates, changes
//! and deletes them, DescribeUserScramCredentials lists which mechanisms each user has.
//!
//! The password never travels: the admin salts it (32 random bytes) and sends the PBKDF2 result,
//! which is what the broker stores. Both requests go to any broker, which forwards them to the
//! controller in KRaft.

use std::time::Instant;

use bytes::Bytes;
use klamm_protocol::api::alter_user_scram_credentials::{
    AlterUserScramCredentialsRequest, ScramCredentialDeletion, ScramCredentialUpsertion,
};
use klamm_protocol::api::describe_user_scram_credentials::{DescribeUserScramCredentialsRequest, UserName};
use tracing::Instrument;

use crate::admin::{broker_error, missing, user_error, Admin};
use crate::error::Error;
use crate::sasl::scram::ScramHash;
use crate::sasl::{SaslMechanism, Secret};

/// The iteration count [`ScramCredentialChange::upsert`] uses: Kafka's minimum, and the Java
/// admin's default.
pub const DEFAULT_SCRAM_ITERATIONS: i32 = 4096;

/// One change to a user's SCRAM credentials.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ScramCredentialChange {
    /// Create or replace the user's credential for the mechanism.
    Upsert {
        /// The user name.
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        mechanism: SaslMechanism,
        /// PBKDF2 iterations (Kafka takes 4096 to 16384).
        iterations: i32,
        /// The password.
        password: Secret,
    },
    /// Remove the user's credential for the mechanism.
    Delete {
        /// The user name.
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        mechanism: SaslMechanism,
    },
}

impl ScramCredentialChange {
    /// Creates or replaces `user`'s credential for `mechanism`, with
    /// [`DEFAULT_SCRAM_ITERATIONS`].
    pub fn upsert(user: impl Into<String>, mechanism: SaslMechanism, password: impl Into<Secret>) -> Self {
        ScramCredentialChange::Upsert {
            user: user.into(),
            mechanism,
            iterations: DEFAULT_SCRAM_ITERATIONS,
            password: password.into(),
        }
    }

    /// Removes `user`'s credential for `mechanism`.
    pub fn delete(user: impl Into<String>, mechanism: SaslMechanism) -> Self {
        ScramCredentialChange::Delete { user: user.into(), mechanism }
    }

    fn user(&self) -> &str {
        match self {
            ScramCredentialChange::Upsert { user, .. } | ScramCredentialChange::Delete { user, .. } => user,
        }
    }
}

/// A SCRAM credential a user has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScramCredentialInfo {
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: SaslMechanism,
    /// Its iteration count.
    pub iterations: i32,
}

/// Kafka's number for a SCRAM mechanism.
fn mechanism_code(mechanism: SaslMechanism) -> Result<(i8, ScramHash), Error> {
    match mechanism {
        SaslMechanism::ScramSha256 => Ok((1, ScramHash::Sha256)),
        SaslMechanism::ScramSha512 => Ok((2, ScramHash::Sha512)),
        other => Err(user_error(&format!("{other} is not a SCRAM mechanism"))),
    }
}

impl Admin {
    /// Applies `changes` to users' SCRAM credentials. Returns one result per user, in the order
    /// the users first appear; a user's changes succeed or fail together.
    ///
    /// ```no_run
    /// use klamm::{Admin, ClientConfig, SaslMechanism, ScramCredentialChange};
    ///
    /// # async fn example() -> Result<(), klamm::Error> {
    /// let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let changes = [
    ///     ScramCredentialChange::upsert("alice", SaslMechanism::ScramSha512, "alice-secret"),
    ///     ScramCredentialChange::delete("bob", SaslMechanism::ScramSha256),
    /// ];
    /// for (user, result) in admin.alter_user_scram_credentials(&changes).await {
    ///     result?;
    ///     println!("{user}: done");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn alter_user_scram_credentials(
        &self,
        changes: &[ScramCredentialChange],
    ) -> Vec<(String, Result<(), Error>)> {
        let mut users: Vec<String> = Vec::new();
        for change in changes {
            if !users.iter().any(|u| u == change.user()) {
                users.push(change.user().to_owned());
            }
        }
        let request = match alter_request(changes) {
            Ok(request) => request,
            Err(e) => return users.into_iter().map(|u| (u, Err(e.clone()))).collect(),
        };
        let span = tracing::debug_span!("klamm.admin.alter_user_scram_credentials", users = users.len());
        let deadline = Instant::now() + self.timeout;
        let response = self.retrying(deadline, || self.client.send_any(&request)).instrument(span).await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return users.into_iter().map(|u| (u, Err(e.clone()))).collect(),
        };
        users
            .into_iter()
            .map(|user| {
                let what = format!("user {user:?}");
                let result = match response.results.iter().find(|r| r.user == user) {
                    Some(r) => broker_error(r.error_code, &what, r.error_message.clone()).map_or(Ok(()), Err),
                    None => Err(missing(&what)),
                };
                (user, result)
            })
            .collect()
    }

    /// The SCRAM credentials of `users` (every user with one when `users` is empty): one result
    /// per user, in the order asked. A user without credentials gets RESOURCE_NOT_FOUND.
    pub async fn describe_user_scram_credentials(
        &self,
        users: &[&str],
    ) -> Result<Vec<(String, Result<Vec<ScramCredentialInfo>, Error>)>, Error> {
        let request = DescribeUserScramCredentialsRequest {
            users: (!users.is_empty()).then(|| {
                users.iter().map(|u| UserName { name: (*u).to_owned(), ..Default::default() }).collect()
            }),
            ..Default::default()
        };
        let span = tracing::debug_span!("klamm.admin.describe_user_scram_credentials");
        let deadline = Instant::now() + self.timeout;
        let response = self.retrying(deadline, || self.client.send_any(&request)).instrument(span).await?;
        if let Some(e) = broker_error(response.error_code, "the request", response.error_message) {
            return Err(e);
        }
        let mut out: Vec<(String, Result<Vec<ScramCredentialInfo>, Error>)> = response
            .results
            .into_iter()
            .map(|r| {
                let what = format!("user {:?}", r.user);
                let result = match broker_error(r.error_code, &what, r.error_message) {
                    Some(e) => Err(e),
                    None => Ok(r
                        .credential_infos
                        .iter()
                        .filter_map(|c| {
                            let mechanism = match c.mechanism {
                                1 => SaslMechanism::ScramSha256,
                                2 => SaslMechanism::ScramSha512,
                                _ => return None,
                            };
                            Some(ScramCredentialInfo { mechanism, iterations: c.iterations })
                        })
                        .collect()),
                };
                (r.user, result)
            })
            .collect();
        if !users.is_empty() {
            out.sort_by_key(|(u, _)| users.iter().position(|asked| asked == u).unwrap_or(usize::MAX));
        }
        Ok(out)
    }
}

/// The request for `changes`, each password salted and hashed here.
fn alter_request(changes: &[ScramCredentialChange]) -> Result<AlterUserScramCredentialsRequest, Error> {
    let mut request = AlterUserScramCredentialsRequest::default();
    for change in changes {
        match change {
            ScramCredentialChange::Upsert { user, mechanism, iterations, password } => {
                let (code, hash) = mechanism_code(*mechanism)?;
                let rounds = u32::try_from(*iterations)
                    .ok()
                    .filter(|i| *i > 0)
                    .ok_or_else(|| user_error("the SCRAM iteration count must be above zero"))?;
                let mut salt = [0u8; 32];
                getrandom::fill(&mut salt).map_err(|e| user_error(&format!("no random salt: {e}")))?;
                let salted = hash.salted_password(password.expose().as_bytes(), &salt, rounds);
                request.upsertions.push(ScramCredentialUpsertion {
                    name: user.clone(),
                    mechanism: code,
                    iterations: *iterations,
                    salt: Bytes::copy_from_slice(&salt),
                    salted_password: salted.into(),
                    ..Default::default()
                });
            }
            ScramCredentialChange::Delete { user, mechanism } => {
                let (code, _) = mechanism_code(*mechanism)?;
                request.deletions.push(ScramCredentialDeletion {
                    name: user.clone(),
                    mechanism: code,
                    ..Default::default()
                });
            }
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_salted_and_never_sent() {
        let request = alter_request(&[
            ScramCredentialChange::upsert("a", SaslMechanism::ScramSha512, "pw"),
            ScramCredentialChange::upsert("a", SaslMechanism::ScramSha256, "pw"),
            ScramCredentialChange::delete("b", SaslMechanism::ScramSha256),
        ])
        .unwrap();
        let [sha512, sha256] = &request.upsertions[..] else { panic!("two upsertions") };
        assert_eq!((sha512.mechanism, sha512.salted_password.len()), (2, 64));
        assert_eq!((sha256.mechanism, sha256.salted_password.len()), (1, 32));
        assert_ne!(sha512.salt, sha256.salt, "each credential gets its own salt");
        assert_eq!(
            &sha256.salted_password[..],
            &ScramHash::Sha256.salted_password(b"pw", &sha256.salt, 4096)[..]
        );
        assert_eq!(request.deletions[0].mechanism, 1);
        let e = alter_request(&[ScramCredentialChange::upsert("a", SaslMechanism::Plain, "pw")]).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("PLAIN"), "{e}");
        assert!(!format!("{:?}", ScramCredentialChange::upsert("a", SaslMechanism::ScramSha256, "pw1x"))
            .contains("pw1x"));
    }
}
