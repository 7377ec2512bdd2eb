// The `cargo test` side of the fuzz targets: replays saved inputs through a target's body.
// `include!`d by `protocol/tests/fuzz_regressions.rs` and `server/tests/fuzz_regressions.rs`.
// (Plain comments: an included file cannot open with inner doc comments.)

/// A fuzz target's name and body.
type Target = (&'static str, fn(&[u8]));

/// Runs every file in `dirs` (relative to the repository root; a missing folder counts as
/// empty) through each of `targets`, and fails naming every input that panicked — on any
/// thread, as under libFuzzer, whose panic hook aborts on a panic in a background task too.
///
/// Call it once per test binary: it swaps the process-wide panic hook while it runs.
fn replay(dirs: &[&str], targets: &[Target]) {
    use std::sync::Mutex;

    static CURRENT: Mutex<String> = Mutex::new(String::new());
    static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut inputs = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("listing {dir}: {e}"))
                .path();
            if path.is_file() {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {dirs:?}: wrong path?");

    std::panic::set_hook(Box::new(|info| {
        let current = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
        if let Ok(mut failures) = FAILURES.lock() {
            failures.push(format!("{current}: {info}"));
        }
    }));
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
        for (name, target) in targets {
            if let Ok(mut current) = CURRENT.lock() {
                let shown = path.strip_prefix(&root).unwrap_or(path);
                *current = format!("{name} on {}", shown.display());
            }
            // The hook has recorded any panic; go on to report every failing input at once.
            let _ = std::panic::catch_unwind(|| target(&data));
        }
    }
    drop(std::panic::take_hook());

    let failures = FAILURES.lock().map(|f| f.clone()).unwrap_or_default();
    assert!(
        failures.is_empty(),
        "{} of {} inputs broke a fuzz target's property:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    eprintln!(
        "replayed {} inputs through {:?}",
        inputs.len(),
        targets.iter().map(|t| t.0).collect::<Vec<_>>()
    );
}
