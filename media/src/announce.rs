//! Announced addresses for nodes behind 1:1 NAT (a cloud VM with a private interface and a
//! public IP): media sockets bind the private address, and every candidate the server hands
//! a client (in its answers, its offers and trickled) names the public one instead. This is
//! what LiveKit's `node_ip` / Janus's `nat_1_1_mapping` do; webrtc-rs 0.21 has no setting for
//! it, so the server rewrites its own candidates.

use std::net::IpAddr;

/// Rewrites candidates that name `bind` to name `public`: SDP `a=candidate:` lines, a bare
/// trickled `candidate:` string, and `c=` lines. Everything else is left as it is.
pub fn announce(text: &str, bind: IpAddr, public: IpAddr) -> String {
    if bind == public {
        return text.to_owned();
    }
    let (bind, public) = (bind.to_string(), public.to_string());
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let (body, end) = split_eol(line);
        out.push_str(&rewrite_line(body, &bind, &public));
        out.push_str(end);
    }
    out
}

fn split_eol(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\r', '\n']);
    (body, &line[body.len()..])
}

fn rewrite_line(line: &str, bind: &str, public: &str) -> String {
    let candidate = line.strip_prefix("a=").unwrap_or(line);
    if candidate.starts_with("candidate:") {
        // candidate:<foundation> <component> <transport> <priority> <address> <port> typ …
        let mut fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) == Some(&bind) {
            fields[4] = public;
            return fields.join(" ");
        }
    } else if let Some(rest) = line.strip_prefix("c=IN ") {
        let mut fields: Vec<&str> = rest.split(' ').collect();
        if fields.get(1) == Some(&bind) {
            let family = if public.contains(':') { "IP6" } else { "IP4" };
            fields[0] = family;
            fields[1] = public;
            return format!("c=IN {}", fields.join(" "));
        }
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND: [u8; 4] = [10, 0, 0, 5];
    const PUBLIC: [u8; 4] = [203, 0, 113, 7];

    #[test]
    fn host_candidates_and_connection_lines_name_the_public_address() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.5\r\n\
                   a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n\
                   a=candidate:2 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n\
                   a=ice-ufrag:abc\r\n";
        let out = announce(sdp, BIND.into(), PUBLIC.into());
        assert_eq!(
            out,
            "v=0\r\nc=IN IP4 203.0.113.7\r\n\
             a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host\r\n\
             a=candidate:2 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n\
             a=ice-ufrag:abc\r\n"
        );
        let trickled = "candidate:1 1 udp 2130706431 10.0.0.5 40001 typ host";
        assert_eq!(
            announce(trickled, BIND.into(), PUBLIC.into()),
            "candidate:1 1 udp 2130706431 203.0.113.7 40001 typ host"
        );
    }

    #[test]
    fn other_addresses_and_garbage_are_left_alone() {
        let text = "candidate:x\na=candidate:1 1 udp 5 192.0.2.1 9 typ host\nc=IN\n";
        assert_eq!(announce(text, BIND.into(), PUBLIC.into()), text);
        assert_eq!(announce(text, BIND.into(), BIND.into()), text);
    }
}
