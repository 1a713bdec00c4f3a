//! Compliance rule packs (being written).
