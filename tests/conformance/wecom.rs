//! WeCom's AI Bot connector against the fake WeCom's bot WebSocket (`tests/fakes/wecom.py`).

use std::path::Path;

use serde_json::{Value, json};

use crate::support::daemon::Daemon;
use crate::support::wecom::FakeWecom;

/// The fake, as the AI Bot sees it.
pub struct AiBot(FakeWecom);

impl super::Platform for AiBot {
    const NAME: &'static str = "wecom";
    // The bot's socket only pushes: nothing tells WeCom a callback was recorded.
    const REDELIVERS: bool = false;
    const ALLOWED: &'static str = "zhangsan";
    const STRANGER: &'static str = "wangwu";
    const STARTED_BECAUSE: &'static str = "platforms.wecom.extra.bot_id in config.yaml";
    const DOCTOR_RIGHT: &'static str = "ok    WeCom AI Bot: WeCom accepts bot";
    const DOCTOR_WRONG: &'static str = "FAIL  WeCom AI Bot: WeCom refused the subscription";

    fn start(dir: &Path) -> Self {
        Self(FakeWecom::start(dir))
    }

    fn entry(&self, dir: &Path, policy: &str) -> String {
        format!(
            "  - name: wecom\n    builtin: wecom\n    args: [--media-dir, {:?}]\n    env: {{WECOM_WEBSOCKET_URL: {:?}, WECOM_BOT_ID: {:?}}}\n    policy: {{{policy}}}\n    {}\n",
            dir.join("wecom-media"),
            self.0.get("ws_url"),
            self.0.get("bot_id"),
            crate::support::QUICK_RESTARTS,
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("WECOM_SECRET", self.0.get("bot_secret"))]
    }

    fn dm(&self, _open: &Value, from: &str, text: &str) {
        self.0.dm(from, text);
    }

    fn sent(&self, _state: &Path, _chat: &str, text: &str) -> bool {
        // A reply names the callback it answers, not the chat.
        self.texts().iter().any(|t| t == text)
    }

    fn code_sent_to(&self, _user: &str) -> Option<String> {
        super::code_in(&self.texts())
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.0.get("bot_secret")]
    }

    fn hermes_settings(&self, home: &Path) -> Vec<(&'static str, String)> {
        let yaml = json!({"platforms": {"wecom": {"enabled": true, "extra": {
            "bot_id": self.0.get("bot_id"), "secret": self.0.get("bot_secret"),
            "websocket_url": self.0.get("ws_url"), "dm_policy": "allowlist",
            "allow_from": [<Self as super::Platform>::ALLOWED]}}}});
        std::fs::write(home.join("config.yaml"), yaml.to_string()).unwrap();
        Vec::new()
    }

    fn doctor_settings(&self, _home: &Path, right: bool) -> Vec<(&'static str, String)> {
        self.0.admin("bot/refuse", &json!({"on": !right}));
        vec![
            ("WECOM_BOT_ID", self.0.get("bot_id")),
            ("WECOM_SECRET", self.0.get("bot_secret")),
            ("WECOM_WEBSOCKET_URL", self.0.get("ws_url")),
        ]
    }

    /// WeCom holds what comes while no socket is there: the rest of the burst goes once WeCom
    /// has seen the socket close.
    fn after_kill(&self, _d: &mut Daemon) {
        crate::support::wait_blocking("WeCom to see the socket close", || {
            self.0.admin("bot/state", &json!({}))["sockets"] == 0
        });
    }
}

impl AiBot {
    /// The markdown of every message the bot sent, replies and its own.
    fn texts(&self) -> Vec<String> {
        ["aibot_respond_msg", "aibot_send_msg"]
            .iter()
            .flat_map(|cmd| self.0.recorded(cmd))
            .filter_map(|v| v["body"]["markdown"]["content"].as_str().map(str::to_owned))
            .collect()
    }
}

conformance!(AiBot);
