//! ICE: local candidates trickled to the server, and restarts when the connection is in trouble.

use std::rc::Rc;

use js_sys::Reflect;
use protocol::{ClientMediaEvent, IceCandidate};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    RtcIceCandidateInit, RtcIceConnectionState, RtcPeerConnection, RtcPeerConnectionIceEvent,
};

use super::{CandidateExt, Inner};
use crate::log;
use crate::timeout::Timeout;

/// How long ICE may stay `disconnected` before a restart is asked for.
const ICE_DISCONNECTED_GRACE_MS: i32 = 2_000;

impl Inner {
    pub(super) fn on_ice_candidate(&self, event: RtcPeerConnectionIceEvent) {
        // null = end of candidates; "" = end of a generation. The server needs neither.
        let Some(c) = event.candidate() else {
            return;
        };
        let line = c.candidate();
        if line.is_empty() || self.has_left() {
            return;
        }
        self.callbacks
            .on_send_media_event(ClientMediaEvent::Candidate(IceCandidate {
                candidate: line,
                sdp_mid: c.sdp_mid(),
                sdp_m_line_index: c.sdp_m_line_index(),
                username_fragment: c.unchecked_ref::<CandidateExt>().username_fragment(),
            }));
    }

    /// ICE trouble: `disconnected` for more than 2 s, or `failed`, asks the server for an ICE
    /// restart (once per episode); `failed` after that is reported.
    pub(super) fn on_ice_state(self: &Rc<Self>) {
        let state = {
            let s = self.state.borrow();
            s.pc.as_ref().map(|p| p.pc.ice_connection_state())
        };
        let Some(state) = state else { return };
        log::info(&format!("ICE connection state: {state:?}"));
        match state {
            RtcIceConnectionState::Connected | RtcIceConnectionState::Completed => {
                let was_restarting = {
                    let mut s = self.state.borrow_mut();
                    std::mem::take(&mut s.ice).restart_sent
                };
                if was_restarting {
                    self.callbacks.on_ice_restart(false);
                }
            }
            RtcIceConnectionState::Disconnected => {
                let weak = Rc::downgrade(self);
                let timer = Timeout::new(ICE_DISCONNECTED_GRACE_MS, move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.state.borrow_mut().ice.timer = None;
                        let still = inner.state.borrow().pc.as_ref().map(|p| {
                            p.pc.ice_connection_state() == RtcIceConnectionState::Disconnected
                        });
                        if still == Some(true) {
                            inner.restart_ice();
                        }
                    }
                });
                let mut s = self.state.borrow_mut();
                if s.ice.timer.is_none() && !s.ice.restart_sent {
                    s.ice.timer = timer;
                }
            }
            RtcIceConnectionState::Failed => {
                if self.state.borrow().ice.restart_sent {
                    self.callbacks.on_connection_error(
                        "The media connection to the server failed (ICE); check your network",
                    );
                } else {
                    self.restart_ice();
                }
            }
            _ => {}
        }
    }

    /// Asks the server for an offer with new ICE credentials (once per episode).
    pub(super) fn restart_ice(&self) {
        {
            let mut s = self.state.borrow_mut();
            if s.left || s.ice.restart_sent {
                return;
            }
            s.ice.restart_sent = true;
            s.ice.timer = None;
        }
        log::warn("ICE is in trouble: asking the server for an ICE restart");
        self.callbacks.on_ice_restart(true);
        self.callbacks
            .on_send_media_event(ClientMediaEvent::RenegotiateTracks {
                tracks: None,
                ice_restart: true,
            });
    }
}

pub(super) async fn add_candidate(pc: &RtcPeerConnection, c: &IceCandidate) {
    let init = RtcIceCandidateInit::new(&c.candidate);
    init.set_sdp_mid(c.sdp_mid.as_deref());
    init.set_sdp_m_line_index(c.sdp_m_line_index);
    if let Some(ufrag) = &c.username_fragment {
        let _ = Reflect::set(&init, &"usernameFragment".into(), &ufrag.into());
    }
    let added = JsFuture::from(pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init)));
    if let Err(e) = added.await {
        // One bad candidate must not stop negotiation; the others may well work.
        log::warn(&format!(
            "ICE candidate \"{}\" refused: {}",
            c.candidate,
            log::describe(&e)
        ));
    }
}
