//! The real Hermes gateway (`hermes gateway run` from the test venv), offline: a Hermes home
//! with this repository's plugin installed and enabled (`hermes-plugin/` copied to
//! `plugins/bridgekeeper`, as `hermes plugins install` puts it), a fake model server answering
//! every completion (`fakes/model.py`), and Tirith off so nothing reaches the network.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{BRIDGEKEEPER, PATIENCE};

/// A Hermes home, set up for the gateway, and the fake model it talks to.
pub struct Home {
    pub path: PathBuf,
    model: Child,
    model_recorder: PathBuf,
}

impl Home {
    /// The home at `dir/hermes` (the platform's settings may already be in it: its
    /// `config.yaml` gets the model, Tirith and the plugin added).
    pub fn new(dir: &Path) -> Self {
        let path = dir.join("hermes");
        std::fs::create_dir_all(path.join("plugins")).unwrap();
        let (model, ready, model_recorder) = super::start_python_fake("model.py", dir, &[]);
        let file = path.join("config.yaml");
        let mut config: serde_yaml_ng::Value = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_yaml_ng::from_str(&t).ok())
            .filter(serde_yaml_ng::Value::is_mapping)
            .unwrap_or_else(|| serde_yaml_ng::Value::Mapping(Default::default()));
        let more: serde_yaml_ng::Value = serde_yaml_ng::from_str(&format!(
            "model: {{provider: custom, base_url: {:?}, default: {:?}}}\n\
             security: {{tirith_enabled: false}}\n\
             plugins: {{enabled: [bridgekeeper]}}\n",
            ready["base_url"].as_str().unwrap(),
            ready["model"].as_str().unwrap(),
        ))
        .unwrap();
        for (k, v) in more.as_mapping().unwrap() {
            config
                .as_mapping_mut()
                .unwrap()
                .insert(k.clone(), v.clone());
        }
        std::fs::write(&file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        let plugin = path.join("plugins/bridgekeeper");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("hermes-plugin");
        std::fs::create_dir_all(&plugin).unwrap();
        for f in std::fs::read_dir(source).unwrap() {
            let f = f.unwrap().path();
            if f.is_file() {
                std::fs::copy(&f, plugin.join(f.file_name().unwrap())).unwrap();
            }
        }
        Self {
            path,
            model,
            model_recorder,
        }
    }

    /// How many completions the model was asked for so far.
    pub fn completions(&self) -> usize {
        super::recorded(&self.model_recorder).len()
    }

    /// bridgekeeper's state directory for this home (where `run` without a config keeps it).
    pub fn state_dir(&self) -> PathBuf {
        bridgekeeper::config::hermes_paths::state_dir_for(
            &bridgekeeper::connectors::whatsapp::session_dir(&self.path),
        )
    }

    /// `bridgekeeper status --json` for this home.
    pub fn status(&self) -> Value {
        let out = Command::new(BRIDGEKEEPER)
            .args(["status", "--json", "--hermes-home"])
            .arg(&self.path)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("status: {}", String::from_utf8_lossy(&out.stderr)))
    }

    /// The gateway started on this home, with `BRIDGEKEEPER_BIN` set (or not) and `env`.
    pub fn gateway(&self, with_binary: bool, env: &[(&str, String)]) -> Gateway {
        let venv_bin = super::hermes::python().parent().unwrap().to_owned();
        let out = self.path.join("gateway.out");
        let mut command = Command::new(venv_bin.join("hermes"));
        command
            .args(["gateway", "run"])
            .env("HERMES_HOME", &self.path)
            .env("PATH", format!("{}:/usr/bin:/bin", venv_bin.display()))
            .env_remove("BRIDGEKEEPER_BIN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(self.path.join("gateway.err")).unwrap(),
            ));
        for key in ["TELEGRAM_BOT_TOKEN", "WHATSAPP_ENABLED", "WEBHOOK_ENABLED"] {
            command.env_remove(key);
        }
        if with_binary {
            command.env("BRIDGEKEEPER_BIN", BRIDGEKEEPER);
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Gateway {
            child: command.spawn().expect("start hermes gateway run"),
            home: self.path.clone(),
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.model.kill();
        let _ = self.model.wait();
    }
}

/// The gateway at `dir/hermes` with Hermes' own Telegram adapter (no bridgekeeper), pointed
/// at the Bot API at `api_root` by `platforms.telegram.extra.base_url`, letting `allowed` in;
/// once Telegram is connected.
pub fn hermes_own_telegram(
    dir: &Path,
    bot_token: &str,
    api_root: &str,
    allowed: i64,
) -> (Home, Gateway) {
    let hermes = dir.join("hermes");
    std::fs::create_dir_all(&hermes).unwrap();
    std::fs::write(
        hermes.join(".env"),
        format!("TELEGRAM_BOT_TOKEN={bot_token}\nTELEGRAM_ALLOWED_USERS={allowed}\n"),
    )
    .unwrap();
    let extra = serde_json::json!({"platforms": {"telegram": {"extra": {
        "base_url": format!("{api_root}/bot"),
        "base_file_url": format!("{api_root}/file/bot")}}}});
    std::fs::write(hermes.join("config.yaml"), extra.to_string()).unwrap();
    let home = Home::new(dir);
    let gateway = home.gateway(false, &[]);
    gateway.connected("telegram");
    (home, gateway)
}

/// A running `hermes gateway run`; SIGTERMed (then SIGKILLed) when dropped.
pub struct Gateway {
    child: Child,
    home: PathBuf,
}

impl Gateway {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Hermes' own state file (`gateway_state.json`).
    pub fn state(&self) -> Value {
        std::fs::read_to_string(self.home.join("gateway_state.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// Waits until Hermes says `platform` is connected.
    pub fn connected(&self, platform: &str) {
        self.wait(&format!("{platform} to be connected"), || {
            self.state()["platforms"][platform]["state"] == "connected"
        });
    }

    /// What the gateway logged (`logs/gateway.log`; `logs/agent.log`, which has what plugins
    /// say as they load, before the gateway's own log is open; its stdout and stderr).
    pub fn log(&self) -> String {
        [
            "logs/gateway.log",
            "logs/agent.log",
            "gateway.out",
            "gateway.err",
        ]
        .iter()
        .map(|f| std::fs::read_to_string(self.home.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// Waits for `condition`, showing the gateway's log when it does not come.
    pub fn wait(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + 2 * PATIENCE;
        while !condition() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the gateway said:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `bridgekeeper run` processes whose parent is the gateway.
    pub fn bridgekeepers(&self) -> Vec<u32> {
        bridgekeeper_children(self.pid())
    }

    /// The one `bridgekeeper run` child, once there is exactly one.
    pub fn bridgekeeper(&self) -> u32 {
        let mut found = Vec::new();
        self.wait("one bridgekeeper run child", || {
            found = self.bridgekeepers();
            found.len() == 1
        });
        found[0]
    }

    /// The `connection` event the plugin logged for `connector` (its reason names the address
    /// a receiver listens on), shaped as the link gives it.
    pub fn connection(&self, connector: &str) -> Value {
        let marker = format!("bridgekeeper: {connector} connection open ");
        let mut reason = String::new();
        self.wait(&format!("{connector}'s connection"), || {
            let log = self.log();
            reason = log
                .lines()
                .find_map(|l| l.split_once(&marker).map(|(_, r)| r.trim().to_owned()))
                .unwrap_or_default();
            log.contains(&marker)
        });
        serde_json::json!({"status": {"state": "open", "reason": reason}})
    }

    /// The chat Hermes saw a message holding `text` in (its `inbound message` log line).
    pub fn chat_of(&self, platform: &str, text: &str) -> String {
        let mut chat = String::new();
        self.wait(&format!("Hermes to take {text:?}"), || {
            chat = self
                .log()
                .lines()
                .filter(|l| l.contains("inbound message: ") && l.contains(text))
                .find_map(|l| {
                    let rest = l.split_once(&format!("platform={platform} "))?.1;
                    let after = rest.split_once(" chat=")?.1;
                    Some(after.split(" msg=").next()?.to_owned())
                })
                .unwrap_or_default();
            !chat.is_empty()
        });
        chat
    }

    /// SIGTERM, then how long until the gateway exited (SIGKILL after `limit`).
    pub fn terminate(&mut self, limit: Duration) -> Duration {
        signal(self.pid(), nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        started.elapsed()
    }

    /// SIGKILL, and the wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate(Duration::from_secs(20));
        }
    }
}

pub fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// Every live `bridgekeeper run` (a zombie has no command line): its pid, its parent's, and
/// its `/proc` folder.
fn bridgekeeper_runs() -> Vec<(u32, u32, PathBuf)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first() != Some(&BRIDGEKEEPER.as_bytes()) || args.get(1) != Some(&&b"run"[..]) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid …`: the fields after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        found.push((pid, ppid, entry.path()));
    }
    found
}

/// The live `bridgekeeper run` processes whose parent is `parent`.
pub fn bridgekeeper_children(parent: u32) -> Vec<u32> {
    bridgekeeper_runs()
        .into_iter()
        .filter(|(_, ppid, _)| *ppid == parent)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Every live `bridgekeeper run` with `HERMES_HOME` at `home`, whoever its parent.
pub fn bridgekeepers_for(home: &Path) -> Vec<u32> {
    let wanted = format!("HERMES_HOME={}", home.display());
    bridgekeeper_runs()
        .into_iter()
        .filter(|(_, _, proc)| {
            let environ = std::fs::read(proc.join("environ")).unwrap_or_default();
            environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes())
        })
        .map(|(pid, _, _)| pid)
        .collect()
}
