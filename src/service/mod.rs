//! How bridgekeeper runs as a service: what it tells systemd (`notify`) and what it tells
//! Prometheus (`metrics`).

pub mod metrics;
pub mod notify;
