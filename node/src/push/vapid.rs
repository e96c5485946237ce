//! The deployment's VAPID key pair (RFC 8292): loaded from storage, or created there by the
//! first node that needs it (a conditional insert: racing nodes all end up with the winner's),
//! and the `Authorization: vapid t=<JWT>, k=<key>` header it signs for each push service.

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use rand::RngCore;
use serde::Serialize;
use voiceflow_schema::{Store, VapidKeyRecord};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::push::encode_base64url;

/// How long a VAPID JWT is valid (RFC 8292 allows at most 24 h).
const JWT_LIFETIME_SECS: u64 = 12 * 3600;

/// The key pair, ready to sign.
pub struct Vapid {
    key: EncodingKey,
    /// The public key as clients and push services read it (base64url, uncompressed).
    pub public_key: String,
    contact: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

impl Vapid {
    /// The stored pair, or a new one stored now (if another node stored one first, that one).
    pub async fn load_or_create(store: &dyn Store, contact: &str) -> anyhow::Result<Vapid> {
        let record = match store.vapid_keys().await? {
            Some(record) => record,
            None => {
                let secret = generate();
                let record = VapidKeyRecord {
                    private_key: secret.to_bytes().to_vec(),
                    public_key: secret.public_key().to_sec1_bytes().to_vec(),
                    created_at: now_ms(),
                };
                store.create_vapid_keys(&record).await?
            }
        };
        Vapid::from_record(&record, contact)
    }

    /// Checks a stored pair and prepares it for signing.
    pub fn from_record(record: &VapidKeyRecord, contact: &str) -> anyhow::Result<Vapid> {
        let secret = p256::SecretKey::from_slice(&record.private_key)
            .context("the stored VAPID private key is not a P-256 scalar")?;
        let public = secret.public_key().to_sec1_bytes();
        anyhow::ensure!(
            *public == *record.public_key,
            "the stored VAPID public key does not match its private key"
        );
        let der = secret
            .to_pkcs8_der()
            .context("cannot encode the VAPID key")?;
        Ok(Vapid {
            key: EncodingKey::from_ec_der(der.as_bytes()),
            public_key: encode_base64url(&public),
            contact: contact.to_owned(),
        })
    }

    /// The `Authorization` header for a push to an endpoint of `origin` (the audience).
    pub fn authorization(&self, origin: &str) -> anyhow::Result<String> {
        let claims = Claims {
            aud: origin,
            exp: now_ms() / 1000 + JWT_LIFETIME_SECS,
            sub: &self.contact,
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)
            .context("cannot sign the VAPID JWT")?;
        Ok(format!("vapid t={jwt}, k={}", self.public_key))
    }
}

/// A random P-256 private key (a random 32-byte string is a valid scalar but with
/// negligible probability; those are drawn again).
fn generate() -> p256::SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
            return secret;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_round_trips_and_a_mismatched_one_is_refused() {
        let secret = generate();
        let mut record = VapidKeyRecord {
            private_key: secret.to_bytes().to_vec(),
            public_key: secret.public_key().to_sec1_bytes().to_vec(),
            created_at: 1,
        };
        let vapid = Vapid::from_record(&record, "mailto:a@b").expect("valid");
        assert_eq!(vapid.public_key.len(), 87, "65 bytes in base64url");
        let header = vapid
            .authorization("https://push.example:8443")
            .expect("sign");
        assert!(header.starts_with("vapid t=") && header.ends_with(&vapid.public_key));
        record.public_key = generate().public_key().to_sec1_bytes().to_vec();
        assert!(Vapid::from_record(&record, "mailto:a@b").is_err());
    }
}
