//! Hermes' own code from the test venv (`hermes-agent` from PyPI, installed by
//! `scripts/test.sh`): the one way a test runs a Hermes script (`tests/hermes_*.py`), and the
//! real relay client driven through `tests/hermes_relay.py`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{PATIENCE, Reaped, json_lines};

/// The relay secret every test's gateway and `run` share.
pub const SECRET: &str = "relay-test-secret-0123456789";

/// A token as Hermes makes one, for `gateway`, signed with `SECRET`, valid 300 s.
pub fn token_for(gateway: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secret = bridgekeeper::relay::auth::Secret::new(SECRET).unwrap();
    bridgekeeper::relay::auth::make(gateway, &secret, now + 300)
}

/// The venv's Python with `hermes-agent` installed (scripts/test.sh makes it).
pub fn python() -> PathBuf {
    let path = std::env::var_os("BRIDGEKEEPER_HERMES_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/hermes-venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh, which installs hermes-agent into it",
        path.display()
    );
    path
}

/// `tests/<name>` on the venv's Python with `HERMES_HOME=home` and `env`, stdin piped: the
/// process (killed when dropped) and the JSON lines it prints.
pub fn script(name: &str, home: &Path, env: &[(&str, String)]) -> (Reaped, mpsc::Receiver<Value>) {
    std::fs::create_dir_all(home).unwrap();
    let mut child = std::process::Command::new(python())
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(name),
        )
        .env("HERMES_HOME", home)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let rx = json_lines(child.stdout.take().unwrap());
    (Reaped(child), rx)
}

/// The next line a script printed, within `PATIENCE`.
pub fn next(rx: &mpsc::Receiver<Value>) -> Value {
    rx.recv_timeout(PATIENCE)
        .expect("the Hermes script said nothing")
}

/// The real Hermes relay client in a Python process, driven by `tests/hermes_relay.py`.
pub struct Relay {
    child: Reaped,
    events: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
}

impl Relay {
    /// A gateway dialling the relay on `port` with `secret`, fronting `platforms`
    /// (`GATEWAY_RELAY_PLATFORMS`), its `HERMES_HOME` at `home` (for Hermes' pairing store).
    pub fn start(port: u16, secret: &str, home: &Path, platforms: &str) -> Self {
        let (child, events) = script(
            "hermes_relay.py",
            home,
            &[
                ("GATEWAY_RELAY_URL", format!("http://127.0.0.1:{port}")),
                ("GATEWAY_RELAY_ID", "gw-test".into()),
                ("GATEWAY_RELAY_SECRET", secret.into()),
                ("GATEWAY_RELAY_PLATFORMS", platforms.into()),
            ],
        );
        Self {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// Started and told to connect; returns once it says it is connected.
    pub fn connected(port: u16, home: &Path, platforms: &str) -> Self {
        let mut h = Self::start(port, SECRET, home, platforms);
        h.cmd(serde_json::json!({"cmd": "connect"}));
        h.wait("connected", |_| true);
        h
    }

    pub fn cmd(&mut self, cmd: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    /// The first event named `name` that `pred` accepts (others are kept in `seen`).
    pub fn wait(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = self.seen.iter().find(|v| v["event"] == name && pred(v)) {
                return v.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => panic!("no {name} event; seen: {:?}", self.seen),
            }
        }
    }

    /// Collects events for `d` and returns them all.
    pub fn settle(&mut self, d: Duration) -> &[Value] {
        let until = Instant::now() + d;
        while let Ok(v) = self
            .events
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.seen.push(v);
        }
        &self.seen
    }

    pub fn messages_with(&self, text: &str) -> usize {
        self.seen
            .iter()
            .filter(|v| v["event"] == "message" && v["text"] == text)
            .count()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
