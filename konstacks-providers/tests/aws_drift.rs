//! Drift end to end on moto: the web-app stack is applied through the engine, then changed
//! behind Konstacks' back with the raw AWS SDK (an extra ingress rule, the database's backup
//! retention, an instance resized, an instance terminated). `drift` must show every change field
//! by field, `apply` with refresh must revert them all, and drift must be clean afterwards. Also:
//! the IAM policy `iam_policy` generates for a plan covers every API operation the apply made.
//!
//! Run with: bash scripts/test-aws.sh (it starts moto and sets KONSTACKS_MOTO_ENDPOINT).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common_aws;

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_ec2::types::{AttributeValue, IpPermission, IpRange};
use common_aws::{engine, provider, raw, web_app, STACK};
use konstacks_core::engine::{ApplyOptions, DriftStatus, PlanOptions};
use konstacks_core::state::MemoryBackend;
use konstacks_providers::aws::iam::iam_policy;

/// Every `service:Action` of a policy.
fn policy_actions(policy: &serde_json::Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()))
        .collect()
}

/// The policy's action for an SDK operation name (`DescribeDBInstances` is RDS,
/// `DescribeTargetGroups` Elastic Load Balancing, the rest EC2).
fn action_of(op: &str) -> String {
    const RDS: &[&str] = &["DBInstance", "DBSubnetGroup", "TagsToResource", "TagsFromResource"];
    const ELB: &[&str] = &[
        "TargetGroup",
        "TargetHealth",
        "LoadBalancer",
        "Listener",
        "RegisterTargets",
        "CreateRule",
        "ModifyRule",
        "DeleteRule",
        "DescribeRules",
        "SetSubnets",
        "SetSecurityGroups",
        "AddTags",
        "RemoveTags",
    ];
    if RDS.iter().any(|r| op.contains(r)) {
        format!("rds:{op}")
    } else if ELB.iter().any(|e| op.contains(e)) {
        format!("elasticloadbalancing:{op}")
    } else {
        format!("ec2:{op}")
    }
}

fn assert_covered(policy: &serde_json::Value, calls: &konstacks_providers::aws::ApiCalls, what: &str) {
    let allowed = policy_actions(policy);
    let missing: Vec<String> =
        calls.by_operation.keys().map(|op| action_of(op)).filter(|a| !allowed.contains(a)).collect();
    assert!(missing.is_empty(), "{what}: operations called but not in the IAM policy: {missing:?}\n{policy:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_covers_every_call_of_apply_and_destroy() {
    const ACCOUNT: &str = "100000000102";
    let aws = provider(ACCOUNT).await;
    let engine = engine(&aws, Arc::new(MemoryBackend::new()));

    let s = engine.synth(&web_app(1)).unwrap();
    let plan = engine.plan(&s, &PlanOptions::default()).await.unwrap();
    let policy = iam_policy(&plan);
    aws.reset_api_calls();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    assert!(aws.api_calls().total > 0);
    assert_covered(&policy, &aws.api_calls(), "create");

    // A second VM (in-place updates are covered by the drift test's revert).
    let s2 = engine.synth(&web_app(2)).unwrap();
    let plan = engine.plan(&s2, &PlanOptions::refreshing()).await.unwrap();
    let policy = iam_policy(&plan);
    aws.reset_api_calls();
    engine.apply(&s2, &ApplyOptions { refresh: true, ..Default::default() }).await.unwrap();
    assert_covered(&policy, &aws.api_calls(), "update");

    let plan = engine.plan_destroy(STACK).await.unwrap();
    let policy = iam_policy(&plan);
    aws.reset_api_calls();
    engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
    assert_covered(&policy, &aws.api_calls(), "destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_made_with_the_sdk_is_shown_and_reverted() {
    const ACCOUNT: &str = "100000000111";
    let aws = provider(ACCOUNT).await;
    let engine = engine(&aws, Arc::new(MemoryBackend::new()));
    let (ec2, rds) = raw(ACCOUNT).await;

    let s = engine.synth(&web_app(2)).unwrap();
    engine.apply(&s, &ApplyOptions::default()).await.unwrap();
    let clean = engine.drift(STACK).await.unwrap();
    assert!(clean.is_clean(), "{}", clean.render());
    let state = engine.state(STACK).await.unwrap();
    let id = |path: &str| state.resources[path].id.clone();

    // 1. A port opened by hand on the web security group.
    ec2.authorize_security_group_ingress()
        .group_id(id("network/web-fw"))
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(3389)
                .to_port(3389)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    // 2. Backups changed on the database.
    rds.modify_db_instance()
        .db_instance_identifier(id("data/postgres"))
        .backup_retention_period(9)
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    // 3. An instance resized (stop, modify, start).
    let web1 = id("app/web-1");
    ec2.stop_instances().instance_ids(&web1).send().await.unwrap();
    ec2.modify_instance_attribute()
        .instance_id(&web1)
        .instance_type(AttributeValue::builder().value("m5.large").build())
        .send()
        .await
        .unwrap();
    ec2.start_instances().instance_ids(&web1).send().await.unwrap();
    // 4. An instance terminated.
    ec2.terminate_instances().instance_ids(id("app/web-2")).send().await.unwrap();

    let drift = engine.drift(STACK).await.unwrap();
    let text = drift.render();
    eprintln!("{text}");
    let item = |path: &str| drift.items.iter().find(|i| i.path == path).unwrap_or_else(|| panic!("{path}:\n{text}"));
    let fields = |path: &str| item(path).fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    assert!(fields("network/web-fw").iter().any(|f| f.contains("ingress")), "{text}");
    let fw = item("network/web-fw").fields.iter().find(|f| f.name.contains("ingress")).unwrap();
    assert!(fw.cloud.to_string().contains("3389") && !fw.state.to_string().contains("3389"), "{text}");
    assert!(fields("data/postgres").iter().any(|f| f.contains("backup")), "{text}");
    assert!(item("data/postgres").fields.iter().any(|f| f.cloud.to_string().contains('9')), "{text}");
    assert!(fields("app/web-1").iter().any(|f| f.contains("size")), "{text}");
    assert_eq!(item("app/web-2").status, DriftStatus::Deleted, "{text}");
    assert_eq!(drift.items.len(), 4, "exactly the four changes drifted:\n{text}");
    let field_count: usize = drift.items.iter().map(|i| i.fields.len()).sum();
    eprintln!("drift: {} resources, {field_count} fields changed, 1 deleted", drift.items.len());

    // Apply with refresh brings the cloud back to the stack.
    let plan = engine.plan(&s, &PlanOptions::refreshing()).await.unwrap();
    eprintln!("{}", plan.render(false));
    let policy = iam_policy(&plan);
    aws.reset_api_calls();
    engine.apply(&s, &ApplyOptions { refresh: true, ..Default::default() }).await.unwrap();
    assert_covered(&policy, &aws.api_calls(), "revert of drift (updates and a create)");
    let after = engine.drift(STACK).await.unwrap();
    assert!(after.is_clean(), "{}", after.render());
    assert!(engine.plan(&s, &PlanOptions::refreshing()).await.unwrap().is_empty());

    // What moto really holds now.
    let state = engine.state(STACK).await.unwrap();
    let g = ec2.describe_security_groups().group_ids(&state.resources["network/web-fw"].id).send().await.unwrap();
    let ports: Vec<i32> = g.security_groups()[0].ip_permissions().iter().filter_map(|p| p.from_port()).collect();
    assert!(!ports.contains(&3389), "{ports:?}");
    let db = rds.describe_db_instances().db_instance_identifier(id("data/postgres")).send().await.unwrap();
    assert_eq!(db.db_instances()[0].backup_retention_period(), Some(1));
    let vm = ec2.describe_instances().instance_ids(&web1).send().await.unwrap();
    let vm = &vm.reservations()[0].instances()[0];
    assert_ne!(vm.instance_type().map(|t| t.as_str().to_string()).as_deref(), Some("m5.large"));
    assert_ne!(state.resources["app/web-2"].id, id("app/web-2"), "the terminated VM was created again");

    engine.destroy(STACK, &ApplyOptions::default()).await.unwrap();
}
