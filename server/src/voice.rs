//! Voice activity: who is speaking, from the audio level browsers put in every audio packet
//! (RTP header extension `ssrc-audio-level`, RFC 6464), without decoding any audio.
//!
//! The level is 0..=127, in -dBov: 0 is the loudest, 127 silence. A packet is loud at
//! [`LOUD_LEVEL`] or louder. Speech starts at the second loud packet within [`START_WINDOW`] (one
//! click is not speech; a syllable is several packets, so real speech starts within ~20 ms), and
//! ends [`HANGOVER`] after the last loud packet, so the pauses between words do not make it
//! flap. Chromium's fake microphone beeps for 20 ms every 500 ms: it counts as one long speech,
//! as Firefox's steady tone does.

use std::time::Duration;

use tokio::time::Instant;
use webrtc::rtp::header::Header;

/// The RTP header extension carrying the audio level.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Loud enough to be a voice: -50 dBov. Speech with browsers' automatic gain control measures
/// about -20 to -45 dBov; a quiet room, a muted track's silence frames (127) and comfort noise
/// stay below -60. -50 sits between with margin on both sides.
pub const LOUD_LEVEL: u8 = 50;
/// A second loud packet within this time of the previous one starts speech (longer than the
/// 500 ms period of Chromium's fake-microphone beep, plus jitter).
pub const START_WINDOW: Duration = Duration::from_millis(600);
/// Quiet this long ends speech.
pub const HANGOVER: Duration = Duration::from_secs(1);

/// One audio track's speaking state. Pure: every call is given the time.
#[derive(Debug, Default)]
pub struct VoiceDetector {
    speaking: bool,
    last_loud: Option<Instant>,
}

impl VoiceDetector {
    /// Whether the track is carrying speech now.
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Takes one packet's level; the new state when it changed.
    pub fn observe(&mut self, now: Instant, level: u8) -> Option<bool> {
        if level > LOUD_LEVEL {
            return self.check(now);
        }
        let previous = self.last_loud.replace(now);
        let starts =
            !self.speaking && previous.is_some_and(|t| now.duration_since(t) <= START_WINDOW);
        if starts {
            self.speaking = true;
            return Some(true);
        }
        None
    }

    /// Ends speech after [`HANGOVER`] of quiet; for quiet packets and for a timer when packets
    /// stop coming altogether (DTX, a network hiccup).
    pub fn check(&mut self, now: Instant) -> Option<bool> {
        let quiet = self
            .last_loud
            .is_none_or(|t| now.duration_since(t) >= HANGOVER);
        if self.speaking && quiet {
            self.speaking = false;
            return Some(false);
        }
        None
    }

    /// When speech ends if nothing loud comes before; None when not speaking.
    pub fn quiet_deadline(&self) -> Option<Instant> {
        match (self.speaking, self.last_loud) {
            (true, Some(t)) => Some(t + HANGOVER),
            _ => None,
        }
    }
}

/// The level in a packet's audio-level extension (negotiated id `ext_id`), if it has one.
pub fn audio_level(header: &Header, ext_id: u8) -> Option<u8> {
    // The first byte: the voice-activity flag (ignored: not every sender sets it) and the
    // 7-bit level. `get_extension` clones a `Bytes`: a reference count, no allocation.
    let ext = header.get_extension(ext_id)?;
    ext.first().map(|b| b & 0x7f)
}

/// What the forwarder of one audio track needs to report voice activity.
pub struct VoiceWatch {
    /// The negotiated id of the audio-level extension on the publisher's connection.
    pub ext_id: u8,
    /// The state.
    pub detector: VoiceDetector,
    /// Called with the new state on each change.
    pub report: Box<dyn Fn(bool) + Send + Sync>,
}

impl VoiceWatch {
    /// Feeds one packet's header.
    pub fn on_packet(&mut self, now: Instant, header: &Header) {
        let change = match audio_level(header, self.ext_id) {
            Some(level) => self.detector.observe(now, level),
            None => self.detector.check(now),
        };
        if let Some(speaking) = change {
            (self.report)(speaking);
        }
    }

    /// The quiet timer fired.
    pub fn on_timer(&mut self, now: Instant) {
        if let Some(speaking) = self.detector.check(now) {
            (self.report)(speaking);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: u8 = 127;

    /// Feeds packets every 20 ms from `from` ms for `ms` ms at `level`; the changes, with times.
    fn feed(d: &mut VoiceDetector, t0: Instant, from: u64, ms: u64, level: u8) -> Vec<(u64, bool)> {
        (from..from + ms)
            .step_by(20)
            .filter_map(|t| {
                d.observe(t0 + Duration::from_millis(t), level)
                    .map(|s| (t, s))
            })
            .collect()
    }

    #[test]
    fn speech_starts_at_the_second_loud_packet_and_ends_after_a_second_of_quiet() {
        let t0 = Instant::now();
        let mut d = VoiceDetector::default();
        assert_eq!(feed(&mut d, t0, 0, 200, QUIET), vec![]);
        assert_eq!(feed(&mut d, t0, 200, 300, 30), vec![(220, true)]);
        assert_eq!(d.quiet_deadline(), Some(t0 + Duration::from_millis(1480)));
        // Pauses between words (600 ms) do not end it.
        assert_eq!(feed(&mut d, t0, 500, 600, QUIET), vec![]);
        assert_eq!(feed(&mut d, t0, 1100, 200, 40), vec![]);
        assert_eq!(feed(&mut d, t0, 1300, 2000, QUIET), vec![(2280, false)]);
        assert_eq!(d.quiet_deadline(), None);
    }

    #[test]
    fn a_single_click_is_not_speech_nor_is_a_quiet_room() {
        let t0 = Instant::now();
        let mut d = VoiceDetector::default();
        assert_eq!(feed(&mut d, t0, 0, 20, 10), vec![]);
        assert_eq!(feed(&mut d, t0, 20, 2000, QUIET), vec![]);
        assert_eq!(feed(&mut d, t0, 2020, 2000, LOUD_LEVEL + 1), vec![]);
        assert!(!d.speaking());
    }

    #[test]
    fn a_beep_every_500_ms_is_one_long_speech_and_a_steady_tone_too() {
        let t0 = Instant::now();
        let mut d = VoiceDetector::default();
        let mut changes = Vec::new();
        for beep in 0..10u64 {
            let at = beep * 500;
            changes.extend(feed(&mut d, t0, at, 20, 20));
            changes.extend(feed(&mut d, t0, at + 20, 480, QUIET));
        }
        assert_eq!(changes, vec![(500, true)]);
        let mut tone = VoiceDetector::default();
        assert_eq!(feed(&mut tone, t0, 0, 10_000, 25), vec![(20, true)]);
    }

    #[test]
    fn the_timer_ends_speech_when_packets_stop() {
        let t0 = Instant::now();
        let mut d = VoiceDetector::default();
        feed(&mut d, t0, 0, 100, 20);
        let deadline = d.quiet_deadline().unwrap();
        assert_eq!(d.check(deadline - Duration::from_millis(1)), None);
        assert_eq!(d.check(deadline), Some(false));
    }

    #[test]
    fn the_level_is_read_from_the_negotiated_extension() {
        let mut h = Header::default();
        assert_eq!(audio_level(&h, 1), None);
        h.set_extension(1, bytes::Bytes::from_static(&[0x80 | 33]))
            .unwrap();
        assert_eq!(audio_level(&h, 1), Some(33), "the V flag is not the level");
        assert_eq!(audio_level(&h, 2), None);
    }
}
