//! The evidence stays pure: no database driver, async runtime, gRPC or NATS anywhere in its
//! dependency tree — normal and build dependencies all the way down, and its own
//! dev-dependencies, which is what `cargo tree -p sunshine-evidence` shows — so an auditor
//! builds the verifier without any of them.
//!
//! Reads `cargo metadata` (the workspace's resolved graph) and walks it from the crate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::Command;

use serde_json::Value;

/// Crates that mean the evidence is no longer pure, and our crates that pull them in.
const FORBIDDEN: &[&str] = &[
    "sqlx",
    "tokio",
    "tonic",
    "async-nats",
    "sunshine-platform",
    "sunshine-proto",
    "sunshine-eventlog",
];

fn is_forbidden(name: &str) -> bool {
    FORBIDDEN
        .iter()
        .any(|forbidden| name == *forbidden || name.starts_with(&format!("{forbidden}-")))
}

/// The workspace's packages by id (their names) and its resolved graph: for each package, its
/// dependencies with whether each is a normal, build or dev dependency.
struct Graph {
    names: BTreeMap<String, String>,
    dependencies: BTreeMap<String, Vec<(String, BTreeSet<String>)>>,
}

impl Graph {
    fn of_workspace() -> Graph {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args(["metadata", "--format-version", "1"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo metadata runs");
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
        let mut names = BTreeMap::new();
        for package in metadata["packages"].as_array().expect("packages") {
            names.insert(
                package["id"].as_str().expect("package id").to_owned(),
                package["name"].as_str().expect("package name").to_owned(),
            );
        }
        let mut dependencies = BTreeMap::new();
        for node in metadata["resolve"]["nodes"]
            .as_array()
            .expect("resolve nodes")
        {
            let mut edges = Vec::new();
            for dependency in node["deps"].as_array().expect("node deps") {
                let mut kinds = BTreeSet::new();
                for kind in dependency["dep_kinds"].as_array().expect("dep kinds") {
                    // `null` is a normal dependency.
                    kinds.insert(kind["kind"].as_str().unwrap_or("normal").to_owned());
                }
                edges.push((
                    dependency["pkg"]
                        .as_str()
                        .expect("dependency id")
                        .to_owned(),
                    kinds,
                ));
            }
            dependencies.insert(node["id"].as_str().expect("node id").to_owned(), edges);
        }
        Graph {
            names,
            dependencies,
        }
    }

    fn id_of(&self, name: &str) -> String {
        let mut ids = self
            .names
            .iter()
            .filter(|(_, known)| known.as_str() == name);
        let (id, _) = ids
            .next()
            .unwrap_or_else(|| panic!("{name} is in the workspace"));
        id.clone()
    }

    /// Every package `root` needs, each with the path it is reached by: normal and build
    /// dependencies transitively, dev-dependencies of `root` itself.
    fn tree_of(&self, root: &str) -> BTreeMap<String, Vec<String>> {
        let root_id = self.id_of(root);
        let mut reached: BTreeMap<String, Vec<String>> = BTreeMap::new();
        reached.insert(root_id.clone(), vec![root.to_owned()]);
        let mut queue = VecDeque::from([root_id.clone()]);
        while let Some(id) = queue.pop_front() {
            let path = reached[&id].clone();
            for (dependency, kinds) in self.dependencies.get(&id).into_iter().flatten() {
                let needed = kinds.contains("normal")
                    || kinds.contains("build")
                    || (id == root_id && kinds.contains("dev"));
                if !needed || reached.contains_key(dependency) {
                    continue;
                }
                let mut dependency_path = path.clone();
                dependency_path.push(self.names[dependency].clone());
                reached.insert(dependency.clone(), dependency_path);
                queue.push_back(dependency.clone());
            }
        }
        reached
            .into_values()
            .map(|path| (path.last().cloned().unwrap_or_default(), path))
            .collect()
    }
}

fn forbidden_in(tree: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    tree.iter()
        .filter(|(name, _)| is_forbidden(name))
        .map(|(_, path)| path.join(" → "))
        .collect()
}

#[test]
fn the_evidence_pulls_in_no_database_runtime_grpc_or_nats() {
    let graph = Graph::of_workspace();
    let evidence = graph.tree_of("sunshine-evidence");
    assert!(
        evidence.contains_key("sha2") && evidence.contains_key("ed25519-dalek"),
        "the walk finds the evidence's own dependencies: {:?}",
        evidence.keys().collect::<Vec<_>>()
    );
    // The walk sees these crates where they are: the runtime has them.
    let runtime = graph.tree_of("sunshine-eventlog");
    for expected in ["sqlx", "tokio", "tonic", "async-nats", "sunshine-evidence"] {
        assert!(
            runtime.contains_key(expected),
            "sunshine-eventlog reaches {expected}"
        );
    }
    let offenders = forbidden_in(&evidence);
    assert!(
        offenders.is_empty(),
        "sunshine-evidence must stay pure, but it reaches:\n{}",
        offenders.join("\n")
    );
}
