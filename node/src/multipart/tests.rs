//! The multipart parser: known bodies, then properties over arbitrary bodies, boundaries and
//! ways of cutting them into network pieces (proptest): no panic, bounded memory, the same
//! outcome however the body is cut, and well-formed forms read back exactly.

use proptest::prelude::*;

use super::*;

/// Pushes `pieces` then finishes: the events (consecutive data merged) and the outcome.
fn run(boundary: &str, pieces: &[&[u8]]) -> (Vec<Event>, Result<(), MultipartError>) {
    let mut parser = Parser::new(boundary);
    let limit = MAX_HEADER_BYTES.max(boundary.len() + 4);
    let mut events: Vec<Event> = Vec::new();
    for piece in pieces {
        match parser.push(piece) {
            Ok(more) => {
                for event in more {
                    match (events.last_mut(), event) {
                        (Some(Event::Data(have)), Event::Data(more)) => {
                            let mut joined = have.to_vec();
                            joined.extend_from_slice(&more);
                            *have = Bytes::from(joined);
                        }
                        (_, event) => events.push(event),
                    }
                }
            }
            Err(e) => return (events, Err(e)),
        }
        assert!(
            parser.buffered() <= limit,
            "{} bytes held back (limit {limit})",
            parser.buffered()
        );
    }
    let outcome = parser.finish();
    (events, outcome)
}

/// `body` cut at `cuts` (positions, any order, any range).
fn cut<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut pieces = Vec::new();
    let mut from = 0;
    for to in at {
        pieces.push(&body[from..to]);
        from = to;
    }
    pieces.push(&body[from..]);
    pieces
}

fn part(name: &str, filename: Option<&str>) -> Event {
    Event::Part(PartHeaders {
        name: Some(name.to_owned()),
        filename: filename.map(str::to_owned),
    })
}

fn data(bytes: &[u8]) -> Event {
    Event::Data(Bytes::copy_from_slice(bytes))
}

#[test]
fn a_browser_form_parses() {
    let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\n\
                 hi\r\n--XyZ  \r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"a \\\"b\\\";c.png\"\r\nContent-Type: image/png\r\n\r\n\
                 \x89PNG\r\n-- not a boundary\r\n--XyZ--\r\nepilogue";
    let (events, outcome) = run("XyZ", &[body]);
    outcome.expect("complete");
    assert_eq!(
        events,
        vec![
            part("caption", None),
            data(b"hi"),
            Event::PartEnd,
            part("file", Some("a \"b\";c.png")),
            data(b"\x89PNG\r\n-- not a boundary"),
            Event::PartEnd,
            Event::End,
        ]
    );
}

#[test]
fn malformed_bodies_are_clear_errors() {
    let headers_forever = [b"--b\r\n".as_slice(), &[b'x'; MAX_HEADER_BYTES + 1]].concat();
    assert_eq!(
        run("b", &[&headers_forever]).1,
        Err(MultipartError::HeadersTooLarge)
    );
    assert_eq!(
        run("b", &[b"--b\r\nno colon here\r\n\r\n"]).1,
        Err(MultipartError::BadHeader)
    );
    assert_eq!(
        run("b", &[b"--bogus\r\n"]).1,
        Err(MultipartError::BadBoundaryLine)
    );
    assert_eq!(
        run("b", &[b"--b\r\n\r\nshort"]).1,
        Err(MultipartError::Incomplete)
    );
    assert_eq!(run("b", &[b""]).1, Err(MultipartError::Incomplete));
    // A part without headers is a part without a name.
    let (events, outcome) = run("b", &[b"--b\r\n\r\nx\r\n--b--"]);
    outcome.expect("complete");
    assert_eq!(events[0], Event::Part(PartHeaders::default()));
}

#[test]
fn boundaries_come_from_the_content_type() {
    assert_eq!(
        boundary("multipart/form-data; boundary=abc").as_deref(),
        Ok("abc")
    );
    assert_eq!(
        boundary("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a b:c\"").as_deref(),
        Ok("a b:c")
    );
    assert_eq!(
        boundary("multipart/form-data"),
        Err(MultipartError::BadBoundary)
    );
    assert_eq!(
        boundary("multipart/form-data; boundary="),
        Err(MultipartError::BadBoundary)
    );
    assert_eq!(
        boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
        Err(MultipartError::BadBoundary)
    );
    assert_eq!(
        boundary("text/plain; boundary=a"),
        Err(MultipartError::BadBoundary)
    );
}

/// A boundary as clients make them (RFC 2046 bchars, no trailing space).
fn boundary_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9'()+_,./:=?-]{1,70}"
}

/// Bytes biased towards what confuses a multipart parser.
fn tricky_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            2 => Just(b'\r'),
            2 => Just(b'\n'),
            2 => Just(b'-'),
            1 => Just(b'"'),
            1 => Just(b'b'),
        ],
        0..max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes, any boundary, cut anywhere: no panic, bounded buffering, and the same
    /// outcome as the body in one piece.
    #[test]
    fn arbitrary_bodies_never_panic_and_do_not_depend_on_the_cuts(
        boundary in prop_oneof![Just("b".to_owned()), boundary_strategy()],
        prefix in prop::sample::select(vec![0usize, 1, 2]),
        body in tricky_bytes(600),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        // Often start like a real form, so the parser gets past the preamble.
        let mut full = match prefix {
            0 => Vec::new(),
            1 => format!("--{boundary}\r\n").into_bytes(),
            _ => format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n")
                .into_bytes(),
        };
        full.extend_from_slice(&body);
        let whole = run(&boundary, &[&full]);
        let pieces = run(&boundary, &cut(&full, &cuts));
        prop_assert_eq!(&whole.1, &pieces.1);
        if whole.1.is_ok() {
            prop_assert_eq!(whole.0, pieces.0);
        }
    }

    /// Well-formed forms (any field names, file names and contents that do not contain the
    /// delimiter) read back exactly, however they are cut.
    #[test]
    fn well_formed_forms_read_back(
        boundary in boundary_strategy(),
        parts in prop::collection::vec(
            ("[a-z]{1,8}", prop::option::of("[^\"\\\\\r\n]{0,20}"), tricky_bytes(300)),
            1..4,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let mut body = Vec::new();
        let mut expected = Vec::new();
        for (name, filename, content) in &parts {
            prop_assume!(find(&[b"\r\n".as_slice(), content].concat(), &delimiter).is_none());
            prop_assume!(find(&[content.as_slice(), &delimiter].concat(), &delimiter)
                == Some(content.len()));
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let disposition = match filename {
                Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
                None => format!("form-data; name={name}"),
            };
            body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n\r\n").as_bytes());
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
            expected.push(part(name, filename.as_deref()));
            if !content.is_empty() {
                expected.push(data(content));
            }
            expected.push(Event::PartEnd);
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        expected.push(Event::End);
        let (events, outcome) = run(&boundary, &cut(&body, &cuts));
        prop_assert_eq!(outcome, Ok(()));
        prop_assert_eq!(events, expected);
    }
}
