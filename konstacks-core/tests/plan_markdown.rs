//! The plan as a pull-request comment: a snapshot of the Markdown of a plan that updates a VM,
//! replaces a subnet and the database in it (a data-loss warning) and changes a secret, which
//! never shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use konstacks_core::engine::{ApplyOptions, Engine, PlanOptions};
use konstacks_core::model::*;
use konstacks_core::plan::markdown::comment_marker;
use konstacks_core::secret::Secret;
use konstacks_core::sim::{SimCloud, SimConfig};
use konstacks_core::state::MemoryBackend;

const FIRST_PASSWORD: &str = "first-Secret-value-1234567890";
const SECOND_PASSWORD: &str = "second-Secret-value-0987654321";

fn stack(size: VmSize, private_cidr: &str, password: &str) -> Stack {
    let stack = Stack::new("shop", Placement::within(Jurisdiction::Eu), Stage::Prod);
    let net = stack.scope("network");
    let vpc = net.add("vpc", Vpc::new("10.0.0.0/16"));
    let public = net.add("public", Subnet::new(vpc, "10.0.1.0/24").public());
    let private_a = net.add("private-a", Subnet::new(vpc, private_cidr).zone(0));
    let private_b = net.add("private-b", Subnet::new(vpc, "10.0.3.0/24").zone(1));
    let web_fw = net.add("web-fw", Firewall::new(vpc).allow(Ingress::tcp(443).from_anywhere()));
    let db_fw = net.add("db-fw", Firewall::new(vpc).allow(Ingress::tcp(5432).from(web_fw)));
    let db = stack.add(
        "db",
        Database::postgres("16", DbSize::Small, [private_a, private_b])
            .firewall(db_fw)
            .password(Secret::new(password.to_string())),
    );
    let web = stack.add(
        "web",
        Vm::new(Image::UbuntuLts, size, public)
            .firewall(web_fw)
            .public_ip(true)
            .env("DATABASE_HOST", db.host())
            .env("DATABASE_PASSWORD", db.password()),
    );
    stack.export("url", web.public_ip());
    stack
}

#[tokio::test]
async fn markdown_plan_shows_counts_cost_data_loss_and_never_a_secret() {
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(sim.provider()).with_sealer(None);
    let first = engine.synth(&stack(VmSize::Small, "10.0.2.0/24", FIRST_PASSWORD)).unwrap();
    engine.apply(&first, &ApplyOptions::default()).await.unwrap();

    let empty = engine.plan(&first, &PlanOptions::default()).await.unwrap().render_markdown();
    assert!(empty.starts_with(&comment_marker("shop")), "{empty}");
    assert!(empty.contains("No changes."), "{empty}");

    let next = engine.synth(&stack(VmSize::Medium, "10.0.4.0/24", SECOND_PASSWORD)).unwrap();
    let plan = engine.plan(&next, &PlanOptions::default()).await.unwrap();
    let md = plan.render_markdown();
    for secret in [FIRST_PASSWORD, SECOND_PASSWORD] {
        assert!(!md.contains(secret), "a secret reached the Markdown plan:\n{md}");
    }
    assert!(md.contains("**Data loss:**") && md.contains("`db`"), "{md}");
    insta::assert_snapshot!(md);
}
