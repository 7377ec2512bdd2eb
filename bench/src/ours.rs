//! Signaling adapter for our server: JSON over the WebSocket at `/socket`, through the protocol
//! crate as the client and testkit do (channel join, room join, server offers, client answers,
//! server candidates trickled). One WebSocket and one peer connection per participant; every
//! participant receives every track in the room without asking.
//!
//! By default the answer carries the generator's candidates (gathered first, a few ms on one
//! host interface), exactly as the Janus adapter's SDPs do, so join times compare like for
//! like; `trickle` sends them as separate events instead, as browsers do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use protocol::{
    topic_for_room, ClientMediaEvent, ClientMessage, PeerMetadata, SdpType, ServerMediaEvent,
    ServerMessage, SessionDescription, TrackMetadata, TrackSource, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use webrtc::api::API;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::track::track_local::TrackLocal;

use crate::load::{LocalMedia, Participant, PublishSpec, Receiver};

type Stream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// Joins `room` at `url` (`ws://host:port/socket`) as `name`, publishing if `publish` is set.
/// Returns once the server accepted the peer; media comes up in the background.
pub async fn join(
    api: &API,
    url: &str,
    room: &str,
    name: &str,
    publish: Option<PublishSpec>,
    trickle: bool,
) -> anyhow::Result<Participant> {
    let recv = Receiver::starting_now();
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let (sink, mut stream) = ws.split();
    let cancel = CancellationToken::new();
    let out = crate::ws::spawn_writer(sink, cancel.clone());
    let send = |m: ClientMessage| {
        out.send(Message::Text(m.encode().into()))
            .map_err(|_| anyhow!("socket closed"))
    };
    send(ClientMessage::ChannelJoin {
        topic: topic_for_room(room),
        protocol_version: PROTOCOL_VERSION,
        token: None,
    })?;
    match next_message(&mut stream).await? {
        ServerMessage::ChannelJoined { .. } => {}
        other => bail!("unexpected reply to channelJoin: {other:?}"),
    }
    send(ClientMessage::MediaEvent {
        data: ClientMediaEvent::Join {
            metadata: PeerMetadata {
                display_name: name.to_owned(),
            },
            reconnect_token: None,
        },
    })?;
    let id = match next_message(&mut stream).await? {
        ServerMessage::MediaEvent {
            data: ServerMediaEvent::PeerAccepted { id, .. },
        } => id,
        other => bail!("unexpected reply to join: {other:?}"),
    };

    let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
    recv.attach(&pc);
    let mut track_meta = BTreeMap::new();
    let media = match publish {
        Some(spec) => {
            let m = LocalMedia::add(&pc, spec, &id, &format!("bench-{id}")).await?;
            for (t, source) in [
                (m.audio.id().to_owned(), TrackSource::Microphone),
                (m.video.id().to_owned(), TrackSource::Camera),
            ] {
                track_meta.insert(
                    t,
                    TrackMetadata {
                        source,
                        muted: false,
                    },
                );
            }
            m.start(&cancel);
            Some(m)
        }
        None => None,
    };
    let cand_out = out.clone();
    pc.on_ice_candidate(Box::new(move |c| {
        if !trickle {
            return Box::pin(async {});
        }
        if let Some(msg) = c.as_ref().and_then(testkit::candidate_message) {
            let _ = cand_out.send(Message::Text(msg.encode().into()));
        }
        Box::pin(async {})
    }));
    let loop_cancel = cancel.clone();
    let weak = Arc::downgrade(&pc);
    let who = name.to_owned();
    tokio::spawn(async move {
        tokio::select! {
            _ = loop_cancel.cancelled() => {}
            r = signal_loop(stream, out, weak, track_meta, trickle) => {
                if let Err(e) = r {
                    debug!(peer = %who, error = %e, "signaling ended");
                }
            }
        }
    });
    Ok(Participant {
        name: name.to_owned(),
        feed: None,
        recv,
        pcs: vec![pc],
        cancel,
        media,
    })
}

async fn next_message(stream: &mut Stream) -> anyhow::Result<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .context("no reply from the server within 10 s")?
            .context("socket closed")??;
        match frame {
            Message::Text(t) => return Ok(ServerMessage::decode(t.as_str())?),
            Message::Close(c) => bail!("socket closed: {c:?}"),
            _ => continue,
        }
    }
}

async fn signal_loop(
    mut stream: Stream,
    out: mpsc::UnboundedSender<Message>,
    pc: std::sync::Weak<RTCPeerConnection>,
    track_meta: BTreeMap<String, TrackMetadata>,
    trickle: bool,
) -> anyhow::Result<()> {
    let mut uplink_mids: BTreeMap<String, String> = BTreeMap::new();
    while let Some(frame) = stream.next().await {
        let text = match frame? {
            Message::Text(t) => t,
            Message::Close(c) => bail!("closed by the server: {c:?}"),
            _ => continue,
        };
        let ServerMessage::MediaEvent { data } = ServerMessage::decode(text.as_str())? else {
            continue;
        };
        let Some(pc) = pc.upgrade() else {
            return Ok(());
        };
        match data {
            ServerMediaEvent::SdpOffer {
                sdp_offer,
                mid_to_track_id,
            } => {
                pc.set_remote_description(RTCSessionDescription::offer(sdp_offer.sdp)?)
                    .await?;
                let answer = pc.create_answer(None).await?;
                pc.set_local_description(answer).await?;
                if !trickle {
                    let mut done = pc.gathering_complete_promise().await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), done.recv()).await;
                }
                // Our publishers send one plain stream: the layers the server asks cameras
                // for (simulcast, on by default) are declined, as a browser without them does.
                let sdp = testkit::decline_simulcast(
                    &pc.local_description()
                        .await
                        .ok_or_else(|| anyhow!("no local description"))?
                        .sdp,
                );
                for t in pc.get_transceivers().await {
                    let (Some(mid), Some(track)) = (t.mid(), t.sender().await.track().await) else {
                        continue;
                    };
                    if !mid_to_track_id.contains_key(mid.as_str()) {
                        uplink_mids.insert(mid.to_string(), track.id().to_owned());
                    }
                }
                let reply = ClientMessage::MediaEvent {
                    data: ClientMediaEvent::SdpAnswer {
                        sdp_answer: SessionDescription {
                            kind: SdpType::Answer,
                            sdp,
                        },
                        track_id_to_track_metadata: track_meta.clone(),
                        mid_to_track_id: uplink_mids.clone(),
                    },
                };
                out.send(Message::Text(reply.encode().into()))?;
            }
            ServerMediaEvent::Candidate(c) => {
                pc.add_ice_candidate(RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_m_line_index,
                    username_fragment: c.username_fragment,
                })
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}
