//! Shortens the names by which the wasm and its wasm-bindgen JS glue call each other: a step of
//! the page build (`page.rs`) and, after `trunk build --release`, of trunk's.
//!
//! wasm-bindgen names each import `__wbg_<method>_<16 hex digits>`; the digits do not
//! compress, and every name is written twice (the wasm's import section, the glue's import
//! object). binaryen's `--minify-imports-and-exports` renames them to one or two characters
//! and prints the mapping, which is applied to the glue here; the Subresource Integrity hashes
//! Trunk wrote into index.html are then recomputed. Saves ~7 KB of the gzip bundle (issue 7).
//!
//! Any name left unrenamed in the glue fails the build: a changed glue layout must never ship
//! a page whose module cannot instantiate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use sha2::Digest;

use crate::tools::Tools;

/// Minifies the import and export names of the one wasm module in trunk's `dist` and its glue,
/// then recomputes the integrity hashes trunk wrote into its index.html.
pub fn minify_trunk_dist(tools: &Tools, dist: &Path) -> Result<()> {
    let (wasm, js) = bundle_files(dist)?;
    minify(tools, &wasm, &js)?;
    let index = dist.join("index.html");
    let html = std::fs::read_to_string(&index).context("reading dist/index.html")?;
    let html = reintegrate(&html, &[&wasm, &js])?;
    std::fs::write(&index, html)?;
    Ok(())
}

/// Minifies the import and export names of `wasm` and of its glue `js`, in place.
pub fn minify(tools: &Tools, wasm: &Path, js: &Path) -> Result<()> {
    // binaryen renames every import module to one name: only right if there is one.
    let module = |imports: &[(String, String)]| -> Result<String> {
        let mut modules: Vec<&str> = imports.iter().map(|(m, _)| m.as_str()).collect();
        modules.sort_unstable();
        modules.dedup();
        match modules.as_slice() {
            [one] => Ok(one.to_string()),
            _ => bail!(
                "the wasm imports from {} modules ({modules:?}), not one",
                modules.len()
            ),
        }
    };
    let before = imports(&std::fs::read(wasm)?)?;
    let old_module = module(&before)?;
    let out = tools
        .command("wasm-opt")
        // Without "-and-modules" binaryen renames only imports from "env".
        .arg("--minify-imports-and-exports-and-modules")
        // Tool metadata no browser reads; last, as later passes would need the features.
        .args(["--strip-producers", "--strip-target-features"])
        .arg(wasm)
        .arg("-o")
        .arg(wasm)
        .output()
        .context("running wasm-opt")?;
    ensure!(
        out.status.success(),
        "wasm-opt --minify-imports-and-exports failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut mapping = parse_mapping(&String::from_utf8_lossy(&out.stdout))?;
    let new_module = module(&imports(&std::fs::read(wasm)?)?)?;
    mapping.insert(old_module.clone(), new_module.clone());
    let import_names: Vec<String> = before.into_iter().map(|(_, name)| name).collect();
    let glue = std::fs::read_to_string(js).with_context(|| format!("reading {}", js.display()))?;
    let glue = rename(&glue, &mapping, &import_names)?;
    ensure!(
        glue.contains(&format!("\"{new_module}\": import")),
        "the glue's import object is not keyed by the module {old_module:?} any more: has \
         wasm-bindgen's glue layout changed?"
    );
    std::fs::write(js, glue)?;
    Ok(())
}

fn bundle_files(dist: &Path) -> Result<(PathBuf, PathBuf)> {
    let wasm: Vec<PathBuf> = std::fs::read_dir(dist)
        .with_context(|| format!("reading {}", dist.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    let [wasm] = wasm.as_slice() else {
        bail!(
            "expected one .wasm in {}, found {}",
            dist.display(),
            wasm.len()
        );
    };
    let stem = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_suffix("_bg"))
        .context("the wasm file is not named <name>_bg.wasm")?;
    let js = dist.join(format!("{stem}.js"));
    ensure!(
        js.exists(),
        "{} has no glue {}",
        wasm.display(),
        js.display()
    );
    Ok((wasm.clone(), js))
}

/// binaryen prints one `old => new` line per renamed import or export.
fn parse_mapping(text: &str) -> Result<HashMap<String, String>> {
    let mapping: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once(" => "))
        .map(|(old, new)| (old.trim().to_owned(), new.trim().to_owned()))
        .collect();
    ensure!(!mapping.is_empty(), "wasm-opt printed no name mapping");
    Ok(mapping)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Renames the glue's import-object keys (`    name: function(...)`, one per line), its module
/// key and its export references (`wasm.name`). Every one of `imports` must have been renamed,
/// and no `wasm.<old name>` may remain.
fn rename(glue: &str, mapping: &HashMap<String, String>, imports: &[String]) -> Result<String> {
    let mut renamed_keys = std::collections::HashSet::new();
    let mut out = String::with_capacity(glue.len());
    for line in glue.split_inclusive('\n') {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let key_len = body.find(|c: char| !is_ident(c)).unwrap_or(body.len());
        // The import object's module key: `"./client_bg.js": import0,`.
        let quoted = body
            .strip_prefix('"')
            .and_then(|b| b.split_once("\": import"))
            .and_then(|(module, rest)| Some((mapping.get(module)?, rest)));
        match mapping.get(&body[..key_len]) {
            Some(new) if body[key_len..].starts_with(": function") => {
                renamed_keys.insert(&body[..key_len]);
                out.push_str(indent);
                out.push_str(new);
                out.push_str(&body[key_len..]);
            }
            _ => match quoted {
                Some((new, rest)) => {
                    out.push_str(indent);
                    out.push_str(&format!("\"{new}\": import{rest}"));
                }
                None => out.push_str(line),
            },
        }
    }
    let mut renamed = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("wasm.") {
        let preceded = rest[..at].chars().next_back().is_some_and(is_ident);
        renamed.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        match mapping.get(&rest[..len]) {
            Some(new) if !preceded => renamed.push_str(new),
            _ => renamed.push_str(&rest[..len]),
        }
        rest = &rest[len..];
    }
    renamed.push_str(rest);
    let unrenamed: Vec<&String> = imports
        .iter()
        .filter(|name| !renamed_keys.contains(name.as_str()))
        .collect();
    ensure!(
        unrenamed.is_empty(),
        "{} of the wasm's {} imports were not found as keys of the glue's import object \
         (first: {}): has wasm-bindgen's glue layout changed?",
        unrenamed.len(),
        imports.len(),
        unrenamed[0]
    );
    let stale = mapping.keys().find(|old| {
        let needle = format!("wasm.{old}");
        renamed.match_indices(&needle).any(|(i, _)| {
            !renamed[i + needle.len()..].starts_with(is_ident)
                && !renamed[..i].chars().next_back().is_some_and(is_ident)
        })
    });
    if let Some(old) = stale {
        bail!("the glue still calls the export {old} by its old name after minifying");
    }
    Ok(renamed)
}

/// A wasm binary's imports: (module, name) pairs.
fn imports(wasm: &[u8]) -> Result<Vec<(String, String)>> {
    struct Reader<'a>(&'a [u8], usize);
    impl Reader<'_> {
        fn byte(&mut self) -> Result<u8> {
            let b = *self.0.get(self.1).context("truncated wasm")?;
            self.1 += 1;
            Ok(b)
        }
        fn leb(&mut self) -> Result<u64> {
            let (mut n, mut shift) = (0u64, 0);
            loop {
                let b = self.byte()?;
                n |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Ok(n);
                }
                shift += 7;
                ensure!(shift < 64, "bad LEB128 in wasm");
            }
        }
        fn bytes(&mut self, n: usize) -> Result<&[u8]> {
            let s = self.0.get(self.1..self.1 + n).context("truncated wasm")?;
            self.1 += n;
            Ok(s)
        }
        fn name(&mut self) -> Result<String> {
            let n = self.leb()? as usize;
            Ok(String::from_utf8_lossy(self.bytes(n)?).into_owned())
        }
        fn value_type(&mut self) -> Result<()> {
            // (ref null? ht) carries a heap type after the prefix.
            if matches!(self.byte()?, 0x63 | 0x64) {
                self.leb()?;
            }
            Ok(())
        }
        fn limits(&mut self) -> Result<()> {
            let flags = self.byte()?;
            self.leb()?;
            if flags & 1 == 1 {
                self.leb()?;
            }
            Ok(())
        }
    }
    let mut r = Reader(wasm, 8);
    ensure!(wasm.starts_with(b"\0asm"), "not a wasm binary");
    while r.1 < wasm.len() {
        let id = r.byte()?;
        let size = r.leb()? as usize;
        if id != 2 {
            r.bytes(size)?;
            continue;
        }
        let mut imports = Vec::new();
        for _ in 0..r.leb()? {
            let module = r.name()?;
            let name = r.name()?;
            match r.byte()? {
                0 => drop(r.leb()?),
                1 => {
                    r.value_type()?;
                    r.limits()?
                }
                2 => r.limits()?,
                3 => {
                    r.value_type()?;
                    r.byte()?;
                }
                4 => {
                    r.byte()?;
                    r.leb()?;
                }
                other => bail!("unknown import kind {other} in wasm"),
            }
            imports.push((module, name));
        }
        return Ok(imports);
    }
    Ok(Vec::new())
}

/// Rewrites the `integrity=sha384-...` of each tag that links one of `files`, with its new
/// hash (attribute values quoted or not, as a minifier leaves them).
fn reintegrate(html: &str, files: &[&Path]) -> Result<String> {
    let mut html = html.to_owned();
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .context("file name")?;
        let bytes = std::fs::read(file)?;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&bytes));
        let mut from = 0;
        while let Some(found) = html[from..].find(&format!("/{name}")) {
            let at = from + found;
            let tag_start = html[..at].rfind('<').unwrap_or(0);
            let tag_end = html[at..].find('>').map_or(html.len(), |e| at + e);
            if let Some(i) = html[tag_start..tag_end].find("integrity=") {
                let value = tag_start + i + "integrity=".len();
                let value = value + usize::from(html[value..].starts_with(['"', '\'']));
                let start = value + html[value..].strip_prefix("sha384-").map_or(0, |_| 7);
                ensure!(
                    start > value,
                    "{name}: integrity is not sha384 in index.html"
                );
                let end = html[start..]
                    .find(['"', '\'', ' ', '>'])
                    .map_or(tag_end, |e| start + e);
                html.replace_range(start..end, &hash);
            }
            from = at + 1;
        }
    }
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_import_keys_and_export_references_only() {
        let mapping = parse_mapping(
            "__wbg_send_cd51063ca1be4d0f => a\nmemory => b\n__wbindgen_malloc => c\n",
        )
        .unwrap();
        let glue = "const import0 = {\n        __wbg_send_cd51063ca1be4d0f: function(arg0) {\n            arg0.send();\n        },\n    };\n    const m = wasm.memory.buffer; passString(x, wasm.__wbindgen_malloc);\n    // memory is fine here\n";
        let imports = ["__wbg_send_cd51063ca1be4d0f".to_string()];
        let out = rename(glue, &mapping, &imports).unwrap();
        assert!(out.contains("        a: function(arg0) {"), "{out}");
        assert!(
            out.contains("wasm.b.buffer") && out.contains("wasm.c)"),
            "{out}"
        );
        assert!(out.contains("// memory is fine here"));
        // An import key in a layout the renamer does not know fails the build.
        let shorthand = glue.replace(": function(arg0)", "(arg0)");
        assert!(rename(&shorthand, &mapping, &imports).is_err());
        let unknown = ["__wbg_other_0000000000000000".to_string()];
        assert!(rename(glue, &mapping, &unknown).is_err());
    }

    #[test]
    fn reads_import_modules_and_renames_the_module_key() {
        // (module (import "./m.js" "f" (func)) (import "./m.js" "mem" (memory 1))
        //         (import "env" "g" (global i32)))
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        let mut section = vec![3u8];
        for (module, field, desc) in [
            ("./m.js", "f", &[0u8, 0][..]),
            ("./m.js", "mem", &[2, 0, 1]),
            ("env", "g", &[3, 0x7f, 0]),
        ] {
            section.push(module.len() as u8);
            section.extend(module.bytes());
            section.push(field.len() as u8);
            section.extend(field.bytes());
            section.extend(desc);
        }
        wasm.push(2);
        wasm.push(section.len() as u8);
        wasm.extend(section);
        let found = imports(&wasm).unwrap();
        let names: Vec<(&str, &str)> = found
            .iter()
            .map(|(m, n)| (m.as_str(), n.as_str()))
            .collect();
        assert_eq!(names, [("./m.js", "f"), ("./m.js", "mem"), ("env", "g")]);
        assert!(imports(&wasm[..wasm.len() - 2]).is_err());
        let mapping = HashMap::from([("./m.js".to_string(), "a".to_string())]);
        let glue = "    return {\n        __proto__: null,\n        \"./m.js\": import0,\n    };\n";
        assert!(rename(glue, &mapping, &[])
            .unwrap()
            .contains("        \"a\": import0,\n"));
    }

    #[test]
    fn integrity_follows_the_new_content() {
        let dir = std::env::temp_dir().join(format!("glue-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let js = dir.join("client-1.js");
        std::fs::write(&js, "x").unwrap();
        let html = r#"<link rel="modulepreload" href="/client-1.js" crossorigin="anonymous" integrity="sha384-OLD"><link href="/other.css" integrity="sha384-KEEP">"#;
        let out = reintegrate(html, &[&js]).unwrap();
        // sha384("x"), base64.
        assert!(
            out.contains(
                "sha384-11LCxR+6DimqGQVwqdQlPkQHegWNMpf6OlYw1b0BJiL5fCisrtMTtcg7uZDKp9qF\">"
            ),
            "{out}"
        );
        assert!(out.contains("sha384-KEEP"));
        // Minified HTML leaves attribute values unquoted.
        let minified =
            "<link crossorigin href=/client-1.js integrity=sha384-OLD rel=modulepreload>";
        let out = reintegrate(minified, &[&js]).unwrap();
        assert!(out.contains("integrity=sha384-11LCxR+6DimqGQVwqdQlPkQHegWNMpf6OlYw1b0BJiL5fCisrtMTtcg7uZDKp9qF rel="), "{out}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
