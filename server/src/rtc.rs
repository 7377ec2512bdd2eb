//! Builds the one `webrtc` API every peer connection comes from: codecs, interceptors, and the ICE
//! network (addresses offered, shared UDP port, NAT mapping, timeouts).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use std::sync::Arc;
use webrtc::interceptor::nack::generator::Generator;

use crate::nack::{RepairStats, ResponderBuilder};
use crate::transport_cc::{BweStats, TransportCcBuilder};
use webrtc::api::interceptor_registry::{configure_rtcp_reports, configure_twcc_receiver_only};
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::{EphemeralUDP, UDPNetwork};
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::interceptor::registry::Registry;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::sdp::extmap;

use crate::config::Config;

/// The API plus the address of the shared UDP port, if one is used.
pub struct Rtc {
    /// Makes peer connections.
    pub api: API,
    /// The shared media port, when muxed.
    pub udp_addr: Option<SocketAddr>,
    /// What the downlink NACK responder did.
    pub repair: Arc<RepairStats>,
    /// The subscribers' downlink estimates.
    pub bwe: Arc<BweStats>,
}

/// Opus for audio, VP8 for video: every browser we support has both, and an SFU needs one codec
/// per kind that all peers share (it never transcodes). Fewer codecs also keep SDPs small.
///
/// With `simulcast`, video also takes the mid and rid header extensions the crate needs to tell
/// a camera's layers apart, for receiving only: on forwarded (sendonly) m-lines they would
/// make each subscriber's packets carry the publisher's mid.
fn media_engine(simulcast: bool) -> anyhow::Result<MediaEngine> {
    let mut m = MediaEngine::default();
    m.register_codec(
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: 111,
            ..Default::default()
        },
        RTPCodecType::Audio,
    )?;
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    m.register_codec(
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![
                    feedback("ccm", "fir"),
                    feedback("nack", ""),
                    feedback("nack", "pli"),
                ],
            },
            payload_type: 96,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    // Browsers then put each audio packet's level in it: voice activity without decoding.
    m.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: crate::voice::AUDIO_LEVEL_URI.to_owned(),
        },
        RTPCodecType::Audio,
        None,
    )?;
    if simulcast {
        for uri in [
            extmap::SDES_MID_URI,
            extmap::SDES_RTP_STREAM_ID_URI,
            extmap::SDES_REPAIR_RTP_STREAM_ID_URI,
        ] {
            m.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                RTPCodecType::Video,
                Some(RTCRtpTransceiverDirection::Recvonly),
            )?;
        }
    }
    Ok(m)
}

/// Builds the API from the configuration; binds the shared UDP port when one is used.
pub async fn build(config: &Config) -> anyhow::Result<Rtc> {
    let mut media = media_engine(config.simulcast)?;
    // The crate's defaults, but for the downlink NACK responder: ours (see `nack`). NACK
    // feedback itself is declared per codec in `media_engine`.
    let repair = Arc::new(RepairStats::default());
    let mut registry = Registry::new();
    registry.add(Box::new(Generator::builder()));
    registry = configure_rtcp_reports(registry);
    registry = configure_twcc_receiver_only(registry, &mut media)?;
    // Inside the responder: resent packets are stamped and counted too.
    let bwe = Arc::new(BweStats::default());
    registry.add(Box::new(TransportCcBuilder { stats: bwe.clone() }));
    // Added last, so it is outermost: it numbers packets before the other interceptors see them.
    registry.add(Box::new(ResponderBuilder {
        stats: repair.clone(),
    }));

    let mut s = SettingEngine::default();
    // mDNS would open port 5353 and slow every connect; browsers' .local candidates are learnt
    // as peer-reflexive anyway.
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // IPv4 only: predictable candidate pairs (IPv6 can be added behind a flag when needed).
    s.set_network_types(vec![NetworkType::Udp4]);
    // A vanished peer (laptop lid closed) is declared failed in seconds, not the default 25 s.
    s.set_ice_timeouts(
        Some(Duration::from_secs(4)),
        Some(Duration::from_secs(8)),
        Some(Duration::from_secs(1)),
    );
    // Browsers hide host addresses behind mDNS names, so the server learns them as
    // peer-reflexive; the default 1 s wait before accepting such a pair would delay every join.
    s.set_prflx_acceptance_min_wait(Some(Duration::ZERO));
    s.set_srflx_acceptance_min_wait(Some(Duration::ZERO));
    let allowed: Vec<IpAddr> = config.ice_ips.clone();
    if allowed.iter().any(IpAddr::is_loopback) {
        s.set_include_loopback_candidate(true);
    }
    if !allowed.is_empty() {
        s.set_ip_filter(Box::new(move |ip: IpAddr| allowed.contains(&ip)));
    }
    if let Some(ip) = config.nat_1to1_ip {
        s.set_nat_1to1_ips(vec![ip.to_string()], RTCIceCandidateType::Host);
    }

    let mut udp_addr = None;
    if let Some((min, max)) = config.udp_port_range {
        let eph = EphemeralUDP::new(min, max).context("UDP port range")?;
        s.set_udp_network(UDPNetwork::Ephemeral(eph));
    } else {
        // Bind the shared port on the one ICE address when there is exactly one (tests bind
        // loopback only), else on every interface.
        let ip = match config.ice_ips.as_slice() {
            [one] => *one,
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let socket = tokio::net::UdpSocket::bind((ip, config.udp_port))
            .await
            .with_context(|| format!("binding UDP media port {ip}:{}", config.udp_port))?;
        udp_addr = Some(socket.local_addr()?);
        let mux = if loopback_only(config) {
            UDPMuxDefault::new(UDPMuxParams::new(LoopbackOnly(socket)))
        } else {
            UDPMuxDefault::new(UDPMuxParams::new(socket))
        };
        s.set_udp_network(UDPNetwork::Muxed(mux));
    }

    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build();
    Ok(Rtc {
        api,
        udp_addr,
        repair,
        bwe,
    })
}

/// The addresses ICE offers to browsers, for the start-up log: what a firewall or a NAT rule
/// must let through.
pub fn advertised(config: &Config) -> String {
    let ips: Vec<IpAddr> = if let Some(ip) = config.nat_1to1_ip {
        vec![ip]
    } else if !config.ice_ips.is_empty() {
        config.ice_ips.clone()
    } else {
        webrtc::util::ifaces::ifaces()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.addr.map(|a| a.ip()))
            .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
            .collect()
    };
    let ports = match config.udp_port_range {
        Some((min, max)) => format!("UDP {min}-{max}"),
        None if config.udp_port == 0 => "UDP (a free port)".to_owned(),
        None => format!("UDP {}", config.udp_port),
    };
    let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    match list.is_empty() {
        true => format!("none found ({ports}): set --ice-ips or --nat-1to1-ip"),
        false => format!("{} on {ports}", list.join(", ")),
    }
}

/// Whether ICE is confined to loopback (tests): then the server neither answers nor checks any
/// other address, not even this machine's own interface addresses that browsers also gather.
pub fn loopback_only(config: &Config) -> bool {
    !config.ice_ips.is_empty() && config.ice_ips.iter().all(IpAddr::is_loopback)
}

/// Whether a trickled candidate (`candidate:… <address> <port> typ …`) is worth adding: on a
/// loopback-only server only loopback candidates are.
pub fn candidate_reachable(config: &Config, candidate: &str) -> bool {
    if !loopback_only(config) {
        return true;
    }
    candidate
        .split_whitespace()
        .nth(4)
        .and_then(|a| a.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// The shared media socket of a loopback-only server: datagrams from other addresses (a
/// browser's checks sent from its interface address) are dropped, so nothing is ever sent back
/// to them.
struct LoopbackOnly(tokio::net::UdpSocket);

#[async_trait::async_trait]
impl webrtc::util::Conn for LoopbackOnly {
    async fn connect(&self, addr: SocketAddr) -> webrtc::util::Result<()> {
        Ok(self.0.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        Ok(self.0.recv(buf).await?)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.0.recv_from(buf).await?;
            if from.ip().is_loopback() {
                return Ok((n, from));
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc::util::Result<usize> {
        Ok(self.0.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc::util::Result<usize> {
        if !target.ip().is_loopback() {
            return Err(webrtc::util::Error::Other(format!(
                "{target} is not loopback; this server is confined to it"
            )));
        }
        Ok(self.0.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        Ok(self.0.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc::util::Result<()> {
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
    fn a_loopback_server_keeps_only_loopback_candidates() {
        let mut c = Config::for_tests();
        let host = "candidate:1 1 udp 2122260223 192.0.2.2 51512 typ host generation 0";
        let lo = "candidate:2 1 udp 2122194687 127.0.0.1 40000 typ host generation 0";
        let mdns = "candidate:3 1 udp 2122260223 0f3c.local 51512 typ host";
        assert!(candidate_reachable(&c, lo));
        assert!(!candidate_reachable(&c, host));
        assert!(!candidate_reachable(&c, mdns));
        c.ice_ips = vec![];
        assert!(
            candidate_reachable(&c, host),
            "a normal server takes them all"
        );
    }
}
