//! The TURN core driven deterministically: requests built with `rtc-stun`, time passed in.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc::stun::error_code::ErrorCodeAttribute;
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter,
    METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_DATA, METHOD_REFRESH,
    METHOD_SEND, Message, MessageType, Setter, TransactionId,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::turn::proto::PROTO_UDP;
use rtc::turn::proto::channum::ChannelNumber;
use rtc::turn::proto::data::Data;
use rtc::turn::proto::lifetime::Lifetime;
use rtc::turn::proto::peeraddr::PeerAddress;
use rtc::turn::proto::relayaddr::RelayedAddress;
use rtc::turn::proto::reqtrans::RequestedTransport;

use super::super::{ClientKey, Output, Transport, TurnLimits, TurnSecret};
use super::{AllocId, REALM, TurnCore};

const NOW_UNIX: u64 = 1_800_000_000;

fn client(port: u16) -> ClientKey {
    ClientKey {
        transport: Transport::Udp,
        addr: SocketAddr::from(([10, 0, 0, 1], port)),
    }
}

fn peer() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 50000))
}

struct Fixture {
    core: TurnCore,
    secret: TurnSecret,
    now: Instant,
}

impl Fixture {
    fn new(limits: TurnLimits) -> Fixture {
        let secret = TurnSecret::new(b"core-test-secret".to_vec()).expect("secret");
        Fixture {
            core: TurnCore::new(secret.clone(), limits, None, Vec::new()),
            secret,
            now: Instant::now(),
        }
    }

    fn send(&mut self, from: ClientKey, m: &Message) -> Vec<Output> {
        let mut out = Vec::new();
        self.core
            .handle_client(self.now, NOW_UNIX, from, &m.raw, &mut out);
        out
    }

    fn nonce(&mut self, from: ClientKey) -> String {
        let m = build(
            MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST),
            vec![udp()],
        );
        let reply = only_reply(self.send(from, &m));
        assert_eq!(code(&reply), Some(401));
        TextAttribute::get_from_as(&reply, ATTR_NONCE)
            .expect("nonce")
            .text
    }

    /// A signed request of `user` with `password` (the right one when `None`).
    fn signed(
        &mut self,
        from: ClientKey,
        typ: MessageType,
        attrs: Vec<Box<dyn Setter>>,
        user: &str,
        password: Option<&str>,
    ) -> Message {
        let nonce = self.nonce(from);
        let right = self.secret.password(user).expect("password");
        let password = password.unwrap_or(&right).to_owned();
        let provider = rtc::crypto::default_provider().expect("crypto");
        let integrity = MessageIntegrity::new_long_term_integrity_with_provider(
            user.to_owned(),
            REALM.to_owned(),
            password,
            provider.crypto(),
        )
        .expect("integrity");
        let mut all: Vec<Box<dyn Setter + '_>> = Vec::new();
        all.extend(attrs);
        all.push(Box::new(TextAttribute::new(ATTR_USERNAME, user.to_owned())));
        all.push(Box::new(TextAttribute::new(ATTR_REALM, REALM.to_owned())));
        all.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce)));
        all.push(Box::new(integrity));
        all.push(Box::new(FINGERPRINT));
        build(typ, all)
    }

    /// Allocates for `from` as `user`; returns the allocation id.
    fn allocate(&mut self, from: ClientKey, user: &str) -> Option<AllocId> {
        let typ = MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST);
        let m = self.signed(from, typ, vec![udp()], user, None);
        let out = self.send(from, &m);
        if !matches!(out.as_slice(), [Output::OpenRelay { client }] if *client == from) {
            return None;
        }
        let mut out = Vec::new();
        let relay = SocketAddr::from(([127, 0, 0, 1], 40000 + from.addr.port()));
        let id = self
            .core
            .relay_opened(self.now, from, Some(relay), &mut out);
        let reply = only_reply(out);
        assert_eq!(reply.typ.class, CLASS_SUCCESS_RESPONSE);
        let mut relayed = RelayedAddress::default();
        relayed.get_from(&reply).expect("relayed address");
        assert_eq!(SocketAddr::new(relayed.ip, relayed.port), relay);
        id
    }
}

fn udp() -> Box<dyn Setter> {
    Box::new(RequestedTransport {
        protocol: PROTO_UDP,
    })
}

fn build(typ: MessageType, attrs: Vec<Box<dyn Setter + '_>>) -> Message {
    let mut setters: Vec<Box<dyn Setter + '_>> =
        vec![Box::new(TransactionId::new()), Box::new(typ)];
    setters.extend(attrs);
    let mut m = Message::new();
    m.build(&setters).expect("build");
    m
}

fn decode(raw: &[u8]) -> Message {
    let mut m = Message::new();
    m.raw = raw.to_vec();
    m.decode().expect("decode");
    m
}

fn only_reply(out: Vec<Output>) -> Message {
    match out.as_slice() {
        [Output::ToClient { data, .. }] => decode(data),
        other => panic!("expected one reply, got {other:?}"),
    }
}

fn code(m: &Message) -> Option<u16> {
    if m.typ.class != CLASS_ERROR_RESPONSE {
        return None;
    }
    let mut c = ErrorCodeAttribute::default();
    c.get_from(m).ok()?;
    Some(c.code.0)
}

fn user(id: u64) -> String {
    format!("{}:{id}", NOW_UNIX + 600)
}

#[test]
fn allocate_needs_a_valid_unexpired_credential() {
    let mut f = Fixture::new(TurnLimits::default());
    let typ = MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST);
    let wrong = f.signed(client(1), typ, vec![udp()], &user(7), Some("nope"));
    assert_eq!(code(&only_reply(f.send(client(1), &wrong))), Some(401));
    let expired = format!("{}:7", NOW_UNIX - 1);
    let late = f.signed(client(1), typ, vec![udp()], &expired, None);
    assert_eq!(code(&only_reply(f.send(client(1), &late))), Some(401));
    let malformed = f.signed(client(1), typ, vec![udp()], "alice", None);
    assert_eq!(code(&only_reply(f.send(client(1), &malformed))), Some(401));
    assert_eq!(f.core.allocations(), 0);
    assert!(f.allocate(client(1), &user(7)).is_some());
    assert_eq!(f.core.allocations(), 1);
    // Once allocated, the allocation outlives its credential: a Refresh after the expiry works.
    let short = format!("{}:8", NOW_UNIX + 1);
    assert!(f.allocate(client(2), &short).is_some());
    let typ_refresh = MessageType::new(METHOD_REFRESH, CLASS_REQUEST);
    let refresh = f.signed(client(2), typ_refresh, vec![], &short, None);
    let mut out = Vec::new();
    f.core
        .handle_client(f.now, NOW_UNIX + 100, client(2), &refresh.raw, &mut out);
    assert_eq!(only_reply(out).typ.class, CLASS_SUCCESS_RESPONSE);
    // Another Allocate on the same 5-tuple is a mismatch.
    let again = f.signed(client(1), typ, vec![udp()], &user(7), None);
    assert_eq!(code(&only_reply(f.send(client(1), &again))), Some(437));
}

#[test]
fn allocations_are_limited_per_user_and_in_total() {
    let limits = TurnLimits {
        max_allocations: 3,
        max_allocations_per_user: 2,
        ..TurnLimits::default()
    };
    let mut f = Fixture::new(limits);
    assert!(f.allocate(client(1), &user(7)).is_some());
    assert!(f.allocate(client(2), &user(7)).is_some());
    let typ = MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST);
    let third = f.signed(client(3), typ, vec![udp()], &user(7), None);
    assert_eq!(code(&only_reply(f.send(client(3), &third))), Some(486));
    assert!(f.allocate(client(3), &user(8)).is_some());
    let full = f.signed(client(4), typ, vec![udp()], &user(9), None);
    assert_eq!(code(&only_reply(f.send(client(4), &full))), Some(508));
}

#[test]
fn relays_need_a_permission_and_channels_carry_data_both_ways() {
    let mut f = Fixture::new(TurnLimits::default());
    let c = client(1);
    let id = f.allocate(c, &user(7)).expect("allocated");
    let send = build(
        MessageType::new(METHOD_SEND, CLASS_INDICATION),
        vec![
            Box::new(PeerAddress {
                ip: peer().ip(),
                port: peer().port(),
            }),
            Box::new(Data(b"hi".to_vec())),
        ],
    );
    assert!(f.send(c, &send).is_empty(), "no permission yet: dropped");
    let mut out = Vec::new();
    f.core.handle_relay(f.now, id, peer(), b"in", &mut out);
    assert!(out.is_empty(), "strangers cannot reach the client");

    let typ = MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST);
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(PeerAddress {
        ip: peer().ip(),
        port: peer().port(),
    })];
    let perm = f.signed(c, typ, attrs, &user(7), None);
    assert_eq!(
        only_reply(f.send(c, &perm)).typ.class,
        CLASS_SUCCESS_RESPONSE
    );
    match f.send(c, &send).as_slice() {
        [
            Output::ToPeer {
                alloc,
                peer: to,
                data,
            },
        ] => {
            assert_eq!((*alloc, *to, data.as_slice()), (id, peer(), &b"hi"[..]));
        }
        other => panic!("expected the payload to the peer, got {other:?}"),
    }
    let mut out = Vec::new();
    f.core.handle_relay(f.now, id, peer(), b"back", &mut out);
    let data = only_reply(out);
    assert_eq!(data.typ, MessageType::new(METHOD_DATA, CLASS_INDICATION));

    let typ = MessageType::new(METHOD_CHANNEL_BIND, CLASS_REQUEST);
    let attrs: Vec<Box<dyn Setter>> = vec![
        Box::new(ChannelNumber(0x4000)),
        Box::new(PeerAddress {
            ip: peer().ip(),
            port: peer().port(),
        }),
    ];
    let bind = f.signed(c, typ, attrs, &user(7), None);
    assert_eq!(
        only_reply(f.send(c, &bind)).typ.class,
        CLASS_SUCCESS_RESPONSE
    );
    let mut out = Vec::new();
    f.core.handle_relay(f.now, id, peer(), b"chan", &mut out);
    match out.as_slice() {
        [Output::ToClient { data, .. }] => assert_eq!(data.as_slice(), b"\x40\x00\x00\x04chan"),
        other => panic!("expected ChannelData, got {other:?}"),
    }
    let mut out = Vec::new();
    f.core
        .handle_client(f.now, NOW_UNIX, c, b"\x40\x00\x00\x02ok", &mut out);
    assert!(matches!(out.as_slice(), [Output::ToPeer { data, .. }] if data == b"ok"));

    // Permissions lapse after five minutes without a refresh.
    f.now += Duration::from_secs(301);
    let mut out = Vec::new();
    f.core.handle_timeout(f.now, &mut out);
    assert!(out.is_empty(), "the allocation itself lives on");
    assert!(f.send(c, &send).is_empty());
}

#[test]
fn allocations_expire_and_refresh_zero_deletes() {
    let mut f = Fixture::new(TurnLimits::default());
    let a = f.allocate(client(1), &user(7)).expect("a");
    let b = f.allocate(client(2), &user(8)).expect("b");
    let typ = MessageType::new(METHOD_REFRESH, CLASS_REQUEST);
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(Lifetime(Duration::ZERO))];
    let delete = f.signed(client(2), typ, attrs, &user(8), None);
    let out = f.send(client(2), &delete);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CloseRelay { alloc } if *alloc == b))
    );
    assert_eq!(f.core.allocations(), 1);
    f.now += Duration::from_secs(601);
    let mut out = Vec::new();
    f.core.handle_timeout(f.now, &mut out);
    assert!(matches!(out.as_slice(), [Output::CloseRelay { alloc }] if *alloc == a));
    assert_eq!(f.core.allocations(), 0);
}

#[test]
fn garbage_and_responses_are_dropped() {
    let mut f = Fixture::new(TurnLimits::default());
    let mut out = Vec::new();
    for junk in [&b""[..], b"\x00", &[0xFFu8; 40], b"\x40\x00\x00\x10short"] {
        f.core
            .handle_client(f.now, NOW_UNIX, client(1), junk, &mut out);
    }
    let response = build(
        MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE),
        vec![],
    );
    f.core
        .handle_client(f.now, NOW_UNIX, client(1), &response.raw, &mut out);
    assert!(out.is_empty());
}

#[test]
fn the_bandwidth_limit_drops_what_exceeds_it() {
    let limits = TurnLimits {
        max_kbps: 8, // 1000 bytes per second
        ..TurnLimits::default()
    };
    let mut f = Fixture::new(limits);
    let c = client(1);
    let id = f.allocate(c, &user(7)).expect("allocated");
    let typ = MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST);
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(PeerAddress {
        ip: peer().ip(),
        port: peer().port(),
    })];
    let perm = f.signed(c, typ, attrs, &user(7), None);
    f.send(c, &perm);
    let mut out = Vec::new();
    for _ in 0..20 {
        f.core
            .handle_relay(f.now, id, peer(), &[0u8; 100], &mut out);
    }
    assert_eq!(out.len(), 10, "one second of burst: 1000 bytes");
    f.now += Duration::from_millis(500);
    out.clear();
    for _ in 0..20 {
        f.core
            .handle_relay(f.now, id, peer(), &[0u8; 100], &mut out);
    }
    assert_eq!(out.len(), 5, "refilled at 1000 bytes per second");
}
