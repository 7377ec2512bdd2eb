//! `cargo xtask fuzz [--seconds N] [--sanitizer none|address] [TARGET...]`: a bounded
//! cargo-fuzz run of every target in `fuzz/`. Any input that breaks a target is copied into
//! `fuzz/regressions/<target>/`, where `cargo test` replays it from then on, and the command
//! fails naming it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::describe;
use crate::tools::Tools;

/// Seconds per target unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// A single input taking longer than this is reported as a hang (libFuzzer's `-timeout`).
const INPUT_TIMEOUT_SECS: u64 = 30;

/// No sanitizer by default, although `address` (cargo-fuzz's default) works on stable too:
/// measured on `protocol_decode`, AddressSanitizer cuts 100,000 executions/s to 14,000 and
/// takes 500 MB instead of 30, and the code under test is safe Rust, where an out-of-bounds
/// access already panics and a stack overflow already crashes. `--sanitizer address` is there
/// for a longer, deeper run (the `unsafe` inside dependencies).
const DEFAULT_SANITIZER: &str = "none";

/// Longest input libFuzzer makes. Left alone it takes the largest seed (a 70 KB oversized
/// frame), which cut the protocol target's speed by more than half in a measured run; 16 KiB
/// still spans every field bound but the frame's, and hand-made regressions pin that one.
const MAX_LEN: usize = 16 * 1024;

/// Each target and the folders that seed its corpus (missing ones are skipped). The saved
/// crash inputs are among them, so a regression shows up while the corpus loads.
const TARGETS: &[(&str, &[&str])] = &[
    (
        "protocol_decode",
        &["fuzz/regressions/protocol_decode", "protocol/tests/golden"],
    ),
    (
        "sdp_answer",
        &[
            "fuzz/regressions/sdp_answer",
            "fuzz/regressions/sdp_answer_apply",
            "fuzz/seeds/sdp",
        ],
    ),
    (
        // Slow (a real peer connection per input), so it finds less per second; it is the only
        // one reaching the `webrtc` crate's answer handling beyond the parser.
        "sdp_answer_apply",
        &[
            "fuzz/regressions/sdp_answer_apply",
            "fuzz/regressions/sdp_answer",
            "fuzz/seeds/sdp",
        ],
    ),
];

/// What libFuzzer leaves for an input that broke the target (`slow-unit-*` is only a note).
const FAILURE_PREFIXES: &[&str] = &["crash-", "leak-", "timeout-", "oom-"];

/// Parses the arguments, installs cargo-fuzz when missing, and runs the targets.
pub fn fuzz(root: &Path, args: Vec<String>) -> Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut sanitizer = DEFAULT_SANITIZER.to_owned();
    let mut chosen = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let n = args.next().context("--seconds needs a number")?;
                seconds = n
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .with_context(|| format!("--seconds: {n:?} is not a positive number"))?;
            }
            "--sanitizer" => {
                sanitizer = args.next().context("--sanitizer needs a name")?;
            }
            name if TARGETS.iter().any(|t| t.0 == name) => chosen.push(name.to_owned()),
            other => bail!(
                "fuzz: unknown argument {other:?} (usage: cargo xtask fuzz [--seconds N] \
                 [--sanitizer none|address] [TARGET...]; targets: {})",
                TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    let targets: Vec<_> = TARGETS
        .iter()
        .filter(|t| chosen.is_empty() || chosen.iter().any(|c| c == t.0))
        .collect();

    let tools = Tools::ensure_fuzz(root)?;
    // The fuzz crate is its own workspace; starting from the main lock file makes it build the
    // very dependency versions the server ships with (cargo then adds only libFuzzer's crates).
    fs::copy(root.join("Cargo.lock"), root.join("fuzz/Cargo.lock"))
        .context("copying Cargo.lock into fuzz/")?;
    // One build for every target before any clock starts.
    crate::sh(&mut cargo_fuzz(
        &tools,
        &["build", "--sanitizer", &sanitizer],
    ))?;

    let mut broken = Vec::new();
    for (target, seeds) in targets {
        let found = run_target(root, &tools, target, seeds, seconds, &sanitizer)?;
        broken.extend(found.into_iter().map(|input| (*target, input)));
    }
    if broken.is_empty() {
        eprintln!("\nNo target broke in {seconds} s each.");
        return Ok(());
    }
    let list: Vec<String> = broken
        .iter()
        .map(|(target, input)| {
            format!(
                "  {target}: {}\n    reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer {sanitizer} \
                 {target} {}",
                input.display(),
                input.display()
            )
        })
        .collect();
    bail!(
        "fuzzing found {} input(s) that break a target, now kept as regression tests:\n{}\n\
         Fix the bug; `cargo test -p protocol -p server --test fuzz_regressions` replays them.",
        broken.len(),
        list.join("\n")
    )
}

/// `cargo fuzz <args>` on the stable toolchain.
fn cargo_fuzz(tools: &Tools, args: &[&str]) -> std::process::Command {
    let mut cmd = tools.command("cargo");
    cmd.arg("fuzz").args(args);
    // cargo-fuzz passes nightly-only flags (`-Zsanitizer=…`, and the `-Z` options it gives
    // cargo); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Nothing else is needed:
    // stable even ships the AddressSanitizer runtime.
    cmd.env("RUSTC_BOOTSTRAP", "1");
    cmd
}

/// Runs one target for `seconds`; returns the inputs it saved into `fuzz/regressions/`.
fn run_target(
    root: &Path,
    tools: &Tools,
    target: &str,
    seeds: &[&str],
    seconds: u64,
    sanitizer: &str,
) -> Result<Vec<PathBuf>> {
    let corpus = root.join("fuzz/corpus").join(target);
    // cargo-fuzz points libFuzzer's `-artifact_prefix` here.
    let artifacts = root.join("fuzz/artifacts").join(target);
    fs::create_dir_all(&corpus)?;
    // Artifacts are scratch: what matters is copied out below, so a fresh folder means every
    // file in it after the run is this run's finding.
    let _ = fs::remove_dir_all(&artifacts);
    fs::create_dir_all(&artifacts)?;
    let log_path = root.join("fuzz/artifacts").join(format!("{target}.log"));
    let log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

    let mut args = vec![
        "run".to_owned(),
        // The same flags as the build above, or cargo-fuzz would rebuild with its defaults.
        "--sanitizer".to_owned(),
        sanitizer.to_owned(),
        target.to_owned(),
        corpus.display().to_string(),
    ];
    args.extend(
        seeds
            .iter()
            .map(|s| root.join(s))
            .filter(|p| p.is_dir())
            .map(|p| p.display().to_string()),
    );
    args.push("--".into());
    args.push(format!("-max_total_time={seconds}"));
    args.push(format!("-timeout={INPUT_TIMEOUT_SECS}"));
    args.push(format!("-max_len={MAX_LEN}"));
    args.push("-print_final_stats=1".into());
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = cargo_fuzz(tools, &arg_refs);
    cmd.stdout(Stdio::null()).stderr(log);

    eprintln!(
        "\n=== fuzz {target} for {seconds} s (log: {})",
        log_path.display()
    );
    eprintln!("$ {}", describe(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(&cmd)))?;
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    print_summary(target, &text, &corpus);

    let mut saved = Vec::new();
    let kept = root.join("fuzz/regressions").join(target);
    for entry in fs::read_dir(&artifacts)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !FAILURE_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        fs::create_dir_all(&kept)?;
        let dest = kept.join(name);
        fs::copy(&path, &dest)
            .with_context(|| format!("copying {} to {}", path.display(), dest.display()))?;
        saved.push(dest.strip_prefix(root).unwrap_or(&dest).to_path_buf());
    }
    if !saved.is_empty() {
        eprintln!("--- {target} broke:\n{}", excerpt(&text));
    } else if !status.success() {
        bail!(
            "fuzzing {target} failed ({status}) without saving an input; from {}:\n{}",
            log_path.display(),
            excerpt(&text)
        );
    }
    Ok(saved)
}

/// libFuzzer's closing figures (`-print_final_stats`) and the corpus size.
fn print_summary(target: &str, log: &str, corpus: &Path) {
    let stat = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_start_matches(':').trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    let files = fs::read_dir(corpus).map(|d| d.count()).unwrap_or(0);
    eprintln!(
        "=== {target}: {} executions, {} exec/s, {} new corpus units (corpus now {files} files), \
         peak RSS {} MB",
        stat("stat::number_of_executed_units"),
        stat("stat::average_exec_per_sec"),
        stat("stat::new_units_added"),
        stat("stat::peak_rss_mb"),
    );
}

/// The part of a log that says what went wrong: from the panic or sanitizer report on, else
/// the last lines.
fn excerpt(log: &str) -> String {
    const MARKERS: &[&str] = &["panicked at", "ERROR: AddressSanitizer", "ERROR: libFuzzer"];
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|l| MARKERS.iter().any(|m| l.contains(m)))
        .unwrap_or(lines.len().saturating_sub(40));
    lines[start..lines.len().min(start + 40)].join("\n")
}
