//! The per-leg fast path's SRTP: each subscriber connection's outgoing (local) SRTP keys, held
//! by the loop itself so a forwarded packet is written into a reused buffer, encrypted in place
//! and sent, without `rtc`'s `write_rtp` (a header check, a trip through the interceptor chain
//! and five handlers with the packet moved between queues, a marshal and a fresh buffer per
//! leg: the profile showed that path at ~45% of the loop's CPU).
//!
//! `rtc` keeps its SRTP contexts private, but builds them with the crypto provider we give
//! each connection: [`KeyTap`] wraps the default provider and notes the master key and salt of
//! the first SRTP context the connection derives (the local one: `rtc` always builds it before
//! the remote one), from the RFC 3711 key-derivation PRF's first block (label 0, index 0:
//! the master salt itself) and which cipher the context then asks for. Only the two profiles
//! that can be told apart that way are offered (AES-128-GCM and AES-CM-128/HMAC-SHA1-80, the
//! latter mandatory for every WebRTC endpoint); anything else leaves the tap empty and the leg
//! on `rtc`'s own path.

use std::sync::Arc;

use parking_lot::Mutex;
use rtc::crypto::{
    ActiveKeyExchange, AeadAlgorithm, AeadCipher, BlockCipherAlgorithm, CbcAlgorithm, CbcCipher,
    CryptoAlgorithm, CryptoError, HashAlgorithm, HmacAlgorithm, KeyExchangeAlgorithm, Mac,
    PublicKey, RTCCrypto, RTCCryptoProvider, RTCRandom, SignatureScheme, SigningKey, StreamCipher,
    StreamCipherAlgorithm,
};

/// The SRTP profiles the fast path handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// AES-CM-128 with an 80-bit HMAC-SHA1 tag (RFC 3711).
    CmSha1_80,
    /// AEAD AES-128-GCM (RFC 7714).
    Gcm128,
}

impl Profile {
    fn salt_len(self) -> usize {
        match self {
            Profile::CmSha1_80 => 14,
            Profile::Gcm128 => 12,
        }
    }
}

/// A connection's local SRTP master key and salt, as tapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrtpKeys {
    pub(crate) profile: Profile,
    pub(crate) key: [u8; 16],
    pub(crate) salt: Vec<u8>,
}

#[derive(Default)]
struct Tapped {
    /// The first AES-128 PRF call: its key and input block.
    first: Option<([u8; 16], [u8; 16])>,
    keys: Option<SrtpKeys>,
    /// The first PRF call under another key once the local keys are known: the remote
    /// context's.
    second: Option<([u8; 16], [u8; 16])>,
    remote: Option<SrtpKeys>,
}

/// A crypto provider that is the default one, plus a note of the local SRTP keys.
pub(crate) struct KeyTap {
    inner: Arc<dyn RTCCryptoProvider>,
    tapped: Mutex<Tapped>,
}

impl KeyTap {
    pub(crate) fn new() -> Result<Arc<KeyTap>, CryptoError> {
        Ok(Arc::new(KeyTap {
            inner: rtc::crypto::default_provider()?,
            tapped: Mutex::new(Tapped::default()),
        }))
    }

    /// The connection's local SRTP keys, once its DTLS handshake derived them.
    pub(crate) fn keys(&self) -> Option<SrtpKeys> {
        self.tapped.lock().keys.clone()
    }

    /// The crypto the fast path encrypts with.
    pub(crate) fn inner(&self) -> &dyn RTCCrypto {
        self.inner.crypto()
    }

    /// The connection's remote SRTP keys (what its client encrypts with).
    pub(crate) fn remote_keys(&self) -> Option<SrtpKeys> {
        self.tapped.lock().remote.clone()
    }

    /// A context asked for its cipher: the PRF call before it was its key's.
    fn cipher_of(&self, profile: Profile) {
        let mut t = self.tapped.lock();
        let keys = |(key, block): ([u8; 16], [u8; 16])| SrtpKeys {
            profile,
            key,
            salt: block[..profile.salt_len()].to_vec(),
        };
        if t.keys.is_none() {
            t.keys = t.first.map(keys);
        } else if t.remote.is_none() {
            t.remote = t.second.map(keys);
        }
    }
}

impl RTCCryptoProvider for KeyTap {
    fn name(&self) -> &'static str {
        "voiceflow-key-tap"
    }

    fn crypto(&self) -> &dyn RTCCrypto {
        self
    }

    fn random(&self) -> &dyn RTCRandom {
        self.inner.random()
    }
}

impl RTCCrypto for KeyTap {
    fn supports(&self, algorithm: CryptoAlgorithm) -> bool {
        self.inner.crypto().supports(algorithm)
    }

    fn hash(&self, algorithm: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.inner.crypto().hash(algorithm, data)
    }

    fn block_encrypt(
        &self,
        algorithm: BlockCipherAlgorithm,
        key: &[u8],
        block: &mut [u8],
    ) -> Result<(), CryptoError> {
        // Only SRTP's key derivation uses single-block AES (DTLS records use AEAD/CBC).
        if algorithm == BlockCipherAlgorithm::Aes128 {
            let mut t = self.tapped.lock();
            if let (Ok(k), Ok(b)) = (<[u8; 16]>::try_from(key), <[u8; 16]>::try_from(&*block)) {
                if t.first.is_none() {
                    t.first = Some((k, b));
                } else if t.second.is_none() && t.keys.as_ref().is_some_and(|l| l.key != k) {
                    t.second = Some((k, b));
                }
            }
        }
        self.inner.crypto().block_encrypt(algorithm, key, block)
    }

    fn new_hmac(&self, algorithm: HmacAlgorithm, key: &[u8]) -> Result<Box<dyn Mac>, CryptoError> {
        self.inner.crypto().new_hmac(algorithm, key)
    }

    fn new_stream_cipher(
        &self,
        algorithm: StreamCipherAlgorithm,
        key: &[u8],
    ) -> Result<Box<dyn StreamCipher>, CryptoError> {
        if algorithm == StreamCipherAlgorithm::Aes128Ctr {
            self.cipher_of(Profile::CmSha1_80);
        }
        self.inner.crypto().new_stream_cipher(algorithm, key)
    }

    fn new_aead(
        &self,
        algorithm: AeadAlgorithm,
        key: &[u8],
    ) -> Result<Box<dyn AeadCipher>, CryptoError> {
        // DTLS's own record ciphers come before any PRF call and so are not mistaken for SRTP's.
        if algorithm == AeadAlgorithm::Aes128Gcm {
            self.cipher_of(Profile::Gcm128);
        }
        self.inner.crypto().new_aead(algorithm, key)
    }

    fn new_cbc(
        &self,
        algorithm: CbcAlgorithm,
        key: &[u8],
    ) -> Result<Box<dyn CbcCipher>, CryptoError> {
        self.inner.crypto().new_cbc(algorithm, key)
    }

    fn start_key_exchange(
        &self,
        algorithm: KeyExchangeAlgorithm,
    ) -> Result<Box<dyn ActiveKeyExchange>, CryptoError> {
        self.inner.crypto().start_key_exchange(algorithm)
    }

    fn generate_signing_key(
        &self,
        scheme: SignatureScheme,
    ) -> Result<Arc<dyn SigningKey>, CryptoError> {
        self.inner.crypto().generate_signing_key(scheme)
    }

    fn import_signing_key(
        &self,
        scheme: SignatureScheme,
        pkcs8_der: &[u8],
    ) -> Result<Arc<dyn SigningKey>, CryptoError> {
        self.inner.crypto().import_signing_key(scheme, pkcs8_der)
    }

    fn verify_signature(
        &self,
        scheme: SignatureScheme,
        public_key: PublicKey<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        self.inner
            .crypto()
            .verify_signature(scheme, public_key, message, signature)
    }
}

/// RFC 3711 §4.3.1 key derivation (AES-128 PRF, key derivation rate 0).
fn kdf(
    crypto: &dyn RTCCrypto,
    label: u8,
    key: &[u8; 16],
    salt: &[u8],
    out_len: usize,
) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::with_capacity(out_len.div_ceil(16) * 16);
    for i in 0..out_len.div_ceil(16) {
        let mut block = [0u8; 16];
        block[..salt.len()].copy_from_slice(salt);
        block[7] ^= label;
        block[14..].copy_from_slice(&(i as u16).to_be_bytes());
        crypto.block_encrypt(BlockCipherAlgorithm::Aes128, key, &mut block)?;
        out.extend_from_slice(&block);
    }
    out.truncate(out_len);
    Ok(out)
}

/// One direction of a connection's SRTP, for packets the loop writes or reads itself.
pub(crate) enum Srtp {
    Cm {
        cipher: Box<dyn StreamCipher>,
        mac: Box<dyn Mac>,
        salt: [u8; 14],
    },
    Gcm {
        cipher: Box<dyn AeadCipher>,
        salt: [u8; 12],
    },
}

impl Srtp {
    pub(crate) fn new(keys: &SrtpKeys, crypto: &dyn RTCCrypto) -> Result<Srtp, CryptoError> {
        let session = |label, len| kdf(crypto, label, &keys.key, &keys.salt, len);
        let bad = |_| CryptoError::Provider("SRTP session salt length".to_owned());
        Ok(match keys.profile {
            Profile::CmSha1_80 => Srtp::Cm {
                cipher: crypto
                    .new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, &session(0, 16)?)?,
                mac: crypto.new_hmac(HmacAlgorithm::Sha1, &session(1, 20)?)?,
                salt: session(2, 14)?.try_into().map_err(bad)?,
            },
            Profile::Gcm128 => Srtp::Gcm {
                cipher: crypto.new_aead(AeadAlgorithm::Aes128Gcm, &session(0, 16)?)?,
                salt: session(2, 12)?.try_into().map_err(bad)?,
            },
        })
    }

    /// Authenticates and decrypts in place the SRTP packet in `buf` (a `header_len`-byte
    /// header, the payload, the tag); where the payload ends.
    pub(crate) fn unprotect(
        &mut self,
        buf: &mut [u8],
        header_len: usize,
        ssrc: u32,
        seq: u16,
        roc: u32,
    ) -> Result<usize, CryptoError> {
        let n = buf.len();
        match self {
            Srtp::Cm { cipher, mac, salt } => {
                let end = n
                    .checked_sub(10)
                    .filter(|e| *e >= header_len)
                    .ok_or(CryptoError::AuthenticationFailed)?;
                let (body, tag) = buf.split_at_mut(end);
                let mut full = [0u8; 20];
                mac.sign(&[body, &roc.to_be_bytes()], &mut full)?;
                if !rtc::crypto::constant_time_eq(&full[..10], tag) {
                    return Err(CryptoError::AuthenticationFailed);
                }
                cipher.apply_keystream(&cm_iv(salt, ssrc, roc, seq), &mut body[header_len..])?;
                Ok(end)
            }
            Srtp::Gcm { cipher, salt } => {
                let end = n
                    .checked_sub(16)
                    .filter(|e| *e >= header_len)
                    .ok_or(CryptoError::AuthenticationFailed)?;
                let mut tag = [0u8; 16];
                tag.copy_from_slice(&buf[end..]);
                let (aad, payload) = buf[..end].split_at_mut(header_len);
                cipher.open_in_place(&gcm_iv(salt, ssrc, roc, seq), aad, payload, &tag)?;
                Ok(end)
            }
        }
    }

    /// Encrypts the RTP packet in `buf` (a `header_len`-byte header, then the payload) in
    /// place and appends its tag.
    pub(crate) fn protect(
        &mut self,
        buf: &mut Vec<u8>,
        header_len: usize,
        ssrc: u32,
        seq: u16,
        roc: u32,
    ) -> Result<(), CryptoError> {
        match self {
            Srtp::Cm { cipher, mac, salt } => {
                cipher.apply_keystream(&cm_iv(salt, ssrc, roc, seq), &mut buf[header_len..])?;
                let mut tag = [0u8; 20];
                mac.sign(&[buf, &roc.to_be_bytes()], &mut tag)?;
                buf.extend_from_slice(&tag[..10]);
            }
            Srtp::Gcm { cipher, salt } => {
                let mut tag = [0u8; 16];
                let (aad, payload) = buf.split_at_mut(header_len);
                cipher.seal_in_place(&gcm_iv(salt, ssrc, roc, seq), aad, payload, &mut tag)?;
                buf.extend_from_slice(&tag);
            }
        }
        Ok(())
    }
}

/// AES-CM's counter block (RFC 3711 §4.1.1).
fn cm_iv(salt: &[u8; 14], ssrc: u32, roc: u32, seq: u16) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&roc.to_be_bytes());
    iv[12..14].copy_from_slice(&seq.to_be_bytes());
    for (v, s) in iv.iter_mut().zip(salt.iter()) {
        *v ^= s;
    }
    iv
}

/// AES-GCM's nonce (RFC 7714 §8.1).
fn gcm_iv(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for (v, s) in iv.iter_mut().zip(salt.iter()) {
        *v ^= s;
    }
    iv
}

/// A leg's rollover counter (RFC 3711 §3.3.1): the packet index guessed from the sequence
/// number, as the receiver will guess it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rollover {
    /// Highest index sent so far; `None` before the first packet.
    highest: Option<u64>,
}

impl Rollover {
    /// The rollover counter to protect `seq` with.
    pub(crate) fn roc(&mut self, seq: u16) -> u32 {
        let Some(highest) = self.highest else {
            self.highest = Some(u64::from(seq));
            return 0;
        };
        let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
        let index = (highest as i64 + delta).max(0) as u64;
        if index > highest {
            self.highest = Some(index);
        }
        (index >> 16) as u32
    }
}

/// Writes an RTP header (with the one-byte audio-level extension if `level` names an id the
/// one-byte form can carry) into `buf`; its length.
pub(crate) fn write_header(
    buf: &mut Vec<u8>,
    marker: bool,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    level: Option<(u8, u8)>,
) -> usize {
    let level = level.filter(|(id, _)| (1..=14).contains(id));
    buf.clear();
    buf.push(if level.is_some() { 0x90 } else { 0x80 });
    buf.push(u8::from(marker) << 7 | (payload_type & 0x7f));
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&timestamp.to_be_bytes());
    buf.extend_from_slice(&ssrc.to_be_bytes());
    if let Some((id, value)) = level {
        // RFC 8285 one-byte form: 0xBEDE, one word; the element, then padding.
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, id << 4, value, 0, 0]);
    }
    buf.len()
}

#[cfg(test)]
#[path = "srtp_tests.rs"]
mod tests;
