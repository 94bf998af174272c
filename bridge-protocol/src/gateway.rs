//! The gateway ↔ supervisor link: what the supervisor tells the gateway (`GatewayEvent`) and
//! what the gateway asks (`GatewayRequest`). Connector-bound commands reuse the payload structs
//! of `crate::message`, addressed to a connector by name.

use serde::{Deserialize, Serialize};

#[cfg(feature = "schema")]
use schemars::JsonSchema;

use crate::message::{
    Account, ChatInfo, Command, CommandResult, ConnectionStatus, Delete, EditText, InboundMessage,
    LinkByPhone, Message, NoArgs, React, ReadReceipt, Receipt, SendLocation, SendMedia, SendPoll,
    SendText, Typing,
};

/// Supervisor lifecycle state of one connector, as shown in `status` and `connector_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConnectorStateName {
    /// Spawned, waiting for its `hello`.
    Starting,
    /// Handshake done; commands flow.
    Running,
    /// Exited; waiting out the restart delay.
    Backoff,
    /// Being stopped (stdin closed, then SIGTERM, then SIGKILL).
    Stopping,
    /// Stopped on request; not restarted.
    Stopped,
    /// Restart-intensity limit tripped or an unrecoverable error; not restarted.
    Failed,
    /// The account was logged out; a human must re-link it.
    NeedsRelink,
    /// Another client took over the session; not restarted.
    Conflict,
    /// The network refused the connector's token (Telegram): a new one is needed.
    NeedsToken,
}

impl ConnectorStateName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::NeedsRelink => "needs_relink",
            Self::Conflict => "conflict",
            Self::NeedsToken => "needs_token",
        }
    }

    /// States the supervisor will not leave by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Stopped | Self::Failed | Self::NeedsRelink | Self::Conflict | Self::NeedsToken
        )
    }
}

/// How a connector process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ExitInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Stable snake_case classification, e.g. `crashed`, `restart_requested`, `logged_out`.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Supervisor → gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayEvent {
    /// First line: the link is up.
    Ready {
        protocol: u32,
        version: String,
        connectors: Vec<String>,
    },
    /// An inbound message the supervisor delivers to the gateway.
    Inbound {
        connector: String,
        message: Box<InboundMessage>,
    },
    ConnectorState {
        connector: String,
        state: ConnectorStateName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        restarts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit: Option<ExitInfo>,
    },
    /// The network connection status the connector reported.
    Connection {
        connector: String,
        status: ConnectionStatus,
    },
    Qr {
        connector: String,
        data: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_ms: Option<u64>,
    },
    LinkCode {
        connector: String,
        code: String,
    },
    Account {
        connector: String,
        account: Account,
    },
    Receipt {
        connector: String,
        receipt: Receipt,
    },
    /// A stranger was sent a pairing code: the gateway may tell its owner, who approves with
    /// `pairing_approve` (by the code the stranger passes on, or by `request_id`).
    PairingRequested {
        connector: String,
        platform: String,
        /// The sender as the connector named them.
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_name: Option<String>,
        request_id: String,
    },
    /// An operator alert (never sent to a chat unless an operator target is configured).
    Alert {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connector: Option<String>,
        severity: Severity,
        code: String,
        message: String,
    },
    /// The one answer to a `GatewayRequest`, with the gateway's id.
    Result(CommandResult),
    /// A gateway line that could not be decoded (so no result can be matched to it).
    LineError {
        line: u64,
        kind: String,
        message: String,
    },
}

impl Message for GatewayEvent {
    const TYPES: &'static [&'static str] = &[
        "ready",
        "inbound",
        "connector_state",
        "connection",
        "qr",
        "link_code",
        "account",
        "receipt",
        "pairing_requested",
        "alert",
        "result",
        "line_error",
    ];
}

/// What the gateway asks: connector commands (which need `connector`) and supervisor queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayCommand {
    SendText(SendText),
    Edit(EditText),
    SendMedia(SendMedia),
    SendPoll(SendPoll),
    SendLocation(SendLocation),
    Typing(Typing),
    Read(ReadReceipt),
    ChatInfo(ChatInfo),
    React(React),
    Delete(Delete),
    LinkByPhone(LinkByPhone),
    Logout(NoArgs),
    /// With `connector`: ping that connector; without: the supervisor answers.
    Ping(NoArgs),
    /// Supervisor status snapshot (the same data as `bridgekeeper status --json`).
    Status(NoArgs),
    /// Pending requests and approved users (of one platform, or all).
    PairingList(PairingList),
    /// Approve by code (any case, spaces allowed) or request id.
    PairingApprove(PairingApprove),
    /// Remove a user's approval, pending codes and rate-limit entry.
    PairingRevoke(PairingRevoke),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct PairingList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct PairingApprove {
    pub platform: String,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct PairingRevoke {
    pub platform: String,
    pub user: String,
}

/// A pairing request from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingRequest {
    List(PairingList),
    Approve(PairingApprove),
    Revoke(PairingRevoke),
}

/// Gateway → supervisor: one command with the id its single result carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct GatewayRequest {
    pub id: String,
    /// The connector a connector command is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Overrides the connector's default command timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub command: GatewayCommand,
}

impl Message for GatewayRequest {
    const TYPES: &'static [&'static str] = &[
        "send_text",
        "edit",
        "send_media",
        "send_poll",
        "send_location",
        "typing",
        "read",
        "chat_info",
        "react",
        "delete",
        "link_by_phone",
        "logout",
        "ping",
        "status",
        "pairing_list",
        "pairing_approve",
        "pairing_revoke",
    ];
}

/// Where a gateway command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Connector(Command),
    SupervisorPing,
    SupervisorStatus,
    Pairing(PairingRequest),
}

impl GatewayCommand {
    /// Connector commands map onto the connector link; `shutdown` is deliberately not
    /// reachable from the gateway (closing the gateway's stdin stops the supervisor).
    pub fn route(self, has_connector: bool) -> Route {
        match self {
            Self::SendText(c) => Route::Connector(Command::SendText(c)),
            Self::Edit(c) => Route::Connector(Command::Edit(c)),
            Self::SendMedia(c) => Route::Connector(Command::SendMedia(c)),
            Self::SendPoll(c) => Route::Connector(Command::SendPoll(c)),
            Self::SendLocation(c) => Route::Connector(Command::SendLocation(c)),
            Self::Typing(c) => Route::Connector(Command::Typing(c)),
            Self::Read(c) => Route::Connector(Command::Read(c)),
            Self::ChatInfo(c) => Route::Connector(Command::ChatInfo(c)),
            Self::React(c) => Route::Connector(Command::React(c)),
            Self::Delete(c) => Route::Connector(Command::Delete(c)),
            Self::LinkByPhone(c) => Route::Connector(Command::LinkByPhone(c)),
            Self::Logout(c) => Route::Connector(Command::Logout(c)),
            Self::Ping(c) if has_connector => Route::Connector(Command::Ping(c)),
            Self::Ping(_) => Route::SupervisorPing,
            Self::Status(_) => Route::SupervisorStatus,
            Self::PairingList(r) => Route::Pairing(PairingRequest::List(r)),
            Self::PairingApprove(r) => Route::Pairing(PairingRequest::Approve(r)),
            Self::PairingRevoke(r) => Route::Pairing(PairingRequest::Revoke(r)),
        }
    }
}
