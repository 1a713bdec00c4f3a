//! DigitalOcean's catalogue as Konstacks sees it: regions with their jurisdictions, droplet and
//! database sizes with monthly list prices, images and engine versions. Static data: reading it
//! is not an API call. It also holds the few facts the backend maps between Konstacks' portable
//! names and DigitalOcean's slugs (engines, synthetic zones).

use konstacks_core::kind::catalog::{BucketPricing, UnitPrice};
use konstacks_core::kind::{Kind, ResourceKind};
use konstacks_core::kinds::dns_zone::{PRICE_MILLION_QUERIES, PRICE_ZONE_MONTH};
use konstacks_core::kinds::{Certificate, DnsRecord, DnsZone, LoadBalancer};
use konstacks_core::model::{
    Cache, CacheEngine, Database, DbEngine as Engine, Firewall, Jurisdiction, Subnet, Vm, Vpc,
};
use konstacks_core::provider::{Catalog, EngineOffer, Offer, Pricing, RegionInfo, TlsPolicyOffer};

/// The kinds the DigitalOcean backend registers (see `DigitalOcean::provider`).
pub const KINDS: &[Kind] = &[
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

/// The kinds registered, with `bucket` when Spaces is compiled in (the `spaces` feature).
fn kinds() -> Vec<String> {
    let mut out: Vec<String> = KINDS.iter().map(|k| k.as_str().to_string()).collect();
    if cfg!(feature = "spaces") {
        out.push(konstacks_core::kinds::Bucket::KIND.as_str().to_string());
        out.sort();
    }
    out
}

/// The provider name stacks select (`TemplateContext::provider("digitalocean")`).
pub const PROVIDER_NAME: &str = "digitalocean";

/// When the prices below were taken from DigitalOcean's public price list (they were not
/// re-read from the live pricing page for this release; check before relying on them).
///
/// Price check of 2026-11-26 (facts only), which left this date as it is because most figures
/// could not be confirmed by two sources:
/// - Droplets: every listed figure ($4, $6, $12, $18, $24, $48, $96) matches a public table of
///   DigitalOcean's 2022 Basic Droplet price change, and the $4 entry price matches a
///   transcript of DigitalOcean's pricing page read on 2026-09-20; no later change was found,
///   but only the $4 figure is confirmed for 2026.
/// - Managed databases (Postgres / MySQL, one node): db-s-1vcpu-1gb at $15 is seen in a 2021
///   comparison table only; $30, $60, $120 and $240 are unconfirmed.
/// - Regions: the slugs and cities of nyc1, nyc3, sfo2, ams3, fra1, lon1, tor1, blr1 and sgp1
///   match DigitalOcean's region list as republished; syd1, sfo3 and atl1 were not seen in a
///   source. The API spec also lists `ric1`, but no published list giving its location was
///   found, so it is not added.
pub const PRICED_ON: &str = "2025-01-01";

/// Synthetic zones per region. DigitalOcean has no availability zones: every zone name maps to
/// the whole region, and exists only so that stacks written for zoned clouds validate.
pub const ZONES_PER_REGION: u8 = 2;

/// The synthetic zone names of a region (`fra1-a`, `fra1-b`).
pub fn zone_names(region: &str) -> Vec<String> {
    ["a", "b"].iter().take(usize::from(ZONES_PER_REGION)).map(|l| format!("{region}-{l}")).collect()
}

/// Port a DigitalOcean managed database listens on (DO does not use the engines' defaults):
/// 25060 for Postgres and MySQL, 25061 for the caching engines.
pub const DATABASE_PORT: u16 = 25060;
/// Port of a DigitalOcean caching cluster (Redis, Valkey).
pub const CACHE_PORT: u16 = 25061;

/// Days DigitalOcean keeps backups of a Postgres or MySQL cluster: daily backups kept seven
/// days. There is no knob to change it.
pub const BACKUP_RETENTION_DAYS: u32 = 7;

/// DigitalOcean's engine slug of a database engine: Postgres is `pg`, MySQL `mysql`.
pub fn engine_slug(engine: Engine) -> &'static str {
    match engine {
        Engine::Mysql => "mysql",
        _ => "pg",
    }
}

/// DigitalOcean's engine slug of a cache engine: `redis` (version 7) or `valkey`.
pub fn cache_engine_slug(engine: CacheEngine) -> &'static str {
    match engine {
        CacheEngine::Redis => "redis",
        _ => "valkey",
    }
}

/// DigitalOcean's version string for a catalogue version. DigitalOcean names MySQL's only
/// version `8` where every other cloud (and Konstacks' catalogue) says `8.0`; other versions are
/// the same on both sides.
pub fn api_version(engine: Engine, version: &str) -> String {
    match (engine, version) {
        (Engine::Mysql, "8.0") => "8".to_string(),
        _ => version.to_string(),
    }
}

/// The catalogue version of a version DigitalOcean reports (the inverse of [`api_version`]):
/// MySQL `8` is `8.0`.
pub fn catalog_version(engine: Engine, api: &str) -> String {
    match (engine, api) {
        (Engine::Mysql, "8") => "8.0".to_string(),
        _ => api.to_string(),
    }
}

/// The database engine of a DigitalOcean engine slug (`None` for caching engines).
pub fn engine_of(slug: &str) -> Option<Engine> {
    match slug {
        "pg" => Some(Engine::Postgres),
        "mysql" => Some(Engine::Mysql),
        _ => None,
    }
}

/// The cache engine of a DigitalOcean engine slug (`None` for database engines).
pub fn cache_engine_of(slug: &str) -> Option<CacheEngine> {
    match slug {
        "redis" => Some(CacheEngine::Redis),
        "valkey" => Some(CacheEngine::Valkey),
        _ => None,
    }
}

/// The catalogue.
pub fn catalog() -> Catalog {
    use Jurisdiction as J;
    let regions = [
        ("ams3", "Amsterdam", "NL", J::Eu),
        ("fra1", "Frankfurt", "DE", J::Eu),
        ("lon1", "London", "GB", J::Uk),
        ("blr1", "Bangalore", "IN", J::India),
        ("sgp1", "Singapore", "SG", J::Singapore),
        ("syd1", "Sydney", "AU", J::Australia),
        ("tor1", "Toronto", "CA", J::Canada),
        ("nyc1", "New York", "US", J::Us),
        ("nyc3", "New York", "US", J::Us),
        ("sfo2", "San Francisco", "US", J::Us),
        ("sfo3", "San Francisco", "US", J::Us),
        ("atl1", "Atlanta", "US", J::Us),
    ];
    let offers = |list: &[(&str, &str, f64)]| list.iter().map(|(s, n, p)| Offer::new(s, n, Some(*p))).collect();
    Catalog {
        provider: PROVIDER_NAME.to_string(),
        regions: regions.iter().map(|(n, l, c, j)| RegionInfo::new(n, l, c, *j)).collect(),
        vm_sizes: offers(&[
            ("nano", "s-1vcpu-512mb-10gb", 4.0),
            ("micro", "s-1vcpu-1gb", 6.0),
            ("small", "s-1vcpu-2gb", 12.0),
            ("medium", "s-2vcpu-4gb", 24.0),
            ("large", "s-4vcpu-8gb", 48.0),
            ("xlarge", "s-8vcpu-16gb", 96.0),
            ("s-2vcpu-2gb", "s-2vcpu-2gb", 18.0),
        ]),
        db_sizes: offers(&[
            ("db-micro", "db-s-1vcpu-1gb", 15.0),
            ("db-small", "db-s-1vcpu-2gb", 30.0),
            ("db-medium", "db-s-2vcpu-4gb", 60.0),
            ("db-large", "db-s-6vcpu-16gb", 240.0),
            ("db-s-4vcpu-8gb", "db-s-4vcpu-8gb", 120.0),
        ]),
        images: vec![
            Offer::new("ubuntu-lts", "ubuntu-24-04-x64", None),
            Offer::new("debian-12", "debian-12-x64", None),
        ],
        engines: vec![
            EngineOffer::new("postgres", &["13", "14", "15", "16", "17"]),
            // DigitalOcean's `8` (see `api_version`).
            EngineOffer::new("mysql", &["8.0"]),
            // DigitalOcean's caching clusters: Redis 7, and its successor Valkey 8.
            EngineOffer::new("redis", &["7"]),
            EngineOffer::new("valkey", &["8"]),
        ],
        // Caching clusters run on the database node sizes.
        cache_sizes: offers(&[
            ("cache-micro", "db-s-1vcpu-1gb", 15.0),
            ("cache-small", "db-s-1vcpu-2gb", 30.0),
            ("cache-medium", "db-s-2vcpu-4gb", 60.0),
            ("cache-large", "db-s-4vcpu-8gb", 120.0),
        ]),
        kinds: kinds(),
        // Let's Encrypt through DigitalOcean DNS only (see `certificate`).
        certificates_validated_by_provider: true,
        // One droplet pool per load balancer, no rules (see `load_balancer`).
        load_balancers_one_pool: true,
        // Forwarding rules with `tls_passthrough` (see `load_balancer`).
        load_balancers_pass_tls_through: true,
        // `tls_cipher_policy`: both accept TLS 1.2 and 1.3; STRONG drops the weaker ciphers.
        certificates_without_wildcards: false,
        replaced_on_change: Vec::new(),
        tls_policies: vec![TlsPolicyOffer::new("DEFAULT", "1.2"), TlsPolicyOffer::new("STRONG", "1.2")],
        // Database cluster names are the shortest limit DigitalOcean puts on names.
        max_name_len: 63,
        min_zones: ZONES_PER_REGION,
        pricing: Pricing {
            priced_on: PRICED_ON.to_string(),
            // Extra database storage is billed per size tier; not modelled here.
            db_storage_gb_month: None,
            backup_gb_month: None,
            // A droplet's public IPv4 address is included in its price.
            public_ipv4_month: Some(0.0),
            region_multipliers: Vec::new(),
            // DigitalOcean's DNS hosting and its queries are free ("DNS is free" on the DNS
            // product and pricing pages); Let's Encrypt certificates are free too.
            unit_prices: vec![UnitPrice::new(PRICE_ZONE_MONTH, 0.0), UnitPrice::new(PRICE_MILLION_QUERIES, 0.0)],
            // A regional load balancer of one node is $12 a month (DigitalOcean's load balancer
            // pricing page), billed hourly; traffic through it is not charged.
            load_balancer_hour: Some(12.0 / 730.0),
            load_balancer_gb_processed: Some(0.0),
        },
        // Spaces: $5 a month per account includes 250 GiB and 1 TiB of transfer (not modelled);
        // storage beyond it is $0.02 per GiB-month, and requests are not charged (DigitalOcean's
        // Spaces pricing page).
        bucket_pricing: Some(BucketPricing {
            storage_gb_month: Some(0.02),
            write_requests_per_1000: Some(0.0),
            read_requests_per_1000: Some(0.0),
        }),
    }
}

/// The DigitalOcean slug of a VM size (portable slug or native slug), if offered.
pub fn vm_size_slug(cat: &Catalog, size: &str) -> Option<String> {
    cat.vm_size(size).map(|o| o.native.clone())
}

/// The portable name of a DigitalOcean droplet size (the slug itself when it has none).
pub fn vm_size_name(cat: &Catalog, native: &str) -> String {
    cat.vm_sizes.iter().find(|o| o.native == native).map(|o| o.slug.clone()).unwrap_or_else(|| native.to_string())
}

/// The DigitalOcean slug of a database size, if offered.
pub fn db_size_slug(cat: &Catalog, size: &str) -> Option<String> {
    cat.db_size(size).map(|o| o.native.clone())
}

/// Refuse an engine version the catalogue does not offer (databases and caches alike).
pub fn check_engine_version(cat: &Catalog, engine: &str, version: &str) -> Result<(), String> {
    let versions = cat.engine_versions(engine);
    if versions.iter().any(|v| v == version) {
        return Ok(());
    }
    Err(format!("{engine} version `{version}` is not offered on DigitalOcean; use one of: {}", versions.join(", ")))
}

/// The DigitalOcean slug of a cache node size, if offered.
pub fn cache_size_slug(cat: &Catalog, size: &str) -> Option<String> {
    cat.cache_size(size).map(|o| o.native.clone())
}

/// The portable name of a DigitalOcean caching cluster's size.
pub fn cache_size_name(cat: &Catalog, native: &str) -> String {
    cat.cache_sizes.iter().find(|o| o.native == native).map(|o| o.slug.clone()).unwrap_or_else(|| native.to_string())
}

/// The portable name of a DigitalOcean database size.
pub fn db_size_name(cat: &Catalog, native: &str) -> String {
    cat.db_sizes.iter().find(|o| o.native == native).map(|o| o.slug.clone()).unwrap_or_else(|| native.to_string())
}

/// The DigitalOcean slug of an image, if offered.
pub fn image_slug(cat: &Catalog, image: &str) -> Option<String> {
    cat.image(image).map(|o| o.native.clone())
}

/// The portable name of a DigitalOcean image slug.
pub fn image_name(cat: &Catalog, native: &str) -> String {
    cat.images.iter().find(|o| o.native == native).map(|o| o.slug.clone()).unwrap_or_else(|| native.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        let c = catalog();
        assert!(c.regions_within(Jurisdiction::SouthAfrica).next().is_none());
        assert_eq!(c.regions_within(Jurisdiction::Eu).map(|r| r.name.as_str()).collect::<Vec<_>>(), ["ams3", "fra1"]);
        assert_eq!(vm_size_slug(&c, "micro").as_deref(), Some("s-1vcpu-1gb"));
        assert_eq!(vm_size_name(&c, "s-1vcpu-1gb"), "micro");
        assert_eq!(db_size_name(&c, "db-s-1vcpu-2gb"), "db-small");
        assert_eq!(image_name(&c, "ubuntu-24-04-x64"), "ubuntu-lts");
        assert_eq!(zone_names("fra1"), ["fra1-a", "fra1-b"]);
        assert_eq!(cache_engine_slug(CacheEngine::Valkey), "valkey");
        assert_eq!(cache_engine_of("valkey"), Some(CacheEngine::Valkey));
        assert_eq!(engine_of("valkey"), None);
        assert_eq!(cache_size_name(&c, "db-s-1vcpu-2gb"), "cache-small");
        // MySQL is `8.0` in the catalogue and `8` in DigitalOcean's API, both ways.
        for v in c.engine_versions("mysql").iter().chain(c.engine_versions("postgres")) {
            let engine = if v.contains('.') { Engine::Mysql } else { Engine::Postgres };
            assert_eq!(catalog_version(engine, &api_version(engine, v)), *v);
        }
        assert_eq!(api_version(Engine::Mysql, "8.0"), "8");
        assert_eq!(catalog_version(Engine::Mysql, "8"), "8.0");
        assert_eq!(api_version(Engine::Postgres, "16"), "16");
    }
}
