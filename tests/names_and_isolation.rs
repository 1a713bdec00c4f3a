//! Stack names, the state directory and the shared simulated cloud, through the `konstacks`
//! binary (issue #12):
//!
//! - every command refuses a stack name that is not one (`../x`, `/abs`, `con`, ...) with exit
//!   code 3, before any path is built or any cloud is opened: the whole scratch tree keeps every
//!   byte, and nothing appears outside it;
//! - `plan --out` refuses a file inside the state directory, and one that is not a plan;
//! - two stacks applied at once by two processes over one state directory get distinct ids from
//!   the shared simulated cloud, and destroying one leaves the other whole;
//! - temporary files of a killed process are removed when the stack is next locked;
//! - with `--json`, a command line clap cannot parse is a JSON error on stdout.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What a run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The binary in `cwd`, over `state_dir`, stdin closed, no sealing key, no injected crash.
fn konstacks(cwd: &Path, state_dir: &Path, latency_ms: u64, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_konstacks"));
    c.current_dir(cwd)
        .arg("--state-dir")
        .arg(state_dir)
        .args(["--sim-latency-ms", &latency_ms.to_string(), "--no-color"])
        .args(args)
        .env_remove("KONSTACKS_SECRET_KEY")
        .env_remove("KONSTACKS_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run(cwd: &Path, state_dir: &Path, args: &[&str]) -> Run {
    konstacks(cwd, state_dir, 0, args).output().unwrap().into()
}

fn expect(cwd: &Path, state_dir: &Path, args: &[&str], code: i32) -> Run {
    let r = run(cwd, state_dir, args);
    assert_eq!(r.code, code, "konstacks {}\n{r:?}", args.join(" "));
    r
}

/// Every file, directory and symbolic link under `root`, with the bytes of the files.
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(p.clone());
                out.insert(p, None);
            } else if ft.is_symlink() {
                out.insert(p.clone(), Some(std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()));
            } else {
                out.insert(p.clone(), Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// The resources of the simulated cloud's file, by the stack they are tagged with.
fn cloud_by_stack(state: &Path) -> BTreeMap<String, Vec<Value>> {
    let text = std::fs::read_to_string(state.join("sim-cloud.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in file["resources"].as_array().unwrap() {
        out.entry(r["tags"]["konstacks:stack"].as_str().unwrap_or("(untagged)").to_string())
            .or_default()
            .push(r.clone());
    }
    out
}

/// The provider ids in a stack's state, as `state list --json` shows them.
fn state_ids(cwd: &Path, state: &Path, stack: &str) -> BTreeSet<String> {
    let r = expect(cwd, state, &["--json", "state", "list", "--name", stack], 0);
    let listed: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    listed.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Stack names

/// Every command that works on a stack, with the arguments it needs, as `--help` lists them.
const COMMANDS: &[&[&str]] = &[
    &["plan"],
    &["plan", "--refresh", "--out", "plan.json"],
    &["apply", "--yes"],
    &["destroy", "--yes"],
    &["refresh"],
    &["drift"],
    &["iam-policy"],
    &["output"],
    &["output", "web-1-ip"],
    &["state", "list"],
    &["state", "show", "app/web-1"],
    &["force-unlock", "0123456789abcdef"],
    &["import", "network/vpc", "vpc-00000001"],
    &["graph"],
    &["check"],
    &["cost"],
    &["parity"],
    &["validate"],
    &["synth"],
    &["dev", "--probe"],
    &["releases"],
    &["history"],
    &["preview", "up", "--branch", "feature/x"],
    &["preview", "list"],
    &["preview", "gc"],
    &["dashboard", "--listen", "127.0.0.1:0"],
    &["rollback", "--yes"],
];

/// Names that must never name a stack. A NUL byte cannot travel through argv; the library test
/// `state::tests::every_method_refuses_a_name_that_is_not_a_stack_name` covers it.
fn hostile_names() -> Vec<String> {
    [
        "../x",
        "../../../../tmp/x",
        "../../../escaped",
        "a/b",
        "/abs",
        ".",
        "..",
        "",
        "a\u{1}b",
        "a\nb",
        "a\\b",
        "w\u{435}b-app",            // Cyrillic "е"
        "\u{ff57}\u{ff45}\u{ff42}", // fullwidth "ｗｅｂ"
        "web-app\u{200b}",          // zero-width space
        "web.",
        "web ",
        "con",
        "lpt1",
        "Web-App",
        "-web",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([std::iter::repeat_n('a', 200).collect()])
    .collect()
}

#[test]
fn the_command_list_covers_every_command_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let r = expect(dir.path(), &dir.path().join("state"), &["--help"], 0);
    let section = r.stdout.split("Commands:").nth(1).unwrap().split("\n\n").next().unwrap();
    let listed: BTreeSet<&str> = section.lines().filter_map(|l| l.split_whitespace().next()).collect();
    let covered: BTreeSet<&str> = COMMANDS.iter().map(|c| c[0]).collect();
    let missing: Vec<&&str> =
        // `ci init` names no stack: it writes a workflow file.
        listed.iter().filter(|c| !covered.contains(**c) && !["templates", "help", "ci"].contains(*c)).collect();
    assert!(missing.is_empty(), "commands without hostile-name cases: {missing:?}\n{}", r.stdout);
}

/// Every command x every hostile name, given as `--name` (the binary's stack name) and as
/// `--stack` (the global choice of a stack): exit code 3 naming the name and the rule, and
/// nothing created, changed or read from the cloud. The cloud's file is made unreadable first,
/// so a command that opened the cloud would exit 1 instead (checked with a good name).
#[test]
fn hostile_stack_names_are_refused_by_every_command_before_any_path_is_built() {
    let root = tempfile::tempdir().unwrap();
    let cwd = root.path().join("work").join("a").join("b");
    std::fs::create_dir_all(&cwd).unwrap();
    let state = cwd.join("state");
    expect(&cwd, &state, &["apply", "--yes"], 0);
    std::fs::write(state.join("sim-cloud.json"), b"{ unreadable").unwrap();
    // A decoy state where `../x` from `stacks/` would lead.
    std::fs::create_dir_all(state.join("x")).unwrap();
    std::fs::copy(state.join("stacks/web-app-dev/state.json"), state.join("x/state.json")).unwrap();

    // With a good name, the commands that open the cloud fail on its file: the setup bites.
    for cmd in [&["plan"][..], &["state", "list"], &["refresh"], &["force-unlock", "0123456789abcdef"]] {
        let r = expect(&cwd, &state, cmd, 1);
        assert!(r.stderr.contains("sim-cloud.json"), "{r:?}");
    }

    let outside = [PathBuf::from("/tmp/x"), PathBuf::from("/abs")];
    let outside_before: Vec<bool> = outside.iter().map(|p| p.exists()).collect();
    let before = tree(root.path());
    let names = hostile_names();
    let mut cases = 0;
    let mut wrong = Vec::new();
    for name in &names {
        let shown = name.escape_debug().to_string();
        for how in ["--name", "--stack"] {
            for cmd in COMMANDS {
                // `--name=VALUE`, so that a value starting with `-` is a value too.
                let given = format!("{how}={name}");
                let mut args: Vec<&str> = cmd.to_vec();
                args.push(&given);
                let r = run(&cwd, &state, &args);
                cases += 1;
                let ok = r.code == 3
                    && r.stderr.contains(&format!("stack name `{shown}` is not a valid name"))
                    && r.stderr.contains("use 1 to 63 characters of a-z, 0-9 and '-'")
                    && r.stdout.is_empty();
                if !ok {
                    wrong.push(format!("konstacks {} {how} {shown:?}: {r:?}", cmd.join(" ")));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cases} cases wrong; first:\n{}", wrong.len(), wrong[0]);
    assert_eq!(cases, names.len() * 2 * COMMANDS.len());
    assert_eq!(tree(root.path()), before, "nothing under the scratch tree changed");
    for (p, existed) in outside.iter().zip(outside_before) {
        assert_eq!(p.exists(), existed, "{} appeared", p.display());
    }

    // The JSON form: exit code 3 and the diagnostic in the details.
    let r = expect(&cwd, &state, &["--json", "refresh", "--name", "../../../../tmp/x"], 3);
    let doc: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(doc["error"]["exit_code"], 3, "{r:?}");
    assert_eq!(doc["error"]["details"]["diagnostics"][0]["code"], "invalid-name", "{r:?}");
    assert_eq!(doc["error"]["details"]["diagnostics"][0]["path"], "../../../../tmp/x", "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. plan --out

#[test]
fn plan_out_refuses_the_state_directory_and_files_that_are_not_plans() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let state = cwd.join("state");
    expect(cwd, &state, &["apply", "--yes"], 0);
    std::os::unix::fs::symlink(&state, cwd.join("link-to-state")).unwrap();
    std::os::unix::fs::symlink(state.join("stacks/web-app-dev/brand-new.json"), cwd.join("dangling")).unwrap();
    std::fs::write(cwd.join("notes.txt"), "my notes\n").unwrap();
    let before = tree(cwd);

    let inside = [
        "state/stacks/web-app-dev/state.json",
        "state/sim-cloud.json",
        "state/new-plan.json",
        "state",
        "./state/../state/stacks/p.json",
        "link-to-state/stacks/web-app-dev/state.json",
        "link-to-state/fresh.json",
        "dangling",
    ];
    for out in inside {
        let r = expect(cwd, &state, &["plan", "--out", out], 3);
        assert!(r.stderr.contains("inside the state directory"), "{out}: {r:?}");
        // Absolute paths are resolved the same way.
        let abs = cwd.join(out);
        let r = expect(cwd, &state, &["plan", "--out", abs.to_str().unwrap()], 3);
        assert!(r.stderr.contains("inside the state directory"), "{out}: {r:?}");
    }
    let r = expect(cwd, &state, &["plan", "--out", "notes.txt"], 3);
    assert!(r.stderr.contains("refusing to overwrite notes.txt: it is not a plan"), "{r:?}");
    let r = expect(cwd, &state, &["--json", "plan", "--out", "state/x.json"], 3);
    let doc: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(doc["error"]["exit_code"], 3, "{r:?}");
    assert_eq!(tree(cwd), before, "nothing was written");

    // Outside the state directory: a new file, an empty one, and a plan written before.
    expect(cwd, &state, &["plan", "--out", "plan.json"], 0);
    let plan: Value = serde_json::from_slice(&std::fs::read(cwd.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["stack"], "web-app-dev");
    std::fs::write(cwd.join("big.toml"), "vm_size = \"large\"\n").unwrap();
    expect(cwd, &state, &["plan", "--params", "big.toml", "--out", "plan.json"], 2);
    std::fs::write(cwd.join("empty.json"), "").unwrap();
    expect(cwd, &state, &["plan", "--out", "empty.json"], 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Two stacks, one simulated cloud

fn finish(mut child: Child, t0: Instant) -> Run {
    while child.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(180), "the applies did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap().into()
}

/// Two processes apply two stacks over one state directory at once, a few times: every id is
/// handed out once, each stack's resources carry its own tag and match its state; destroying
/// one leaves every resource of the other, whose plan stays empty.
#[test]
fn two_stacks_applied_at_once_get_distinct_ids_and_stay_apart() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        let state = cwd.join("state");
        let t0 = Instant::now();
        let a = konstacks(cwd, &state, 30, &["apply", "--yes", "--name", "site-a"]).spawn().unwrap();
        let b = konstacks(cwd, &state, 30, &["apply", "--yes", "--name", "site-b"]).spawn().unwrap();
        let (ra, rb) = (finish(a, t0), finish(b, t0));
        assert_eq!(ra.code, 0, "round {round}: {ra:?}");
        assert_eq!(rb.code, 0, "round {round}: {rb:?}");

        let cloud = cloud_by_stack(&state);
        assert_eq!(cloud.keys().collect::<Vec<_>>(), ["site-a", "site-b"], "round {round}");
        let mut all = Vec::new();
        for stack in ["site-a", "site-b"] {
            let ids: BTreeSet<String> = cloud[stack].iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
            assert_eq!(ids.len(), 9, "round {round}: {stack}: {ids:?}");
            assert_eq!(state_ids(cwd, &state, stack), ids, "round {round}: state of {stack} matches the cloud");
            all.extend(ids);
        }
        let distinct: BTreeSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), 18, "round {round}: ids handed out twice: {all:?}");

        if round == 0 {
            let r = expect(cwd, &state, &["destroy", "--yes", "--name", "site-a"], 0);
            assert!(r.stdout.contains("Destroy complete: 9 deleted"), "{r:?}");
            let cloud_after = cloud_by_stack(&state);
            assert!(!cloud_after.contains_key("site-a"), "{cloud_after:#?}");
            assert_eq!(cloud_after["site-b"], cloud["site-b"], "site-b's resources are untouched");
            let r = expect(cwd, &state, &["plan", "--name", "site-b"], 0);
            assert!(r.stdout.contains("No changes."), "{r:?}");
            expect(cwd, &state, &["drift", "--name", "site-b"], 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Temporary files of killed processes

/// A pid no process has: above every `pid_max` Linux allows.
const DEAD_PID: u32 = u32::MAX - 1;

#[test]
fn temporary_files_of_killed_processes_are_removed_when_the_stack_is_next_locked() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let state = cwd.join("state");
    expect(cwd, &state, &["apply", "--yes"], 0);
    let stack_dir = state.join("stacks/web-app-dev");
    let me = std::process::id();
    let dead = [
        stack_dir.join(format!(".state.json.tmp-{DEAD_PID}-0")),
        stack_dir.join(format!("state.tmp{DEAD_PID}")),
        stack_dir.join(format!("lock.{DEAD_PID}.0badc0de0badc0de.tmp")),
        state.join(format!(".sim-cloud.json.tmp-{DEAD_PID}-4")),
    ];
    // This test process is running: what looks like its files must stay.
    let live =
        [stack_dir.join(format!(".state.json.tmp-{me}-0")), stack_dir.join(format!("lock.{me}.0badc0de0badc0de.tmp"))];
    for p in dead.iter().chain(&live) {
        std::fs::write(p, b"{\"half\": ").unwrap();
    }
    let r = expect(cwd, &state, &["apply", "--yes"], 0);
    assert!(r.stdout.contains("No changes."), "{r:?}");
    if Path::new("/proc/self").exists() {
        for p in &dead {
            assert!(!p.exists(), "{} was left", p.display());
        }
    }
    for p in &live {
        assert!(p.exists(), "{} was removed", p.display());
    }
    // What is left is state and the cloud, and both still read.
    expect(cwd, &state, &["plan"], 0);
}

// ---------------------------------------------------------------------------------------------
// 5. JSON parse errors

#[test]
fn json_parse_errors_are_json_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let state = cwd.join("state");
    let cases: &[(&[&str], &str)] = &[
        (&["--json", "plan", "--bogus"], "unexpected argument '--bogus' found"),
        (&["plan", "--json", "--stage"], "a value is required for '--stage <STAGE>'"),
        (&["--json", "no-such-command"], "unrecognized subcommand 'no-such-command'"),
        (&["--json"], "'konstacks' requires a subcommand"),
        (&["state", "--json"], "'konstacks state' requires a subcommand"),
        (&["--json", "plan", "--stage", "qa"], "unknown stage `qa`"),
        (&["--json", "state", "show"], "the following required arguments were not provided"),
        (&["--json", "cost", "--markup", "lots"], "invalid value 'lots' for '--markup <PERCENT>'"),
    ];
    for (args, fragment) in cases {
        let r = expect(cwd, &state, args, 1);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one JSON line on stdout: {r:?}");
        let doc: Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{args:?}: {e}: {r:?}"));
        let err = doc["error"].as_object().unwrap_or_else(|| panic!("{args:?}: {r:?}"));
        assert_eq!(err.len(), 2, "{args:?}: exit_code and message: {r:?}");
        assert_eq!(err["exit_code"], 1, "{args:?}: {r:?}");
        let message = err["message"].as_str().unwrap();
        assert!(message.contains(fragment) || r.stderr.contains(fragment), "{args:?} lacks `{fragment}`: {r:?}");
        assert!(!message.is_empty() && !message.starts_with("error:"), "{args:?}: {message}");
        assert!(!r.stderr.is_empty(), "{args:?}: the human text stays on stderr: {r:?}");
    }
    assert!(!state.exists(), "no parse error touched the state directory");

    // Without --json, stdout stays empty; --help and --version are not errors.
    let r = expect(cwd, &state, &["plan", "--bogus"], 1);
    assert!(r.stdout.is_empty() && r.stderr.contains("--bogus"), "{r:?}");
    let r = expect(cwd, &state, &["--json", "--help"], 0);
    assert!(r.stdout.contains("Usage:") && !r.stdout.starts_with('{'), "{r:?}");
    let r = expect(cwd, &state, &["--json", "--version"], 0);
    assert!(r.stdout.starts_with("konstacks "), "{r:?}");
    // After `--`, `--json` is a value, not the option.
    let r = expect(cwd, &state, &["output", "--bogus", "--", "--json"], 1);
    assert!(r.stdout.is_empty(), "{r:?}");
}
