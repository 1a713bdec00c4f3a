//! The static AWS catalogue: regions with their jurisdictions, instance types and DB instance
//! classes behind the portable size slugs, images and engine versions.
//!
//! Reading it is never a cloud call; validation (`synth`) checks stacks against it before
//! anything is sent to AWS.
//!
//! Price check of 2026-11-26 (facts only; every monthly figure is the us-east-1 hourly list
//! price × 730). A figure counts as confirmed when two independent republications of AWS's list
//! prices agree, or one says it read AWS's price list. Sources, all dated 2026 unless noted:
//! - price tables kept in public repositories: one "read from the AWS Price List API on
//!   2026-10-05", one "us-east-1 on-demand, April 2026", one stamped `pricingDate` 2026-08-19,
//!   and several undated fallback tables that agree with them;
//! - cost blogs and calculators: EC2 guides of March and April 2026 (t3.micro, t3.medium,
//!   t3.large, m7i.large), an RDS guide of 2026 (db.t4g.medium), an RDS cost guide of June 2026
//!   that cites AWS's RDS price page (gp3 storage, backup storage).
//!
//! Confirmed: t3.nano, t3.micro, t3.small, t3.medium, t3.large, t3.xlarge, m6i.large,
//! m7i.large, m7i.xlarge, r7i.large; db.t3.micro/small/medium/large, db.t4g.medium,
//! db.m7g.large, db.r6g.large; RDS gp3 storage ($0.115/GB-month), RDS backup storage
//! ($0.095/GB-month), public IPv4 ($0.005/h = $3.65/month). Corrected: c7i.large $0.08925/h
//! (65.19 -> 65.15) and c7i.xlarge $0.1785/h (130.38 -> 130.31).
//!
//! Serving kinds, read on 2026-12-05 (us-east-1 list prices; facts only):
//! - Application Load Balancer: $0.0225 per hour ($16.43 a month) and $0.008 per LCU-hour,
//!   where one LCU covers 1 GB of processed bytes an hour for instance targets, so about $0.008
//!   per GB processed (a FinOps article of 2026-05-08 quoting AWS's ELB price page).
//! - Route 53: $0.50 per hosted zone a month (first 25 zones) and $0.40 per million standard
//!   queries (AWS's Route 53 price page); queries of alias records to a load balancer are free.
//! - ACM public certificates: no charge (AWS's ACM price page).
//! - S3 Standard: $0.023 per GB-month (first 50 TB), $0.005 per 1,000 PUT/COPY/POST/LIST and
//!   $0.0004 per 1,000 GET requests (AWS's S3 price page).
//! - ElastiCache on-demand nodes (Redis OSS / Valkey node-based, per node): cache.t4g.micro
//!   $0.016/h, cache.t4g.small $0.032/h, cache.t4g.medium $0.065/h, cache.m7g.large $0.158/h;
//!   cache.t3.micro $0.017/h confirmed by an instance-price page of 2026. Valkey nodes list about
//!   20% lower; the Redis figure is kept for both, so estimates err high.
//!
//! Unconfirmed (one source only, kept as they were): t3.2xlarge, m6i.xlarge, db.m6g.large,
//! db.m6i.large. The region multipliers are approximations and were not re-derived: only
//! eu-central-1 (t3.small at $0.024/h, from a 2021 blog) was seen, the rest are unconfirmed.

use konstacks_core::kind::{Kind, ResourceKind};
use konstacks_core::model::{
    Cache, Database, DbEngine as Engine, Firewall, Jurisdiction, LoadBalancer, Subnet, Vm, Vpc,
};

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
use konstacks_core::kind::catalog::{BucketPricing, UnitPrice};
use konstacks_core::kinds::dns_zone::{PRICE_MILLION_QUERIES, PRICE_ZONE_MONTH};
use konstacks_core::kinds::{Bucket, Certificate, DnsRecord, DnsZone};
use konstacks_core::provider::{Catalog, EngineOffer, Offer, Pricing, TlsPolicyOffer};

/// Name stacks use to select this provider.
pub const PROVIDER_NAME: &str = "aws";

/// When the prices in [`Offer::monthly_usd`] were taken, and what they mean.
pub const PRICES_NOTE: &str = "On-demand list prices of us-east-1 (Linux, single-AZ, 730 hours a month, storage \
     not included) as published by AWS on the date in `Pricing::priced_on`; other regions through approximate \
     multipliers. Check the AWS pricing pages before relying on them.";

/// When the list prices were read: the date of the newest source used for the check of
/// 2026-11-26 (see the module documentation for what was confirmed).
pub const PRICED_ON: &str = "2026-10-05";

/// Approximate price level of a region relative to us-east-1 (from the t3 / db.t3 list prices).
/// Not re-checked on 2026-11-26 except eu-central-1 (t3.small $0.024/h vs $0.0208/h = 1.15).
const REGION_MULTIPLIERS: &[(&str, f64)] = &[
    ("eu-central-1", 1.15),
    ("eu-west-1", 1.10),
    ("eu-west-2", 1.13),
    ("eu-west-3", 1.13),
    ("eu-north-1", 1.04),
    ("eu-south-1", 1.13),
    ("eu-central-2", 1.26),
    ("ca-central-1", 1.12),
    ("sa-east-1", 1.62),
    ("ap-south-1", 1.08),
    ("ap-southeast-1", 1.27),
    ("ap-southeast-2", 1.27),
    ("ap-northeast-1", 1.31),
    ("ap-northeast-2", 1.25),
    ("af-south-1", 1.37),
    ("me-south-1", 1.23),
];

/// Longest physical name accepted: RDS identifiers allow 63 characters, and every other name
/// Konstacks gives (security group names, Name tags) fits in that too.
pub const MAX_NAME_LEN: usize = 63;

/// Every listed region has at least three availability zones open to new accounts
/// (us-west-1 has two and is therefore not listed).
pub const MIN_ZONES: u8 = 3;

/// Regions: (name, location, ISO country, jurisdiction). Within a jurisdiction the first one is
/// preferred (after the provider's own region, which is moved first).
const REGIONS: &[(&str, &str, &str, Jurisdiction)] = &[
    ("eu-central-1", "Frankfurt", "DE", Jurisdiction::Eu),
    ("eu-west-1", "Dublin", "IE", Jurisdiction::Eu),
    ("eu-west-3", "Paris", "FR", Jurisdiction::Eu),
    ("eu-north-1", "Stockholm", "SE", Jurisdiction::Eu),
    ("eu-south-1", "Milan", "IT", Jurisdiction::Eu),
    ("eu-south-2", "Aragón", "ES", Jurisdiction::Eu),
    ("eu-west-2", "London", "GB", Jurisdiction::Uk),
    ("eu-central-2", "Zurich", "CH", Jurisdiction::Switzerland),
    ("af-south-1", "Cape Town", "ZA", Jurisdiction::SouthAfrica),
    ("il-central-1", "Tel Aviv", "IL", Jurisdiction::Israel),
    ("me-central-1", "United Arab Emirates", "AE", Jurisdiction::Uae),
    ("me-south-1", "Bahrain", "BH", Jurisdiction::Bahrain),
    ("ap-south-1", "Mumbai", "IN", Jurisdiction::India),
    ("ap-south-2", "Hyderabad", "IN", Jurisdiction::India),
    ("ap-southeast-1", "Singapore", "SG", Jurisdiction::Singapore),
    ("ap-northeast-1", "Tokyo", "JP", Jurisdiction::Japan),
    ("ap-northeast-3", "Osaka", "JP", Jurisdiction::Japan),
    ("ap-northeast-2", "Seoul", "KR", Jurisdiction::SouthKorea),
    ("ap-southeast-3", "Jakarta", "ID", Jurisdiction::Indonesia),
    ("ap-east-1", "Hong Kong", "HK", Jurisdiction::HongKong),
    ("ap-southeast-2", "Sydney", "AU", Jurisdiction::Australia),
    ("ap-southeast-4", "Melbourne", "AU", Jurisdiction::Australia),
    ("sa-east-1", "São Paulo", "BR", Jurisdiction::Brazil),
    ("ca-central-1", "Montreal", "CA", Jurisdiction::Canada),
    ("ca-west-1", "Calgary", "CA", Jurisdiction::Canada),
    ("us-east-1", "N. Virginia", "US", Jurisdiction::Us),
    ("us-east-2", "Ohio", "US", Jurisdiction::Us),
    ("us-west-2", "Oregon", "US", Jurisdiction::Us),
];

/// VM sizes: portable slugs first (smallest first: the contract suite creates the first and
/// resizes to the second), then common native x86_64 types usable as they are.
const VM_SIZES: &[(&str, &str, f64)] = &[
    ("nano", "t3.nano", 3.80),
    ("micro", "t3.micro", 7.59),
    ("small", "t3.small", 15.18),
    ("medium", "t3.medium", 30.37),
    ("large", "t3.large", 60.74),
    ("xlarge", "t3.xlarge", 121.47),
    ("t3.2xlarge", "t3.2xlarge", 242.94),
    ("m6i.large", "m6i.large", 70.08),
    ("m6i.xlarge", "m6i.xlarge", 140.16),
    ("m7i.large", "m7i.large", 73.58),
    ("m7i.xlarge", "m7i.xlarge", 147.17),
    ("c7i.large", "c7i.large", 65.15),
    ("c7i.xlarge", "c7i.xlarge", 130.31),
    ("r7i.large", "r7i.large", 96.58),
];

/// Database sizes (RDS for PostgreSQL prices; MySQL costs about the same).
const DB_SIZES: &[(&str, &str, f64)] = &[
    ("db-micro", "db.t3.micro", 13.14),
    ("db-small", "db.t3.small", 26.28),
    ("db-medium", "db.t3.medium", 52.56),
    ("db-large", "db.m6g.large", 116.07),
    ("db.t3.large", "db.t3.large", 105.85),
    ("db.t4g.medium", "db.t4g.medium", 47.45),
    ("db.m6i.large", "db.m6i.large", 129.94),
    ("db.m7g.large", "db.m7g.large", 122.64),
    ("db.r6g.large", "db.r6g.large", 164.25),
];

/// Cache node types behind the portable cache sizes (one node; replicas cost the same each).
const CACHE_SIZES: &[(&str, &str, f64)] = &[
    ("cache-micro", "cache.t4g.micro", 11.68),
    ("cache-small", "cache.t4g.small", 23.36),
    ("cache-medium", "cache.t4g.medium", 47.45),
    ("cache-large", "cache.m7g.large", 115.34),
    ("cache.t3.micro", "cache.t3.micro", 12.41),
];

/// ElastiCache engine versions (major versions; ElastiCache picks the newest minor).
const CACHE_ENGINES: &[(&str, &[&str])] = &[("redis", &["6", "7"]), ("valkey", &["7", "8"])];

/// ELBv2 security policies of HTTPS listeners that accept nothing older than TLS 1.2, with
/// their oldest version (AWS's "Security policies for your Application Load Balancer" page;
/// policies admitting TLS 1.0 or 1.1 are left out on purpose). The portable `TlsPolicy`
/// values map to `ELBSecurityPolicy-TLS13-1-2-2021-06` and `ELBSecurityPolicy-TLS13-1-3-2021-06`.
const TLS_POLICIES: &[(&str, &str)] = &[
    ("ELBSecurityPolicy-TLS13-1-2-2021-06", "1.2"),
    ("ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "1.2"),
    ("ELBSecurityPolicy-TLS13-1-2-Ext0-2021-06", "1.2"),
    ("ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", "1.2"),
    ("ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06", "1.2"),
    ("ELBSecurityPolicy-TLS13-1-3-2021-06", "1.3"),
    ("ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04", "1.2"),
    ("ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04", "1.2"),
    ("ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04", "1.3"),
    ("ELBSecurityPolicy-FS-1-2-Res-2020-10", "1.2"),
    ("ELBSecurityPolicy-FS-1-2-Res-2019-08", "1.2"),
    ("ELBSecurityPolicy-FS-1-2-2019-08", "1.2"),
    ("ELBSecurityPolicy-TLS-1-2-Ext-2018-06", "1.2"),
    ("ELBSecurityPolicy-TLS-1-2-2017-01", "1.2"),
];

/// Images: the native column names the default lookup (see `ImageLookup`); AMI ids differ per
/// region and change with every release, so they are resolved at create time.
const IMAGES: &[(&str, &str)] = &[("ubuntu-lts", "ubuntu-24.04-amd64"), ("debian-12", "debian-12-amd64")];

/// The static catalogue, with `home` (the provider's region) first among the regions of its
/// jurisdiction so that a placement "within" that jurisdiction resolves to it.
pub fn catalog(home: &str) -> Catalog {
    let tables = crate::tables::Tables {
        provider: PROVIDER_NAME,
        regions: REGIONS,
        vm_sizes: VM_SIZES,
        db_sizes: DB_SIZES,
        images: IMAGES,
        engines: &[(Engine::Postgres, &["13", "14", "15", "16", "17"]), (Engine::Mysql, &["8.0", "8.4"])],
        kinds: KINDS,
        max_name_len: MAX_NAME_LEN,
        min_zones: MIN_ZONES,
    };
    let mut cat = tables.catalog(
        home,
        Pricing {
            priced_on: PRICED_ON.to_string(),
            // RDS gp3 storage, backup storage beyond the free allowance, a public IPv4 address.
            db_storage_gb_month: Some(0.115),
            backup_gb_month: Some(0.095),
            public_ipv4_month: Some(3.65),
            region_multipliers: REGION_MULTIPLIERS.iter().map(|(r, m)| (r.to_string(), *m)).collect(),
            // Route 53 hosted zones and standard queries.
            unit_prices: vec![UnitPrice::new(PRICE_ZONE_MONTH, 0.50), UnitPrice::new(PRICE_MILLION_QUERIES, 0.40)],
            // An Application Load Balancer hour, and one LCU-hour per GB processed.
            load_balancer_hour: Some(0.0225),
            load_balancer_gb_processed: Some(0.008),
        },
    );
    cat.tls_policies = TLS_POLICIES.iter().map(|(name, min)| TlsPolicyOffer::new(name, min)).collect();
    cat.cache_sizes = CACHE_SIZES.iter().map(|(s, n, p)| Offer::new(s, n, Some(*p))).collect();
    cat.engines.extend(CACHE_ENGINES.iter().map(|(engine, versions)| EngineOffer::new(engine, versions)));
    cat.bucket_pricing = Some(BucketPricing {
        storage_gb_month: Some(0.023),
        write_requests_per_1000: Some(0.005),
        read_requests_per_1000: Some(0.0004),
    });
    cat
}

/// The RDS engine name.
pub(crate) fn rds_engine(engine: Engine) -> Option<&'static str> {
    match engine {
        Engine::Postgres => Some("postgres"),
        Engine::Mysql => Some("mysql"),
        _ => None,
    }
}

/// The engine of an RDS engine name.
pub(crate) fn engine_of(rds: &str) -> Option<Engine> {
    match rds {
        "postgres" => Some(Engine::Postgres),
        "mysql" => Some(Engine::Mysql),
        _ => None,
    }
}

/// The catalogue version an RDS engine version belongs to: `16.4` -> `16`, `8.0.39` -> `8.0`
/// (the longest catalogue version that is a dotted prefix), or the version itself.
pub(crate) fn catalog_version(cat: &Catalog, engine: Engine, actual: &str) -> String {
    cat.engine_versions(engine.as_str())
        .iter()
        .filter(|v| actual == v.as_str() || actual.starts_with(&format!("{v}.")))
        .max_by_key(|v| v.len())
        .cloned()
        .unwrap_or_else(|| actual.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_region_comes_first() {
        let c = catalog("eu-west-1");
        assert_eq!(c.regions[0].name, "eu-west-1");
        assert_eq!(c.regions_within(Jurisdiction::Eu).next().map(|r| r.name.as_str()), Some("eu-west-1"));
        let c = catalog("eu-central-1");
        assert_eq!(c.regions[0].name, "eu-central-1");
        assert_eq!(c.region("eu-central-2").map(|r| r.jurisdiction), Some(Jurisdiction::Switzerland));
        assert_eq!(c.region("eu-west-2").map(|r| r.jurisdiction), Some(Jurisdiction::Uk));
    }

    #[test]
    fn sizes_and_versions() {
        let c = catalog("us-east-1");
        assert_eq!(c.vm_size("small").map(|o| o.native.as_str()), Some("t3.small"));
        assert_eq!(c.vm_size("t3.small").map(|o| o.slug.as_str()), Some("small"));
        assert_eq!(c.db_size("db-large").map(|o| o.native.as_str()), Some("db.m6g.large"));
        assert_eq!(catalog_version(&c, Engine::Postgres, "16.4"), "16");
        assert_eq!(catalog_version(&c, Engine::Mysql, "8.0.39"), "8.0");
        assert_eq!(catalog_version(&c, Engine::Mysql, "8.4"), "8.4");
        assert_eq!(catalog_version(&c, Engine::Postgres, "9.6.1"), "9.6.1");
        assert_eq!(c.engine_versions("redis"), ["6", "7"]);
        assert_eq!(c.engine_versions("valkey"), ["7", "8"]);
        assert_eq!(
            c.cache_sizes.iter().find(|o| o.slug == "cache-micro").map(|o| o.native.as_str()),
            Some("cache.t4g.micro")
        );
        assert_eq!(c.pricing.load_balancer_hour, Some(0.0225));
        assert!(c.bucket_pricing.as_ref().is_some_and(|b| b.storage_gb_month == Some(0.023)));
    }
}
