//! Rules of the workspace's shape, checked on its files (issue 10's acceptance):
//!
//! - an event's stored type is spelled only by the registry (`sunshine_proto::events`, built
//!   from `prost::Name`) and the generated code: no source file spells a type of the
//!   `sunshine.v1` package out as a string literal;
//! - no crate under `services/` depends on another crate under `services/` (shared things go
//!   to `crates/`; the binary and these tests may depend on services).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `directory`, build output and hidden directories left out.
fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_event_type_is_spelled_out_as_a_string_literal_outside_the_registry() {
    // Built here, so this file does not hold what it looks for.
    let needle = format!("{}{}.{}.", '"', "sunshine", "v1");
    let root = workspace_root();
    let mut files = Vec::new();
    for top in ["services", "crates", "tests"] {
        rust_files(&root.join(top), &mut files);
    }
    assert!(
        files.len() > 50,
        "found only {} source files under {}",
        files.len(),
        root.display()
    );
    let mut offenders = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a source file reads as UTF-8");
        for (index, line) in text.lines().enumerate() {
            if line.contains(&needle) {
                let relative = file.strip_prefix(&root).unwrap_or(file);
                offenders.push(format!(
                    "{}:{}: {}",
                    relative.display(),
                    index + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "event types spelled out instead of named by their registered message \
         (`pb::X::TYPE`, `NewEvent::typed`, a stream kind's `decode`):\n{}",
        offenders.join("\n")
    );
}

/// The crate names a manifest depends on, in every dependency table (renames resolved).
fn dependency_names(manifest: &toml::Table) -> BTreeSet<String> {
    let mut tables: Vec<&toml::Table> = Vec::new();
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(table) = manifest.get(section).and_then(toml::Value::as_table) {
            tables.push(table);
        }
    }
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for target in targets.values().filter_map(toml::Value::as_table) {
            for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
                if let Some(table) = target.get(section).and_then(toml::Value::as_table) {
                    tables.push(table);
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    for table in tables {
        for (key, value) in table {
            let renamed = value
                .get("package")
                .and_then(toml::Value::as_str)
                .unwrap_or(key);
            names.insert(renamed.to_owned());
            if let Some(path) = value.get("path").and_then(toml::Value::as_str) {
                names.insert(format!("path:{path}"));
            }
        }
    }
    names
}

#[test]
fn no_service_crate_depends_on_another_service_crate() {
    let services = workspace_root().join("services");
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(&services).expect("services/ exists") {
        let manifest_path = entry.expect("a directory entry").path().join("Cargo.toml");
        if manifest_path.is_file() {
            let text = std::fs::read_to_string(&manifest_path).expect("a manifest reads");
            let manifest: toml::Table = toml::from_str(&text).expect("a manifest parses");
            manifests.push((manifest_path, manifest));
        }
    }
    assert!(manifests.len() >= 2, "found the services' manifests");
    let service_crates: BTreeSet<String> = manifests
        .iter()
        .map(|(path, manifest)| {
            manifest
                .get("package")
                .and_then(|package| package.get("name"))
                .and_then(toml::Value::as_str)
                .unwrap_or_else(|| panic!("{} names its package", path.display()))
                .to_owned()
        })
        .collect();
    let mut offenders = Vec::new();
    for (path, manifest) in &manifests {
        for dependency in dependency_names(manifest) {
            let names_a_service = match dependency.strip_prefix("path:") {
                // A path dependency into services/ (resolved from the manifest's directory).
                Some(relative) => {
                    let own = path.parent().expect("a manifest's directory");
                    let target = own.join(relative);
                    let target = target.canonicalize().unwrap_or(target);
                    target.starts_with(services.canonicalize().unwrap_or(services.clone()))
                }
                None => service_crates.contains(&dependency),
            };
            if names_a_service {
                let service = path
                    .parent()
                    .and_then(Path::file_name)
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                offenders.push(format!("services/{service}/Cargo.toml → {dependency}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "a service depends on another service (move what they share to crates/):\n{}",
        offenders.join("\n")
    );
}
