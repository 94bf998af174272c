//! The architecture rules of ARCHITECTURE.md that a reader of the source can check: no import
//! cycles between top-level modules, `policy` uses no other module of ours, `pairing` depends
//! on `policy` and not the reverse, `util` depends on nothing, nothing depends on `cli`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `module -> modules it names as crate::X`, tests excluded.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in all {
        let from = module_of(&file, &src);
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let entry = deps.entry(from.clone()).or_default();
        for part in code.split("crate::").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != from {
                entry.insert(name);
            }
        }
    }
    deps
}

#[test]
fn the_module_graph_keeps_its_rules() {
    let deps = dependencies();
    let uses = |a: &str, b: &str| deps.get(a).is_some_and(|d| d.contains(b));
    // No cycles, of any length.
    fn reaches(
        deps: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        deps.get(from)
            .into_iter()
            .flatten()
            .any(|next| next == to || (seen.insert(next.clone()) && reaches(deps, next, to, seen)))
    }
    for module in deps.keys() {
        assert!(
            !reaches(&deps, module, module, &mut BTreeSet::new()),
            "{module} is part of an import cycle: {deps:#?}"
        );
    }
    assert!(
        deps.get("policy").is_none_or(BTreeSet::is_empty),
        "policy is pure: {:?}",
        deps.get("policy")
    );
    assert!(uses("pairing", "policy") && !uses("policy", "pairing"));
    assert!(
        deps.get("util").is_none_or(BTreeSet::is_empty),
        "{:?}",
        deps.get("util")
    );
    for (module, used) in &deps {
        assert!(
            module == "cli" || !used.contains("cli"),
            "{module} depends on cli"
        );
    }
}
