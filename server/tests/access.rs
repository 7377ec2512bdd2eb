//! Optional room access: with a token secret, only a valid, unexpired token for the very room
//! opens its channel; every refusal says why and leaves the room unchanged.

mod common;

use common::RawClient;
use protocol::*;
use server::access::{now_unix, TokenKey};

const SECRET: &str = "a test secret, long enough";

async fn try_join(
    server: &server::RunningServer,
    room: &str,
    token: Option<String>,
) -> Result<(), String> {
    let mut c = RawClient::connect(server).await;
    c.send(&ClientMessage::ChannelJoin {
        topic: topic_for_room(room),
        protocol_version: PROTOCOL_VERSION,
        token,
    })
    .await;
    match c.read_message().await {
        ServerMessage::ChannelJoined { .. } => Ok(()),
        ServerMessage::ChannelJoinError { reason } => Err(reason),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn only_valid_tokens_for_the_room_open_it() {
    let server = common::start(|c| c.join_token_secret = Some(SECRET.into())).await;
    let key = TokenKey::new(SECRET).unwrap();
    let room = common::room("locked");
    let in_an_hour = now_unix() + 3600;

    assert_eq!(
        try_join(&server, &room, None).await,
        Err("this server requires a join token".into())
    );
    assert_eq!(
        try_join(&server, &room, Some(key.mint(&room, now_unix() - 1))).await,
        Err("the join token has expired".into())
    );
    assert_eq!(
        try_join(&server, &room, Some(key.mint("elsewhere", in_an_hour))).await,
        Err("the join token is for another room".into())
    );
    let forger = TokenKey::new("not the server's secret at all").unwrap();
    assert_eq!(
        try_join(&server, &room, Some(forger.mint(&room, in_an_hour))).await,
        Err("the join token's signature is invalid".into())
    );
    assert_eq!(
        try_join(&server, &room, Some("garbage".into())).await,
        Err("the join token is malformed".into())
    );
    assert_eq!(
        server.state.rooms.census().rooms,
        0,
        "refusals created a room"
    );

    assert_eq!(
        try_join(&server, &room, Some(key.mint(&room, in_an_hour))).await,
        Ok(())
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_a_secret_no_token_is_needed() {
    let server = common::start(|_| {}).await;
    assert_eq!(try_join(&server, &common::room("open"), None).await, Ok(()));
    server.shutdown().await.unwrap();
}
