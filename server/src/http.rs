//! Serving HTTP: the accept loop in front of the router. It caps open connections, in all and
//! per source address; gives every request's headers a deadline (hyper's) and closes an HTTP
//! connection on which nothing moved for as long (a silent new one or an idle keep-alive one:
//! hyper times neither); tells handlers who is calling ([`ClientAddr`]); and stops gracefully.
//! A connection upgraded to a WebSocket is the signaling session's to police (join deadline,
//! keepalive): its connection task has ended.
//! `axum::serve` has none of these limits: 3,000 idle connections stayed open for ever (issue 49).
//!
//! Invariant: every accepted connection holds a [`Permit`] until its socket closes — also after
//! an upgrade to WebSocket, as the upgraded stream owns the counted socket.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::{debug, warn};

use crate::rate_limit::source_key;

/// How long in-flight requests may take to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(5);
/// At most one warning about refused connections per this long (each refusal is counted).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Who opened the connection a request came on (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server holds `--max-connections` already.
    Total,
    /// This source address holds `--max-connections-per-ip` already.
    PerSource,
}

/// Open connections, in all and per source address, against their caps.
pub struct Gate {
    total_cap: usize,
    per_source_cap: usize,
    open: Mutex<Open>,
    /// Connections closed at once because a cap was reached.
    pub refused: AtomicU64,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One counted connection; dropping it frees its place.
pub struct Permit {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Gate {
    /// A gate with these caps.
    pub fn new(total_cap: usize, per_source_cap: usize) -> Arc<Gate> {
        Arc::new(Gate {
            total_cap,
            per_source_cap,
            open: Mutex::new(Open::default()),
            refused: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a connection from `ip` (its IPv6 /64, see [`source_key`]), unless a cap is
    /// reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        let ip = source_key(ip);
        let mut open = self.lock();
        let refused = if open.total >= self.total_cap {
            Some(Refused::Total)
        } else if open.by_source.get(&ip).copied().unwrap_or(0) >= self.per_source_cap {
            Some(Refused::PerSource)
        } else {
            None
        };
        if let Some(why) = refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(why);
        }
        open.total += 1;
        *open.by_source.entry(ip).or_default() += 1;
        Ok(Permit {
            gate: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.lock();
        open.total -= 1;
        if let Some(n) = open.by_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&self.ip);
            }
        }
    }
}

/// When bytes last moved on a connection, in milliseconds since it opened.
#[derive(Clone)]
struct Activity {
    opened: tokio::time::Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: tokio::time::Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A socket counted until it closes, noting when bytes move.
struct Counted<I> {
    io: I,
    activity: Activity,
    _permit: Permit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I> Counted<I> {
    fn touch_if_written(&self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.touch();
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.touch_if_written(&polled);
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.touch_if_written(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets in-flight requests finish (bounded).
/// HTTP/1 only: browsers speak it over plain TCP and our TLS offers only `http/1.1`.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    gate: Arc<Gate>,
    header_timeout: Duration,
    shutdown: CancellationToken,
) where
    L: Listener<Addr = SocketAddr>,
{
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connections = TaskTracker::new();
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let permit = match gate.admit(addr.ip()) {
            Ok(p) => p,
            Err(why) => {
                // Closed at once: the client sees the connection end, and the log stays small.
                drop(io);
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
                    last_warning = Some(now);
                    warn!(
                        ?why,
                        refused = gate.refused.load(Ordering::Relaxed),
                        "connection refused: cap reached"
                    );
                }
                continue;
            }
        };
        let activity = Activity::new();
        let io = TokioIo::new(Counted {
            io,
            activity: activity.clone(),
            _permit: permit,
        });
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ClientAddr(addr));
            router.clone().call(req)
        });
        let builder = builder.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let conn = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(conn);
            loop {
                let idle_until = activity.last() + header_timeout;
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            debug!(%addr, error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    _ = stop.cancelled() => break,
                    // Nothing moved for the whole deadline: dropping the connection closes it.
                    _ = tokio::time::sleep_until(idle_until) => {
                        if activity.last() + header_timeout <= tokio::time::Instant::now() {
                            debug!(%addr, "idle connection closed");
                            return;
                        }
                    }
                }
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        debug!(
            left = connections.len(),
            "connections still open at shutdown"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_in_all_and_per_source_and_free_on_drop() {
        let gate = Gate::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refused::PerSource));
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).err(), Some(Refused::Total));
        assert_eq!(gate.open(), 3);
        assert_eq!(gate.refused.load(Ordering::Relaxed), 2);
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _a3 = gate.admit(a).unwrap();
    }
}
