//! What a platform is, as the rest of bridgekeeper needs to know it: the relay's descriptor,
//! the access policy's defaults and allowlist spelling, whether it has a self-chat. Each
//! connector exports one `Description`; nothing outside `connectors` names a platform to learn
//! these facts (`describe`).

use crate::policy::AccessPolicy;

/// How a platform counts a message's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextUnit {
    /// Unicode characters (WeCom's self-built apps count their 2,048 as such in Hermes).
    Chars,
    /// UTF-16 code units (Telegram).
    Utf16,
}

impl TextUnit {
    /// The name Hermes' relay descriptor uses (`len_unit`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chars => "chars",
            Self::Utf16 => "utf16",
        }
    }
}

/// One platform's facts.
#[derive(Debug)]
pub struct Description {
    /// The platform's name, as Hermes and the config files spell it.
    pub platform: &'static str,
    /// How people call it.
    pub label: &'static str,
    /// The longest message Hermes should write, and in what unit.
    pub text_limit: usize,
    pub text_unit: TextUnit,
    /// Hermes' markdown dialect for it (`whatsapp`, `markdown`, `plain`).
    pub markdown: &'static str,
    /// Whether a sent message can be edited.
    pub edits: bool,
    /// Whether the account can talk to itself (WhatsApp's self-chat mode); a bot cannot.
    pub self_chat: bool,
    /// Whether it has group chats (where a message may not be addressed to the agent).
    pub groups: bool,
    /// Whether outbound pacing is on before any setting. A network that may ban an account
    /// for sending fast without saying so first (WhatsApp, WeChat) is paced; one whose API
    /// answers a too-fast send with how long to wait, which its connector waits out
    /// (Telegram's 429 `retry_after`), is not.
    pub paced: bool,
    /// The `chat_type` Hermes' own adapter gives a chat that is not a group (`dm`; a webhook's
    /// deliveries are `webhook`), so sessions keyed by it stay the same behind the plugin.
    pub direct_chat_type: &'static str,
    /// The access policy before any setting, as Hermes has it for this platform.
    pub access: fn() -> AccessPolicy,
    /// Prefixes Hermes' adapter drops from an allowlist entry (any case), in this order.
    pub allowlist_prefixes: &'static [&'static str],
    /// What its connector does: the commands it carries out (PROTOCOL.md) and `recorded` when
    /// it waits for the ledger. Its `hello` says exactly these.
    pub ops: &'static [&'static str],
    /// What `doctor` checks of it (a credential, a webhook in the way), if anything.
    pub doctor: Option<super::kit::checks::Checks>,
    /// What the operator's alert says to do when the account's login is gone (`needs_relink`).
    pub relink_fix: &'static str,
    /// For a connector built into this executable: its settings and what starts it.
    pub builtin: Option<super::Builtin>,
}

/// Every platform bridgekeeper knows: node-bridge's WhatsApp and the built-in connectors (in
/// the order `doctor` reports them).
pub const ALL: [&Description; 6] = [
    &super::whatsapp::DESCRIPTION,
    &super::telegram::DESCRIPTION,
    &super::weixin::DESCRIPTION,
    &super::webhook::DESCRIPTION,
    &super::wecom::DESCRIPTION,
    &super::wecom_callback::DESCRIPTION,
];

/// The description of `platform`; `None` for a platform only a config file's own connector
/// knows, which gets the generic defaults.
pub fn describe(platform: &str) -> Option<&'static Description> {
    ALL.into_iter().find(|d| d.platform == platform)
}

/// An allowlist entry as `platform`'s Hermes adapter reads it: its prefixes dropped.
pub fn allowlist_entry<'a>(platform: &str, entry: &'a str) -> &'a str {
    let Some(d) = describe(platform) else {
        return entry;
    };
    d.allowlist_prefixes
        .iter()
        .fold(entry, |e, prefix| match e.get(..prefix.len()) {
            Some(head) if head.eq_ignore_ascii_case(prefix) => e[prefix.len()..].trim_start(),
            _ => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_is_described_once() {
        let mut names: Vec<&str> = ALL.iter().map(|d| d.platform).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for d in ALL {
            if let Some(b) = &d.builtin {
                assert_eq!(b.name, d.platform, "a built-in row names its own platform");
            }
        }
        assert_eq!(super::super::builtins().count(), 5);
        assert!(describe("irc").is_none());
    }

    #[test]
    fn allowlist_entries_lose_their_platforms_prefixes() {
        assert_eq!(allowlist_entry("wecom", "WeCom:User: zhang"), "zhang");
        assert_eq!(allowlist_entry("wecom_callback", "group:wrk1"), "wrk1");
        assert_eq!(allowlist_entry("whatsapp", "wecom:user:x"), "wecom:user:x");
        assert_eq!(allowlist_entry("irc", "user:x"), "user:x");
    }
}
