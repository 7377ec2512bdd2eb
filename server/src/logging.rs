//! The server's log: the default filter, and quiet for the one line the `webrtc` stack repeats.
//!
//! webrtc-ice warns "pingAllCandidates called with no candidate pairs" on every 200 ms check
//! while a peer that answered has sent no candidate — about 60 lines per such peer until ICE
//! gives up (issue 49). The line names no peer; the server says once per peer what became of
//! it ("removing peer … media connection failed"), so the repeat is dropped, whatever RUST_LOG.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What the server logs without `RUST_LOG`.
pub const DEFAULT_FILTER: &str =
    "info,webrtc=warn,webrtc_ice=warn,webrtc_srtp=warn,webrtc_dtls=warn";

/// The repeated line, as webrtc-ice 0.17 words it.
const REPEATED_ICE_WARNING: &str = "pingAllCandidates called with no candidate pairs";

/// Drops the ICE agent's repeated warning, passes everything else.
pub struct QuietIceChecks;

impl<S: Subscriber> Filter<S> for QuietIceChecks {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        // Only warnings bridged from the `log` crate (target "log") or webrtc_ice's own can
        // be it: everything else passes without its message being looked at.
        let meta = event.metadata();
        if *meta.level() != Level::WARN
            || !(meta.target() == "log" || meta.target().starts_with("webrtc_ice"))
        {
            return true;
        }
        let mut found = Finds(false);
        event.record(&mut found);
        !found.0
    }
}

struct Finds(bool);

impl Visit for Finds {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && value.contains(REPEATED_ICE_WARNING) {
            self.0 = true;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}").contains(REPEATED_ICE_WARNING) {
            self.0 = true;
        }
    }
}

/// `RUST_LOG`, else [`DEFAULT_FILTER`].
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// Installs the log (to `writer`) for the whole process; a second call does nothing.
pub fn init<W>(writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_filter(QuietIceChecks),
        )
        .with(env_filter())
        .try_init();
}
