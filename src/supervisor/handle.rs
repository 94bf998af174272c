//! How the rest of the daemon talks to a connector task: a clonable handle sending `Control`
//! messages. Every command gets exactly one result, sent by the task (or, when the task cannot
//! take it, by the caller from the `Rejected` answer).

use std::sync::Arc;
use std::time::Duration;

use bridge_protocol::gateway::ConnectorStateName;
use bridge_protocol::message::{Command, SendText};
use tokio::sync::mpsc;

use crate::policy::send::SendKind;
use crate::record::log::{Event, EventLog};

/// Who asked for a command, which decides where its result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The gateway, with its correlation id: the result goes back on the gateway link.
    Gateway(String),
    /// The supervisor itself (pairing codes, policy replies, alerts): the result is logged.
    Internal(SendKind),
    /// The supervisor's own housekeeping (the liveness ping, simulated typing): not the
    /// gateway's command, not counted, its answer dropped.
    Housekeeping,
}

impl Origin {
    /// The kind of outbound message, for the send policy.
    pub fn kind(&self) -> SendKind {
        match self {
            Self::Gateway(_) => SendKind::Reply,
            Self::Internal(kind) => *kind,
            // Never judged by the send policy: a ping names no chat, and typing goes only
            // before a send that was already let through.
            Self::Housekeeping => SendKind::Alert,
        }
    }
}

pub enum Control {
    Command {
        origin: Origin,
        command: Command,
        /// Overrides the connector's default command timeout.
        timeout: Option<Duration>,
    },
    /// Answered by the task's loop on its next turn: proof that the loop is alive (the
    /// service watchdog's ping depends on it).
    Pulse(tokio::sync::oneshot::Sender<()>),
}

/// The supervisor's own error codes in command results (stable names, listed in PROTOCOL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The connector's command queue is full; retry later.
    QueueFull,
    /// No result within the command's timeout.
    Timeout,
    /// Outbound pacing held the command back past its timeout; it was not sent.
    RateLimited,
    /// The connector process ended after the command was written to it.
    ConnectorExited,
    /// The connector is failed, needs re-linking or is in conflict.
    ConnectorUnavailable,
    /// No connector has that name.
    UnknownConnector,
    /// A connector command without `connector`.
    ConnectorRequired,
    /// The supervisor is stopping.
    ShuttingDown,
    /// The command does not fit in one line of the connector link.
    TooLarge,
    /// The send policy does not allow this message to this chat.
    SendDenied,
    /// The chat's answers go to a platform no running connector serves.
    DeliverUnavailable,
    InvalidCommand,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::ConnectorExited => "connector_exited",
            Self::ConnectorUnavailable => "connector_unavailable",
            Self::UnknownConnector => "unknown_connector",
            Self::ConnectorRequired => "connector_required",
            Self::ShuttingDown => "shutting_down",
            Self::TooLarge => "too_large",
            Self::SendDenied => "send_denied",
            Self::DeliverUnavailable => "deliver_unavailable",
            Self::InvalidCommand => "invalid_command",
        }
    }

    pub fn message(self, connector: &str, state: ConnectorStateName) -> String {
        match self {
            Self::QueueFull => format!("connector {connector}: command queue is full; retry later"),
            Self::Timeout => format!("connector {connector}: no result within the command timeout"),
            Self::RateLimited => format!(
                "connector {connector}: outbound pacing held this send past its timeout; it was not sent"
            ),
            Self::ConnectorExited => format!(
                "connector {connector} exited after the command was written; it may or may not have taken effect"
            ),
            Self::ConnectorUnavailable => {
                format!(
                    "connector {connector} is {}; see `bridgekeeper status`",
                    state.as_str()
                )
            }
            Self::UnknownConnector => format!("no connector named {connector:?}"),
            Self::ConnectorRequired => "this command needs a \"connector\" field".into(),
            Self::ShuttingDown => "bridgekeeper is shutting down".into(),
            Self::TooLarge => format!("command too large for connector {connector}"),
            Self::SendDenied => {
                format!("the send policy does not allow this message via connector {connector}")
            }
            Self::InvalidCommand => format!("command cannot be encoded for connector {connector}"),
            Self::DeliverUnavailable => format!(
                "answers to this {connector} chat are delivered to a platform no connector of this bridgekeeper serves"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    QueueFull,
    ShuttingDown,
}

#[derive(Clone)]
pub struct ConnectorHandle {
    pub name: Arc<str>,
    /// Position in the config and the status board.
    pub index: usize,
    tx: mpsc::Sender<Control>,
}

impl ConnectorHandle {
    pub fn new(name: &str, index: usize, tx: mpsc::Sender<Control>) -> Self {
        Self {
            name: Arc::from(name),
            index,
            tx,
        }
    }

    /// Hands a command to the task without waiting; a full channel is an immediate refusal.
    pub fn try_command(
        &self,
        origin: Origin,
        command: Command,
        timeout: Option<Duration>,
    ) -> Result<(), (Rejected, Origin)> {
        let control = Control::Command {
            origin,
            command,
            timeout,
        };
        self.tx.try_send(control).map_err(|e| {
            let (rejected, control) = match e {
                mpsc::error::TrySendError::Full(c) => (Rejected::QueueFull, c),
                mpsc::error::TrySendError::Closed(c) => (Rejected::ShuttingDown, c),
            };
            let Control::Command { origin, .. } = control else {
                unreachable!("a command was sent")
            };
            (rejected, origin)
        })
    }

    /// Whether the task's loop turns: it answers a pulse within `within`.
    pub async fn pulse(&self, within: Duration) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let asked = async { self.tx.send(Control::Pulse(tx)).await.is_ok() && rx.await.is_ok() };
        tokio::time::timeout(within, asked).await.unwrap_or(false)
    }
}

/// Every connector's handle by the platform it serves (the first connector of a platform), so a
/// connector's task can hand a command to another: a webhook's answers go out through the
/// connector its route names, and through that connector's outbound gate and pacing.
#[derive(Default)]
pub struct Peers {
    by_platform: std::collections::HashMap<String, ConnectorHandle>,
}

impl Peers {
    pub fn new(handles: impl IntoIterator<Item = (String, ConnectorHandle)>) -> Self {
        let mut by_platform = std::collections::HashMap::new();
        for (platform, handle) in handles {
            by_platform.entry(platform).or_insert(handle);
        }
        Self { by_platform }
    }

    pub fn for_platform(&self, platform: &str) -> Option<&ConnectorHandle> {
        self.by_platform.get(platform)
    }
}

/// Delivers operator alerts to the configured operator targets, through each target
/// connector's task (and so through its outbound gate). With no targets it does nothing: the
/// alert is then only in `bridge.log` and on the gateway link.
#[derive(Default)]
pub struct AlertRouter {
    targets: Vec<(ConnectorHandle, String)>,
}

impl AlertRouter {
    pub fn new(targets: Vec<(ConnectorHandle, String)>) -> Self {
        Self { targets }
    }

    pub fn notify(&self, from: &str, text: &str, log: &EventLog) {
        for (handle, chat) in &self.targets {
            let command = Command::SendText(SendText {
                chat: chat.clone(),
                text: format!("[bridgekeeper] {from}: {text}"),
                reply_to: None,
                thread: None,
            });
            if let Err((rejected, _)) =
                handle.try_command(Origin::Internal(SendKind::Alert), command, None)
            {
                log.emit(
                    Some(&handle.name),
                    &Event::AlertUndeliverable {
                        chat: log.id(chat),
                        error: match rejected {
                            Rejected::QueueFull => "queue_full",
                            Rejected::ShuttingDown => "shutting_down",
                        },
                    },
                );
            }
        }
    }
}
