//! The `konstacks` binary on AWS without writing Rust: images pinned to the account's own AMIs
//! from the command line, and bad pins refused before any AWS call.
//!
//! `bad_image_pins_are_refused_before_any_call` needs nothing; the moto test needs the moto
//! server that `scripts/test-aws.sh` starts (KONSTACKS_MOTO_ENDPOINT), which has no public
//! images at all: the default Ubuntu lookup finds nothing there, as in an account restricted to
//! golden AMIs.
#![cfg(all(feature = "cli", feature = "aws"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const REGION: &str = "eu-central-1";
const AMI: &str = "ami-0123456789abcdef0";

#[path = "support/binary.rs"]
mod binary;

use binary::{run_with, Run};

/// Run the binary on AWS at `endpoint`, with test credentials and a sealing key, and insist on
/// the exit `code`.
fn run(dir: &Path, endpoint: &str, args: &[&str], code: i32) -> Run {
    run_with(dir, args, code, |cmd| {
        cmd.arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--no-color", "--provider", "aws", "--region", REGION])
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "konstacks-cli-test")
            .env("AWS_SECRET_ACCESS_KEY", "konstacks-cli-test")
            .env("AWS_REGION", REGION)
            .env("KONSTACKS_SECRET_KEY", "a passphrase for the aws cli test")
            .env_remove("KONSTACKS_AWS_IMAGES")
            .env_remove("AWS_PROFILE");
    })
}

fn params(dir: &Path) -> String {
    let path = dir.join("shop.toml");
    std::fs::write(
        &path,
        "app_image = \"ghcr.io/example/shop:1\"\nadmin_cidr = \"198.51.100.0/24\"\nssh_keys = [\"ssh-ed25519 \
         AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f admin@example\"]\n",
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn bad_image_pins_are_refused_before_any_call() {
    // An endpoint that counts the connections made to it: there must be none.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let watcher = std::thread::spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            if let Ok((mut s, _)) = listener.accept() {
                counter.fetch_add(1, Ordering::Relaxed);
                let _ = s.read(&mut [0u8; 64]);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let p = params(dir.path());
    let r = run(
        dir.path(),
        &endpoint,
        &["plan", "--template", "web-app", "--params", &p, "--image", "ubuntu-lts", "--image", "golden=ami-zz"],
        3,
    );
    assert!(r.stderr.contains("`ubuntu-lts` is not `slug=ami-id`"), "{r:?}");
    assert!(r.stderr.contains("`ami-zz` in `golden=ami-zz` is not an AMI id"), "every bad pin at once: {r:?}");

    // Pins are for AWS only.
    let pin = format!("ubuntu-lts={AMI}");
    let r = run_with(dir.path(), &["plan", "--template", "web-app", "--params", &p, "--image", &pin], 3, |cmd| {
        cmd.arg("--state-dir").arg(dir.path().join("state"));
    });
    assert!(r.stderr.contains("--image pins AMIs of the aws provider"), "{r:?}");

    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 0, "no connection to AWS");
    let state = dir.path().join("state");
    let written = std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written, 0, "nothing written under {}", state.display());
}

/// The instances moto holds, as its EC2 query API answers `DescribeInstances` (XML).
fn describe_instances(endpoint: &str) -> String {
    let script = "import sys, urllib.request\n\
        req = urllib.request.Request(sys.argv[1], data=b'Action=DescribeInstances&Version=2016-11-15', headers={\n\
            'Content-Type': 'application/x-www-form-urlencoded',\n\
            'Authorization': 'AWS4-HMAC-SHA256 Credential=konstacks-cli-test/20261205/eu-central-1/ec2/aws4_request, \
        SignedHeaders=host, Signature=0'})\n\
        print(urllib.request.urlopen(req, timeout=10).read().decode())\n";
    let out = Command::new("python3").args(["-c", script, endpoint]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_pinned_image_launches_where_the_lookup_finds_none_on_moto() {
    let Ok(endpoint) = std::env::var("KONSTACKS_MOTO_ENDPOINT") else {
        panic!("KONSTACKS_MOTO_ENDPOINT is not set: run this test with `bash scripts/test-aws.sh`, which starts moto");
    };
    let dir = tempfile::tempdir().unwrap();
    let p = params(dir.path());
    // A name of this run: moto keeps what an earlier, failed run left behind.
    let name = format!("pinned-{}", std::process::id());
    let base = ["--template", "web-app", "--name", name.as_str(), "--params", p.as_str()];

    // Without a pin the default lookup finds no Ubuntu image: the error says how to pin one.
    let r = run(dir.path(), &endpoint, &[&["apply", "--yes"][..], &base[..]].concat(), 1);
    assert!(r.stderr.contains("--image ubuntu-lts=ami-"), "the error names the fix: {r:?}");

    // With the pin, the same apply converges (what the first run created is kept and reused).
    let pin = format!("ubuntu-lts={AMI}");
    run(dir.path(), &endpoint, &[&["apply", "--yes", "--image", pin.as_str()][..], &base[..]].concat(), 0);
    let xml = describe_instances(&endpoint);
    assert!(xml.contains(&format!("<value>{name}</value>")), "an instance of the stack: {xml}");
    let images: Vec<&str> = xml.split("<imageId>").skip(1).filter_map(|s| s.split("</imageId>").next()).collect();
    assert!(!images.is_empty() && images.iter().all(|i| *i == AMI), "launched from the pin: {images:?}");
    let r = run(dir.path(), &endpoint, &[&["plan", "--image", pin.as_str()][..], &base[..]].concat(), 0);
    assert!(r.stdout.contains("No changes"), "{r:?}");

    run(dir.path(), &endpoint, &[&["destroy", "--yes", "--image", pin.as_str()][..], &base[..]].concat(), 0);
}
