//! node-bridge's WhatsApp (real Baileys) against crabline's fake WhatsApp server.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::whatsapp::{FakeWhatsApp, node_bridge_dir};

/// The fake server, and where the session linked to it is kept.
pub struct WhatsApp {
    server: FakeWhatsApp,
    dir: PathBuf,
}

impl WhatsApp {
    fn jid(user: &str) -> String {
        format!("{user}@s.whatsapp.net")
    }

    /// The account's private noise key, as `creds.json` in `session` holds it.
    fn noise_key(session: &Path) -> Option<String> {
        let creds: Value =
            serde_json::from_str(&std::fs::read_to_string(session.join("creds.json")).ok()?)
                .ok()?;
        creds["noiseKey"]["private"]["data"]
            .as_str()
            .map(str::to_owned)
    }

    /// What lets `run` and `doctor` find Node and node-bridge, and node-bridge the server.
    fn node(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            (
                "BRIDGEKEEPER_NODE_BRIDGE",
                node_bridge_dir().join("src/index.js").display().to_string(),
            ),
            ("WHATSAPP_WEB_SOCKET_URL", self.server.ws_url.clone()),
        ]
    }
}

impl super::Platform for WhatsApp {
    const NAME: &'static str = "whatsapp";
    // Baileys' socket only pushes: the rest of a burst waits for the reconnect.
    const REDELIVERS: bool = false;
    const ALLOWED: &'static str = "15551234567";
    const STRANGER: &'static str = "15557654321";
    const STARTED_BECAUSE: &'static str = "a linked WhatsApp session";
    const DOCTOR_RIGHT: &'static str = "is private (0700)";
    const DOCTOR_WRONG: &'static str = "has mode 0755: it holds the account's keys";
    // crabline ends the connection (428) on an edit that comes a moment after its message,
    // and on a delete; node-bridge then exits and is started again.
    const FAKE_DROPS_CONNECTION: bool = true;

    fn start(dir: &Path) -> Self {
        Self {
            server: FakeWhatsApp::start(dir),
            dir: dir.to_owned(),
        }
    }

    fn entry(&self, _dir: &Path, policy: &str) -> String {
        let extra = format!(
            "policy: {{mode: bot, {policy}}}\n{}",
            crate::support::QUICK_RESTARTS
        );
        self.server.node_bridge_connector(&self.dir, &extra, "")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn dm(&self, _open: &Value, from: &str, text: &str) {
        self.server.inject_dm(from, text);
    }

    fn sent(&self, _state: &Path, chat: &str, text: &str) -> bool {
        self.server
            .accepted_sends()
            .contains(&(chat.to_owned(), text.to_owned()))
    }

    fn code_sent_to(&self, user: &str) -> Option<String> {
        self.server
            .accepted_sends()
            .iter()
            .find(|(to, text)| *to == Self::jid(user) && text.contains("Your pairing code: "))
            .map(|(_, text)| crate::policy::code_in(text))
    }

    fn secrets(&self) -> Vec<String> {
        [
            self.dir.join("session"),
            self.dir.join("hermes/platforms/whatsapp/session"),
        ]
        .iter()
        .filter_map(|s| Self::noise_key(s))
        .collect()
    }

    fn hermes_settings(&self, home: &Path) -> Vec<(&'static str, String)> {
        self.server
            .seed_session(&home.join("platforms/whatsapp/session"));
        let env = format!(
            "WHATSAPP_MODE=bot\nWHATSAPP_DM_POLICY=allowlist\nWHATSAPP_ALLOWED_USERS={}\n",
            <Self as super::Platform>::ALLOWED
        );
        std::fs::write(home.join(".env"), env).unwrap();
        self.node()
    }

    fn hermes_gateway_env(&self) -> Vec<(&'static str, String)> {
        vec![("WHATSAPP_ENABLED", "true".into())]
    }

    fn doctor_settings(&self, home: &Path, right: bool) -> Vec<(&'static str, String)> {
        use std::os::unix::fs::PermissionsExt;
        let session = home.join("platforms/whatsapp/session");
        if !session.exists() {
            self.server.seed_session(&session);
        }
        let mode = if right { 0o700 } else { 0o755 };
        std::fs::set_permissions(&session, std::fs::Permissions::from_mode(mode)).unwrap();
        self.node()
    }

    /// crabline's WhatsApp has no media host: Baileys' upload ends the connection there (a real
    /// WhatsApp takes it; node-bridge's own test holds the message Baileys is given). What is
    /// checked: the uploaded file reached node-bridge as a `send_media` command.
    fn media_sent(&self, state: &Path, _result: &Value) -> bool {
        let log = std::fs::read_to_string(state.join("bridge.log")).unwrap_or_default();
        log.lines()
            .any(|l| l.contains("command_written") && l.contains("\"send_media\""))
    }
}

conformance!(WhatsApp);
