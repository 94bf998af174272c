//! Our own fake Telegram Bot API (`tests/fakes/bot_api.py`): what crabline does not serve
//! (`getChat`, files in both directions, replies, edits, bots as senders). Start it, inject
//! messages as their senders would send them, read every call it recorded.

use std::path::{Path, PathBuf};
use std::process::Child;

use base64::Engine;
use serde_json::{Value, json};

pub struct BotApi {
    child: Child,
    pub api_root: String,
    pub bot_token: String,
    pub bot_username: String,
    admin: super::Admin,
    recorder: PathBuf,
}

impl BotApi {
    pub fn start(dir: &Path) -> Self {
        let (child, manifest, recorder) = super::start_python_fake("bot_api.py", dir, &[]);
        let s = |k: &str| manifest[k].as_str().unwrap().to_owned();
        Self {
            child,
            api_root: s("api_root"),
            bot_token: s("bot_token"),
            bot_username: s("bot_username"),
            admin: super::Admin::of(&manifest),
            recorder,
        }
    }

    /// A message as `message` describes it (see the fake's docstring); the update served.
    pub fn inject(&self, message: &Value) -> Value {
        self.admin.post("message", message)
    }

    /// A text DM from user `from` (its chat id is the user id); the update served.
    pub fn dm(&self, from: &str, text: &str) -> Value {
        self.inject(&json!({"chat_id": from, "text": text}))
    }

    /// A photo with its caption from user `from`, in their DM.
    pub fn photo(&self, from: &str, bytes: &[u8], caption: &str) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.inject(&json!({"chat_id": from, "text": caption, "photo_b64": b64}))
    }

    /// `from`'s message `message_id` in `chat` now says `text`: an `edited_message` update.
    pub fn edit(&self, chat: &str, message_id: i64, text: &str) -> Value {
        self.admin.post(
            "edit",
            &json!({"chat_id": chat, "message_id": message_id, "text": text}),
        )
    }

    /// Every call of `method` the fake answered `ok`, with its parameters and result.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        super::recorded(&self.recorder)
            .into_iter()
            .filter(|e| e["method"] == method && e["ok"] == true)
            .collect()
    }

    /// Every call the fake refused, as `method: description`.
    pub fn refusals(&self) -> Vec<String> {
        super::recorded(&self.recorder)
            .into_iter()
            .filter(|e| e["ok"] == false && e.get("method").is_some())
            .map(|e| format!("{}: {}", e["method"], e["error"]))
            .collect()
    }

    /// `(chat_id, text)` of every message the bot sent.
    pub fn sent(&self) -> Vec<(String, String)> {
        self.calls("sendMessage")
            .into_iter()
            .map(|e| {
                (
                    e["result"]["chat"]["id"].to_string(),
                    e["result"]["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Files the fake served to a downloader (`getFile`'s paths).
    pub fn downloads(&self) -> Vec<String> {
        super::recorded(&self.recorder)
            .into_iter()
            .filter(|e| e["ok"] == true)
            .filter_map(|e| e["download"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for BotApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
