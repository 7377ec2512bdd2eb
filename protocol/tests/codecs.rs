//! The client's codecs (`FromTree`, `ToJson`, derived by protocol-derive) are serde's, byte
//! for byte and refusal for refusal: every golden frame, and thousands of mutations of them
//! (members dropped, added, retyped, tags swapped), get the same answer from both; the one
//! difference is that serde also takes a variant's index as a tag (`"type":0`), which no
//! sender writes.

use std::path::PathBuf;

use protocol::json::ToJson;
use protocol::tree::FromTree;
use protocol::{ClientMessage, ServerMessage};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn goldens(prefix: &str) -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("golden");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 10,
        "too few {prefix} goldens in {}",
        dir.display()
    );
    out
}

include!("support/mutations.rs");

fn agree<M>(prefix: &str) -> usize
where
    M: DeserializeOwned + serde::Serialize + FromTree + ToJson + PartialEq + std::fmt::Debug,
{
    let goldens = goldens(prefix);
    let tags = tags(goldens.iter().map(|(_, t)| t.as_str()));
    let mut checked = 0;
    for (name, text) in &goldens {
        let value: Value = serde_json::from_str(text).unwrap();
        let by_tree = M::from_tree(&value).unwrap_or_else(|e| panic!("{name}: {e}"));
        let by_serde: M = serde_json::from_str(text).unwrap();
        assert_eq!(by_tree, by_serde, "{name}");
        assert_eq!(
            by_tree.to_json(),
            serde_json::to_string(&by_serde).unwrap(),
            "{name}"
        );
        assert_eq!(by_tree.to_json(), text.trim(), "{name} (golden)");
        for m in mutations(&value, &tags) {
            let mtext = serde_json::to_string(&m).unwrap();
            let serde: Result<M, _> = serde_json::from_str(&mtext);
            let tree = M::from_tree(&m);
            match (&serde, &tree) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{name}: {mtext}");
                    assert_eq!(
                        b.to_json(),
                        serde_json::to_string(a).unwrap(),
                        "{name}: {mtext}"
                    );
                }
                (Err(_), Err(_)) => {}
                (Ok(_), Err(_)) if numeric_tag(&m) => {}
                _ => panic!(
                    "{name}: serde says {:?}, the tree decoder says {:?} for {mtext}",
                    serde.map(|_| ()).map_err(|e| e.to_string()),
                    tree.map(|_| ()).map_err(|e| e.to_string())
                ),
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn the_tree_decoder_and_json_writer_agree_with_serde_on_server_frames() {
    let checked = agree::<ServerMessage>("server_");
    assert!(checked > 3000, "only {checked} mutations");
}

#[test]
fn the_tree_decoder_and_json_writer_agree_with_serde_on_client_frames() {
    let checked = agree::<ClientMessage>("client_");
    assert!(checked > 1000, "only {checked} mutations");
}

#[test]
fn tree_errors_say_where_and_what() {
    let v: Value = serde_json::from_str(
        r#"{"type":"mediaEvent","data":{"type":"peerJoined","peer":{"id":"p","metadata":{},"trackIdToMetadata":{}}}}"#,
    )
    .unwrap();
    let e = ServerMessage::from_tree(&v).unwrap_err();
    assert_eq!(
        e.to_string(),
        "data.peer.metadata: missing field `displayName`"
    );
    let v: Value = serde_json::from_str(r#"{"type":"nope"}"#).unwrap();
    assert_eq!(
        ServerMessage::from_tree(&v).unwrap_err().to_string(),
        "unknown variant `nope`"
    );
}
