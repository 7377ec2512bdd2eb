//! Connection statistics: `getStats` every 2 s → each remote tile's quality indicator and the
//! statistics panel (per remote track: kind, peer, the frame size a video arrives at — the
//! simulcast layer the server gives us — or that it is paused, bitrate, loss, jitter, RTT;
//! our outbound bitrate; the server's estimate of our downlink). The arithmetic is in
//! [`crate::stats`].

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Document, Element};

use crate::endpoint::WebRtcEndpoint;
use crate::negotiation::publisher_of;
use crate::room_ui::RoomUi;
use crate::stats::{quality, rates, worst, Quality, RtpSample, TrackRates};

/// How often statistics are sampled.
pub const INTERVAL_MS: i32 = 2_000;

/// A remote track's latest figures.
#[derive(Debug, Clone)]
struct TrackRow {
    track_id: String,
    kind: String,
    peer_id: String,
    rates: Option<TrackRates>,
    /// A video's frame width and height as decoded.
    size: Option<(f64, f64)>,
}

/// Samples statistics while it lives; dropping it stops the timer.
pub struct StatsMonitor {
    inner: Rc<Inner>,
    handle: i32,
    _tick: Closure<dyn FnMut()>,
}

struct Inner {
    ui: RoomUi,
    endpoint: WebRtcEndpoint,
    /// A peer's display name, by id.
    name_of: Box<dyn Fn(&str) -> String>,
    /// The last sample of each track (a few per peer: a list is smaller code than a map).
    previous: RefCell<Vec<(String, RtpSample)>>,
    busy: Cell<bool>,
    open: Cell<bool>,
    /// The tracks the server paused for us.
    paused: RefCell<Vec<String>>,
}

impl StatsMonitor {
    /// Starts sampling `endpoint`'s connection for `ui`'s tiles and panel.
    pub fn start(
        ui: &RoomUi,
        endpoint: &WebRtcEndpoint,
        name_of: impl Fn(&str) -> String + 'static,
    ) -> Option<StatsMonitor> {
        let inner = Rc::new(Inner {
            ui: ui.clone(),
            endpoint: endpoint.clone(),
            name_of: Box::new(name_of),
            previous: RefCell::default(),
            busy: Cell::new(false),
            open: Cell::new(false),
            paused: RefCell::default(),
        });
        let weak = Rc::downgrade(&inner);
        let tick = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                if !inner.busy.replace(true) {
                    wasm_bindgen_futures::spawn_local(async move {
                        inner.sample().await;
                        inner.busy.set(false);
                    });
                }
            }
        });
        let handle = web_sys::window()?
            .set_interval_with_callback_and_timeout_and_arguments_0(
                tick.as_ref().unchecked_ref(),
                INTERVAL_MS,
            )
            .ok()?;
        Some(StatsMonitor {
            inner,
            handle,
            _tick: tick,
        })
    }

    /// Opens or closes `#stats-panel`.
    pub fn set_open(&self, open: bool) {
        self.inner.open.set(open);
        if let Some(panel) = self.inner.ui.element("stats-panel") {
            panel.set_hidden(!open);
        }
        self.inner.ui.set_pressed("toggle-stats", open);
    }

    /// Whether the panel is open.
    pub fn is_open(&self) -> bool {
        self.inner.open.get()
    }

    /// Shows the server's estimate of our downlink (`None`: nothing limits it) and notes the
    /// videos it paused for us (their rows say so at the next sample).
    pub fn set_downlink(&self, estimate: Option<u64>, paused: &[String]) {
        if let Some(el) = self.inner.ui.element("stats-downlink") {
            let text = estimate.map_or_else(
                || "no limit".to_owned(),
                |bps| format!("{} kbit/s", fixed(bps as f64 / 1000.0, 0)),
            );
            el.set_text_content(Some(&text));
        }
        *self.inner.paused.borrow_mut() = paused.to_vec();
    }
}

impl Drop for StatsMonitor {
    fn drop(&mut self) {
        if let Some(w) = web_sys::window() {
            w.clear_interval_with_handle(self.handle);
        }
    }
}

/// `value` with `digits` decimals, by the browser: Rust's float formatting would add ~20 KB.
fn fixed(value: f64, digits: u8) -> String {
    js_sys::Number::from(value)
        .to_fixed(digits)
        .map(String::from)
        .unwrap_or_default()
}

fn number(stat: &JsValue, key: &str) -> Option<f64> {
    Reflect::get(stat, &JsValue::from_str(key)).ok()?.as_f64()
}

fn string(stat: &JsValue, key: &str) -> Option<String> {
    Reflect::get(stat, &JsValue::from_str(key))
        .ok()?
        .as_string()
}

fn sample_of(stat: &JsValue, bytes: &str, packets: &str) -> RtpSample {
    RtpSample {
        timestamp_ms: number(stat, "timestamp").unwrap_or(0.0),
        bytes: number(stat, bytes).unwrap_or(0.0),
        packets: number(stat, packets).unwrap_or(0.0),
        packets_lost: number(stat, "packetsLost").unwrap_or(0.0),
        jitter_s: number(stat, "jitter").unwrap_or(0.0),
    }
}

/// Every stat of a report (an `RTCStatsReport` is map-like).
fn stats_of(report: &JsValue) -> Vec<JsValue> {
    let values = Reflect::get(report, &JsValue::from_str("values"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call0(report).ok());
    values
        .and_then(|v| js_sys::try_iter(&v).ok().flatten())
        .map(|it| it.flatten().collect())
        .unwrap_or_default()
}

impl Inner {
    async fn sample(&self) {
        let Some(pc) = self.endpoint.peer_connection() else {
            return;
        };
        let Ok(report) = JsFuture::from(pc.get_stats()).await else {
            return;
        };
        let mut rtt_ms = None;
        let mut rows = Vec::new();
        let mut outbound_kbps = 0.0;
        let mut outbound_known = false;
        let mut previous = self.previous.borrow_mut();
        let mut seen = Vec::new();
        let before = |previous: &[(String, RtpSample)], key: &str| {
            previous.iter().find(|(k, _)| k == key).map(|(_, s)| *s)
        };
        for stat in stats_of(&report) {
            match string(&stat, "type").as_deref() {
                Some("candidate-pair") => {
                    // Firefox marks the pair in use `selected`; Chromium's is nominated and up.
                    let selected = Reflect::get(&stat, &"selected".into())
                        .ok()
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    let nominated = Reflect::get(&stat, &"nominated".into())
                        .ok()
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    let up = string(&stat, "state").as_deref() == Some("succeeded");
                    if selected || (nominated && up) {
                        if let Some(rtt) = number(&stat, "currentRoundTripTime") {
                            rtt_ms = Some(rtt * 1000.0);
                        }
                    }
                }
                Some("inbound-rtp") => {
                    let Some(track_id) = string(&stat, "mid")
                        .and_then(|mid| self.endpoint.remote_track_of_mid(&mid))
                    else {
                        continue;
                    };
                    let Some(peer_id) = publisher_of(&track_id).map(str::to_owned) else {
                        continue;
                    };
                    let cur = sample_of(&stat, "bytesReceived", "packetsReceived");
                    let rates = before(&previous, &track_id).and_then(|prev| rates(&prev, &cur));
                    seen.push((track_id.clone(), cur));
                    let size = number(&stat, "frameWidth").zip(number(&stat, "frameHeight"));
                    rows.push(TrackRow {
                        track_id,
                        kind: string(&stat, "kind").unwrap_or_default(),
                        peer_id,
                        rates,
                        size,
                    });
                }
                Some("outbound-rtp") => {
                    let key = format!("out:{}", string(&stat, "id").unwrap_or_default());
                    let cur = sample_of(&stat, "bytesSent", "packetsSent");
                    if let Some(r) = before(&previous, &key).and_then(|prev| rates(&prev, &cur)) {
                        outbound_kbps += r.kbps;
                        outbound_known = true;
                    }
                    seen.push((key, cur));
                }
                _ => {}
            }
        }
        *previous = seen;
        drop(previous);

        let verdict = |row: &TrackRow| {
            row.rates
                .as_ref()
                .map(|r| quality(r, rtt_ms))
                .unwrap_or(Quality::Unknown)
        };
        for (i, row) in rows.iter().enumerate() {
            // Each peer once, at its first row: the worst of its tracks.
            if rows[..i].iter().any(|r| r.peer_id == row.peer_id) {
                continue;
            }
            let peer_rows = rows.iter().filter(|r| r.peer_id == row.peer_id);
            let q = worst(peer_rows.map(verdict));
            self.ui.set_quality(&row.peer_id, q.as_str());
        }
        if let Some(out) = self.ui.element("stats-outbound") {
            let text = if outbound_known {
                fixed(outbound_kbps, 0)
            } else {
                "–".to_owned()
            };
            out.set_text_content(Some(&text));
        }
        self.show_rows(&rows, rtt_ms);
    }

    fn show_rows(&self, rows: &[TrackRow], rtt_ms: Option<f64>) {
        let (Some(body), Some(doc)) = (
            self.ui.element("stats-rows"),
            self.ui.root().owner_document(),
        ) else {
            return;
        };
        body.set_text_content(None);
        for row in rows {
            if let Ok(tr) = self.row(&doc, row, rtt_ms) {
                let _ = body.append_child(&tr);
            }
        }
    }

    fn row(&self, doc: &Document, row: &TrackRow, rtt_ms: Option<f64>) -> Result<Element, JsValue> {
        let tr = doc.create_element("tr")?;
        tr.set_attribute("data-track-id", &row.track_id)?;
        tr.set_attribute("data-peer-id", &row.peer_id)?;
        let dash = || "–".to_owned();
        let r = row.rates.as_ref();
        let size = if self.paused.borrow().contains(&row.track_id) {
            "paused".to_owned()
        } else {
            row.size
                .map_or_else(dash, |(w, h)| format!("{}×{}", fixed(w, 0), fixed(h, 0)))
        };
        let cells = [
            (None, row.kind.clone()),
            (None, (self.name_of)(&row.peer_id)),
            (Some("size"), size),
            (Some("bitrate"), r.map_or_else(dash, |r| fixed(r.kbps, 0))),
            (
                Some("loss"),
                r.map_or_else(dash, |r| fixed(r.loss * 100.0, 1)),
            ),
            (
                Some("jitter"),
                r.map_or_else(dash, |r| fixed(r.jitter_ms, 0)),
            ),
            (Some("rtt"), rtt_ms.map_or_else(dash, |v| fixed(v, 0))),
        ];
        for (stat, text) in cells {
            let td = doc.create_element("td")?;
            if let Some(stat) = stat {
                td.set_attribute("data-stat", stat)?;
            }
            td.set_text_content(Some(&text));
            tr.append_child(&td)?;
        }
        Ok(tr)
    }
}
