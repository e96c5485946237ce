//! Web Push: the browser's `PushSubscription` as clients register it, the deployment's VAPID
//! public key as clients read it, the payload a service worker receives, and the focus report
//! (`session:focus`) that keeps pushes away from users who are looking at a tab.

use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;
use crate::ids::Snowflake;

/// Longest subscription endpoint URL accepted, in bytes (browsers' are ~200–500).
pub const MAX_ENDPOINT_LEN: usize = 2048;
/// Length of a P-256 public key in uncompressed SEC1 form (`0x04 ‖ x ‖ y`).
pub const P256DH_LEN: usize = 65;
/// Length of a subscription's authentication secret (RFC 8291 §3.2).
pub const AUTH_LEN: usize = 16;

/// `POST /api/v1/push/subscriptions`: `PushSubscription.toJSON()` as the browser makes it
/// (`expirationTime` and unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct PushSubscriptionBody {
    /// The push service's URL for this device.
    pub endpoint: String,
    /// The device's keys.
    pub keys: PushKeysBody,
}

/// `keys` of a [`PushSubscriptionBody`], base64url as the browser writes them.
#[derive(Debug, Clone, Deserialize)]
pub struct PushKeysBody {
    /// The device's P-256 public key (65 bytes, uncompressed).
    pub p256dh: String,
    /// The authentication secret (16 bytes).
    pub auth: String,
}

/// A subscription that passed [`PushSubscriptionBody::parse`]: an `https` endpoint of
/// reasonable length and keys of the right lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// The endpoint URL (`https://…`).
    pub endpoint: String,
    /// The device's public key, 65 bytes.
    pub p256dh: Vec<u8>,
    /// The authentication secret, 16 bytes.
    pub auth: Vec<u8>,
}

impl PushSubscriptionBody {
    /// Checks the endpoint and decodes the keys; each failure names its field
    /// (`VALIDATION_ERROR`).
    pub fn parse(self) -> Result<PushSubscription, ErrorBody> {
        let endpoint = self.endpoint;
        if endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(ErrorBody::field(
                "endpoint",
                format!("endpoint must be at most {MAX_ENDPOINT_LEN} bytes"),
            ));
        }
        let host = endpoint
            .strip_prefix("https://")
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
        match host {
            Some(host)
                if !host.is_empty()
                    && !host.contains('@')
                    && host.bytes().all(|b| b.is_ascii_graphic()) => {}
            _ => {
                return Err(ErrorBody::field(
                    "endpoint",
                    "endpoint must be an https:// URL with a host",
                ));
            }
        }
        let p256dh = decode_base64url(&self.keys.p256dh)
            .filter(|k| k.len() == P256DH_LEN && k[0] == 4)
            .ok_or_else(|| {
                ErrorBody::field(
                    "keys.p256dh",
                    "keys.p256dh must be an uncompressed P-256 public key (65 bytes) in base64url",
                )
            })?;
        let auth = decode_base64url(&self.keys.auth)
            .filter(|k| k.len() == AUTH_LEN)
            .ok_or_else(|| {
                ErrorBody::field("keys.auth", "keys.auth must be 16 bytes in base64url")
            })?;
        Ok(PushSubscription {
            endpoint,
            p256dh,
            auth,
        })
    }
}

/// `DELETE /api/v1/push/subscriptions`: which device to forget.
#[derive(Debug, Clone, Deserialize)]
pub struct PushUnsubscribe {
    /// The endpoint it was registered with.
    pub endpoint: String,
}

/// `GET /api/v1/push/vapid-public-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VapidPublicKey {
    /// The deployment's P-256 public key, uncompressed, base64url without padding: the
    /// `applicationServerKey` of `pushManager.subscribe`.
    pub public_key: String,
}

/// What a push is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "lowercase")]
pub enum PushKind {
    /// The user was mentioned by name.
    Mention,
    /// A message in a direct conversation.
    Dm,
    /// An incoming call.
    Call,
}

/// The JSON a service worker decrypts from a push: enough to show a notification and open
/// the room on click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "camelCase")]
pub struct PushPayload {
    /// Mention, direct message or call.
    pub kind: PushKind,
    /// The room (the conversation of a DM or call).
    pub room_id: Snowflake,
    /// The message, for mentions and direct messages.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<Snowflake>,
    /// The notification's title (who, where).
    pub title: String,
    /// Its text (the start of the message).
    pub body: String,
    /// The client path that opens the room (`/#/rooms/<id>`).
    pub url: String,
}

/// `session:focus`: whether this session's tab is focused and visible. A user with a
/// focused session gets no push (they see the event in that tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFocus {
    /// Focused and visible now.
    pub focused: bool,
}

/// Decodes base64url, padded or not (browsers write it unpadded).
pub fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Encodes base64url without padding.
pub fn encode_base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(endpoint: &str, p256dh: &[u8], auth: &[u8]) -> PushSubscriptionBody {
        PushSubscriptionBody {
            endpoint: endpoint.into(),
            keys: PushKeysBody {
                p256dh: encode_base64url(p256dh),
                auth: encode_base64url(auth),
            },
        }
    }

    fn field(e: ErrorBody) -> String {
        e.details
            .and_then(|d| d["field"].as_str().map(String::from))
            .unwrap_or_default()
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = encode_base64url(&bytes);
            assert!(!text.contains('='));
            assert_eq!(decode_base64url(&text), Some(bytes.clone()));
        }
        assert_eq!(decode_base64url("AAAA=="), Some(vec![0, 0, 0]));
        assert_eq!(decode_base64url("A"), None);
        assert_eq!(
            decode_base64url("ab+/"),
            None,
            "standard alphabet is refused"
        );
    }

    #[test]
    fn subscriptions_are_checked_field_by_field() {
        let mut key = vec![4u8; 65];
        key[1] = 9;
        let ok = body("https://push.example/send/abc", &key, &[1; 16]).parse();
        assert_eq!(ok.map(|s| s.p256dh.len()), Ok(65));
        for endpoint in [
            "http://push.example/x",
            "https://",
            "https:///x",
            "ftp://a",
            "https://u@h/",
        ] {
            let e = body(endpoint, &key, &[1; 16]).parse().expect_err("refused");
            assert_eq!(field(e), "endpoint", "{endpoint}");
        }
        let long = format!("https://h/{}", "a".repeat(MAX_ENDPOINT_LEN));
        assert_eq!(
            field(body(&long, &key, &[1; 16]).parse().expect_err("refused")),
            "endpoint"
        );
        let e = body("https://h/", &key[..64], &[1; 16])
            .parse()
            .expect_err("refused");
        assert_eq!(field(e), "keys.p256dh");
        let e = body("https://h/", &[3; 65], &[1; 16])
            .parse()
            .expect_err("refused");
        assert_eq!(
            field(e),
            "keys.p256dh",
            "compressed or garbage points are refused"
        );
        let e = body("https://h/", &key, &[1; 15])
            .parse()
            .expect_err("refused");
        assert_eq!(field(e), "keys.auth");
    }
}
