//! Outbound pacing as the connector task applies it: how long the next command waits, and
//! since when a held send has waited (for the status board).

use bridge_protocol::message::Command;

use super::ConnectorTask;
use crate::supervisor::Origin;

impl ConnectorTask {
    /// How long the next command must wait for outbound pacing (`None`: it may go now).
    pub(super) fn pacing_wait(&mut self) -> Option<tokio::time::Instant> {
        if self.cfg.pacing.is_off() {
            return None;
        }
        let (seq, command) = self.commands.peek_next_seq()?;
        let chat = paced_chat(command)?.to_owned();
        let chars = match command {
            Command::SendText(t) => t.text.chars().count(),
            _ => 0,
        };
        let now = std::time::Instant::now();
        let at = self
            .pacer
            .ready_at(&self.cfg.pacing, &chat, now, crate::util::random::unit);
        if at > now {
            return Some(tokio::time::Instant::now() + (at - now));
        }
        // Its turn: show "typing…" first, for a time that grows with the text.
        let typing = self.cfg.pacing.typing_time(chars);
        match self.typing {
            Some((s, until)) if s == seq => (until > tokio::time::Instant::now()).then_some(until),
            _ if typing.is_zero() => None,
            _ => {
                let show = Command::Typing(bridge_protocol::message::Typing {
                    chat,
                    state: Default::default(),
                });
                self.commands
                    .accept_front(Origin::Housekeeping, show, typing * 2);
                self.typing = Some((seq, tokio::time::Instant::now() + typing));
                // The typing command is now first in line and goes at once.
                None
            }
        }
    }

    /// The command at the head of the queue is held by pacing (its "typing…" included): from
    /// now, unless it already was.
    pub(super) fn note_paced(&mut self) {
        let Some((seq, _)) = self.commands.peek_next_seq() else {
            return;
        };
        if self.paced_since.is_none_or(|(held, _)| held != seq) {
            self.paced_since = Some((seq, std::time::Instant::now()));
        }
    }
}

/// The chat a command sends a message to, if pacing applies to it (edits, typing and read
/// receipts are not messages).
pub(super) fn paced_chat(command: &Command) -> Option<&str> {
    match command {
        Command::SendText(_)
        | Command::SendMedia(_)
        | Command::SendPoll(_)
        | Command::SendLocation(_) => command.target_chat(),
        _ => None,
    }
}
