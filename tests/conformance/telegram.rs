//! Telegram's connector against crabline's fake Bot API.

use std::path::Path;

use serde_json::Value;

use crate::support::telegram::FakeTelegram;

impl super::Platform for FakeTelegram {
    const NAME: &'static str = "telegram";
    const REDELIVERS: bool = true;
    const ALLOWED: &'static str = "100001";
    const STRANGER: &'static str = "100777";
    const STARTED_BECAUSE: &'static str = "TELEGRAM_BOT_TOKEN is set";
    const DOCTOR_RIGHT: &'static str = "ok    Telegram: token accepted, the bot is @crabline_bot";
    const DOCTOR_WRONG: &'static str = "FAIL  Telegram: the bot token was refused";

    fn start(dir: &Path) -> Self {
        FakeTelegram::start(dir)
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
        FakeTelegram::dm(self, from.parse().unwrap(), text);
    }

    fn sent(&self, _state: &Path, chat: &str, text: &str) -> bool {
        FakeTelegram::sent(self).contains(&(chat.to_owned(), text.to_owned()))
    }

    fn code_sent_to(&self, user: &str) -> Option<String> {
        FakeTelegram::sent(self)
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

conformance!(FakeTelegram);
