//! The planners depend one way: scheduler → orchestrator → updater → plan → restart. A module
//! may name only modules to its right in code (docs may point anywhere), so none of them can
//! grow an import cycle back.

const ORDER: &[&str] = &["scheduler", "orchestrator", "updater", "plan", "restart"];

#[test]
fn planners_depend_one_way() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (i, module) in ORDER.iter().enumerate() {
        let path = src.join(format!("{module}.rs"));
        let text = std::fs::read_to_string(&path).expect("planner source");
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for line in code {
            for upper in &ORDER[..i] {
                assert!(
                    !line.contains(&format!("crate::{upper}")),
                    "{module} names crate::{upper}, which depends on it: {line}"
                );
            }
        }
    }
}
