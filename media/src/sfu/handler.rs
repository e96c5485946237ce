//! Peer-connection callbacks.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};

use super::{Inner, Peer, PeerId, SfuEvent};
use crate::engine::AUDIO_LEVEL_URI;

/// Peer-connection callbacks of one participant. They run inside the connection's I/O loop,
/// so anything slow is spawned.
pub(super) struct Handler {
    pub(super) channel: Weak<Inner>,
    pub(super) peer: PeerId,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Some(inner) = self.channel.upgrade() else {
            return;
        };
        if let Ok(mut candidate) = event.candidate.to_json() {
            candidate.candidate = inner.config.announce(candidate.candidate);
            let _ = inner.events.send(SfuEvent::Candidate {
                peer: self.peer,
                candidate,
            });
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let Some(inner) = self.channel.upgrade() else {
            return;
        };
        let Some(peer) = inner.peers.lock().get(&self.peer).cloned() else {
            return;
        };
        match state {
            RTCPeerConnectionState::Connected if !peer.connected.swap(true, Ordering::AcqRel) => {
                let _ = inner.events.send(SfuEvent::Connected { peer: self.peer });
            }
            RTCPeerConnectionState::Failed => {
                let _ = inner.events.send(SfuEvent::Failed { peer: self.peer });
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let (channel, id) = (self.channel.clone(), self.peer);
        tokio::spawn(async move {
            let level_id = {
                let Some(inner) = channel.upgrade() else {
                    return;
                };
                let Some(peer) = inner.peers.lock().get(&id).cloned() else {
                    return;
                };
                inbound_level_id(&peer).await
            };
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                let Some(inner) = channel.upgrade() else {
                    break;
                };
                let Some(peer) = inner.peers.lock().get(&id).cloned() else {
                    break;
                };
                inner.forward(&peer, &packet, level_id);
            }
        });
    }
}

/// The audio-level extension id the participant's client sends under.
async fn inbound_level_id(peer: &Peer) -> Option<u8> {
    for receiver in peer.pc.get_receivers().await {
        let Ok(params) = receiver.get_parameters().await else {
            continue;
        };
        if let Some(e) = params
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|e| e.uri == AUDIO_LEVEL_URI)
        {
            return u8::try_from(e.id).ok();
        }
    }
    None
}
