//! A lossy, slow network link for one test peer, in process: every UDP datagram the peer sends
//! or receives may be dropped and is held back by a fixed delay, as `tc netem` would do on an
//! interface — without root, kernel modules or network namespaces. The peer's ICE agent runs
//! over it through a UDP mux, so STUN, DTLS, RTP and RTCP all cross the same bad link.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use webrtc::util::{Conn, Error as UtilError};

/// How bad the link is, per direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Probability in [0, 1] that a datagram is dropped (each direction independently).
    pub loss: f64,
    /// One-way delay added to every datagram that survives (each direction).
    pub delay: Duration,
    /// Seed of the loss pattern, so a failing run can be replayed.
    pub seed: u64,
    /// Never drop the DTLS handshake records this peer sends (they are still delayed; the
    /// server's records to it are dropped as usual). A test peer is the DTLS server, and the
    /// webrtc crate's DTLS server does not resend its last flight when that is lost (RFC 6347
    /// §4.2.4): without this a lossy test would fail on the test peer's bug, not the server's.
    pub spare_dtls_handshake: bool,
}

/// What crossed an impaired link so far.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Datagrams the peer sent that were dropped.
    pub dropped_out: AtomicU64,
    /// Datagrams addressed to the peer that were dropped.
    pub dropped_in: AtomicU64,
    /// Datagrams delivered in either direction.
    pub delivered: AtomicU64,
    /// Datagrams addressed to the peer dropped because its downlink queue was full.
    pub dropped_queue: AtomicU64,
    /// The peer's downlink capacity in bits per second (UDP payload), 0: none. Settable while
    /// the link runs ([`LinkCounters::set_downlink_cap`]).
    downlink_cap: AtomicU64,
}

/// How much a capped downlink holds before it drops: a home router's buffer, roughly.
pub const DOWNLINK_QUEUE: Duration = Duration::from_millis(200);

impl LinkCounters {
    /// Caps what reaches the peer at `bps` bits per second (`None`: no cap): datagrams queue
    /// behind each other at that rate, and those that would wait over [`DOWNLINK_QUEUE`]
    /// are dropped, as on a slow link.
    pub fn set_downlink_cap(&self, bps: Option<u64>) {
        self.downlink_cap.store(bps.unwrap_or(0), Ordering::Relaxed);
    }
}

/// Xorshift: a reproducible loss pattern needs no crate and no cryptographic quality.
struct Dice(u64);

impl Dice {
    fn roll(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

type Datagram = (Instant, Vec<u8>, SocketAddr);

/// A UDP socket behind an [`Impairment`]: a [`Conn`] for `UDPMuxParams`.
pub struct ImpairedConn {
    local: SocketAddr,
    impairment: Impairment,
    dice: Mutex<Dice>,
    counters: Arc<LinkCounters>,
    outgoing: mpsc::UnboundedSender<Datagram>,
    incoming: tokio::sync::Mutex<mpsc::UnboundedReceiver<Datagram>>,
    pumps: [JoinHandle<()>; 2],
}

impl ImpairedConn {
    /// Binds a UDP socket on `addr` and puts `impairment` between it and its user.
    pub async fn bind(
        addr: SocketAddr,
        impairment: Impairment,
        counters: Arc<LinkCounters>,
    ) -> std::io::Result<ImpairedConn> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let local = socket.local_addr()?;
        let (outgoing, out_rx) = mpsc::unbounded_channel();
        let (in_tx, incoming) = mpsc::unbounded_channel();
        // Both directions keep their order: one fixed delay and one queue each.
        let send_pump = tokio::spawn(send_after_delay(socket.clone(), out_rx));
        let recv_pump = tokio::spawn(receive_with_loss(
            socket.clone(),
            in_tx,
            impairment,
            counters.clone(),
        ));
        Ok(ImpairedConn {
            local,
            impairment,
            dice: Mutex::new(Dice(impairment.seed | 1)),
            counters,
            outgoing,
            incoming: tokio::sync::Mutex::new(incoming),
            pumps: [send_pump, recv_pump],
        })
    }

    fn lose(&self, datagram: &[u8]) -> bool {
        !(self.impairment.spare_dtls_handshake && is_dtls_handshake(datagram))
            && self.impairment.loss > 0.0
            && self
                .dice
                .lock()
                .map(|mut d| d.roll() < self.impairment.loss)
                .unwrap_or(false)
    }
}

impl Drop for ImpairedConn {
    fn drop(&mut self) {
        for p in &self.pumps {
            p.abort();
        }
    }
}

/// DTLS ChangeCipherSpec or Handshake record (RFC 7983 demultiplexing: DTLS is 20..=63).
fn is_dtls_handshake(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(20 | 22))
}

async fn send_after_delay(socket: Arc<UdpSocket>, mut rx: mpsc::UnboundedReceiver<Datagram>) {
    while let Some((due, data, to)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        // UDP: a failed send is a lost datagram, which is what this link is for anyway.
        let _ = socket.send_to(&data, to).await;
    }
}

async fn receive_with_loss(
    socket: Arc<UdpSocket>,
    tx: mpsc::UnboundedSender<Datagram>,
    impairment: Impairment,
    counters: Arc<LinkCounters>,
) {
    // A separate pattern from the sending side's, still reproducible from the seed.
    let mut dice = Dice(impairment.seed.rotate_left(32) | 1);
    let mut buf = vec![0u8; 65_536];
    // When the capped downlink has passed everything queued so far.
    let mut free_at = Instant::now();
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        if impairment.loss > 0.0 && dice.roll() < impairment.loss {
            counters.dropped_in.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let now = Instant::now();
        let cap = counters.downlink_cap.load(Ordering::Relaxed);
        // The time this datagram takes to cross a capped link (none without a cap).
        let serialization = (n as u64 * 8 * 1_000_000_000).checked_div(cap);
        let passed = match serialization {
            None => now,
            Some(nanos) => {
                let start = free_at.max(now);
                if start - now > DOWNLINK_QUEUE {
                    counters.dropped_queue.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                free_at = start + Duration::from_nanos(nanos);
                free_at
            }
        };
        counters.delivered.fetch_add(1, Ordering::Relaxed);
        let due = passed + impairment.delay;
        if tx.send((due, buf[..n].to_vec(), from)).is_err() {
            return;
        }
    }
}

#[async_trait]
impl Conn for ImpairedConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc::util::Result<()> {
        Err(UtilError::Other("an impaired link is not connected".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        let next = self.incoming.lock().await.recv().await;
        let Some((due, data, from)) = next else {
            return Err(UtilError::ErrClosedListener);
        };
        tokio::time::sleep_until(due).await;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok((n, from))
    }

    async fn send(&self, _buf: &[u8]) -> webrtc::util::Result<usize> {
        Err(UtilError::Other(
            "an impaired link needs a destination".into(),
        ))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc::util::Result<usize> {
        if self.lose(buf) {
            self.counters.dropped_out.fetch_add(1, Ordering::Relaxed);
            return Ok(buf.len());
        }
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        let due = Instant::now() + self.impairment.delay;
        self.outgoing
            .send((due, buf.to_vec(), target))
            .map_err(|_| UtilError::ErrClosedListener)?;
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc::util::Result<()> {
        for p in &self.pumps {
            p.abort();
        }
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_are_uniform_enough_and_reproducible() {
        let mut a = Dice(42 | 1);
        let lost = (0..100_000).filter(|_| a.roll() < 0.05).count();
        assert!(
            (4_500..5_500).contains(&lost),
            "{lost} of 100000 below 0.05"
        );
        let mut b = Dice(42 | 1);
        let mut c = Dice(42 | 1);
        assert!((0..100).all(|_| b.roll() == c.roll()));
    }

    #[tokio::test(start_paused = true)]
    async fn datagrams_are_delayed_and_dropped() {
        let counters = Arc::new(LinkCounters::default());
        let impairment = Impairment {
            loss: 0.5,
            delay: Duration::from_millis(50),
            seed: 7,
            spare_dtls_handshake: true,
        };
        let conn = ImpairedConn::bind("127.0.0.1:0".parse().unwrap(), impairment, counters.clone())
            .await
            .unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        let sent_at = Instant::now();
        for i in 0..200u8 {
            conn.send_to(&[i], to).await.unwrap();
        }
        // Handshake records this side sends always pass.
        for _ in 0..20 {
            conn.send_to(&[22], to).await.unwrap();
        }
        let dropped = counters.dropped_out.load(Ordering::Relaxed);
        assert!((60..140).contains(&dropped), "dropped {dropped} of 200");
        let mut buf = [0u8; 8];
        let mut got = Vec::new();
        while got.len() < 220 - dropped as usize {
            let (n, _) = peer.recv_from(&mut buf).await.unwrap();
            got.push(buf[..n][0]);
        }
        assert!(sent_at.elapsed() >= Duration::from_millis(50));
        let (data, handshakes) = got.split_at(got.len() - 20);
        assert!(data.windows(2).all(|w| w[0] < w[1]), "order kept: {got:?}");
        assert!(handshakes.iter().all(|&b| b == 22));
    }

    #[tokio::test(start_paused = true)]
    async fn a_capped_downlink_queues_then_drops() {
        let counters = Arc::new(LinkCounters::default());
        let impairment = Impairment {
            loss: 0.0,
            delay: Duration::ZERO,
            seed: 1,
            spare_dtls_handshake: false,
        };
        let conn = ImpairedConn::bind("127.0.0.1:0".parse().unwrap(), impairment, counters.clone())
            .await
            .unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = conn.local_addr().unwrap();
        // 1000-byte datagrams at 400 kbit/s: 20 ms each, so 10 fill the 200 ms queue.
        counters.set_downlink_cap(Some(400_000));
        for _ in 0..30 {
            peer.send_to(&[0u8; 1000], to).await.unwrap();
        }
        let mut buf = [0u8; 2000];
        let start = Instant::now();
        let mut got = 0;
        while counters.delivered.load(Ordering::Relaxed)
            + counters.dropped_queue.load(Ordering::Relaxed)
            < 30
        {
            tokio::task::yield_now().await;
        }
        while got < counters.delivered.load(Ordering::Relaxed) {
            conn.recv_from(&mut buf).await.unwrap();
            got += 1;
        }
        let queued = counters.delivered.load(Ordering::Relaxed);
        assert!((10..=12).contains(&queued), "{queued} of 30 fit the queue");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(190) && took <= Duration::from_millis(250),
            "served at the cap: {took:?}"
        );
        // Lifted: no queue, no drops.
        counters.set_downlink_cap(None);
        for _ in 0..30 {
            peer.send_to(&[0u8; 1000], to).await.unwrap();
        }
        for _ in 0..30 {
            conn.recv_from(&mut buf).await.unwrap();
        }
        assert_eq!(counters.dropped_queue.load(Ordering::Relaxed), 30 - queued);
    }
}
