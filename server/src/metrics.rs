//! `/metrics`: the server's load and media counters in the OpenMetrics text format that
//! Prometheus scrapes. Values are read from the live counters at scrape time, so nothing on the
//! media path does more than the atomic adds it already did.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

/// Whether a request may read the figures: always without `--metrics-token`, else only with
/// `Authorization: Bearer <token>` (compared in constant time).
pub fn authorized(config: &crate::Config, headers: &axum::http::HeaderMap) -> bool {
    let Some(token) = config.metrics_token.as_deref() else {
        return true;
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    crate::reconnect_token::tokens_match(token, given)
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric, encoded.
pub fn render(app: &AppState) -> Result<String, std::fmt::Error> {
    let mut r = Registry::with_prefix("videoroom");
    let census = app.rooms.census();
    let gauge = |v: usize| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    r.register("rooms", "Rooms with at least one peer", gauge(census.rooms));
    r.register("peers", "Peers in rooms", gauge(census.peers));
    r.register("tracks", "Tracks published in rooms", gauge(census.tracks));
    r.register(
        "sessions",
        "Open signaling WebSockets",
        gauge(app.sessions.len()),
    );
    if let Some(cluster) = &app.cluster {
        r.register(
            "cluster_redis_up",
            "Whether Redis answered this node's last heartbeat (1) or not (0)",
            gauge(usize::from(cluster.redis_up())),
        );
        r.register(
            "cluster_rooms_claimed",
            "Rooms whose lease this node holds, or will claim once Redis is back",
            gauge(cluster.rooms_claimed()),
        );
    }
    let media = &app.stats;
    let counter = |c: &std::sync::atomic::AtomicU64| ConstCounter::new(c.load(Ordering::Relaxed));
    r.register(
        "rtp_received_packets",
        "RTP packets received from publishers",
        counter(&media.packets_in),
    );
    r.register(
        "rtp_received_bytes",
        "RTP payload bytes received from publishers",
        counter(&media.bytes_in),
    );
    r.register(
        "rtp_forwarded_packets",
        "RTP packets forwarded to subscribers",
        counter(&media.packets_out),
    );
    r.register(
        "rtp_forwarded_bytes",
        "RTP payload bytes forwarded to subscribers",
        counter(&media.bytes_out),
    );
    r.register(
        "fanout_shard_handoffs",
        "Packets handed to another core's fan-out shard of a track",
        counter(&media.shard_handoffs),
    );
    r.register(
        "fanout_shard_drops",
        "Packets a fan-out shard could not take (its queue was full)",
        counter(&media.shard_drops),
    );
    r.register(
        "simulcast_layer_switches_up",
        "Times a subscriber of a simulcast camera moved to a bigger layer",
        counter(&media.layer_switches_up),
    );
    r.register(
        "simulcast_layer_switches_down",
        "Times a subscriber of a simulcast camera moved to a smaller layer",
        counter(&media.layer_switches_down),
    );
    r.register(
        "simulcast_layer_switches_bandwidth",
        "Of the layer switches, those a subscriber's downlink estimate caused",
        counter(&media.layer_switches_bandwidth),
    );
    r.register(
        "simulcast_video_pauses",
        "Times a simulcast video was paused for a subscriber whose downlink had no room for it",
        counter(&media.video_pauses),
    );
    r.register(
        "simulcast_video_resumes",
        "Times a paused simulcast video came back to a subscriber",
        counter(&media.video_resumes),
    );
    let bwe = &app.rtc.bwe;
    let downlinks = bwe.snapshot();
    let estimates = Histogram::new([
        250_000.0,
        500_000.0,
        1_000_000.0,
        2_000_000.0,
        4_000_000.0,
        8_000_000.0,
        16_000_000.0,
    ]);
    for bps in downlinks.iter().filter_map(|(e, _)| *e) {
        estimates.observe(bps as f64);
    }
    r.register(
        "downlink_estimate_bits_per_second",
        "Subscribers' downlink estimates (those whose feedback has shown congestion)",
        estimates,
    );
    r.register(
        "downlinks_unlimited",
        "Subscribers sending feedback whose downlink has shown no congestion",
        gauge(downlinks.iter().filter(|(e, _)| e.is_none()).count()),
    );
    r.register(
        "simulcast_paused_videos",
        "Simulcast videos paused now, summed over subscribers",
        gauge(downlinks.iter().map(|(_, p)| p).sum()),
    );
    r.register(
        "downlink_feedback_packets",
        "Transport-wide congestion control feedback packets taken from subscribers",
        counter(&bwe.feedbacks),
    );
    r.register(
        "downlink_estimate_decreases_loss",
        "Times a subscriber's downlink estimate went down on loss",
        counter(&bwe.decreases_loss),
    );
    r.register(
        "downlink_estimate_decreases_delay",
        "Times a subscriber's downlink estimate went down on queueing delay",
        counter(&bwe.decreases_delay),
    );
    r.register(
        "keyframe_requests",
        "Keyframe requests (PLI) sent to publishers, after throttling",
        counter(&media.keyframe_requests),
    );
    let repair = &app.rtc.repair;
    r.register(
        "nack_requested_packets",
        "Packets subscribers asked for again (NACK)",
        counter(&repair.nacked),
    );
    r.register(
        "nack_resent_packets",
        "Packets resent to subscribers from history",
        counter(&repair.resent),
    );
    r.register(
        "signaling_errors",
        "Error replies sent to clients for bad or refused messages",
        counter(&app.signaling_errors),
    );
    r.register(
        "connections",
        "Open TCP connections (pages and WebSockets)",
        gauge(app.connections.open()),
    );
    r.register(
        "connections_refused",
        "Connections closed at once: --max-connections or --max-connections-per-ip reached",
        counter(&app.connections.refused),
    );
    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}
