//! The client's weight: the release wasm + JS that a browser downloads (dist/ after
//! `cargo xtask build-client`), raw and `gzip -9`, next to the JS clients a user would
//! otherwise ship.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Our budget (wave 2: 130 KB; issue 7 set 100 KB for wave 1): wasm + JS, gzip.
pub const BUDGET_GZIP_BYTES: u64 = 130 * 1000;

/// Quoted reference figures (minified + gzip -9), not measured here.
pub const REFERENCES: &[(&str, f64)] = &[
    ("livekit-client", 157.0),
    ("mediasoup-client", 39.0),
    ("janus.js", 14.0),
    ("membrane-webrtc-js", 8.5),
];

/// One file's size.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct FileSize {
    /// File name.
    pub name: String,
    /// Bytes.
    pub raw: u64,
    /// Bytes after gzip -9.
    pub gzip: u64,
}

/// The bundle's size, or why it is unknown.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ClientWeight {
    /// The wasm and JS files.
    pub files: Vec<FileSize>,
    /// Sum of raw sizes.
    pub total_raw: u64,
    /// Sum of gzip sizes.
    pub total_gzip: u64,
    /// Why there are no figures, if so.
    pub missing: Option<String>,
}

/// Measures the `.wasm` and `.js` files in `dist`.
pub fn measure(dist: &Path) -> ClientWeight {
    let entries = match std::fs::read_dir(dist) {
        Ok(e) => e,
        Err(e) => {
            return ClientWeight {
                missing: Some(format!(
                    "{}: {e} (run `cargo xtask build-client`)",
                    dist.display()
                )),
                ..Default::default()
            }
        }
    };
    let mut files: Vec<FileSize> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("wasm" | "js")))
        .filter_map(|p| {
            let raw = std::fs::metadata(&p).ok()?.len();
            // gzip itself, so the figure is exactly what `gzip -9` gives for the JS references.
            let out = Command::new("gzip")
                .args(["-9", "-c", "-n"])
                .arg(&p)
                .output()
                .ok()?;
            Some(FileSize {
                name: p.file_name()?.to_string_lossy().into_owned(),
                raw,
                gzip: out.stdout.len() as u64,
            })
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let missing = files.is_empty().then(|| {
        format!(
            "no .wasm/.js in {} (run `cargo xtask build-client`)",
            dist.display()
        )
    });
    ClientWeight {
        total_raw: files.iter().map(|f| f.raw).sum(),
        total_gzip: files.iter().map(|f| f.gzip).sum(),
        files,
        missing,
    }
}

impl ClientWeight {
    /// The report's section.
    pub fn markdown(&self) -> String {
        let mut md = String::from("## Client weight (release wasm + JS)\n\n");
        if let Some(m) = &self.missing {
            md.push_str(&format!("Not measured: {m}\n"));
            return md;
        }
        md.push_str("| file | raw KB | gzip -9 KB |\n|---|---|---|\n");
        for f in &self.files {
            md.push_str(&format!(
                "| {} | {:.1} | {:.1} |\n",
                f.name,
                f.raw as f64 / 1000.0,
                f.gzip as f64 / 1000.0
            ));
        }
        md.push_str(&format!(
            "| **Videoroom client (wasm + JS)** | **{:.1}** | **{:.1}** |\n",
            self.total_raw as f64 / 1000.0,
            self.total_gzip as f64 / 1000.0
        ));
        for (name, kb) in REFERENCES {
            md.push_str(&format!("| {name} (quoted, min + gzip -9) | – | {kb} |\n"));
        }
        let verdict = if self.total_gzip <= BUDGET_GZIP_BYTES {
            "within"
        } else {
            "OVER"
        };
        md.push_str(&format!(
            "\nBudget {} KB gzip: {verdict} ({:.1} KB). The JS figures are quoted reference sizes, \
             not measured by this run; ours excludes HTML/CSS as theirs do.\n",
            BUDGET_GZIP_BYTES / 1000,
            self.total_gzip as f64 / 1000.0
        ));
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_wasm_and_js_only() {
        let dir = std::env::temp_dir().join(format!("vrbench-weight-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.js"), "x".repeat(5000)).unwrap();
        std::fs::write(dir.join("a_bg.wasm"), vec![0u8; 3000]).unwrap();
        std::fs::write(dir.join("index.html"), "<html>").unwrap();
        let w = measure(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(w.files.len(), 2);
        assert_eq!(w.total_raw, 8000);
        assert!(w.total_gzip > 0 && w.total_gzip < 500);
        let md = w.markdown();
        assert!(
            md.contains("livekit-client") && md.contains("within"),
            "{md}"
        );
        assert!(measure(Path::new("/nonexistent")).missing.is_some());
    }
}
