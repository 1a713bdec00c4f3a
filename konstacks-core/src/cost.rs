//! Cost estimates and budgets (being written).
