//! Who is speaking, from the RFC 6464 audio level each packet carries (no decoding).
//!
//! The level is 0–127 in -dBov (0 is loudest, 127 silence). A participant starts speaking
//! when a packet is louder than [`SpeakingConfig::start_level`] (or flagged as voice by the
//! sender's VAD and louder than the stop level), and stops after
//! [`SpeakingConfig::release`] without such a packet (hysteresis: short pauses between words
//! do not flicker). Changes are reported at most once per [`SpeakingConfig::min_interval`]:
//! a change that comes sooner is held and reported when the interval has passed, if it still
//! holds.

use std::time::{Duration, Instant};

/// Thresholds and timings.
#[derive(Debug, Clone, Copy)]
pub struct SpeakingConfig {
    /// Louder than this (a lower number) starts speaking.
    pub start_level: u8,
    /// Quieter than this (a higher number) never counts as speech, whatever the VAD flag.
    pub stop_level: u8,
    /// Silence this long ends speaking.
    pub release: Duration,
    /// At most one reported change per this interval.
    pub min_interval: Duration,
}

impl Default for SpeakingConfig {
    fn default() -> Self {
        SpeakingConfig {
            start_level: 50,
            stop_level: 70,
            release: Duration::from_millis(400),
            min_interval: Duration::from_millis(250),
        }
    }
}

/// The speaking state of one participant.
#[derive(Debug, Clone)]
pub struct SpeakingDetector {
    config: SpeakingConfig,
    /// What the packets say now.
    speaking: bool,
    last_voice: Option<Instant>,
    /// What was last reported, and when.
    reported: bool,
    reported_at: Option<Instant>,
}

impl SpeakingDetector {
    /// Silent to start with.
    pub fn new(config: SpeakingConfig) -> Self {
        SpeakingDetector {
            config,
            speaking: false,
            last_voice: None,
            reported: false,
            reported_at: None,
        }
    }

    /// The state last reported.
    pub fn reported(&self) -> bool {
        self.reported
    }

    /// One packet's audio level; returns a change to report now, if any.
    pub fn packet(&mut self, level: u8, voice: bool, now: Instant) -> Option<bool> {
        let loud = level <= self.config.start_level
            || (voice && level <= self.config.stop_level && self.speaking);
        if loud {
            self.last_voice = Some(now);
            self.speaking = true;
        }
        self.tick(now)
    }

    /// Time passed without packets (or between them); returns a change to report now.
    pub fn tick(&mut self, now: Instant) -> Option<bool> {
        if self.speaking
            && self
                .last_voice
                .is_none_or(|t| now.duration_since(t) >= self.config.release)
        {
            self.speaking = false;
        }
        if self.speaking == self.reported {
            return None;
        }
        let allowed = self
            .reported_at
            .is_none_or(|t| now.duration_since(t) >= self.config.min_interval);
        if !allowed {
            return None;
        }
        self.reported = self.speaking;
        self.reported_at = Some(now);
        Some(self.reported)
    }

    /// A muted participant is not speaking (reported at the next tick).
    pub fn silence(&mut self) {
        self.speaking = false;
        self.last_voice = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: Instant, n: u64) -> Instant {
        t + Duration::from_millis(n)
    }

    #[test]
    fn speech_is_reported_at_once_and_short_pauses_do_not_flicker() {
        let t = Instant::now();
        let mut d = SpeakingDetector::new(SpeakingConfig::default());
        assert_eq!(d.packet(127, false, t), None, "silence stays silent");
        assert_eq!(
            d.packet(30, true, ms(t, 20)),
            Some(true),
            "first loud packet"
        );
        // A 200 ms pause between words (silent packets) changes nothing.
        for i in 0..10 {
            assert_eq!(d.packet(127, false, ms(t, 40 + i * 20)), None);
        }
        assert_eq!(d.packet(35, true, ms(t, 240)), None);
        // 400 ms of silence ends it.
        assert_eq!(d.packet(127, false, ms(t, 600)), None);
        assert_eq!(d.tick(ms(t, 640)), Some(false));
    }

    #[test]
    fn changes_are_throttled_to_one_per_250_ms() {
        let cfg = SpeakingConfig {
            release: Duration::from_millis(20),
            ..SpeakingConfig::default()
        };
        let t = Instant::now();
        let mut d = SpeakingDetector::new(cfg);
        assert_eq!(d.packet(10, true, t), Some(true));
        assert_eq!(d.tick(ms(t, 50)), None, "stop held back by the interval");
        assert_eq!(
            d.packet(10, true, ms(t, 100)),
            None,
            "speaking again: nothing to say"
        );
        assert_eq!(d.tick(ms(t, 200)), None);
        assert_eq!(
            d.tick(ms(t, 250)),
            Some(false),
            "the stop goes out after 250 ms"
        );
        assert!(!d.reported());
    }

    #[test]
    fn the_vad_flag_only_sustains_not_starts_and_silence_stops() {
        let t = Instant::now();
        let mut d = SpeakingDetector::new(SpeakingConfig::default());
        assert_eq!(
            d.packet(60, true, t),
            None,
            "quiet voice does not start speaking"
        );
        assert_eq!(d.packet(40, true, ms(t, 20)), Some(true));
        assert_eq!(
            d.packet(65, true, ms(t, 500)),
            None,
            "quiet voice sustains it"
        );
        d.silence();
        assert_eq!(d.tick(ms(t, 520)), Some(false), "muted: silent at once");
    }
}
