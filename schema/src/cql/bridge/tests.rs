//! The bridge's rewrites on hand-built frames, its refusal of malformed ones, and a round
//! trip through a real listener to a fake v3 server.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;

/// A `[string map]` body.
fn string_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (pairs.len() as u16).to_be_bytes().to_vec();
    for (k, v) in pairs {
        put_string(&mut out, k).expect("key");
        put_string(&mut out, v).expect("value");
    }
    out
}

/// A v3 `RESULT`/`Prepared` body with `columns` bound variables of type int, no result columns.
fn prepared_v3(columns: i32) -> Vec<u8> {
    let mut body = RESULT_PREPARED.to_be_bytes().to_vec();
    body.extend_from_slice(&2u16.to_be_bytes());
    body.extend_from_slice(&[0xab, 0xcd]); // prepared id
    body.extend_from_slice(&1i32.to_be_bytes()); // flags: global table spec
    body.extend_from_slice(&columns.to_be_bytes());
    put_string(&mut body, "ks").expect("ks");
    put_string(&mut body, "t").expect("t");
    for i in 0..columns {
        put_string(&mut body, &format!("c{i}")).expect("col");
        body.extend_from_slice(&0x0009u16.to_be_bytes()); // int
    }
    body.extend_from_slice(&4i32.to_be_bytes()); // result metadata: no_metadata
    body.extend_from_slice(&0i32.to_be_bytes());
    body
}

#[test]
fn requests_go_down_to_v3_with_cql_version_3() {
    let startup = Frame::new(
        0x04,
        0,
        7,
        OP_STARTUP,
        string_map(&[
            ("CQL_VERSION", "4.0.0"),
            ("DRIVER_NAME", "scylla-rust-driver"),
        ]),
    );
    let out = rewrite_request(startup).expect("rewrite");
    assert_eq!(out.version(), 0x03);
    assert_eq!(&out.header[2..4], &7i16.to_be_bytes());
    assert_eq!(
        out.body,
        string_map(&[
            ("CQL_VERSION", "3.0.0"),
            ("DRIVER_NAME", "scylla-rust-driver")
        ])
    );
    let len = u32::from_be_bytes([out.header[5], out.header[6], out.header[7], out.header[8]]);
    assert_eq!(len as usize, out.body.len());

    // Other requests keep their body byte for byte.
    let query = Frame::new(0x04, 0, 1, 0x07, vec![1, 2, 3]);
    let out = rewrite_request(query).expect("rewrite");
    assert_eq!((out.version(), out.body.clone()), (0x03, vec![1, 2, 3]));
}

#[test]
fn prepared_results_gain_an_empty_partition_key_list() {
    for columns in [0, 3] {
        let v3 = prepared_v3(columns);
        let out = rewrite_response(Frame::new(0x83, 0, 1, OP_RESULT, v3.clone())).expect("ok");
        assert_eq!(out.version(), 0x84);
        // kind (4) + id (2 + 2) + flags (4) + column count (4) = 16 bytes, then pk_count = 0.
        let mut expected = v3[..16].to_vec();
        expected.extend_from_slice(&0i32.to_be_bytes());
        expected.extend_from_slice(&v3[16..]);
        assert_eq!(out.body, expected, "{columns} columns");
        assert_eq!(out.to_bytes().len(), HEADER_LEN + v3.len() + 4);
    }
    // With a tracing id in front.
    let mut traced = vec![9u8; 16];
    traced.extend_from_slice(&prepared_v3(1));
    let out =
        rewrite_response(Frame::new(0x83, FLAG_TRACING, 1, OP_RESULT, traced.clone())).expect("ok");
    assert_eq!(out.body.len(), traced.len() + 4);
    assert_eq!(&out.body[..16], &[9u8; 16]);
}

#[test]
fn other_responses_only_change_version() {
    let mut rows = 2i32.to_be_bytes().to_vec(); // kind Rows
    rows.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
    let out = rewrite_response(Frame::new(0x83, 0, 5, OP_RESULT, rows.clone())).expect("ok");
    assert_eq!((out.version(), out.body), (0x84, rows));
    let event = rewrite_response(Frame::new(0x83, 0, -1, 0x0c, vec![7])).expect("ok");
    assert_eq!(
        (event.version(), &event.header[2..4]),
        (0x84, &(-1i16).to_be_bytes()[..])
    );
}

#[test]
fn malformed_frames_are_errors_not_panics() {
    let truncated = Frame::new(0x04, 0, 1, OP_STARTUP, vec![0, 1, 0, 5, b'a']);
    assert_eq!(
        rewrite_request(truncated).expect_err("truncated").kind(),
        io::ErrorKind::InvalidData
    );
    let trailing = Frame::new(0x04, 0, 1, OP_STARTUP, [string_map(&[]), vec![1]].concat());
    assert!(rewrite_request(trailing).is_err());
    let compressed = Frame::new(0x04, FLAG_COMPRESSION, 1, OP_STARTUP, string_map(&[]));
    assert!(rewrite_request(compressed).is_err());
    let mut short = RESULT_PREPARED.to_be_bytes().to_vec();
    short.extend_from_slice(&[0, 9, 1]);
    assert!(rewrite_response(Frame::new(0x83, 0, 1, OP_RESULT, short)).is_err());
    let mut negative = prepared_v3(0);
    negative[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(rewrite_response(Frame::new(0x83, 0, 1, OP_RESULT, negative)).is_err());
    assert!(rewrite_response(Frame::new(0x83, 0, 1, OP_RESULT, vec![0, 0])).is_err());
}

#[tokio::test]
async fn oversized_and_truncated_frames_end_the_read() {
    let mut header = Frame::new(0x04, 0, 1, 0x07, Vec::new()).header;
    header[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = read_frame(&mut &header[..]).await.expect_err("oversized");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let mut cut = Frame::new(0x04, 0, 1, 0x07, vec![1, 2, 3]).to_bytes();
    cut.truncate(10);
    assert!(read_frame(&mut &cut[..]).await.is_err());
    assert!(read_frame(&mut &[][..]).await.expect("clean end").is_none());
}

/// A v4 client talks through the bridge to a fake v3 server that checks what it receives
/// and answers with a v3 `Prepared` result.
#[tokio::test]
async fn a_connection_is_bridged_both_ways() {
    let server = TcpListener::bind("127.0.0.1:0").await.expect("bind server");
    let upstream = server.local_addr().expect("addr");
    let fake = tokio::spawn(async move {
        let (mut conn, _) = server.accept().await.expect("accept");
        let startup = read_frame(&mut conn).await.expect("read").expect("frame");
        assert_eq!((startup.version(), startup.opcode()), (0x03, OP_STARTUP));
        assert_eq!(startup.body, string_map(&[("CQL_VERSION", "3.0.0")]));
        let reply = Frame::new(0x83, 0, 3, OP_RESULT, prepared_v3(2));
        conn.write_all(&reply.to_bytes()).await.expect("write");
        // Then the client hangs up.
        assert!(read_frame(&mut conn).await.expect("read").is_none());
    });

    let bridge = TcpListener::bind("127.0.0.1:0").await.expect("bind bridge");
    let bridge_addr = bridge.local_addr().expect("addr");
    let bridge_task = tokio::spawn(run(bridge, upstream));

    let mut client = TcpStream::connect(bridge_addr).await.expect("connect");
    let startup = Frame::new(
        0x04,
        0,
        3,
        OP_STARTUP,
        string_map(&[("CQL_VERSION", "4.0.0")]),
    );
    client.write_all(&startup.to_bytes()).await.expect("send");
    let reply = read_frame(&mut client).await.expect("read").expect("reply");
    assert_eq!((reply.version(), reply.opcode()), (0x84, OP_RESULT));
    assert_eq!(reply.body.len(), prepared_v3(2).len() + 4);
    client.shutdown().await.expect("shutdown");
    drop(client);
    fake.await.expect("fake server checks passed");
    bridge_task.abort();
}

/// A client of a bridge whose server is down is disconnected, not left hanging.
#[tokio::test]
async fn a_missing_server_closes_the_client() {
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = gone.local_addr().expect("addr");
    drop(gone);
    let bridge = TcpListener::bind("127.0.0.1:0").await.expect("bind bridge");
    let bridge_addr = bridge.local_addr().expect("addr");
    let bridge_task = tokio::spawn(run(bridge, upstream));
    let mut client = TcpStream::connect(bridge_addr).await.expect("connect");
    let read = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut client)).await;
    assert!(
        matches!(read, Ok(Ok(None)) | Ok(Err(_))),
        "closed, got {read:?}"
    );
    bridge_task.abort();
}
