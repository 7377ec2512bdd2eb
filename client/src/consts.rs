//! The tutorial's constants (`consts.ts`) and the texts a person reads.

/// The peer id used for the local tile's elements (`feed-local-peer`, `video-local-peer`...).
pub const LOCAL_PEER_ID: &str = "local-peer";

/// The label under the local tile.
pub const LOCAL_LABEL: &str = "Me";

/// Shown when the camera or microphone cannot be had.
pub const MEDIA_ERROR: &str =
    "Failed to setup video room, make sure to grant camera and microphone permissions";

/// Shown when the server refuses the join (room full, bad name...).
pub const PEER_DENIED: &str = "Peer denied.";

/// Shown when the connection to the server fails or drops (the tutorial's default error).
pub const CONNECTION_ERROR: &str = "Cannot connect to server, refresh the page and try again";

/// The signaling WebSocket's path, on the page's own origin.
pub const SOCKET_PATH: &str = "/socket";

/// The URL path prefix of a room page: `/room/<name>`.
pub const ROOM_PATH_PREFIX: &str = "/room/";

/// The query parameter carrying the display name from the landing form to the room page.
pub const DISPLAY_NAME_PARAM: &str = "display_name";

/// Where the landing form remembers the last display name (so Disconnect leads to a ready form).
pub const DISPLAY_NAME_STORAGE_KEY: &str = "videoroom.displayName";

/// Where the camera chosen last is remembered (local storage).
pub const CAMERA_STORAGE_KEY: &str = "videoroom.cameraId";

/// Where the microphone chosen last is remembered (local storage).
pub const MICROPHONE_STORAGE_KEY: &str = "videoroom.microphoneId";

/// What `getUserMedia` is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaConstraints {
    /// Ask for the microphone.
    pub audio: bool,
    /// Ask for the camera, with these settings.
    pub video: Option<VideoConstraints>,
}

/// The camera settings asked for (ideal values: the browser picks the nearest it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoConstraints {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: u32,
    /// Require exactly this camera (none: any camera).
    pub device_id: Option<&'static str>,
}

/// The tutorial's `MEDIA_CONSTRAINTS`: audio, and video 640x360 at 24 fps.
pub const MEDIA_CONSTRAINTS: MediaConstraints = MediaConstraints {
    audio: true,
    video: Some(VideoConstraints {
        width: 640,
        height: 360,
        frame_rate: 24,
        device_id: None,
    }),
};

/// The query parameter a shared link carries a join token in.
pub const TOKEN_PARAM: &str = "token";

/// Session-storage key prefix for a room's join token.
pub const TOKEN_STORAGE_PREFIX: &str = "videoroom-token:";
