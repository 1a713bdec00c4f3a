//! IPv4 CIDR blocks: parsing, containment and overlap, for validation and the simulated cloud.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation, with the host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: u32,
    prefix: u8,
}

/// Why a CIDR string was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/prefix` part.
    #[error("`{0}` is not in CIDR notation (expected for example 10.0.0.0/16)")]
    MissingPrefix(String),
    /// The address part is not an IPv4 address.
    #[error("`{0}` does not start with a valid IPv4 address")]
    BadAddress(String),
    /// The prefix is not a number from 0 to 32.
    #[error("`{0}` has a prefix length outside 0..=32")]
    BadPrefix(String),
    /// Bits are set below the prefix.
    #[error("`{given}` has host bits set; the network is {network}")]
    HostBitsSet {
        /// What was given.
        given: String,
        /// The network it probably meant.
        network: String,
    },
}

impl Cidr {
    /// The first address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    fn last(&self) -> u32 {
        self.addr | !Self::mask(self.prefix)
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && (other.addr & Self::mask(self.prefix)) == self.addr
    }

    /// Whether the two blocks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.addr <= other.last() && other.addr <= self.last()
    }

    /// The `index`-th host address (1-based offsets skip the network address).
    pub fn host(&self, index: u32) -> Option<Ipv4Addr> {
        let size = u64::from(!Self::mask(self.prefix)) + 1;
        (u64::from(index) < size).then(|| Ipv4Addr::from(self.addr + index))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s.split_once('/').ok_or_else(|| CidrError::MissingPrefix(s.to_string()))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| CidrError::BadAddress(s.to_string()))?;
        let prefix: u8 = p.parse().map_err(|_| CidrError::BadPrefix(s.to_string()))?;
        if prefix > 32 {
            return Err(CidrError::BadPrefix(s.to_string()));
        }
        let raw = u32::from(addr);
        let net = raw & Self::mask(prefix);
        if net != raw {
            return Err(CidrError::HostBitsSet {
                given: s.to_string(),
                network: Cidr { addr: net, prefix }.to_string(),
            });
        }
        Ok(Cidr { addr: net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(c("10.0.0.0/16").to_string(), "10.0.0.0/16");
        assert_eq!(c("0.0.0.0/0").prefix(), 0);
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!("10.0.0.0".parse::<Cidr>(), Err(CidrError::MissingPrefix(_))));
        assert!(matches!("10.0.0/16".parse::<Cidr>(), Err(CidrError::BadAddress(_))));
        assert!(matches!("10.0.0.0/33".parse::<Cidr>(), Err(CidrError::BadPrefix(_))));
        assert!(matches!("10.0.1.0/16".parse::<Cidr>(), Err(CidrError::HostBitsSet { .. })));
    }

    #[test]
    fn containment_and_overlap() {
        assert!(c("10.0.0.0/16").contains(&c("10.0.5.0/24")));
        assert!(!c("10.0.0.0/16").contains(&c("10.1.0.0/24")));
        assert!(!c("10.0.5.0/24").contains(&c("10.0.0.0/16")));
        assert!(c("10.0.0.0/23").overlaps(&c("10.0.1.0/24")));
        assert!(!c("10.0.0.0/24").overlaps(&c("10.0.1.0/24")));
        assert!(c("0.0.0.0/0").contains(&c("192.168.0.0/16")));
        assert_eq!(c("10.0.1.0/24").host(4).map(|a| a.to_string()).as_deref(), Some("10.0.1.4"));
    }
}
