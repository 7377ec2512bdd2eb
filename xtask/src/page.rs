//! Builds the client into `dist/` without trunk: the run command's path (issue 33).
//!
//! cargo (wasm32, the profile index.html names) → `wasm-bindgen --target web` → `wasm-opt` (the
//! level and parameters index.html names) → the glue minifier (`glue.rs`) → the page: each asset
//! copied under a content hash, and `index.html` written from the source one, its `data-trunk`
//! links replaced by the tags trunk writes (stylesheet, icon, module preload, wasm preload, the
//! module script), each with its Subresource Integrity hash. index.html stays the one source of
//! the page for both paths; `cargo xtask test` holds this build to trunk's (same bundle ± 1 %,
//! and trunk's page joins a room), so they cannot drift apart.
//!
//! A build whose inputs (the wasm cargo produced, the page and its assets, the tool versions)
//! are those of the `dist/` already there is skipped: a warm restart takes seconds.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use sha2::Digest;

use crate::tools::{self, Tools};
use crate::{cargo, glue, sh};

/// Builds `dist/` from `index.html`; returns whether anything was rebuilt.
pub fn build(tools: &Tools, root: &Path) -> Result<bool> {
    let source = std::fs::read_to_string(root.join("index.html")).context("reading index.html")?;
    let page = Page::parse(&source)?;
    let rust = page.rust()?;
    let package = package_name(&root.join(&rust.manifest))?;
    compile(&package, &rust.profile)?;
    let wasm = root
        .join("target/wasm32-unknown-unknown")
        .join(&rust.profile)
        .join(format!("{}.wasm", package.replace('-', "_")));
    let dist = root.join("dist");
    let stamp_file = root.join("target/xtask/page.stamp");
    let stamp = stamp(tools, &source, &page, root, &wasm)?;
    if std::fs::read_to_string(&stamp_file)
        .is_ok_and(|s| s == format!("{stamp}{}", index_hash(&dist)))
    {
        eprintln!("client unchanged: dist/ is up to date");
        return Ok(false);
    }
    let staging = root.join("target/xtask/page");
    let out = staging.join("dist");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&out)?;
    let (bundle_wasm, bundle_js) = bindgen(tools, &rust, &wasm, &staging, &out)?;
    let mut html = String::with_capacity(source.len() + 1024);
    let mut pos = 0;
    for link in &page.links {
        html.push_str(&source[pos..link.start]);
        pos = link.end;
        let indent = indent_before(&source, link.start);
        let tags = match link.rel.as_str() {
            "rust" => rust_tags(&bundle_wasm, &bundle_js, indent)?,
            "css" => {
                let (name, sri) = copy_hashed(&root.join(link.href()?), &out)?;
                format!(r#"<link rel="stylesheet" href="/{name}" integrity="{sri}">"#)
            }
            "icon" => {
                let (name, sri) = copy_hashed(&root.join(link.href()?), &out)?;
                format!(r#"<link rel="icon" href="/{name}" integrity="{sri}">"#)
            }
            other => bail!("index.html: a data-trunk link with rel={other:?}: page.rs builds only rust, css and icon links"),
        };
        html.push_str(&tags);
    }
    html.push_str(&source[pos..]);
    std::fs::write(out.join("index.html"), html)?;
    // Swap the whole folder, so no stale hashed file is left behind and a failed build leaves
    // the previous dist/ as it was.
    if dist.exists() {
        std::fs::remove_dir_all(&dist).with_context(|| format!("removing {}", dist.display()))?;
    }
    std::fs::rename(&out, &dist)
        .with_context(|| format!("moving the page to {}", dist.display()))?;
    std::fs::write(&stamp_file, stamp + &index_hash(&dist))?;
    Ok(true)
}

/// Compiles the client as the page asks (package and profile from index.html), without the
/// tools that turn it into a page: the run command does this while wasm-bindgen-cli installs.
pub fn compile_client(root: &Path) -> Result<()> {
    let source = std::fs::read_to_string(root.join("index.html")).context("reading index.html")?;
    let rust = Page::parse(&source)?.rust()?;
    compile(&package_name(&root.join(&rust.manifest))?, &rust.profile)
}

/// Fails unless the bundles (wasm + JS, `gzip -9`) in two built pages weigh the same within
/// 1 %: ours (`dist/`) and trunk's, so the two paths cannot drift apart.
pub fn same_bundle(ours: &Path, trunks: &Path) -> Result<()> {
    let (a, b) = (bundle_gzip(ours)?, bundle_gzip(trunks)?);
    let diff = a.abs_diff(b) as f64 / b as f64;
    eprintln!(
        "bundle (wasm + JS, gzip -9): ours {a} B, trunk's {b} B ({:+.2} %)",
        (a as f64 - b as f64) / b as f64 * 100.0
    );
    ensure!(
        diff <= 0.01,
        "the page build's bundle ({a} B) and trunk's ({b} B) differ by more than 1 %: \
         index.html's rust link and page.rs no longer build the same thing"
    );
    Ok(())
}

/// The gzip -9 size of a built page's `.wasm` and `.js` files.
fn bundle_gzip(dist: &Path) -> Result<u64> {
    let mut total = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(dist).with_context(|| format!("reading {}", dist.display()))? {
        let path = entry?.path();
        if !matches!(
            path.extension().and_then(|x| x.to_str()),
            Some("wasm" | "js")
        ) {
            continue;
        }
        let out = std::process::Command::new("gzip")
            .args(["-9", "-c", "-n"])
            .arg(&path)
            .output()
            .context("running gzip")?;
        ensure!(out.status.success(), "gzip {} failed", path.display());
        total += out.stdout.len() as u64;
        files += 1;
    }
    ensure!(
        files == 2,
        "{} holds {files} wasm/JS files, not 2",
        dist.display()
    );
    Ok(total)
}

/// `cargo build` of the client for wasm32 with the page's profile; the bundle's panic locations
/// drop this machine's crate-source folders (as for trunk's build, `build_client_with_trunk`).
fn compile(package: &str, profile: &str) -> Result<()> {
    sh(cargo()
        .args(["build", "--target", "wasm32-unknown-unknown", "--profile"])
        .args([profile, "-p", package])
        .env("CARGO_ENCODED_RUSTFLAGS", tools::registry_remaps()?))
}

/// wasm-bindgen, wasm-opt and the glue minifier; returns the bundle's two files, in `out`
/// under a content hash (`client-<hash>_bg.wasm`, `client-<hash>.js`, as trunk names them).
fn bindgen(
    tools: &Tools,
    rust: &RustLink,
    wasm: &Path,
    staging: &Path,
    out: &Path,
) -> Result<(PathBuf, PathBuf)> {
    const NAME: &str = "client";
    sh(tools
        .command("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--out-name", NAME])
        .arg("--out-dir")
        .arg(staging)
        .arg(wasm))?;
    let (bg, js) = (
        staging.join(format!("{NAME}_bg.wasm")),
        staging.join(format!("{NAME}.js")),
    );
    let mut opt = tools.command("wasm-opt");
    opt.arg(format!("-O{}", rust.wasm_opt))
        .args(rust.wasm_opt_params.split_whitespace())
        .arg(&bg)
        .arg("-o")
        .arg(&bg);
    sh(&mut opt)?;
    glue::minify(tools, &bg, &js)?;
    let wasm_bytes = std::fs::read(&bg)?;
    let glue = std::fs::read_to_string(&js)?;
    let hash = short_hash(&[&wasm_bytes, glue.as_bytes()]);
    let hashed = format!("{NAME}-{hash}");
    // The glue's own default URL for the wasm (unused: the page passes the path) follows the
    // new name, as in trunk's output.
    let default_url = format!("'{NAME}_bg.wasm'");
    ensure!(
        glue.contains(&default_url),
        "the glue no longer names {default_url}: has wasm-bindgen's glue layout changed?"
    );
    let glue = glue.replace(&default_url, &format!("'{hashed}_bg.wasm'"));
    let (out_wasm, out_js) = (
        out.join(format!("{hashed}_bg.wasm")),
        out.join(format!("{hashed}.js")),
    );
    std::fs::write(&out_wasm, wasm_bytes)?;
    std::fs::write(&out_js, glue)?;
    Ok((out_wasm, out_js))
}

/// The tags that load the bundle: both files preloaded with their integrity, then the module
/// script that instantiates it (wasm-bindgen's `start` function runs the app).
fn rust_tags(wasm: &Path, js: &Path, indent: &str) -> Result<String> {
    let (wasm_name, js_name) = (file_name(wasm)?, file_name(js)?);
    let (wasm_sri, js_sri) = (sri(&std::fs::read(wasm)?), sri(&std::fs::read(js)?));
    Ok(format!(
        r#"<link rel="modulepreload" href="/{js_name}" crossorigin="anonymous" integrity="{js_sri}">
{indent}<link rel="preload" href="/{wasm_name}" crossorigin="anonymous" integrity="{wasm_sri}" as="fetch" type="application/wasm">
{indent}<script type="module">
{indent}import init from '/{js_name}';
{indent}await init({{ module_or_path: '/{wasm_name}' }});
{indent}</script>"#
    ))
}

/// Copies an asset into `out` as `<stem>-<hash>.<ext>`; returns its name and integrity.
fn copy_hashed(asset: &Path, out: &Path) -> Result<(String, String)> {
    let bytes = std::fs::read(asset).with_context(|| format!("reading {}", asset.display()))?;
    let stem = asset
        .file_stem()
        .and_then(|s| s.to_str())
        .context("asset name")?;
    let name = match asset.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{}.{ext}", short_hash(&[&bytes])),
        None => format!("{stem}-{}", short_hash(&[&bytes])),
    };
    std::fs::write(out.join(&name), &bytes)?;
    Ok((name, sri(&bytes)))
}

/// What decides the page's content besides the client's code: if it equals the stamp of the
/// last build (and dist/index.html is the one that build wrote), the build is skipped.
fn stamp(tools: &Tools, source: &str, page: &Page, root: &Path, wasm: &Path) -> Result<String> {
    let mut h = sha2::Sha256::new();
    // A change to this pipeline's code rebuilds too.
    h.update(include_str!("page.rs"));
    h.update(include_str!("glue.rs"));
    h.update(source);
    for link in page.links.iter().filter(|l| l.rel != "rust") {
        h.update(std::fs::read(root.join(link.href()?))?);
    }
    h.update(std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?);
    for tool in ["wasm-bindgen", "wasm-opt"] {
        let version = tools.command(tool).arg("--version").output()?;
        h.update(version.stdout);
    }
    Ok(hex(&h.finalize()))
}

fn index_hash(dist: &Path) -> String {
    std::fs::read(dist.join("index.html"))
        .map(|b| hex(&sha2::Sha256::digest(b)))
        .unwrap_or_default()
}

/// The `name` of a Cargo manifest's `[package]`.
fn package_name(manifest: &Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
            if let (true, Some(v)) = (in_package, value.strip_prefix('=')) {
                return Ok(v.trim().trim_matches('"').to_owned());
            }
        }
    }
    bail!("{} has no [package] name", manifest.display())
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex(&h.finalize()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sri(bytes: &[u8]) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(bytes));
    format!("sha384-{hash}")
}

fn file_name(path: &Path) -> Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .context("file name")
}

/// The whitespace before position `at` on its line.
fn indent_before(text: &str, at: usize) -> &str {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..at];
    if before.trim().is_empty() {
        before
    } else {
        ""
    }
}

/// The source page: its `<link data-trunk …>` tags, where they are and what they say.
struct Page {
    links: Vec<Link>,
}

/// One `<link data-trunk …>` tag of index.html.
struct Link {
    /// Byte range of the whole tag in the source.
    start: usize,
    end: usize,
    rel: String,
    attrs: Vec<(String, String)>,
}

/// What the page's `rel="rust"` link asks of the build.
struct RustLink {
    manifest: String,
    profile: String,
    wasm_opt: String,
    wasm_opt_params: String,
}

impl Link {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn href(&self) -> Result<&str> {
        self.attr("href").with_context(|| {
            format!(
                "index.html: the data-trunk rel={:?} link has no href",
                self.rel
            )
        })
    }
}

impl Page {
    fn parse(html: &str) -> Result<Page> {
        let mut links = Vec::new();
        let mut from = 0;
        while let Some(found) = html[from..].find("<link") {
            let start = from + found;
            let end = start
                + html[start..]
                    .find('>')
                    .context("index.html: a <link> tag is not closed")?
                + 1;
            from = end;
            let attrs = attributes(&html[start + "<link".len()..end - 1])?;
            if !attrs.iter().any(|(n, _)| n == "data-trunk") {
                continue;
            }
            let rel = attrs
                .iter()
                .find(|(n, _)| n == "rel")
                .map(|(_, v)| v.clone())
                .context("index.html: a data-trunk link has no rel")?;
            links.push(Link {
                start,
                end,
                rel,
                attrs,
            });
        }
        Ok(Page { links })
    }

    fn rust(&self) -> Result<RustLink> {
        let mut rust = self.links.iter().filter(|l| l.rel == "rust");
        let (Some(link), None) = (rust.next(), rust.next()) else {
            bail!("index.html must have exactly one <link data-trunk rel=\"rust\">");
        };
        for (name, _) in &link.attrs {
            let known = [
                "data-trunk",
                "rel",
                "href",
                "data-cargo-profile-release",
                "data-wasm-opt",
                "data-wasm-opt-params",
            ];
            ensure!(
                known.contains(&name.as_str()),
                "index.html: the rust link's {name} is not known to page.rs (it reads {known:?})"
            );
        }
        Ok(RustLink {
            manifest: link.attr("href").unwrap_or("Cargo.toml").to_owned(),
            profile: link
                .attr("data-cargo-profile-release")
                .unwrap_or("release")
                .to_owned(),
            wasm_opt: link.attr("data-wasm-opt").unwrap_or("s").to_owned(),
            wasm_opt_params: link.attr("data-wasm-opt-params").unwrap_or("").to_owned(),
        })
    }
}

/// Attributes of a tag's inside (`a="b" c=d e`), values unquoted.
fn attributes(inside: &str) -> Result<Vec<(String, String)>> {
    let mut attrs = Vec::new();
    let mut rest = inside.trim_start().trim_end_matches('/');
    while !rest.trim().is_empty() {
        let name_len = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let name = rest[..name_len].to_ascii_lowercase();
        rest = rest[name_len..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, tail) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let close = after[1..]
                        .find(q)
                        .with_context(|| format!("index.html: unclosed quote after {name}="))?;
                    (&after[1..1 + close], &after[close + 2..])
                }
                _ => {
                    let len = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..len], &after[len..])
                }
            };
            rest = tail.trim_start();
            value.to_owned()
        } else {
            String::new()
        };
        attrs.push((name, value));
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_data_trunk_links_of_the_real_page() {
        let html = include_str!("../../index.html");
        let page = Page::parse(html).unwrap();
        let rels: Vec<&str> = page.links.iter().map(|l| l.rel.as_str()).collect();
        assert_eq!(rels, ["icon", "css", "rust"]);
        let rust = page.rust().unwrap();
        assert_eq!(rust.manifest, "client/Cargo.toml");
        assert_eq!(rust.profile, "wasm-release");
        assert_eq!(rust.wasm_opt, "s");
        assert_eq!(rust.wasm_opt_params, "--converge");
        assert_eq!(page.links[1].href().unwrap(), "client/styles/main.css");
        assert!(html[page.links[2].start..page.links[2].end].ends_with('>'));
    }

    #[test]
    fn attributes_quoted_unquoted_and_bare() {
        let attrs = attributes(r#" data-trunk rel="css" href='a b.css' x=y "#).unwrap();
        let pairs: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("data-trunk", ""),
                ("rel", "css"),
                ("href", "a b.css"),
                ("x", "y")
            ]
        );
        assert!(attributes(r#"rel="css"#).is_err());
    }

    #[test]
    fn a_rust_link_with_an_unknown_option_is_refused() {
        let page = Page::parse(r#"<link data-trunk rel="rust" data-bin="x">"#).unwrap();
        let err = page.rust().err().unwrap().to_string();
        assert!(err.contains("data-bin"), "{err}");
        let none = Page::parse(r#"<link rel="stylesheet" href="x.css">"#).unwrap();
        assert!(none.links.is_empty() && none.rust().is_err());
    }

    #[test]
    fn package_name_is_the_package_s_not_a_dependency_s() {
        let dir = std::env::temp_dir().join(format!("page-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("Cargo.toml");
        std::fs::write(
            &manifest,
            "[lib]\nname = \"lib\"\n[package]\nname = \"client\"\n[dependencies]\nname = \"x\"\n",
        )
        .unwrap();
        assert_eq!(package_name(&manifest).unwrap(), "client");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn copied_assets_are_named_by_content() {
        let dir = std::env::temp_dir().join(format!("page-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let asset = dir.join("main.css");
        std::fs::write(&asset, "x").unwrap();
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let (name, sri_value) = copy_hashed(&asset, &out).unwrap();
        // sha256("x") starts 2d711642b726b044.
        assert_eq!(name, "main-2d711642b726b044.css");
        assert_eq!(
            sri_value,
            "sha384-11LCxR+6DimqGQVwqdQlPkQHegWNMpf6OlYw1b0BJiL5fCisrtMTtcg7uZDKp9qF"
        );
        assert_eq!(std::fs::read(out.join(&name)).unwrap(), b"x");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
