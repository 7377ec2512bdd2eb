//! The `RTCPeerConnection` and the handlers attached to it, and its diagnostics global.

use std::rc::Rc;

use js_sys::{Array, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    Event, RtcConfiguration, RtcIceServer, RtcIceTransportPolicy, RtcPeerConnection,
    RtcPeerConnectionIceEvent, RtcTrackEvent,
};

use super::Inner;

/// The peer connection and the handlers attached to it; dropping it detaches them and closes
/// the connection.
pub(super) struct PeerConnection {
    pub(super) pc: RtcPeerConnection,
    _on_ice_candidate: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _on_track: Closure<dyn FnMut(RtcTrackEvent)>,
    _on_ice_state: Closure<dyn FnMut(Event)>,
}

/// The global through which the live connection can be inspected (`getStats()` from the
/// browser console, the end-to-end suite's media checks).
const DIAGNOSTICS_GLOBAL: &str = "videoroomPeerConnection";

fn expose_for_diagnostics(pc: &RtcPeerConnection) {
    if let Some(w) = web_sys::window() {
        let _ = Reflect::set(&w, &JsValue::from_str(DIAGNOSTICS_GLOBAL), pc);
    }
}

fn withdraw_from_diagnostics(pc: &RtcPeerConnection) {
    let Some(w) = web_sys::window() else { return };
    let key = JsValue::from_str(DIAGNOSTICS_GLOBAL);
    // Only our own: another Room in the same page may have replaced it.
    if Reflect::get(&w, &key).is_ok_and(|v| v == JsValue::from(pc.clone())) {
        let _ = Reflect::delete_property(&w, &key);
    }
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        withdraw_from_diagnostics(&self.pc);
        self.pc.set_onicecandidate(None);
        self.pc.set_ontrack(None);
        self.pc.set_oniceconnectionstatechange(None);
        self.pc.close();
    }
}

impl PeerConnection {
    pub(super) fn new(inner: &Rc<Inner>) -> Result<PeerConnection, JsValue> {
        let config = RtcConfiguration::new();
        let servers = Array::new();
        let accepted = inner.state.borrow().accepted_ice_servers.clone();
        for server in inner.config.ice_servers.iter().chain(&accepted) {
            let s = RtcIceServer::new();
            let urls: Array = server.urls.iter().map(|u| JsValue::from_str(u)).collect();
            s.set_urls(&urls);
            if let Some(u) = &server.username {
                s.set_username(u);
            }
            if let Some(c) = &server.credential {
                s.set_credential(c);
            }
            servers.push(&s);
        }
        config.set_ice_servers(&servers);
        config.set_ice_transport_policy(RtcIceTransportPolicy::All);
        let pc = RtcPeerConnection::new_with_configuration(&config)?;
        expose_for_diagnostics(&pc);

        let weak = Rc::downgrade(inner);
        let on_ice_candidate = Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new(
            move |e: RtcPeerConnectionIceEvent| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_ice_candidate(e);
                }
            },
        );
        let weak = Rc::downgrade(inner);
        let on_track = Closure::<dyn FnMut(RtcTrackEvent)>::new(move |e: RtcTrackEvent| {
            if let Some(inner) = weak.upgrade() {
                inner.on_track(e);
            }
        });
        let weak = Rc::downgrade(inner);
        let on_ice_state = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            if let Some(inner) = weak.upgrade() {
                inner.on_ice_state();
            }
        });
        pc.set_onicecandidate(Some(on_ice_candidate.as_ref().unchecked_ref()));
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        pc.set_oniceconnectionstatechange(Some(on_ice_state.as_ref().unchecked_ref()));
        Ok(PeerConnection {
            pc,
            _on_ice_candidate: on_ice_candidate,
            _on_track: on_track,
            _on_ice_state: on_ice_state,
        })
    }
}
