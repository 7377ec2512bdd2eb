//! Which page a URL shows: the landing form or a room (the server returns `index.html` for both).

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::consts::ROOM_PATH_PREFIX;
use crate::form::{validate_form, FormErrors, JoinRequest};

/// Bytes escaped in a path segment: all but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The page to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The join form, pre-filled, with the problems of a rejected room link if any.
    Landing {
        /// The room name to pre-fill.
        room_name: String,
        /// The display name to pre-fill.
        display_name: String,
        /// Why the link could not be joined as it was.
        errors: Option<FormErrors>,
    },
    /// The room page, for a valid room and display name.
    Room(JoinRequest),
}

/// Routes `pathname` plus the `display_name` query parameter (already URL-decoded).
///
/// `/room/<name>` without a display name lands on the form with the room filled in, as the
/// original does, so Disconnect, reload and a shared link all lead to a ready form.
pub fn route(pathname: &str, display_name: Option<&str>) -> Route {
    let room_name = room_from_path(pathname).unwrap_or_default();
    let display_name = display_name.unwrap_or_default();
    if room_name.is_empty() || display_name.trim().is_empty() {
        return Route::Landing {
            room_name,
            display_name: display_name.trim().to_owned(),
            errors: None,
        };
    }
    match validate_form(&room_name, display_name) {
        Ok(request) => Route::Room(request),
        Err(errors) => Route::Landing {
            room_name,
            display_name: display_name.trim().to_owned(),
            errors: Some(errors),
        },
    }
}

/// The room name in `/room/<name>` (percent-decoded), if the path is a room page; a name
/// that does not decode to UTF-8 is no room (the landing form then asks for one).
pub fn room_from_path(pathname: &str) -> Option<String> {
    let raw = pathname.strip_prefix(ROOM_PATH_PREFIX)?;
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    Some(percent_decode_str(raw).decode_utf8().ok()?.into_owned())
}

/// The path of a room's page: `/room/<name>` (encoded, though valid names need no encoding).
pub fn room_path(room_name: &str) -> String {
    format!(
        "{ROOM_PATH_PREFIX}{}",
        utf8_percent_encode(room_name, SEGMENT)
    )
}

/// Where the landing form sends a person: `/room/<name>?display_name=<name>`.
pub fn room_url(request: &JoinRequest) -> String {
    format!(
        "{}?{}={}",
        room_path(&request.room_name),
        crate::consts::DISPLAY_NAME_PARAM,
        utf8_percent_encode(&request.display_name, SEGMENT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_for_root_and_unknown_paths() {
        for path in ["/", "", "/index.html", "/rooms/x"] {
            assert_eq!(
                route(path, None),
                Route::Landing {
                    room_name: String::new(),
                    display_name: String::new(),
                    errors: None
                },
                "{path}"
            );
        }
    }

    #[test]
    fn room_link_without_name_fills_the_form() {
        assert_eq!(
            route("/room/standup", None),
            Route::Landing {
                room_name: "standup".into(),
                display_name: String::new(),
                errors: None
            }
        );
        assert_eq!(
            route("/room/standup/", Some("  ")),
            Route::Landing {
                room_name: "standup".into(),
                display_name: String::new(),
                errors: None
            }
        );
    }

    #[test]
    fn valid_link_opens_the_room() {
        assert_eq!(
            route("/room/stand.up-1", Some(" Zoë ")),
            Route::Room(JoinRequest {
                room_name: "stand.up-1".into(),
                display_name: "Zoë".into()
            })
        );
    }

    #[test]
    fn bad_link_explains() {
        let Route::Landing {
            room_name, errors, ..
        } = route("/room/a%20b", Some("Al"))
        else {
            panic!("a bad room name must not open a room");
        };
        assert_eq!(room_name, "a b");
        assert!(errors.unwrap().room_name.is_some());
    }

    #[test]
    fn form_target_round_trips() {
        let request = JoinRequest {
            room_name: "standup".into(),
            display_name: "Zoë & <b>Bob</b>?=#".into(),
        };
        let url = room_url(&request);
        assert_eq!(
            url,
            "/room/standup?display_name=Zo%C3%AB%20%26%20%3Cb%3EBob%3C%2Fb%3E%3F%3D%23"
        );
        let (path, query) = url.split_once('?').unwrap();
        let name = query.strip_prefix("display_name=").unwrap();
        let name = percent_decode_str(name).decode_utf8().unwrap();
        assert_eq!(route(path, Some(&name)), Route::Room(request));
    }

    #[test]
    fn paths_round_trip() {
        assert_eq!(room_path("a.b-c_d"), "/room/a.b-c_d");
        assert_eq!(room_path("a b/c"), "/room/a%20b%2Fc");
        assert_eq!(room_from_path(&room_path("a b/c")).unwrap(), "a b/c");
        assert_eq!(room_from_path("/room/%FF"), None);
    }
}
