//! Sets the simulcast encodings of what we publish after each answer and whenever the server
//! says which layers anyone receives (`layer_encodings` says what each layer gets): the
//! browser creates one encoding per RID the server's offer asked for, sized as it likes until
//! told.

use protocol::TrackSource;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RtcPeerConnection, RtcRtpEncodingParameters, RtcRtpSender};

use super::{transceiver_by_mid, Inner};
use crate::layer_encodings::encoding_for;
use crate::log;

impl Inner {
    /// Sets every published video's layer encodings (nothing for a video sent as one layer).
    pub(super) async fn set_encodings(&self, pc: &RtcPeerConnection) {
        let senders: Vec<(RtcRtpSender, Source)> = {
            let s = self.state.borrow();
            s.local_tracks
                .iter()
                .filter(|t| t.track.kind() == "video")
                .filter_map(|t| {
                    let transceiver = transceiver_by_mid(pc, t.mid.as_deref()?)?;
                    let settings = t.track.get_settings();
                    let side = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
                    Some((
                        transceiver.sender(),
                        Source {
                            // A camera whose size the browser does not say: the tutorial's.
                            size: side(settings.get_width())
                                .zip(side(settings.get_height()))
                                .unwrap_or((640, 360)),
                            screen: t.metadata.source == TrackSource::Screen,
                            wanted: t.wanted_layers.clone(),
                        },
                    ))
                })
                .collect()
        };
        for (sender, source) in senders {
            if let Err(e) = set_layers(&sender, &source).await {
                log::warn_failed("cannot set the simulcast layers", &e);
            }
        }
    }

    /// The server says which layers of our track `local_id` anyone receives (dynacast): the
    /// others stop being encoded, which spares our CPU and uplink.
    pub(super) async fn set_wanted_layers(&self, local_id: &str, rids: Vec<String>) {
        let pc = {
            let mut s = self.state.borrow_mut();
            let Some(t) = s.local_tracks.iter_mut().find(|t| t.id == local_id) else {
                log::warn(&format!("layers wanted of an unknown track {local_id}"));
                return;
            };
            log::info(&format!("layers wanted of {local_id}: {rids:?}"));
            t.wanted_layers = Some(rids);
            s.pc.as_ref().map(|p| p.pc.clone())
        };
        if let Some(pc) = pc {
            self.set_encodings(&pc).await;
        }
    }
}

/// What a sender sends, as its layers depend on it.
struct Source {
    /// The captured picture's width and height.
    size: (u32, u32),
    screen: bool,
    /// The RIDs anyone receives (`None`: all).
    wanted: Option<Vec<String>>,
}

/// Applies [`encoding_for`] to each of `sender`'s encodings named by a RID, if it has any.
async fn set_layers(sender: &RtcRtpSender, source: &Source) -> Result<(), wasm_bindgen::JsValue> {
    let params = sender.get_parameters();
    let Some(encodings) = params.get_encodings() else {
        return Ok(());
    };
    let mut changed = false;
    for encoding in encodings.iter() {
        let encoding: RtcRtpEncodingParameters = encoding.unchecked_into();
        let Some(want) = encoding.get_rid().and_then(|rid| {
            let wanted = source.wanted.as_ref().is_none_or(|w| w.contains(&rid));
            encoding_for(&rid, source.size, source.screen, wanted)
        }) else {
            continue;
        };
        let same = encoding.get_scale_resolution_down_by() == Some(want.scale)
            && encoding.get_max_bitrate() == Some(want.max_bitrate)
            && encoding.get_active() == Some(want.active);
        if !same {
            encoding.set_scale_resolution_down_by(want.scale);
            encoding.set_max_bitrate(want.max_bitrate);
            encoding.set_active(want.active);
            changed = true;
        }
    }
    if changed {
        JsFuture::from(sender.set_parameters_with_parameters(&params)).await?;
    }
    Ok(())
}
