//! State kept in S3 instead of the state directory (`--state-url` / KONSTACKS_STATE_URL), as the
//! generated CI workflow uses it: the binary applies, re-plans empty, lists previews and
//! destroys with every state object in moto's S3 and nothing under the local state directory.
//! Needs the moto server `scripts/test-aws.sh` starts (KONSTACKS_MOTO_ENDPOINT).
#![cfg(all(feature = "cli", feature = "s3-state"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

#[path = "support/binary.rs"]
mod binary;

use binary::{run_with, Run};

const BUCKET: &str = "konstacks-cli-state";

fn endpoint() -> String {
    std::env::var("KONSTACKS_MOTO_ENDPOINT").expect("KONSTACKS_MOTO_ENDPOINT: run scripts/test-aws.sh")
}

/// One plain HTTP request to moto (it does not check signatures); the status line and body.
fn http(method: &str, path: &str) -> String {
    let ep = endpoint();
    let host = ep.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut s = TcpStream::connect(&host).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn run(dir: &Path, args: &[&str], code: i32) -> Run {
    run_with(dir, args, code, |cmd| {
        cmd.arg("--state-dir")
            .arg(dir.join("state"))
            .env("KONSTACKS_STATE_URL", format!("s3://{BUCKET}/teams/web"))
            .env("AWS_ENDPOINT_URL_S3", endpoint())
            .env("AWS_ACCESS_KEY_ID", "konstacks-state-test")
            .env("AWS_SECRET_ACCESS_KEY", "konstacks-state-test")
            .env("AWS_REGION", "eu-central-1")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE");
    })
}

#[test]
fn state_lives_in_s3_when_a_state_url_is_given() {
    let created = http("PUT", &format!("/{BUCKET}"));
    assert!(created.starts_with("HTTP/1.1 200"), "{created}");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let t = ["--template", "web-app"];
    let with = |cmd: &[&'static str]| -> Vec<&str> { cmd.iter().copied().chain(t).collect() };

    run(dir, &with(&["apply", "--yes"]), 0);
    let listing = http("GET", &format!("/{BUCKET}?list-type=2&prefix=teams/web/"));
    assert!(listing.contains("teams/web/web-app-dev/"), "no state object in S3:\n{listing}");
    assert!(!dir.join("state/stacks").exists(), "state was written locally too");
    // A second run (a later CI job) reads it back: nothing to change.
    run(dir, &with(&["plan"]), 0);
    run(dir, &with(&["--budget", "200", "preview", "up", "--branch", "feature/s3"]), 0);
    let list = run(dir, &with(&["--json", "preview", "list"]), 0);
    assert!(list.stdout.contains("feature/s3"), "{list:?}");
    run(dir, &with(&["preview", "down", "--branch", "feature/s3"]), 0);
    run(dir, &with(&["destroy", "--yes"]), 0);
    let plan = run(dir, &with(&["--json", "plan"]), 2);
    assert!(plan.stdout.contains("\"create\""), "{plan:?}");

    let bad = run_with(dir, &with(&["plan"]), 3, |cmd| {
        cmd.env("KONSTACKS_STATE_URL", "https://not-s3/x");
    });
    assert!(bad.stderr.contains("s3://"), "{bad:?}");
}
