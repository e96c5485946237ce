//! Voice participants for integration tests: a WebSocket plus a real WebRTC peer (the
//! `webrtc` crate, in the test process, on loopback) that answers the server's signalling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use voiceflow_media::testing::Client;

use super::{TestNode, User, WsClient};

/// A test node's voice settings: its one media port is any free one (tests run side by
/// side). `_first_port` is left from the time each participant had a port of its own.
pub fn voice(_first_port: u16) -> String {
    format!(
        "{}\n[voice]\nudp_port = 0\nconnect_timeout_secs = 5\n",
        super::FAST_CONFIG,
    )
}

/// A participant: their WebSocket and their media connection.
pub struct Participant {
    /// The WebSocket.
    pub ws: WsClient,
    /// The media connection.
    pub media: Arc<Client>,
    /// The session id (the media peer's id at the SFU).
    pub session: u64,
    /// The voice channel (or conversation).
    pub channel: String,
}

impl Participant {
    /// Connects `user` and joins `channel` with a fresh media connection that speaks.
    pub async fn join(node: &TestNode, user: &User, channel: &str) -> Result<Participant> {
        let ws = node.ws(user).await?;
        Participant::join_on(ws, channel).await
    }

    /// Joins `channel` over an open WebSocket with a fresh media connection that speaks.
    pub async fn join_on(ws: WsClient, channel: &str) -> Result<Participant> {
        Participant::join_with(ws, channel, false).await
    }

    /// Connects `user` and joins `channel` with a media connection that speaks and has a
    /// camera track (it sends video once `send_video` is called).
    pub async fn join_with_camera(
        node: &TestNode,
        user: &User,
        channel: &str,
    ) -> Result<Participant> {
        let ws = node.ws(user).await?;
        Participant::join_with(ws, channel, true).await
    }

    async fn join_with(ws: WsClient, channel: &str, camera: bool) -> Result<Participant> {
        let session: u64 = ws.hello["data"]["sessionId"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| ws.hello["data"]["sessionId"].as_u64())
            .unwrap_or(0);
        let media = if camera {
            Client::with_camera(session).await?
        } else {
            Client::new(session).await?
        };
        let mut p = Participant {
            ws,
            media,
            session,
            channel: channel.to_owned(),
        };
        let offer = p.media.offer().await?;
        let ack =
            p.ws.request("voice:join", json!({"channelId": channel, "sdp": offer}))
                .await?;
        if ack["ok"] != true {
            bail!("voice:join refused: {ack}");
        }
        let answer = ack["data"]["sdp"].as_str().unwrap_or_default().to_owned();
        p.media.accept(answer).await?;
        p.media.speak();
        Ok(p)
    }

    /// Joins the channel again over the same WebSocket with a new media connection (the
    /// server said `voice:user_left` with reason `rejoin`).
    pub async fn rejoin(&mut self) -> Result<()> {
        let _ = self.media.close().await;
        self.media = Client::new(self.session).await?;
        let offer = self.media.offer().await?;
        let ack = self
            .ws
            .request(
                "voice:join",
                json!({"channelId": self.channel, "sdp": offer}),
            )
            .await?;
        if ack["ok"] != true {
            bail!("voice:join refused: {ack}");
        }
        let answer = ack["data"]["sdp"].as_str().unwrap_or_default().to_owned();
        self.media.accept(answer).await?;
        self.media.speak();
        Ok(())
    }

    /// Handles signalling for `wait`; returns the other frames seen.
    pub async fn pump(&mut self, wait: Duration) -> Result<Vec<Value>> {
        let until = Instant::now() + wait;
        let mut other = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let Some(frame) = self.ws.next_within(left).await else {
                break;
            };
            if frame["type"] != "voice:signal" {
                other.push(frame);
                continue;
            }
            if let Some(sdp) = frame["data"]["sdp"].as_str() {
                let answer = self.media.answer(sdp.to_owned()).await?;
                let data = json!({"channelId": self.channel, "sdp": answer});
                let id = self.ws.send("voice:signal", data).await?;
                let ack = self.ws.ack(id).await?;
                if ack["ok"] != true {
                    bail!("answer refused: {ack}");
                }
            } else if let Some(candidate) = frame["data"].get("candidate") {
                self.media.add_candidate(candidate.clone()).await?;
            }
        }
        Ok(other)
    }
}

/// Pumps everyone's signalling for `wait`, returning each one's other frames.
pub async fn pump_all(ps: &mut [&mut Participant], wait: Duration) -> Result<Vec<Vec<Value>>> {
    let mut seen = Vec::new();
    let slice = wait / ps.len().max(1) as u32;
    for p in ps.iter_mut() {
        seen.push(p.pump(slice).await?);
    }
    Ok(seen)
}
