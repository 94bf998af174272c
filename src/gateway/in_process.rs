//! An in-process gateway: it speaks the gateway link to a daemon running in the same process
//! (over an in-memory pipe), matches results to requests, and keeps what the old HTTP API needs
//! — a bounded inbox of delivered messages, the connection state and the account's own ids.
//!
//! The inbox never drops silently: a message that does not fit is moved from `delivered` to
//! `failed: http_queue_full` in the ledger, logged, and raised as an alert.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bridge_protocol::gateway::{GatewayCommand, GatewayEvent, GatewayRequest, Severity};
use bridge_protocol::message::{CommandResult, ConnectionState, InboundMessage, ReceiptStatus};
use bridge_protocol::{JsonLinesCodec, encode_line};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, oneshot};
use tokio_util::codec::FramedRead;

use crate::record::ledger::FailReason;
use crate::record::log::{AlertCode, Event, EventLog};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("bridgekeeper is shutting down")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the request could not be encoded")]
    Encode,
}

/// Requests written to a daemon's gateway link, each waiting for its one result.
pub struct Requests {
    writer: tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
    pending: Mutex<HashMap<String, oneshot::Sender<CommandResult>>>,
    next_id: AtomicU64,
    /// Starts every id, so this client's results are told from another's on a shared link.
    prefix: &'static str,
}

impl Requests {
    pub fn new(prefix: &'static str, writer: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        Self {
            writer: tokio::sync::Mutex::new(Box::new(writer)),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            prefix,
        }
    }

    /// Sends a command to `connector` and waits for its one result.
    pub async fn call(
        &self,
        connector: &str,
        command: GatewayCommand,
        timeout: Duration,
    ) -> Result<CommandResult, CallError> {
        let id = format!(
            "{}{}",
            self.prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id.clone(), tx);
        let request = GatewayRequest {
            id: id.clone(),
            connector: Some(connector.to_owned()),
            // The daemon answers with its own timeout error just before ours would fire.
            timeout_ms: Some(timeout.saturating_sub(Duration::from_secs(1)).as_millis() as u64),
            command,
        };
        let Ok(line) = encode_line(&request, usize::MAX) else {
            lock(&self.pending).remove(&id);
            return Err(CallError::Encode);
        };
        if self.write_line(&line).await.is_err() {
            lock(&self.pending).remove(&id);
            return Err(CallError::Closed);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(CallError::Closed),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(CallError::Timeout(timeout))
            }
        }
    }

    /// Writes one whole line (a request of another client sharing the link, too).
    pub async fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        self.writer.lock().await.write_all(line).await
    }

    /// Hands a result to its waiting caller. False: not one of ours.
    pub fn resolve(&self, result: &CommandResult) -> bool {
        if !result.id.starts_with(self.prefix) {
            return false;
        }
        if let Some(tx) = lock(&self.pending).remove(&result.id) {
            let _ = tx.send(result.clone());
        }
        true
    }

    /// The link closed: every waiting caller sees it.
    pub fn close(&self) {
        lock(&self.pending).clear();
    }
}

pub struct GatewayClient {
    connector: String,
    requests: Requests,
    /// Delivered messages waiting for the embedding gateway to take them (`GET /messages`).
    inbox: Mutex<VecDeque<InboundMessage>>,
    inbox_capacity: usize,
    /// Messages that did not fit the inbox.
    pub dropped: AtomicU64,
    /// Messages taken by a poll whose answer never left, put back at the head of the inbox.
    pub returned: AtomicU64,
    /// Sends by how far they got (`/health`).
    pub sends: SendCounts,
    /// When the last `sends_unconfirmed` alert went out: one per burst.
    unconfirmed_alerted: Mutex<Option<std::time::Instant>>,
    connected: AtomicBool,
    bot_ids: Mutex<Vec<String>>,
    log: EventLog,
    /// Every event, for callers that follow the link (linking shows QR codes from it).
    events: broadcast::Sender<GatewayEvent>,
}

impl GatewayClient {
    pub fn new(
        connector: &str,
        writer: impl AsyncWrite + Send + Unpin + 'static,
        inbox_capacity: usize,
        log: EventLog,
    ) -> Self {
        Self {
            connector: connector.to_owned(),
            requests: Requests::new("h", writer),
            inbox: Mutex::new(VecDeque::new()),
            inbox_capacity: inbox_capacity.max(1),
            dropped: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            sends: SendCounts::default(),
            unconfirmed_alerted: Mutex::new(None),
            connected: AtomicBool::new(false),
            bot_ids: Mutex::new(Vec::new()),
            log,
            events: broadcast::channel(64).0,
        }
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.events.subscribe()
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn queue_len(&self) -> usize {
        lock(&self.inbox).len()
    }

    pub fn inbox_capacity(&self) -> usize {
        self.inbox_capacity
    }

    /// Takes every queued message (`GET /messages`).
    pub fn drain(&self) -> Vec<InboundMessage> {
        lock(&self.inbox).drain(..).collect()
    }

    /// The account's own ids (phone, LID), as the connector last reported them.
    pub fn bot_ids(&self) -> Vec<String> {
        lock(&self.bot_ids).clone()
    }

    pub fn note_returned(&self, n: usize) {
        self.returned.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Messages handed to a connection that neither acknowledged nor refused them: they may or
    /// may not have been read, so they are not counted as delivered (ledger: failed
    /// `http_unconfirmed`), and the operator is told.
    pub fn delivery_unknown(&self, batch: &[InboundMessage]) {
        for message in batch {
            self.log
                .retract(&self.connector, &message.id, FailReason::HttpUnconfirmed);
        }
        let message = format!(
            "{} message(s) answered to GET /messages were neither acknowledged nor refused by the client; they may not have reached it (ledger: failed http_unconfirmed)",
            batch.len()
        );
        self.log.emit(
            Some(&self.connector),
            &Event::Alert {
                severity: Severity::Warning,
                code: AlertCode::HttpDeliveryUnknown,
                message: &message,
            },
        );
    }

    /// The daemon has stopped with messages nobody polled: they never reached the gateway, so
    /// they move from `delivered` to `failed: http_not_polled` (the final `status.json` is
    /// written again), with one alert naming how many.
    pub fn not_polled_at_shutdown(&self) {
        let left = self.drain();
        if left.is_empty() {
            return;
        }
        for message in &left {
            self.log
                .retract(&self.connector, &message.id, FailReason::HttpNotPolled);
        }
        let message = format!(
            "bridgekeeper stopped with {} delivered message(s) that no GET /messages took (ledger: failed http_not_polled)",
            left.len()
        );
        self.log.emit(
            Some(&self.connector),
            &Event::Alert {
                severity: Severity::Warning,
                code: AlertCode::HttpNotPolled,
                message: &message,
            },
        );
        if let Err(e) = self.log.board().write_now() {
            tracing::warn!(error = %e, "cannot write the final status");
        }
        self.log.flush();
    }

    /// Puts a batch that could not be handed over back at the head of the inbox, in order,
    /// ahead of anything that arrived meanwhile.
    pub fn requeue_front(&self, batch: Vec<InboundMessage>) {
        let mut inbox = lock(&self.inbox);
        for value in batch.into_iter().rev() {
            inbox.push_front(value);
        }
    }

    /// Sends a command to the connector and waits for its one result.
    pub async fn call(
        &self,
        command: GatewayCommand,
        timeout: Duration,
    ) -> Result<CommandResult, CallError> {
        let is_send = matches!(
            command,
            GatewayCommand::SendText(_)
                | GatewayCommand::SendMedia(_)
                | GatewayCommand::SendPoll(_)
                | GatewayCommand::SendLocation(_)
        );
        let answer = self.requests.call(&self.connector, command, timeout).await;
        if is_send {
            match &answer {
                Ok(r) if r.ok => self.sends.accepted.fetch_add(1, Ordering::Relaxed),
                _ => self.sends.failed.fetch_add(1, Ordering::Relaxed),
            };
        }
        answer
    }

    /// Reads the daemon's events until the link closes.
    pub async fn pump(&self, reader: impl AsyncRead + Unpin) {
        let mut lines = FramedRead::new(reader, JsonLinesCodec::<GatewayEvent>::new());
        while let Some(Ok(item)) = lines.next().await {
            let Ok(event) = item else { continue };
            self.on_event(&event);
            let _ = self.events.send(event);
        }
        self.connected.store(false, Ordering::Relaxed);
        self.requests.close();
    }

    fn on_event(&self, event: &GatewayEvent) {
        match event {
            GatewayEvent::Result(result) => {
                self.requests.resolve(result);
            }
            GatewayEvent::Inbound { message, .. } => {
                let mut inbox = lock(&self.inbox);
                if inbox.len() < self.inbox_capacity {
                    inbox.push_back((**message).clone());
                } else {
                    drop(inbox);
                    self.overflow(&message.id);
                }
            }
            GatewayEvent::Receipt { receipt, .. } => match receipt.status {
                ReceiptStatus::ServerAck => {
                    self.sends.server_acked.fetch_add(1, Ordering::Relaxed);
                }
                ReceiptStatus::Unconfirmed => self.on_unconfirmed(),
                _ => {}
            },
            GatewayEvent::Connection { status, .. } => {
                self.connected
                    .store(status.state == ConnectionState::Open, Ordering::Relaxed);
            }
            GatewayEvent::ConnectorState { state, .. }
                if *state != bridge_protocol::gateway::ConnectorStateName::Running =>
            {
                self.connected.store(false, Ordering::Relaxed);
            }
            GatewayEvent::Account { account, .. } => {
                *lock(&self.bot_ids) = [account.phone.clone(), account.lid.clone()]
                    .into_iter()
                    .flatten()
                    .collect();
            }
            _ => {}
        }
    }

    /// A send answered `success` that WhatsApp's server never acknowledged (the connection
    /// dropped first): it may never arrive, and in drop-in mode nobody else hears of it.
    fn on_unconfirmed(&self) {
        let total = self.sends.unconfirmed.fetch_add(1, Ordering::Relaxed) + 1;
        let now = std::time::Instant::now();
        {
            let mut last = lock(&self.unconfirmed_alerted);
            // One alert per burst: a dropped connection reports every send in flight at once.
            if last.is_some_and(|t| now.duration_since(t) < UNCONFIRMED_BURST) {
                *last = Some(now);
                return;
            }
            *last = Some(now);
        }
        let message = format!(
            "a send answered with success was not acknowledged by WhatsApp's server before the connection dropped: it may not have arrived ({total} unconfirmed so far; `bridgekeeper logs --event receipt` lists them)"
        );
        self.log.emit(
            Some(&self.connector),
            &Event::Alert {
                severity: Severity::Warning,
                code: AlertCode::SendsUnconfirmed,
                message: &message,
            },
        );
    }

    fn overflow(&self, message_id: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        self.log
            .retract(&self.connector, message_id, FailReason::HttpQueueFull);
        // One alert at the first loss and then at powers of two, not one per message.
        if dropped.is_power_of_two() {
            let message = format!(
                "the HTTP inbox is full ({} messages): nobody is polling GET /messages; {dropped} message(s) could not be queued (ledger: failed http_queue_full)",
                self.inbox_capacity
            );
            self.log.emit(
                Some(&self.connector),
                &Event::Alert {
                    severity: Severity::Critical,
                    code: AlertCode::HttpQueueFull,
                    message: &message,
                },
            );
        }
    }
}

/// Unconfirmed receipts closer together than this are one burst (one alert).
const UNCONFIRMED_BURST: Duration = Duration::from_secs(60);

/// Sends by how far they got. `accepted`: the connector wrote the message (the old bridge's
/// `success`); `server_acked`: WhatsApp's server acknowledged it; `unconfirmed`: the
/// connection dropped before that; `failed`: answered with an error.
#[derive(Debug, Default)]
pub struct SendCounts {
    pub accepted: AtomicU64,
    pub server_acked: AtomicU64,
    pub unconfirmed: AtomicU64,
    pub failed: AtomicU64,
}

impl SendCounts {
    pub fn to_json(&self) -> Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "accepted": n(&self.accepted),
            "serverAcked": n(&self.server_acked),
            "unconfirmed": n(&self.unconfirmed),
            "failed": n(&self.failed),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
