//! Weixin's connector against the fake iLink server (`tests/fakes/ilink.py`).

use std::path::Path;

use serde_json::Value;

use crate::support::ilink::FakeIlink;

impl super::Platform for FakeIlink {
    const NAME: &'static str = "weixin";
    const REDELIVERS: bool = true;
    const ALLOWED: &'static str = "alice@im.wechat";
    const STRANGER: &'static str = "bob@im.wechat";
    const STARTED_BECAUSE: &'static str = "WEIXIN_TOKEN is set";
    const DOCTOR_RIGHT: &'static str = "ok    Weixin: iLink accepts the login of";
    const DOCTOR_WRONG: &'static str = "FAIL  Weixin: the iLink session expired";

    fn start(dir: &Path) -> Self {
        FakeIlink::start(dir, 1_000)
    }

    fn entry(&self, dir: &Path, policy: &str) -> String {
        format!(
            "  - name: weixin\n    builtin: weixin\n    args: [--media-dir, {:?}]\n    env: {{{}}}\n    policy: {{{policy}}}\n    {}\n",
            dir.join("wx-media"),
            self.where_it_is()
                .iter()
                .map(|(k, v)| format!("{k}: {v:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            crate::support::QUICK_RESTARTS,
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("WEIXIN_TOKEN", self.token.clone())]
    }

    fn dm(&self, _open: &Value, from: &str, text: &str) {
        FakeIlink::dm(self, from, text, &format!("ctx-{from}"));
    }

    fn sent(&self, _state: &Path, chat: &str, text: &str) -> bool {
        self.texts_to(chat).iter().any(|t| t == text)
    }

    fn code_sent_to(&self, user: &str) -> Option<String> {
        super::code_in(&self.texts_to(user))
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.token.clone()]
    }

    fn hermes_settings(&self, home: &Path) -> Vec<(&'static str, String)> {
        let mut env = format!(
            "WEIXIN_TOKEN={}\nWEIXIN_DM_POLICY=allowlist\nWEIXIN_ALLOWED_USERS={}\n",
            self.token,
            <Self as super::Platform>::ALLOWED
        );
        for (k, v) in self.where_it_is() {
            env.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(home.join(".env"), env).unwrap();
        Vec::new()
    }

    fn doctor_settings(&self, _home: &Path, right: bool) -> Vec<(&'static str, String)> {
        if !right {
            self.expire();
        }
        let mut env = self.where_it_is();
        env.extend(self.env());
        env
    }
}

impl FakeIlink {
    /// The settings that point a Weixin client at this fake.
    fn where_it_is(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WEIXIN_BASE_URL", self.base_url.clone()),
            ("WEIXIN_CDN_BASE_URL", self.cdn_base_url.clone()),
            ("WEIXIN_ACCOUNT_ID", self.account_id.clone()),
        ]
    }

    /// The texts the fake accepted for `to`.
    fn texts_to(&self, to: &str) -> Vec<String> {
        self.sent("sendmessage")
            .iter()
            .filter(|v| v["to"] == to)
            .filter_map(|v| v["text"].as_str().map(str::to_owned))
            .collect()
    }
}

conformance!(FakeIlink);
