//! The fast path's SRTP against `rtc`'s own context: same keys in, same bytes out.

use super::*;
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;

const KEY: [u8; 16] = [7; 16];

fn reference(profile: Profile, salt: &[u8], tap: &KeyTap) -> Context {
    let p = match profile {
        Profile::CmSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Profile::Gcm128 => ProtectionProfile::AeadAes128Gcm,
    };
    Context::new(&KEY, salt, p, None, None, tap.crypto()).expect("context")
}

fn check(profile: Profile) {
    let salt: Vec<u8> = (1..=profile.salt_len() as u8).collect();
    // Built through the tap, as `rtc` builds a connection's local context.
    let tap = KeyTap::new().expect("provider");
    let mut theirs = reference(profile, &salt, &tap);
    let keys = tap.keys().expect("the tap saw the local keys");
    assert_eq!(
        keys,
        SrtpKeys {
            profile,
            key: KEY,
            salt: salt.clone()
        }
    );
    // A second (remote) context does not change what was tapped.
    let _remote = Context::new(
        &[9; 16],
        &salt,
        ProtectionProfile::AeadAes128Gcm,
        None,
        None,
        tap.crypto(),
    );
    assert_eq!(tap.keys(), Some(keys.clone()));

    let mut ours = Srtp::new(&keys, tap.inner()).expect("cipher");
    let mut roc = Rollover::default();
    let mut buf = Vec::new();
    // Through a sequence number wrap: the rollover counters must agree.
    for (i, seq) in [65_530u16, 65_533, 65_535, 0, 3, 2, 9]
        .into_iter()
        .enumerate()
    {
        let level = (i % 2 == 0).then_some((1, 0x85));
        let header_len = write_header(
            &mut buf,
            i == 0,
            111,
            seq,
            960 * i as u32,
            0xdead_beef,
            level,
        );
        buf.extend_from_slice(&[i as u8; 83]);
        let plain = buf.clone();
        ours.protect(&mut buf, header_len, 0xdead_beef, seq, roc.roc(seq))
            .expect("protect");
        let expected = theirs.encrypt_rtp(&plain).expect("reference");
        assert_eq!(&buf[..], &expected[..], "{profile:?} seq {seq}");
    }
}

#[test]
fn aes_cm_sha1_80_matches_rtc() {
    check(Profile::CmSha1_80);
}

#[test]
fn aes_gcm_matches_rtc() {
    check(Profile::Gcm128);
}

#[test]
fn the_header_parses_back_with_its_extension() {
    let mut buf = Vec::new();
    let n = write_header(&mut buf, true, 96, 513, 48_000, 42, Some((3, 0x7f)));
    assert_eq!(n, 20);
    buf.extend_from_slice(b"opus");
    let mut raw: &[u8] = &buf;
    let packet =
        <rtc::rtp::Packet as rtc::shared::marshal::Unmarshal>::unmarshal(&mut raw).expect("parses");
    assert!(packet.header.marker);
    assert_eq!(packet.header.payload_type, 96);
    assert_eq!(packet.header.sequence_number, 513);
    assert_eq!(packet.header.ssrc, 42);
    assert_eq!(packet.header.get_extension(3).as_deref(), Some(&[0x7f][..]));
    assert_eq!(&packet.payload[..], b"opus");
    // Ids beyond the one-byte form are left out rather than written wrong.
    assert_eq!(
        write_header(&mut buf, false, 111, 1, 1, 1, Some((15, 1))),
        12
    );
}

fn unprotect_what_rtc_protects(profile: Profile) {
    let salt: Vec<u8> = (1..=profile.salt_len() as u8).collect();
    let tap = KeyTap::new().expect("provider");
    let mut theirs = reference(profile, &salt, &tap);
    let keys = tap.keys().expect("keys");
    let mut ours = Srtp::new(&keys, tap.inner()).expect("cipher");
    let mut roc = Rollover::default();
    let mut buf = Vec::new();
    for seq in [65_534u16, 65_535, 0, 1] {
        let header_len = write_header(&mut buf, false, 111, seq, 7, 99, Some((1, 0x80)));
        buf.extend_from_slice(&[seq as u8; 40]);
        let plain = buf.clone();
        let mut wire = theirs.encrypt_rtp(&plain).expect("reference").to_vec();
        let end = ours
            .unprotect(&mut wire, header_len, 99, seq, roc.roc(seq))
            .expect("authenticates");
        assert_eq!(&wire[..end], &plain[..], "{profile:?} seq {seq}");
    }
    // A flipped bit anywhere fails authentication.
    let header_len = write_header(&mut buf, false, 111, 2, 7, 99, None);
    buf.extend_from_slice(&[5; 40]);
    let mut wire = theirs.encrypt_rtp(&buf).expect("reference").to_vec();
    wire[header_len + 3] ^= 1;
    assert!(ours.unprotect(&mut wire, header_len, 99, 2, 1).is_err());
}

#[test]
fn unprotect_reads_what_rtc_writes() {
    unprotect_what_rtc_protects(Profile::CmSha1_80);
    unprotect_what_rtc_protects(Profile::Gcm128);
}

#[test]
fn the_tap_tells_the_remote_keys_from_the_local_ones() {
    let tap = KeyTap::new().expect("provider");
    let salt: Vec<u8> = (1..=14).collect();
    let _local = reference(Profile::CmSha1_80, &salt, &tap);
    let _remote = Context::new(
        &[9; 16],
        &salt,
        ProtectionProfile::Aes128CmHmacSha1_80,
        None,
        None,
        tap.crypto(),
    );
    assert_eq!(tap.keys().map(|k| k.key), Some(KEY));
    assert_eq!(tap.remote_keys().map(|k| k.key), Some([9; 16]));
}
