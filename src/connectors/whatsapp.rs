//! WhatsApp's facts. Its connector is node-bridge (Node and Baileys, `node-bridge/`), a process
//! of its own; what the rest of bridgekeeper needs to know of the platform is here.

use std::path::{Path, PathBuf};

use super::description::{Description, TextUnit};
use crate::policy::AccessPolicy;

pub const DESCRIPTION: Description = Description {
    platform: "whatsapp",
    label: "WhatsApp",
    text_limit: 4096,
    text_unit: TextUnit::Chars,
    markdown: "whatsapp",
    edits: true,
    self_chat: true,
    groups: true,
    paced: true,
    direct_chat_type: "dm",
    access: AccessPolicy::default,
    allowlist_prefixes: &[],
    // node-bridge's `hello` (node-bridge/src/index.js); a test holds the two together.
    ops: &[
        "send_text",
        "edit",
        "send_media",
        "send_poll",
        "send_location",
        "react",
        "delete",
        "typing",
        "read",
        "chat_info",
        "link_by_phone",
        "logout",
    ],
    // node-bridge and Node are checked by doctor itself: they are about the host, not the
    // platform.
    doctor: None,
    relink_fix: "link it again (`bridgekeeper whatsapp link`)",
    // Not built in: node-bridge is started by its own command line.
    builtin: None,
};

/// Where Hermes keeps the WhatsApp session under its home: the legacy `whatsapp/session` wins
/// when it exists (as in Hermes).
pub fn session_dir(hermes_home: &Path) -> PathBuf {
    let legacy = hermes_home.join(DESCRIPTION.platform).join("session");
    if legacy.is_dir() {
        legacy
    } else {
        hermes_home
            .join("platforms")
            .join(DESCRIPTION.platform)
            .join("session")
    }
}
