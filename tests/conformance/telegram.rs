//! Telegram's connector against our own fake Bot API (`fakes/bot_api.py`): crabline's has no
//! `getChat`, which a newer relay gateway's `get_chat_info` needs. crabline still fronts the
//! Telegram tests of `tests/telegram.rs`.

use std::path::Path;

use serde_json::Value;

use crate::support::bot_api::BotApi;

impl super::Platform for BotApi {
    const NAME: &'static str = "telegram";
    const REDELIVERS: bool = true;
    const ALLOWED: &'static str = "100001";
    const STRANGER: &'static str = "100777";
    const STARTED_BECAUSE: &'static str = "TELEGRAM_BOT_TOKEN is set";
    const DOCTOR_RIGHT: &'static str = "ok    Telegram: token accepted, the bot is @bk_fake_bot";
    const DOCTOR_WRONG: &'static str = "FAIL  Telegram: the bot token was refused";

    fn start(dir: &Path) -> Self {
        BotApi::start(dir)
    }

    fn entry(&self, dir: &Path, policy: &str) -> String {
        format!(
            "  - name: telegram\n    builtin: telegram\n    args: [--media-dir, {:?}]\n    env: {{TELEGRAM_API_ROOT: {:?}}}\n    policy: {{{policy}}}\n    {}\n",
            dir.join("tg-media"),
            self.api_root,
            crate::support::QUICK_RESTARTS,
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("TELEGRAM_BOT_TOKEN", self.bot_token.clone())]
    }

    fn dm(&self, _open: &Value, from: &str, text: &str) {
        BotApi::dm(self, from, text);
    }

    fn sent(&self, _state: &Path, chat: &str, text: &str) -> bool {
        BotApi::sent(self).contains(&(chat.to_owned(), text.to_owned()))
    }

    fn code_sent_to(&self, user: &str) -> Option<String> {
        BotApi::sent(self)
            .iter()
            .find(|(to, text)| to == user && text.contains("Your pairing code: "))
            .map(|(_, text)| crate::policy::code_in(text))
    }

    fn secrets(&self) -> Vec<String> {
        // The part after the bot id is the password; the wrong one doctor is given, too.
        let password = self.bot_token.split(':').nth(1).unwrap().to_owned();
        let wrong = password.chars().rev().collect();
        vec![password, wrong]
    }

    fn hermes_settings(&self, home: &Path) -> Vec<(&'static str, String)> {
        let env = format!(
            "TELEGRAM_BOT_TOKEN={}\nTELEGRAM_API_ROOT={}\nTELEGRAM_ALLOWED_USERS={}\nTELEGRAM_DM_POLICY=allowlist\n",
            self.bot_token,
            self.api_root,
            <Self as super::Platform>::ALLOWED
        );
        std::fs::write(home.join(".env"), env).unwrap();
        Vec::new()
    }

    fn doctor_settings(&self, _home: &Path, right: bool) -> Vec<(&'static str, String)> {
        let token = if right {
            self.bot_token.clone()
        } else {
            format!(
                "{}:{}",
                self.bot_token.split(':').next().unwrap(),
                self.secrets()[1]
            )
        };
        vec![
            ("TELEGRAM_BOT_TOKEN", token),
            ("TELEGRAM_API_ROOT", self.api_root.clone()),
        ]
    }
}

conformance!(BotApi);
