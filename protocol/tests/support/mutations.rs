// Mutations of golden frames for the codec agreement tests. `include!`d by
// `protocol/tests/codecs.rs` (host) and `client/tests/wire.rs` (both browsers), so the client's
// own JSON.parse path meets exactly the same inputs. Needs `serde_json::Value` in scope.

/// Every value in the tree with every replacement, every object without each key and with an
/// unknown one, every tag swapped for every other tag.
fn mutations(root: &Value, tags: &[String]) -> Vec<Value> {
    fn walk(v: &Value, path: &mut Vec<Result<String, usize>>, paths: &mut Vec<Vec<Result<String, usize>>>) {
        paths.push(path.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(Ok(k.clone()));
                    walk(child, path, paths);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    path.push(Err(i));
                    walk(child, path, paths);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    fn at<'a>(root: &'a mut Value, path: &[Result<String, usize>]) -> &'a mut Value {
        path.iter().fold(root, |v, step| match step {
            Ok(k) => &mut v[k.as_str()],
            Err(i) => &mut v[*i],
        })
    }
    let replacements = [
        Value::Null,
        serde_json::json!(0),
        serde_json::json!(1.5),
        serde_json::json!(-1),
        serde_json::json!(256),
        serde_json::json!(70000),
        serde_json::json!(5_000_000_000u64),
        serde_json::json!(""),
        serde_json::json!("x"),
        serde_json::json!("camera"),
        serde_json::json!(true),
        serde_json::json!([]),
        serde_json::json!([1]),
        serde_json::json!({}),
    ];
    let mut paths = Vec::new();
    walk(root, &mut Vec::new(), &mut paths);
    let mut out = Vec::new();
    for path in &paths {
        for r in &replacements {
            let mut m = root.clone();
            *at(&mut m, path) = r.clone();
            out.push(m);
        }
        let Some(keys) = at(&mut root.clone(), path)
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
        else {
            continue;
        };
        let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut m = root.clone();
            f(at(&mut m, path).as_object_mut().expect("object"));
            m
        };
        for k in &keys {
            out.push(edit(&|o| {
                o.remove(k);
            }));
        }
        out.push(edit(&|o| {
            o.insert("unknownField".into(), Value::Bool(true));
        }));
        if keys.iter().any(|k| k == "type") {
            for tag in tags {
                out.push(edit(&|o| {
                    o.insert("type".into(), Value::String(tag.clone()));
                }));
            }
        }
    }
    out
}

/// Every tag (`"type"` value) in the frames.
fn tags<'a>(frames: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(t)) = m.get("type") {
                    out.push(t.clone());
                }
                m.values().for_each(|c| collect(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| collect(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for text in frames {
        collect(&serde_json::from_str(text).expect("golden JSON"), &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Whether some object's tag is a number (serde takes a variant's index; nothing sends one).
fn numeric_tag(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.get("type").is_some_and(Value::is_u64) || m.values().any(numeric_tag),
        Value::Array(a) => a.iter().any(numeric_tag),
        _ => false,
    }
}

