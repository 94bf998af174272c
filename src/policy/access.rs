//! The access policy: one pure function, `decide`, that says what happens to an inbound
//! message — deliver it, send a pairing code, send a fixed reply, or ignore it — and why.
//!
//! No I/O: the resolved policy, the account identity, the LID mappings, the pairing state and
//! the clock (`now`, unix seconds) all come in as arguments; acting on the decision (issuing a
//! code, sending, logging, counting) is the caller's job (`supervisor::connector::inbound`).

use std::collections::{BTreeSet, HashMap, HashSet};

use bridge_protocol::message::{InboundMessage, RouteFilter};

use super::identity::{ChatKind, IdentityMap, chat_kind, normalize};
use super::pairing_limits::{MAX_PENDING_PER_PLATFORM, RATE_LIMIT_SECS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only the account's own chat ("message yourself") reaches the agent.
    SelfChat,
    /// The number is the bot's: other people write to it.
    Bot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmPolicy {
    /// Allowlisted or approved senders pass; others may pair.
    Pairing,
    /// Only allowlisted senders (`*` = everyone).
    Allowlist,
    Open,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPolicy {
    Open,
    /// Only groups or senders in `group_allow_from`.
    Allowlist,
    Disabled,
}

/// What to do with a direct message from someone not allowed under `dm_policy: pairing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnauthorizedDm {
    Pair,
    Ignore,
}

/// The resolved access policy of one platform (see `config::hermes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    pub mode: Mode,
    pub dm_policy: DmPolicy,
    /// Normalised ids; `*` means everyone (but never bypasses pairing).
    pub allow_from: BTreeSet<String>,
    pub group_policy: GroupPolicy,
    /// Normalised user ids and `<id>@g.us` group ids; `*` means every group.
    pub group_allow_from: BTreeSet<String>,
    /// In groups, only messages that mention the bot, reply to it or start with `/`.
    pub require_mention: bool,
    /// Group chats where no mention is needed.
    pub free_response_chats: BTreeSet<String>,
    pub unauthorized_dm: UnauthorizedDm,
}

impl Default for AccessPolicy {
    /// The safe defaults: self-chat only; in bot mode strangers must pair; no groups.
    fn default() -> Self {
        Self {
            mode: Mode::SelfChat,
            dm_policy: DmPolicy::Pairing,
            allow_from: BTreeSet::new(),
            group_policy: GroupPolicy::Allowlist,
            group_allow_from: BTreeSet::new(),
            require_mention: true,
            free_response_chats: BTreeSet::new(),
            unauthorized_dm: UnauthorizedDm::Pair,
        }
    }
}

/// The linked account and what is known about other identities.
#[derive(Debug, Clone, Default)]
pub struct Who {
    /// The account's phone number, normalised.
    pub phone: Option<String>,
    /// The account's own user id where the network has one apart from a phone (a Telegram
    /// bot's id), normalised.
    pub id: Option<String>,
    /// The account's LID, normalised (with its `@lid`, see `lid_key`).
    pub lid: Option<String>,
    pub identities: IdentityMap,
}

impl Who {
    fn is_me(&self, id: &str) -> bool {
        let id = normalize(id);
        !id.is_empty()
            && [&self.phone, &self.lid, &self.id]
                .iter()
                .any(|mine| mine.as_deref() == Some(&id))
    }
}

/// The pairing store as the policy needs to see it (built by `pairing::PairingStore`).
#[derive(Debug, Clone, Default)]
pub struct PairingSnapshot {
    pub approved: HashSet<String>,
    /// Unexpired pending requests per user.
    pub pending_by_user: HashMap<String, usize>,
    pub pending_total: usize,
    /// Last code request (or pairing reply) per user, unix seconds.
    pub last_request: HashMap<String, f64>,
    /// Approvals are locked until then after too many failed attempts.
    pub locked_until: Option<f64>,
    /// Why part of the store (pending codes, rate limits) could not be read. Approvals and
    /// allowlists still decide; anything else must fail closed.
    pub unreadable: Option<String>,
}

/// Facts about the message that need memory of earlier traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// This message id was already decided (within the dedup window, across restarts).
    pub duplicate: bool,
    /// This message id is one the bot itself sent.
    pub sent_by_us: bool,
}

/// Why. A closed list; `as_str` is the stable name in `bridge.log`, the ledger and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    // delivered
    SelfChat,
    Allowlisted,
    AllowAll,
    Paired,
    OpenPolicy,
    GroupAllowed,
    // pairing code sent
    UnknownSender,
    // fixed reply sent
    PairingLocked,
    PairingQueueFull,
    // ignored
    SelfChatModeRejectsNonSelf,
    FromOwner,
    OwnEcho,
    Duplicate,
    EmptyMessage,
    StatusBroadcast,
    BroadcastChat,
    NewsletterChat,
    DmDisabled,
    AllowlistMismatch,
    UnauthorizedDmIgnored,
    PairingRateLimited,
    GroupDisabled,
    GroupNotAllowed,
    NoMention,
    /// A webhook route does not accept the event type.
    EventNotAccepted,
    /// A webhook route's filters rejected the payload.
    FilterRejected,
}

impl Reason {
    pub const ALL: [Reason; 26] = [
        Self::SelfChat,
        Self::Allowlisted,
        Self::AllowAll,
        Self::Paired,
        Self::OpenPolicy,
        Self::GroupAllowed,
        Self::UnknownSender,
        Self::PairingLocked,
        Self::PairingQueueFull,
        Self::SelfChatModeRejectsNonSelf,
        Self::FromOwner,
        Self::OwnEcho,
        Self::Duplicate,
        Self::EmptyMessage,
        Self::StatusBroadcast,
        Self::BroadcastChat,
        Self::NewsletterChat,
        Self::DmDisabled,
        Self::AllowlistMismatch,
        Self::UnauthorizedDmIgnored,
        Self::PairingRateLimited,
        Self::GroupDisabled,
        Self::GroupNotAllowed,
        Self::NoMention,
        Self::EventNotAccepted,
        Self::FilterRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfChat => "self_chat",
            Self::Allowlisted => "allowlisted",
            Self::AllowAll => "allow_all",
            Self::Paired => "paired",
            Self::OpenPolicy => "open_policy",
            Self::GroupAllowed => "group_allowed",
            Self::UnknownSender => "unknown_sender",
            Self::PairingLocked => "pairing_locked",
            Self::PairingQueueFull => "pairing_queue_full",
            Self::SelfChatModeRejectsNonSelf => "self_chat_mode_rejects_non_self",
            Self::FromOwner => "from_owner",
            Self::OwnEcho => "own_echo",
            Self::Duplicate => "duplicate",
            Self::EmptyMessage => "empty_message",
            Self::StatusBroadcast => "status_broadcast",
            Self::BroadcastChat => "broadcast_chat",
            Self::NewsletterChat => "newsletter_chat",
            Self::DmDisabled => "dm_disabled",
            Self::AllowlistMismatch => "allowlist_mismatch",
            Self::UnauthorizedDmIgnored => "unauthorized_dm_ignored",
            Self::PairingRateLimited => "pairing_rate_limited",
            Self::GroupDisabled => "group_disabled",
            Self::GroupNotAllowed => "group_not_allowed",
            Self::NoMention => "no_mention",
            Self::EventNotAccepted => "event_not_accepted",
            Self::FilterRejected => "filter_rejected",
        }
    }
}

/// A fixed reply the policy may send instead of a pairing code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedReply {
    PairingLocked,
    PairingQueueFull,
}

impl FixedReply {
    pub fn text(self) -> &'static str {
        match self {
            Self::PairingLocked => {
                "This assistant is not accepting new pairing requests right now. Please try again later."
            }
            Self::PairingQueueFull => {
                "Too many people are waiting for approval right now. Please try again later."
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Deliver,
    /// Issue a pairing code for `user` (normalised) and send it to the sender.
    SendPairingCode {
        user: String,
    },
    /// Send this fixed text to the sender; `user` gets a rate-limit entry.
    Reply {
        reply: FixedReply,
        user: String,
    },
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
}

impl Decision {
    fn deliver(reason: Reason) -> Self {
        Self {
            action: Action::Deliver,
            reason,
        }
    }

    fn ignore(reason: Reason) -> Self {
        Self {
            action: Action::Ignore,
            reason,
        }
    }
}

/// Decides one inbound message. Checks run in this order: chat kind (status, broadcast,
/// newsletter), duplicate, own echo, empty; then the mode; in bot mode the owner's own
/// messages, then group rules or DM rules.
pub fn decide(
    policy: &AccessPolicy,
    who: &Who,
    pairing: &PairingSnapshot,
    msg: &InboundMessage,
    seen: Seen,
    now: f64,
) -> Decision {
    // WhatsApp ids say what they are; elsewhere (Telegram's numeric chat ids) the connector's
    // `is_group` does.
    let kind = match chat_kind(&msg.chat) {
        ChatKind::Direct if msg.is_group => ChatKind::Group,
        kind => kind,
    };
    match kind {
        ChatKind::Status => return Decision::ignore(Reason::StatusBroadcast),
        ChatKind::Broadcast => return Decision::ignore(Reason::BroadcastChat),
        ChatKind::Newsletter => return Decision::ignore(Reason::NewsletterChat),
        ChatKind::Direct | ChatKind::Group => {}
    }
    if seen.duplicate {
        return Decision::ignore(Reason::Duplicate);
    }
    if seen.sent_by_us {
        return Decision::ignore(Reason::OwnEcho);
    }
    // A route's own filter (a webhook's `events` or `filters`): received, recorded, not let in.
    match msg.routed.as_ref().and_then(|r| r.filtered) {
        Some(RouteFilter::EventNotAccepted) => return Decision::ignore(Reason::EventNotAccepted),
        Some(RouteFilter::FilterRejected) => return Decision::ignore(Reason::FilterRejected),
        None => {}
    }
    let has_text = msg.text.as_deref().is_some_and(|t| !t.trim().is_empty());
    if !has_text && msg.media.is_none() {
        return Decision::ignore(Reason::EmptyMessage);
    }
    match policy.mode {
        Mode::SelfChat if kind == ChatKind::Direct && who.is_me(&msg.chat) => {
            Decision::deliver(Reason::SelfChat)
        }
        Mode::SelfChat if msg.from_me => Decision::ignore(Reason::FromOwner),
        Mode::SelfChat => Decision::ignore(Reason::SelfChatModeRejectsNonSelf),
        Mode::Bot if msg.from_me => Decision::ignore(Reason::FromOwner),
        Mode::Bot if kind == ChatKind::Group => decide_group(policy, who, msg),
        Mode::Bot => decide_dm(policy, who, pairing, msg, now),
    }
}

/// Whether the decision on `msg` can depend on the pairing store. Only a direct message in bot
/// mode, under `dm_policy: pairing`, from a sender no allowlist admits can: everything else
/// (own echoes, duplicates, groups, allowlisted senders, other policies) is decided without
/// reading the store. Decided on an empty snapshot, such a message is exactly one that would be
/// sent a code or ignored as unauthorized; with the store's state it may be `paired`.
pub fn needs_pairing_state(
    policy: &AccessPolicy,
    who: &Who,
    msg: &InboundMessage,
    seen: Seen,
) -> bool {
    // Cheap first: under any other mode or DM policy the store is never consulted.
    if policy.mode != Mode::Bot || policy.dm_policy != DmPolicy::Pairing {
        return false;
    }
    let unpaired = decide(policy, who, &PairingSnapshot::default(), msg, seen, 0.0);
    matches!(
        unpaired.reason,
        Reason::UnknownSender | Reason::UnauthorizedDmIgnored
    )
}

fn decide_dm(
    policy: &AccessPolicy,
    who: &Who,
    pairing: &PairingSnapshot,
    msg: &InboundMessage,
    now: f64,
) -> Decision {
    // Only the list-based policies need the sender's identities.
    let aliases = || {
        who.identities
            .aliases(&msg.sender, msg.sender_alt.as_deref())
    };
    let listed = |aliases: &[String]| aliases.iter().any(|a| policy.allow_from.contains(a));
    match policy.dm_policy {
        DmPolicy::Disabled => Decision::ignore(Reason::DmDisabled),
        DmPolicy::Open => Decision::deliver(Reason::OpenPolicy),
        DmPolicy::Allowlist if listed(&aliases()) => Decision::deliver(Reason::Allowlisted),
        DmPolicy::Allowlist if policy.allow_from.contains("*") => {
            Decision::deliver(Reason::AllowAll)
        }
        DmPolicy::Allowlist => Decision::ignore(Reason::AllowlistMismatch),
        DmPolicy::Pairing => {
            let aliases = aliases();
            // Under pairing, `*` is deliberately not consulted: it is no bypass.
            if listed(&aliases) {
                Decision::deliver(Reason::Allowlisted)
            } else if aliases.iter().any(|a| pairing.approved.contains(a)) {
                Decision::deliver(Reason::Paired)
            } else {
                match policy.unauthorized_dm {
                    UnauthorizedDm::Ignore => Decision::ignore(Reason::UnauthorizedDmIgnored),
                    UnauthorizedDm::Pair => {
                        let user = who
                            .identities
                            .user_key(&msg.sender, msg.sender_alt.as_deref());
                        pairing_step(pairing, user, now)
                    }
                }
            }
        }
    }
}

fn pairing_step(pairing: &PairingSnapshot, user: String, now: f64) -> Decision {
    let rate_limited = pairing
        .last_request
        .get(&user)
        .is_some_and(|t| now - t < RATE_LIMIT_SECS);
    if rate_limited {
        return Decision::ignore(Reason::PairingRateLimited);
    }
    if pairing.locked_until.is_some_and(|until| now < until) {
        return Decision {
            action: Action::Reply {
                reply: FixedReply::PairingLocked,
                user,
            },
            reason: Reason::PairingLocked,
        };
    }
    // A new code replaces the user's own pending ones, so only others count against the cap.
    let own = pairing.pending_by_user.get(&user).copied().unwrap_or(0);
    if pairing.pending_total.saturating_sub(own) >= MAX_PENDING_PER_PLATFORM {
        return Decision {
            action: Action::Reply {
                reply: FixedReply::PairingQueueFull,
                user,
            },
            reason: Reason::PairingQueueFull,
        };
    }
    Decision {
        action: Action::SendPairingCode { user },
        reason: Reason::UnknownSender,
    }
}

fn decide_group(policy: &AccessPolicy, who: &Who, msg: &InboundMessage) -> Decision {
    match policy.group_policy {
        GroupPolicy::Disabled => return Decision::ignore(Reason::GroupDisabled),
        GroupPolicy::Open => {}
        GroupPolicy::Allowlist => {
            let list = &policy.group_allow_from;
            let allowed = list.contains("*")
                || list.contains(&normalize(&msg.chat))
                || who
                    .identities
                    .aliases(&msg.sender, msg.sender_alt.as_deref())
                    .iter()
                    .any(|a| list.contains(a));
            if !allowed {
                return Decision::ignore(Reason::GroupNotAllowed);
            }
        }
    }
    if policy.require_mention
        && !policy.free_response_chats.contains(&normalize(&msg.chat))
        && !addresses_bot(who, msg)
    {
        return Decision::ignore(Reason::NoMention);
    }
    Decision::deliver(Reason::GroupAllowed)
}

/// A group message is for the bot when it mentions the bot's phone or LID, replies to one of
/// the bot's messages, or is a `/command`.
fn addresses_bot(who: &Who, msg: &InboundMessage) -> bool {
    msg.mentions.iter().any(|m| who.is_me(m))
        || msg
            .quoted
            .as_ref()
            .and_then(|q| q.sender.as_deref())
            .is_some_and(|s| who.is_me(s))
        || msg
            .text
            .as_deref()
            .is_some_and(|t| t.trim_start().starts_with('/'))
}

#[cfg(test)]
mod tests;
