//! Environment parity (being written).
