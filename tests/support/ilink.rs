//! The local fake iLink Bot API (personal WeChat): `tests/fakes/ilink.py`, started here; inject
//! messages, expire the session, answer rate limits, and read what it recorded as sent.

use std::path::{Path, PathBuf};
use std::process::Child;

use serde_json::{Value, json};

pub struct FakeIlink {
    child: Child,
    pub base_url: String,
    pub cdn_base_url: String,
    pub token: String,
    pub account_id: String,
    admin: super::Admin,
    recorder: PathBuf,
}

impl FakeIlink {
    /// Long polls answer after `longpoll_ms` when nothing comes.
    pub fn start(dir: &Path, longpoll_ms: u64) -> Self {
        // The test venv's Python has `cryptography`: the fake then checks sent media.
        let (child, manifest, recorder) = super::start_python_fake(
            "ilink.py",
            dir,
            &["--longpoll-ms", &longpoll_ms.to_string()],
        );
        let s = |k: &str| manifest[k].as_str().unwrap().to_owned();
        Self {
            child,
            base_url: s("base_url"),
            cdn_base_url: s("cdn_base_url"),
            token: s("token"),
            account_id: s("account_id"),
            admin: super::Admin::of(&manifest),
            recorder,
        }
    }

    fn admin(&self, action: &str, body: &Value) -> Value {
        self.admin.post(action, body)
    }

    /// A text DM from `from` carrying `context_token`; returns the message as served.
    pub fn dm(&self, from: &str, text: &str, context_token: &str) -> Value {
        self.admin(
            "inject",
            &json!({"from_user_id": from, "text": text, "context_token": context_token}),
        )
    }

    /// A text from `from` in the group room `room`.
    pub fn group(&self, room: &str, from: &str, text: &str) -> Value {
        self.admin(
            "inject",
            &json!({"from_user_id": from, "text": text, "room_id": room, "context_token": "ctx-room"}),
        )
    }

    /// A message from `from` made of `items` (as iLink serves them).
    pub fn inject_items(&self, from: &str, items: Value) -> Value {
        self.admin(
            "inject",
            &json!({"from_user_id": from, "item_list": items, "context_token": "ctx-media"}),
        )
    }

    /// Every call answers errcode -14 from now on.
    pub fn expire(&self) {
        self.admin("expire", &json!({}));
    }

    /// The next `count` calls answer ret -2.
    pub fn rate_limit(&self, count: u32) {
        self.admin("ratelimit", &json!({"count": count}));
    }

    /// What was recorded for `endpoint` (`sendmessage`, `sendtyping`).
    pub fn sent(&self, endpoint: &str) -> Vec<Value> {
        super::recorded(&self.recorder)
            .into_iter()
            .filter(|v| v["endpoint"] == endpoint)
            .collect()
    }
}

impl Drop for FakeIlink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
