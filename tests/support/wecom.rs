//! The local fake WeCom (`tests/fakes/wecom.py`), both ways in: the AI Bot WebSocket (inject
//! callbacks and events, drop or deafen the socket, refuse the secret) and a self-built app's
//! server API and callbacks (post an encrypted callback to a URL, expire the access token).

use std::path::{Path, PathBuf};
use std::process::Child;

use serde_json::{Value, json};

pub struct FakeWecom {
    child: Child,
    pub manifest: Value,
    admin: super::Admin,
    recorder: PathBuf,
}

impl FakeWecom {
    pub fn start(dir: &Path) -> Self {
        let (child, manifest, recorder) = super::start_python_fake("wecom.py", dir, &[]);
        Self {
            child,
            admin: super::Admin::of(&manifest),
            manifest,
            recorder,
        }
    }

    /// A setting of the fake's ready file (`ws_url`, `bot_secret`, `corp_id`, …) as text.
    pub fn get(&self, key: &str) -> String {
        match &self.manifest[key] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }

    pub fn admin(&self, action: &str, body: &Value) -> Value {
        self.admin.post(action, body)
    }

    /// A DM (`chattype` single) to the bot; what was pushed (`req_id`, `msgid`).
    pub fn dm(&self, from: &str, text: &str) -> Value {
        self.admin("bot/inject", &json!({"from": from, "text": text}))
    }

    /// A group message in `chat`.
    pub fn group(&self, chat: &str, from: &str, text: &str) -> Value {
        self.admin(
            "bot/inject",
            &json!({"from": from, "text": text, "chattype": "group", "chatid": chat}),
        )
    }

    /// WeCom's POST of an encrypted text callback from `from` to `url`; its status and body.
    pub fn callback(&self, url: &str, from: &str, content: &str, more: Value) -> Value {
        let mut body = json!({"url": url, "from": from, "content": content});
        if let (Some(b), Some(m)) = (body.as_object_mut(), more.as_object()) {
            b.extend(m.clone());
        }
        self.admin("callback", &body)
    }

    /// What was recorded of `kind` (`aibot_respond_msg`, `aibot_send_msg`, `upload`,
    /// `message_send`, `subscribe`, `gettoken`).
    pub fn recorded(&self, kind: &str) -> Vec<Value> {
        super::recorded(&self.recorder)
            .into_iter()
            .filter(|v| v["kind"] == kind)
            .collect()
    }
}

impl Drop for FakeWecom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
