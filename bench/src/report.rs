//! Turning points into the report: medians over repeats, ours/Janus ratios, capacity, a
//! Markdown table, a JSON file, and an SVG plot of CPU per packet and p99 delay against N.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::scenarios::{PointResult, Scenario};
use crate::stats::{median, slope};
use crate::weight::ClientWeight;

/// CPU per forwarded packet of one SRTP encrypt + one UDP send on this class of machine
/// (NOTES-bench.md: ~0.6–0.9 µs encrypt + ~3.4 µs loopback send).
pub const FLOOR_US: f64 = 4.0;
/// Capacity rule: loss below this (%)...
pub const CAPACITY_LOSS_PCT: f64 = 1.0;
/// ...and p99 added delay below this (ms).
pub const CAPACITY_P99_MS: f64 = 50.0;

type Getter = fn(&PointResult) -> Option<f64>;

/// A reported figure: JSON key, table header, how to read it, decimals.
struct Figure {
    key: &'static str,
    header: &'static str,
    get: Getter,
    decimals: usize,
}

const FIGURES: &[Figure] = &[
    Figure {
        key: "server_us_per_pkt",
        header: "srv µs/pkt",
        get: |r| r.server_us_per_pkt,
        decimals: 1,
    },
    Figure {
        key: "floor_multiple",
        header: "× floor",
        get: |r| r.server_us_per_pkt.map(|u| u / FLOOR_US),
        decimals: 1,
    },
    Figure {
        key: "pps",
        header: "fwd pkt/s",
        get: |r| Some(r.pps),
        decimals: 0,
    },
    Figure {
        key: "offered_pps",
        header: "sent pkt/s",
        get: |r| Some(r.offered_pps),
        decimals: 0,
    },
    Figure {
        key: "mbps",
        header: "Mbit/s",
        get: |r| Some(r.mbps),
        decimals: 1,
    },
    Figure {
        key: "loss_pct",
        header: "loss %",
        get: |r| Some(r.loss_pct),
        decimals: 2,
    },
    Figure {
        key: "latency_p50_ms",
        header: "delay p50 ms",
        get: |r| r.latency_p50_ms,
        decimals: 2,
    },
    Figure {
        key: "latency_p99_ms",
        header: "delay p99 ms",
        get: |r| r.latency_p99_ms,
        decimals: 2,
    },
    Figure {
        key: "connect_p50_ms",
        header: "ICE+DTLS p50 ms",
        get: |r| r.connect_p50_ms,
        decimals: 0,
    },
    Figure {
        key: "join_p50_ms",
        header: "join p50 ms",
        get: |r| r.join_p50_ms,
        decimals: 0,
    },
    Figure {
        key: "join_p99_ms",
        header: "join p99 ms",
        get: |r| r.join_p99_ms,
        decimals: 0,
    },
    Figure {
        key: "keyframe_p50_ms",
        header: "1st key p50 ms",
        get: |r| r.keyframe_p50_ms,
        decimals: 0,
    },
    Figure {
        key: "keyframe_p99_ms",
        header: "1st key p99 ms",
        get: |r| r.keyframe_p99_ms,
        decimals: 0,
    },
    Figure {
        key: "rss_mb",
        header: "RSS MB",
        get: |r| Some(r.rss_mb),
        decimals: 1,
    },
    Figure {
        key: "rss_per_peer_kb",
        header: "RSS/peer KB",
        get: |r| r.rss_per_peer_kb,
        decimals: 0,
    },
    Figure {
        key: "server_cpu_pct",
        header: "srv CPU %",
        get: |r| Some(r.server_cpu_pct),
        decimals: 0,
    },
    Figure {
        key: "gen_cpu_pct",
        header: "gen CPU %",
        get: |r| Some(r.gen_cpu_pct),
        decimals: 0,
    },
    Figure {
        key: "gen_us_per_pkt",
        header: "gen µs/pkt",
        get: |r| r.gen_us_per_pkt,
        decimals: 1,
    },
    Figure {
        key: "join_failures",
        header: "failed joins",
        get: |r| Some(f64::from(r.join_failures)),
        decimals: 0,
    },
    Figure {
        key: "loadavg",
        header: "load avg",
        get: |r| Some(r.loadavg),
        decimals: 1,
    },
];

/// Medians of one (scenario, N, server) over its repeats.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario letter.
    pub scenario: String,
    /// N.
    pub n: u32,
    /// Server.
    pub server: String,
    /// Repeats that produced figures.
    pub repeats: usize,
    /// Figure key → median.
    pub figures: BTreeMap<String, Option<f64>>,
}

impl Summary {
    fn get(&self, key: &str) -> Option<f64> {
        self.figures.get(key).copied().flatten()
    }

    /// Whether the point meets the capacity rule.
    pub fn within_capacity(&self) -> bool {
        let loss_ok = self.get("loss_pct").is_some_and(|l| l < CAPACITY_LOSS_PCT);
        let p99_ok = self
            .get("latency_p99_ms")
            .is_some_and(|l| l < CAPACITY_P99_MS);
        let joins_ok = self.get("join_failures").is_some_and(|f| f == 0.0);
        loss_ok && p99_ok && joins_ok
    }
}

/// Groups points by (scenario, N, server) and takes medians.
pub fn summarise(points: &[PointResult]) -> Vec<Summary> {
    let mut groups: BTreeMap<(String, u32, String), Vec<&PointResult>> = BTreeMap::new();
    for p in points {
        groups
            .entry((p.scenario.clone(), p.n, p.server.clone()))
            .or_default()
            .push(p);
    }
    groups
        .into_iter()
        .map(|((scenario, n, server), ps)| Summary {
            scenario,
            n,
            server,
            repeats: ps.len(),
            figures: FIGURES
                .iter()
                .map(|f| {
                    let v: Vec<f64> = ps.iter().filter_map(|p| (f.get)(p)).collect();
                    (f.key.to_owned(), median(&v))
                })
                .collect(),
        })
        .collect()
}

/// The largest N of `scenario` that `server` handled within the rule, counting only N whose
/// smaller points all passed too (a pass above a failure is luck, not capacity).
pub fn capacity(summaries: &[Summary], scenario: &str, server: &str) -> Option<u32> {
    let mut ns: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.scenario == scenario && s.server == server)
        .collect();
    ns.sort_by_key(|s| s.n);
    let mut best = None;
    for s in ns {
        if !s.within_capacity() {
            break;
        }
        best = Some(s.n);
    }
    best
}

/// Server memory growth per participant (KB), least squares of RSS over N across the
/// scenario's points: steadier than one point's (RSS − base) ÷ N.
pub fn rss_slope_kb(summaries: &[Summary], scenario: &str, server: &str) -> Option<f64> {
    let pts: Vec<(f64, f64)> = summaries
        .iter()
        .filter(|s| s.scenario == scenario && s.server == server)
        .filter_map(|s| s.get("rss_mb").map(|r| (f64::from(s.n), r * 1000.0)))
        .collect();
    slope(&pts)
}

/// ours ÷ janus, when both are there and the divisor is not zero.
pub fn ratio(ours: Option<f64>, janus: Option<f64>) -> Option<f64> {
    match (ours, janus) {
        (Some(o), Some(j)) if j != 0.0 => Some(o / j),
        _ => None,
    }
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".into(),
    }
}

/// Run facts printed above the tables.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Meta {
    /// quick or full.
    pub mode: String,
    /// UTC start time.
    pub started: String,
    /// Minutes the run took.
    pub minutes: f64,
    /// Load average at the start.
    pub loadavg_start: f64,
    /// Janus's version string.
    pub janus_version: String,
    /// Cores given to the server and the generator.
    pub cpus: String,
    /// How the generator's ICE candidates reach the servers.
    #[serde(default)]
    pub ice: String,
    /// How publishers send a frame's packets.
    #[serde(default)]
    pub pacing: String,
    /// The socket buffers the servers get.
    #[serde(default)]
    pub buffers: String,
}

/// The Markdown report.
pub fn markdown(
    meta: &Meta,
    summaries: &[Summary],
    points: &[PointResult],
    weight: &ClientWeight,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Videoroom vs Janus — benchmark ({} mode)\n",
        meta.mode
    );
    let _ = writeln!(
        md,
        "Started {} UTC, {:.1} min; load average at start {:.2} (shared machine); {}; Janus {}; {}; {}; {}.",
        meta.started, meta.minutes, meta.loadavg_start, meta.cpus, meta.janus_version, meta.ice, meta.pacing, meta.buffers
    );
    let _ = writeln!(
        md,
        "Medians over repeats. Packets = RTP delivered to the generator's subscribers in the \
         window (= forwarded). µs/pkt = server utime+stime ÷ packets; × floor = ÷ {FLOOR_US} µs \
         (one SRTP encrypt + one UDP send). Delay = receive − send time in one process (includes \
         the generator's own queuing). ICE+DTLS = signaling start → connected; join = signaling start → first RTP; 1st key = signaling \
         start → first keyframe; publishers ignore a keyframe request within 300 ms of the \
         last they honoured and a subscriber without one re-asks every 200 ms, as libwebrtc does. Ratio rows are ours ÷ Janus (below 1 = ours lower).\n"
    );
    let scenarios: Vec<String> = {
        let mut v: Vec<String> = summaries.iter().map(|s| s.scenario.clone()).collect();
        v.dedup();
        v
    };
    for sc in &scenarios {
        if sc == "D" {
            simulcast_section(&mut md, points);
            continue;
        }
        let title = match sc.as_str() {
            "A" => Scenario::A.title(),
            "B" => Scenario::B.title(),
            _ => Scenario::C.title(),
        };
        let _ = writeln!(md, "## {title}\n");
        let _ = write!(md, "| N | server |");
        for f in FIGURES {
            let _ = write!(md, " {} |", f.header);
        }
        let _ = write!(md, "\n|---|---|");
        for _ in FIGURES {
            let _ = write!(md, "---|");
        }
        md.push('\n');
        let mut ns: Vec<u32> = summaries
            .iter()
            .filter(|s| &s.scenario == sc)
            .map(|s| s.n)
            .collect();
        ns.dedup();
        for n in ns {
            let find = |server: &str| {
                summaries
                    .iter()
                    .find(|s| &s.scenario == sc && s.n == n && s.server == server)
            };
            let (ours, janus) = (find("ours"), find("janus"));
            for s in [ours, janus].into_iter().flatten() {
                let _ = write!(md, "| {n} | {} |", s.server);
                for f in FIGURES {
                    let _ = write!(md, " {} |", fmt(s.get(f.key), f.decimals));
                }
                md.push('\n');
            }
            if let (Some(o), Some(j)) = (ours, janus) {
                let _ = write!(md, "| {n} | ours/janus |");
                for f in FIGURES {
                    let _ = write!(md, " {} |", fmt(ratio(o.get(f.key), j.get(f.key)), 2));
                }
                md.push('\n');
            }
        }
        if sc != "C" {
            let cap = |server| {
                capacity(summaries, sc, server)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "none measured".into())
            };
            let _ = writeln!(
                md,
                "\nRSS slope per peer (least squares over N): ours {} KB, Janus {} KB.",
                fmt(rss_slope_kb(summaries, sc, "ours"), 0),
                fmt(rss_slope_kb(summaries, sc, "janus"), 0)
            );
            let _ = writeln!(
                md,
                "\nCapacity (largest N with loss < {CAPACITY_LOSS_PCT}%, p99 < {CAPACITY_P99_MS} ms, \
                 no failed join, every smaller N too): ours {}, Janus {}.",
                cap("ours"),
                cap("janus")
            );
        } else {
            let _ = writeln!(
                md,
                "\nChurn: delay and loss are the steady subscribers'; join and keyframe times the \
                 churning ones'; RSS/peer is the server's growth per churned peer (a leak shows here)."
            );
        }
        md.push('\n');
    }
    md.push_str(&weight.markdown());
    md
}

/// Scenario D: one row per point and group of viewers (each repeat listed; ours only).
fn simulcast_section(md: &mut String, points: &[PointResult]) {
    let _ = writeln!(md, "## {}\n", Scenario::D.title());
    let _ = writeln!(
        md,
        "Each viewer's downlink is its own in-process link; the capped third get a 200 ms queue \
         at 1 Mbit/s once everyone receives the top layers. Loss = distinct packets received ÷ \
         packets sent of each layer while it was received (a switch is no loss); queue drops = \
         datagrams the capped link dropped in the window (and while adapting: from the cap to the \
         window); layers = share of the video packets received as q \
         (320×180) / h (640×360) / f (1280×720); settle = cap → last top-layer packet. Ours \
         only: Janus's videoroom forwards the substream a subscriber configures and fits \
         nothing to a measured downlink.\n"
    );
    let _ = writeln!(
        md,
        "| N | repeat | group | viewers | loss % | queue drops % | drops adapting % | layers q/h/f % | settle p50 s | settle max s | srv CPU % |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    for p in points.iter().filter(|p| p.scenario == "D") {
        for g in &p.groups {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {:.0}/{:.0}/{:.0} | {} | {} | {:.0} |",
                p.n,
                p.repeat,
                g.group,
                g.viewers,
                fmt(Some(g.loss_pct), 2),
                fmt(g.queue_drop_pct, 2),
                fmt(g.adapt_drop_pct, 1),
                g.layer_pct[0],
                g.layer_pct[1],
                g.layer_pct[2],
                fmt(g.settle_p50_s, 1),
                fmt(g.settle_max_s, 1),
                p.server_cpu_pct,
            );
        }
        if let Some(e) = &p.first_error {
            let _ = writeln!(md, "\nN={} repeat {}: {e}", p.n, p.repeat);
        }
    }
    md.push('\n');
}

/// The JSON report.
pub fn json(
    meta: &Meta,
    points: &[PointResult],
    summaries: &[Summary],
    weight: &ClientWeight,
) -> serde_json::Value {
    let mut caps = BTreeMap::new();
    let mut slopes = BTreeMap::new();
    for sc in ["A", "B"] {
        for server in ["ours", "janus"] {
            caps.insert(format!("{sc}/{server}"), capacity(summaries, sc, server));
            slopes.insert(
                format!("{sc}/{server}"),
                rss_slope_kb(summaries, sc, server),
            );
        }
    }
    let mut ratios = Vec::new();
    for o in summaries.iter().filter(|s| s.server == "ours") {
        if let Some(j) = summaries
            .iter()
            .find(|j| j.server == "janus" && j.scenario == o.scenario && j.n == o.n)
        {
            let r: BTreeMap<&str, Option<f64>> = FIGURES
                .iter()
                .map(|f| (f.key, ratio(o.get(f.key), j.get(f.key))))
                .collect();
            ratios
                .push(serde_json::json!({"scenario": o.scenario, "n": o.n, "ours_over_janus": r}));
        }
    }
    serde_json::json!({
        "meta": meta,
        "floor_us": FLOOR_US,
        "points": points,
        "summary": summaries,
        "ratios": ratios,
        "capacity": caps,
        "rss_slope_kb_per_peer": slopes,
        "client_weight": weight,
    })
}

/// An SVG with four small charts: µs/packet and p99 delay against N, for scenarios A and B,
/// one line per server.
pub fn svg(summaries: &[Summary]) -> String {
    const W: f64 = 420.0;
    const H: f64 = 260.0;
    const M: f64 = 50.0;
    let panels = [
        (
            "A",
            "server_us_per_pkt",
            "A fan-out: server CPU µs / forwarded packet",
        ),
        (
            "A",
            "latency_p99_ms",
            "A fan-out: p99 added delay (ms, log)",
        ),
        (
            "B",
            "server_us_per_pkt",
            "B mesh: server CPU µs / forwarded packet",
        ),
        ("B", "latency_p99_ms", "B mesh: p99 added delay (ms, log)"),
    ];
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        2.0 * W,
        2.0 * H
    );
    out.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, (sc, key, title)) in panels.iter().enumerate() {
        let (ox, oy) = ((i % 2) as f64 * W, (i / 2) as f64 * H);
        let pts = |server: &str| -> Vec<(f64, f64)> {
            let mut v: Vec<(f64, f64)> = summaries
                .iter()
                .filter(|s| s.scenario == *sc && s.server == server)
                .filter_map(|s| s.get(key).map(|y| (f64::from(s.n), y)))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        let series = [
            ("ours", "#1f77b4", pts("ours")),
            ("janus", "#d62728", pts("janus")),
        ];
        let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.clone()).collect();
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
            ox + M,
            oy + 18.0,
            title
        );
        if all.is_empty() {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}">no data</text>"#,
                ox + M,
                oy + H / 2.0
            );
            continue;
        }
        let xmax = all.iter().map(|p| p.0).fold(1.0, f64::max);
        // Delay spans 0.3 ms to seconds once a server saturates: a log axis keeps both visible.
        let log = key.contains("latency");
        let ty = |y: f64| if log { y.max(0.1).log10() } else { y };
        let (ymin, ymax) = if log {
            let hi = all
                .iter()
                .map(|p| ty(p.1))
                .fold(0.0, f64::max)
                .ceil()
                .max(1.0);
            (-1.0, hi)
        } else {
            (
                0.0,
                all.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1,
            )
        };
        let (pw, ph) = (W - 1.5 * M, H - 1.7 * M);
        let sx = |x: f64| ox + M + x / xmax * pw;
        let sy = |y: f64| oy + 30.0 + ph - (ty(y) - ymin) / (ymax - ymin) * ph;
        let y_at = |k: f64| {
            if log {
                10f64.powf(ymin + (ymax - ymin) * k)
            } else {
                ymax * k
            }
        };
        let _ = write!(
            out,
            r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="black"/><line x1="{0}" y1="{1}" x2="{0}" y2="{3}" stroke="black"/>"#,
            sx(0.0),
            sy(y_at(0.0)),
            sx(xmax),
            sy(y_at(1.0))
        );
        // Decades on a log axis, quarters on a linear one.
        let steps = if log { (ymax - ymin) as i32 } else { 4 };
        for k in 0..=steps {
            let y = y_at(f64::from(k) / f64::from(steps));
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                sx(0.0) - 4.0,
                sy(y) + 4.0,
                if y < 10.0 {
                    format!("{y:.1}")
                } else {
                    format!("{y:.0}")
                }
            );
        }
        let mut xs: Vec<f64> = all.iter().map(|p| p.0).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for x in xs {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
                sx(x),
                sy(y_at(0.0)) + 14.0,
                x
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">N</text>"#,
            sx(xmax / 2.0),
            sy(y_at(0.0)) + 28.0
        );
        for (j, (name, colour, p)) in series.iter().enumerate() {
            if p.is_empty() {
                continue;
            }
            let path: Vec<String> = p
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for (x, y) in p {
                let _ = write!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    sx(*x),
                    sy(*y)
                );
            }
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" fill="{colour}">{name}</text>"#,
                ox + W - 80.0,
                oy + 40.0 + 14.0 * j as f64
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(server: &str, n: u32, loss: f64, p99: f64, us: f64) -> PointResult {
        PointResult {
            server: server.into(),
            scenario: "A".into(),
            n,
            loss_pct: loss,
            latency_p99_ms: Some(p99),
            server_us_per_pkt: Some(us),
            ..Default::default()
        }
    }

    #[test]
    fn capacity_is_the_largest_passing_n_below_any_failure() {
        let pts = vec![
            point("ours", 1, 0.0, 2.0, 10.0),
            point("ours", 10, 0.5, 20.0, 10.0),
            point("ours", 50, 3.0, 20.0, 10.0),
            // A pass above a failure does not count.
            point("ours", 100, 0.0, 20.0, 10.0),
            point("janus", 1, 0.0, 60.0, 10.0),
        ];
        let s = summarise(&pts);
        assert_eq!(capacity(&s, "A", "ours"), Some(10));
        assert_eq!(capacity(&s, "A", "janus"), None);
        assert_eq!(capacity(&s, "B", "ours"), None);
    }

    #[test]
    fn medians_over_repeats_and_ratios() {
        let pts = vec![
            point("ours", 10, 0.0, 2.0, 10.0),
            point("ours", 10, 0.0, 2.0, 30.0),
            point("ours", 10, 0.0, 2.0, 20.0),
            point("janus", 10, 0.0, 2.0, 40.0),
        ];
        let s = summarise(&pts);
        let ours = s.iter().find(|s| s.server == "ours").unwrap();
        assert_eq!(ours.repeats, 3);
        assert_eq!(ours.get("server_us_per_pkt"), Some(20.0));
        assert_eq!(ours.get("floor_multiple"), Some(5.0));
        assert_eq!(ratio(Some(20.0), Some(40.0)), Some(0.5));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }

    #[test]
    fn markdown_has_rows_ratios_and_capacity() {
        let pts = vec![
            point("ours", 10, 0.0, 2.0, 10.0),
            point("janus", 10, 0.0, 2.0, 40.0),
        ];
        let s = summarise(&pts);
        let meta = Meta {
            mode: "quick".into(),
            started: "now".into(),
            minutes: 1.0,
            loadavg_start: 0.5,
            janus_version: "1.1.2".into(),
            cpus: "server cpu 0, generator cpu 1".into(),
            ice: "candidates in the SDP".into(),
            pacing: "video paced as browsers do".into(),
            buffers: "socket buffers: defaults".into(),
        };
        let md = markdown(&meta, &s, &pts, &ClientWeight::default());
        assert!(md.contains("| 10 | ours | 10.0 | 2.5 |"), "{md}");
        assert!(md.contains("| 10 | ours/janus | 0.25 |"), "{md}");
        assert!(md.contains("Capacity"), "{md}");
        assert!(md.contains("ours 10, Janus 10"), "{md}");
        let svg = svg(&s);
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
        let j = json(&meta, &pts, &s, &ClientWeight::default());
        assert_eq!(j["capacity"]["A/ours"], 10);
    }

    #[test]
    fn the_simulcast_scenario_lists_each_group() {
        let d = PointResult {
            server: "ours".into(),
            scenario: "D".into(),
            n: 6,
            server_cpu_pct: 40.0,
            groups: vec![
                crate::scenarios::GroupFigures {
                    group: "capped".into(),
                    viewers: 2,
                    loss_pct: 0.25,
                    queue_drop_pct: Some(0.5),
                    adapt_drop_pct: Some(12.0),
                    layer_pct: [80.0, 20.0, 0.0],
                    settle_p50_s: Some(2.0),
                    settle_max_s: Some(2.5),
                },
                crate::scenarios::GroupFigures {
                    group: "uncapped".into(),
                    viewers: 4,
                    layer_pct: [0.0, 0.0, 100.0],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let pts = vec![d];
        let meta = Meta {
            mode: "quick".into(),
            started: "now".into(),
            minutes: 1.0,
            loadavg_start: 0.5,
            janus_version: "not run".into(),
            cpus: "server cpu 0, generator cpu 1".into(),
            ice: "candidates in the SDP".into(),
            pacing: "video paced as browsers do".into(),
            buffers: "socket buffers: defaults".into(),
        };
        let md = markdown(&meta, &summarise(&pts), &pts, &ClientWeight::default());
        assert!(
            md.contains("| 6 | 0 | capped | 2 | 0.25 | 0.50 | 12.0 | 80/20/0 | 2.0 | 2.5 | 40 |"),
            "{md}"
        );
        assert!(
            md.contains("| 6 | 0 | uncapped | 4 | 0.00 | – | – | 0/0/100 | – | – | 40 |"),
            "{md}"
        );
    }
}
