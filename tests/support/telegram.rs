//! The local fake Telegram Bot API (`crabline serve telegram`, installed by `npm ci` in
//! node-bridge): start it, inject updates over its admin URL, and read what it recorded.

use std::path::{Path, PathBuf};
use std::process::Child;

use serde_json::Value;

use super::whatsapp::{manifest_text, post_json};

pub struct FakeTelegram {
    child: Child,
    pub api_root: String,
    pub bot_token: String,
    admin_url: String,
    admin_token: String,
    recorder: PathBuf,
}

impl FakeTelegram {
    pub fn start(dir: &Path) -> Self {
        let (child, manifest) = super::whatsapp::crabline("telegram", dir);
        let s = |pointer: &str| manifest_text(&manifest, pointer);
        Self {
            child,
            api_root: s("/endpoints/apiRoot"),
            bot_token: s("/botToken"),
            admin_url: s("/endpoints/adminInboundUrl"),
            admin_token: s("/adminToken"),
            recorder: PathBuf::from(s("/recorderPath")),
        }
    }

    /// One update, as the admin API takes it (`chatId`, `text`, `fromId`, `chatType`,
    /// `entities`, …).
    pub fn inject(&self, body: &Value) -> Value {
        let (status, reply) = post_json(
            &self.admin_url,
            &[("X-Crabline-Admin-Token", &self.admin_token)],
            body,
        );
        assert_eq!(status, 200, "inject failed: {reply}");
        serde_json::from_str(&reply).unwrap()
    }

    /// `inject` that gives the status instead of asserting it (429: the fake's queue of
    /// unconfirmed updates is full).
    pub fn try_dm(&self, from: i64, text: &str) -> u16 {
        let body = serde_json::json!({
            "chatId": from.to_string(), "fromId": from, "text": text, "fromName": "Tester"
        });
        post_json(
            &self.admin_url,
            &[("X-Crabline-Admin-Token", &self.admin_token)],
            &body,
        )
        .0
    }

    /// A DM from user `from` (its chat id is the user id).
    pub fn dm(&self, from: i64, text: &str) -> Value {
        self.inject(&serde_json::json!({
            "chatId": from.to_string(), "fromId": from, "text": text, "fromName": "Tester"
        }))
    }

    /// `(chat_id, text)` of every `sendMessage` the server accepted.
    pub fn sent(&self) -> Vec<(String, String)> {
        super::recorded(&self.recorder)
            .into_iter()
            .filter(|e| {
                e["accepted"] == true
                    && e["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/sendMessage"))
            })
            .map(|e| {
                (
                    e["body"]["chat_id"]
                        .to_string()
                        .trim_matches('"')
                        .to_owned(),
                    e["body"]["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    pub fn recorder(&self) -> &Path {
        &self.recorder
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
