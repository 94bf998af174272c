//! How the rest of the daemon talks to a connector task: a clonable handle sending `Control`
//! messages. Every command gets exactly one result, sent by the task (or, when the task cannot
//! take it, by the caller from the `Rejected` answer).

use std::sync::Arc;
use std::time::Duration;

use bridge_protocol::gateway::ConnectorStateName;
use bridge_protocol::message::Command;
use tokio::sync::mpsc;

pub enum Control {
    Command {
        /// The gateway's correlation id, echoed in the result.
        gateway_id: String,
        command: Command,
        /// Overrides the connector's default command timeout.
        timeout: Option<Duration>,
    },
}

/// The supervisor's own error codes in command results (stable names, listed in PROTOCOL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The connector's command queue is full; retry later.
    QueueFull,
    /// No result within the command's timeout.
    Timeout,
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
    InvalidCommand,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Timeout => "timeout",
            Self::ConnectorExited => "connector_exited",
            Self::ConnectorUnavailable => "connector_unavailable",
            Self::UnknownConnector => "unknown_connector",
            Self::ConnectorRequired => "connector_required",
            Self::ShuttingDown => "shutting_down",
            Self::TooLarge => "too_large",
            Self::InvalidCommand => "invalid_command",
        }
    }

    pub fn message(self, connector: &str, state: ConnectorStateName) -> String {
        match self {
            Self::QueueFull => format!("connector {connector}: command queue is full; retry later"),
            Self::Timeout => format!("connector {connector}: no result within the command timeout"),
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
            Self::InvalidCommand => format!("command cannot be encoded for connector {connector}"),
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
        gateway_id: String,
        command: Command,
        timeout: Option<Duration>,
    ) -> Result<(), (Rejected, String)> {
        let control = Control::Command {
            gateway_id,
            command,
            timeout,
        };
        self.tx.try_send(control).map_err(|e| {
            let (rejected, control) = match e {
                mpsc::error::TrySendError::Full(c) => (Rejected::QueueFull, c),
                mpsc::error::TrySendError::Closed(c) => (Rejected::ShuttingDown, c),
            };
            let Control::Command { gateway_id, .. } = control;
            (rejected, gateway_id)
        })
    }
}
