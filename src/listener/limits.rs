//! The limits every listener keeps, and where they are set: the environment, the same for
//! every listener of the process (`run --relay`, the drop-in API, connectors' receivers).

use std::time::Duration;

/// What a listener allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a connection may wait to send a complete request head (new, or between
    /// requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// How long a request may take to be read and answered, body included.
    pub request_timeout: Duration,
    /// Connections open at once; more are refused (health paths still answered).
    pub max_connections: usize,
    /// Connections open at once from one address (default: half of `max_connections`).
    pub max_per_client: usize,
    /// Time a request body gets before `min_body_rate` counts.
    pub body_grace: Duration,
    /// Bytes a second a request body must average once `body_grace` is over.
    pub min_body_rate: u64,
    /// On stop, how long requests in flight get to finish.
    pub stop_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(90),
            max_connections: 128,
            max_per_client: 64,
            body_grace: Duration::from_secs(5),
            min_body_rate: 16 * 1024,
            stop_grace: Duration::from_secs(2),
        }
    }
}

/// The settings, their bounds, and what each sets.
pub const SETTINGS: [(&str, u64, u64); 7] = [
    ("BRIDGEKEEPER_LISTEN_HEADER_TIMEOUT_MS", 100, 60_000),
    ("BRIDGEKEEPER_LISTEN_REQUEST_TIMEOUT_MS", 1_000, 600_000),
    ("BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS", 1, 10_000),
    ("BRIDGEKEEPER_LISTEN_STOP_GRACE_MS", 0, 30_000),
    ("BRIDGEKEEPER_LISTEN_MAX_PER_CLIENT", 1, 10_000),
    ("BRIDGEKEEPER_LISTEN_BODY_GRACE_MS", 100, 60_000),
    ("BRIDGEKEEPER_LISTEN_MIN_BODY_RATE", 1, 1 << 30),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("{key}={value:?} is not a whole number")]
    NotANumber { key: &'static str, value: String },
    #[error("{key}={value} is out of range: from {min} to {max}")]
    OutOfRange {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

impl Limits {
    /// The defaults, with what `lookup` (the environment) sets. Pure.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LimitsError> {
        let mut values = [None; SETTINGS.len()];
        for (slot, (key, min, max)) in values.iter_mut().zip(SETTINGS) {
            let Some(raw) = lookup(key).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let value: u64 = raw.trim().parse().map_err(|_| LimitsError::NotANumber {
                key,
                value: raw.clone(),
            })?;
            if !(min..=max).contains(&value) {
                return Err(LimitsError::OutOfRange {
                    key,
                    value,
                    min,
                    max,
                });
            }
            *slot = Some(value);
        }
        let d = Self::default();
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let max_connections = values[2].map_or(d.max_connections, |v| v as usize);
        Ok(Self {
            header_timeout: ms(values[0], d.header_timeout),
            request_timeout: ms(values[1], d.request_timeout),
            max_connections,
            stop_grace: ms(values[3], d.stop_grace),
            max_per_client: values[4].map_or(max_connections.div_ceil(2), |v| v as usize),
            body_grace: ms(values[5], d.body_grace),
            min_body_rate: values[6].unwrap_or(d.min_body_rate),
        })
    }

    /// How fast a request body must arrive.
    pub fn pace(&self) -> super::Pace {
        super::Pace {
            grace: self.body_grace,
            min_rate: self.min_body_rate,
        }
    }

    pub fn from_env() -> Result<Self, LimitsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(vars: &[(&str, &str)]) -> Result<Limits, LimitsError> {
        Limits::from_lookup(|k| {
            vars.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_settings_and_bad_values() {
        assert_eq!(limits(&[]), Ok(Limits::default()));
        let set = limits(&[
            ("BRIDGEKEEPER_LISTEN_HEADER_TIMEOUT_MS", "1500"),
            ("BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS", " 4 "),
            ("BRIDGEKEEPER_LISTEN_STOP_GRACE_MS", "0"),
        ])
        .unwrap();
        assert_eq!(set.header_timeout, Duration::from_millis(1500));
        assert_eq!(set.max_connections, 4);
        assert_eq!(set.max_per_client, 2, "half the cap unless set");
        assert_eq!(
            limits(&[("BRIDGEKEEPER_LISTEN_MAX_PER_CLIENT", "3")])
                .unwrap()
                .max_per_client,
            3
        );
        assert_eq!(
            limits(&[("BRIDGEKEEPER_LISTEN_MIN_BODY_RATE", "100")])
                .unwrap()
                .pace()
                .min_rate,
            100
        );
        assert_eq!(set.stop_grace, Duration::ZERO);
        assert_eq!(set.request_timeout, Limits::default().request_timeout);
        assert_eq!(
            limits(&[("BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS", "0")])
                .unwrap_err()
                .to_string(),
            "BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS=0 is out of range: from 1 to 10000"
        );
        assert!(matches!(
            limits(&[("BRIDGEKEEPER_LISTEN_HEADER_TIMEOUT_MS", "5s")]),
            Err(LimitsError::NotANumber { .. })
        ));
    }
}
