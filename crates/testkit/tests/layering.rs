//! The dependency direction of DESIGN.md, checked: each crate may depend only on the shoal
//! crates listed for it (normal dependencies; dev-dependencies are free).

use std::collections::{BTreeMap, BTreeSet};

fn allowed() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        ("shoal-api", vec![]),
        // PROXY protocol headers: pure code that the mesh writes and whoami reads.
        ("shoal-proxy-header", vec![]),
        ("shoal-store", vec!["shoal-api"]),
        ("shoal-balance", vec!["shoal-api"]),
        ("shoal-rpc", vec!["shoal-api", "shoal-balance"]),
        // The API's wire types: the daemon serves them, the CLI sends and reads them.
        ("shoal-wire", vec!["shoal-api", "shoal-balance"]),
        (
            "shoal-manager",
            vec![
                "shoal-api",
                "shoal-store",
                "shoal-balance",
                "shoal-rpc",
                "shoal-wire",
            ],
        ),
        ("shoal-agent", vec!["shoal-api"]),
        (
            "shoal-mesh",
            vec!["shoal-api", "shoal-balance", "shoal-proxy-header"],
        ),
        ("shoal-dns", vec!["shoal-api", "shoal-balance"]),
        ("shoal-workloads", vec!["shoal-proxy-header"]),
        // The load drivers (agent-swarm) speak the real node-to-node protocol.
        ("shoal-testkit", vec!["shoal-api", "shoal-rpc"]),
        (
            "shoal-node",
            vec![
                "shoal-api",
                "shoal-store",
                "shoal-balance",
                "shoal-rpc",
                "shoal-wire",
                "shoal-manager",
                "shoal-agent",
                "shoal-mesh",
                "shoal-dns",
            ],
        ),
        (
            "shoal-cli",
            vec![
                "shoal-api",
                "shoal-rpc",
                "shoal-wire",
                "shoal-node",
                "shoal-workloads",
            ],
        ),
    ])
}

#[test]
fn crates_depend_only_downwards() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let allowed = allowed();
    let mut seen = BTreeSet::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().expect("name");
        seen.insert(name.to_string());
        let Some(ok) = allowed.get(name) else {
            panic!(
                "crate {name} is not in the layering table: add it with its allowed dependencies"
            );
        };
        for dep in pkg["dependencies"].as_array().expect("deps") {
            let dep_name = dep["name"].as_str().expect("dep name");
            let normal = dep["kind"].is_null();
            if normal && dep_name.starts_with("shoal-") {
                assert!(
                    ok.contains(&dep_name),
                    "{name} must not depend on {dep_name}"
                );
            }
        }
    }
    assert_eq!(seen.len(), allowed.len(), "every crate in the table exists");
}
