//! The supervisor config file (`bridgekeeper run --config FILE`): where state lives, the log,
//! the gateway link and the connectors to run. Parsed once into `SupervisorConfig`; every
//! problem is reported together, each naming its key.
//!
//! Relative paths are resolved against the config file's directory, so a config works from any
//! working directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod builtin;
pub mod hermes;
pub mod hermes_paths;
mod schema;
mod validate;

use schema::RawConfig;
use validate::{
    Segment, display_key, last_key, original_key, path_segments, remove, unknown_key, validate,
};

use crate::policy::AccessPolicy;
use crate::policy::liveness::{LivenessPolicy, WatchdogPolicy};
use crate::policy::pacing::PacingPolicy;
use crate::policy::restart::RestartPolicy;
use crate::policy::send::{OperatorTarget, SendPolicy};

const MIN_LINE_BYTES: usize = 256;

/// Default line limit, both links. The largest inbound line node-bridge can write (a 65,536
/// character text of characters JSON escapes, quoting another such text, mentioning 1,024
/// members) measures 816,423 bytes (node-bridge/test/translate.test.js); 4 MiB holds four
/// times that.
pub const DEFAULT_LINE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid YAML: {detail}", path.display())]
    Syntax { path: PathBuf, detail: String },
    #[error("{} has {} problem(s):\n{}", path.display(), problems.len(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One invalid value: the key (as a path like `connectors[0].restart.jitter`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

// ---- the validated config ------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The file this came from (named as the origin of its policy settings).
    pub path: PathBuf,
    /// Holds the lock, `status.json` and (by default) `bridge.log`. Created 0700.
    pub state_dir: PathBuf,
    /// Where Hermes keeps `.env`, `config.yaml` and the pairing files.
    pub hermes_home: PathBuf,
    pub send_policy: SendPolicy,
    pub operator_targets: Vec<OperatorTarget>,
    /// `(platform, warning)` from policy resolution, logged when the daemon starts.
    pub warnings: Vec<(String, String)>,
    pub log: LogConfig,
    pub gateway: GatewayConfig,
    pub connectors: Vec<ConnectorConfig>,
    /// The Hermes relay endpoint (`relay:` in the file, or `run --relay ADDR`).
    pub relay: Option<RelayConfig>,
    /// Where `/metrics` is served (`metrics: {listen: ADDR}`); `BRIDGEKEEPER_METRICS` when the
    /// file says nothing (`service::metrics::address`).
    pub metrics: Option<std::net::SocketAddr>,
}

/// Where and how the relay endpoint listens (README, "Hermes relay").
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: std::net::SocketAddr,
    /// A file holding the shared secret (0600), instead of `GATEWAY_RELAY_SECRET`.
    pub secret_file: Option<PathBuf>,
    /// Serve without checking tokens: only on a loopback address.
    pub insecure_no_auth: bool,
    /// Delivered messages kept until a gateway acks them.
    pub buffer: usize,
    /// An unacked message is sent again after this long.
    pub ack_timeout: Duration,
    pub max_frame_bytes: usize,
    /// Inbound media go out as local paths (a 0.19.0 gateway on the same host reads them
    /// there) instead of `/relay/media` URLs.
    pub local_media_paths: bool,
}

impl RelayConfig {
    pub const DEFAULT_BUFFER: usize = 10_000;
    pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 20;

    pub fn new(listen: std::net::SocketAddr) -> Self {
        Self {
            listen,
            secret_file: None,
            insecure_no_auth: false,
            buffer: Self::DEFAULT_BUFFER,
            ack_timeout: Self::DEFAULT_ACK_TIMEOUT,
            max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES,
            local_media_paths: false,
        }
    }

    /// A contradiction that must stop the start: no token check on a reachable address.
    pub fn check(&self) -> Result<(), String> {
        if self.insecure_no_auth && !self.listen.ip().is_loopback() {
            return Err(format!(
                "relay.insecure_no_auth is only allowed on a loopback address, not {}",
                self.listen
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub path: PathBuf,
    /// Rotate when the file would grow past this.
    pub max_bytes: u64,
    /// Rotated files kept (`bridge.log.1` … `bridge.log.N`).
    pub keep: u32,
    /// Debug mode: identities unmasked and text previews logged.
    pub debug: bool,
}

/// Lines of a group's unaddressed talk kept for its next delivered message, by default.
pub const DEFAULT_GROUP_CONTEXT: usize = 10;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub max_line_bytes: usize,
    /// Events buffered toward a slow gateway before connectors feel backpressure.
    pub buffer: usize,
    /// Lines of a group's undelivered talk (no mention) kept per group and handed over with its
    /// next delivered message (`gateway.group_context`, else `BRIDGEKEEPER_GROUP_CONTEXT`, 10).
    pub group_context: usize,
}

#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: String,
    pub platform: String,
    /// `policy:` from the config file, as raw values keyed by canonical name.
    pub policy_overrides: BTreeMap<String, hermes::Raw>,
    /// The resolved access policy (`SupervisorConfig::resolve_access` fills it in; until then
    /// the safe defaults).
    pub access: AccessPolicy,
    /// How `access` was resolved, to resolve it again when Hermes' files change (set with it).
    pub policy_source: Option<PolicySource>,
    /// Resolved executable path (found with `which` when given as a bare name).
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Created 0700, locked for the daemon's lifetime, passed as `BRIDGEKEEPER_SESSION_DIR`.
    pub session_dir: Option<PathBuf>,
    pub max_line_bytes: usize,
    pub hello_timeout: Duration,
    pub restart: RestartPolicy,
    pub stop: StopPolicy,
    /// Commands held while the connector is not ready, plus those awaiting a result.
    pub queue_capacity: usize,
    pub command_timeout: Duration,
    /// When the supervisor takes a running connector for hung.
    pub liveness: LivenessPolicy,
    /// When an open connection counts as deaf (from the connector's heartbeats).
    pub watchdog: WatchdogPolicy,
    /// How fast this account may send.
    pub pacing: PacingPolicy,
}

/// The stop ladder: close stdin and wait `stdin_grace`, SIGTERM the process group and wait
/// `term_grace`, then SIGKILL.
#[derive(Debug, Clone, Copy)]
pub struct StopPolicy {
    pub stdin_grace: Duration,
    pub term_grace: Duration,
}

impl SupervisorConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        Self::parse(&text, path, base)
    }

    /// Parses config text; `base` anchors relative paths. Every problem is reported at once:
    /// a value of the wrong type or an unknown key is noted and taken out, and parsing goes on,
    /// so the report also holds every range problem of the rest.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let mut value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        if value.is_null() {
            value = serde_yaml_ng::Value::Mapping(Default::default());
        }
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let mut problems = Vec::new();
        // List entries taken out (a required key missing): later indices are shifted back to
        // the ones the file has when reported.
        let mut taken: Vec<(String, usize)> = Vec::new();
        let raw: RawConfig = loop {
            match serde_path_to_error::deserialize::<_, RawConfig>(value.clone()) {
                Ok(raw) => break raw,
                Err(e) => {
                    let segments = path_segments(e.path());
                    let message = e.inner().to_string();
                    // A required key we took out ourselves is already reported.
                    let echo = message.starts_with("missing field")
                        && problems.iter().any(|p: &Problem| {
                            message.contains(&format!("`{}`", last_key(&p.key)))
                                && p.key.starts_with(&e.path().to_string())
                        });
                    if !echo {
                        problems.push(Problem {
                            key: original_key(&display_key(&segments), &taken),
                            message: message.clone(),
                        });
                    }
                    let target = if message.starts_with("missing field") {
                        // Nothing to take out at a missing key: drop what holds it.
                        segments.clone()
                    } else {
                        match unknown_key(&message) {
                            Some(k) if segments.last() != Some(&Segment::Key(k.clone())) => {
                                [segments.clone(), vec![Segment::Key(k)]].concat()
                            }
                            _ => segments,
                        }
                    };
                    if problems.len() > 100 || target.is_empty() || !remove(&mut value, &target) {
                        return Err(invalid(problems));
                    }
                    if let Some((Segment::Index(i), list)) = target.split_last() {
                        taken.push((display_key(list), *i));
                    }
                }
            }
        };
        match validate(raw, path, base) {
            Ok(config) if problems.is_empty() => Ok(config),
            Ok(_) => Err(invalid(problems)),
            Err(more) => {
                problems.extend(more.into_iter().map(|p| Problem {
                    key: original_key(&p.key, &taken),
                    ..p
                }));
                Err(invalid(problems))
            }
        }
    }

    /// Resolves every connector's access policy from its sources (CLI `--set` pairs, this
    /// file's `policy:`, the environment, `$HERMES_HOME/.env` and `config.yaml`).
    pub fn resolve_access(
        &mut self,
        cli: &BTreeMap<String, String>,
    ) -> Result<Vec<hermes::Resolved>, AccessError> {
        let mut sources = hermes::Sources::gather(&self.hermes_home, cli.clone())?;
        let relay_policy = self.state_dir.join(RELAY_POLICY_FILE);
        sources.read_relay_policy(&relay_policy)?;
        let mut resolved = Vec::new();
        let mut errors = Vec::new();
        for c in &mut self.connectors {
            sources.file = Some((self.path.clone(), c.policy_overrides.clone()));
            match hermes::resolve(&sources, &c.platform) {
                Ok(r) => {
                    c.access = r.policy.clone();
                    c.policy_source = Some(PolicySource {
                        hermes_home: self.hermes_home.clone(),
                        cli: cli.clone(),
                        file: sources.file.clone(),
                        platform: c.platform.clone(),
                        settings: r.settings.clone(),
                        relay_policy: relay_policy.clone(),
                    });
                    // WHATSAPP_DEBUG (or its platform's equivalent) turns on the log's debug mode.
                    self.log.debug |= r.debug;
                    for w in &r.warnings {
                        let entry = (r.platform.clone(), w.clone());
                        if !self.warnings.contains(&entry) {
                            self.warnings.push(entry);
                        }
                    }
                    resolved.push(r);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(resolved)
        } else {
            Err(AccessError::Invalid(errors))
        }
    }
}

/// Everything needed to resolve one connector's access policy again: the command line's and
/// the config file's values (fixed for the run) and where Hermes' own files are (read again).
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub hermes_home: PathBuf,
    pub cli: BTreeMap<String, String>,
    pub file: Option<(PathBuf, BTreeMap<String, hermes::Raw>)>,
    pub platform: String,
    /// The settings as last resolved, each with its origin.
    pub settings: Vec<hermes::Setting>,
    /// What relay gateways declared (`relay-policy.json` in the state dir).
    pub relay_policy: PathBuf,
}

/// Where the relay keeps what gateways POST to `/relay/policy`, in the state dir.
pub const RELAY_POLICY_FILE: &str = "relay-policy.json";

impl PolicySource {
    /// The files whose change means resolving again.
    pub fn watched(&self) -> [PathBuf; 3] {
        [
            self.hermes_home.join(".env"),
            self.hermes_home.join("config.yaml"),
            self.relay_policy.clone(),
        ]
    }

    /// Resolves again from the files as they are now (blocking reads).
    pub fn resolve(&self) -> Result<hermes::Resolved, AccessError> {
        let mut sources = hermes::Sources::gather(&self.hermes_home, self.cli.clone())?;
        sources.read_relay_policy(&self.relay_policy)?;
        sources.file = self.file.clone();
        hermes::resolve(&sources, &self.platform).map_err(|e| AccessError::Invalid(vec![e]))
    }

    /// What differs between the settings last resolved and `now`, one line per setting, with
    /// where the new value comes from (as `config --explain` says it).
    pub fn changes(&self, now: &[hermes::Setting]) -> Vec<String> {
        now.iter()
            .filter(|n| {
                !self
                    .settings
                    .iter()
                    .any(|o| o.name == n.name && o.value == n.value)
            })
            .map(|n| {
                let before = self
                    .settings
                    .iter()
                    .find(|o| o.name == n.name)
                    .map_or("(unset)".to_owned(), shown);
                format!("{}: {before} → {} from {}", n.name, shown(n), n.origin)
            })
            .collect()
    }
}

/// A setting's value for the log: user ids in the allowlists masked to their last 4 digits.
fn shown(setting: &hermes::Setting) -> String {
    let text = setting.value.to_string();
    if !setting.name.contains("allow_from") {
        return text;
    }
    text.split(',')
        .map(|id| match id.trim() {
            "*" => "*".to_owned(),
            id => crate::util::mask::mask_id(id),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Source(#[from] hermes::SourceError),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<hermes::PolicyError>),
}

/// One step of a key path: a map key or a list index.
#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SupervisorConfig, ConfigError> {
        SupervisorConfig::parse(text, Path::new("test.yaml"), Path::new("/tmp"))
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| p.to_string()).collect()
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let cfg = parse("connectors:\n  - name: a\n    command: sh\n").unwrap();
        assert_eq!(cfg.state_dir, Path::new("/tmp/state"));
        assert_eq!(cfg.log.path, Path::new("/tmp/state/bridge.log"));
        let c = &cfg.connectors[0];
        assert!(c.program.ends_with("sh"));
        assert_eq!(c.restart.max_restarts, 5);
        assert_eq!(c.command_timeout, Duration::from_secs(60));
    }

    #[test]
    fn pacing_starts_on_where_the_platform_is_paced_and_whenever_it_is_set() {
        let pacing = |platform: &str, extra: &str| {
            let text = format!(
                "connectors:\n  - name: {platform}\n    command: sh\n    platform: {platform}\n{extra}"
            );
            !parse(&text).unwrap().connectors[0].pacing.is_off()
        };
        assert!(pacing("whatsapp", ""), "WhatsApp warns before no ban");
        assert!(pacing("weixin", ""));
        assert!(pacing("some-other-network", ""), "unknown: the safe side");
        assert!(!pacing("telegram", ""), "Telegram says how long to wait");
        assert!(pacing("telegram", "    pacing: {chat_per_minute: 30}\n"));
        assert!(!pacing("whatsapp", "    pacing: {per_minute: 0}\n"));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let found = problems(
            "connectors:\n  - name: a\n    command: no-such-program-xyz\n    restart: {jitter: 1.5, max_restarts: 0}\n  - name: a\n    command: sh\n    commands: {queue: 0}\n",
        );
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(
            found[0].starts_with("connectors[0].command: \"no-such-program-xyz\" was not found")
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("connectors[0].restart.jitter: 1.5"))
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("connectors[0].restart.max_restarts"))
        );
        assert!(
            found
                .iter()
                .any(|p| p == "connectors[1].name: \"a\" is used by another connector")
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("connectors[1].commands.queue"))
        );
    }

    #[test]
    fn a_missing_node_names_how_to_fix_it() {
        let cfg = SupervisorConfig::parse(
            "connectors:\n  - name: wa\n    command: node\n",
            Path::new("t.yaml"),
            Path::new("/nonexistent-dir"),
        );
        // Only meaningful where node is absent from PATH; where present it must resolve.
        match cfg {
            Ok(c) => assert!(c.connectors[0].program.ends_with("node")),
            Err(e) => assert!(e.to_string().contains("install Node.js"), "{e}"),
        }
    }

    #[test]
    fn a_misspelt_key_is_an_error_not_a_silent_default() {
        let found = problems("connectors:\n  - name: a\n    command: sh\n    restrat: {}\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("connectors[0].restrat: unknown field `restrat`"),
            "{found:#?}"
        );
    }

    /// Unknown keys, wrong types, negative counts and out-of-range values: one report, each
    /// with its key as the file has it.
    #[test]
    fn unknown_keys_types_and_ranges_are_reported_together() {
        let found = problems(concat!(
            "logg: {}\n",
            "gateway: {buffer: -3}\n",
            "connectors:\n",
            "  - command: sh\n",
            "  - name: b\n",
            "    command: sh\n",
            "    hello_timeout_ms: 0\n",
            "    restart: {max_restarts: -1, jitter: 2.0}\n",
            "    stop: {stdin_grace_ms: soon}\n",
            "    policy: {mode: robot}\n",
        ));
        let has = |prefix: &str| found.iter().any(|p| p.starts_with(prefix));
        assert!(has("logg: unknown field `logg`"), "{found:#?}");
        assert!(
            has("gateway.buffer: invalid value: integer `-3`"),
            "{found:#?}"
        );
        assert!(has("connectors[0]: missing field `name`"), "{found:#?}");
        assert!(
            has("connectors[1].hello_timeout_ms: 0 is outside 1.."),
            "{found:#?}"
        );
        assert!(
            has("connectors[1].restart.max_restarts: invalid value: integer `-1`"),
            "{found:#?}"
        );
        assert!(
            has("connectors[1].restart.jitter: 2 is outside"),
            "{found:#?}"
        );
        assert!(
            has("connectors[1].stop.stdin_grace_ms: invalid type"),
            "{found:#?}"
        );
        assert!(
            has(r#"connectors[1].policy.mode: "robot" is not valid; allowed: self-chat, bot"#),
            "{found:#?}"
        );
        assert_eq!(found.len(), 8, "{found:#?}");
    }

    #[test]
    fn a_tilde_means_the_home_directory() {
        let cfg = parse(
            "hermes_home: ~/.hermes\nstate_dir: ~/bk\nconnectors:\n  - name: a\n    command: sh\n",
        )
        .unwrap();
        let home = PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(cfg.hermes_home, home.join(".hermes"));
        assert_eq!(cfg.state_dir, home.join("bk"));
    }

    #[test]
    fn no_connector_is_a_problem() {
        assert_eq!(
            problems("state_dir: x\n"),
            vec!["connectors: no connector is configured"]
        );
    }
}

/// Property tests of the config parser; `PROPTEST_CASES=100000 cargo test --release fuzz_config`
/// for a longer run.
#[cfg(test)]
mod fuzz_config {
    use super::*;
    use proptest::prelude::*;

    fn yaml_value() -> impl Strategy<Value = serde_yaml_ng::Value> {
        let leaf = prop_oneof![
            Just(serde_yaml_ng::Value::Null),
            any::<bool>().prop_map(serde_yaml_ng::Value::Bool),
            any::<i64>().prop_map(|n| serde_yaml_ng::Value::Number(n.into())),
            "[a-z_]{0,12}".prop_map(serde_yaml_ng::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(serde_yaml_ng::Value::Sequence),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            "name",
                            "command",
                            "connectors",
                            "restart",
                            "jitter",
                            "policy",
                            "mode",
                            "state_dir",
                            "[a-z]{1,8}"
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| {
                    serde_yaml_ng::Value::Mapping(
                        kv.into_iter()
                            .map(|(k, v)| (serde_yaml_ng::Value::String(k), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_a_typed_error(text in ".{0,400}") {
            let _ = SupervisorConfig::parse(&text, Path::new("fuzz.yaml"), Path::new("/tmp"));
        }

        #[test]
        fn any_yaml_shape_parses_or_is_a_typed_error(value in yaml_value()) {
            let text = serde_yaml_ng::to_string(&value).unwrap();
            match SupervisorConfig::parse(&text, Path::new("fuzz.yaml"), Path::new("/tmp")) {
                Ok(cfg) => prop_assert!(!cfg.connectors.is_empty()),
                Err(ConfigError::Invalid { problems, .. }) => prop_assert!(!problems.is_empty()),
                Err(_) => {}
            }
        }
    }
}
