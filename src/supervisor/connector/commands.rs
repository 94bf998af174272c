//! The command book of one connector: every command accepted and not yet answered, in the
//! order they are written, with their deadlines, and the sent messages still waiting for the
//! server's ack. It decides nothing and does no I/O: it returns what an answer means (the
//! gateway's result, the ids the connector sent) and the task records and forwards it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bridge_protocol::message::{Command, CommandResult, ErrorBody};
use futures_util::StreamExt;
use tokio_util::time::{DelayQueue, delay_queue};

use crate::supervisor::handle::Origin;

/// Sent messages awaiting their server ack that are remembered (the oldest beyond this are
/// reported `unconfirmed` rather than forgotten).
const UNACKED_LIMIT: usize = 1_000;

/// A command's number on the connector link: its `id` there is this number's decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(u64);

impl Seq {
    /// The `id` of the command line.
    pub fn wire_id(self) -> String {
        self.0.to_string()
    }
}

struct Pending {
    origin: Origin,
    command: Command,
    deadline: delay_queue::Key,
    /// Handed to the stdin writer: the connector may have acted on it.
    written: bool,
}

/// What answering one command comes to.
#[derive(Debug)]
pub struct Answered {
    pub seq: Seq,
    pub origin: Origin,
    pub command: &'static str,
    pub ok: bool,
    pub error_code: Option<String>,
    /// The result for the gateway, when the gateway asked.
    pub result: Option<CommandResult>,
    /// Message ids the connector reported sending (the bot's own, for echo detection).
    pub sent_ids: Vec<String>,
    /// Sent messages forgotten to stay bounded: their fate is unknown (`unconfirmed`).
    pub unconfirmed: Vec<(String, String)>,
}

pub struct CommandBook {
    /// Not yet written, oldest first.
    queue: VecDeque<Seq>,
    /// Every command without its result yet, written or not.
    pending: HashMap<Seq, Pending>,
    deadlines: DelayQueue<Seq>,
    next: u64,
    /// Sent messages `(id, chat)` whose server ack has not been reported yet, oldest first.
    unacked: VecDeque<(String, String)>,
    capacity: usize,
    default_timeout: Duration,
}

impl CommandBook {
    pub fn new(capacity: usize, default_timeout: Duration) -> Self {
        Self {
            queue: VecDeque::new(),
            pending: HashMap::new(),
            deadlines: DelayQueue::new(),
            next: 1,
            unacked: VecDeque::new(),
            capacity,
            default_timeout,
        }
    }

    pub fn is_full(&self) -> bool {
        self.pending.len() >= self.capacity
    }

    /// Commands without a result (written or waiting).
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn has_unwritten(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Commands not yet written, and written ones without their result: `(waiting, in flight)`.
    pub fn depths(&self) -> (u64, u64) {
        let waiting = self.queue.len();
        (
            waiting as u64,
            self.pending.len().saturating_sub(waiting) as u64,
        )
    }

    /// Queues a command with its deadline (the caller checked `is_full` and the send policy).
    pub fn accept(&mut self, origin: Origin, command: Command, timeout: Option<Duration>) -> Seq {
        let seq = Seq(self.next);
        self.next += 1;
        let deadline = self
            .deadlines
            .insert(seq, timeout.unwrap_or(self.default_timeout));
        self.pending.insert(
            seq,
            Pending {
                origin,
                command,
                deadline,
                written: false,
            },
        );
        self.queue.push_back(seq);
        seq
    }

    /// Queues a housekeeping command ahead of everything waiting (the typing indicator that
    /// goes before the next text).
    pub fn accept_front(&mut self, origin: Origin, command: Command, timeout: Duration) -> Seq {
        let seq = self.accept(origin, command, Some(timeout));
        self.queue.retain(|s| *s != seq);
        self.queue.push_front(seq);
        seq
    }

    /// The next command to write and its number, without taking it.
    pub fn peek_next_seq(&self) -> Option<(Seq, &Command)> {
        self.queue
            .iter()
            .find_map(|seq| self.pending.get(seq).map(|p| (*seq, &p.command)))
    }

    /// The next command to write, marked written (the connector may act on it from now on).
    pub fn take_next_to_write(&mut self) -> Option<(Seq, Command)> {
        while let Some(seq) = self.queue.pop_front() {
            if let Some(p) = self.pending.get_mut(&seq) {
                p.written = true;
                return Some((seq, p.command.clone()));
            }
        }
        None
    }

    /// The command a connector's `result` line answers, if it is still open.
    pub fn seq_of(&self, id: &str) -> Option<Seq> {
        id.parse()
            .ok()
            .map(Seq)
            .filter(|s| self.pending.contains_key(s))
    }

    /// Who asked for an open command.
    pub fn origin(&self, seq: Seq) -> Option<&Origin> {
        self.pending.get(&seq).map(|p| &p.origin)
    }

    pub fn written(&self, seq: Seq) -> Option<bool> {
        self.pending.get(&seq).map(|p| p.written)
    }

    /// The next command whose deadline passed (pending forever while none is due).
    pub async fn next_expired(&mut self) -> Option<Seq> {
        self.deadlines.next().await.map(|e| e.into_inner())
    }

    /// Answers command `seq` and forgets it.
    pub fn answer(
        &mut self,
        seq: Seq,
        outcome: Result<Option<serde_json::Value>, ErrorBody>,
    ) -> Option<Answered> {
        let pending = self.pending.remove(&seq)?;
        self.queue.retain(|s| *s != seq);
        self.deadlines.try_remove(&pending.deadline);
        let mut sent_ids = Vec::new();
        let mut unconfirmed = Vec::new();
        if let Ok(Some(data)) = &outcome
            && let Some(ids) = data.get("message_ids").and_then(|v| v.as_array())
        {
            sent_ids = ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if let Some(chat) = pending.command.target_chat() {
                for id in &sent_ids {
                    self.unacked.push_back((id.clone(), chat.to_owned()));
                }
                while self.unacked.len() > UNACKED_LIMIT {
                    unconfirmed.extend(self.unacked.pop_front());
                }
            }
        }
        let ok = outcome.is_ok();
        let error_code = outcome.as_ref().err().map(|e| e.code.clone());
        let origin = pending.origin.clone();
        let result = match pending.origin {
            Origin::Gateway(id) => Some(match outcome {
                Ok(data) => CommandResult::ok(id, data),
                Err(error) => CommandResult::err(id, error),
            }),
            Origin::Internal(_) | Origin::Housekeeping => None,
        };
        Some(Answered {
            seq,
            origin,
            command: pending.command.type_name(),
            ok,
            error_code,
            result,
            sent_ids,
            unconfirmed,
        })
    }

    /// Written commands, oldest first (the process died: they may or may not have run).
    pub fn written_seqs(&self) -> Vec<Seq> {
        let mut seqs: Vec<Seq> = self
            .pending
            .iter()
            .filter(|(_, p)| p.written)
            .map(|(s, _)| *s)
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// Every open command, oldest first, with whether it was written.
    pub fn all_seqs(&self) -> Vec<(Seq, bool)> {
        let mut seqs: Vec<(Seq, bool)> =
            self.pending.iter().map(|(s, p)| (*s, p.written)).collect();
        seqs.sort_unstable();
        seqs
    }

    /// The server acknowledged (or otherwise settled) a sent message.
    pub fn settle_sent(&mut self, message_id: &str) {
        self.unacked.retain(|(id, _)| id != message_id);
    }

    /// Every sent message still without an ack: the connector is gone and cannot report it.
    pub fn take_unacked(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.unacked).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::send::SendKind;
    use bridge_protocol::message::{SendText, Typing};

    fn text(chat: &str) -> Command {
        Command::SendText(SendText {
            chat: chat.into(),
            text: "hi".into(),
            reply_to: None,
            thread: None,
        })
    }

    #[tokio::test]
    async fn commands_are_written_in_order_and_answered_once() {
        let mut book = CommandBook::new(2, Duration::from_secs(60));
        let a = book.accept(Origin::Gateway("g1".into()), text("1@s.whatsapp.net"), None);
        let b = book.accept(
            Origin::Internal(SendKind::PairingCode),
            Command::Typing(Typing {
                chat: "2@s.whatsapp.net".into(),
                state: Default::default(),
            }),
            None,
        );
        assert!(book.is_full());
        assert_eq!(book.take_next_to_write().map(|(s, _)| s), Some(a));
        assert_eq!(book.written(a), Some(true));
        assert_eq!(book.written(b), Some(false));
        assert_eq!(book.seq_of(&a.wire_id()), Some(a));
        assert_eq!(book.seq_of("nonsense"), None);

        let data = serde_json::json!({"message_ids": ["M1"]});
        let answered = book.answer(a, Ok(Some(data))).unwrap();
        assert_eq!(answered.sent_ids, vec!["M1"]);
        assert!(answered.ok);
        let result = answered.result.unwrap();
        assert_eq!((result.id.as_str(), result.ok), ("g1", true));
        assert!(book.answer(a, Ok(None)).is_none(), "exactly one answer");
        assert_eq!(
            book.seq_of(&a.wire_id()),
            None,
            "a late result is not matched"
        );

        // An internal command's answer carries no gateway result.
        let answered = book
            .answer(
                b,
                Err(ErrorBody {
                    code: "timeout".into(),
                    message: "x".into(),
                    unconfirmed: false,
                }),
            )
            .unwrap();
        assert!(answered.result.is_none());
        assert_eq!(answered.error_code.as_deref(), Some("timeout"));
        assert!(book.is_idle() && !book.has_unwritten());

        // The sent message waits for its ack; the connector's death reports it unconfirmed.
        assert_eq!(
            book.take_unacked(),
            vec![("M1".to_owned(), "1@s.whatsapp.net".to_owned())]
        );
    }

    #[tokio::test]
    async fn written_commands_are_known_and_deadlines_expire() {
        let mut book = CommandBook::new(8, Duration::from_secs(60));
        let a = book.accept(Origin::Gateway("g1".into()), text("1@s.whatsapp.net"), None);
        let b = book.accept(
            Origin::Gateway("g2".into()),
            text("1@s.whatsapp.net"),
            Some(Duration::from_millis(20)),
        );
        book.take_next_to_write();
        assert_eq!(book.written_seqs(), vec![a]);
        assert_eq!(book.all_seqs(), vec![(a, true), (b, false)]);
        assert_eq!(
            book.next_expired().await,
            Some(b),
            "the shorter deadline first"
        );
        let answered = book.answer(b, Ok(None)).unwrap();
        assert_eq!(answered.seq, b);
        assert_eq!(
            book.take_next_to_write(),
            None,
            "b left the write queue too"
        );
    }

    #[tokio::test]
    async fn unacked_sends_stay_bounded_and_the_oldest_are_reported() {
        let mut book = CommandBook::new(UNACKED_LIMIT + 10, Duration::from_secs(60));
        let mut unconfirmed = 0;
        for i in 0..UNACKED_LIMIT + 5 {
            let seq = book.accept(
                Origin::Gateway(format!("g{i}")),
                text("1@s.whatsapp.net"),
                None,
            );
            let data = serde_json::json!({ "message_ids": [format!("M{i}")] });
            unconfirmed += book.answer(seq, Ok(Some(data))).unwrap().unconfirmed.len();
        }
        assert_eq!(unconfirmed, 5);
        book.settle_sent("M10");
        assert_eq!(book.take_unacked().len(), UNACKED_LIMIT - 1);
    }
}
