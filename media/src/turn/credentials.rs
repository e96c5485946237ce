//! Short-lived TURN credentials, the "TURN REST API" scheme
//! (draft-uberti-behave-turn-rest-00): the user name is `<expiry unix seconds>:<user id>` and the
//! password is `base64(HMAC-SHA1(secret, user name))`. The node that hands them out and the TURN
//! server that checks them only share the secret: nothing is stored per credential.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rtc::crypto::{HmacAlgorithm, RTCCryptoProvider};
use std::sync::Arc;

use crate::MediaError;

/// Why a TURN user name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not `<expiry>:<user id>`.
    Malformed,
    /// The expiry has passed.
    Expired,
    /// The password (MESSAGE-INTEGRITY) does not match.
    BadPassword,
}

impl Refusal {
    /// The `reason` label of `voiceflow_turn_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed_username",
            Refusal::Expired => "expired",
            Refusal::BadPassword => "bad_password",
        }
    }
}

/// A user name parsed and in date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnUser {
    /// Expiry, unix seconds.
    pub expires: u64,
    /// Whose credential it is.
    pub user_id: u64,
}

/// Issues and checks credentials with one secret.
#[derive(Clone)]
pub struct TurnSecret {
    secret: Vec<u8>,
    crypto: Arc<dyn RTCCryptoProvider>,
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret([REDACTED])")
    }
}

impl TurnSecret {
    /// A secret from its bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<TurnSecret, MediaError> {
        let crypto = rtc::crypto::default_provider().map_err(MediaError::turn)?;
        Ok(TurnSecret {
            secret: secret.into(),
            crypto,
        })
    }

    /// A secret derived from another one (the node's JWT secret), so that nodes sharing that
    /// share this too without a second setting: `HMAC-SHA1(parent, "voiceflow-turn-v1")`.
    pub fn derived_from(parent: &[u8]) -> Result<TurnSecret, MediaError> {
        let parent = TurnSecret::new(parent.to_vec())?;
        let derived = parent.mac(b"voiceflow-turn-v1")?;
        TurnSecret::new(derived.to_vec())
    }

    /// The crypto provider (MD5 of the long-term key, MESSAGE-INTEGRITY).
    pub fn crypto(&self) -> &Arc<dyn RTCCryptoProvider> {
        &self.crypto
    }

    fn mac(&self, data: &[u8]) -> Result<[u8; 20], MediaError> {
        let mut out = [0u8; 20];
        let mut mac = self
            .crypto
            .crypto()
            .new_hmac(HmacAlgorithm::Sha1, &self.secret)
            .map_err(MediaError::turn)?;
        mac.sign(&[data], &mut out).map_err(MediaError::turn)?;
        Ok(out)
    }

    /// The password of `username`.
    pub fn password(&self, username: &str) -> Result<String, MediaError> {
        Ok(STANDARD.encode(self.mac(username.as_bytes())?))
    }

    /// A user name and password for `user_id` valid until `expires` (unix seconds).
    pub fn issue(&self, user_id: u64, expires: u64) -> Result<(String, String), MediaError> {
        let username = format!("{expires}:{user_id}");
        let password = self.password(&username)?;
        Ok((username, password))
    }

    /// Parses `username` and checks it is still valid at `now_unix`; the password itself is
    /// checked through MESSAGE-INTEGRITY with the key from [`TurnSecret::password`].
    pub fn check_username(username: &str, now_unix: u64) -> Result<TurnUser, Refusal> {
        let (expires, user) = username.split_once(':').ok_or(Refusal::Malformed)?;
        let expires: u64 = expires.parse().map_err(|_| Refusal::Malformed)?;
        let user_id: u64 = user.parse().map_err(|_| Refusal::Malformed)?;
        if expires <= now_unix {
            return Err(Refusal::Expired);
        }
        Ok(TurnUser { expires, user_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_scheme() -> Result<(), MediaError> {
        let secret = TurnSecret::new(b"north-wind".to_vec())?;
        let (user, pass) = secret.issue(42, 1_700_000_000)?;
        assert_eq!(user, "1700000000:42");
        // HMAC-SHA1("north-wind", "1700000000:42"), base64: 20 bytes → 28 characters.
        assert_eq!(pass.len(), 28);
        assert_eq!(pass, secret.password(&user)?);
        let other = TurnSecret::new(b"south-wind".to_vec())?;
        assert_ne!(pass, other.password(&user)?);
        Ok(())
    }

    #[test]
    fn a_known_vector() -> Result<(), MediaError> {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        let secret = TurnSecret::new(b"Jefe".to_vec())?;
        let mac = secret.mac(b"what do ya want for nothing?")?;
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        Ok(())
    }

    #[test]
    fn usernames_are_parsed_and_dated() {
        assert_eq!(
            TurnSecret::check_username("200:7", 100),
            Ok(TurnUser {
                expires: 200,
                user_id: 7
            })
        );
        assert_eq!(
            TurnSecret::check_username("100:7", 100),
            Err(Refusal::Expired)
        );
        for bad in ["", "7", "x:7", "200:", "200:x", ":", "-1:7"] {
            assert_eq!(
                TurnSecret::check_username(bad, 100),
                Err(Refusal::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn derived_secrets_depend_on_the_parent() -> Result<(), MediaError> {
        let a = TurnSecret::derived_from(b"parent-one")?;
        let b = TurnSecret::derived_from(b"parent-two")?;
        let a2 = TurnSecret::derived_from(b"parent-one")?;
        assert_ne!(a.password("1:1")?, b.password("1:1")?);
        assert_eq!(a.password("1:1")?, a2.password("1:1")?);
        Ok(())
    }
}
