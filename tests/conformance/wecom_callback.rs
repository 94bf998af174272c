//! WeCom's self-built app connector: the fake WeCom posts encrypted callbacks to it, retrying
//! each until it is answered `success` as WeCom does, and serves the API replies go out by.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::wecom::FakeWecom;

/// The fake, as a self-built app sees it; `port` is the callback's, fixed as behind the
/// reverse proxy WeCom posts to, so a restarted connector is where WeCom retries.
pub struct SelfBuiltApp {
    fake: FakeWecom,
    port: u16,
}

impl super::Platform for SelfBuiltApp {
    const NAME: &'static str = "wecom_callback";
    const REDELIVERS: bool = true;
    const ALLOWED: &'static str = "zhangsan";
    const STRANGER: &'static str = "wangwu";
    const STARTED_BECAUSE: &'static str = "WECOM_CALLBACK_CORP_ID is set";
    const DOCTOR_RIGHT: &'static str =
        "ok    WeCom self-built app default: WeCom accepts its corp secret";
    const DOCTOR_WRONG: &'static str = "FAIL  WeCom self-built app default";

    fn start(dir: &Path) -> Self {
        Self {
            fake: FakeWecom::start(dir),
            port: crate::support::free_port(),
        }
    }

    fn entry(&self, _dir: &Path, policy: &str) -> String {
        format!(
            "  - name: wecom_callback\n    builtin: wecom_callback\n    env: {{WECOM_CALLBACK_PORT: '{}', WECOM_CALLBACK_API_ROOT: {:?}, WECOM_CALLBACK_CORP_ID: {:?}, WECOM_CALLBACK_AGENT_ID: '{}'}}\n    policy: {{{policy}}}\n    {}\n",
            self.port,
            self.fake.get("api_root"),
            self.fake.get("corp_id"),
            self.fake.get("agent_id"),
            crate::support::QUICK_RESTARTS,
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WECOM_CALLBACK_CORP_SECRET", self.fake.get("corp_secret")),
            ("WECOM_CALLBACK_TOKEN", self.fake.get("callback_token")),
            ("WECOM_CALLBACK_ENCODING_AES_KEY", self.fake.get("aes_key")),
        ]
    }

    fn dm(&self, open: &Value, from: &str, text: &str) {
        let url = crate::support::listening_url(open);
        let posted = self.fake.callback(
            &url,
            from,
            text,
            json!({"retries": 40, "retry_delay_ms": 150}),
        );
        assert_eq!(posted["status"], 200, "{posted}");
    }

    fn sent(&self, _state: &Path, chat: &str, text: &str) -> bool {
        // A chat is `<corp id>:<user>`.
        let user = chat.rsplit(':').next().unwrap();
        self.texts_to(user).iter().any(|t| t == text)
    }

    fn code_sent_to(&self, user: &str) -> Option<String> {
        super::code_in(&self.texts_to(user))
    }

    fn secrets(&self) -> Vec<String> {
        self.env().into_iter().map(|(_, v)| v).collect()
    }

    fn hermes_settings(&self, home: &Path) -> Vec<(&'static str, String)> {
        let mut env = format!(
            "WECOM_CALLBACK_DM_POLICY=allowlist\nWECOM_CALLBACK_ALLOWED_USERS={}\n",
            <Self as super::Platform>::ALLOWED
        );
        for (k, v) in self.doctor_settings(home, true) {
            env.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(home.join(".env"), env).unwrap();
        vec![("WECOM_CALLBACK_PORT", "0".into())]
    }

    fn doctor_settings(&self, _home: &Path, right: bool) -> Vec<(&'static str, String)> {
        let mut env = self.env();
        if !right {
            env[0].1 = format!("not-{}", self.fake.get("corp_secret"));
        }
        env.extend([
            ("WECOM_CALLBACK_CORP_ID", self.fake.get("corp_id")),
            ("WECOM_CALLBACK_AGENT_ID", self.fake.get("agent_id")),
            ("WECOM_CALLBACK_API_ROOT", self.fake.get("api_root")),
        ]);
        env
    }
}

impl SelfBuiltApp {
    /// The texts sent to `user` through `message/send`.
    fn texts_to(&self, user: &str) -> Vec<String> {
        self.fake
            .recorded("message_send")
            .iter()
            .filter(|v| v["body"]["touser"] == user)
            .filter_map(|v| v["body"]["text"]["content"].as_str().map(str::to_owned))
            .collect()
    }
}

conformance!(SelfBuiltApp);
