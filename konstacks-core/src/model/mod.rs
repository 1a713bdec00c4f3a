//! The vocabulary of a stack: where it runs ([`placement`]), typed handles to its resources and
//! their outputs ([`refs`]) and health gates ([`gate`]). For stack authors it also gathers the
//! builders of every kind and the stack itself, so `use konstacks_core::model::*` is enough.

pub mod app;
pub mod gate;
pub mod placement;
pub mod refs;

pub use crate::kind::{Kind, ResourceKind};
pub use crate::kinds::{bucket, Bucket, BucketEncryption, CorsRule};
pub use crate::kinds::{
    cache, database, firewall, subnet, vm, vpc, Cache, CacheEngine, CacheSize, Database, DbEngine, DbSize, Egress,
    EnvValue, Firewall, FirewallRule, Image, Ingress, Peer, Protocol, RulePorts, Subnet, Vm, VmSize, Vpc,
};
pub use crate::kinds::{
    certificate, dns_record, dns_zone, load_balancer, Certificate, CertificateId, DnsRecord, DnsTarget, DnsZone,
    HealthProtocol, LbScheme, LoadBalancer, RecordType, Route, TargetGroup, TargetHealthCheck, TlsPolicy,
    ValidationRecord,
};
pub use crate::stack::{Scope, Stack};
pub use app::{App, AppRun};
pub use gate::{HealthCheck, HealthGate};
pub use placement::{Budget, Jurisdiction, Placement, Stage, SIMULATED};
pub use refs::{Output, Ref};
