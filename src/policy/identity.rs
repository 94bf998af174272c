//! Who is who: normalising WhatsApp-style ids and matching a sender against a list, LID-aware.
//!
//! A user may appear as `<phone>@s.whatsapp.net`, `<phone>:<device>@s.whatsapp.net`,
//! `<lid>@lid`, `+<phone>` or a bare number with spaces. Lists are written with phone numbers;
//! senders may arrive as LIDs. A sender matches an entry when any of its known aliases does:
//! the id itself, the alternate id the connector reported, and the other side of a known
//! LID ↔ phone mapping.

use std::collections::HashMap;

/// The key lists and the pairing store use: the user part without device suffix, domain, `+`,
/// spaces, dashes, dots or brackets. The key keeps its kind: a phone number is bare digits, a
/// LID keeps `@lid` and a group `@g.us`, so a LID never equals a phone number that happens to
/// have the same digits — they meet only through a known mapping (`IdentityMap`).
pub fn normalize(id: &str) -> String {
    let id = id.trim();
    // A username (Telegram's `@alice`): case-insensitive, kept with its `@` so it never meets a
    // number. WhatsApp ids never start with `@`.
    if let Some(name) = id
        .strip_prefix('@')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        return format!("@{}", name.to_lowercase());
    }
    if let Some(group) = id.strip_suffix("@g.us") {
        return format!("{}@g.us", group.trim());
    }
    if let Some(lid) = id.strip_suffix("@lid") {
        let user = lid.split(':').next().unwrap_or_default().trim();
        return format!("{user}@lid");
    }
    let user = id.split('@').next().unwrap_or_default();
    let user = user.split(':').next().unwrap_or_default();
    user.chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
        .collect()
}

/// The key of an id known to be a LID (the account's own, say), whether or not it carries the
/// `@lid` domain.
pub fn lid_key(id: &str) -> String {
    let key = normalize(id);
    if key.ends_with("@lid") || key.is_empty() {
        key
    } else {
        format!("{key}@lid")
    }
}

/// What kind of chat an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    Direct,
    Group,
    /// `status@broadcast`: status updates.
    Status,
    /// Other `@broadcast` lists.
    Broadcast,
    Newsletter,
}

pub fn chat_kind(chat: &str) -> ChatKind {
    let chat = chat.trim();
    if chat == "status@broadcast" {
        ChatKind::Status
    } else if chat.ends_with("@broadcast") {
        ChatKind::Broadcast
    } else if chat.ends_with("@newsletter") {
        ChatKind::Newsletter
    } else if chat.ends_with("@g.us") {
        ChatKind::Group
    } else {
        ChatKind::Direct
    }
}

/// LID ↔ phone mappings the connector reported (normalised keys both ways).
#[derive(Debug, Clone, Default)]
pub struct IdentityMap {
    lid_to_phone: HashMap<String, String>,
    phone_to_lid: HashMap<String, String>,
}

impl IdentityMap {
    /// Records a mapping; either side may carry a domain or device suffix.
    pub fn learn(&mut self, lid: &str, phone: &str) {
        let (lid, phone) = (normalize(lid), normalize(phone));
        if lid.is_empty() || phone.is_empty() || lid == phone {
            return;
        }
        self.lid_to_phone.insert(lid.clone(), phone.clone());
        self.phone_to_lid.insert(phone, lid);
    }

    /// Every normalised id this sender is known by.
    pub fn aliases(&self, id: &str, alt: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(4);
        for raw in std::iter::once(id).chain(alt) {
            let key = normalize(raw);
            if key.is_empty() || out.contains(&key) {
                continue;
            }
            for other in [self.lid_to_phone.get(&key), self.phone_to_lid.get(&key)]
                .into_iter()
                .flatten()
            {
                if !out.contains(other) {
                    out.push(other.clone());
                }
            }
            out.push(key);
        }
        out
    }

    /// The id to key a user by (approvals, rate limits): the phone number when known.
    pub fn user_key(&self, id: &str, alt: Option<&str>) -> String {
        let key = normalize(id);
        if let Some(phone) = self.lid_to_phone.get(&key) {
            return phone.clone();
        }
        if id.ends_with("@lid")
            && let Some(alt) = alt.filter(|a| !a.ends_with("@lid"))
        {
            return normalize(alt);
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_strips_device_domain_and_punctuation() {
        for raw in [
            "15551234567",
            "+1 555-123-4567",
            "15551234567@s.whatsapp.net",
            "15551234567:12@s.whatsapp.net",
            " +1 (555) 123.4567 ",
        ] {
            assert_eq!(normalize(raw), "15551234567", "{raw}");
        }
        assert_eq!(normalize("98765432109876:3@lid"), "98765432109876@lid");
        assert_ne!(
            normalize("15551234567@lid"),
            normalize("15551234567@s.whatsapp.net"),
            "a LID is not the phone number with the same digits"
        );
        assert_eq!(
            normalize("120363000000000000@g.us"),
            "120363000000000000@g.us"
        );
    }

    #[test]
    fn chat_kinds() {
        assert_eq!(chat_kind("status@broadcast"), ChatKind::Status);
        assert_eq!(chat_kind("1234@broadcast"), ChatKind::Broadcast);
        assert_eq!(chat_kind("1234@newsletter"), ChatKind::Newsletter);
        assert_eq!(chat_kind("1234@g.us"), ChatKind::Group);
        assert_eq!(chat_kind("1234@lid"), ChatKind::Direct);
    }

    #[test]
    fn a_mapping_makes_both_sides_aliases() {
        let mut map = IdentityMap::default();
        assert_eq!(
            map.aliases("98765432109876@lid", None),
            vec!["98765432109876@lid"]
        );
        map.learn("98765432109876@lid", "15551234567@s.whatsapp.net");
        let aliases = map.aliases("98765432109876:2@lid", None);
        assert!(aliases.contains(&"15551234567".to_owned()));
        assert!(
            map.aliases("15551234567@s.whatsapp.net", None)
                .contains(&"98765432109876@lid".to_owned())
        );
        assert_eq!(map.user_key("98765432109876@lid", None), "15551234567");
    }

    #[test]
    fn the_alternate_id_is_an_alias_on_first_contact() {
        let map = IdentityMap::default();
        let aliases = map.aliases("98765432109876@lid", Some("15551234567@s.whatsapp.net"));
        assert_eq!(aliases, vec!["98765432109876@lid", "15551234567"]);
        assert_eq!(
            map.user_key("98765432109876@lid", Some("15551234567@s.whatsapp.net")),
            "15551234567"
        );
    }
}
