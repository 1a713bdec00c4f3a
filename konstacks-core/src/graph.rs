//! Dependency graph export (being written).
