//! Upload bodies spooled to disk as they arrive: a private temporary file (removed when
//! dropped unless the blob store took it), the first [`HEAD_BYTES`] kept in memory for type
//! sniffing, the size checked against the limit with every chunk, and a body that delivers
//! nothing for the idle timeout cut off. Memory per upload is one network chunk, the head and
//! (multipart) the parser's bounded buffer, whatever the file's size.

use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io::Write;
use tokio::time::Sleep;

use crate::multipart::{self, Event, MultipartError};

/// Bytes of the start of a file kept for sniffing its type (Matroska track headers are
/// looked for in the first 64 KiB).
pub const HEAD_BYTES: usize = 64 * 1024;

/// Room a multipart body has beyond the file itself (boundaries, part headers, small fields).
pub const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// Temporary files in the spool directory older than this are left-overs of a crash.
const STALE_SPOOL: Duration = Duration::from_secs(600);

/// Why an upload body was not spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The file passed the size limit.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge {
        /// `[files] max_bytes`.
        limit: u64,
    },
    /// The file passed what is left of the user's quota.
    #[error("the upload does not fit in your storage quota of {quota} bytes ({used} used)")]
    OverQuota {
        /// `[files] quota_bytes`.
        quota: u64,
        /// Bytes the user has stored.
        used: u64,
    },
    /// No bytes arrived for the idle timeout.
    #[error("the upload stalled: no data arrived for {} s", .0.as_secs())]
    Idle(Duration),
    /// The connection failed mid-body.
    #[error("could not read the body: {0}")]
    Read(String),
    /// The multipart body is malformed.
    #[error("bad multipart body: {0}")]
    Multipart(#[from] MultipartError),
    /// The form has no `file` part.
    #[error("the form has no `file` part")]
    NoFilePart,
    /// The temporary file could not be written.
    #[error("could not write the upload to disk: {0}")]
    Disk(std::io::Error),
}

/// How much one upload may bring.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// `[files] max_bytes`.
    pub max_bytes: u64,
    /// The quota and what the user had stored when the upload began.
    pub quota: Option<(u64, u64)>,
    /// `[files] body_idle_timeout_secs`.
    pub idle: Duration,
}

impl Budget {
    /// Checks that a file of `size` bytes is within both limits.
    fn check(&self, size: u64) -> Result<(), SpoolError> {
        if size > self.max_bytes {
            return Err(SpoolError::TooLarge {
                limit: self.max_bytes,
            });
        }
        match self.quota {
            Some((quota, used)) if used.saturating_add(size) > quota => {
                Err(SpoolError::OverQuota { quota, used })
            }
            _ => Ok(()),
        }
    }
}

/// A spooled upload: its file, size, head and whether all of it is UTF-8.
#[derive(Debug)]
pub struct Spooled {
    /// The temporary file.
    pub file: SpoolFile,
    /// Its length.
    pub size: u64,
    /// The first [`HEAD_BYTES`] bytes.
    pub head: Vec<u8>,
    /// Whether the whole file is valid UTF-8.
    pub utf8: bool,
}

/// A temporary file, removed when dropped (a no-op once the blob store moved it away).
#[derive(Debug)]
pub struct SpoolFile(PathBuf);

impl SpoolFile {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates the spool directory (`0700`) and removes files a crash left in it.
pub fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_SPOOL);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// An open spool file being written. Each chunk is written by a blocking task that takes the
/// chunk itself (no copy) and drops it once written: nothing of the body stays buffered
/// between chunks (an async file would keep a buffer of up to 2 MiB per upload).
struct Writer {
    file: Option<std::fs::File>,
    path: SpoolFile,
    size: u64,
    head: Vec<u8>,
    utf8: Utf8Check,
}

impl Writer {
    async fn create(dir: &Path) -> Result<Writer, SpoolError> {
        let path = dir.join(format!(".upload.{:016x}.tmp", rand::random::<u64>()));
        let file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(SpoolError::Disk)?;
        Ok(Writer {
            file: Some(file),
            path: SpoolFile(path),
            size: 0,
            head: Vec::new(),
            utf8: Utf8Check::default(),
        })
    }

    async fn write(&mut self, budget: &Budget, data: Bytes) -> Result<(), SpoolError> {
        budget.check(self.size + data.len() as u64)?;
        if self.head.len() < HEAD_BYTES {
            let take = data.len().min(HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&data[..take]);
        }
        self.utf8.feed(&data);
        self.size += data.len() as u64;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| SpoolError::Disk(std::io::Error::other("a write failed before")))?;
        let file = tokio::task::spawn_blocking(move || file.write_all(&data).map(|()| file))
            .await
            .map_err(|e| SpoolError::Disk(std::io::Error::other(e)))?
            .map_err(SpoolError::Disk)?;
        self.file = Some(file);
        Ok(())
    }

    async fn finish(self) -> Result<Spooled, SpoolError> {
        Ok(Spooled {
            file: self.path,
            size: self.size,
            head: self.head,
            utf8: self.utf8.finish(),
        })
    }
}

/// Spools a raw body (the file is the whole body).
pub async fn raw(
    body: impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    budget: Budget,
    dir: &Path,
) -> Result<Spooled, SpoolError> {
    let mut body = IdleTimeout::new(body, budget.idle);
    let mut writer = Writer::create(dir).await?;
    while let Some(chunk) = body.next().await {
        writer.write(&budget, chunk?).await?;
    }
    writer.finish().await
}

/// Spools the `file` part of a multipart body: its file name (if it has one) and content.
/// The rest of the body after that part is not read.
pub async fn multipart(
    body: impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
    boundary: &str,
    budget: Budget,
    dir: &Path,
) -> Result<(Option<String>, Spooled), SpoolError> {
    let mut body = IdleTimeout::new(body, budget.idle);
    let mut parser = multipart::Parser::new(boundary);
    let mut writer: Option<(Option<String>, Writer)> = None;
    let mut in_file = false;
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        total += chunk.len() as u64;
        if total > budget.max_bytes + MULTIPART_OVERHEAD {
            return Err(SpoolError::TooLarge {
                limit: budget.max_bytes,
            });
        }
        for event in parser.push(&chunk)? {
            match event {
                Event::Part(headers)
                    if writer.is_none() && headers.name.as_deref() == Some("file") =>
                {
                    writer = Some((headers.filename, Writer::create(dir).await?));
                    in_file = true;
                }
                Event::Part(_) => in_file = false,
                Event::Data(data) if in_file => {
                    if let Some((_, w)) = writer.as_mut() {
                        w.write(&budget, data).await?;
                    }
                }
                Event::Data(_) => {}
                Event::PartEnd | Event::End if in_file => {
                    let Some((name, w)) = writer.take() else {
                        break;
                    };
                    return Ok((name, w.finish().await?));
                }
                Event::PartEnd | Event::End => {}
            }
        }
    }
    parser.finish()?;
    Err(SpoolError::NoFilePart)
}

/// A body stream that fails with [`SpoolError::Idle`] when no chunk arrives for `idle`.
struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    fired: Arc<AtomicBool>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            fired: Arc::default(),
        }
    }
}

impl<S> Stream for IdleTimeout<S>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
{
    type Item = Result<Bytes, SpoolError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.fired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let deadline = tokio::time::Instant::now() + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                let error = if e.kind() == ErrorKind::TimedOut {
                    SpoolError::Idle(self.idle)
                } else {
                    SpoolError::Read(e.to_string())
                };
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.fired.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(SpoolError::Idle(self.idle))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Checks that a byte stream is UTF-8, chunk by chunk (a character may span chunks).
#[derive(Debug, Default)]
struct Utf8Check {
    invalid: bool,
    /// The start of a character the previous chunk cut.
    carry: Vec<u8>,
}

impl Utf8Check {
    fn feed(&mut self, mut chunk: &[u8]) {
        if self.invalid {
            return;
        }
        while !self.carry.is_empty() {
            let Some((&first, rest)) = chunk.split_first() else {
                return;
            };
            chunk = rest;
            self.carry.push(first);
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_some() => {
                    self.invalid = true;
                    return;
                }
                Err(_) => {}
            }
        }
        if let Err(e) = std::str::from_utf8(chunk) {
            match e.error_len() {
                Some(_) => self.invalid = true,
                None => self.carry = chunk[e.valid_up_to()..].to_vec(),
            }
        }
    }

    fn finish(&self) -> bool {
        !self.invalid && self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_checked_across_chunks() {
        let text = "héllo wörld ✓ 🎉".as_bytes();
        for cut in 0..=text.len() {
            for cut2 in cut..=text.len() {
                let mut check = Utf8Check::default();
                check.feed(&text[..cut]);
                check.feed(&text[cut..cut2]);
                check.feed(&text[cut2..]);
                assert!(check.finish(), "cuts {cut} {cut2}");
            }
        }
        let mut cut_short = Utf8Check::default();
        cut_short.feed(&"é".as_bytes()[..1]);
        assert!(!cut_short.finish());
        let mut bad = Utf8Check::default();
        bad.feed(b"ok");
        bad.feed(b"\xff");
        bad.feed(b"ok");
        assert!(!bad.finish());
        let mut bad_join = Utf8Check::default();
        bad_join.feed(b"\xc3");
        bad_join.feed(b"A");
        assert!(!bad_join.finish());
    }

    fn budget(max: u64) -> Budget {
        Budget {
            max_bytes: max,
            quota: None,
            idle: Duration::from_secs(5),
        }
    }

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::copy_from_slice(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_multipart_file_is_spooled_and_the_temp_file_removed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body: &[&[u8]] = &[
            b"--xyz\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nhi\r\n--x",
            b"yz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\n",
            b"Content-Type: text/plain\r\n\r\nhello ",
            b"world\r\n--xyz--\r\n",
        ];
        let (name, spooled) = multipart(chunks(body), "xyz", budget(100), dir.path())
            .await
            .expect("spooled");
        assert_eq!(name.as_deref(), Some("a b.txt"));
        assert_eq!(spooled.size, 11);
        assert_eq!(spooled.head, b"hello world");
        assert!(spooled.utf8);
        let path = spooled.file.path().to_path_buf();
        assert_eq!(std::fs::read(&path).expect("read"), b"hello world");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(spooled);
        assert!(!path.exists(), "removed on drop");
    }

    #[tokio::test]
    async fn limits_and_malformed_bodies_are_errors_and_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = raw(chunks(&[b"12345", b"67890", b"x"]), budget(10), dir.path()).await;
        assert!(
            matches!(big, Err(SpoolError::TooLarge { limit: 10 })),
            "{big:?}"
        );
        let quota = Budget {
            quota: Some((100, 95)),
            ..budget(10)
        };
        let over = raw(chunks(&[b"123456"]), quota, dir.path()).await;
        assert!(
            matches!(
                over,
                Err(SpoolError::OverQuota {
                    quota: 100,
                    used: 95
                })
            ),
            "{over:?}"
        );
        let none = multipart(
            chunks(&[b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--"]),
            "b",
            budget(10),
            dir.path(),
        )
        .await;
        assert!(matches!(none, Err(SpoolError::NoFilePart)), "{none:?}");
        let cut = multipart(
            chunks(&[b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n12"]),
            "b",
            budget(10),
            dir.path(),
        )
        .await;
        assert!(
            matches!(cut, Err(SpoolError::Multipart(MultipartError::Incomplete))),
            "{cut:?}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "no temporary file is left behind"
        );
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stalled = chunks(&[b"some bytes"]).chain(futures_util::stream::pending());
        let budget = Budget {
            idle: Duration::from_millis(200),
            ..budget(100)
        };
        let result = raw(Box::pin(stalled), budget, dir.path()).await;
        assert!(matches!(result, Err(SpoolError::Idle(_))), "{result:?}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
