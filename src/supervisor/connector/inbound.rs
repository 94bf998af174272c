//! The inbound path of one connector: everything around the pure `policy::decide` that needs
//! memory or I/O — the account identity and LID mappings, the duplicate window, the ids of the
//! bot's own sends, the pairing store — and turning a decision into an outcome for the ledger
//! plus at most one message to send and one operator alert.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_protocol::message::{Account, InboundMessage};

use crate::pairing::{IssueError, PairingStore};
use crate::policy::send::{OutboundGate, SendKind, Target, Verdict};
use crate::policy::{
    AccessPolicy, Action, ChatKind, PairingSnapshot, Reason, Seen, Who, chat_kind, decide, lid_key,
    needs_pairing_state, normalize,
};
use crate::record::ledger::{FailReason, Outcome};
use crate::record::log::AlertCode;
use crate::supervisor::connector::dedup::{self, Dedup};
use crate::supervisor::handle::ErrorCode;
use crate::util::blocking::blocking;
use crate::util::mask::mask_id;

/// How often a missing pairing directory is looked for again, to start watching it.
const PAIRING_WATCH_RETRY: Duration = Duration::from_secs(1);
/// Ids of the bot's own recent sends, to recognise their echoes.
const SENT_WINDOW: usize = 2_000;

/// What to do about one inbound message.
#[derive(Debug)]
pub struct Admission {
    pub outcome: Outcome,
    /// A message to send to the sender's chat.
    pub send: Option<(SendKind, String)>,
    /// An operator alert to raise: code and text.
    pub alert: Option<(AlertCode, String)>,
    /// A pairing code was issued: who asked, under which request id.
    pub pairing: Option<PairingRequest>,
    /// A delivered group message: what the group said since, not addressed to the agent.
    pub context: Vec<bridge_protocol::message::ContextLine>,
}

/// A stranger who was just issued a pairing code.
#[derive(Debug, Clone)]
pub struct PairingRequest {
    pub platform: String,
    pub user: String,
    pub user_name: Option<String>,
    pub request_id: String,
}

/// Hermes' settings files as last seen, to notice an edit (by `hermes pairing`, an editor, or
/// bridgekeeper's own approve) and resolve the policy again.
struct PolicyWatch {
    source: crate::config::PolicySource,
    stamps: Vec<Option<(std::time::SystemTime, u64)>>,
    /// inotify on the files' directories, and the change count last acted on. Without it
    /// (no inotify, or a directory missing at start) every message looks at the files.
    notified: Option<(crate::util::watch::FileWatch, u64)>,
}

fn stamps(source: &crate::config::PolicySource) -> Vec<Option<(std::time::SystemTime, u64)>> {
    source
        .watched()
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// What a look at Hermes' files found.
#[derive(Debug)]
pub enum PolicyReload {
    /// The policy changed: one line per setting, with its new origin.
    Changed(Vec<String>),
    /// The files changed but cannot be resolved: the policy in force stays.
    Invalid(String),
}

/// inotify on the pairing files, once their directory exists (Hermes or the first code creates
/// it).
enum PairingWatch {
    Watching(crate::util::watch::FileWatch),
    Absent { tried: Option<Instant> },
}

pub struct InboundGate {
    platform: String,
    policy: AccessPolicy,
    watch: Option<PolicyWatch>,
    who: Who,
    store: PairingStore,
    /// The pairing files as last read, with the watch's change count before that read: reused
    /// only while no pairing file changed (an approval or revoke by either CLI, the gateway
    /// link or Hermes counts from the next message). No watch, no reuse.
    snapshot: Option<(u64, PairingSnapshot)>,
    pairing_watch: PairingWatch,
    dedup: Dedup,
    sent: HashSet<String>,
    sent_order: VecDeque<String>,
    outbound_gate: Arc<OutboundGate>,
    /// The self-chat explanation is given to the operator once per run.
    explained_self_chat: bool,
    context: super::context::GroupContext,
}

impl InboundGate {
    pub fn new(
        platform: &str,
        policy: AccessPolicy,
        store: PairingStore,
        outbound_gate: Arc<OutboundGate>,
        dedup_path: &Path,
        context_lines: usize,
    ) -> Self {
        Self {
            platform: platform.to_owned(),
            policy,
            watch: None,
            who: Who::default(),
            store,
            snapshot: None,
            pairing_watch: PairingWatch::Absent { tried: None },
            dedup: Dedup::open(dedup_path, dedup::WINDOW),
            sent: HashSet::new(),
            sent_order: VecDeque::new(),
            outbound_gate,
            explained_self_chat: false,
            context: super::context::GroupContext::new(context_lines),
        }
    }

    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// From now on, `refresh_policy` resolves the policy again when Hermes' files change.
    pub fn watch_policy(&mut self, source: crate::config::PolicySource) {
        let stamps = blocking(|| stamps(&source));
        let notified = crate::util::watch::FileWatch::start(&source.watched()).map(|w| (w, 0));
        self.watch = Some(PolicyWatch {
            source,
            stamps,
            notified,
        });
    }

    /// When Hermes' `.env`, `config.yaml` or the relay's policy file changed, resolves the
    /// policy again before the next message is decided: an allowlist edit or a revoke mirrored
    /// into `.env` counts from the very next message. Per message this is one atomic load (the
    /// inotify thread counts changes); the files are looked at only after a change.
    pub fn refresh_policy(&mut self) -> Option<PolicyReload> {
        let watch = self.watch.as_mut()?;
        if let Some((files, seen)) = &mut watch.notified {
            let changes = files.changes();
            if changes == *seen {
                return None;
            }
            *seen = changes;
        }
        let now = blocking(|| stamps(&watch.source));
        if now == watch.stamps {
            return None;
        }
        watch.stamps = now;
        match blocking(|| watch.source.resolve()) {
            Ok(resolved) => {
                let changes = watch.source.changes(&resolved.settings);
                watch.source.settings = resolved.settings;
                if resolved.policy == self.policy {
                    return None;
                }
                self.policy = resolved.policy;
                self.snapshot = None;
                Some(PolicyReload::Changed(changes))
            }
            Err(e) => Some(PolicyReload::Invalid(e.to_string())),
        }
    }

    pub fn set_account(&mut self, account: &Account) {
        if let Some(phone) = &account.phone {
            self.who.phone = Some(normalize(phone));
        }
        if let Some(lid) = &account.lid {
            self.who.lid = Some(lid_key(lid));
        }
        if let Some(id) = &account.user_id {
            self.who.id = Some(normalize(id));
        }
    }

    pub fn learn_mapping(&mut self, lid: &str, phone: &str) {
        self.who.identities.learn(lid, phone);
    }

    /// Whether `chat` is the account's own chat.
    pub fn is_own_chat(&self, chat: &str) -> bool {
        let key = normalize(chat);
        chat_kind(chat) == ChatKind::Direct
            && (self.who.phone.as_deref() == Some(&key) || self.who.lid.as_deref() == Some(&key))
    }

    /// Remembers message ids the bot sent, so their echoes are not taken for new messages.
    pub fn note_sent(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            if self.sent.insert(id.clone()) {
                self.sent_order.push_back(id);
            }
            while self.sent_order.len() > SENT_WINDOW {
                if let Some(old) = self.sent_order.pop_front() {
                    self.sent.remove(&old);
                }
            }
        }
    }

    /// Writes out what the duplicate window buffered: called after each batch of lines.
    pub fn flush(&mut self) {
        self.dedup.flush();
    }

    pub fn admit(&mut self, msg: &InboundMessage, now: f64) -> Admission {
        // The alternate id on the message is a mapping the connector saw.
        if let Some(alt) = &msg.sender_alt {
            match (msg.sender.ends_with("@lid"), alt.ends_with("@lid")) {
                (true, false) => self.who.identities.learn(&msg.sender, alt),
                (false, true) => self.who.identities.learn(alt, &msg.sender),
                _ => {}
            }
        }
        let key = Dedup::key(&msg.chat, &msg.id);
        let seen = Seen {
            duplicate: self.dedup.contains(&key),
            sent_by_us: self.sent.contains(&msg.id),
        };
        // Own echoes, duplicates and everyone the store cannot change a decision for never
        // read it.
        let needs_pairing = needs_pairing_state(&self.policy, &self.who, msg, seen);
        // A store that cannot be read (wholly or in part) still lets approved and allowlisted
        // users through; everyone else fails closed, with an alert.
        let (snapshot, store_trouble) = if needs_pairing {
            match self.pairing_snapshot(now) {
                Ok(s) => {
                    let trouble = s.unreadable.as_deref().map(store_alert);
                    (s, trouble)
                }
                Err(alert) => (PairingSnapshot::default(), Some(alert)),
            }
        } else {
            (PairingSnapshot::default(), None)
        };
        let decision = decide(&self.policy, &self.who, &snapshot, msg, seen, now);
        if !seen.duplicate {
            self.dedup.insert(key);
        }
        if let Some(alert) = store_trouble
            && decision.action != Action::Deliver
        {
            return failed(FailReason::PairingStore, Some(alert));
        }
        match decision.action {
            Action::Deliver => Admission {
                context: if msg.is_group {
                    self.context.take(&msg.chat)
                } else {
                    Vec::new()
                },
                ..admission(Outcome::Delivered(decision.reason))
            },
            Action::Ignore if decision.reason == Reason::NoMention => {
                self.context.keep(msg);
                admission(Outcome::Ignored(decision.reason))
            }
            Action::Ignore => {
                let mut a = admission(Outcome::Ignored(decision.reason));
                if decision.reason == Reason::SelfChatModeRejectsNonSelf
                    && !self.explained_self_chat
                {
                    self.explained_self_chat = true;
                    a.alert = Some((
                        AlertCode::SelfChatModeIgnoredMessage,
                        self.self_chat_explanation(msg),
                    ));
                }
                a
            }
            Action::SendPairingCode { user } => self.send_pairing_code(msg, &user, now),
            Action::Reply { reply, user } => {
                if !self.may_send(&msg.chat, SendKind::PolicyReply) {
                    return failed(FailReason::SendDenied, None);
                }
                if let Err(e) = blocking(|| self.store.note_request(&self.platform, &user, now)) {
                    return failed(FailReason::PairingStore, Some(store_alert(&e.to_string())));
                }
                self.snapshot = None;
                Admission {
                    send: Some((SendKind::PolicyReply, reply.text().to_owned())),
                    ..admission(Outcome::ReplySent(decision.reason))
                }
            }
        }
    }

    fn send_pairing_code(&mut self, msg: &InboundMessage, user: &str, now: f64) -> Admission {
        // Checked before a code exists: a code that cannot be sent must not be issued.
        if !self.may_send(&msg.chat, SendKind::PairingCode) {
            return failed(FailReason::SendDenied, None);
        }
        let name = msg.push_name.as_deref().unwrap_or_default();
        let issued = blocking(|| self.store.issue(&self.platform, user, name, now));
        self.snapshot = None;
        match issued {
            Ok(issued) => Admission {
                send: Some((
                    SendKind::PairingCode,
                    pairing_text(&self.platform, &issued.code),
                )),
                pairing: Some(PairingRequest {
                    platform: self.platform.clone(),
                    user: user.to_owned(),
                    user_name: msg.push_name.clone(),
                    request_id: issued.request_id,
                }),
                ..admission(Outcome::PairingCodeSent)
            },
            // The store saw a newer state than our snapshot (another process wrote meanwhile):
            // an approval that landed since is a delivery, never a refusal.
            Err(IssueError::AlreadyApproved) => admission(Outcome::Delivered(Reason::Paired)),
            Err(IssueError::RateLimited) => ignored(Reason::PairingRateLimited),
            Err(IssueError::QueueFull) => ignored(Reason::PairingQueueFull),
            Err(IssueError::LockedOut { .. }) => ignored(Reason::PairingLocked),
            Err(IssueError::Store(e)) => {
                failed(FailReason::PairingStore, Some(store_alert(&e.to_string())))
            }
        }
    }

    fn may_send(&self, chat: &str, kind: SendKind) -> bool {
        let target = Target {
            platform: &self.platform,
            chat,
            is_self: self.is_own_chat(chat),
            kind,
        };
        self.outbound_gate.check(target) == Verdict::Allow
    }

    fn pairing_snapshot(&mut self, now: f64) -> Result<PairingSnapshot, (AlertCode, String)> {
        let changes = self.pairing_changes();
        if let (Some(changes), Some((seen, snap))) = (changes, &self.snapshot)
            && changes == *seen
        {
            return Ok(snap.clone());
        }
        let snap = blocking(|| self.store.snapshot(&self.platform, now))
            .map_err(|e| store_alert(&e.to_string()))?;
        // Counted before the read: a change during the read makes the next message read again.
        self.snapshot = changes.map(|c| (c, snap.clone()));
        Ok(snap)
    }

    /// The pairing files' change count, starting the watch once their directory exists.
    fn pairing_changes(&mut self) -> Option<u64> {
        if let PairingWatch::Absent { tried } = &self.pairing_watch {
            if tried.is_some_and(|t| t.elapsed() < PAIRING_WATCH_RETRY) {
                return None;
            }
            let files = [
                self.store.pending_path(&self.platform),
                self.store.approved_path(&self.platform),
                self.store.rate_path(),
            ];
            self.pairing_watch = match crate::util::watch::FileWatch::start(&files) {
                Some(w) => PairingWatch::Watching(w),
                None => PairingWatch::Absent {
                    tried: Some(Instant::now()),
                },
            };
        }
        match &self.pairing_watch {
            PairingWatch::Watching(w) => Some(w.changes()),
            PairingWatch::Absent { .. } => None,
        }
    }

    fn self_chat_explanation(&self, msg: &InboundMessage) -> String {
        let upper = self.platform.to_uppercase();
        format!(
            "A message from {} was ignored because {} runs in self-chat mode, which answers only \
             your own chat (\"message yourself\"). Strangers are never answered in this mode. To let \
             other people talk to the assistant, set {upper}_MODE=bot (and {upper}_DM_POLICY, e.g. \
             pairing), then restart bridgekeeper. This notice is shown once per run.",
            mask_id(&msg.sender),
            self.platform
        )
    }
}

/// The one place an inbound message's outcome is settled: the admission's, unless the reply
/// it called for could not be queued (`queued` is `Ok` when there was none), or the message
/// cannot reach a gateway that is gone.
pub fn settle(admitted: Outcome, queued: Result<(), ErrorCode>, gateway_closed: bool) -> Outcome {
    match (admitted, queued) {
        (_, Err(ErrorCode::SendDenied)) => Outcome::Failed(FailReason::SendDenied),
        (_, Err(_)) => Outcome::Failed(FailReason::SendQueueFull),
        (Outcome::Delivered(_), _) if gateway_closed => Outcome::Failed(FailReason::GatewayClosed),
        (outcome, _) => outcome,
    }
}

fn admission(outcome: Outcome) -> Admission {
    Admission {
        outcome,
        send: None,
        alert: None,
        pairing: None,
        context: Vec::new(),
    }
}

fn ignored(reason: Reason) -> Admission {
    admission(Outcome::Ignored(reason))
}

fn failed(reason: FailReason, alert: Option<(AlertCode, String)>) -> Admission {
    Admission {
        alert,
        ..admission(Outcome::Failed(reason))
    }
}

fn store_alert(error: &str) -> (AlertCode, String) {
    (
        AlertCode::PairingStoreError,
        format!("the pairing store cannot be used, so unknown senders cannot pair: {error}"),
    )
}

/// The message a stranger receives with their code.
pub fn pairing_text(platform: &str, code: &str) -> String {
    format!(
        "Hi! This assistant does not know you yet.\nYour pairing code: {} {}\nIt is valid for 1 hour. \
         Ask the owner to approve it with:\nbridgekeeper pairing approve {platform} {code}",
        &code[..4],
        &code[4..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Reason;

    #[test]
    fn the_outcome_is_settled_in_one_place() {
        let delivered = Outcome::Delivered(Reason::Allowlisted);
        let code = Outcome::PairingCodeSent;
        let rows = [
            (
                delivered,
                Ok(()),
                false,
                Outcome::Delivered(Reason::Allowlisted),
            ),
            (
                delivered,
                Ok(()),
                true,
                Outcome::Failed(FailReason::GatewayClosed),
            ),
            (code, Ok(()), true, Outcome::PairingCodeSent),
            (
                code,
                Err(ErrorCode::QueueFull),
                false,
                Outcome::Failed(FailReason::SendQueueFull),
            ),
            (
                code,
                Err(ErrorCode::ShuttingDown),
                false,
                Outcome::Failed(FailReason::SendQueueFull),
            ),
            (
                code,
                Err(ErrorCode::SendDenied),
                false,
                Outcome::Failed(FailReason::SendDenied),
            ),
        ];
        for (i, (a, queued, closed, want)) in rows.into_iter().enumerate() {
            assert_eq!(settle(a, queued, closed), want, "row {i}");
        }
    }
}
