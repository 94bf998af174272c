//! From the file as written (`schema.rs`) to `SupervisorConfig`: every value checked, every
//! problem collected with its key (`connectors[0].restart.jitter`), paths resolved against the
//! config file's directory, programs looked up on `PATH`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema::*;
use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

pub(super) fn path_segments(path: &serde_path_to_error::Path) -> Vec<Segment> {
    use serde_path_to_error::Segment as S;
    path.iter()
        .filter_map(|s| match s {
            S::Map { key } => Some(Segment::Key(key.clone())),
            S::Seq { index } => Some(Segment::Index(*index)),
            S::Enum { variant } => Some(Segment::Key(variant.clone())),
            S::Unknown => None,
        })
        .collect()
}

/// `connectors[0].restart.jitter`; `(top level)` for the document itself.
pub(super) fn display_key(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        "(top level)".into()
    } else {
        out
    }
}

/// A key as the file has it: `taken` lists entries removed from lists, in order; each one
/// shifts the indices after it in its list back by one.
pub(super) fn original_key(key: &str, taken: &[(String, usize)]) -> String {
    let mut key = key.to_owned();
    for (list, removed) in taken.iter().rev() {
        let prefix = format!("{list}[");
        let Some(rest) = key.strip_prefix(&prefix) else {
            continue;
        };
        let Some((index, tail)) = rest.split_once(']') else {
            continue;
        };
        if let Ok(i) = index.parse::<usize>()
            && i >= *removed
        {
            key = format!("{prefix}{}]{tail}", i + 1);
        }
    }
    key
}

pub(super) fn last_key(key: &str) -> &str {
    key.rsplit(['.', ']']).next().unwrap_or(key)
}

/// The key named by serde's "unknown field `x`, expected …".
pub(super) fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// Takes the value at `path` out of the document; false when there is nothing there.
pub(super) fn remove(value: &mut serde_yaml_ng::Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for s in parents {
        let next = match s {
            Segment::Key(k) => node.get_mut(k.as_str()),
            Segment::Index(i) => node.get_mut(*i),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Segment::Key(k), serde_yaml_ng::Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        (Segment::Index(i), serde_yaml_ng::Value::Sequence(v)) if *i < v.len() => {
            v.remove(*i);
            true
        }
        _ => false,
    }
}

pub(super) fn validate(
    raw: RawConfig,
    path: &Path,
    base: &Path,
) -> Result<SupervisorConfig, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |key: String, message: String| problems.push(Problem { key, message });
    let hermes_home = raw
        .hermes_home
        .clone()
        .map(|h| expand(base, h))
        .unwrap_or_else(hermes::default_hermes_home);

    let state_dir = expand(
        base,
        raw.state_dir.unwrap_or_else(|| PathBuf::from("state")),
    );
    let log = LogConfig {
        path: raw
            .log
            .path
            .map(|p| expand(base, p))
            .unwrap_or_else(|| state_dir.join("bridge.log")),
        max_bytes: raw.log.max_bytes.unwrap_or(10 * 1024 * 1024),
        keep: raw.log.keep.unwrap_or(3),
        debug: raw.log.debug.unwrap_or(false),
    };
    if log.max_bytes < 4096 {
        problem(
            "log.max_bytes".into(),
            format!("{} is below the minimum of 4096", log.max_bytes),
        );
    }
    let gateway = GatewayConfig {
        max_line_bytes: raw.gateway.max_line_bytes.unwrap_or(DEFAULT_LINE_BYTES),
        buffer: raw.gateway.buffer.unwrap_or(1024),
        group_context: raw.gateway.group_context.unwrap_or_else(|| {
            std::env::var("BRIDGEKEEPER_GROUP_CONTEXT")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(super::DEFAULT_GROUP_CONTEXT)
        }),
    };
    if gateway.max_line_bytes < MIN_LINE_BYTES {
        problem(
            "gateway.max_line_bytes".into(),
            format!(
                "{} is below the minimum of {MIN_LINE_BYTES}",
                gateway.max_line_bytes
            ),
        );
    }
    if gateway.buffer == 0 {
        problem("gateway.buffer".into(), "must be at least 1".into());
    }

    if raw.connectors.is_empty() {
        problem("connectors".into(), "no connector is configured".into());
    }
    let mut connectors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, c) in raw.connectors.into_iter().enumerate() {
        let key = |field: &str| format!("connectors[{i}].{field}");
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            problem(
                key("name"),
                format!("{:?} must be non-empty letters, digits, '-' or '_'", c.name),
            );
        } else if !seen.insert(c.name.clone()) {
            problem(
                key("name"),
                format!("{:?} is used by another connector", c.name),
            );
        }
        let mut policy_overrides = BTreeMap::new();
        for (k, v) in c.policy {
            if !hermes::is_policy_key(&k) {
                problem(
                    key(&format!("policy.{k}")),
                    format!(
                        "unknown policy key; known: {}",
                        hermes::policy_keys().join(", ")
                    ),
                );
            } else if let Some(raw) = hermes::yaml_raw(&v) {
                policy_overrides.insert(k, raw);
            } else {
                problem(
                    key(&format!("policy.{k}")),
                    "must be a string, a boolean or a list".into(),
                );
            }
        }
        let platform = c
            .platform
            .clone()
            .or_else(|| c.builtin.clone())
            .unwrap_or_else(|| c.name.clone());
        // The file's own policy values are checked here too, so that every problem of the
        // file is in one report (the other sources are checked when they are read).
        let file_only = hermes::Sources {
            hermes_home: PathBuf::new(),
            cli: BTreeMap::new(),
            file: Some((path.to_owned(), policy_overrides.clone())),
            env: BTreeMap::new(),
            dotenv: None,
            yaml: None,
            relay: None,
        };
        if let Err(e) = hermes::resolve(&file_only, &platform) {
            for invalid in e.problems {
                problem(
                    key(&format!("policy.{}", invalid.key)),
                    format!(
                        "{:?} is not valid; allowed: {}",
                        invalid.value, invalid.allowed
                    ),
                );
            }
        }
        let cwd = c.cwd.map(|p| base.join(p));
        if let Some(dir) = &cwd
            && !dir.is_dir()
        {
            problem(key("cwd"), format!("{} is not a directory", dir.display()));
        }
        let mut args = c.args;
        let mut env = c.env;
        let program = match (&c.command, c.builtin.as_deref()) {
            (Some(command), None) => match resolve_program(command, base, cwd.as_deref()) {
                Ok(p) => p,
                Err(message) => {
                    problem(key("command"), message);
                    PathBuf::new()
                }
            },
            (None, Some(builtin)) => match builtin::connector(builtin, &hermes_home) {
                Ok(spec) => {
                    args.splice(0..0, spec.args);
                    for (k, v) in spec.env {
                        env.entry(k).or_insert(v);
                    }
                    spec.program
                }
                Err(message) => {
                    problem(key("builtin"), message);
                    PathBuf::new()
                }
            },
            (Some(_), Some(_)) => {
                problem(
                    key("builtin"),
                    "give either command or builtin, not both".into(),
                );
                PathBuf::new()
            }
            (None, None) => {
                problem(
                    key("command"),
                    "missing: the program to run (or builtin: telegram)".into(),
                );
                PathBuf::new()
            }
        };

        let r = &c.restart;
        let restart = RestartPolicy {
            initial_backoff: ms(r.initial_backoff_ms.unwrap_or(500)),
            max_backoff: ms(r.max_backoff_ms.unwrap_or(30_000)),
            multiplier: r.multiplier.unwrap_or(2.0),
            jitter: r.jitter.unwrap_or(0.2),
            healthy_after: ms(r.healthy_after_ms.unwrap_or(60_000)),
            max_restarts: r.max_restarts.unwrap_or(5),
            window: ms(r.window_ms.unwrap_or(60_000)),
        };
        if !(1.0..=10.0).contains(&restart.multiplier) {
            problem(
                key("restart.multiplier"),
                format!("{} is outside 1.0..=10.0", restart.multiplier),
            );
        }
        if !(0.0..1.0).contains(&restart.jitter) {
            problem(
                key("restart.jitter"),
                format!("{} is outside 0.0..1.0", restart.jitter),
            );
        }
        if restart.max_backoff < restart.initial_backoff {
            problem(
                key("restart.max_backoff_ms"),
                "is smaller than restart.initial_backoff_ms".into(),
            );
        }
        if restart.max_restarts == 0 {
            problem(key("restart.max_restarts"), "must be at least 1".into());
        }
        if restart.window.is_zero() {
            problem(key("restart.window_ms"), "must be at least 1".into());
        }
        let max_line_bytes = c.max_line_bytes.unwrap_or(DEFAULT_LINE_BYTES);
        if max_line_bytes < MIN_LINE_BYTES {
            problem(
                key("max_line_bytes"),
                format!("{max_line_bytes} is below the minimum of {MIN_LINE_BYTES}"),
            );
        }
        let queue_capacity = c.commands.queue.unwrap_or(256);
        if queue_capacity == 0 {
            problem(key("commands.queue"), "must be at least 1".into());
        }
        let hello_timeout_ms = c.hello_timeout_ms.unwrap_or(10_000);
        if hello_timeout_ms == 0 {
            problem(
                key("hello_timeout_ms"),
                "0 is outside 1.. (milliseconds to wait for the connector's hello)".into(),
            );
        }
        let command_timeout = ms(c.commands.timeout_ms.unwrap_or(60_000));
        if command_timeout.is_zero() {
            problem(key("commands.timeout_ms"), "must be at least 1".into());
        }
        let defaults = LivenessPolicy::default();
        let liveness = LivenessPolicy {
            ping_interval: c
                .liveness
                .ping_interval_ms
                .map_or(defaults.ping_interval, ms),
            ping_timeout: c.liveness.ping_timeout_ms.map_or(defaults.ping_timeout, ms),
            silence: c.liveness.silence_ms.map_or(defaults.silence, ms),
        };
        if !liveness.ping_interval.is_zero() && liveness.ping_timeout.is_zero() {
            problem(
                key("liveness.ping_timeout_ms"),
                "0 is outside 1.. while pings are on (liveness.ping_interval_ms > 0)".into(),
            );
        }
        let w = WatchdogPolicy::default();
        let l = &c.liveness;
        let watchdog = WatchdogPolicy {
            transport_inactive: l.transport_inactive_ms.map_or(w.transport_inactive, ms),
            app_silent: l.app_silent_ms.map_or(w.app_silent, ms),
            app_silent_after_reconnect: l
                .app_silent_after_reconnect_ms
                .map_or(w.app_silent_after_reconnect, ms),
            cooldown: l.reconnect_cooldown_ms.map_or(w.cooldown, ms),
            max_per_hour: l.max_reconnects_per_hour.unwrap_or(w.max_per_hour),
        };
        let r = &c.pacing;
        // A platform whose description says it is not paced (one that answers a too-fast send
        // with how long to wait) starts unpaced; saying anything of pacing turns it on.
        let paced = crate::connectors::description::describe(&platform).is_none_or(|d| d.paced);
        let d = if paced || r.is_set() {
            PacingPolicy::default()
        } else {
            PacingPolicy {
                per_minute: 0,
                ..PacingPolicy::default()
            }
        };
        let pacing = PacingPolicy {
            per_minute: r.per_minute.unwrap_or(d.per_minute),
            burst: r.burst.unwrap_or(d.burst),
            chat_per_minute: r.chat_per_minute.unwrap_or(d.chat_per_minute),
            chat_burst: r.chat_burst.unwrap_or(d.chat_burst),
            gap_min: r.gap_min_ms.map_or(d.gap_min, ms),
            gap_max: r.gap_max_ms.map_or(d.gap_max, ms),
            simulate_typing: r.simulate_typing.unwrap_or(d.simulate_typing),
            typing_per_char: r.typing_ms_per_char.map_or(d.typing_per_char, ms),
            typing_max: r.typing_max_ms.map_or(d.typing_max, ms),
        };
        if !pacing.is_off() {
            if pacing.chat_per_minute == 0 {
                problem(
                    key("pacing.chat_per_minute"),
                    "0 is outside 1.. while pacing is on (pacing.per_minute > 0)".into(),
                );
            }
            if pacing.gap_max < pacing.gap_min {
                problem(
                    key("pacing.gap_max_ms"),
                    "is smaller than pacing.gap_min_ms".into(),
                );
            }
        }
        connectors.push(ConnectorConfig {
            policy_source: None,
            name: c.name,
            platform,
            policy_overrides,
            access: AccessPolicy::default(),
            program,
            args,
            env,
            cwd,
            session_dir: c.session_dir.map(|p| expand(base, p)),
            max_line_bytes,
            hello_timeout: ms(hello_timeout_ms),
            restart,
            stop: StopPolicy {
                stdin_grace: ms(c.stop.stdin_grace_ms.unwrap_or(5_000)),
                term_grace: ms(c.stop.term_grace_ms.unwrap_or(3_000)),
            },
            queue_capacity,
            command_timeout,
            liveness,
            watchdog,
            pacing,
        });
    }

    for (i, c) in connectors.iter().enumerate() {
        if c.max_line_bytes > gateway.max_line_bytes {
            problem(
                format!("connectors[{i}].max_line_bytes"),
                format!(
                    "{} is above gateway.max_line_bytes ({}): messages between the two limits could never be handed to the gateway",
                    c.max_line_bytes, gateway.max_line_bytes
                ),
            );
        }
    }

    for (i, t) in raw.operator_targets.iter().enumerate() {
        if !connectors.iter().any(|c| c.name == t.connector) {
            problem(
                format!("operator_targets[{i}].connector"),
                format!("{:?} is not a configured connector", t.connector),
            );
        }
    }

    let relay = raw.relay.and_then(|r| {
        let listen = r.listen.as_deref().unwrap_or("127.0.0.1:8790");
        let Ok(addr) = listen.parse() else {
            problem(
                "relay.listen".into(),
                format!("{listen:?} is not an address like 127.0.0.1:8790"),
            );
            return None;
        };
        let mut c = RelayConfig::new(addr);
        c.secret_file = r.secret_file.map(|p| expand(base, p));
        c.insecure_no_auth = r.insecure_no_auth.unwrap_or(false);
        c.buffer = r.buffer.unwrap_or(c.buffer);
        c.ack_timeout = r.ack_timeout_ms.map_or(c.ack_timeout, ms);
        c.max_frame_bytes = r.max_frame_bytes.unwrap_or(c.max_frame_bytes);
        c.local_media_paths = r.local_media_paths.unwrap_or(false);
        if c.buffer == 0 {
            problem("relay.buffer".into(), "must be at least 1".into());
        }
        if let Err(e) = c.check() {
            problem("relay.insecure_no_auth".into(), e);
        }
        Some(c)
    });

    let metrics = raw.metrics.and_then(|m| {
        let Some(listen) = m.listen else {
            problem(
                "metrics.listen".into(),
                "is required: the address to serve /metrics on, like 127.0.0.1:9464".into(),
            );
            return None;
        };
        let parsed = listen.parse().ok();
        if parsed.is_none() {
            problem(
                "metrics.listen".into(),
                format!("{listen:?} is not an address like 127.0.0.1:9464"),
            );
        }
        parsed
    });

    if problems.is_empty() {
        Ok(SupervisorConfig {
            relay,
            metrics,
            path: path.to_owned(),
            hermes_home,
            send_policy: raw.send_policy,
            operator_targets: raw.operator_targets,
            warnings: Vec::new(),
            state_dir,
            log,
            gateway,
            connectors,
        })
    } else {
        Err(problems)
    }
}

/// A path from the config file: `~/` is the user's home, a relative path is relative to the
/// config file's directory.
pub(super) fn expand(base: &Path, path: PathBuf) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => base.join(path),
    }
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A bare name (`node`) is looked up on `PATH`; a path is taken relative to the config file.
pub(super) fn resolve_program(
    command: &str,
    base: &Path,
    cwd: Option<&Path>,
) -> Result<PathBuf, String> {
    if command.is_empty() {
        return Err("is empty".into());
    }
    if command.contains('/') {
        let path = base.join(command);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{} does not exist", path.display()))
        };
    }
    which::which_in(command, std::env::var_os("PATH"), cwd.unwrap_or(base)).map_err(|_| {
        let hint = if command == "node" {
            " (install Node.js 20 or later, e.g. `apt-get install nodejs`, or give its full path)"
        } else {
            ""
        };
        format!("{command:?} was not found on PATH{hint}")
    })
}
