//! The commands of docs/delivery.md, in order, through the real binary on the simulated cloud:
//! every line starting with `$ konstacks` runs and must end with the exit code its `# exit N`
//! comment gives (0 without one).
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/binary.rs"]
mod binary;

#[test]
fn every_command_of_the_delivery_guide_works_as_shown() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/delivery.md")).unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for line in doc.lines().filter_map(|l| l.trim().strip_prefix("$ konstacks ")) {
        let (cmd, comment) = line.split_once('#').unwrap_or((line, ""));
        let code = comment
            .trim()
            .strip_prefix("exit ")
            .map(|c| c.trim_end_matches(|ch: char| !ch.is_ascii_digit()).parse::<i32>().unwrap())
            .unwrap_or(0);
        let args: Vec<&str> = cmd.split_whitespace().collect();
        binary::run(d.path(), &args, code);
        ran += 1;
    }
    assert!(ran >= 15, "only {ran} commands found in docs/delivery.md");
    assert!(d.path().join(".github/workflows/konstacks.yml").exists());
}
