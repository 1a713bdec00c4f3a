//! The least-privilege IAM policy of a plan: the exact EC2, RDS and ELBv2 API actions this backend calls
//! to carry the plan out (including the clean-up calls of a create that fails half way, and the
//! reads that refresh, drift detection and adoption after a crash always make).
//!
//! This module owns only the mapping from (kind, action) to API actions; it must be kept in step
//! with `network.rs`, `compute.rs` and `database.rs` (the moto test `iam_policy_covers_every_call`
//! fails when a call is missing). It never talks to AWS.

use std::collections::{BTreeMap, BTreeSet};

use konstacks_core::kind::Kind;
use konstacks_core::plan::{Action, Plan};
use serde_json::{json, Value};

use super::PROVIDER_NAME;

/// Reads of a kind: refresh, drift, adoption of an interrupted create, and the waits of every
/// mutating operation.
fn reads(kind: Kind) -> &'static [&'static str] {
    match kind.as_str() {
        "vpc" => &["ec2:DescribeVpcs", "ec2:DescribeInternetGateways", "ec2:DescribeRouteTables"],
        "subnet" => &["ec2:DescribeSubnets", "ec2:DescribeRouteTables", "ec2:DescribeAvailabilityZones"],
        "firewall" => &["ec2:DescribeSecurityGroups"],
        "vm" => &["ec2:DescribeInstances", "ec2:DescribeImages"],
        "database" => &["rds:DescribeDBInstances"],
        "bucket" => BUCKET_READS,
        "cache" => CACHE_READS,
        "load_balancer" => LB_READS,
        "dns_zone" => ROUTE53_READ,
        "dns_record" => ROUTE53_READ,
        "certificate" => {
            &["acm:DescribeCertificate", "acm:ListCertificates", "acm:ListTagsForCertificate", "route53:GetHostedZone"]
        }
        _ => &[],
    }
}

/// Reading zones and the record sets in them (records are found through their zone).
const ROUTE53_READ: &[&str] = &[
    "route53:GetHostedZone",
    "route53:ListHostedZones",
    "route53:ListResourceRecordSets",
    "route53:ListTagsForResources",
];

/// Writing record sets and waiting for the change to be in sync.
const ROUTE53_WRITE: &[&str] = &["route53:ChangeResourceRecordSets", "route53:GetChange"];

/// Writing and removing a certificate's validation records.
const VALIDATION_RECORDS: &[&str] = &[
    "route53:GetHostedZone",
    "route53:ListResourceRecordSets",
    "route53:ChangeResourceRecordSets",
    "route53:GetChange",
];

/// Everything a read of a load balancer asks (the load balancer, its listeners, rules,
/// certificates, target groups with their attributes, tags and target health).
const LB_READS: &[&str] = &[
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeListenerCertificates",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetHealth",
];

/// Taking a load balancer down: it, then its target groups (also the clean-up of a failed create).
const LB_TEARDOWN: &[&str] = &["elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup"];

/// Target groups, listeners and rules as create and update write them.
const LB_PARTS: &[&str] = &[
    "ec2:DescribeSubnets",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:AddListenerCertificates",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:AddTags",
];

/// The public route table and internet gateway a VPC owns (made on VPC create, and again on
/// demand when a subnet turns public).
const PUBLIC_ROUTING: &[&str] = &[
    "ec2:DescribeVpcs",
    "ec2:DescribeRouteTables",
    "ec2:DescribeInternetGateways",
    "ec2:CreateInternetGateway",
    "ec2:AttachInternetGateway",
    "ec2:CreateRouteTable",
    "ec2:CreateRoute",
    "ec2:CreateTags",
];

/// Taking a VPC's helpers down (on delete, and when a create fails half way).
const VPC_TEARDOWN: &[&str] = &[
    "ec2:DescribeRouteTables",
    "ec2:DisassociateRouteTable",
    "ec2:DeleteRouteTable",
    "ec2:DescribeInternetGateways",
    "ec2:DetachInternetGateway",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteVpc",
];

/// Associating a subnet with the public route table or moving it back to the main one.
const SUBNET_ROUTING: &[&str] = &[
    "ec2:DescribeRouteTables",
    "ec2:AssociateRouteTable",
    "ec2:ReplaceRouteTableAssociation",
    "ec2:DisassociateRouteTable",
];

const RULES: &[&str] = &[
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupEgress",
];

/// Tags changed in place (`sync_ec2_tags`).
const EC2_RETAG: &[&str] = &["ec2:CreateTags", "ec2:DeleteTags"];

/// Reads of a bucket (by name, and by stack through the account's bucket list).
const BUCKET_READS: &[&str] = &[
    "s3:ListAllMyBuckets",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetBucketCORS",
    "s3:GetBucketTagging",
    "s3:GetBucketPolicy",
    "s3:GetBucketPublicAccessBlock",
];

/// Everything a bucket's settings are written with (lifecycle and CORS deletes are `Put*` in IAM).
const BUCKET_SETTINGS: &[&str] = &[
    "s3:PutBucketTagging",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutEncryptionConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketCORS",
];

/// Reads of a cache: the replication group, its member clusters (version, subnet group, security
/// groups), its subnet group and its tags.
const CACHE_READS: &[&str] = &[
    "elasticache:DescribeReplicationGroups",
    "elasticache:DescribeCacheClusters",
    "elasticache:DescribeCacheSubnetGroups",
    "elasticache:ListTagsForResource",
];

fn creates(kind: Kind) -> Vec<&'static str> {
    match kind.as_str() {
        "vpc" => {
            [&["ec2:CreateVpc", "ec2:CreateTags", "ec2:ModifyVpcAttribute"][..], PUBLIC_ROUTING, VPC_TEARDOWN].concat()
        }
        "subnet" => [
            &["ec2:CreateSubnet", "ec2:CreateTags", "ec2:DescribeAvailabilityZones", "ec2:DeleteSubnet"][..],
            SUBNET_ROUTING,
            PUBLIC_ROUTING,
        ]
        .concat(),
        "firewall" => [
            &["ec2:CreateSecurityGroup", "ec2:CreateTags", "ec2:DescribeSecurityGroups", "ec2:DeleteSecurityGroup"][..],
            RULES,
        ]
        .concat(),
        "vm" => vec!["ec2:DescribeImages", "ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeInstances"],
        "database" => vec![
            "rds:CreateDBSubnetGroup",
            "rds:ModifyDBSubnetGroup",
            "rds:CreateDBInstance",
            // RDS checks this on every create that carries tags.
            "rds:AddTagsToResource",
            "rds:DescribeDBInstances",
            "rds:DeleteDBSubnetGroup",
        ],
        "load_balancer" => [&["elasticloadbalancing:CreateLoadBalancer"][..], LB_PARTS, LB_READS, LB_TEARDOWN].concat(),
        // A create that fails half way deletes the new, empty bucket again.
        "bucket" => [&["s3:CreateBucket", "s3:ListBucket", "s3:DeleteBucket"][..], BUCKET_SETTINGS].concat(),
        "cache" => vec![
            "elasticache:CreateCacheSubnetGroup",
            "elasticache:ModifyCacheSubnetGroup",
            "elasticache:CreateReplicationGroup",
            "elasticache:AddTagsToResource",
            "elasticache:DeleteReplicationGroup",
            "elasticache:DeleteCacheSubnetGroup",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs",
        ],
        "dns_zone" => vec![
            "route53:CreateHostedZone",
            "route53:ChangeTagsForResource",
            "route53:GetChange",
            "route53:ListHostedZones",
            "route53:DeleteHostedZone",
        ],
        // An alias finds its load balancer's canonical hosted zone.
        "dns_record" => [ROUTE53_WRITE, &["elasticloadbalancing:DescribeLoadBalancers"][..]].concat(),
        "certificate" => {
            [&["acm:RequestCertificate", "acm:AddTagsToCertificate", "acm:DeleteCertificate"][..], VALIDATION_RECORDS]
                .concat()
        }
        _ => Vec::new(),
    }
}

fn updates(kind: Kind) -> Vec<&'static str> {
    match kind.as_str() {
        "vpc" => [&["ec2:DescribeVpcs"][..], EC2_RETAG].concat(),
        "subnet" => [&["ec2:DescribeSubnets"][..], SUBNET_ROUTING, PUBLIC_ROUTING, EC2_RETAG].concat(),
        "firewall" => [&["ec2:DescribeSecurityGroups"][..], RULES, EC2_RETAG].concat(),
        "vm" => [
            &["ec2:DescribeInstances", "ec2:StopInstances", "ec2:ModifyInstanceAttribute", "ec2:StartInstances"][..],
            EC2_RETAG,
        ]
        .concat(),
        "database" => vec![
            "rds:DescribeDBInstances",
            "rds:ModifyDBInstance",
            "rds:AddTagsToResource",
            "rds:RemoveTagsFromResource",
        ],
        "load_balancer" => [
            &[
                "elasticloadbalancing:SetSecurityGroups",
                "elasticloadbalancing:SetSubnets",
                "elasticloadbalancing:RemoveTags",
                "elasticloadbalancing:ModifyTargetGroup",
                "elasticloadbalancing:DeregisterTargets",
                "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:RemoveListenerCertificates",
                "elasticloadbalancing:ModifyRule",
                "elasticloadbalancing:DeleteRule",
                "elasticloadbalancing:DeleteTargetGroup",
            ][..],
            LB_PARTS,
            LB_READS,
        ]
        .concat(),
        "dns_zone" => vec!["route53:ChangeTagsForResource"],
        "bucket" => BUCKET_SETTINGS.to_vec(),
        "cache" => vec![
            "elasticache:ModifyReplicationGroup",
            "elasticache:IncreaseReplicaCount",
            "elasticache:DecreaseReplicaCount",
            "elasticache:AddTagsToResource",
            "elasticache:RemoveTagsFromResource",
            "ec2:DescribeSecurityGroups",
        ],
        "dns_record" => [ROUTE53_WRITE, &["elasticloadbalancing:DescribeLoadBalancers"][..]].concat(),
        "certificate" => vec!["acm:AddTagsToCertificate", "acm:RemoveTagsFromCertificate"],
        _ => Vec::new(),
    }
}

fn deletes(kind: Kind) -> Vec<&'static str> {
    match kind.as_str() {
        "vpc" => [&["ec2:DescribeVpcs", "ec2:DescribeSubnets"][..], VPC_TEARDOWN].concat(),
        "subnet" => vec!["ec2:DeleteSubnet"],
        "firewall" => vec!["ec2:DeleteSecurityGroup"],
        // A VM that is a load balancer target is refused: its target groups are checked first.
        "vm" => vec![
            "ec2:TerminateInstances",
            "ec2:DescribeInstances",
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetHealth",
        ],
        "database" => vec!["rds:DescribeDBInstances", "rds:DeleteDBInstance", "rds:DeleteDBSubnetGroup"],
        "load_balancer" => [LB_READS, LB_TEARDOWN].concat(),
        // The certificate validation records kept in the zone go with it.
        "dns_zone" => [&["route53:DeleteHostedZone"][..], ROUTE53_WRITE].concat(),
        "bucket" => vec!["s3:DeleteBucket"],
        "cache" => vec!["elasticache:DeleteReplicationGroup", "elasticache:DeleteCacheSubnetGroup"],
        "dns_record" => ROUTE53_WRITE.to_vec(),
        "certificate" => [&["acm:DeleteCertificate"][..], VALIDATION_RECORDS].concat(),
        _ => Vec::new(),
    }
}

/// Whether this mapping knows the actions of `kind` (every kind the backend registers must;
/// a test holds it to that).
pub fn covers(kind: Kind) -> bool {
    !reads(kind).is_empty() && !creates(kind).is_empty() && !deletes(kind).is_empty()
}

/// The API actions (`service:Operation`) one planned change needs on this backend.
pub fn actions_for(kind: Kind, action: Action) -> BTreeSet<&'static str> {
    let mut out: BTreeSet<&'static str> = reads(kind).iter().copied().collect();
    match action {
        Action::NoOp => {}
        Action::Create => out.extend(creates(kind)),
        Action::Update => out.extend(updates(kind)),
        Action::Replace => {
            out.extend(creates(kind));
            out.extend(deletes(kind));
        }
        Action::Delete => out.extend(deletes(kind)),
        // An action this mapping does not know yet: rather too much than a failing deploy.
        _ => {
            out.extend(creates(kind));
            out.extend(updates(kind));
            out.extend(deletes(kind));
        }
    }
    out
}

/// The minimal IAM policy (`Version` 2012-10-17) for carrying `plan` out with the AWS backend:
/// one `Allow` statement per service (`Ec2`, `Rds`), actions sorted, on all resources (EC2 and
/// RDS create calls do not support resource-level scoping before the resource exists). Changes of
/// other providers are ignored; a plan with no AWS change yields a policy with no statement.
pub fn iam_policy(plan: &Plan) -> Value {
    let mut by_service: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for change in plan.changes.iter().filter(|c| c.provider == PROVIDER_NAME) {
        for a in actions_for(change.kind, change.action) {
            let service = a.split(':').next().unwrap_or(a);
            by_service.entry(service).or_default().insert(a);
        }
    }
    let statements: Vec<Value> = by_service
        .into_iter()
        .map(|(service, actions)| {
            let sid = match service {
                "rds" => "KonstacksRds",
                "s3" => "KonstacksS3",
                "elasticache" => "KonstacksElastiCache",
                "elasticloadbalancing" => "KonstacksElb",
                "acm" => "KonstacksAcm",
                "route53" => "KonstacksRoute53",
                _ => "KonstacksEc2",
            };
            json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": "*" })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn replace_is_create_and_delete_and_no_op_reads_only() {
        for kind in crate::aws::catalog::KINDS.iter().copied() {
            let replace = actions_for(kind, Action::Replace);
            assert!(actions_for(kind, Action::Create).is_subset(&replace));
            assert!(actions_for(kind, Action::Delete).is_subset(&replace));
            let no_op = actions_for(kind, Action::NoOp);
            let read = |a: &&str| [":Describe", ":List", ":Get"].iter().any(|v| a.contains(v));
            assert!(no_op.iter().all(read), "{kind:?}: {no_op:?}");
            assert!(!no_op.is_empty());
        }
        let vm = konstacks_core::kinds::lookup("vm").unwrap();
        assert!(actions_for(vm, Action::Update).contains("ec2:ModifyInstanceAttribute"));
        assert!(!actions_for(vm, Action::Update).contains("ec2:RunInstances"));
        let lb = konstacks_core::kinds::lookup("load_balancer").unwrap();
        assert!(covers(lb));
        assert!(actions_for(lb, Action::Create).contains("elasticloadbalancing:CreateLoadBalancer"));
        assert!(actions_for(lb, Action::Update).contains("elasticloadbalancing:ModifyListener"));
        assert!(actions_for(lb, Action::Delete).contains("elasticloadbalancing:DeleteTargetGroup"));
        assert!(!actions_for(lb, Action::Delete).contains("elasticloadbalancing:CreateLoadBalancer"));
    }

    #[test]
    fn every_registered_kind_has_its_actions() {
        for kind in crate::aws::catalog::KINDS {
            assert!(covers(*kind), "the IAM mapping has no actions for the registered kind `{kind}`");
        }
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let aws = std::sync::Arc::new(crate::aws::AwsProvider::builder(&sdk).build().unwrap());
        let provider = aws.provider();
        let registered: Vec<_> = provider.kinds().collect();
        for kind in ["bucket", "certificate", "dns_zone", "dns_record", "load_balancer"] {
            assert!(registered.iter().any(|k| k.as_str() == kind), "`{kind}` is registered");
        }
        for kind in registered {
            assert!(covers(kind), "the IAM mapping has no actions for the registered kind `{kind}`");
            let replace = actions_for(kind, Action::Replace);
            assert!(actions_for(kind, Action::Create).is_subset(&replace));
        }
    }
}

#[cfg(test)]
mod snapshot {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use aws_config::{BehaviorVersion, SdkConfig};
    use konstacks_core::engine::{Engine, PlanOptions};
    use konstacks_core::model::{Placement, Stage};
    use konstacks_core::state::MemoryBackend;
    use konstacks_templates::TemplateContext;
    use serde_json::json;

    use super::iam_policy;
    use crate::aws::AwsProvider;

    /// A plan of the web-app template on an empty state: planning makes no AWS call, so the
    /// provider points nowhere.
    #[tokio::test]
    async fn web_app_policy() {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let aws = Arc::new(AwsProvider::builder(&sdk).image("ubuntu-lts", "ami-0123456789abcdef0").build().unwrap());
        let engine = Engine::new(Arc::new(MemoryBackend::new())).with_provider(aws.provider()).with_sealer(None);
        let t = konstacks_templates::find("web-app").unwrap();
        let cx = TemplateContext::new("shop", Stage::Dev).placement(Placement::region("eu-central-1")).provider("aws");
        let params = json!({
            "admin_cidr": "198.51.100.0/24",
            "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f admin@example"],
            "app_image": "ghcr.io/example/shop:1",
        });
        let s = engine.synth(&t.build_json(&cx, params).unwrap()).unwrap();
        let plan = engine.plan(&s, &PlanOptions { offline: true, ..Default::default() }).await.unwrap();
        assert_eq!(plan.summary.create, 9);
        insta::assert_json_snapshot!("web_app_iam_policy", iam_policy(&plan));
    }
}
