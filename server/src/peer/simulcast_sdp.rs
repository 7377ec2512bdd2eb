//! Asking a publisher for simulcast: the `webrtc` crate never offers `a=rid … recv` itself,
//! so the server's first offer is edited to ask for three layers on the camera's m-line
//! (RFC 8851 rids, RFC 8853 `a=simulcast`). Once an answer has said `a=rid:… send`, the crate
//! repeats the recv rids in every later offer on its own, so only the first is edited — but
//! it repeats every rid line of that answer, repeats included, so every offer has them
//! de-duplicated ([`dedupe_rids`]).
//!
//! Pure text in, text out: unit-tested on SDP, applied to what is sent, never to what the
//! connection holds as its local description.

/// The layers asked for, lowest first (the protocol's names, which the client scales to).
pub const LAYERS: [&str; 3] = protocol::SIMULCAST_RIDS;

/// `sdp` with the rid and simulcast lines added to the video m-section whose `a=mid` is
/// `mid`. Unchanged when there is no such video section or it already has simulcast or rids.
pub fn offer_layers(sdp: &str, mid: &str) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.split(eol).collect();
    let want = format!("a=mid:{mid}");
    // Sections as index ranges: [session, m-section, m-section, ...].
    let mut starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("m="))
        .map(|(i, _)| i)
        .collect();
    let Some(&first_m) = starts.first() else {
        return sdp.to_owned();
    };
    // The last section ends before the text's final empty piece (after the last eol).
    let end = if lines.last() == Some(&"") {
        lines.len() - 1
    } else {
        lines.len()
    };
    starts.push(end);
    let target = starts.windows(2).find(|w| {
        let section = &lines[w[0]..w[1]];
        section[0].starts_with("m=video ")
            && section.iter().any(|l| *l == want)
            && !section
                .iter()
                .any(|l| l.starts_with("a=simulcast:") || l.starts_with("a=rid:"))
    });
    let Some(&[_, insert_at]) = target else {
        return sdp.to_owned();
    };
    debug_assert!(insert_at > first_m);
    let added: Vec<String> = LAYERS
        .iter()
        .map(|rid| format!("a=rid:{rid} recv"))
        .chain(std::iter::once(format!(
            "a=simulcast:recv {}",
            LAYERS.join(";")
        )))
        .collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len() + added.len());
    out.extend_from_slice(&lines[..insert_at]);
    out.extend(added.iter().map(String::as_str));
    out.extend_from_slice(&lines[insert_at..]);
    out.join(eol)
}

/// `sdp` with each m-section's repeated `a=rid:<id>` lines dropped (the first kept) and
/// repeated ids dropped from its `a=simulcast:` lists. The crate builds a later offer's rids
/// from the last answer, all of them; an answerer that echoes the offered rids and adds its
/// own (the crate's, as testkit's peers are) would get one more copy in each re-offer.
pub fn dedupe_rids(sdp: &str) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut seen: Vec<&str> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for line in sdp.split(eol) {
        if line.starts_with("m=") {
            seen.clear();
        }
        if let Some(rest) = line.strip_prefix("a=rid:") {
            let id = rest.split(' ').next().unwrap_or(rest);
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            out.push(line.to_owned());
        } else if let Some(rest) = line.strip_prefix("a=simulcast:") {
            // "<dir> <list>[ <dir> <list>]": each list's alternatives without repeats.
            let fields: Vec<String> = rest
                .split(' ')
                .enumerate()
                .map(|(i, field)| {
                    if i % 2 == 0 {
                        return field.to_owned();
                    }
                    let mut kept: Vec<&str> = Vec::new();
                    for alt in field.split(';') {
                        if !kept.contains(&alt) {
                            kept.push(alt);
                        }
                    }
                    kept.join(";")
                })
                .collect();
            out.push(format!("a=simulcast:{}", fields.join(" ")));
        } else {
            out.push(line.to_owned());
        }
    }
    out.join(eol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_rids_are_dropped_section_by_section() {
        let tripled = OFFER.replace(
            "a=mid:1\r\n",
            &format!(
                "a=mid:1\r\n{}",
                LINES.repeat(3).replace("a=simulcast:recv q;h;f\r\n", "")
                    + "a=simulcast:recv q;h;f;q;h;f;q;h;f\r\n"
            ),
        );
        let once = OFFER.replace("a=mid:1\r\n", &format!("a=mid:1\r\n{LINES}"));
        assert_eq!(dedupe_rids(&tripled), once);
        assert_eq!(dedupe_rids(&once), once, "nothing repeated: unchanged");
        assert_eq!(dedupe_rids(OFFER), OFFER);
        // The same rid in two sections is no repeat; both directions' lists are cleaned.
        let two = format!(
            "{OFFER}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=rid:q send\r\na=rid:q send\r\n\
             a=simulcast:send q;q recv f;f\r\n"
        );
        let cleaned = dedupe_rids(&two);
        assert!(
            cleaned.ends_with("a=mid:3\r\na=rid:q send\r\na=simulcast:send q recv f\r\n"),
            "{cleaned}"
        );
        assert_eq!(dedupe_rids(""), "");
    }

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sendonly\r\n";

    const LINES: &str =
        "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\n";

    #[test]
    fn asks_for_three_layers_on_that_video_section_only() {
        let out = offer_layers(OFFER, "1");
        let expected = OFFER.replace(
            "a=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2",
            &format!("a=recvonly\r\n{LINES}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2"),
        );
        assert_eq!(out, expected);
        assert_eq!(out.matches("a=simulcast:").count(), 1);
    }

    #[test]
    fn the_last_section_and_bare_newlines() {
        let out = offer_layers(OFFER, "2");
        assert!(out.ends_with(&format!("a=sendonly\r\n{LINES}")), "{out}");
        let bare = OFFER.replace("\r\n", "\n");
        let out = offer_layers(&bare, "1");
        assert!(!out.contains('\r'));
        assert!(out.contains(&format!(
            "a=recvonly\n{}m=video",
            LINES.replace("\r\n", "\n")
        )));
        // Without a final newline the lines still go at the end.
        let cut = OFFER.trim_end();
        assert!(offer_layers(cut, "2").ends_with(
            "a=sendonly\r\na=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f"
        ));
    }

    #[test]
    fn unchanged_for_audio_unknown_mids_and_sections_that_have_layers() {
        assert_eq!(offer_layers(OFFER, "0"), OFFER, "audio");
        assert_eq!(offer_layers(OFFER, "9"), OFFER, "no such mid");
        assert_eq!(offer_layers(OFFER, ""), OFFER);
        // "a=mid:1" must not match "a=mid:10".
        assert_eq!(
            offer_layers(&OFFER.replace("a=mid:1\r", "a=mid:10\r"), "1"),
            OFFER.replace("a=mid:1\r", "a=mid:10\r")
        );
        let once = offer_layers(OFFER, "1");
        assert_eq!(offer_layers(&once, "1"), once, "never twice");
        let echoed = OFFER.replace("a=mid:1\r\n", "a=mid:1\r\na=rid:f recv\r\n");
        assert_eq!(offer_layers(&echoed, "1"), echoed);
        assert_eq!(offer_layers("", "1"), "");
        assert_eq!(offer_layers("v=0\r\n", "1"), "v=0\r\n");
    }
}
