//! The `turn_*` keys of the `[voice]` table: the embedded TURN server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use voiceflow_actors::context::TurnIssuer;
use voiceflow_media::turn::{TurnConfig, TurnLimits, TurnSecret, TurnServer};

use super::VoiceConfig;

impl VoiceConfig {
    /// Rejects TURN settings that cannot work.
    pub(super) fn validate_turn(&self) -> Result<(), String> {
        if !self.turn_enabled {
            return Ok(());
        }
        match (self.turn_relay_port_min, self.turn_relay_port_max) {
            (Some(min), Some(max)) if min > max => {
                return Err("voice.turn_relay_port_min must not be above its max".into());
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err("voice.turn_relay_port_min and _max go together".into());
            }
            _ => {}
        }
        if self.turn_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("voice.turn_secret must be at least 16 characters".into());
        }
        if self.turn_max_allocations == 0 || self.turn_max_allocations_per_user == 0 {
            return Err("voice.turn_max_allocations(_per_user) must be at least 1".into());
        }
        if self.turn_public_ip().is_unspecified() || self.relay_public_ip().is_unspecified() {
            return Err(
                "voice.turn_announced_ip (or announced_ip) is needed when the TURN listener or \
                 relays bind an unspecified address"
                    .into(),
            );
        }
        Ok(())
    }

    fn turn_listen(&self) -> IpAddr {
        self.turn_listen_ip.unwrap_or(self.bind_ip)
    }

    fn turn_public_ip(&self) -> IpAddr {
        self.turn_announced_ip
            .or(self.announced_ip)
            .unwrap_or(self.turn_listen())
    }

    fn relay_public_ip(&self) -> IpAddr {
        self.turn_announced_ip
            .or(self.announced_ip)
            .unwrap_or(self.turn_relay_ip.unwrap_or(self.bind_ip))
    }

    /// The TURN server's settings.
    pub fn turn_config(&self) -> TurnConfig {
        let mut allowed = self.turn_allowed_peers.clone();
        if allowed.is_empty() && !self.bind_ip.is_unspecified() {
            allowed.push(self.bind_ip);
            allowed.extend(self.announced_ip);
        }
        if allowed.iter().any(IpAddr::is_unspecified) {
            allowed.clear();
        }
        TurnConfig {
            listen_ip: self.turn_listen(),
            port: self.turn_port,
            relay_ip: self.turn_relay_ip.unwrap_or(self.bind_ip),
            relay_announced_ip: self.turn_announced_ip.or(self.announced_ip),
            relay_ports: self.turn_relay_port_min.zip(self.turn_relay_port_max),
            allowed_peers: allowed,
            limits: TurnLimits {
                max_allocations: self.turn_max_allocations,
                max_allocations_per_user: self.turn_max_allocations_per_user,
                max_lifetime: Duration::from_secs(self.turn_max_lifetime_secs.max(1)),
                max_kbps: self.turn_max_kbps,
                ..TurnLimits::default()
            },
        }
    }

    /// Starts the TURN server when enabled; `jwt_secret` keys the credentials when no
    /// `turn_secret` is set.
    pub async fn start_turn(
        &self,
        jwt_secret: &str,
    ) -> anyhow::Result<Option<(TurnServer, TurnIssuer)>> {
        if !self.turn_enabled {
            return Ok(None);
        }
        let secret = match &self.turn_secret {
            Some(s) => TurnSecret::new(s.as_bytes().to_vec()),
            None => TurnSecret::derived_from(jwt_secret.as_bytes()),
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let server = TurnServer::start(self.turn_config(), secret.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the TURN server: {e}"))?;
        let host = self.turn_public_ip();
        let udp = SocketAddr::new(host, server.udp_addr().port());
        let tcp = SocketAddr::new(host, server.tcp_addr().port());
        let issuer = TurnIssuer {
            urls: vec![
                format!("turn:{udp}?transport=udp"),
                format!("turn:{tcp}?transport=tcp"),
            ],
            secret,
            ttl: Duration::from_secs(self.turn_credential_ttl_secs.max(1)),
        };
        Ok(Some((server, issuer)))
    }
}
