//! The data path of [`TurnCore`]: Send indications and ChannelData from clients to peers,
//! datagrams from peers back as Data indications or ChannelData, with permissions and the
//! per-allocation bandwidth limit.

use std::net::SocketAddr;
use std::time::Instant;

use rtc::stun::attributes::ATTR_XOR_PEER_ADDRESS;
use rtc::stun::message::{CLASS_INDICATION, Getter, Message};
use rtc::turn::proto::data::Data;

use super::super::wire::{self, XorAddr};
use super::super::{ClientKey, Output, Transport};
use super::{AllocId, TurnCore};

impl TurnCore {
    pub(super) fn send_indication(
        &mut self,
        now: Instant,
        client: ClientKey,
        m: &Message,
        out: &mut Vec<Output>,
    ) {
        let Some(&id) = self.by_client.get(&client) else {
            return Self::dropped("no_allocation");
        };
        let mut data = Data::default();
        let peer = wire::peer_addresses(m).first().copied();
        let (Some(peer), Ok(())) = (peer, data.get_from(m)) else {
            return Self::dropped("bad_indication");
        };
        self.relay_to_peer(now, id, peer, data.0, out);
    }

    pub(super) fn channel_to_peer(
        &mut self,
        now: Instant,
        client: ClientKey,
        number: u16,
        payload: &[u8],
        out: &mut Vec<Output>,
    ) {
        let Some(&id) = self.by_client.get(&client) else {
            return Self::dropped("no_allocation");
        };
        let peer = self
            .allocations
            .get(&id)
            .and_then(|a| a.channels.get(&number))
            .filter(|&&(_, until)| until > now)
            .map(|&(peer, _)| peer);
        let Some(peer) = peer else {
            return Self::dropped("unbound_channel");
        };
        self.relay_to_peer(now, id, peer, payload.to_vec(), out);
    }

    fn relay_to_peer(
        &mut self,
        now: Instant,
        id: AllocId,
        peer: SocketAddr,
        data: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        let limits = self.limits;
        let Some(alloc) = self.allocations.get_mut(&id) else {
            return;
        };
        if !alloc.permitted(peer.ip(), now) {
            return Self::dropped("no_permission");
        }
        if !alloc.spend(data.len(), &limits, now) {
            return Self::dropped("bandwidth");
        }
        metrics::counter!("voiceflow_turn_relayed_bytes_total", "direction" => "to_peer")
            .increment(data.len() as u64);
        out.push(Output::ToPeer {
            alloc: id,
            peer,
            data,
        });
    }

    /// A datagram that arrived on allocation `id`'s relay socket from `peer`.
    pub fn handle_relay(
        &mut self,
        now: Instant,
        id: AllocId,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<Output>,
    ) {
        let limits = self.limits;
        let Some(alloc) = self.allocations.get_mut(&id) else {
            return;
        };
        if !alloc.permitted(peer.ip(), now) {
            return Self::dropped("no_permission");
        }
        if !alloc.spend(data.len(), &limits, now) {
            return Self::dropped("bandwidth");
        }
        let pad = matches!(alloc.client.transport, Transport::Tcp(_));
        let channel = alloc
            .by_peer
            .get(&peer)
            .copied()
            .filter(|n| alloc.channels.get(n).is_some_and(|&(_, until)| until > now));
        let framed = match channel {
            Some(number) => wire::encode_channel_data(number, data, pad),
            None => data_indication(peer, data),
        };
        let Some(framed) = framed else {
            return Self::dropped("too_large");
        };
        metrics::counter!("voiceflow_turn_relayed_bytes_total", "direction" => "to_client")
            .increment(data.len() as u64);
        out.push(Output::ToClient {
            client: alloc.client,
            data: framed,
        });
    }

    pub(super) fn dropped(reason: &'static str) {
        metrics::counter!("voiceflow_turn_dropped_total", "reason" => reason).increment(1);
    }
}

/// A Data indication carrying `data` from `peer`.
fn data_indication(peer: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
    let mut m = Message::new();
    m.build(&[
        Box::new(rtc::stun::message::TransactionId::new()),
        Box::new(rtc::stun::message::MessageType::new(
            rtc::stun::message::METHOD_DATA,
            CLASS_INDICATION,
        )),
        Box::new(XorAddr(ATTR_XOR_PEER_ADDRESS, peer)),
        Box::new(Data(data.to_vec())),
    ])
    .ok()?;
    Some(m.raw)
}
