//! The HTTP client built-in connectors use: ureq over rustls (no OpenSSL), status codes as
//! answers rather than errors (each API sorts them itself), a bounded connect.

use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .build()
        .into()
}

/// A boundary for a `multipart/form-data` body, from the OS's CSPRNG.
pub fn multipart_boundary() -> String {
    format!("bk{}", crate::util::random::hex::<8>())
}
