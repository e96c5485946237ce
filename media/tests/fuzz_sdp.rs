//! Fuzzing the SDP and ICE input clients hand the SFU (`voice:join {sdp}`, `voice:signal
//! {sdp}` and `voice:signal {candidate}`): arbitrary text and mutations of a browser's offer
//! are parsed by webrtc-rs or refused with an error, candidates are checked before webrtc-rs
//! gets them, and through a real [`Channel`] every join, answer and candidate completes in
//! bounded time with a result, never a panic (in the test or in any task webrtc-rs runs) or a
//! hung task, and leaves no participant or port behind.
//!
//! CI runs bounded case counts; `VOICEFLOW_FUZZ_SCALE=100` (or `PROPTEST_CASES=N`) runs more.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use voiceflow_media::signal::check_candidate;
use voiceflow_media::testing::Client;
use voiceflow_media::{Channel, MediaConfig, MediaError, MediaPlane, RTCIceCandidateInit, Rights};
use webrtc::peer_connection::RTCSessionDescription;

/// A proptest configuration running `ci_cases` cases (the rules of the unit fuzz tests).
fn config(ci_cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        let scale = std::env::var("VOICEFLOW_FUZZ_SCALE")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        config.cases = ci_cases.saturating_mul(scale);
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x5eed_f00d_0015);
    }
    config.max_shrink_time = 60_000;
    config
}

/// An audio-only offer as Chromium makes it (trimmed of video and data channels).
const BROWSER_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host generation 0\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09:A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=msid:stream track\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1001 cname:abcd\r\n\
a=ssrc:1001 msid:stream track\r\n";

/// Edits of an SDP: whole lines dropped, repeated, swapped or rewritten, and characters.
#[derive(Debug, Clone)]
enum Edit {
    DropLine(usize),
    RepeatLine(usize, u8),
    SwapLines(usize, usize),
    /// Keeps the line's `x=` type and replaces the value.
    ReplaceValue(usize, String),
    InsertLine(usize, String),
    SetChar(usize, char),
    Truncate(usize),
}

fn sdp_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[a-z]=[ -~]{0,30}",
        proptest::sample::select(vec![
            "IN IP4 0.0.0.0",
            "audio 9 UDP/TLS/RTP/SAVPF 111",
            "video 0 RTP/AVP 0",
            "application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "rtpmap:111 opus/48000/2",
            "rtpmap:111",
            "fmtp:111",
            "candidate:1 1 tcp 1 127.0.0.1 9 typ host tcptype passive",
            "candidate:1 1 udp 1 ::1 9 typ host",
            "candidate:x",
            "setup:active",
            "setup:",
            "fingerprint:sha-256 00",
            "fingerprint:md5 AA:BB",
            "mid:",
            "group:BUNDLE 0 1 2",
            "extmap:99999 x",
            "ssrc:4294967295 cname:x",
            "ssrc-group:FID 1",
            "rtcp-fb:* nack",
            "4294967296",
            "-1",
        ])
        .prop_map(str::to_owned),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        3 => any::<usize>().prop_map(Edit::DropLine),
        1 => (any::<usize>(), 1u8..4).prop_map(|(i, n)| Edit::RepeatLine(i, n)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::SwapLines(i, j)),
        4 => (any::<usize>(), sdp_text()).prop_map(|(i, v)| Edit::ReplaceValue(i, v)),
        2 => (any::<usize>(), sdp_text()).prop_map(|(i, v)| Edit::InsertLine(i, v)),
        2 => (any::<usize>(), any::<char>()).prop_map(|(i, c)| Edit::SetChar(i, c)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ];
    proptest::collection::vec(edit, 1..6)
}

fn mutate(sdp: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = sdp.split("\r\n").map(str::to_owned).collect();
    for edit in edits {
        let n = lines.len().max(1);
        match edit {
            Edit::DropLine(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::RepeatLine(i, times) if !lines.is_empty() => {
                let line = lines[i % n].clone();
                for _ in 0..*times {
                    lines.insert(i % n, line.clone());
                }
            }
            Edit::SwapLines(i, j) if !lines.is_empty() => lines.swap(i % n, j % n),
            Edit::ReplaceValue(i, value) if !lines.is_empty() => {
                let line = &mut lines[i % n];
                let kind: String = line.chars().take(2).collect();
                *line = format!("{kind}{value}");
            }
            Edit::InsertLine(i, line) => lines.insert(i % (lines.len() + 1), line.clone()),
            Edit::SetChar(i, c) if !lines.is_empty() => {
                let line = &mut lines[i % n];
                let mut chars: Vec<char> = line.chars().collect();
                if !chars.is_empty() {
                    let at = i % chars.len();
                    chars[at] = *c;
                    *line = chars.into_iter().collect();
                }
            }
            Edit::Truncate(i) => {
                let joined = lines.join("\r\n");
                let cut = joined
                    .char_indices()
                    .map(|(at, _)| at)
                    .nth(i % (joined.chars().count() + 1))
                    .unwrap_or(joined.len());
                lines = joined[..cut].split("\r\n").map(str::to_owned).collect();
            }
            _ => {}
        }
    }
    lines.join("\r\n")
}

/// A description: arbitrary text, or a browser offer as it is (so that candidates and answers
/// reach a joined participant) or with edits.
fn description(base: String) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => "\\PC{0,200}",
        1 => "(v=0\r\n)?([a-z]=[ -~]{0,24}\r\n){0,12}",
        2 => Just(base.clone()),
        6 => edits().prop_map(move |e| mutate(&base, &e)),
    ]
}

/// A candidate: a browser-like one with its fields varied, or arbitrary text.
fn candidate_text() -> impl Strategy<Value = String> {
    let field = |choices: Vec<&'static str>| {
        prop_oneof![
            3 => proptest::sample::select(choices).prop_map(str::to_owned),
            1 => "\\PC{0,6}",
        ]
    };
    let browser_like = (
        field(vec!["candidate:1", "candidate:842163049", "1", ""]),
        field(vec!["1", "2", "0", "65536"]),
        field(vec!["udp", "UDP", "tcp", "TCP", "sctp"]),
        field(vec!["2122260223", "1", "4294967296", "-1"]),
        field(vec![
            "127.0.0.1",
            "::1",
            "10.0.0.5",
            "a.local",
            "example.com",
            "256.1.1.1",
        ]),
        field(vec!["9", "54321", "0", "65536"]),
        field(vec![
            "typ host",
            "typ srflx raddr 1.2.3.4 rport 5",
            "typ relay",
            "typ prflx",
            "typ",
            "host",
        ]),
        field(vec![
            "",
            "tcptype passive",
            "tcptype active",
            "generation 0",
            "raddr",
            "tcptype",
        ]),
    )
        .prop_map(|(f, c, t, p, a, port, typ, ext)| {
            format!("{f} {c} {t} {p} {a} {port} {typ} {ext}")
        });
    prop_oneof![3 => browser_like, 1 => "\\PC{0,60}"]
}

fn candidate_init() -> impl Strategy<Value = RTCIceCandidateInit> {
    (
        candidate_text(),
        proptest::option::of("[0-9a-z]{0,3}"),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(
            |(candidate, sdp_mid, sdp_mline_index)| RTCIceCandidateInit {
                candidate,
                sdp_mid,
                sdp_mline_index,
                ..Default::default()
            },
        )
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn descriptions_parse_or_are_refused(sdp in description(BROWSER_OFFER.to_owned())) {
        let _ = RTCSessionDescription::offer(sdp.clone());
        let _ = RTCSessionDescription::answer(sdp);
    }

    #[test]
    fn candidates_are_checked_before_webrtc_gets_them(candidate in candidate_init()) {
        match check_candidate(&candidate) {
            Ok(()) => {
                let text = candidate.candidate.trim_start_matches("candidate:");
                if !text.is_empty() {
                    let parsed = rtc::ice::candidate::unmarshal_candidate(text);
                    prop_assert!(parsed.map(|c| c.network_type().is_udp()).unwrap_or(false));
                }
            }
            Err(MediaError::Candidate(why)) => prop_assert!(!why.is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }

    #[test]
    fn candidate_json_parses_or_is_refused(json in "\\{(\"(candidate|sdpMid|sdpMLineIndex|usernameFragment)\":(null|[0-9-]{1,6}|\"[ -~]{0,12}\"),?){0,4}\\}") {
        let _ = serde_json::from_str::<RTCIceCandidateInit>(&json);
    }
}

/// Counts panics on every thread (webrtc-rs runs its work on tasks a panic would only end).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

/// How long any one SFU call may take before it counts as hung.
const HUNG: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> Result<T, TestCaseError> {
    tokio::time::timeout(HUNG, f)
        .await
        .map_err(|_| TestCaseError::fail(format!("{what} did not finish within {HUNG:?}")))
}

#[test]
fn the_sfu_answers_or_refuses_mutated_signalling_in_bounded_time() {
    count_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let plane = MediaPlane::new(MediaConfig::default());
    let (channel, mut events) = rt.block_on(async { Channel::new(&plane) });
    // Events (candidates, offers, failures) are not needed; keep the queue empty.
    rt.spawn(async move { while events.recv().await.is_some() {} });
    // A real offer of the webrtc crate, as well as the browser's.
    let client = rt.block_on(Client::new(1)).expect("client");
    let real_offer = rt.block_on(client.offer()).expect("offer");

    let strategy = (
        prop_oneof![
            description(BROWSER_OFFER.to_owned()),
            description(real_offer),
        ],
        proptest::collection::vec(candidate_init(), 0..4),
        description(BROWSER_OFFER.to_owned()),
    );
    let mut runner = TestRunner::new(config(64));
    let ids = std::cell::Cell::new(100u64);
    let joined = std::cell::Cell::new(0u32);
    let result = runner.run(&strategy, |(offer, candidates, answer)| {
        let id = ids.get() + 1;
        ids.set(id);
        rt.block_on(async {
            match bounded("join", channel.join(id, offer, Rights::default())).await? {
                Ok(answer) => {
                    joined.set(joined.get() + 1);
                    prop_assert!(answer.starts_with("v=0"));
                }
                Err(MediaError::Sdp(why)) => prop_assert!(!why.is_empty()),
                // A description that parses may still be refused by the connection.
                Err(MediaError::WebRtc(_) | MediaError::NoDescription) => {}
                Err(other) => prop_assert!(false, "join: unexpected {}", other),
            }
            for candidate in candidates {
                let _ = bounded("candidate", channel.add_candidate(id, candidate)).await?;
            }
            match bounded("answer", channel.apply_answer(id, answer)).await? {
                Err(MediaError::Sdp(_) | MediaError::NoOfferPending | MediaError::NotJoined) => {}
                other => prop_assert!(false, "answer without an offer: {:?}", other),
            }
            bounded("leave", channel.leave(id)).await?;
            prop_assert!(channel.is_empty());
            Ok(())
        })
    });
    rt.block_on(client.close()).expect("close");
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a task panicked");
    assert_eq!(
        plane
            .stats()
            .peers
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    eprintln!(
        "fuzz_sdp: {} of {} mutated offers were answered",
        joined.get(),
        ids.get() - 100
    );
}

/// Regression: webrtc-rs dials the address of a remote ICE-TCP `tcptype passive` candidate,
/// so a client's `voice:signal {candidate}` made the node open a TCP connection to any host
/// and port. Such candidates are refused before webrtc-rs sees them, and nothing is dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_candidate_is_refused_and_never_dialled() -> anyhow::Result<()> {
    let plane = MediaPlane::new(MediaConfig::default());
    let (channel, mut events) = Channel::new(&plane);
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let client = Client::new(7).await?;
    channel
        .join(7, client.offer().await?, Rights::default())
        .await?;
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = target.local_addr()?.port();
    let candidate = RTCIceCandidateInit {
        candidate: format!(
            "candidate:1 1 tcp 2130706431 127.0.0.1 {port} typ host tcptype passive"
        ),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        ..Default::default()
    };
    let result = channel.add_candidate(7, candidate).await;
    assert!(
        matches!(result, Err(MediaError::Candidate(_))),
        "{result:?}"
    );
    // A dial would arrive at once on loopback; a second is ample to see that none does.
    let dialled = tokio::time::timeout(Duration::from_secs(1), target.accept()).await;
    assert!(
        dialled.is_err(),
        "the SFU connected to the candidate's address"
    );
    channel.close().await;
    client.close().await?;
    assert_eq!(
        plane
            .stats()
            .peers
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    Ok(())
}
