//! Attachments outside the HTTP handlers: opening the configured blob store, sniffing a
//! file's content type from its bytes, and the names and headers it is served with.

use std::sync::Arc;

use anyhow::Context;
use voiceflow_schema::CqlStore;
use voiceflow_schema::blob::{BlobStore, CqlBlobStore, DirBlobStore};

use crate::config::{Config, FilesBackend};

/// Opens the blob store `config.files` asks for; `cql` is the node's CQL store, if it has one.
pub async fn open(config: &Config, cql: Option<&CqlStore>) -> anyhow::Result<Arc<dyn BlobStore>> {
    match config.files.backend_for(config.storage) {
        FilesBackend::Dir => {
            let dir = config.files.dir_in(&config.data_dir);
            let store = DirBlobStore::open(&dir)
                .with_context(|| format!("cannot open the blob directory {}", dir.display()))?;
            Ok(Arc::new(store))
        }
        FilesBackend::Cql => {
            let cql = cql.context("files.backend = \"cql\" needs storage = \"scylla\"")?;
            Ok(Arc::new(
                CqlBlobStore::new(cql)
                    .await
                    .context("cannot prepare the CQL blob store")?,
            ))
        }
    }
}

/// The content type of `bytes`, from their magic numbers (the `infer` crate); otherwise
/// `text/plain` for valid UTF-8 and `application/octet-stream` for anything else. What the
/// client claimed is never used.
pub fn sniff(bytes: &[u8]) -> &'static str {
    sniff_head(
        &bytes[..bytes.len().min(crate::spool::HEAD_BYTES)],
        std::str::from_utf8(bytes).is_ok(),
    )
}

/// [`sniff`] for a file of which only the start (`head`) is at hand, and whether the whole
/// file is UTF-8 (checked as it streamed past): what an upload keeps in memory.
pub fn sniff_head(head: &[u8], utf8: bool) -> &'static str {
    match infer::get(head) {
        Some(kind) => audio_only_container(kind.mime_type(), head),
        None if utf8 => "text/plain",
        None => "application/octet-stream",
    }
}

/// WebM, Matroska and MP4 hold audio or video, and magic numbers name them all video; what a
/// browser's MediaRecorder makes of a microphone (WebM/Opus in Chrome and Firefox, MP4/AAC in
/// Safari) is audio. Such a file is relabelled `audio/*` when its track headers name only
/// audio: Matroska `CodecID`s (`A_…` but no `V_…`, in the first 64 KiB where the tracks are
/// described), or MP4 handler boxes (`soun` but no `vide`).
fn audio_only_container(mime: &'static str, bytes: &[u8]) -> &'static str {
    match mime {
        "video/webm" | "video/x-matroska" => {
            let head = &bytes[..bytes.len().min(64 * 1024)];
            if !matroska_codec(head, b"A_") || matroska_codec(head, b"V_") {
                mime
            } else if mime == "video/webm" {
                "audio/webm"
            } else {
                "audio/x-matroska"
            }
        }
        "video/mp4" | "video/quicktime" if mp4_handler(bytes, b"soun") => {
            if mp4_handler(bytes, b"vide") {
                mime
            } else {
                "audio/mp4"
            }
        }
        _ => mime,
    }
}

/// The start of a WebM file whose one track has `codec` (`A_OPUS`, `V_VP8`, at most 126
/// bytes): the EBML header, a segment and its track entry, which is all sniffing reads. For
/// tests of what a browser's recorder uploads.
pub fn webm_head(codec: &str) -> Vec<u8> {
    let mut b = vec![
        0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82, 0x84,
    ];
    b.extend_from_slice(b"webm");
    b.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff]);
    b.extend_from_slice(&[0xff, 0xff, 0x16, 0x54, 0xae, 0x6b, 0x90, 0xae, 0x8e]);
    let codec = &codec.as_bytes()[..codec.len().min(126)];
    b.extend_from_slice(&[0xd7, 0x81, 0x01, 0x86, 0x80 | codec.len() as u8]);
    b.extend_from_slice(codec);
    b
}

/// A Matroska `CodecID` element (id 0x86, a one-byte size) whose value starts with `prefix`.
fn matroska_codec(head: &[u8], prefix: &[u8; 2]) -> bool {
    head.windows(4)
        .any(|w| w[0] == 0x86 && (0x81..=0xfe).contains(&w[1]) && w[2..4] == prefix[..])
}

/// An MP4 `hdlr` box (after version/flags and `pre_defined`) of handler type `kind`.
fn mp4_handler(bytes: &[u8], kind: &[u8; 4]) -> bool {
    bytes
        .windows(16)
        .any(|w| &w[0..4] == b"hdlr" && w[12..16] == kind[..])
}

/// Whether a browser may show the file in place: images, audio and video, except SVG (which
/// can carry scripts). Everything else is served as a download.
pub fn inline(mime_type: &str) -> bool {
    (mime_type.starts_with("image/")
        || mime_type.starts_with("audio/")
        || mime_type.starts_with("video/"))
        && !mime_type.contains("svg")
}

/// The `Content-Type` a file is served with (`charset=utf-8` for text, which sniffing checked).
pub fn content_type(mime_type: &str) -> String {
    if mime_type.starts_with("text/") {
        format!("{mime_type}; charset=utf-8")
    } else {
        mime_type.to_owned()
    }
}

/// What a download's `Range` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole file, 200: no header, several ranges, or a form that is not served.
    Whole,
    /// These bytes, 206 (seeking in a voice note, resuming a download).
    Part(std::ops::Range<u64>),
    /// Nothing of the file is in the range, 416.
    Unsatisfiable,
}

/// Reads a `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` header over a file of `len` bytes
/// (RFC 9110 §14; a malformed header is ignored, as the RFC allows).
pub fn byte_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    let Some((start, end)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return ByteRange::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        return match end.parse::<u64>() {
            Ok(0) => ByteRange::Unsatisfiable,
            Ok(_) if len == 0 => ByteRange::Unsatisfiable,
            Ok(n) => ByteRange::Part(len.saturating_sub(n)..len),
            Err(_) => ByteRange::Whole,
        };
    }
    let Ok(first) = start.parse::<u64>() else {
        return ByteRange::Whole;
    };
    if first >= len {
        return ByteRange::Unsatisfiable;
    }
    if end.is_empty() {
        return ByteRange::Part(first..len);
    }
    match end.parse::<u64>() {
        Ok(last) if last >= first => ByteRange::Part(first..last.saturating_add(1).min(len)),
        _ => ByteRange::Whole,
    }
}

/// Longest stored file name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// A client's file name made safe to store and show: the last path component only, control
/// characters and `"` `\` `/` `:` `*` `?` `<` `>` `|` removed, surrounding dots and spaces
/// trimmed, at most [`MAX_NAME_BYTES`] bytes (cut at a character boundary); `None` if
/// nothing is left.
pub fn sanitize_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | ':' | '*' | '?' | '<' | '>' | '|'))
        .collect();
    let mut name = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    while name.len() > MAX_NAME_BYTES {
        let mut cut = MAX_NAME_BYTES;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name = &name[..cut];
    }
    (!name.is_empty()).then(|| name.to_owned())
}

/// `Content-Disposition` for a stored file: `inline` or `attachment`, an ASCII `filename`
/// fallback and the exact name as RFC 5987 `filename*`.
pub fn content_disposition(name: &str, mime_type: &str) -> String {
    let kind = if inline(mime_type) {
        "inline"
    } else {
        "attachment"
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of an MP4 file with one track per handler type (`soun`, `vide`).
    fn mp4(handlers: &[&[u8; 4]]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0x18];
        b.extend_from_slice(b"ftypiso5\0\0\x02\0iso5iso6");
        for h in handlers {
            b.extend_from_slice(&[0, 0, 0, 0x21]);
            b.extend_from_slice(b"hdlr\0\0\0\0\0\0\0\0");
            b.extend_from_slice(&h[..]);
            b.extend_from_slice(&[0; 13]);
        }
        b
    }

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        use ByteRange::*;
        assert_eq!(byte_range(None, 10), Whole);
        assert_eq!(byte_range(Some("bytes=2-5"), 10), Part(2..6));
        assert_eq!(byte_range(Some("bytes=2-"), 10), Part(2..10));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Part(7..10));
        assert_eq!(byte_range(Some("bytes=-30"), 10), Part(0..10));
        assert_eq!(byte_range(Some("bytes=8-100"), 10), Part(8..10));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=0-1,4-5"), 10), Whole);
        assert_eq!(byte_range(Some("bytes=5-2"), 10), Whole);
        assert_eq!(byte_range(Some("items=0-1"), 10), Whole);
        assert_eq!(byte_range(Some("bytes=x-1"), 10), Whole);
    }

    #[test]
    fn recorded_audio_in_video_containers_is_audio() {
        assert_eq!(sniff(&webm_head("A_OPUS")), "audio/webm");
        assert_eq!(sniff(&webm_head("V_VP8")), "video/webm");
        assert_eq!(sniff(&mp4(&[b"soun"])), "audio/mp4");
        assert_eq!(sniff(&mp4(&[b"soun", b"vide"])), "video/mp4");
        assert_eq!(sniff(&mp4(&[])), "video/mp4");
    }

    #[test]
    fn types_come_from_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
        assert_eq!(sniff(png), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), "image/jpeg");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), "image/gif");
        assert_eq!(sniff("hello, wörld\n".as_bytes()), "text/plain");
        assert_eq!(sniff(b""), "text/plain");
        assert_eq!(sniff(b"\xff\xfe\x00\x80\x81"), "application/octet-stream");
    }

    #[test]
    fn only_media_is_inline() {
        assert!(inline("image/png"));
        assert!(inline("video/mp4"));
        assert!(inline("audio/mpeg"));
        assert!(!inline("image/svg+xml"));
        assert!(!inline("text/html"));
        assert!(!inline("application/pdf"));
        assert_eq!(content_type("text/plain"), "text/plain; charset=utf-8");
        assert_eq!(content_type("image/png"), "image/png");
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("photo.png").as_deref(), Some("photo.png"));
        assert_eq!(sanitize_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(
            sanitize_name("C:\\Users\\a\\b.txt").as_deref(),
            Some("b.txt")
        );
        assert_eq!(
            sanitize_name("a\"b\r\nc<d>.txt").as_deref(),
            Some("abcd.txt")
        );
        assert_eq!(sanitize_name(" .hidden. ").as_deref(), Some("hidden"));
        assert_eq!(sanitize_name("..").as_deref(), None);
        assert_eq!(sanitize_name("dir/").as_deref(), None);
        let long = "é".repeat(200);
        let cut = sanitize_name(&long).expect("some");
        assert!(cut.len() <= MAX_NAME_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn disposition_has_an_ascii_fallback_and_the_exact_name() {
        assert_eq!(
            content_disposition("a b.png", "image/png"),
            "inline; filename=\"a b.png\"; filename*=UTF-8''a%20b.png"
        );
        assert_eq!(
            content_disposition("résumé;.pdf", "application/pdf"),
            "attachment; filename=\"r_sum_;.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%3B.pdf"
        );
    }
}
