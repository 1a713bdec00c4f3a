//! `history` through the real binary on the simulated cloud: an empty trail says so, apply and
//! destroy are listed oldest first with who ran them, `--json` gives the entries, and the apply
//! records the template the stack was built from in state's `source`.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/binary.rs"]
mod binary;

use binary::run;
use serde_json::Value;

fn state(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join(".konstacks/stacks/web-app-dev/state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn apply_and_destroy_are_listed_oldest_first_and_exported_as_json() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let args = ["--template", "web-app", "--state-dir", ".konstacks"];
    let with = |cmd: &[&'static str]| -> Vec<&str> { cmd.iter().copied().chain(args).collect() };

    let empty = run(dir, &with(&["history"]), 0);
    assert!(empty.stdout.contains("no history yet"), "{empty:?}");
    let none = run(dir, &with(&["--json", "history"]), 0);
    assert_eq!(serde_json::from_str::<Value>(&none.stdout).unwrap(), Value::Array(Vec::new()), "{none:?}");

    run(dir, &with(&["apply", "--yes"]), 0);
    let source = &state(dir)["source"];
    assert_eq!(source["template"], "web-app", "{source}");
    assert_eq!(source["stage"], "dev", "{source}");
    assert!(source["params"].is_object(), "{source}");
    run(dir, &with(&["destroy", "--yes"]), 0);

    let text = run(dir, &with(&["history"]), 0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two entries: {text:?}");
    for h in ["AT", "ACTOR", "COMMAND", "RESULT", "DURATION", "COST", "SUMMARY"] {
        assert!(lines[0].contains(h), "{text:?}");
    }
    assert!(
        lines[1].contains(" apply ") && lines[1].contains("succeeded") && lines[1].contains(" created"),
        "{text:?}"
    );
    assert!(
        lines[2].contains(" destroy ") && lines[2].contains("succeeded") && lines[2].contains(" deleted"),
        "{text:?}"
    );
    assert!(lines[2].contains("-> $0.00"), "nothing left to pay for: {text:?}");

    let json = run(dir, &with(&["--json", "history"]), 0);
    let entries: Value = serde_json::from_str(&json.stdout).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{json:?}");
    assert_eq!((entries[0]["command"].as_str(), entries[1]["command"].as_str()), (Some("apply"), Some("destroy")));
    for e in entries {
        assert_eq!(e["result"], "succeeded", "{e}");
        assert!(e["actor"].as_str().unwrap().contains('@'), "the OS user: {e}");
        assert!(e["at"].as_str().unwrap() < entries[1]["at"].as_str().unwrap() || e == &entries[1]);
        assert!(e["duration_ms"].is_u64() && e["cost_before_usd"].is_f64(), "{e}");
    }
    let created = entries[0]["summary"].as_str().unwrap();
    assert!(created.ends_with("0 updated, 0 replaced, 0 deleted") && !created.starts_with("0 "), "{created}");
    assert!(entries[0]["compliance"]["packs"].is_array(), "the template's default packs: {}", entries[0]);
}
