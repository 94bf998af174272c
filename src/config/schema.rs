//! The config file as written: what serde reads, before validation (`validate.rs`). Every
//! field is optional where the file may leave it out; unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::policy::send::{OperatorTarget, SendPolicy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) state_dir: Option<PathBuf>,
    pub(super) hermes_home: Option<PathBuf>,
    #[serde(default)]
    pub(super) send_policy: SendPolicy,
    #[serde(default)]
    pub(super) operator_targets: Vec<OperatorTarget>,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) gateway: RawGateway,
    #[serde(default)]
    pub(super) connectors: Vec<RawConnector>,
    pub(super) relay: Option<RawRelay>,
    pub(super) metrics: Option<RawMetrics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub(super) listen: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) insecure_no_auth: Option<bool>,
    pub(super) buffer: Option<usize>,
    pub(super) ack_timeout_ms: Option<u64>,
    pub(super) max_frame_bytes: Option<usize>,
    pub(super) local_media_paths: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) path: Option<PathBuf>,
    pub(super) max_bytes: Option<u64>,
    pub(super) keep: Option<u32>,
    pub(super) debug: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub(super) max_line_bytes: Option<usize>,
    pub(super) buffer: Option<usize>,
    pub(super) group_context: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnector {
    pub(super) name: String,
    /// Whose access policy applies (`whatsapp` reads WHATSAPP_* and `whatsapp:` settings).
    pub(super) platform: Option<String>,
    /// Policy settings with canonical keys; they override Hermes' sources (see `hermes`).
    #[serde(default)]
    pub(super) policy: BTreeMap<String, serde_yaml_ng::Value>,
    /// The program to run, or
    pub(super) command: Option<String>,
    /// a connector built into bridgekeeper itself (`telegram`).
    pub(super) builtin: Option<String>,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    pub(super) cwd: Option<PathBuf>,
    /// The connector's account session; locked so no second supervisor can drive it.
    pub(super) session_dir: Option<PathBuf>,
    pub(super) max_line_bytes: Option<usize>,
    pub(super) hello_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(super) restart: RawRestart,
    #[serde(default)]
    pub(super) stop: RawStop,
    #[serde(default)]
    pub(super) commands: RawCommands,
    #[serde(default)]
    pub(super) liveness: RawLiveness,
    #[serde(default)]
    pub(super) pacing: RawPacing,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPacing {
    pub(super) per_minute: Option<u32>,
    pub(super) burst: Option<u32>,
    pub(super) chat_per_minute: Option<u32>,
    pub(super) chat_burst: Option<u32>,
    pub(super) gap_min_ms: Option<u64>,
    pub(super) gap_max_ms: Option<u64>,
    pub(super) simulate_typing: Option<bool>,
    pub(super) typing_ms_per_char: Option<u64>,
    pub(super) typing_max_ms: Option<u64>,
}

impl RawPacing {
    /// Whether the file says anything of pacing (any key, so a key added later counts too).
    pub(super) fn is_set(&self) -> bool {
        *self != Self::default()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLiveness {
    pub(super) ping_interval_ms: Option<u64>,
    pub(super) ping_timeout_ms: Option<u64>,
    pub(super) silence_ms: Option<u64>,
    pub(super) transport_inactive_ms: Option<u64>,
    pub(super) app_silent_ms: Option<u64>,
    pub(super) app_silent_after_reconnect_ms: Option<u64>,
    pub(super) reconnect_cooldown_ms: Option<u64>,
    pub(super) max_reconnects_per_hour: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRestart {
    pub(super) initial_backoff_ms: Option<u64>,
    pub(super) max_backoff_ms: Option<u64>,
    pub(super) multiplier: Option<f64>,
    pub(super) jitter: Option<f64>,
    pub(super) healthy_after_ms: Option<u64>,
    pub(super) max_restarts: Option<u32>,
    pub(super) window_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStop {
    pub(super) stdin_grace_ms: Option<u64>,
    pub(super) term_grace_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommands {
    pub(super) queue: Option<usize>,
    pub(super) timeout_ms: Option<u64>,
}
