//! Janus, the comparison: its configuration (only the videoroom plugin and the WebSocket
//! transport, one big VP8/Opus room) and a signaling adapter for the videoroom plugin's API over
//! the WebSocket transport. One WebSocket, one Janus session per participant, as a browser
//! using janus.js has: a publisher handle (`joinandconfigure` with our offer) and a subscriber
//! handle (`join` as subscriber to a list of feeds; Janus offers, we answer with `start`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use webrtc::api::API;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;

use crate::load::{LocalMedia, Participant, PublishSpec, Receiver};

/// The room every benchmark participant joins.
pub const ROOM: u64 = 4321;
/// The WebSocket transport's port.
pub const WS_PORT: u16 = 8188;
const PLUGINS: &str = "/usr/lib/x86_64-linux-gnu/janus/plugins";
const TRANSPORTS: &str = "/usr/lib/x86_64-linux-gnu/janus/transports";

/// Writes a configuration folder for a Janus bound to `ip`, gathering ICE on `dev` only.
pub fn write_config(dir: &Path, ip: &str, dev: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let others = |folder: &str, keep: &str| -> String {
        std::fs::read_dir(folder)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".so") && n != keep)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let main = format!(
        r#"general: {{
	configs_folder = "{dir}"
	plugins_folder = "{PLUGINS}"
	transports_folder = "{TRANSPORTS}"
	session_timeout = 60
}}
certificates: {{
}}
media: {{
	rtp_port_range = "20000-40000"
}}
nat: {{
	ice_enforce_list = "{dev}"
	ignore_mdns = true
	full_trickle = false
}}
plugins: {{
	disable = "{plugins}"
}}
transports: {{
	disable = "{transports}"
}}
events: {{
	broadcast = false
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
"#,
        dir = dir.display(),
        plugins = others(PLUGINS, "libjanus_videoroom.so"),
        transports = others(TRANSPORTS, "libjanus_websockets.so"),
    );
    std::fs::write(dir.join("janus.jcfg"), main)?;
    std::fs::write(
        dir.join("janus.transport.websockets.jcfg"),
        format!(
            "general: {{\n\tjson = \"compact\"\n\tws = true\n\tws_port = {WS_PORT}\n\tws_ip = \"{ip}\"\n\twss = false\n}}\nadmin: {{\n\tadmin_ws = false\n\tadmin_wss = false\n}}\n"
        ),
    )?;
    // Enough publishers for the mesh, a bitrate cap above what we send, VP8 + Opus only and no
    // simulcast (we send none); PLI every 10 s as Janus's demos do.
    std::fs::write(
        dir.join("janus.plugin.videoroom.jcfg"),
        format!(
            "general: {{\n}}\nroom-{ROOM}: {{\n\tdescription = \"bench\"\n\tpublishers = 64\n\tbitrate = 2000000\n\tfir_freq = 10\n\taudiocodec = \"opus\"\n\tvideocodec = \"vp8\"\n\tnotify_joining = false\n}}\n"
        ),
    )?;
    Ok(())
}

/// One WebSocket to Janus and its session: requests matched to replies by transaction.
struct Conn {
    out: mpsc::UnboundedSender<Message>,
    pending: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>>,
    session: u64,
    next: AtomicU64,
}

impl Conn {
    async fn open(url: &str, cancel: &CancellationToken) -> anyhow::Result<Conn> {
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "janus-protocol".parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (sink, mut stream) = ws.split();
        let out = crate::ws::spawn_writer(sink, cancel.clone());
        let pending: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>> = Arc::default();
        let p = pending.clone();
        let c = cancel.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = c.cancelled() => return,
                    f = stream.next() => f,
                };
                let Some(Ok(Message::Text(t))) = frame else {
                    if matches!(frame, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                        return;
                    }
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                let Some(tx) = v["transaction"]
                    .as_str()
                    .and_then(|tr| p.lock().unwrap_or_else(|e| e.into_inner()).get(tr).cloned())
                else {
                    continue;
                };
                let _ = tx.send(v);
            }
        });
        let mut conn = Conn {
            out,
            pending,
            session: 0,
            next: AtomicU64::new(1),
        };
        let r = conn.call(json!({"janus": "create"})).await?;
        conn.session = r["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("create: no session id in {r}"))?;
        // Janus drops a session after 60 s without a request; runs last longer than that.
        let (out, session, c) = (conn.out.clone(), conn.session, cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(20));
            loop {
                tokio::select! {
                    _ = c.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let ka = json!({"janus": "keepalive", "session_id": session, "transaction": "ka"});
                if out.send(Message::Text(ka.to_string().into())).is_err() {
                    return;
                }
            }
        });
        Ok(conn)
    }

    /// Sends `msg` and returns the first reply that is not an `ack`.
    async fn call(&self, mut msg: Value) -> anyhow::Result<Value> {
        let tr = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        msg["transaction"] = json!(tr);
        if self.session != 0 {
            msg["session_id"] = json!(self.session);
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tr.clone(), tx);
        self.out
            .send(Message::Text(msg.to_string().into()))
            .map_err(|_| anyhow!("socket closed"))?;
        let reply = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(v) = rx.recv().await {
                if v["janus"] != "ack" {
                    return Some(v);
                }
            }
            None
        })
        .await;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tr);
        let v = reply
            .map_err(|_| anyhow!("no reply to {msg} within 15 s"))?
            .ok_or_else(|| anyhow!("socket closed"))?;
        if v["janus"] == "error" {
            bail!("janus error: {}", v["error"]);
        }
        if let Some(err) = v["plugindata"]["data"]["error"].as_str() {
            bail!("videoroom error: {err}");
        }
        Ok(v)
    }

    async fn attach(&self) -> anyhow::Result<u64> {
        let r = self
            .call(json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}))
            .await?;
        r["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("attach: no handle id in {r}"))
    }

    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut m = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        self.call(m).await
    }
}

/// Our local description once ICE gathering is done: Janus takes candidates inside the SDP.
async fn gathered_sdp(pc: &RTCPeerConnection) -> anyhow::Result<String> {
    let mut done = pc.gathering_complete_promise().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), done.recv()).await;
    Ok(pc
        .local_description()
        .await
        .ok_or_else(|| anyhow!("no local description"))?
        .sdp)
}

fn jsep_sdp(v: &Value) -> anyhow::Result<String> {
    v["jsep"]["sdp"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no jsep in {v}"))
}

/// A participant that publishes into the room and, when `feeds` is not empty, subscribes to
/// those feeds (on a second peer connection, as Janus's API has it).
pub async fn join(
    api: &API,
    url: &str,
    name: &str,
    publish: Option<PublishSpec>,
    feeds: &[u64],
    recv: Option<Arc<Receiver>>,
) -> anyhow::Result<Participant> {
    let recv = recv.unwrap_or_else(Receiver::starting_now);
    let cancel = CancellationToken::new();
    let conn = Conn::open(url, &cancel).await?;
    let mut p = Participant {
        name: name.to_owned(),
        feed: None,
        recv: recv.clone(),
        pcs: Vec::new(),
        cancel: cancel.clone(),
        media: None,
    };
    if let Some(spec) = publish {
        let handle = conn.attach().await?;
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        recv.attach(&pc);
        p.pcs.push(pc.clone());
        let media = LocalMedia::add(&pc, spec, name, &format!("bench-{name}")).await?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        let sdp = gathered_sdp(&pc).await?;
        let r = conn
            .message(
                handle,
                json!({"request": "joinandconfigure", "room": ROOM, "ptype": "publisher",
                       "display": name, "audio": true, "video": true}),
                Some(json!({"type": "offer", "sdp": sdp})),
            )
            .await?;
        p.feed = r["plugindata"]["data"]["id"].as_u64();
        if p.feed.is_none() {
            bail!("publisher join: no feed id in {r}");
        }
        pc.set_remote_description(RTCSessionDescription::answer(jsep_sdp(&r)?)?)
            .await?;
        media.start(&cancel);
        p.media = Some(media);
    }
    if !feeds.is_empty() {
        let handle = conn.attach().await?;
        let pc = Arc::new(api.new_peer_connection(RTCConfiguration::default()).await?);
        recv.attach(&pc);
        p.pcs.push(pc.clone());
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let body = json!({"request": "join", "room": ROOM, "ptype": "subscriber",
                          "streams": streams});
        // A feed exists for subscribers only once its media is up in Janus, a moment after
        // the publisher's own connection is: retry briefly as janus.js users do.
        let mut tries = 0;
        let r = loop {
            match conn.message(handle, body.clone(), None).await {
                Err(e) if tries < 20 && e.to_string().contains("No such feed") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        pc.set_remote_description(RTCSessionDescription::offer(jsep_sdp(&r)?)?)
            .await?;
        let answer = pc.create_answer(None).await?;
        pc.set_local_description(answer).await?;
        let sdp = gathered_sdp(&pc).await?;
        conn.message(
            handle,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": sdp})),
        )
        .await?;
    }
    // The connection lives as long as the participant: its tasks end on `cancel`.
    tokio::spawn(async move {
        let _conn = conn;
        cancel.cancelled().await;
        debug!("janus participant closed");
    });
    Ok(p)
}
