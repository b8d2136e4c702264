//! Imports between a crate's modules point one way. The crate root writes the order down
//! (`# Module dependencies` in its `//!` docs: each module with the modules it may use, all
//! listed above it); this test reads every module's source and checks it imports nothing
//! else from the crate — so no two modules can import each other, directly or round a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The documented order: each module with the modules it may import. Every one of those is
/// listed on an earlier line, so the documented graph has no circle.
fn documented_order(crate_root: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut lines = crate_root
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "//! # Module dependencies")
        .skip_while(|line| *line != "//! ```text")
        .skip(1);
    let mut order: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in lines.by_ref() {
        if line == "//! ```" {
            return order;
        }
        let text = line.trim_start_matches("//!").trim();
        let earlier: BTreeSet<String> = order.iter().map(|(name, _)| name.clone()).collect();
        match text.split_once('→') {
            Some((module, uses)) => {
                let uses: BTreeSet<String> = match uses.trim() {
                    "everything above" => earlier.clone(),
                    listed => listed
                        .split(',')
                        .map(|name| name.trim().to_owned())
                        .collect(),
                };
                for used in &uses {
                    assert!(
                        earlier.contains(used),
                        "{} may use {used}, which is not listed above it",
                        module.trim()
                    );
                }
                order.push((module.trim().to_owned(), uses));
            }
            None => {
                for module in text.split(',') {
                    order.push((module.trim().to_owned(), BTreeSet::new()));
                }
            }
        }
    }
    panic!("no `# Module dependencies` text block in the crate root");
}

/// The modules the crate root declares.
fn declared_modules(crate_root: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for line in crate_root.lines() {
        let line = line.trim();
        let declaration = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .or_else(|| line.strip_prefix("mod "));
        if let Some(name) = declaration.and_then(|rest| rest.strip_suffix(';')) {
            modules.insert(name.to_owned());
        }
    }
    modules
}

/// A module's source: `<name>.rs`, or every file under `<name>/`.
fn module_source(source_dir: &Path, module: &str) -> String {
    let file = source_dir.join(format!("{module}.rs"));
    if file.exists() {
        return std::fs::read_to_string(&file).expect("a readable module file");
    }
    let mut text = String::new();
    let mut directories = vec![source_dir.join(module)];
    while let Some(directory) = directories.pop() {
        let entries = std::fs::read_dir(&directory)
            .unwrap_or_else(|error| panic!("module {module}: {}: {error}", directory.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                directories.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                text.push_str(&std::fs::read_to_string(&path).expect("a readable file"));
            }
        }
    }
    text
}

/// The crate's modules that `source` names as `crate::<module>` outside comments.
fn imports(source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in source.lines() {
        // Comments name modules without importing them (doc links included).
        let code = match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        };
        for (index, _) in code.match_indices("crate::") {
            let preceded_by_identifier = code[..index]
                .chars()
                .next_back()
                .is_some_and(|character| character.is_alphanumeric() || character == '_');
            if preceded_by_identifier {
                continue;
            }
            let rest = &code[index + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|character| character.is_alphanumeric() || *character == '_')
                .collect();
            if modules.contains(&name) {
                used.insert(name);
            }
        }
    }
    used
}

fn check_module_order(crate_path: &str) {
    let source_dir = workspace_root().join(crate_path).join("src");
    let crate_root = std::fs::read_to_string(source_dir.join("lib.rs")).expect("lib.rs");
    let order = documented_order(&crate_root);
    let modules = declared_modules(&crate_root);
    let documented: BTreeSet<String> = order.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(
        documented, modules,
        "{crate_path}: the documented order lists exactly the crate's modules"
    );
    let mut violations = BTreeMap::new();
    for (module, allowed) in &order {
        let mut others = modules.clone();
        others.remove(module);
        let used = imports(&module_source(&source_dir, module), &others);
        let undocumented: Vec<String> = used.difference(allowed).cloned().collect();
        if !undocumented.is_empty() {
            violations.insert(module.clone(), undocumented);
        }
    }
    assert!(
        violations.is_empty(),
        "{crate_path}: modules import what the order in lib.rs does not allow (a circle, or the docs are stale): {violations:?}"
    );
}

#[test]
fn the_evidence_modules_import_one_way() {
    check_module_order("crates/evidence");
}

#[test]
fn the_event_log_modules_import_one_way() {
    check_module_order("crates/eventlog");
}

#[test]
fn the_policy_modules_import_one_way() {
    check_module_order("crates/policy");
}

#[test]
fn the_intake_modules_import_one_way() {
    check_module_order("services/intake");
}

#[test]
fn the_review_modules_import_one_way() {
    check_module_order("services/review");
}

#[test]
fn the_payment_modules_import_one_way() {
    check_module_order("services/payment");
}

// ---- department-integration ----
#[test]
fn the_department_integration_modules_import_one_way() {
    check_module_order("services/department-integration");
}

#[test]
fn a_circle_is_caught() {
    let crate_root = "//! # Module dependencies\n//! ```text\n//! a\n//! b → a\n//! ```\n";
    let order = documented_order(crate_root);
    let modules: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
    assert_eq!(order[0].1, BTreeSet::new());
    // `a` importing `b` is not allowed: b is below it.
    let used_by_a = imports("use crate::b::Thing;\n// crate::b in a comment\n", &modules);
    assert!(!used_by_a.is_subset(&order[0].1));
    assert_eq!(
        imports("let x = crate::a::f(); // see crate::b\n", &modules),
        BTreeSet::from(["a".to_owned()])
    );
}
