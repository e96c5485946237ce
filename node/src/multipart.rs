//! A streaming `multipart/form-data` parser (RFC 7578 over RFC 2046 §5.1) for uploads.
//!
//! Sans-I/O: [`Parser::push`] takes the body in whatever pieces the network delivers and
//! returns what they complete, [`Parser::finish`] says whether the body ended where a body
//! may end. Memory is bounded whatever the input: a part's content is handed out as it
//! arrives (only a tail shorter than the boundary delimiter is held back, in case it starts
//! the delimiter), and a part's headers may take at most [`MAX_HEADER_BYTES`]. Every malformed
//! body is a [`MultipartError`], never a panic.

use bytes::{Buf, Bytes, BytesMut};

/// Most bytes a part's header section may have.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY: usize = 70;

/// What is wrong with a multipart body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The `Content-Type` has no usable `boundary` parameter.
    #[error("the content type has no valid boundary")]
    BadBoundary,
    /// A part's header section is longer than [`MAX_HEADER_BYTES`].
    #[error("a part's headers are longer than {MAX_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    /// A part header line is not `Name: value`.
    #[error("a part header is malformed")]
    BadHeader,
    /// A boundary line is followed by something other than a line end or `--`.
    #[error("a boundary line is malformed")]
    BadBoundaryLine,
    /// The body ended before the closing boundary.
    #[error("the body ended before the closing boundary")]
    Incomplete,
}

/// A part's headers, as far as uploads care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHeaders {
    /// `Content-Disposition`'s `name`.
    pub name: Option<String>,
    /// `Content-Disposition`'s `filename`.
    pub filename: Option<String>,
}

/// What a piece of the body completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A part begins.
    Part(PartHeaders),
    /// Some content of the current part.
    Data(Bytes),
    /// The current part ended.
    PartEnd,
    /// The closing boundary: the form is complete (anything after it is ignored).
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary (the preamble is skipped).
    Preamble,
    /// Right after a delimiter: `--` (the end), or padding and a line end.
    AfterDelimiter,
    /// After a delimiter's `--`: done, anything further is epilogue.
    Done,
    /// In a part's header section.
    Headers,
    /// In a part's content.
    Content,
}

/// The parser; see the module docs.
#[derive(Debug)]
pub struct Parser {
    /// `\r\n--<boundary>`.
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
}

/// The `boundary` parameter of a `multipart/*` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or_default().trim();
    if !kind.to_ascii_lowercase().starts_with("multipart/") {
        return Err(MultipartError::BadBoundary);
    }
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            let valid = !value.is_empty()
                && value.len() <= MAX_BOUNDARY
                && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                && !value.ends_with(' ');
            return if valid {
                Ok(value.to_owned())
            } else {
                Err(MultipartError::BadBoundary)
            };
        }
    }
    Err(MultipartError::BadBoundary)
}

impl Parser {
    /// A parser for a body with this boundary (from [`boundary`]).
    pub fn new(boundary: &str) -> Parser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first delimiter may open the body: parse as if a line end came before it.
        let mut buf = BytesMut::with_capacity(delimiter.len());
        buf.extend_from_slice(b"\r\n");
        Parser {
            delimiter,
            buf,
            state: State::Preamble,
        }
    }

    /// Bytes held back, at most a header section or a delimiter's length plus what one
    /// [`Self::push`] handed in and did not complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next piece of the body; returns the events it completed, in order.
    pub fn push(&mut self, piece: &[u8]) -> Result<Vec<Event>, MultipartError> {
        let mut events = Vec::new();
        if self.state == State::Done {
            return Ok(events);
        }
        self.buf.extend_from_slice(piece);
        loop {
            let progressed = match self.state {
                State::Preamble => self.skip_to_delimiter(None),
                State::Content => self.skip_to_delimiter(Some(&mut events)),
                State::AfterDelimiter => self.after_delimiter(&mut events)?,
                State::Headers => self.headers(&mut events)?,
                State::Done => {
                    self.buf.clear();
                    return Ok(events);
                }
            };
            if !progressed {
                return Ok(events);
            }
        }
    }

    /// The body ended: `Ok` only after the closing boundary.
    pub fn finish(&self) -> Result<(), MultipartError> {
        match self.state {
            State::Done => Ok(()),
            _ => Err(MultipartError::Incomplete),
        }
    }

    /// Looks for the delimiter; content before it goes to `events` (if given) or is dropped.
    /// Returns whether the state changed.
    fn skip_to_delimiter(&mut self, events: Option<&mut Vec<Event>>) -> bool {
        let found = find(&self.buf, &self.delimiter);
        let content = match found {
            Some(at) => at,
            // Keep what could be the start of a delimiter.
            None => self.buf.len().saturating_sub(self.delimiter.len() - 1),
        };
        let data = self.buf.split_to(content).freeze();
        if let Some(events) = events {
            if !data.is_empty() {
                events.push(Event::Data(data));
            }
            if found.is_some() {
                events.push(Event::PartEnd);
            }
        }
        if found.is_some() {
            self.buf.advance(self.delimiter.len());
            self.state = State::AfterDelimiter;
        }
        found.is_some()
    }

    /// After a delimiter: `--` ends the form; otherwise optional spaces and tabs, then a line
    /// end, then a part's headers.
    fn after_delimiter(&mut self, events: &mut Vec<Event>) -> Result<bool, MultipartError> {
        if self.buf.starts_with(b"--") {
            self.state = State::Done;
            self.buf.clear();
            events.push(Event::End);
            return Ok(true);
        }
        let padding = self
            .buf
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        self.buf.advance(padding);
        match self.buf.first() {
            None => Ok(false),
            Some(b'-') if self.buf.len() < 2 => Ok(false),
            Some(b'\r') if self.buf.len() < 2 => Ok(false),
            Some(b'\r') if self.buf[1] == b'\n' => {
                self.buf.advance(2);
                self.state = State::Headers;
                Ok(true)
            }
            Some(_) => Err(MultipartError::BadBoundaryLine),
        }
    }

    /// A part's header section, up to the empty line.
    fn headers(&mut self, events: &mut Vec<Event>) -> Result<bool, MultipartError> {
        let end = if self.buf.starts_with(b"\r\n") {
            Some(0)
        } else {
            find(&self.buf, b"\r\n\r\n").map(|at| at + 2)
        };
        let Some(end) = end else {
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(MultipartError::HeadersTooLarge);
            }
            return Ok(false);
        };
        if end > MAX_HEADER_BYTES {
            return Err(MultipartError::HeadersTooLarge);
        }
        let section = self.buf.split_to(end);
        self.buf.advance(2);
        let mut headers = PartHeaders::default();
        for line in section[..].split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let line = String::from_utf8_lossy(line);
            let (name, value) = line.split_once(':').ok_or(MultipartError::BadHeader)?;
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                headers.name = param(value, "name");
                headers.filename = param(value, "filename");
            }
        }
        events.push(Event::Part(headers));
        self.state = State::Content;
        Ok(true)
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(at) = hay[from..].iter().position(|b| *b == first) {
        let at = from + at;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// A parameter of a `Content-Disposition` value (`name="x"`, `name=x`), with the quoted
/// string's `\` escapes undone.
fn param(value: &str, key: &str) -> Option<String> {
    let mut rest = value;
    while let Some(semi) = rest.find(';') {
        rest = rest[semi + 1..].trim_start();
        let (k, v) = rest.split_once('=')?;
        let matches = k.trim().eq_ignore_ascii_case(key);
        let v = v.trim_start();
        let (text, after) = match v.strip_prefix('"') {
            Some(quoted) => {
                let mut out = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, next)) = chars.next() {
                                out.push(next);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => out.push(c),
                    }
                }
                (out, &quoted[end..])
            }
            None => {
                let end = v.find(';').unwrap_or(v.len());
                (v[..end].trim().to_owned(), &v[end..])
            }
        };
        if matches {
            return Some(text);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests;
