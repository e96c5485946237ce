//! The refresh grace window: tabs of one browser share a refresh token and may all refresh it
//! at once. The first exchange rotates it; the others, arriving within
//! `[sessions] refresh_grace_ms`, wait for that exchange and get the same successor instead of
//! being taken for a stolen token (which revokes the whole sign-in). Kept in memory: a
//! parallel refresh that lands on another node of a cluster still counts as reuse.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use voiceflow_wire::{ErrorBody, Snowflake};

use crate::auth::TokenPair;
use crate::error::ApiError;

/// What an exchange produced: the user and the pair, or why it failed.
type Outcome = Result<(Snowflake, TokenPair), ApiError>;

/// A shared successor: `None` while the exchange is under way, then its outcome (an error
/// as its message only; followers answer "retry").
type Successor = Option<Result<(Snowflake, TokenPair), String>>;

/// How long a follower waits for the exchange it follows.
const FOLLOW_WAIT: Duration = Duration::from_secs(10);

struct Entry {
    at: Instant,
    successor: watch::Receiver<Successor>,
}

/// Refresh tokens exchanged within the grace window, by `jti`.
pub struct Rotations {
    grace: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

/// The part a refresh request plays.
pub enum Turn<'a> {
    /// First: exchange the token, then [`Rotation::finish`].
    Rotate(Rotation<'a>),
    /// The token was exchanged moments ago (or is being exchanged): this resolves to the
    /// same successor.
    Follow(std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>),
}

/// An exchange under way; followers wait on it.
pub struct Rotation<'a> {
    rotations: &'a Rotations,
    jti: String,
    sender: Option<watch::Sender<Successor>>,
}

impl Rotations {
    /// A window of `grace` (zero: off, every second use is reuse).
    pub fn new(grace: Duration) -> Rotations {
        Rotations {
            grace,
            entries: Mutex::default(),
        }
    }

    /// Starts the exchange of `jti`, or follows the one already started within the window.
    pub fn begin(&self, jti: &str) -> Turn<'_> {
        if self.grace.is_zero() {
            return Turn::Rotate(Rotation {
                rotations: self,
                jti: jti.to_owned(),
                sender: None,
            });
        }
        let mut entries = self.entries.lock();
        let grace = self.grace;
        entries.retain(|_, e| e.at.elapsed() < grace);
        if let Some(entry) = entries.get(jti) {
            let mut successor = entry.successor.clone();
            return Turn::Follow(Box::pin(async move {
                let waited =
                    tokio::time::timeout(FOLLOW_WAIT, successor.wait_for(Option::is_some)).await;
                match waited.ok().and_then(|r| r.ok()).and_then(|s| s.clone()) {
                    Some(Ok(pair)) => Ok(pair),
                    Some(Err(_)) | None => Err(ApiError(ErrorBody::unavailable(
                        "refresh did not complete; retry",
                    ))),
                }
            }));
        }
        let (sender, receiver) = watch::channel(None);
        entries.insert(
            jti.to_owned(),
            Entry {
                at: Instant::now(),
                successor: receiver,
            },
        );
        Turn::Rotate(Rotation {
            rotations: self,
            jti: jti.to_owned(),
            sender: Some(sender),
        })
    }
}

impl Rotation<'_> {
    /// The token was not ours to exchange (already used before the window): no successor.
    pub fn abandon(mut self) {
        self.sender = None;
        self.rotations.entries.lock().remove(&self.jti);
    }

    /// The exchange is done: followers within the window get the same outcome.
    pub fn finish(mut self, outcome: &Outcome) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        match outcome {
            Ok(pair) => {
                let _ = sender.send(Some(Ok(pair.clone())));
            }
            Err(e) => {
                let _ = sender.send(Some(Err(e.to_string())));
                // A failed exchange left the token unused or used: followers retry afresh.
                self.rotations.entries.lock().remove(&self.jti);
            }
        }
    }
}

impl Drop for Rotation<'_> {
    fn drop(&mut self) {
        // Dropped mid-way (an early return, a cancelled request): nothing to follow.
        if self.sender.take().is_some() {
            self.rotations.entries.lock().remove(&self.jti);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_grace_never_follows() {
        let rotations = Rotations::new(Duration::ZERO);
        assert!(matches!(rotations.begin("a"), Turn::Rotate(_)));
        assert!(matches!(rotations.begin("a"), Turn::Rotate(_)));
    }

    #[tokio::test]
    async fn second_use_within_the_window_follows_the_first() {
        let rotations = Rotations::new(Duration::from_secs(5));
        let Turn::Rotate(first) = rotations.begin("a") else {
            panic!("the first use rotates");
        };
        let Turn::Follow(follower) = rotations.begin("a") else {
            panic!("the second use follows");
        };
        let pair = TokenPair {
            token: "t".into(),
            refresh_token: "r".into(),
            expires_in: 1,
        };
        first.finish(&Ok((Snowflake(7), pair)));
        let (user, got) = follower.await.expect("same successor");
        assert_eq!((user, got.refresh_token.as_str()), (Snowflake(7), "r"));
        assert!(matches!(rotations.begin("b"), Turn::Rotate(_)));
    }

    #[test]
    fn abandoned_rotation_leaves_nothing_to_follow() {
        let rotations = Rotations::new(Duration::from_secs(5));
        let Turn::Rotate(first) = rotations.begin("a") else {
            panic!("the first use rotates");
        };
        first.abandon();
        assert!(matches!(rotations.begin("a"), Turn::Rotate(_)));
    }
}
