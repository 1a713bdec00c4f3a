//! Policy as code (being written).
