//! "Modules only look down": no crate of ours has two top-level modules that import each other,
//! directly or round a longer loop. Read from the sources (`crate::x` paths outside unit tests),
//! so `cargo xtask check` fails on a cycle the day it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A crate's top-level modules and the ones each imports through `crate::`.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Fails naming every import cycle between the top-level modules of each crate under `root`.
pub fn check(root: &Path) -> Result<()> {
    let mut cycles = Vec::new();
    let mut crates = 0;
    for entry in fs::read_dir(root)? {
        let dir = entry?.path();
        let src = dir.join("src");
        if !dir.join("Cargo.toml").is_file() || !src.is_dir() {
            continue;
        }
        crates += 1;
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        for cycle in find_cycles(&graph_of(&src)?) {
            cycles.push(format!("{name}: {}", cycle.join(" → ")));
        }
    }
    if crates == 0 {
        bail!("no crates found under {}", root.display());
    }
    if !cycles.is_empty() {
        bail!(
            "modules that import each other (give the shared piece its own module, or move it \
             to the side that owns it):\n  {}",
            cycles.join("\n  ")
        );
    }
    eprintln!("{crates} crates, no import cycles between modules");
    Ok(())
}

/// The import graph of one crate's `src/`.
fn graph_of(src: &Path) -> Result<Graph> {
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for entry in fs::read_dir(src)? {
        let path = entry?.path();
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = if path.is_dir() {
            let mut text = String::new();
            read_tree(&path, &mut text)?;
            text
        } else if path.extension().is_some_and(|e| e == "rs") && stem != "lib" && stem != "main" {
            let text = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            without_tests(&text).to_owned()
        } else {
            continue;
        };
        sources.entry(stem).or_default().push_str(&text);
    }
    Ok(graph(&sources))
}

fn read_tree(dir: &Path, out: &mut String) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            read_tree(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            out.push_str(without_tests(&text));
            out.push('\n');
        }
    }
    Ok(())
}

/// Edges from each module to the other modules its non-test code names as `crate::x`.
fn graph(sources: &BTreeMap<String, String>) -> Graph {
    // `sources` are already without their unit tests (`without_tests`, at read time).
    sources
        .iter()
        .map(|(module, text)| {
            let deps = crate_paths(text)
                .into_iter()
                .filter(|dep| dep != module && sources.contains_key(dep))
                .collect();
            (module.clone(), deps)
        })
        .collect()
}

/// The first segment of every `crate::` path, `crate::{a, b::{c, d}}` giving `a` and `b`;
/// groups may span lines, as rustfmt writes long ones.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.extend(ident(rest));
            continue;
        };
        // Only the group's top level names our modules; `b::{c, d}` inside is `b`'s.
        let mut depth = 0;
        let mut item_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    rest = &group[i..];
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    found.extend(ident(&group[i..]));
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    found
}

fn ident(s: &str) -> Option<String> {
    let name: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// A file's text before its unit tests (its last item): tests may reach anywhere.
fn without_tests(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// Each cycle once, as the path round it (`a → b → a`).
fn find_cycles(graph: &Graph) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            out.push(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for dep in graph.get(node).into_iter().flatten() {
            visit(dep, graph, path, done, out);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(m, t)| (m.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn paths_and_groups_are_read() {
        let found = crate_paths(
            "use crate::{a, b::C, self};\nuse crate::d::E;\nlet x = crate::e::f();\n// crate::g\n\
             use crate::{\n    h::{I, j::K},\n    l, // crate::m\n};\n",
        );
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["a", "b", "d", "e", "h", "l"].map(String::from)
        );
    }

    #[test]
    fn a_two_way_tie_is_a_cycle() {
        let g = graph(&sources(&[
            ("peer", "use crate::signaling::Outbox;"),
            ("signaling", "use crate::peer::Peer;"),
            ("room", "use crate::peer;"),
        ]));
        assert_eq!(
            find_cycles(&g),
            vec![["peer", "signaling", "peer"].map(String::from).to_vec()]
        );
    }

    #[test]
    fn a_longer_loop_is_a_cycle_and_layers_are_not() {
        let looped = graph(&sources(&[
            ("a", "crate::b::x()"),
            ("b", "crate::c::x()"),
            ("c", "use crate::a;"),
        ]));
        assert_eq!(find_cycles(&looped).len(), 1);
        let layered = graph(&sources(&[
            ("top", "use crate::{mid, low};"),
            ("mid", "use crate::low;"),
            ("low", "use crate::unknown_crate_item;"),
        ]));
        assert!(find_cycles(&layered).is_empty());
    }

    #[test]
    fn unit_tests_may_reach_up() {
        let g = graph(&sources(&[
            (
                "low",
                without_tests("fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::high;\n}\n"),
            ),
            ("high", "use crate::low;"),
        ]));
        assert!(find_cycles(&g).is_empty());
    }

    #[test]
    fn this_workspace_has_no_cycles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        check(&root).unwrap();
    }
}
