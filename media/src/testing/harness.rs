//! The in-process stand-in for a room's signalling: a channel whose SFU events (offers,
//! candidates, speaking, failures) go to the test clients joined to it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Client;
use crate::MediaError;
use crate::plane::MediaPlane;
use crate::sfu::{Channel, PeerId, Rights, SfuEvent};

/// A channel with in-process clients: routes SFU events to them, as the WebSocket signalling
/// would.
pub struct Harness {
    /// The channel.
    pub channel: Channel,
    /// Its clients by participant id.
    pub clients: Mutex<HashMap<PeerId, Arc<Client>>>,
    /// Speaking events seen.
    pub speaking: Mutex<Vec<(PeerId, bool)>>,
    /// Participants reported as failed.
    pub failed: Mutex<Vec<PeerId>>,
}

impl Harness {
    /// A channel on `plane` and the task routing its events.
    pub fn start(plane: &MediaPlane) -> Arc<Harness> {
        let (channel, mut events) = Channel::new(plane);
        let h = Arc::new(Harness {
            channel,
            clients: Mutex::new(HashMap::new()),
            speaking: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
        });
        let me = h.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    SfuEvent::Offer { peer, sdp } => {
                        let Some(client) = me.clients.lock().get(&peer).cloned() else {
                            continue;
                        };
                        let channel = me.channel.clone();
                        tokio::spawn(async move {
                            let answer = async {
                                let sdp = client.answer(sdp).await?;
                                channel.apply_answer(peer, sdp).await
                            };
                            if let Err(e) = answer.await {
                                tracing::warn!(peer, error = %e, "test client: renegotiation failed");
                            }
                        });
                    }
                    SfuEvent::Candidate { peer, candidate } => {
                        let client = me.clients.lock().get(&peer).cloned();
                        if let Some(client) = client {
                            let _ = client.pc.add_ice_candidate(candidate).await;
                        }
                    }
                    SfuEvent::Speaking { peer, speaking } => {
                        me.speaking.lock().push((peer, speaking))
                    }
                    SfuEvent::Failed { peer } => me.failed.lock().push(peer),
                    SfuEvent::Connected { .. } => {}
                }
            }
        });
        h
    }

    /// A new client joins with `rights`.
    pub async fn join(&self, id: PeerId, rights: Rights) -> Result<Arc<Client>, MediaError> {
        self.join_client(Client::new(id).await?, rights).await
    }

    /// `client` joins with `rights`.
    pub async fn join_client(
        &self,
        client: Arc<Client>,
        rights: Rights,
    ) -> Result<Arc<Client>, MediaError> {
        let id = client.id;
        self.clients.lock().insert(id, client.clone());
        let offer = client.offer().await?;
        let answer = self.channel.join(id, offer, rights).await?;
        client.accept(answer).await?;
        self.channel.sync().await;
        Ok(client)
    }
}
