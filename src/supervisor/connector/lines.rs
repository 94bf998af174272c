//! The connector's stdout: lines become events — its handshake and status, QR and link codes,
//! account and LID mappings, receipts, results and inbound messages — and bad lines become
//! counted, logged line errors (an oversized inbound message still gets its ledger entry).

use std::io;

use bridge_protocol::LineError;
use bridge_protocol::gateway::{GatewayEvent, Severity};
use bridge_protocol::message::{ConnectionState, ConnectorEvent, InboundMessage};
use futures_util::{FutureExt, StreamExt};

use super::{ConnectorTask, Stdout};
use crate::record::ledger::{FailReason, Outcome};
use crate::record::log::{AlertCode, Event};

/// Lines handled in one turn of the loop when the connector wrote many at once: the events
/// they produce reach the gateway writer together (one wake-up, not one per line), and
/// commands and timers still get a turn between batches.
const FRAMES_PER_TURN: usize = 256;

pub(super) type Frame = Option<Result<Result<ConnectorEvent, LineError>, io::Error>>;

impl ConnectorTask {
    /// Handles `first` and then every line that is ready without waiting, up to a bound.
    pub(super) fn on_frames(&mut self, first: Frame) {
        self.outbox.begin_batch();
        self.on_frame(first);
        for _ in 1..FRAMES_PER_TURN {
            let Some(stdout) = self.stdout.as_mut() else {
                break;
            };
            // Polled once without a waker of ours: `select!` registers one on the next turn.
            match stdout.next().now_or_never() {
                Some(frame) => self.on_frame(frame),
                None => break,
            }
        }
        self.inbound_gate.flush();
        self.send_recorded_notes();
        let lost = self.outbox.end_batch();
        self.retract(lost);
    }

    pub(super) fn on_frame(&mut self, frame: Frame) {
        self.liveness.last_line = std::time::Instant::now();
        match frame {
            None => self.stdout = None,
            Some(Err(e)) => {
                tracing::warn!(connector = %self.name, error = %e, "reading connector stdout failed");
                self.stdout = None;
            }
            Some(Ok(Err(line_error))) => self.on_line_error(line_error),
            Some(Ok(Ok(event))) => self.on_event(event),
        }
    }

    pub(super) fn on_line_error(&mut self, error: LineError) {
        let kind = error.kind();
        self.log.board().update(self.index, |c| {
            *c.line_errors.entry(kind.to_owned()).or_default() += 1;
        });
        // The line's shape, never its text (debug mode excepted).
        let message = if self.log.debug() {
            self.log.text(&error.to_string())
        } else {
            self.log.text(&error.summary())
        };
        self.log.emit(
            Some(&self.name),
            &Event::ConnectorLineError {
                kind,
                line: error.line(),
                message,
            },
        );
        if let LineError::TooLong {
            limit, recovered, ..
        } = &error
            && recovered.type_name.as_deref() == Some("inbound")
        {
            self.on_oversized_inbound(*limit, recovered);
        }
    }

    /// An inbound message too long to decode is still a received message: it gets its ledger
    /// entry (`failed: too_long`, under the id its first bytes gave) and an alert.
    pub(super) fn on_oversized_inbound(
        &mut self,
        limit: usize,
        recovered: &bridge_protocol::error::Recovered,
    ) {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let message = InboundMessage {
            id: text(&recovered.id),
            chat: text(&recovered.chat),
            sender: text(&recovered.sender),
            sender_alt: None,
            is_group: false,
            chat_name: None,
            sender_is_bot: false,
            edited: false,
            from_me: false,
            push_name: None,
            text: None,
            media: None,
            mentions: Vec::new(),
            quoted: None,
            thread: None,
            timestamp: 0,
            routed: None,
            context: Vec::new(),
        };
        let failure = FailReason::TooLong;
        self.log
            .decision(self.index, &self.name, &message, Outcome::Failed(failure));
        let id = if message.id.is_empty() {
            "whose id could not be read".to_owned()
        } else {
            format!("{:?}", message.id)
        };
        self.alert(
            Severity::Warning,
            AlertCode::InboundTooLong,
            format!(
                "an inbound message {id} was longer than this connector's max_line_bytes ({limit} bytes) and was not delivered (ledger: failed too_long); raise connectors[].max_line_bytes to accept such messages"
            ),
        );
    }

    pub(super) fn on_event(&mut self, event: ConnectorEvent) {
        match event {
            ConnectorEvent::Hello(hello) => self.on_hello(hello),
            ConnectorEvent::Status(status) => {
                self.log.emit(
                    Some(&self.name),
                    &Event::Connection {
                        state: status.state,
                        code: status.code,
                        reason: status.reason.as_deref(),
                    },
                );
                if let Some(p) = self.process.as_mut()
                    && matches!(
                        status.state,
                        ConnectionState::LoggedOut | ConnectionState::Conflict
                    )
                {
                    p.reported = Some(status.state);
                }
                let copy = status.clone();
                self.log
                    .board()
                    .update(self.index, |c| c.connection = Some(copy));
                self.push(GatewayEvent::Connection {
                    connector: self.name.to_string(),
                    status,
                });
            }
            ConnectorEvent::Qr(qr) => {
                self.log.emit(Some(&self.name), &Event::QrReceived);
                self.push(GatewayEvent::Qr {
                    connector: self.name.to_string(),
                    data: qr.data,
                    expires_in_ms: qr.expires_in_ms,
                });
            }
            ConnectorEvent::LinkCode(code) => {
                self.log.emit(Some(&self.name), &Event::LinkCodeReceived);
                self.push(GatewayEvent::LinkCode {
                    connector: self.name.to_string(),
                    code: code.code,
                });
            }
            ConnectorEvent::Account(account) => {
                self.inbound_gate.set_account(&account);
                self.log.emit(
                    Some(&self.name),
                    &Event::Account {
                        phone: account.phone.as_deref().map(|p| self.log.id(p)),
                        lid: account.lid.as_deref().map(|l| self.log.id(l)),
                    },
                );
                self.push(GatewayEvent::Account {
                    connector: self.name.to_string(),
                    account,
                });
            }
            ConnectorEvent::LidMapping(mapping) => {
                self.inbound_gate
                    .learn_mapping(&mapping.lid, &mapping.phone);
                self.log.emit(
                    Some(&self.name),
                    &Event::LidMapping {
                        lid: self.log.id(&mapping.lid),
                        phone: self.log.id(&mapping.phone),
                    },
                );
            }
            ConnectorEvent::Inbound(message) => self.on_inbound(message),
            ConnectorEvent::Receipt(receipt) => {
                self.commands.settle_sent(&receipt.message_id);
                self.log.emit(
                    Some(&self.name),
                    &Event::Receipt {
                        message_id: &receipt.message_id,
                        chat: self.log.id(&receipt.chat),
                        status: receipt.status,
                    },
                );
                self.push(GatewayEvent::Receipt {
                    connector: self.name.to_string(),
                    receipt,
                });
            }
            ConnectorEvent::Result(result) => self.on_result(result),
            ConnectorEvent::Heartbeat(beat) => self.on_heartbeat(beat),
        }
    }
}

pub(super) async fn next_frame(stdout: &mut Option<Stdout>) -> Frame {
    match stdout {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
