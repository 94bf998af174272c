//! `bridgekeeper doctor`: checks what the bridges need (WhatsApp's node and session here; each
//! built-in connector's own checks through its description) and says, for each problem, the
//! command that fixes it. Exits non-zero when something is broken (warnings alone do not).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::builtin::{Enabled, WHATSAPP, find_node_bridge, hermes_platforms};
use crate::config::hermes::{Sources, default_hermes_home, resolve};
use crate::connectors::description::ALL;
use crate::connectors::kit::checks::{CheckInput, Finding, Level, fail, ok, warn};
use crate::connectors::whatsapp::session_dir;
use crate::util::mask::mask_id;

/// The Baileys version node-bridge is built and tested against.
const BAILEYS_VERSION: &str = "7.0.0-rc13";
const MIN_NODE_MAJOR: u32 = 20;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
    /// The config file the daemon runs with: its `hermes_home` and its WhatsApp connector's
    /// session directory are checked.
    #[arg(long, short, conflicts_with = "hermes_home")]
    pub config: Option<PathBuf>,
    /// The WhatsApp session directory (default: Hermes' own).
    #[arg(long)]
    pub session: Option<PathBuf>,
    /// The legacy HTTP port to check.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    #[arg(long)]
    pub node_bridge: Option<PathBuf>,
}

fn check_node() -> Finding {
    let Ok(node) = which::which("node") else {
        return fail(
            "node is not on PATH",
            "install Node.js 20 or later (e.g. `apt-get install nodejs`)",
        );
    };
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let major: Option<u32> = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    match major {
        Some(m) if m >= MIN_NODE_MAJOR => ok(format!("node {version} at {}", node.display())),
        _ => fail(
            format!(
                "node {version:?} at {} is older than {MIN_NODE_MAJOR}",
                node.display()
            ),
            format!("install Node.js {MIN_NODE_MAJOR} or later"),
        ),
    }
}

fn check_node_bridge(explicit: Option<&Path>) -> Finding {
    let entry = match find_node_bridge(explicit) {
        Ok(e) => e,
        Err(e) => {
            return fail(
                format!("{e}"),
                "pass --node-bridge PATH or set BRIDGEKEEPER_NODE_BRIDGE",
            );
        }
    };
    let dir = entry
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let manifest = dir.join("node_modules/baileys/package.json");
    let version = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    let install = format!("cd {} && npm ci", dir.display());
    match version.as_deref() {
        Some(BAILEYS_VERSION) => ok(format!(
            "node-bridge dependencies installed (baileys {BAILEYS_VERSION}) in {}",
            dir.display()
        )),
        Some(other) => fail(
            format!("node-bridge has baileys {other}, expected {BAILEYS_VERSION}"),
            install,
        ),
        None => fail(
            format!(
                "node-bridge dependencies are not installed in {}",
                dir.display()
            ),
            install,
        ),
    }
}

fn check_session(session: &Path) -> Vec<Finding> {
    let shown = session.display();
    let meta = match std::fs::metadata(session) {
        Ok(m) => m,
        Err(_) => {
            return vec![warn(
                format!("session directory {shown} does not exist (not linked)"),
                format!("bridgekeeper whatsapp link --session {shown}"),
            )];
        }
    };
    let mut out = Vec::new();
    let mode = meta.permissions().mode() & 0o777;
    out.push(if mode == 0o700 {
        ok(format!("session directory {shown} is private (0700)"))
    } else {
        fail(
            format!("session directory {shown} has mode {mode:04o}: it holds the account's keys"),
            format!("chmod 700 {shown}"),
        )
    });
    let probe = session.join(".bridgekeeper-doctor-probe");
    out.push(match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            ok(format!("session directory {shown} is writable"))
        }
        Err(e) => fail(
            format!("session directory {shown} is not writable: {e}"),
            format!("chown $(id -u) {shown}"),
        ),
    });
    let creds = session.join("creds.json");
    out.push(match std::fs::read_to_string(&creds) {
        Err(_) => warn(
            "not linked (no creds.json)",
            format!("bridgekeeper whatsapp link --session {shown}"),
        ),
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => match v.pointer("/me/id").and_then(|x| x.as_str()) {
                Some(id) => ok(format!("linked as {}", mask_id(id))),
                None => warn(
                    "not linked (creds.json has no account)",
                    format!("bridgekeeper whatsapp link --session {shown}"),
                ),
            },
            Err(_) if session.join("creds.json.bak").exists() => warn(
                "creds.json is corrupt; node-bridge restores creds.json.bak at its next start",
                "start the bridge, or copy creds.json.bak over creds.json",
            ),
            Err(_) => fail(
                "creds.json is corrupt and there is no backup",
                format!("bridgekeeper whatsapp link --relink --session {shown}"),
            ),
        },
    });
    out.push(match crate::util::lock::probe(session) {
        Ok(Some(pid)) => ok(format!(
            "the session is in use by bridgekeeper{} (it holds the session lock)",
            pid.map(|p| format!(" pid {p}")).unwrap_or_default()
        )),
        Ok(None) => ok("no bridgekeeper holds the session lock"),
        Err(e) => warn(
            format!("cannot check the session lock: {e}"),
            format!("ls -l {shown}"),
        ),
    });
    out
}

fn check_port(port: u16) -> Finding {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => ok(format!(
            "port {port} on 127.0.0.1 is free for the legacy HTTP API"
        )),
        Err(e) => warn(
            format!("port {port} on 127.0.0.1 is taken ({e}): a bridge may already run there"),
            format!("`ss -ltnp 'sport = :{port}'` shows who; or pass --port to the bridge"),
        ),
    }
}

fn check_settings(home: &Path) -> Vec<Finding> {
    let sources = match Sources::gather(home, Default::default()) {
        Ok(s) => s,
        Err(e) => return vec![fail(e.to_string(), "fix the file named above")],
    };
    match resolve(&sources, "whatsapp") {
        Err(e) => vec![fail(
            e.to_string(),
            "correct the values named above (`bridgekeeper config --explain` shows every source)",
        )],
        Ok(r) if r.warnings.is_empty() => {
            vec![ok("WhatsApp settings resolve without contradictions")]
        }
        Ok(r) => r
            .warnings
            .into_iter()
            .map(|w| {
                warn(
                    w,
                    "`bridgekeeper config --explain` shows every value and its source",
                )
            })
            .collect(),
    }
}

fn check_pairing(home: &Path) -> Finding {
    let store = crate::pairing::PairingStore::new(crate::pairing::locate(home));
    match store.snapshot("whatsapp", 0.0) {
        Ok(_) => ok(format!(
            "pairing files in {} are readable",
            store.dir().display()
        )),
        Err(e) => fail(
            e.to_string(),
            "fix or remove the file named above (a copy was kept)",
        ),
    }
}

/// A built-in connector's setting as it would run: its connector entry's `env` in the config,
/// else the environment, else Hermes' `.env`; empty counts as unset.
fn connector_setting<'a>(
    home: &'a Path,
    config: Option<&'a crate::config::SupervisorConfig>,
    platform: &'a str,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |key: &str| {
        config
            .and_then(|c| {
                c.connectors
                    .iter()
                    .find(|k| k.platform == platform)
                    .and_then(|k| k.env.get(key).cloned())
            })
            .or_else(|| std::env::var(key).ok())
            .or_else(|| {
                crate::config::hermes::dotenv_value(&home.join(".env"), key)
                    .ok()
                    .flatten()
            })
            .filter(|v| !v.trim().is_empty())
    }
}

/// Which platforms `run` starts: the config's connectors, or (without one) what Hermes'
/// settings turn on, each with the setting that did.
fn check_platforms(
    config: Option<&crate::config::SupervisorConfig>,
    home: &Path,
    on: &[Enabled],
) -> Finding {
    if let Some(c) = config {
        let names: Vec<&str> = c.connectors.iter().map(|k| k.name.as_str()).collect();
        return ok(format!(
            "run starts the config's connectors: {}",
            names.join(", ")
        ));
    }
    if on.is_empty() {
        return fail(
            "run without --config has no platform to start",
            format!(
                "set {} in the environment or {}",
                crate::config::builtin::enabling_settings(),
                home.join(".env").display()
            ),
        );
    }
    let listed: Vec<String> = on
        .iter()
        .map(|p| format!("{} ({})", p.platform, p.because))
        .collect();
    ok(format!("run without --config starts {}", listed.join(", ")))
}

/// Whether `run` would start WhatsApp: a config's connector of that platform, else Hermes'
/// settings (`on`, as `check_platforms` reads them).
fn whatsapp_would_run(config: Option<&crate::config::SupervisorConfig>, on: &[Enabled]) -> bool {
    match config {
        Some(c) => c.connectors.iter().any(|k| k.platform == WHATSAPP),
        None => on.iter().any(|p| p.platform == WHATSAPP),
    }
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let config = args
        .config
        .as_deref()
        .map(crate::config::SupervisorConfig::load)
        .transpose()?;
    let home = match &config {
        Some(c) => c.hermes_home.clone(),
        None => args.hermes_home.clone().unwrap_or_else(default_hermes_home),
    };
    let configured_session = config.as_ref().and_then(|c| {
        c.connectors
            .iter()
            .find(|k| k.platform == WHATSAPP)
            .and_then(|k| k.session_dir.clone())
    });
    let session = args
        .session
        .clone()
        .or(configured_session)
        .unwrap_or_else(|| session_dir(&home));
    // What Hermes' settings turn on, read once: without a config file, `run` starts these.
    let on = if config.is_some() {
        Vec::new()
    } else {
        hermes_platforms(&home, &session)
    };
    let mut findings = vec![check_platforms(config.as_ref(), &home, &on)];
    // Node and node-bridge matter only where WhatsApp would run (or one was named).
    if args.node_bridge.is_some() || whatsapp_would_run(config.as_ref(), &on) {
        findings.extend([check_node(), check_node_bridge(args.node_bridge.as_deref())]);
    } else {
        findings.push(ok(
            "WhatsApp would not run: Node and node-bridge are not needed",
        ));
    }
    findings.extend(check_session(&session));
    findings.push(check_port(args.port));
    findings.extend(check_settings(&home));
    findings.push(check_pairing(&home));
    for d in ALL {
        let Some(checks) = d.doctor else { continue };
        let setting = connector_setting(&home, config.as_ref(), d.platform);
        let configured = config
            .as_ref()
            .is_some_and(|c| c.connectors.iter().any(|k| k.platform == d.platform));
        findings.extend(checks(&CheckInput {
            home: &home,
            setting: &setting,
            configured,
        }));
    }

    println!("bridgekeeper doctor (Hermes home {})", home.display());
    for f in &findings {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("  {tag}  {}", f.what);
        if let Some(fix) = &f.fix {
            println!("        fix: {fix}");
        }
    }
    let failures = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warnings = findings.iter().filter(|f| f.level == Level::Warn).count();
    println!("{failures} problem(s), {warnings} warning(s)");
    if failures > 0 {
        anyhow::bail!("{failures} problem(s) found");
    }
    Ok(())
}
