//! Counting a connection's invalid frames: a client that keeps sending garbage is closed.
//!
//! This is the connection's one count. Only frames that are malformed in themselves count
//! (unparseable, unknown event, a field of the wrong type or value, binary, oversize or nested
//! too deeply), all of which the front door finds while parsing the frame; not requests a
//! correct client can make and get refused (a room that was deleted, a rate limit, a
//! permission), which the session and the rooms answer. Valid frames in between do not wipe
//! the count: what counts is how many arrived within the last window.

use std::time::{Duration, Instant};

/// The window invalid frames are counted in.
pub const INVALID_FRAMES_WINDOW: Duration = Duration::from_secs(60);

/// Invalid frames a connection sent in the current window.
#[derive(Debug, Clone, Copy)]
pub struct InvalidFrames {
    window_start: Instant,
    count: u32,
}

impl InvalidFrames {
    /// None yet.
    pub fn new(now: Instant) -> Self {
        InvalidFrames {
            window_start: now,
            count: 0,
        }
    }

    /// Counts one at `now`; true when it is the `max`th within the window (close now).
    pub fn count(&mut self, now: Instant, max: u32) -> bool {
        if now.duration_since(self.window_start) >= INVALID_FRAMES_WINDOW {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count >= max.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_max_th_invalid_frame_in_a_window_closes_and_a_new_window_starts_over() {
        let t = Instant::now();
        let mut bad = InvalidFrames::new(t);
        for i in 0..19 {
            assert!(!bad.count(t + Duration::from_secs(i), 20));
        }
        assert!(bad.count(t + Duration::from_secs(59), 20));
        let mut bad = InvalidFrames::new(t);
        for _ in 0..19 {
            bad.count(t, 20);
        }
        assert!(!bad.count(t + INVALID_FRAMES_WINDOW, 20), "a new window");
    }
}
