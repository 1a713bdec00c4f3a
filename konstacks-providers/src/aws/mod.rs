//! AWS backend (being written).
