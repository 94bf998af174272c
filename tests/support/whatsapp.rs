//! The local fake WhatsApp server (`@openclaw/crabline`, installed by `npm ci` in node-bridge)
//! and helpers to drive it: start it, seed credentials it accepts, inject inbound messages over
//! its admin URL, and read what it recorded as sent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn node_bridge_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node-bridge")
}

pub struct FakeWhatsApp {
    child: Child,
    pub ws_url: String,
    pub admin_url: String,
    pub admin_token: String,
    pub self_jid: String,
    pub recorder: PathBuf,
}

impl FakeWhatsApp {
    /// The server's process (to freeze it: a server that keeps its sockets and says nothing).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(dir: &Path) -> Self {
        let (child, manifest) = crabline("whatsapp", dir);
        let s = |pointer: &str| manifest_text(&manifest, pointer);
        Self {
            child,
            ws_url: s("/endpoints/baileysWebSocketUrl"),
            admin_url: s("/endpoints/adminInboundUrl"),
            admin_token: s("/adminToken"),
            self_jid: s("/selfJid"),
            recorder: PathBuf::from(s("/recorderPath")),
        }
    }

    /// WhatsApp beside another connector in one run: the server, and a node-bridge entry on
    /// `connectors` letting `friend`'s DMs in.
    pub fn beside(dir: &Path, connectors: &mut Vec<String>, friend: &str) -> Self {
        let server = Self::start(dir);
        let policy =
            format!("policy: {{mode: bot, dm_policy: allowlist, allow_from: ['{friend}']}}");
        connectors.push(server.node_bridge_connector(dir, &policy, ""));
        server
    }

    /// Credentials the server accepts, in `session` (created 0700 by the script).
    pub fn seed_session(&self, session: &Path) {
        let status = Command::new("node")
            .arg(node_bridge_dir().join("test/support/seed-creds.js"))
            .arg(session)
            .arg(&self.self_jid)
            .status()
            .unwrap();
        assert!(status.success(), "seeding credentials failed");
    }

    /// A `connectors:` entry named `whatsapp` running node-bridge against this server, with a
    /// session linked to it in `dir/session` and media in `dir/media`. `extra`: more connector
    /// keys (a `policy:` line, `restart:`…); `env`: more `KEY: value` pairs for node-bridge.
    pub fn node_bridge_connector(&self, dir: &Path, extra: &str, env: &str) -> String {
        let session = dir.join("session");
        self.seed_session(&session);
        let entry = node_bridge_dir().join("src/index.js");
        let media = dir.join("media");
        let more = if env.is_empty() {
            String::new()
        } else {
            format!(", {env}")
        };
        let extra = format!(
            "{extra}\nenv: {{WHATSAPP_WEB_SOCKET_URL: {:?}{more}}}",
            self.ws_url
        );
        let args = [
            entry.to_str().unwrap(),
            "--session",
            session.to_str().unwrap(),
            "--media-dir",
            media.to_str().unwrap(),
        ];
        super::connector_cmd("whatsapp", "node", &args, &extra)
    }

    /// `bridgekeeper legacy --port 0 --mode bot` (the drop-in API) on a session linked to this
    /// server, with Hermes' home at `dir/hermes` holding `dotenv` as its `.env`: the command,
    /// stdio set (stderr piped, for the port), and the Hermes home.
    pub fn legacy_command(&self, dir: &Path, dotenv: &str) -> (Command, PathBuf) {
        let hermes = dir.join("hermes");
        let session = hermes.join("platforms/whatsapp/session");
        self.seed_session(&session);
        std::fs::write(hermes.join(".env"), dotenv).unwrap();
        let mut cmd = Command::new(super::BRIDGEKEEPER);
        cmd.args(["legacy", "--port", "0", "--mode", "bot", "--session"])
            .arg(&session)
            .arg("--hermes-home")
            .arg(&hermes)
            .env("WHATSAPP_WEB_SOCKET_URL", &self.ws_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        (cmd, hermes)
    }

    /// Delivers a DM from `sender` (a phone number) to the linked account.
    pub fn inject_dm(&self, sender: &str, text: &str) -> Value {
        self.inject(&format!("{sender}@s.whatsapp.net"), sender, text)
    }

    /// A text from `sender` in the group `group` (a `…@g.us` JID).
    pub fn inject_group(&self, group: &str, sender: &str, text: &str) -> Value {
        self.inject(group, sender, text)
    }

    /// A text from `sender` (a phone number) in `chat`, through crabline's admin API.
    fn inject(&self, chat: &str, sender: &str, text: &str) -> Value {
        let body = serde_json::json!({"chatJid": chat,
            "senderJid": format!("{sender}@s.whatsapp.net"), "text": text, "pushName": "Tester"});
        let (status, reply) = post_json(
            &self.admin_url,
            &[("X-Crabline-Admin-Token", &self.admin_token)],
            &body,
        );
        assert_eq!(status, 200, "inject failed: {reply}");
        serde_json::from_str(&reply).unwrap()
    }

    /// `(recipient, text)` of every outbound message the server accepted.
    pub fn accepted_sends(&self) -> Vec<(String, String)> {
        super::recorded(&self.recorder)
            .into_iter()
            .filter(|e| e["accepted"] == true && e["body"]["key"]["fromMe"] == true)
            .filter_map(|e| {
                Some((
                    e["body"]["key"]["remoteJid"].as_str()?.to_owned(),
                    e["body"]["message"]["conversation"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }
}

impl Drop for FakeWhatsApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `crabline serve PROVIDER` with its files in `dir` and waits for its manifest (the
/// ready file: endpoints, tokens, the recorder's path).
// The caller owns the child and kills and waits for it in its `Drop`.
#[allow(clippy::zombie_processes)]
pub fn crabline(provider: &str, dir: &Path) -> (Child, Value) {
    let bin = node_bridge_dir().join("node_modules/.bin/crabline");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci` in node-bridge (scripts/test.sh does)",
        bin.display()
    );
    let ready = dir.join(format!("crabline-{provider}-ready.json"));
    let mut child = Command::new(&bin)
        .args(["--json", "serve", provider, "--ready-file"])
        .arg(&ready)
        .arg("--recorder")
        .arg(dir.join(format!("crabline-{provider}-recorder.jsonl")))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start crabline");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            return (child, v);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("crabline {provider} did not become ready");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A text field of crabline's manifest, by JSON pointer.
pub fn manifest_text(manifest: &Value, pointer: &str) -> String {
    manifest
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in {manifest}"))
        .to_owned()
}

/// A POST of JSON to a loopback URL; returns status and body.
pub fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let reply = super::http::request(
        host,
        "POST",
        &path,
        Some(host),
        headers,
        Some(&body.to_string()),
    );
    (reply.status, reply.body)
}
