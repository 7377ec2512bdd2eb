//! The audio-level RTP header extension (RFC 6464), as a browser puts it in its audio: the
//! API registers it, the publisher writes it and the receiver counts it, so it lives apart
//! from all three.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;

/// The RTP header extension with each audio packet's level (RFC 6464).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// [`crate::TestPeer::set_audio_level`]'s "no extension".
pub(crate) const NO_LEVEL: u8 = u8::MAX;

/// Where an audio publisher gets the level to put in its packets, and the extension's id.
pub(crate) struct LevelSource {
    pub(crate) sender: Arc<RTCRtpSender>,
    pub(crate) level: Arc<AtomicU8>,
    /// Known once negotiated.
    pub(crate) ext_id: Option<u8>,
}

impl LevelSource {
    /// The extension to put in the next packet, if any.
    pub(crate) async fn next(&mut self) -> Option<(u8, u8)> {
        let level = self.level.load(Ordering::Relaxed);
        if level == NO_LEVEL {
            return None;
        }
        if self.ext_id.is_none() {
            self.ext_id = self
                .sender
                .get_parameters()
                .await
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == AUDIO_LEVEL_URI)
                .and_then(|e| u8::try_from(e.id).ok());
        }
        self.ext_id.map(|id| (id, level))
    }
}
