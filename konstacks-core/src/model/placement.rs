//! Where and how a stack runs: its stage, its placement (a region or a jurisdiction) and its
//! budget. Plain values, shared by the builders, synth, cost and the providers' catalogues.

use std::fmt;

/// A deployment stage: one template produces every environment.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Development: small and cheap.
    Dev,
    /// Staging: like prod, smaller.
    Staging,
    /// Production.
    Prod,
}

impl Stage {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dev => "dev",
            Stage::Staging => "staging",
            Stage::Prod => "prod",
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dev" => Ok(Stage::Dev),
            "staging" => Ok(Stage::Staging),
            "prod" | "production" => Ok(Stage::Prod),
            other => Err(format!("unknown stage `{other}` (expected dev, staging or prod)")),
        }
    }
}

/// A legal area data may be kept in.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jurisdiction {
    /// European Union / European Economic Area (GDPR).
    Eu,
    /// United Kingdom (UK GDPR).
    Uk,
    /// Switzerland (FADP).
    Switzerland,
    /// South Africa (POPIA).
    SouthAfrica,
    /// Nigeria (NDPA).
    Nigeria,
    /// Kenya (DPA).
    Kenya,
    /// Israel.
    Israel,
    /// United Arab Emirates.
    Uae,
    /// Bahrain.
    Bahrain,
    /// Qatar (PDPPL).
    Qatar,
    /// Saudi Arabia (PDPL).
    SaudiArabia,
    /// India (DPDP).
    India,
    /// Singapore (PDPA).
    Singapore,
    /// Japan (APPI).
    Japan,
    /// South Korea (PIPA).
    SouthKorea,
    /// Indonesia (PDP).
    Indonesia,
    /// Hong Kong.
    HongKong,
    /// Taiwan (PDPA).
    Taiwan,
    /// Australia.
    Australia,
    /// Brazil (LGPD).
    Brazil,
    /// Chile.
    Chile,
    /// Canada (PIPEDA).
    Canada,
    /// Mexico (LFPDPPP).
    Mexico,
    /// United States.
    Us,
}

impl Jurisdiction {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Jurisdiction::Eu => "eu",
            Jurisdiction::Uk => "uk",
            Jurisdiction::Switzerland => "switzerland",
            Jurisdiction::SouthAfrica => "south_africa",
            Jurisdiction::Nigeria => "nigeria",
            Jurisdiction::Kenya => "kenya",
            Jurisdiction::Israel => "israel",
            Jurisdiction::Uae => "uae",
            Jurisdiction::Bahrain => "bahrain",
            Jurisdiction::Qatar => "qatar",
            Jurisdiction::SaudiArabia => "saudi_arabia",
            Jurisdiction::India => "india",
            Jurisdiction::Singapore => "singapore",
            Jurisdiction::Japan => "japan",
            Jurisdiction::SouthKorea => "south_korea",
            Jurisdiction::Indonesia => "indonesia",
            Jurisdiction::HongKong => "hong_kong",
            Jurisdiction::Taiwan => "taiwan",
            Jurisdiction::Australia => "australia",
            Jurisdiction::Brazil => "brazil",
            Jurisdiction::Chile => "chile",
            Jurisdiction::Canada => "canada",
            Jurisdiction::Mexico => "mexico",
            Jurisdiction::Us => "us",
        }
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a stack runs: a named region, or any region of a jurisdiction.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Exactly this region of the provider.
    Region(String),
    /// The provider's preferred region within this jurisdiction.
    Within(Jurisdiction),
    /// A region, which must also lie within the jurisdiction (checked by `synth`).
    RegionWithin(String, Jurisdiction),
}

impl Placement {
    /// A named region.
    pub fn region(name: impl Into<String>) -> Self {
        Placement::Region(name.into())
    }
    /// Any region of a jurisdiction.
    pub fn within(j: Jurisdiction) -> Self {
        Placement::Within(j)
    }
    /// A named region that must lie within `j`.
    pub fn region_within(name: impl Into<String>, j: Jurisdiction) -> Self {
        Placement::RegionWithin(name.into(), j)
    }
}

/// The name of the embedded simulated cloud provider.
pub const SIMULATED: &str = "sim";

/// A cap on a stack's estimated monthly cost (USD), declared with `Stack::budget`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// The most the stack may cost per month, in USD.
    pub monthly_usd: f64,
}

impl Budget {
    /// A cap of `monthly_usd` per month.
    pub fn new(monthly_usd: f64) -> Self {
        Self { monthly_usd }
    }
}
