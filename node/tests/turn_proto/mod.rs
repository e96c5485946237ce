//! A minimal TURN client for tests, over UDP or TCP, built from webrtc-rs's `rtc-stun` and
//! `rtc-turn` message types: Allocate, CreatePermission, ChannelBind, Send/Data indications,
//! ChannelData.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc::stun::error_code::ErrorCodeAttribute;
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, Getter, METHOD_ALLOCATE,
    METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_DATA, METHOD_SEND, Message, MessageType,
    Setter, TransactionId,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::turn::proto::PROTO_UDP;
use rtc::turn::proto::channum::ChannelNumber;
use rtc::turn::proto::data::Data;
use rtc::turn::proto::peeraddr::PeerAddress;
use rtc::turn::proto::relayaddr::RelayedAddress;
use rtc::turn::proto::reqtrans::RequestedTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);

enum Io {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream),
}

/// A connection to the TURN server.
pub struct TurnConn {
    io: Io,
    /// Long-term credentials once allocated: (username, realm, nonce, password).
    creds: Option<(String, String, String, String)>,
    /// Data and ChannelData messages that arrived while waiting for a response.
    inbox: Vec<Vec<u8>>,
}

fn build(setters: Vec<Box<dyn Setter + '_>>) -> Result<Message> {
    let mut m = Message::new();
    m.build(&setters)?;
    Ok(m)
}

/// A signed Allocate request.
pub fn allocate_request(user: &str, password: &str, realm: &str, nonce: &str) -> Result<Message> {
    signed(
        MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST),
        vec![Box::new(RequestedTransport {
            protocol: PROTO_UDP,
        })],
        (user, realm, nonce, password),
    )
}

fn signed(
    typ: MessageType,
    attrs: Vec<Box<dyn Setter>>,
    (user, realm, nonce, password): (&str, &str, &str, &str),
) -> Result<Message> {
    let provider = rtc::crypto::default_provider().map_err(|e| anyhow::anyhow!("{e}"))?;
    let integrity = MessageIntegrity::new_long_term_integrity_with_provider(
        user.to_owned(),
        realm.to_owned(),
        password.to_owned(),
        provider.crypto(),
    )?;
    let mut setters: Vec<Box<dyn Setter + '_>> =
        vec![Box::new(TransactionId::new()), Box::new(typ)];
    setters.extend(attrs);
    setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, user.to_owned())));
    setters.push(Box::new(TextAttribute::new(ATTR_REALM, realm.to_owned())));
    setters.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce.to_owned())));
    setters.push(Box::new(integrity));
    setters.push(Box::new(FINGERPRINT));
    build(setters)
}

/// The error code of a response, if it is an error.
pub fn code_of(m: &Message) -> Option<u16> {
    if m.typ.class != CLASS_ERROR_RESPONSE {
        return None;
    }
    let mut code = ErrorCodeAttribute::default();
    code.get_from(m).ok()?;
    Some(code.code.0)
}

fn peer_attr(peer: SocketAddr) -> Box<dyn Setter> {
    Box::new(PeerAddress {
        ip: peer.ip(),
        port: peer.port(),
    })
}

impl TurnConn {
    /// Over UDP.
    pub async fn udp(server: SocketAddr) -> Result<TurnConn> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        Ok(TurnConn {
            io: Io::Udp(socket, server),
            creds: None,
            inbox: Vec::new(),
        })
    }

    /// Over TCP.
    pub async fn tcp(server: SocketAddr) -> Result<TurnConn> {
        Ok(TurnConn {
            io: Io::Tcp(TcpStream::connect(server).await?),
            creds: None,
            inbox: Vec::new(),
        })
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.io {
            Io::Udp(socket, server) => {
                socket.send_to(bytes, *server).await?;
            }
            Io::Tcp(stream) => stream.write_all(bytes).await?,
        }
        Ok(())
    }

    async fn recv_raw(&mut self) -> Result<Vec<u8>> {
        let read = async {
            match &mut self.io {
                Io::Udp(socket, _) => {
                    let mut buf = vec![0u8; 2048];
                    let n = socket.recv(&mut buf).await?;
                    buf.truncate(n);
                    Ok::<_, anyhow::Error>(buf)
                }
                Io::Tcp(stream) => {
                    let mut head = [0u8; 4];
                    stream.read_exact(&mut head).await?;
                    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
                    let total = if head[0] >> 6 == 0 {
                        20 + len
                    } else {
                        (4 + len).div_ceil(4) * 4
                    };
                    let mut frame = vec![0u8; total];
                    frame[..4].copy_from_slice(&head);
                    stream.read_exact(&mut frame[4..]).await?;
                    Ok(frame)
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .context("nothing from the TURN server")?
    }

    /// Sends a request and waits for its response.
    pub async fn request(&mut self, m: Message) -> Result<Message> {
        self.send_raw(&m.raw).await?;
        loop {
            let raw = self.recv_raw().await?;
            if !rtc::stun::message::is_stun_message(&raw) {
                self.inbox.push(raw);
                continue;
            }
            let mut reply = Message::new();
            reply.raw = raw.clone();
            reply.decode()?;
            if reply.transaction_id == m.transaction_id {
                return Ok(reply);
            }
            self.inbox.push(raw);
        }
    }

    /// An anonymous Allocate: the server's 401 names the realm and a nonce.
    pub async fn challenge(&mut self) -> Result<(String, String)> {
        let m = build(vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
            Box::new(RequestedTransport {
                protocol: PROTO_UDP,
            }),
            Box::new(FINGERPRINT),
        ])?;
        let reply = self.request(m).await?;
        if code_of(&reply) != Some(401) {
            bail!("expected a 401 challenge, got {reply}");
        }
        let realm = TextAttribute::get_from_as(&reply, ATTR_REALM)?.text;
        let nonce = TextAttribute::get_from_as(&reply, ATTR_NONCE)?.text;
        Ok((realm, nonce))
    }

    /// A signed Allocate; returns the relayed address.
    pub async fn allocate(
        &mut self,
        user: &str,
        password: &str,
        realm: &str,
        nonce: &str,
    ) -> Result<SocketAddr> {
        let reply = self
            .request(allocate_request(user, password, realm, nonce)?)
            .await?;
        if reply.typ.class == CLASS_ERROR_RESPONSE {
            bail!("Allocate refused: {:?}", code_of(&reply));
        }
        let mut relayed = RelayedAddress::default();
        relayed.get_from(&reply)?;
        self.creds = Some((
            user.to_owned(),
            realm.to_owned(),
            nonce.to_owned(),
            password.to_owned(),
        ));
        Ok(SocketAddr::new(relayed.ip, relayed.port))
    }

    async fn signed_request(
        &mut self,
        typ: MessageType,
        attrs: Vec<Box<dyn Setter>>,
    ) -> Result<()> {
        let (u, r, n, p) = self.creds.clone().context("allocate first")?;
        let reply = self.request(signed(typ, attrs, (&u, &r, &n, &p))?).await?;
        if reply.typ.class == CLASS_ERROR_RESPONSE {
            bail!("{} refused: {:?}", typ, code_of(&reply));
        }
        Ok(())
    }

    /// CreatePermission for `peer`.
    pub async fn create_permission(&mut self, peer: SocketAddr) -> Result<()> {
        let typ = MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST);
        self.signed_request(typ, vec![peer_attr(peer)]).await
    }

    /// ChannelBind `number` to `peer`.
    pub async fn channel_bind(&mut self, number: u16, peer: SocketAddr) -> Result<()> {
        let typ = MessageType::new(METHOD_CHANNEL_BIND, CLASS_REQUEST);
        let attrs: Vec<Box<dyn Setter>> = vec![Box::new(ChannelNumber(number)), peer_attr(peer)];
        self.signed_request(typ, attrs).await
    }

    /// A Send indication of `data` to `peer`.
    pub async fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) -> Result<()> {
        let m = build(vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            peer_attr(peer),
            Box::new(Data(data.to_vec())),
            Box::new(FINGERPRINT),
        ])?;
        self.send_raw(&m.raw).await
    }

    /// A ChannelData message to the server.
    pub async fn send_channel_data(&mut self, number: u16, data: &[u8]) -> Result<()> {
        let mut out = number.to_be_bytes().to_vec();
        out.extend_from_slice(&u16::try_from(data.len())?.to_be_bytes());
        out.extend_from_slice(data);
        if matches!(self.io, Io::Tcp(_)) {
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        self.send_raw(&out).await
    }

    async fn next(&mut self) -> Result<Vec<u8>> {
        if !self.inbox.is_empty() {
            return Ok(self.inbox.remove(0));
        }
        self.recv_raw().await
    }

    /// The payload of the next Data indication.
    pub async fn data_indication(&mut self) -> Result<Vec<u8>> {
        let raw = self.next().await?;
        let mut m = Message::new();
        m.raw = raw;
        m.decode()?;
        if m.typ != MessageType::new(METHOD_DATA, CLASS_INDICATION) {
            bail!("expected a Data indication, got {m}");
        }
        let mut data = Data::default();
        data.get_from(&m)?;
        Ok(data.0)
    }

    /// The next ChannelData message: its channel and payload.
    pub async fn channel_data(&mut self) -> Result<(u16, Vec<u8>)> {
        let raw = self.next().await?;
        if raw.len() < 4 || raw[0] >> 6 != 1 {
            bail!("expected ChannelData, got {raw:?}");
        }
        if matches!(self.io, Io::Tcp(_)) && !raw.len().is_multiple_of(4) {
            bail!("ChannelData over TCP must be padded to four bytes");
        }
        let len = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
        let payload = raw.get(4..4 + len).context("short ChannelData")?.to_vec();
        Ok((u16::from_be_bytes([raw[0], raw[1]]), payload))
    }
}
