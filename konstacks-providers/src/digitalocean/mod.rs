//! DigitalOcean backend (being written).
