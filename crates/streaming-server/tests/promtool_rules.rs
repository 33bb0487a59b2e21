//! The Prometheus alert rules in `monitoring/` are valid and behave as their
//! unit tests say (`promtool check rules`, `promtool test rules`).

mod common;

use std::process::Command;

use common::{repo_root, require};

fn promtool(args: &[&str]) {
    require("promtool", "prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_are_valid() {
    promtool(&["check", "rules", "monitoring/prometheus-alerts.yaml"]);
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "monitoring/prometheus-alerts.test.yaml"]);
}
