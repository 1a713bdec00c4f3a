//! The simulated cloud (being written).
