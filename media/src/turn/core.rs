//! The TURN server's protocol core (RFC 8656 over UDP and TCP, UDP relays), IO-free: the
//! tokio layer in [`super::server`] feeds it datagrams, TCP frames and the time, and carries out
//! what it returns. Authentication is the long-term mechanism with the short-lived user names
//! of [`super::credentials`]; nonces are stateless (`<issued unix secs hex><mac>`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rtc::stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_XORMAPPED_ADDRESS};
use rtc::stun::error_code::{
    CODE_ALLOC_MISMATCH, CODE_ALLOC_QUOTA_REACHED, CODE_BAD_REQUEST, CODE_FORBIDDEN,
    CODE_INSUFFICIENT_CAPACITY, CODE_STALE_NONCE, CODE_UNAUTHORIZED, CODE_UNSUPPORTED_TRANS_PROTO,
    CODE_WRONG_CREDENTIALS, ErrorCode,
};
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    CLASS_INDICATION, CLASS_REQUEST, Getter, METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND,
    METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND, Message, Method, Setter,
};
use rtc::turn::proto::PROTO_UDP;
use rtc::turn::proto::channum::ChannelNumber;
use rtc::turn::proto::lifetime::Lifetime;
use rtc::turn::proto::reqtrans::RequestedTransport;

use super::credentials::{Refusal, TurnSecret};
use super::wire::{self, XorAddr};
use super::{ClientKey, Output, TurnLimits};

mod datapath;
#[cfg(test)]
mod tests;

/// How long a permission lasts (RFC 8656 §9).
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// How long a channel binding lasts (RFC 8656 §12).
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// The realm in challenges.
pub const REALM: &str = "voiceflow";

/// An allocation's id (the IO layer's handle of its relay socket).
pub type AllocId = u64;

struct Allocation {
    client: ClientKey,
    user_id: u64,
    username: String,
    key: Vec<u8>,
    relayed: SocketAddr,
    expires: Instant,
    allocate_tid: [u8; 12],
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    by_peer: HashMap<SocketAddr, u16>,
    tokens: f64,
    refilled: Instant,
}

impl Allocation {
    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|&until| until > now)
    }

    /// Takes `bytes` from the bandwidth bucket; false when over the limit.
    fn spend(&mut self, bytes: usize, limits: &TurnLimits, now: Instant) -> bool {
        if limits.max_kbps == 0 {
            return true;
        }
        let rate = f64::from(limits.max_kbps) * 125.0; // bytes per second
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate); // one second of burst
        self.refilled = now;
        if self.tokens < bytes as f64 {
            return false;
        }
        self.tokens -= bytes as f64;
        true
    }
}

/// An Allocate authenticated and within the limits, waiting for the IO layer's relay socket.
struct Pending {
    req: Message,
    user_id: u64,
    username: String,
    key: Vec<u8>,
    lifetime: Duration,
}

/// The TURN server state: allocations by client 5-tuple, their permissions and channels.
pub struct TurnCore {
    secret: TurnSecret,
    limits: TurnLimits,
    relay_ip: Option<IpAddr>,
    allowed_peers: Vec<IpAddr>,
    allocations: HashMap<AllocId, Allocation>,
    by_client: HashMap<ClientKey, AllocId>,
    per_user: HashMap<u64, usize>,
    pending: HashMap<ClientKey, Pending>,
    next_id: AllocId,
}

enum Auth {
    Ok {
        user_id: u64,
        username: String,
        key: Vec<u8>,
    },
    Reply(Option<Vec<u8>>),
}

impl TurnCore {
    /// A core checking credentials with `secret`; relayed addresses name `relay_ip` when set
    /// (1:1 NAT), else the relay socket's own address.
    /// `allowed_peers`: the only addresses relays may send to (permissions for others get 403);
    /// empty: any.
    pub fn new(
        secret: TurnSecret,
        limits: TurnLimits,
        relay_ip: Option<IpAddr>,
        allowed_peers: Vec<IpAddr>,
    ) -> TurnCore {
        TurnCore {
            secret,
            limits,
            relay_ip,
            allowed_peers,
            allocations: HashMap::new(),
            by_client: HashMap::new(),
            per_user: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
        }
    }

    /// Live allocations.
    pub fn allocations(&self) -> usize {
        self.allocations.len()
    }

    fn nonce(&self, unix: u64) -> String {
        let mac = self
            .secret
            .password(&format!("nonce:{unix}"))
            .unwrap_or_default();
        let tag: String = mac
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        format!("{unix:016x}{tag}")
    }

    fn nonce_fresh(&self, nonce: &str, unix: u64) -> bool {
        let Some(issued) = nonce
            .get(..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            return false;
        };
        issued <= unix
            && unix - issued < self.limits.nonce_ttl.as_secs()
            && self.nonce(issued) == nonce
    }

    fn refuse(&self, req: &Message, method: Method, reason: Refusal, unix: u64) -> Auth {
        metrics::counter!("voiceflow_turn_refused_total", "reason" => reason.label()).increment(1);
        let nonce = self.nonce(unix);
        Auth::Reply(wire::error(
            req,
            method,
            CODE_UNAUTHORIZED,
            "Unauthorized",
            Some((REALM, &nonce)),
        ))
    }

    /// The long-term credential check of a request.
    fn authenticate(&self, req: &mut Message, method: Method, unix: u64) -> Auth {
        if !req.contains(ATTR_MESSAGE_INTEGRITY) {
            // The first, anonymous request of a client: the challenge.
            let nonce = self.nonce(unix);
            return Auth::Reply(wire::error(
                req,
                method,
                CODE_UNAUTHORIZED,
                "Unauthorized",
                Some((REALM, &nonce)),
            ));
        }
        let Some((username, realm, nonce)) = wire::credentials(req) else {
            return self.bad(req, method, "missing USERNAME, REALM or NONCE");
        };
        if realm != REALM {
            return self.refuse(req, method, Refusal::BadPassword, unix);
        }
        if !self.nonce_fresh(&nonce, unix) {
            metrics::counter!("voiceflow_turn_refused_total", "reason" => "stale_nonce")
                .increment(1);
            let fresh = self.nonce(unix);
            return Auth::Reply(wire::error(
                req,
                method,
                CODE_STALE_NONCE,
                "Stale Nonce",
                Some((REALM, &fresh)),
            ));
        }
        // The expiry bounds when allocations may start: requests about an allocation made in
        // time (Refresh, permissions, channels) keep working, so a call outlives its credential.
        let checked_at = if method == METHOD_ALLOCATE { unix } else { 0 };
        let user = match TurnSecret::check_username(&username, checked_at) {
            Ok(user) => user,
            Err(why) => return self.refuse(req, method, why, unix),
        };
        let crypto = self.secret.crypto().crypto();
        let key = self.secret.password(&username).ok().and_then(|password| {
            MessageIntegrity::long_term_integrity_key(username.clone(), realm, password, crypto)
                .ok()
        });
        let Some(key) = key else {
            return self.refuse(req, method, Refusal::BadPassword, unix);
        };
        if MessageIntegrity::check(req, &key, crypto).is_err() {
            return self.refuse(req, method, Refusal::BadPassword, unix);
        }
        Auth::Ok {
            user_id: user.user_id,
            username,
            key,
        }
    }

    fn bad(&self, req: &Message, method: Method, why: &str) -> Auth {
        metrics::counter!("voiceflow_turn_refused_total", "reason" => "bad_request").increment(1);
        Auth::Reply(wire::error(req, method, CODE_BAD_REQUEST, why, None))
    }

    fn reply(client: ClientKey, data: Option<Vec<u8>>, out: &mut Vec<Output>) {
        if let Some(data) = data {
            out.push(Output::ToClient { client, data });
        }
    }

    /// A datagram (UDP) or a frame (TCP) from a client.
    pub fn handle_client(
        &mut self,
        now: Instant,
        unix: u64,
        client: ClientKey,
        data: &[u8],
        out: &mut Vec<Output>,
    ) {
        if let Some((number, payload)) = wire::channel_data(data) {
            return self.channel_to_peer(now, client, number, payload, out);
        }
        let Some(mut m) = wire::parse(data) else {
            metrics::counter!("voiceflow_turn_dropped_total", "reason" => "garbage").increment(1);
            return;
        };
        let method = m.typ.method;
        if m.typ.class == CLASS_INDICATION {
            if method == METHOD_SEND {
                self.send_indication(now, client, &m, out);
            } else {
                metrics::counter!("voiceflow_turn_dropped_total", "reason" => "indication")
                    .increment(1);
            }
            return;
        }
        if m.typ.class != CLASS_REQUEST {
            metrics::counter!("voiceflow_turn_dropped_total", "reason" => "response").increment(1);
            return;
        }
        if method == METHOD_BINDING {
            let attrs: Vec<Box<dyn Setter>> =
                vec![Box::new(XorAddr(ATTR_XORMAPPED_ADDRESS, client.addr))];
            let crypto = self.secret.crypto().crypto();
            return Self::reply(client, wire::success(&m, method, attrs, &[], crypto), out);
        }
        let known = [
            METHOD_ALLOCATE,
            METHOD_REFRESH,
            METHOD_CREATE_PERMISSION,
            METHOD_CHANNEL_BIND,
        ];
        if !known.contains(&method) {
            let reply = wire::error(&m, method, CODE_BAD_REQUEST, "unknown method", None);
            return Self::reply(client, reply, out);
        }
        let (user_id, username, key) = match self.authenticate(&mut m, method, unix) {
            Auth::Ok {
                user_id,
                username,
                key,
            } => (user_id, username, key),
            Auth::Reply(reply) => return Self::reply(client, reply, out),
        };
        if method == METHOD_ALLOCATE {
            return self.allocate(now, client, m, user_id, username, key, out);
        }
        let Some(&id) = self.by_client.get(&client) else {
            let reply = wire::error(&m, method, CODE_ALLOC_MISMATCH, "no allocation", None);
            return Self::reply(client, reply, out);
        };
        let Some(alloc) = self.allocations.get_mut(&id) else {
            return;
        };
        if alloc.username != username {
            let reply = wire::error(&m, method, CODE_WRONG_CREDENTIALS, "wrong user", None);
            return Self::reply(client, reply, out);
        }
        let crypto = self.secret.crypto().crypto();
        let mut attrs: Vec<Box<dyn Setter>> = Vec::new();
        if method == METHOD_REFRESH {
            let mut asked = Lifetime::default();
            let asked = asked.get_from(&m).map(|()| asked.0).ok();
            let lifetime = self.limits.lifetime(asked);
            attrs.push(Box::new(Lifetime(lifetime)));
            let reply = wire::success(&m, method, attrs, &alloc.key, crypto);
            Self::reply(client, reply, out);
            if lifetime.is_zero() {
                self.remove(id, out);
            } else {
                alloc.expires = now + lifetime;
            }
            return;
        }
        let peers = wire::peer_addresses(&m);
        if peers.is_empty() {
            let reply = wire::error(&m, method, CODE_BAD_REQUEST, "no XOR-PEER-ADDRESS", None);
            return Self::reply(client, reply, out);
        }
        let allowed = &self.allowed_peers;
        if !allowed.is_empty() && peers.iter().any(|p| !allowed.contains(&p.ip())) {
            metrics::counter!("voiceflow_turn_refused_total", "reason" => "forbidden_peer")
                .increment(1);
            let reply = wire::error(&m, method, CODE_FORBIDDEN, "Forbidden", None);
            return Self::reply(client, reply, out);
        }
        if method == METHOD_CHANNEL_BIND {
            let mut number = ChannelNumber::default();
            let peer = peers[0];
            let ok = number.get_from(&m).is_ok()
                && number.valid()
                && alloc.by_peer.get(&peer).is_none_or(|&n| n == number.0)
                && alloc
                    .channels
                    .get(&number.0)
                    .is_none_or(|&(bound, _)| bound == peer);
            if !ok {
                let reply = wire::error(&m, method, CODE_BAD_REQUEST, "bad channel", None);
                return Self::reply(client, reply, out);
            }
            alloc
                .channels
                .insert(number.0, (peer, now + CHANNEL_LIFETIME));
            alloc.by_peer.insert(peer, number.0);
        }
        for peer in &peers {
            alloc
                .permissions
                .insert(peer.ip(), now + PERMISSION_LIFETIME);
        }
        Self::reply(
            client,
            wire::success(&m, method, attrs, &alloc.key, crypto),
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate(
        &mut self,
        now: Instant,
        client: ClientKey,
        m: Message,
        user_id: u64,
        username: String,
        key: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        let method = METHOD_ALLOCATE;
        if let Some(alloc) = self
            .by_client
            .get(&client)
            .and_then(|id| self.allocations.get(id))
        {
            // A retransmitted Allocate gets the same answer; another one is a mismatch.
            let reply = if alloc.allocate_tid == m.transaction_id.0 {
                let lifetime = alloc.expires.saturating_duration_since(now);
                self.allocated_reply(&m, alloc.relayed, client.addr, lifetime, &alloc.key)
            } else {
                wire::error(&m, method, CODE_ALLOC_MISMATCH, "Allocation Mismatch", None)
            };
            return Self::reply(client, reply, out);
        }
        if self.pending.contains_key(&client) {
            return; // the relay socket is being opened; the answer follows
        }
        let mut transport = RequestedTransport::default();
        if transport.get_from(&m).is_err() {
            let reply = wire::error(&m, method, CODE_BAD_REQUEST, "no REQUESTED-TRANSPORT", None);
            return Self::reply(client, reply, out);
        }
        if transport.protocol != PROTO_UDP {
            let reply = wire::error(&m, method, CODE_UNSUPPORTED_TRANS_PROTO, "UDP only", None);
            return Self::reply(client, reply, out);
        }
        let mine = self.per_user.get(&user_id).copied().unwrap_or(0);
        let (code, why, reason): (ErrorCode, _, _) = if mine >= self.limits.max_allocations_per_user
        {
            (
                CODE_ALLOC_QUOTA_REACHED,
                "Allocation Quota Reached",
                "user_quota",
            )
        } else if self.allocations.len() + self.pending.len() >= self.limits.max_allocations {
            (
                CODE_INSUFFICIENT_CAPACITY,
                "Insufficient Capacity",
                "capacity",
            )
        } else {
            let mut asked = Lifetime::default();
            let asked = asked.get_from(&m).map(|()| asked.0).ok();
            let lifetime = self.limits.lifetime(asked).max(Duration::from_secs(1));
            let pending = Pending {
                req: m,
                user_id,
                username,
                key,
                lifetime,
            };
            self.pending.insert(client, pending);
            out.push(Output::OpenRelay { client });
            return;
        };
        metrics::counter!("voiceflow_turn_refused_total", "reason" => reason).increment(1);
        Self::reply(client, wire::error(&m, method, code, why, None), out);
    }

    fn allocated_reply(
        &self,
        m: &Message,
        relayed: SocketAddr,
        mapped: SocketAddr,
        lifetime: Duration,
        key: &[u8],
    ) -> Option<Vec<u8>> {
        let attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(XorAddr(
                rtc::stun::attributes::ATTR_XOR_RELAYED_ADDRESS,
                relayed,
            )),
            Box::new(Lifetime(lifetime)),
            Box::new(XorAddr(ATTR_XORMAPPED_ADDRESS, mapped)),
        ];
        wire::success(
            m,
            METHOD_ALLOCATE,
            attrs,
            key,
            self.secret.crypto().crypto(),
        )
    }

    /// The IO layer opened (or failed to open) the relay socket of `client`'s Allocate;
    /// returns the new allocation's id.
    pub fn relay_opened(
        &mut self,
        now: Instant,
        client: ClientKey,
        relay: Option<SocketAddr>,
        out: &mut Vec<Output>,
    ) -> Option<AllocId> {
        let pending = self.pending.remove(&client)?;
        let Some(local) = relay else {
            metrics::counter!("voiceflow_turn_refused_total", "reason" => "no_relay_port")
                .increment(1);
            let reply = wire::error(
                &pending.req,
                METHOD_ALLOCATE,
                CODE_INSUFFICIENT_CAPACITY,
                "no relay port",
                None,
            );
            Self::reply(client, reply, out);
            return None;
        };
        let relayed = SocketAddr::new(self.relay_ip.unwrap_or(local.ip()), local.port());
        let reply = self.allocated_reply(
            &pending.req,
            relayed,
            client.addr,
            pending.lifetime,
            &pending.key,
        );
        Self::reply(client, reply, out);
        let id = self.next_id;
        self.next_id += 1;
        let rate = f64::from(self.limits.max_kbps) * 125.0;
        self.allocations.insert(
            id,
            Allocation {
                client,
                user_id: pending.user_id,
                username: pending.username,
                key: pending.key,
                relayed,
                expires: now + pending.lifetime,
                allocate_tid: pending.req.transaction_id.0,
                permissions: HashMap::new(),
                channels: HashMap::new(),
                by_peer: HashMap::new(),
                tokens: rate,
                refilled: now,
            },
        );
        self.by_client.insert(client, id);
        *self.per_user.entry(pending.user_id).or_default() += 1;
        metrics::counter!("voiceflow_turn_allocations_total").increment(1);
        metrics::gauge!("voiceflow_turn_allocations").set(self.allocations.len() as f64);
        Some(id)
    }

    /// Expires allocations, permissions and channels.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Output>) {
        let expired: Vec<AllocId> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.remove(id, out);
        }
        for alloc in self.allocations.values_mut() {
            alloc.permissions.retain(|_, until| *until > now);
            alloc.channels.retain(|_, (_, until)| *until > now);
            let channels = &alloc.channels;
            alloc.by_peer.retain(|_, n| channels.contains_key(n));
        }
    }

    /// The client's TCP connection closed: its allocation goes with it.
    pub fn client_closed(&mut self, client: ClientKey, out: &mut Vec<Output>) {
        self.pending.remove(&client);
        if let Some(&id) = self.by_client.get(&client) {
            self.remove(id, out);
        }
    }

    fn remove(&mut self, id: AllocId, out: &mut Vec<Output>) {
        let Some(alloc) = self.allocations.remove(&id) else {
            return;
        };
        self.by_client.remove(&alloc.client);
        if let Some(n) = self.per_user.get_mut(&alloc.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&alloc.user_id);
            }
        }
        metrics::gauge!("voiceflow_turn_allocations").set(self.allocations.len() as f64);
        out.push(Output::CloseRelay { alloc: id });
    }
}
