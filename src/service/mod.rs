//! How bridgekeeper runs as a service: what it tells systemd (`notify`).

pub mod notify;
