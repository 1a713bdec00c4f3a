//! The static GCP catalogue: regions with their jurisdictions and zones, machine types and
//! Cloud SQL tiers behind the portable size slugs, images and engine versions.
//!
//! Reading it is never a cloud call; validation (`synth`) checks stacks against it before
//! anything is sent to Google Cloud.
//!
//! Sources (facts only), checked on [`PRICED_ON`]:
//! - regions, zones and the machine series of each zone: the Compute Engine "Regions and zones"
//!   page (cloud.google.com/compute/docs/regions-zones), copy of late 2026;
//! - Compute Engine on-demand prices: the Cloud Billing Catalog export published as `pricing.yml`
//!   by github.com/Cyclenerd/google-cloud-pricing-cost-calculator (generated 2025-03-06), the hourly
//!   figures of cloud.google.com/compute/vm-instance-pricing; unchanged list prices since;
//! - Cloud SQL: cloud.google.com/sql/pricing (Enterprise edition, us-central1: $0.0413 per
//!   vCPU-hour and $0.007 per GiB-hour, as re-published in May 2026).
//! - Cloud Storage: cloud.google.com/storage/pricing (read 2026-12-06): Standard storage in a
//!   single region $0.020 per GB-month in us-central1 (and the other US regions), about $0.023 in
//!   Europe and elsewhere; Class A operations (writes, lists) $0.005 and Class B operations
//!   (reads) $0.0004 per 1,000.
//! - Memorystore for Redis: cloud.google.com/memorystore/docs/redis/pricing (figures of the
//!   issue #17 brief, 2026-12-06; the search corpus had no copy of the page to verify them):
//!   us-central1 Basic tier M1 (1-4 GB) about $0.049 per GB-hour, Standard tier M1 about $0.064;
//!   M2 (5-10 GB) Basic about $0.027 per GB-hour (unverified). Tiers: "It is not possible to
//!   upgrade from Basic Tier to Standard Tier" (cloud.google.com/memorystore/docs/redis/redis-tiers).
//! - Cloud DNS: cloud.google.com/dns/pricing (figures of the issue #17 brief, 2026-12-06, not
//!   re-verified): $0.20 per managed zone a month for the first 25 zones, $0.40 per million
//!   queries for the first billion. Google-managed SSL certificates are free.
//! - Cloud Load Balancing: cloud.google.com/vpc/network-pricing#lb (figures of the issue #17
//!   brief, 2026-12-06, not re-checked against the page): global external Application Load
//!   Balancer $0.025 per hour for the first 5 forwarding rules, $0.008 per GB of data processed.

use konstacks_core::kind::{Kind, ResourceKind};
use konstacks_core::kinds::{Bucket, Cache, Certificate, DnsRecord, DnsZone, LoadBalancer};
use konstacks_core::model::{Database, DbEngine as Engine, Firewall, Jurisdiction, Subnet, Vm, Vpc};

/// The kinds this backend registers (see its `provider()`).
pub const KINDS: &[Kind] = &[
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
use konstacks_core::provider::{Catalog, Pricing};

/// Name stacks use to select this provider.
pub const PROVIDER_NAME: &str = "gcp";

/// When the prices in [`Offer::monthly_usd`](konstacks_core::provider::Offer::monthly_usd) were taken, and what
/// they mean.
pub const PRICES_NOTE: &str = "On-demand list prices of us-central1 (Linux VMs without sustained-use or committed-use \
     discounts; Cloud SQL Enterprise edition, single zone; 730 hours a month, storage not included) as published \
     by Google on the date in `Pricing::priced_on`; other regions through approximate multipliers. Check the \
     Google Cloud pricing pages before relying on them.";

/// When the list prices were read.
pub const PRICED_ON: &str = "2026-11-26";

/// Longest physical name accepted: Compute Engine and Cloud SQL names allow 63 characters, and
/// the backend appends up to 13 to a firewall's name to name its rules.
pub const MAX_NAME_LEN: usize = 50;

/// Every listed region has at least three zones (see [`zones`]).
pub const MIN_ZONES: u8 = 3;

/// Approximate price level of a region relative to us-central1, from the E2 on-demand prices
/// (e2-micro) of the Billing Catalog export. Cloud SQL differs by a few percent from these; regions
/// not listed (us-east1, us-east5, us-west1) cost the same as us-central1.
const REGION_MULTIPLIERS: &[(&str, f64)] = &[
    ("africa-south1", 1.31),
    ("asia-east1", 1.16),
    ("asia-east2", 1.40),
    ("asia-northeast1", 1.28),
    ("asia-northeast2", 1.28),
    ("asia-northeast3", 1.28),
    ("asia-south1", 1.20),
    ("asia-south2", 1.20),
    ("asia-southeast1", 1.23),
    ("asia-southeast2", 1.34),
    ("australia-southeast1", 1.42),
    ("australia-southeast2", 1.21),
    ("europe-central2", 1.29),
    ("europe-north1", 1.10),
    ("europe-north2", 1.05),
    ("europe-southwest1", 1.18),
    ("europe-west1", 1.10),
    ("europe-west10", 1.54),
    ("europe-west12", 1.29),
    ("europe-west2", 1.29),
    ("europe-west3", 1.29),
    ("europe-west4", 1.10),
    ("europe-west6", 1.40),
    ("europe-west8", 1.16),
    ("europe-west9", 1.16),
    ("me-central1", 1.21),
    ("me-central2", 1.60),
    ("me-west1", 1.10),
    ("northamerica-northeast1", 1.10),
    ("northamerica-northeast2", 1.10),
    ("northamerica-south1", 1.09),
    ("southamerica-east1", 1.59),
    ("southamerica-west1", 1.43),
    ("us-east4", 1.13),
    ("us-south1", 1.18),
    ("us-west2", 1.20),
    ("us-west3", 1.20),
    ("us-west4", 1.13),
];

/// Regions: (name, location, ISO country, jurisdiction). Within a jurisdiction the first one is
/// preferred (after the provider's own region, which is moved first).
///
/// asia-southeast3 (Bangkok) is not listed: its zones offer no E2 machine types, so the portable
/// sizes could not be created there (and Thailand has no jurisdiction yet).
const REGIONS: &[(&str, &str, &str, Jurisdiction)] = &[
    ("europe-west1", "St. Ghislain", "BE", Jurisdiction::Eu),
    ("europe-west4", "Eemshaven", "NL", Jurisdiction::Eu),
    ("europe-west3", "Frankfurt", "DE", Jurisdiction::Eu),
    ("europe-west10", "Berlin", "DE", Jurisdiction::Eu),
    ("europe-west9", "Paris", "FR", Jurisdiction::Eu),
    ("europe-north1", "Hamina", "FI", Jurisdiction::Eu),
    ("europe-north2", "Stockholm", "SE", Jurisdiction::Eu),
    ("europe-central2", "Warsaw", "PL", Jurisdiction::Eu),
    ("europe-southwest1", "Madrid", "ES", Jurisdiction::Eu),
    ("europe-west8", "Milan", "IT", Jurisdiction::Eu),
    ("europe-west12", "Turin", "IT", Jurisdiction::Eu),
    ("europe-west2", "London", "GB", Jurisdiction::Uk),
    ("europe-west6", "Zurich", "CH", Jurisdiction::Switzerland),
    ("africa-south1", "Johannesburg", "ZA", Jurisdiction::SouthAfrica),
    ("me-west1", "Tel Aviv", "IL", Jurisdiction::Israel),
    ("me-central1", "Doha", "QA", Jurisdiction::Qatar),
    ("me-central2", "Dammam", "SA", Jurisdiction::SaudiArabia),
    ("asia-south1", "Mumbai", "IN", Jurisdiction::India),
    ("asia-south2", "Delhi", "IN", Jurisdiction::India),
    ("asia-southeast1", "Singapore", "SG", Jurisdiction::Singapore),
    ("asia-northeast1", "Tokyo", "JP", Jurisdiction::Japan),
    ("asia-northeast2", "Osaka", "JP", Jurisdiction::Japan),
    ("asia-northeast3", "Seoul", "KR", Jurisdiction::SouthKorea),
    ("asia-southeast2", "Jakarta", "ID", Jurisdiction::Indonesia),
    ("asia-east2", "Hong Kong", "HK", Jurisdiction::HongKong),
    ("asia-east1", "Changhua County", "TW", Jurisdiction::Taiwan),
    ("australia-southeast1", "Sydney", "AU", Jurisdiction::Australia),
    ("australia-southeast2", "Melbourne", "AU", Jurisdiction::Australia),
    ("southamerica-east1", "São Paulo", "BR", Jurisdiction::Brazil),
    ("southamerica-west1", "Santiago", "CL", Jurisdiction::Chile),
    ("northamerica-northeast1", "Montréal", "CA", Jurisdiction::Canada),
    ("northamerica-northeast2", "Toronto", "CA", Jurisdiction::Canada),
    ("northamerica-south1", "Querétaro", "MX", Jurisdiction::Mexico),
    ("us-central1", "Iowa", "US", Jurisdiction::Us),
    ("us-east1", "South Carolina", "US", Jurisdiction::Us),
    ("us-east4", "N. Virginia", "US", Jurisdiction::Us),
    ("us-east5", "Columbus", "US", Jurisdiction::Us),
    ("us-south1", "Dallas", "US", Jurisdiction::Us),
    ("us-west1", "Oregon", "US", Jurisdiction::Us),
    ("us-west2", "Los Angeles", "US", Jurisdiction::Us),
    ("us-west3", "Salt Lake City", "US", Jurisdiction::Us),
    ("us-west4", "Las Vegas", "US", Jurisdiction::Us),
];

/// The zones of every listed region, in Google's order. Most are `-a`, `-b`, `-c`; the three
/// oldest regions have other letters.
const ZONES: &[(&str, &[&str])] = &[
    ("africa-south1", &["africa-south1-a", "africa-south1-b", "africa-south1-c"]),
    ("asia-east1", &["asia-east1-a", "asia-east1-b", "asia-east1-c"]),
    ("asia-east2", &["asia-east2-a", "asia-east2-b", "asia-east2-c"]),
    ("asia-northeast1", &["asia-northeast1-a", "asia-northeast1-b", "asia-northeast1-c"]),
    ("asia-northeast2", &["asia-northeast2-a", "asia-northeast2-b", "asia-northeast2-c"]),
    ("asia-northeast3", &["asia-northeast3-a", "asia-northeast3-b", "asia-northeast3-c"]),
    ("asia-south1", &["asia-south1-a", "asia-south1-b", "asia-south1-c"]),
    ("asia-south2", &["asia-south2-a", "asia-south2-b", "asia-south2-c"]),
    ("asia-southeast1", &["asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c"]),
    ("asia-southeast2", &["asia-southeast2-a", "asia-southeast2-b", "asia-southeast2-c"]),
    ("australia-southeast1", &["australia-southeast1-a", "australia-southeast1-b", "australia-southeast1-c"]),
    ("australia-southeast2", &["australia-southeast2-a", "australia-southeast2-b", "australia-southeast2-c"]),
    ("europe-central2", &["europe-central2-a", "europe-central2-b", "europe-central2-c"]),
    ("europe-north1", &["europe-north1-a", "europe-north1-b", "europe-north1-c"]),
    ("europe-north2", &["europe-north2-a", "europe-north2-b", "europe-north2-c"]),
    ("europe-southwest1", &["europe-southwest1-a", "europe-southwest1-b", "europe-southwest1-c"]),
    ("europe-west1", &["europe-west1-b", "europe-west1-c", "europe-west1-d"]),
    ("europe-west10", &["europe-west10-a", "europe-west10-b", "europe-west10-c"]),
    ("europe-west12", &["europe-west12-a", "europe-west12-b", "europe-west12-c"]),
    ("europe-west2", &["europe-west2-a", "europe-west2-b", "europe-west2-c"]),
    ("europe-west3", &["europe-west3-a", "europe-west3-b", "europe-west3-c"]),
    ("europe-west4", &["europe-west4-a", "europe-west4-b", "europe-west4-c"]),
    ("europe-west6", &["europe-west6-a", "europe-west6-b", "europe-west6-c"]),
    ("europe-west8", &["europe-west8-a", "europe-west8-b", "europe-west8-c"]),
    ("europe-west9", &["europe-west9-a", "europe-west9-b", "europe-west9-c"]),
    ("me-central1", &["me-central1-a", "me-central1-b", "me-central1-c"]),
    ("me-central2", &["me-central2-a", "me-central2-b", "me-central2-c"]),
    ("me-west1", &["me-west1-a", "me-west1-b", "me-west1-c"]),
    (
        "northamerica-northeast1",
        &["northamerica-northeast1-a", "northamerica-northeast1-b", "northamerica-northeast1-c"],
    ),
    (
        "northamerica-northeast2",
        &["northamerica-northeast2-a", "northamerica-northeast2-b", "northamerica-northeast2-c"],
    ),
    ("northamerica-south1", &["northamerica-south1-a", "northamerica-south1-b", "northamerica-south1-c"]),
    ("southamerica-east1", &["southamerica-east1-a", "southamerica-east1-b", "southamerica-east1-c"]),
    ("southamerica-west1", &["southamerica-west1-a", "southamerica-west1-b", "southamerica-west1-c"]),
    ("us-central1", &["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]),
    ("us-east1", &["us-east1-b", "us-east1-c", "us-east1-d"]),
    ("us-east4", &["us-east4-a", "us-east4-b", "us-east4-c"]),
    ("us-east5", &["us-east5-a", "us-east5-b", "us-east5-c"]),
    ("us-south1", &["us-south1-a", "us-south1-b", "us-south1-c"]),
    ("us-west1", &["us-west1-a", "us-west1-b", "us-west1-c"]),
    ("us-west2", &["us-west2-a", "us-west2-b", "us-west2-c"]),
    ("us-west3", &["us-west3-a", "us-west3-b", "us-west3-c"]),
    ("us-west4", &["us-west4-a", "us-west4-b", "us-west4-c"]),
];

/// VM sizes: portable slugs first (smallest first: the contract suite creates the first and
/// resizes to the second), then common native x86_64 types usable as they are.
///
/// The portable slugs map one-to-one onto E2, the only series offered in every listed region.
/// E2 has nothing below 1 GiB (f1-micro is N1, missing from the newer regions), so each slug gets
/// the E2 type one memory step above the AWS t3 size of the same slug: nano 1 GiB, micro 2 GiB,
/// small 4 GiB, medium 8 GiB, large 16 GiB, xlarge 32 GiB. e2-micro, e2-small and e2-medium are
/// shared-core (2 vCPUs bursting), like t3.
const VM_SIZES: &[(&str, &str, f64)] = &[
    ("nano", "e2-micro", 6.11),
    ("micro", "e2-small", 12.23),
    ("small", "e2-medium", 24.46),
    ("medium", "e2-standard-2", 48.92),
    ("large", "e2-standard-4", 97.84),
    ("xlarge", "e2-standard-8", 195.67),
    ("t2d-standard-1", "t2d-standard-1", 30.84),
    ("t2d-standard-2", "t2d-standard-2", 61.68),
    ("n2-standard-2", "n2-standard-2", 70.90),
    ("n2-standard-4", "n2-standard-4", 141.79),
    ("c3-standard-4", "c3-standard-4", 147.17),
];

/// Database sizes: Cloud SQL Enterprise edition tiers (MySQL and PostgreSQL cost the same). The
/// portable slugs follow the memory of AWS db.t3.micro/small/medium and db.m6g.large: the two
/// shared-core tiers (0.6 and 1.7 GiB, outside the Cloud SQL SLA), then 1 vCPU / 3.75 GiB and
/// 2 vCPU / 7.5 GiB. Custom tiers cost $0.0413 per vCPU-hour plus $0.007 per GiB-hour.
const DB_SIZES: &[(&str, &str, f64)] = &[
    ("db-micro", "db-f1-micro", 7.67),
    ("db-small", "db-g1-small", 25.55),
    ("db-medium", "db-custom-1-3840", 49.31),
    ("db-large", "db-custom-2-7680", 98.62),
    ("db-custom-2-13312", "db-custom-2-13312", 126.73),
    ("db-custom-4-15360", "db-custom-4-15360", 197.25),
    ("db-custom-8-30720", "db-custom-8-30720", 394.49),
];

/// Cache sizes: Memorystore for Redis memory sizes (native `<n>gb` = `memorySizeGb`), priced as
/// Basic tier instances (730 hours): micro 1 GB, small 2 GB, medium 4 GB (M1, $0.049 per
/// GB-hour), large 8 GB (M2, $0.027). The core prices replicas as more nodes of the same size,
/// which overstates a Standard tier instance (about $0.064 per GB-hour for primary and replica).
const CACHE_SIZES: &[(&str, &str, f64)] = &[
    ("cache-micro", "1gb", 35.77),
    ("cache-small", "2gb", 71.54),
    ("cache-medium", "4gb", 143.08),
    ("cache-large", "8gb", 157.68),
    ("16gb", "16gb", 315.36),
];

/// Memorystore for Redis versions offered (`REDIS_7_0`, `REDIS_7_2`), oldest first.
const REDIS_VERSIONS: &[&str] = &["7.0", "7.2"];

/// Images: the native column is the image family the backend puts in `sourceImage`, so every
/// create boots the newest image of the family.
const IMAGES: &[(&str, &str)] = &[
    ("ubuntu-lts", "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"),
    ("debian-12", "projects/debian-cloud/global/images/family/debian-12"),
];

/// PostgreSQL major versions offered (`databaseVersion` POSTGRES_13 to POSTGRES_18 of the Cloud
/// SQL Admin API v1).
const POSTGRES_VERSIONS: &[&str] = &["13", "14", "15", "16", "17", "18"];

/// MySQL versions offered (MYSQL_8_0 and MYSQL_8_4).
const MYSQL_VERSIONS: &[&str] = &["8.0", "8.4"];

/// The static catalogue, with `home` (the provider's region) first among the regions of its
/// jurisdiction so that a placement "within" that jurisdiction resolves to it.
pub fn catalog(home: &str) -> Catalog {
    let tables = crate::tables::Tables {
        provider: PROVIDER_NAME,
        regions: REGIONS,
        vm_sizes: VM_SIZES,
        db_sizes: DB_SIZES,
        images: IMAGES,
        engines: &[(Engine::Postgres, POSTGRES_VERSIONS), (Engine::Mysql, MYSQL_VERSIONS)],
        kinds: KINDS,
        max_name_len: MAX_NAME_LEN,
        min_zones: MIN_ZONES,
    };
    let mut cat = tables.catalog(
        home,
        Pricing {
            priced_on: PRICED_ON.to_string(),
            // Cloud SQL SSD storage, Cloud SQL backup storage, an in-use external IPv4 address on
            // a standard VM ($0.005 an hour).
            db_storage_gb_month: Some(0.17),
            backup_gb_month: Some(0.08),
            public_ipv4_month: Some(3.65),
            region_multipliers: REGION_MULTIPLIERS.iter().map(|(r, m)| (r.to_string(), *m)).collect(),
            // Cloud DNS: a managed zone a month and a million queries (first tiers; see above).
            unit_prices: vec![
                konstacks_core::kind::catalog::UnitPrice::new(konstacks_core::kinds::dns_zone::PRICE_ZONE_MONTH, 0.20),
                konstacks_core::kind::catalog::UnitPrice::new(
                    konstacks_core::kinds::dns_zone::PRICE_MILLION_QUERIES,
                    0.40,
                ),
            ],
            // Global external Application Load Balancer: the first 5 forwarding rules per hour,
            // and data processed (see the module doc).
            load_balancer_hour: Some(0.025),
            load_balancer_gb_processed: Some(0.008),
        },
    );
    cat.bucket_pricing = Some(bucket_pricing(home));
    // Google validates its managed certificates itself and shows no validation records.
    cat.certificates_validated_by_provider = true;
    // Google-managed SSL certificates cover up to 100 exact names, no wildcard.
    cat.certificates_without_wildcards = true;
    cat.cache_sizes =
        CACHE_SIZES.iter().map(|(s, n, p)| konstacks_core::provider::Offer::new(s, n, Some(*p))).collect();
    cat.engines.push(konstacks_core::provider::EngineOffer::new("redis", REDIS_VERSIONS));
    // A Memorystore instance's tier (BASIC, STANDARD_HA) follows high availability and cannot
    // change on a live instance: a change plans a replacement.
    cat.replaced_on_change.push(konstacks_core::provider::ReplacedField::new("cache", "high_availability"));
    cat.tls_policies = super::load_balancer::TLS_POLICIES
        .iter()
        .map(|(name, min, _)| konstacks_core::provider::TlsPolicyOffer::new(name, min))
        .collect();
    cat
}

/// Cloud Storage Standard prices in `home` (see the module's sources): $0.020 per GB-month in
/// the US regions, about $0.023 elsewhere.
fn bucket_pricing(home: &str) -> konstacks_core::kind::catalog::BucketPricing {
    konstacks_core::kind::catalog::BucketPricing {
        storage_gb_month: Some(if home.starts_with("us-") { 0.020 } else { 0.023 }),
        write_requests_per_1000: Some(0.005),
        read_requests_per_1000: Some(0.0004),
    }
}

/// The zones of a listed region, in Google's order (zone index 0 is the first); `None` for a
/// region the catalogue does not list.
pub fn zones(region: &str) -> Option<&'static [&'static str]> {
    ZONES.iter().find(|(r, _)| *r == region).map(|(_, z)| *z)
}

/// The Cloud SQL `databaseVersion` of a catalogue version: `16` -> `POSTGRES_16`,
/// `8.0` -> `MYSQL_8_0`. `None` for an engine Cloud SQL does not run or a malformed version.
#[allow(dead_code, reason = "called by the Cloud SQL backend, which is being written")]
pub(crate) fn sql_database_version(engine: Engine, version: &str) -> Option<String> {
    let prefix = match engine {
        Engine::Postgres => "POSTGRES",
        Engine::Mysql => "MYSQL",
        _ => return None,
    };
    let well_formed = !version.is_empty()
        && version.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    well_formed.then(|| format!("{prefix}_{}", version.replace('.', "_")))
}

/// The engine and catalogue version of a Cloud SQL `databaseVersion`: `POSTGRES_16` ->
/// (Postgres, `16`), `MYSQL_8_0` and minor-pinned `MYSQL_8_0_39` -> (Mysql, `8.0`),
/// `MYSQL_8_4` -> (Mysql, `8.4`). `None` for SQL Server and anything unknown.
#[allow(dead_code, reason = "called by the Cloud SQL backend, which is being written")]
pub(crate) fn engine_version_of(database_version: &str) -> Option<(Engine, String)> {
    let (engine, rest, parts) = if let Some(rest) = database_version.strip_prefix("POSTGRES_") {
        // PostgreSQL versions are one number since 10; 9.6 had two.
        (Engine::Postgres, rest, if rest.starts_with("9_") { 2 } else { 1 })
    } else if let Some(rest) = database_version.strip_prefix("MYSQL_") {
        (Engine::Mysql, rest, 2)
    } else {
        return None;
    };
    let numbers: Vec<&str> = rest.split('_').collect();
    if numbers.len() < parts || numbers.iter().any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some((engine, numbers[..parts].join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn home_region_comes_first() {
        let c = catalog("europe-west3");
        assert_eq!(c.regions[0].name, "europe-west3");
        assert_eq!(c.regions_within(Jurisdiction::Eu).next().map(|r| r.name.as_str()), Some("europe-west3"));
        let c = catalog("us-central1");
        assert_eq!(c.regions[0].name, "us-central1");
        assert_eq!(c.regions_within(Jurisdiction::Eu).next().map(|r| r.name.as_str()), Some("europe-west1"));
        assert_eq!(c.region("europe-west6").map(|r| r.jurisdiction), Some(Jurisdiction::Switzerland));
        assert_eq!(c.region("europe-west2").map(|r| r.jurisdiction), Some(Jurisdiction::Uk));
        assert_eq!(c.region("asia-east1").map(|r| r.jurisdiction), Some(Jurisdiction::Taiwan));
        // An unknown home changes nothing.
        assert_eq!(catalog("mars-north1").regions, catalog("").regions);
    }

    #[test]
    fn portable_slugs_map_one_to_one() {
        let c = catalog("us-central1");
        let slugs = ["nano", "micro", "small", "medium", "large", "xlarge"];
        assert_eq!(c.vm_sizes.iter().take(6).map(|o| o.slug.as_str()).collect::<Vec<_>>(), slugs);
        for list in [&c.vm_sizes, &c.db_sizes, &c.images] {
            let natives: HashSet<&str> = list.iter().map(|o| o.native.as_str()).collect();
            assert_eq!(natives.len(), list.len(), "two slugs share a native name");
            let slugs: HashSet<&str> = list.iter().map(|o| o.slug.as_str()).collect();
            assert_eq!(slugs.len(), list.len(), "a slug is listed twice");
            for o in list.iter() {
                // Reading back the native name gives exactly the slug it was written from.
                assert_eq!(list.iter().filter(|x| x.native == o.native).count(), 1);
                assert!(o.slug == o.native || list.iter().all(|x| x.slug != o.native), "{} is ambiguous", o.native);
            }
        }
        assert_eq!(c.vm_size("small").map(|o| o.native.as_str()), Some("e2-medium"));
        assert_eq!(c.vm_size("e2-medium").map(|o| o.slug.as_str()), Some("small"));
        assert_eq!(c.db_size("db-large").map(|o| o.native.as_str()), Some("db-custom-2-7680"));
        assert_eq!(c.db_size("db-f1-micro").map(|o| o.slug.as_str()), Some("db-micro"));
        assert!(c.vm_sizes.iter().chain(&c.db_sizes).all(|o| o.monthly_usd.is_some_and(|p| p > 0.0)));
    }

    #[test]
    fn every_region_has_its_zones() {
        let regions: HashSet<&str> = REGIONS.iter().map(|(n, ..)| *n).collect();
        let zoned: HashSet<&str> = ZONES.iter().map(|(n, _)| *n).collect();
        assert_eq!(regions.len(), REGIONS.len(), "a region is listed twice");
        assert_eq!(zoned.len(), ZONES.len(), "a zone entry is listed twice");
        assert_eq!(regions, zoned);
        for region in regions {
            let zones = zones(region).unwrap_or_default();
            assert!(zones.len() >= usize::from(MIN_ZONES), "{region} has {} zones", zones.len());
            assert!(zones.iter().all(|z| z.strip_prefix(region).is_some_and(|s| s.len() == 2 && s.starts_with('-'))));
        }
        assert_eq!(zones("europe-west1"), Some(&["europe-west1-b", "europe-west1-c", "europe-west1-d"][..]));
        assert_eq!(zones("us-central1").map(|z| z[3]), Some("us-central1-f"));
        assert_eq!(zones("asia-southeast3"), None);
        let c = catalog("us-central1");
        assert!(c.pricing.region_multipliers.iter().all(|(r, m)| c.region(r).is_some() && *m >= 1.0));
    }

    #[test]
    fn required_jurisdictions_have_a_region() {
        let c = catalog("us-central1");
        for j in [
            Jurisdiction::Eu,
            Jurisdiction::Uk,
            Jurisdiction::Switzerland,
            Jurisdiction::SouthAfrica,
            Jurisdiction::India,
            Jurisdiction::Singapore,
            Jurisdiction::Japan,
            Jurisdiction::Indonesia,
            Jurisdiction::Australia,
            Jurisdiction::Brazil,
            Jurisdiction::Canada,
            Jurisdiction::Us,
        ] {
            assert!(c.regions_within(j).next().is_some(), "no region within {j}");
        }
        assert!(c.regions_within(Jurisdiction::Kenya).next().is_none());
    }

    #[test]
    fn database_versions_round_trip() {
        let c = catalog("us-central1");
        for engine in [Engine::Postgres, Engine::Mysql] {
            for v in c.engine_versions(engine.as_str()) {
                let dv = sql_database_version(engine, v);
                assert_eq!(dv.as_deref().and_then(engine_version_of), Some((engine, v.clone())), "{v}");
            }
        }
        assert_eq!(sql_database_version(Engine::Postgres, "16").as_deref(), Some("POSTGRES_16"));
        assert_eq!(sql_database_version(Engine::Mysql, "8.0").as_deref(), Some("MYSQL_8_0"));
        assert_eq!(sql_database_version(Engine::Mysql, "8.4").as_deref(), Some("MYSQL_8_4"));
        assert_eq!(sql_database_version(Engine::Postgres, ""), None);
        assert_eq!(sql_database_version(Engine::Postgres, "16; DROP"), None);
        assert_eq!(engine_version_of("MYSQL_8_0_39"), Some((Engine::Mysql, "8.0".to_string())));
        assert_eq!(engine_version_of("POSTGRES_9_6"), Some((Engine::Postgres, "9.6".to_string())));
        assert_eq!(engine_version_of("SQLSERVER_2022_STANDARD"), None);
        assert_eq!(engine_version_of("MYSQL_8"), None);
        assert_eq!(engine_version_of("POSTGRES_"), None);
        assert_eq!(c.engine_versions("redis"), ["7.0", "7.2"]);
    }
}
