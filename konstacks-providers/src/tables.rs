//! A provider catalogue from static tables: the shape the AWS and GCP catalogues share.

use konstacks_core::kind::Kind;
use konstacks_core::model::{DbEngine as Engine, Jurisdiction};
use konstacks_core::provider::{Catalog, EngineOffer, Offer, Pricing, RegionInfo};

/// Static tables of one provider.
pub(crate) struct Tables<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Regions: (name, location, ISO country, jurisdiction), in order of preference.
    pub regions: &'a [(&'a str, &'a str, &'a str, Jurisdiction)],
    /// VM sizes: (slug, native name, monthly USD).
    pub vm_sizes: &'a [(&'a str, &'a str, f64)],
    /// Database sizes: (slug, native name, monthly USD).
    pub db_sizes: &'a [(&'a str, &'a str, f64)],
    /// Images: (slug, native name), unpriced.
    pub images: &'a [(&'a str, &'a str)],
    /// Engines and their versions, oldest first.
    pub engines: &'a [(Engine, &'a [&'a str])],
    /// The kinds the backend registers.
    pub kinds: &'a [Kind],
    /// Longest physical name.
    pub max_name_len: usize,
    /// Zones every listed region has at least.
    pub min_zones: u8,
}

impl Tables<'_> {
    /// The catalogue, with `home` (the backend's region) first among the regions so that a
    /// placement within its jurisdiction resolves to it.
    pub fn catalog(&self, home: &str, pricing: Pricing) -> Catalog {
        let mut regions: Vec<RegionInfo> =
            self.regions.iter().map(|(n, l, c, j)| RegionInfo::new(n, l, c, *j)).collect();
        if let Some(pos) = regions.iter().position(|r| r.name == home) {
            let r = regions.remove(pos);
            regions.insert(0, r);
        }
        let offers = |list: &[(&str, &str, f64)]| list.iter().map(|(s, n, p)| Offer::new(s, n, Some(*p))).collect();
        Catalog {
            provider: self.provider.to_string(),
            regions,
            vm_sizes: offers(self.vm_sizes),
            db_sizes: offers(self.db_sizes),
            images: self.images.iter().map(|(s, n)| Offer::new(s, n, None)).collect(),
            engines: self
                .engines
                .iter()
                .map(|(engine, versions)| EngineOffer::new(engine.as_str(), versions))
                .collect(),
            cache_sizes: Vec::new(),
            kinds: self.kinds.iter().map(|k| k.as_str().to_string()).collect(),
            certificates_validated_by_provider: false,
            load_balancers_one_pool: false,
            load_balancers_pass_tls_through: false,
            certificates_without_wildcards: false,
            replaced_on_change: Vec::new(),
            tls_policies: Vec::new(),
            max_name_len: self.max_name_len,
            min_zones: self.min_zones,
            pricing,
            bucket_pricing: None,
        }
    }
}
