//! The video module's tests: which stream is which track, RTX formats and streams in an
//! offer, the bitrate cap.

use super::*;

const OFFER: &str = "v=0\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n\
    a=ssrc:11 cname:x\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n\
    a=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\na=ssrc-group:FID 22 23\r\n\
    a=ssrc:22 cname:x\r\na=ssrc:23 cname:x\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ssrc:33 cname:x\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ssrc:44 cname:x\r\n";

#[test]
fn sections_go_by_order_and_streams_by_their_ssrc() {
    let o = Offered::parse(OFFER);
    assert!(o.screen_audio);
    assert_eq!(o.classify(11, 111), Some((Track::Mic, Codec::Opus)));
    assert_eq!(o.classify(22, 96), Some((Track::Camera, Codec::Vp8)));
    assert_eq!(o.classify(22, 102), Some((Track::Camera, Codec::H264)));
    assert_eq!(o.classify(33, 96), Some((Track::Screen, Codec::Vp8)));
    assert_eq!(o.classify(44, 111), Some((Track::ScreenAudio, Codec::Opus)));
    assert_eq!(o.classify(22, 97), None, "rtx is not forwarded");
    assert_eq!(o.classify(11, 96), None, "video on the microphone's stream");
    assert_eq!(o.classify(99, 96), Some((Track::Camera, Codec::Vp8)));
    assert_eq!(o.classify(99, 111), Some((Track::Mic, Codec::Opus)));
    assert_eq!(Offered::parse("garbage\nm=\na=ssrc:x"), Offered::default());
}

#[test]
fn simulcast_layers_go_by_their_place_in_the_send_list() {
    let sdp = "v=0\r\n\
        m=audio 9 X 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
        a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
        m=video 9 X 96\r\na=mid:1\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
        a=extmap:10/sendonly urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
        a=rtpmap:96 VP8/90000\r\na=rid:q send\r\na=rid:h send\r\na=rid:f send\r\n\
        a=simulcast:send q;~h,x;f\r\n\
        m=video 9 X 96\r\na=mid:2\r\na=ssrc:33 cname:x\r\n";
    let o = Offered::parse(sdp);
    assert_eq!((o.mid_ext, o.rid_ext), (Some(4), Some(10)));
    assert_eq!(o.transport_cc_ext, Some(3));
    assert_eq!(o.simulcast_stream(b"1", b"q"), Some((Track::Camera, 0)));
    assert_eq!(
        o.simulcast_stream(b"1", b"h"),
        Some((Track::Camera, 1)),
        "paused"
    );
    assert_eq!(o.simulcast_stream(b"1", b"f"), Some((Track::Camera, 2)));
    assert_eq!(o.simulcast_stream(b"1", b"x"), None, "an alternative");
    assert_eq!(
        o.simulcast_stream(b"2", b"q"),
        None,
        "the screen is not simulcast"
    );
    assert_eq!(o.simulcast_stream(b"9", b"q"), None);
    assert_eq!(o.simulcast_stream(&[0xff], b"q"), None);
    assert!(o.is_simulcast(Track::Camera) && !o.is_simulcast(Track::Screen));
}

#[test]
fn the_cap_goes_on_receiving_video_sections_only() {
    let sdp = "v=0\r\nc=IN IP4 1.2.3.4\r\n\
        m=audio 9 X 111\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n\
        m=video 9 X 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n\
        m=video 9 X 96\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\n"
        .to_owned();
    let capped = cap_video(sdp.clone(), 800);
    assert_eq!(capped.matches("b=AS:800\r\n").count(), 1);
    assert!(capped.contains("m=video 9 X 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:800\r\na=recvonly"));
    assert_eq!(cap_video(capped.clone(), 800), capped, "once");
    assert_eq!(cap_video(sdp.clone(), 0), sdp);
}

#[test]
fn rtx_formats_and_streams_are_read_from_the_offer() {
    let sdp = "v=0\r\n\
        m=audio 9 X 111\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 X 96 97 98 99 100 101 102\r\n\
        a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n\
        a=rtpmap:99 rtx/90000\r\na=fmtp:99 rtx-time=3000; apt=98\r\n\
        a=rtpmap:100 rtx/90000\r\na=fmtp:100 apt=111\r\n\
        a=rtpmap:101 rtx/90000\r\n\
        a=rtpmap:102 AV1/90000\r\n\
        a=fmtp:103 apt=102\r\n\
        a=ssrc-group:FID 22 23\r\na=ssrc-group:FID 24 24\r\na=ssrc-group:FID x 5\r\n\
        a=ssrc:22 cname:x\r\na=ssrc:23 cname:x\r\n";
    let o = Offered::parse(sdp);
    assert_eq!(o.rtx_apt(97), Some(Ok(96)));
    assert_eq!(o.rtx_apt(99), Some(Ok(98)), "apt among other parameters");
    assert_eq!(o.rtx_apt(100), Some(Err(())), "apt names audio");
    assert_eq!(o.rtx_apt(101), Some(Err(())), "no apt");
    assert_eq!(o.rtx_apt(103), None, "an apt without an rtx rtpmap");
    assert_eq!(o.rtx_apt(96), None, "media");
    assert_eq!(o.classify(22, 98), Some((Track::Camera, Codec::Vp9)));
    assert_eq!(o.classify(22, 102), Some((Track::Camera, Codec::Av1)));
    assert_eq!(o.fid.get(&23), Some(&22));
    assert_eq!(
        o.fid.len(),
        1,
        "a stream repairing itself or a bad number: not taken"
    );
    assert_eq!(o.repaired_rid_ext, Some(11));
}

#[test]
fn a_leg_uses_rtx_only_with_its_stream_and_the_codecs_format() {
    let mut p = LegParams::default();
    assert!(!p.any());
    p.set(Codec::Vp8, Some(96), Some(97));
    p.set(Codec::Vp9, Some(98), None);
    p.set(Codec::H264, None, Some(103));
    assert!(p.any());
    assert_eq!((p.pt(Codec::Vp8), p.pt(Codec::Vp9)), (Some(96), Some(98)));
    assert_eq!(p.pt(Codec::H264), None, "not negotiated: not sent");
    assert_eq!(p.rtx_pt(Codec::Vp8), None, "no RTX stream");
    p.rtx_ssrc = Some(7);
    assert_eq!(p.rtx_pt(Codec::Vp8), Some(97));
    assert_eq!(p.rtx_pt(Codec::Vp9), None, "no RTX format for VP9");
    assert_eq!(
        p.rtx_pt(Codec::H264),
        None,
        "the codec itself is not negotiated"
    );
}
