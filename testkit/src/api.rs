//! The WebRTC API a test peer is built on: codecs, header extensions, interceptors and the
//! ICE settings that keep it on one address (optionally over an impaired link).

use std::net::IpAddr;

use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::dtls_transport::dtls_role::DTLSRole;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::interceptor::registry::Registry;

use crate::audio_level::AUDIO_LEVEL_URI;
use crate::impair::ImpairedConn;

/// Builds the WebRTC API a test peer uses: Opus + VP8, loopback ICE only.
pub fn api(ice_ip: IpAddr) -> anyhow::Result<API> {
    api_over(ice_ip, None)
}

/// [`api`], with all of the peer's UDP over `conn` when given (e.g. an [`ImpairedConn`]).
pub fn api_over(ice_ip: IpAddr, conn: Option<ImpairedConn>) -> anyhow::Result<API> {
    let mut m = MediaEngine::default();
    m.register_default_codecs()?;
    // As browsers do: the server then reads voice activity from our audio.
    m.register_header_extension(
        webrtc::rtp_transceiver::rtp_codec::RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        webrtc::rtp_transceiver::rtp_codec::RTPCodecType::Audio,
        None,
    )?;
    // As browsers do: a simulcast camera's layers are told apart by these.
    for uri in [
        webrtc::sdp::extmap::SDES_MID_URI,
        webrtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
        webrtc::sdp::extmap::SDES_REPAIR_RTP_STREAM_ID_URI,
    ] {
        m.register_header_extension(
            webrtc::rtp_transceiver::rtp_codec::RTCRtpHeaderExtensionCapability {
                uri: uri.to_owned(),
            },
            webrtc::rtp_transceiver::rtp_codec::RTPCodecType::Video,
            None,
        )?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut m)?;
    let mut s = SettingEngine::default();
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    s.set_network_types(vec![NetworkType::Udp4]);
    s.set_include_loopback_candidate(ice_ip.is_loopback());
    s.set_ip_filter(Box::new(move |ip| ip == ice_ip));
    // The server offers `a=setup:active` (it is the DTLS client); a browser answers `passive`
    // by itself, this crate's answerer only when told.
    s.set_answering_dtls_role(DTLSRole::Server)?;
    if let Some(conn) = conn {
        s.set_udp_network(UDPNetwork::Muxed(UDPMuxDefault::new(UDPMuxParams::new(
            conn,
        ))));
    }
    Ok(APIBuilder::new()
        .with_media_engine(m)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build())
}
