//! The compliance, cost, budget and parity commands through the real binary: a GDPR plan shows
//! its monthly cost and compliance result, an EU-only pack refuses a US region before any cloud
//! call, an agency file with three clients yields a per-client bill, a budget cap refuses an
//! expensive plan naming its biggest contributors, and dev/staging/prod parity is checked.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_konstacks"))
        .current_dir(dir)
        .args(["--state-dir", ".konstacks", "--sim-latency-ms", "0"])
        .args(args)
        .env_remove("KONSTACKS_SECRET_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn gdpr_plan_shows_cost_and_compliance() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("g.toml"),
        "data_classification = \"personal\"\n[app]\napp_image = \"ghcr.io/acme/crm:2\"\n",
    )
    .unwrap();
    let (code, out, err) = run(d.path(), &["plan", "--template", "gdpr-saas", "--params", "g.toml", "--stage", "prod"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("Monthly cost: $0.00 -> $"), "{out}");
    assert!(out.contains("Compliance (gdpr): 0 error(s)"), "{out}");
    assert!(out.contains("# $0.00 -> $"), "per-change cost: {out}");
}

#[test]
fn an_eu_only_pack_refuses_a_us_region_before_any_cloud_call() {
    let d = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        d.path(),
        &["apply", "--yes", "--template", "web-app", "--pack", "gdpr", "--region", "us-east", "--jurisdiction", "us"],
    );
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("compliance check failed") && err.contains("us-east") && err.contains("eu-central"), "{err}");
    assert!(!d.path().join(".konstacks/sim-cloud.json").exists(), "nothing may reach the cloud");
    let (code, report, _) = run(
        d.path(),
        &[
            "check",
            "--report",
            "--template",
            "web-app",
            "--pack",
            "gdpr",
            "--region",
            "us-east",
            "--jurisdiction",
            "us",
        ],
    );
    assert_eq!(code, 5);
    assert!(report.contains("gdpr/eu-residency") && report.contains("FAIL"), "{report}");
}

#[test]
fn suppressions_need_a_reason_and_show_in_the_report() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("s.toml"), "[[suppress]]\nrule_id = \"gdpr/eu-residency\"\npath = \"**\"\nreason = \"US pilot approved by the DPO on 2026-11-20\"\n").unwrap();
    let (code, out, err) = run(
        d.path(),
        &[
            "check",
            "--template",
            "web-app",
            "--pack",
            "gdpr",
            "--region",
            "us-east",
            "--jurisdiction",
            "us",
            "--suppressions",
            "s.toml",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("US pilot approved"), "{out}");
    std::fs::write(
        d.path().join("s.toml"),
        "[[suppress]]\nrule_id = \"gdpr/eu-residency\"\npath = \"**\"\nreason = \"\"\n",
    )
    .unwrap();
    let (code, out, _) = run(
        d.path(),
        &[
            "check",
            "--template",
            "web-app",
            "--pack",
            "gdpr",
            "--region",
            "us-east",
            "--jurisdiction",
            "us",
            "--suppressions",
            "s.toml",
        ],
    );
    assert_eq!(code, 5, "{out}");
}

#[test]
fn an_agency_file_with_three_clients_yields_a_per_client_bill() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("clients.toml"),
        "[[clients]]\nname = \"bakery\"\nsize = \"micro\"\ndatabase = true\n\n[[clients]]\nname = \"dentist\"\nsize = \"small\"\n\n[[clients]]\nname = \"law-firm\"\nsize = \"small\"\ndatabase = true\n",
    )
    .unwrap();
    let (code, csv, err) = run(
        d.path(),
        &[
            "cost",
            "--template",
            "agency-sites",
            "--params",
            "clients.toml",
            "--bill",
            "client",
            "--markup",
            "20",
            "--csv",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    for client in ["bakery", "dentist", "law-firm"] {
        assert!(lines.iter().any(|l| l.starts_with(client)), "{client} missing:\n{csv}");
    }
    insta::assert_snapshot!("agency_bill_csv", csv);
}

#[test]
fn a_plan_over_budget_is_refused_naming_the_biggest_contributors() {
    let d = tempfile::tempdir().unwrap();
    let (code, out, err) = run(d.path(), &["plan", "--template", "web-app", "--stage", "prod", "--budget", "50"]);
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("budget cap of $50.00") && err.contains("data/postgres"), "{err}");
    assert!(!d.path().join(".konstacks/sim-cloud.json").exists());
}

#[test]
fn parity_of_the_three_stages() {
    let d = tempfile::tempdir().unwrap();
    let (code, out, err) = run(d.path(), &["parity", "--template", "web-app"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dev") && out.contains("prod"), "{out}");
}
