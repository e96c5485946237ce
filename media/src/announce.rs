//! Announced addresses for nodes behind 1:1 NAT (a cloud VM with a private interface and a
//! public IP): media sockets bind the private address, and every host candidate the server
//! hands a client (in its answers, its offers and trickled) names the public one instead, at
//! the same port. This is what LiveKit's `node_ip` / Janus's `nat_1_1_mapping` do; webrtc-rs
//! 0.21 has the setting (`with_nat_1to1_ips`) but does not apply it yet, so the server
//! rewrites its own candidates.

use std::net::IpAddr;

/// Rewrites every host candidate in `text` (SDP `a=candidate:` lines or a bare trickled
/// `candidate:` string) to name `public`. Everything else is left as it is.
pub fn announce(text: &str, public: IpAddr) -> String {
    let public = public.to_string();
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        out.push_str(&rewrite_line(body, &public));
        out.push_str(&line[body.len()..]);
    }
    out
}

fn rewrite_line(line: &str, public: &str) -> String {
    let candidate = line.strip_prefix("a=").unwrap_or(line);
    if !candidate.starts_with("candidate:") {
        return line.to_owned();
    }
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> …
    let mut fields: Vec<&str> = line.split(' ').collect();
    if fields.len() >= 8 && fields[6] == "typ" && fields[7] == "host" {
        fields[4] = public;
        return fields.join(" ");
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: [u8; 4] = [203, 0, 113, 7];

    #[test]
    fn host_candidates_name_the_public_address() {
        let sdp = "v=0\r\nc=IN IP4 0.0.0.0\r\n\
                   a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n\
                   a=candidate:2 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n\
                   a=ice-ufrag:abc\r\n";
        let out = announce(sdp, PUBLIC.into());
        assert_eq!(
            out,
            "v=0\r\nc=IN IP4 0.0.0.0\r\n\
             a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host\r\n\
             a=candidate:2 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n\
             a=ice-ufrag:abc\r\n"
        );
        let trickled = "candidate:1 1 udp 2130706431 10.0.0.5 40001 typ host";
        assert_eq!(
            announce(trickled, PUBLIC.into()),
            "candidate:1 1 udp 2130706431 203.0.113.7 40001 typ host"
        );
    }

    #[test]
    fn garbage_is_left_alone() {
        let text = "candidate:x\na=candidate:1 1 udp\nc=IN\n\n";
        assert_eq!(announce(text, PUBLIC.into()), text);
    }
}
