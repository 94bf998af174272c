//! The supervisor ↔ connector link: what a connector reports (`ConnectorEvent`) and what the
//! supervisor asks of it (`ConnectorCommand`). Payload structs are shared with the gateway link
//! (`crate::gateway`) so a command has one shape on both links.
//!
//! Unknown fields are accepted and ignored everywhere (a newer peer may add fields); an unknown
//! `type` is a typed line error (`LineError::UnknownType`).

use serde::{Deserialize, Serialize};

#[cfg(feature = "schema")]
use schemars::JsonSchema;

/// A message enum carried one per line; `TYPES` lists every `type` tag it accepts so the codec
/// can tell an unknown type from a malformed known one.
pub trait Message: Sized {
    const TYPES: &'static [&'static str];

    /// A faster decode than serde's internally tagged path, which buffers every line into an
    /// intermediate tree: read the `type` tag alone first, then decode straight into the
    /// matching struct. `None` means "use the generic path".
    fn decode_tagged(_type_name: &str, _text: &str) -> Option<serde_json::Result<Self>> {
        None
    }
}

/// The `type` of a line, read without decoding the rest.
#[derive(Deserialize)]
pub(crate) struct TypeTag<'a> {
    #[serde(rename = "type", borrow)]
    pub type_name: std::borrow::Cow<'a, str>,
}

/// Connector → supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConnectorEvent {
    Hello(Hello),
    Status(ConnectionStatus),
    Qr(QrCode),
    LinkCode(LinkCode),
    Account(Account),
    LidMapping(LidMapping),
    Inbound(Box<InboundMessage>),
    Receipt(Receipt),
    Result(CommandResult),
    Heartbeat(Heartbeat),
}

impl Message for ConnectorEvent {
    fn decode_tagged(type_name: &str, text: &str) -> Option<serde_json::Result<Self>> {
        use serde_json::from_str as parse;
        Some(match type_name {
            "inbound" => parse(text).map(|m| Self::Inbound(Box::new(m))),
            "result" => parse(text).map(Self::Result),
            "status" => parse(text).map(Self::Status),
            "receipt" => parse(text).map(Self::Receipt),
            "lid_mapping" => parse(text).map(Self::LidMapping),
            "hello" => parse(text).map(Self::Hello),
            "qr" => parse(text).map(Self::Qr),
            "link_code" => parse(text).map(Self::LinkCode),
            "account" => parse(text).map(Self::Account),
            "heartbeat" => parse(text).map(Self::Heartbeat),
            _ => return None,
        })
    }

    const TYPES: &'static [&'static str] = &[
        "hello",
        "status",
        "qr",
        "link_code",
        "account",
        "lid_mapping",
        "inbound",
        "receipt",
        "result",
        "heartbeat",
    ];
}

impl ConnectorEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Status(_) => "status",
            Self::Qr(_) => "qr",
            Self::LinkCode(_) => "link_code",
            Self::Account(_) => "account",
            Self::LidMapping(_) => "lid_mapping",
            Self::Inbound(_) => "inbound",
            Self::Receipt(_) => "receipt",
            Self::Result(_) => "result",
            Self::Heartbeat(_) => "heartbeat",
        }
    }
}

/// First line a connector writes. The supervisor sends no command before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Hello {
    /// Protocol major version the connector speaks; must equal `PROTOCOL_VERSION`.
    pub protocol: u32,
    /// Connector kind, e.g. `whatsapp`.
    pub connector: String,
    /// The connector's own version string.
    pub version: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    /// Waiting for the account to be linked (a `qr` event follows).
    Qr,
    Open,
    /// Closed with `code`; the connector exits after reporting it.
    Closed,
    /// The account was logged out (WhatsApp 401): re-linking is needed.
    LoggedOut,
    /// Another client took over the session (WhatsApp 440).
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ConnectionStatus {
    pub state: ConnectionState,
    /// The network's disconnect code, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct QrCode {
    /// The raw QR payload, to be rendered by the supervisor.
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct LinkCode {
    /// The 8-character code the user types on their phone.
    pub code: String,
}

/// The linked account's own identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Account {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lid: Option<String>,
    /// The account's own user id on networks where it is not a phone number (a Telegram bot's
    /// numeric id): mentions of it and replies to it address the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The account's username, without `@` (Telegram).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What the connector's network connection has been doing, sent periodically (SHOULD, every
/// 15 s or so while running): the supervisor judges from it whether a connection that says it
/// is open has gone deaf (PROTOCOL.md, "Liveness").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Heartbeat {
    /// The connection is open.
    pub open: bool,
    /// Milliseconds since the last frame of any kind from the network's server (absent: none
    /// since this connection opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame_ms_ago: Option<u64>,
    /// Milliseconds since the last application message (an inbound message of any kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_ms_ago: Option<u64>,
    /// Milliseconds since the connection opened (absent while it is not open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_ms_ago: Option<u64>,
    /// The connector's own counts (a receiver's refusals by reason), shown by `status`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub counts: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct LidMapping {
    pub lid: String,
    pub phone: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Gif,
    Audio,
    Voice,
    Document,
    Sticker,
    Location,
    Contact,
    Poll,
    Reaction,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Media {
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Absolute path of the downloaded file in the cache dir the supervisor named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Set when the download failed; the message is still reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Quoted {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The quoted message is the account's own (the agent's answer being replied to).
    #[serde(default, skip_serializing_if = "is_false")]
    pub from_me: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One message the connector saw, whoever sent it (connectors do not filter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct InboundMessage {
    /// The network's message id.
    pub id: String,
    /// Chat id: `<phone>@s.whatsapp.net`, `<lid>@lid`, `<id>@g.us`, `status@broadcast`, …
    pub chat: String,
    /// The sender: the participant in a group, else the chat.
    pub sender: String,
    /// The sender's other identity when known (the phone JID of a LID sender or the reverse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_alt: Option<String>,
    #[serde(default)]
    pub is_group: bool,
    /// The chat's name where the network gives it with the message (a group's title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_name: Option<String>,
    /// Sent by a bot (Telegram's `from.is_bot`), not a person.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sender_is_bot: bool,
    /// A new version of a message sent before. `id` is then the edit's own (its message's id
    /// and a suffix the connector can read back), since a gateway drops an id it has seen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub edited: bool,
    /// Sent by the linked account itself (own echo or a message typed on the phone).
    #[serde(default)]
    pub from_me: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted: Option<Quoted>,
    /// The thread within the chat (a Telegram forum topic), when the network has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Unix seconds.
    pub timestamp: u64,
    /// Set by a connector whose messages come from machines through routes (webhooks): what
    /// the route decided and where the answer goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed: Option<Box<Routed>>,
    /// Set by the supervisor, never by a connector: the group's messages it did not deliver
    /// since the last one it did (not addressed to the bot), oldest first, so the agent sees
    /// what the conversation was about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextLine>,
}

/// One group message the agent was not addressed by, kept as the context of the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ContextLine {
    pub text: String,
    pub sender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
}

/// What a route (a webhook's) says about one message it received.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Routed {
    /// The route's own filter turned it away: recorded as received and ignored with this
    /// reason, never handed to the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered: Option<RouteFilter>,
    /// Where the gateway's answers to this chat go instead of the connector itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<Deliver>,
    /// The payload as the machine sent it (JSON; a form body as an object of strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RouteFilter {
    /// The route does not accept this event type (`events`).
    EventNotAccepted,
    /// The route's `filters` rejected the payload.
    FilterRejected,
}

/// Another connector's chat that answers go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Deliver {
    /// The platform of the connector that sends them (`telegram`, `whatsapp`, …).
    pub platform: String,
    /// The chat there.
    pub chat: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// The message's text is itself what to send there; the gateway is not involved.
    #[serde(default)]
    pub direct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// The network's server acknowledged the message.
    ServerAck,
    Delivered,
    Read,
    Played,
    Error,
    /// The connection dropped before the server acknowledged the message: it may or may not
    /// have been sent; the gateway must not take it as delivered.
    Unconfirmed,
}

/// How far a sent message got after its send result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Receipt {
    pub message_id: String,
    pub chat: String,
    pub status: ReceiptStatus,
}

/// Error body of a failed command, on both links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ErrorBody {
    /// Stable snake_case code (see PROTOCOL.md for the supervisor's own codes).
    pub code: String,
    pub message: String,
    /// True when the command may or may not have taken effect (the connector died after it was
    /// written): the gateway must not treat it as sent, nor blindly resend it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unconfirmed: bool,
}

/// The one answer to a command, matched by `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct CommandResult {
    pub id: String,
    pub ok: bool,
    /// Command-specific answer, e.g. `{"message_ids": [..]}` for sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl CommandResult {
    pub fn ok(id: impl Into<String>, data: Option<serde_json::Value>) -> Self {
        Self {
            id: id.into(),
            ok: true,
            data,
            error: None,
        }
    }

    pub fn err(id: impl Into<String>, error: ErrorBody) -> Self {
        Self {
            id: id.into(),
            ok: false,
            data: None,
            error: Some(error),
        }
    }
}

// ---- commands -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct SendText {
    pub chat: String,
    pub text: String,
    /// Message id to quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The thread (a Telegram forum topic) to send into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct EditText {
    pub chat: String,
    pub message_id: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct SendMedia {
    pub chat: String,
    /// Local file path readable by the connector.
    pub path: String,
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct SendPoll {
    pub chat: String,
    pub question: String,
    /// 2 to 12 options.
    pub options: Vec<String>,
    /// How many options a voter may pick (1 = single choice).
    #[serde(default = "one")]
    pub selectable_count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct SendLocation {
    pub chat: String,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

// Coordinates are compared exactly: a command is equal to itself after a round trip.
impl Eq for SendLocation {}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TypingState {
    #[default]
    Composing,
    Recording,
    Paused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Typing {
    pub chat: String,
    #[serde(default)]
    pub state: TypingState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ReadReceipt {
    pub chat: String,
    pub message_ids: Vec<String>,
    /// The sender in a group chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
}

/// A reaction to a message; an empty `emoji` takes the bot's reaction back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct React {
    pub chat: String,
    pub message_id: String,
    pub emoji: String,
}

/// Takes back a message the account sent (deleted for everyone where the network does that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct Delete {
    pub chat: String,
    pub message_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ChatInfo {
    pub chat: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct LinkByPhone {
    /// Digits only, with country code.
    pub phone: String,
}

/// A command without arguments (`logout`, `shutdown`, `ping`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct NoArgs {}

/// What the supervisor asks a connector to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    SendText(SendText),
    Edit(EditText),
    SendMedia(SendMedia),
    SendPoll(SendPoll),
    SendLocation(SendLocation),
    Typing(Typing),
    Read(ReadReceipt),
    ChatInfo(ChatInfo),
    LinkByPhone(LinkByPhone),
    Logout(NoArgs),
    Shutdown(NoArgs),
    Ping(NoArgs),
    React(React),
    Delete(Delete),
}

pub const COMMAND_TYPES: &[&str] = &[
    "send_text",
    "edit",
    "send_media",
    "send_poll",
    "send_location",
    "typing",
    "read",
    "chat_info",
    "link_by_phone",
    "logout",
    "shutdown",
    "ping",
    "react",
    "delete",
];

impl Command {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::SendText(_) => "send_text",
            Self::Edit(_) => "edit",
            Self::SendMedia(_) => "send_media",
            Self::SendPoll(_) => "send_poll",
            Self::SendLocation(_) => "send_location",
            Self::Typing(_) => "typing",
            Self::Read(_) => "read",
            Self::ChatInfo(_) => "chat_info",
            Self::LinkByPhone(_) => "link_by_phone",
            Self::Logout(_) => "logout",
            Self::Shutdown(_) => "shutdown",
            Self::Ping(_) => "ping",
            Self::React(_) => "react",
            Self::Delete(_) => "delete",
        }
    }

    /// The chat a command writes to, if any: what the outbound gate judges.
    pub fn target_chat(&self) -> Option<&str> {
        match self {
            Self::SendText(c) => Some(&c.chat),
            Self::Edit(c) => Some(&c.chat),
            Self::SendMedia(c) => Some(&c.chat),
            Self::SendPoll(c) => Some(&c.chat),
            Self::SendLocation(c) => Some(&c.chat),
            Self::Typing(c) => Some(&c.chat),
            Self::Read(c) => Some(&c.chat),
            Self::React(c) => Some(&c.chat),
            Self::Delete(c) => Some(&c.chat),
            Self::ChatInfo(_)
            | Self::LinkByPhone(_)
            | Self::Logout(_)
            | Self::Shutdown(_)
            | Self::Ping(_) => None,
        }
    }
}

impl Command {
    /// The same command written into another chat (a webhook's answer delivered elsewhere):
    /// `None` for a command that names a message of the original chat (`read`, `react`),
    /// which means nothing there. A quoted message id is dropped for the same reason.
    pub fn retargeted(self, chat: &str, thread: Option<&str>) -> Option<Self> {
        let chat = chat.to_owned();
        Some(match self {
            Self::SendText(c) => Self::SendText(SendText {
                chat,
                reply_to: None,
                thread: thread.map(str::to_owned).or(c.thread),
                ..c
            }),
            Self::Edit(c) => Self::Edit(EditText { chat, ..c }),
            // Our own message, sent there as the answer: taken back there.
            Self::Delete(c) => Self::Delete(Delete { chat, ..c }),
            Self::SendMedia(c) => Self::SendMedia(SendMedia { chat, ..c }),
            Self::SendPoll(c) => Self::SendPoll(SendPoll { chat, ..c }),
            Self::SendLocation(c) => Self::SendLocation(SendLocation { chat, ..c }),
            Self::Typing(c) => Self::Typing(Typing { chat, ..c }),
            _ => return None,
        })
    }
}

/// Supervisor → connector lines that are not commands (no result answers them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorNote {
    /// Message `id` is in the ledger, with the outcome's name (`delivered`, `paired`,
    /// `replied`, `ignored`, `failed`) and its reason. Sent only to a connector whose `hello`
    /// listed the capability `recorded`; a receiver answers its sender from it, a poller lets
    /// its network forget the message.
    Recorded(RecordedNote),
}

/// What a `recorded` note says.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct RecordedNote {
    pub id: String,
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub reason: String,
}

/// Supervisor → connector: one command with the correlation id its result must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ConnectorCommand {
    pub id: String,
    #[serde(flatten)]
    pub command: Command,
}

impl Message for ConnectorCommand {
    const TYPES: &'static [&'static str] = COMMAND_TYPES;
}
