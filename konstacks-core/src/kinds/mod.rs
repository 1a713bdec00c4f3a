//! Every kind Konstacks manages, one file each, and the registry that finds a kind by its id
//! (for state, plans and cost reports read back from JSON). Adding a kind is a new file here and
//! one line in [`ALL`].

pub mod bucket;
pub mod cache;
pub mod certificate;
pub mod database;
pub mod dns_record;
pub mod dns_zone;
pub mod firewall;
pub mod load_balancer;
pub mod subnet;
pub mod vm;
pub mod vpc;

pub use bucket::{
    bucket_name_problems, Bucket, BucketEncryption, BucketNameRule, BucketObserved, BucketSpec, CorsRule, ExpiryRule,
    VersioningStatus,
};
pub use cache::{Cache, CacheEngine, CacheObserved, CacheSize, CacheSpec};
pub use certificate::{Certificate, CertificateObserved, CertificateSpec, ValidationRecord};
pub use database::{Database, DatabaseObserved, DatabaseSpec, DbEngine, DbSize};
pub use dns_record::{DnsRecord, DnsRecordObserved, DnsRecordSpec, DnsTarget};
pub use dns_zone::{DnsZone, DnsZoneObserved, DnsZoneSpec, ManagedRecord, RecordType};
pub use firewall::{
    Egress, Firewall, FirewallObserved, FirewallRule, FirewallSpec, Ingress, Peer, Protocol, RulePorts, RuleSource,
    RuleSpec,
};
pub use load_balancer::{
    CertificateId, HealthCheckSpec, HealthProtocol, LbScheme, ListenerProtocol, ListenerSpec, LoadBalancer,
    LoadBalancerObserved, LoadBalancerSpec, Route, RouteSpec, TargetGroup, TargetGroupSpec, TargetHealthCheck,
    TargetState, TlsPolicy,
};
pub use subnet::{Subnet, SubnetObserved, SubnetSpec};
pub use vm::{EnvValue, Image, Vm, VmObserved, VmSize, VmSpec};
pub use vpc::{Vpc, VpcObserved, VpcSpec};

use crate::kind::{Kind, ResourceKind};

/// Every registered kind, in dependency-free order of ids.
pub const ALL: &[Kind] = &[
    Bucket::KIND,
    Cache::KIND,
    Certificate::KIND,
    Database::KIND,
    DnsRecord::KIND,
    DnsZone::KIND,
    Firewall::KIND,
    LoadBalancer::KIND,
    Subnet::KIND,
    Vm::KIND,
    Vpc::KIND,
];

/// The kind with this id.
pub fn lookup(id: &str) -> Option<Kind> {
    ALL.iter().copied().find(|k| k.as_str() == id)
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        lookup(&id).ok_or_else(|| {
            let known: Vec<&str> = ALL.iter().map(|k| k.as_str()).collect();
            serde::de::Error::custom(format!("unknown resource kind `{id}` (this build knows {})", known.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ids_are_unique_and_sorted() {
        let ids: Vec<&str> = ALL.iter().map(|k| k.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn every_kind_lists_its_special_fields_among_its_fields() {
        for k in ALL {
            let d = k.def();
            let mut sorted = d.fields.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, d.fields, "{k}: fields are sorted");
            for f in d.force_new.iter().chain(d.secrets) {
                assert!(d.fields.contains(f), "{k}: `{f}` is not one of its fields");
            }
            for common in [crate::kind::common::NAME, crate::kind::common::REGION, crate::kind::common::TAGS] {
                assert!(d.fields.contains(&common), "{k}: lacks the common field `{common}`");
            }
        }
    }

    #[test]
    fn kinds_round_trip_through_json() {
        for k in ALL {
            let json = serde_json::to_string(k).unwrap();
            let back: Kind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *k);
        }
        let err = serde_json::from_str::<Kind>("\"teleporter\"").unwrap_err().to_string();
        assert!(err.contains("unknown resource kind `teleporter`"), "{err}");
    }
}
