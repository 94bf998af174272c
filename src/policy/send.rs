//! The one outbound gate. Every message a connector is asked to write into a chat — gateway
//! replies, pairing codes, fixed policy replies, operator alerts — is judged here first, by
//! `OutboundGate::check`, a pure function of the send policy and the target.
//!
//! Rules match on platform, chat type, chat id and kind of message. A matching `deny` rule
//! wins over any `allow` rule ("first deny wins"); with no match, the default applies.
//! Operator alerts go only to the configured `operator_targets`; with none configured they go
//! only to `bridge.log` and the gateway link — never to "the chat that spoke last".

use serde::Deserialize;

use crate::policy::{ChatKind, chat_kind, normalize};

/// What kind of outbound message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// Anything the gateway asks to send (text, media, edits, typing, read receipts).
    Reply,
    PairingCode,
    /// A fixed reply of the access policy.
    PolicyReply,
    /// An operator alert or health notice.
    Alert,
}

impl SendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::PairingCode => "pairing_code",
            Self::PolicyReply => "policy_reply",
            Self::Alert => "alert",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatType {
    Direct,
    Group,
    /// The account's own chat.
    #[serde(rename = "self")]
    SelfChat,
    #[default]
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub action: RuleAction,
    /// Platform name; absent or `*` = every platform.
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub chat_type: ChatType,
    /// Chat ids (any form: numbers, JIDs); empty = every chat.
    #[serde(default)]
    pub chats: Vec<String>,
    /// Kinds of message; empty = every kind.
    #[serde(default)]
    pub kinds: Vec<SendKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendPolicy {
    #[serde(default = "allow")]
    pub default: RuleAction,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn allow() -> RuleAction {
    RuleAction::Allow
}

impl Default for SendPolicy {
    fn default() -> Self {
        Self {
            default: RuleAction::Allow,
            rules: Vec::new(),
        }
    }
}

/// Where operator alerts are sent, besides the log and the gateway link.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorTarget {
    pub connector: String,
    pub chat: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Denied by rule `rule` (its index), or by the default when `None`.
    Deny {
        rule: Option<usize>,
    },
}

/// The target of one outbound message.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub platform: &'a str,
    pub chat: &'a str,
    /// The chat is the account's own chat.
    pub is_self: bool,
    pub kind: SendKind,
}

#[derive(Debug, Clone, Default)]
pub struct OutboundGate {
    pub policy: SendPolicy,
}

impl OutboundGate {
    pub fn new(policy: SendPolicy) -> Self {
        Self { policy }
    }

    pub fn check(&self, target: Target<'_>) -> Verdict {
        let mut allowed = false;
        for (index, rule) in self.policy.rules.iter().enumerate() {
            if !matches(rule, &target) {
                continue;
            }
            match rule.action {
                RuleAction::Deny => return Verdict::Deny { rule: Some(index) },
                RuleAction::Allow => allowed = true,
            }
        }
        if allowed || self.policy.default == RuleAction::Allow {
            Verdict::Allow
        } else {
            Verdict::Deny { rule: None }
        }
    }
}

fn matches(rule: &Rule, t: &Target<'_>) -> bool {
    let platform_ok = rule
        .platform
        .as_deref()
        .is_none_or(|p| p == "*" || p.eq_ignore_ascii_case(t.platform));
    let kind = chat_kind(t.chat);
    let type_ok = match rule.chat_type {
        ChatType::Any => true,
        ChatType::SelfChat => t.is_self,
        ChatType::Direct => kind == ChatKind::Direct && !t.is_self,
        ChatType::Group => kind == ChatKind::Group,
    };
    let chat_key = normalize(t.chat);
    let chat_ok = rule.chats.is_empty()
        || rule
            .chats
            .iter()
            .any(|c| c == "*" || normalize(c) == chat_key);
    let kind_ok = rule.kinds.is_empty() || rule.kinds.contains(&t.kind);
    platform_ok && type_ok && chat_ok && kind_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(yaml: &str) -> OutboundGate {
        OutboundGate::new(serde_yaml_ng::from_str(yaml).unwrap())
    }

    fn to(chat: &str, kind: SendKind) -> Target<'_> {
        Target {
            platform: "whatsapp",
            chat,
            is_self: false,
            kind,
        }
    }

    #[test]
    fn no_rules_allow_everything() {
        assert_eq!(
            OutboundGate::default().check(to("1@s.whatsapp.net", SendKind::Alert)),
            Verdict::Allow
        );
    }

    #[test]
    fn a_matching_deny_wins_over_an_earlier_allow() {
        let g = gate(
            "rules:\n  - {action: allow, platform: whatsapp}\n  - {action: deny, platform: whatsapp, chat_type: direct, kinds: [alert]}\n",
        );
        assert_eq!(
            g.check(to("15551234567@s.whatsapp.net", SendKind::Alert)),
            Verdict::Deny { rule: Some(1) }
        );
        assert_eq!(
            g.check(to("15551234567@s.whatsapp.net", SendKind::Reply)),
            Verdict::Allow
        );
        assert_eq!(
            g.check(to("120363000000000001@g.us", SendKind::Alert)),
            Verdict::Allow
        );
        let mine = Target {
            is_self: true,
            ..to("15550001111@s.whatsapp.net", SendKind::Alert)
        };
        assert_eq!(
            g.check(mine),
            Verdict::Allow,
            "the own chat is not a direct chat with someone"
        );
    }

    #[test]
    fn default_deny_with_an_allowlist_of_chats() {
        let g = gate("default: deny\nrules:\n  - {action: allow, chats: ['+1 555 123 4567']}\n");
        assert_eq!(
            g.check(to("15551234567:2@s.whatsapp.net", SendKind::Reply)),
            Verdict::Allow
        );
        assert_eq!(
            g.check(to("15559999999@s.whatsapp.net", SendKind::Reply)),
            Verdict::Deny { rule: None }
        );
    }

    #[test]
    fn rules_can_target_other_platforms_only() {
        let g = gate("rules:\n  - {action: deny, platform: telegram}\n");
        assert_eq!(
            g.check(to("1@s.whatsapp.net", SendKind::Reply)),
            Verdict::Allow
        );
    }

    #[test]
    fn unknown_rule_fields_are_errors() {
        assert!(
            serde_yaml_ng::from_str::<SendPolicy>(
                "rules:\n  - {action: deny, chat_typo: direct}\n"
            )
            .is_err()
        );
    }
}
