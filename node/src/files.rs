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
    match infer::get(bytes) {
        Some(kind) => kind.mime_type(),
        None if std::str::from_utf8(bytes).is_ok() => "text/plain",
        None => "application/octet-stream",
    }
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
mod tests {
    use super::*;

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
