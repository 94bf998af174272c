//! The gateway link: requests read from the gateway (the daemon's stdin) and events written to
//! it (the daemon's stdout), one JSON line each. The reader routes connector commands to their
//! tasks and answers supervisor queries; the writer is the only writer of stdout.

use std::collections::HashMap;
use std::time::Duration;

use bridge_protocol::gateway::{GatewayEvent, GatewayRequest, PairingRequest, Route};
use bridge_protocol::message::{CommandResult, ErrorBody};
use bridge_protocol::{JsonLinesCodec, LineError, append_line};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::pairing::{ApproveError, PairingStore};
use crate::record::ledger::FailReason;
use crate::record::log::{Event, EventLog};
use crate::supervisor::{ConnectorHandle, ErrorCode, Origin, Rejected};

/// Bytes of encoded events gathered before one write to the gateway.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

pub struct Reader {
    pub handles: HashMap<String, ConnectorHandle>,
    pub pairing: PairingStore,
    pub events: mpsc::Sender<GatewayEvent>,
    pub log: EventLog,
    pub max_line_bytes: usize,
}

impl Reader {
    /// Reads requests until the gateway closes its end (which starts the daemon's shutdown) or
    /// `shutdown` is cancelled.
    pub async fn run<R: AsyncRead + Unpin>(self, input: R, shutdown: CancellationToken) {
        let mut lines = FramedRead::new(
            input,
            JsonLinesCodec::<GatewayRequest>::with_max_line_bytes(self.max_line_bytes),
        );
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => return,
                item = lines.next() => item,
            };
            match item {
                None => {
                    shutdown.cancel();
                    return;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reading the gateway link failed");
                    shutdown.cancel();
                    return;
                }
                Some(Ok(Err(error))) => self.on_line_error(error).await,
                Some(Ok(Ok(request))) => self.on_request(request).await,
            }
        }
    }

    async fn on_line_error(&self, error: LineError) {
        // The log gets the line's shape, never its text (debug mode excepted).
        let logged = if self.log.debug() {
            error.to_string()
        } else {
            error.summary()
        };
        self.log.emit(
            None,
            &Event::GatewayLineError {
                kind: error.kind(),
                line: error.line(),
                message: logged,
            },
        );
        // A request whose id survived still gets its one result.
        if let Some(id) = error.id() {
            let body = ErrorBody {
                code: error.result_code().into(),
                message: error.summary(),
                unconfirmed: false,
            };
            return self
                .send(GatewayEvent::Result(CommandResult::err(
                    id.to_owned(),
                    body,
                )))
                .await;
        }
        self.send(GatewayEvent::LineError {
            line: error.line(),
            kind: error.kind().to_owned(),
            message: self.log.text(&error.to_string()),
        })
        .await;
    }

    async fn on_request(&self, request: GatewayRequest) {
        let GatewayRequest {
            id,
            connector,
            timeout_ms,
            command,
        } = request;
        match command.route(connector.is_some()) {
            Route::SupervisorPing => {
                let data = serde_json::json!({"version": env!("CARGO_PKG_VERSION")});
                self.send(GatewayEvent::Result(CommandResult::ok(id, Some(data))))
                    .await;
            }
            Route::SupervisorStatus => {
                let data = serde_json::to_value(self.log.board().snapshot()).ok();
                self.send(GatewayEvent::Result(CommandResult::ok(id, data)))
                    .await;
            }
            Route::Pairing(request) => {
                let store = self.pairing.clone();
                // File I/O under a lock: keep it off the async workers.
                let result = tokio::task::spawn_blocking(move || pairing_request(&store, request))
                    .await
                    .unwrap_or_else(|e| Err(PairingFailure::Task(e.to_string())));
                let result = match result {
                    Ok(data) => CommandResult::ok(id, Some(data)),
                    Err(failure) => CommandResult::err(
                        id,
                        ErrorBody {
                            code: failure.code().into(),
                            message: failure.to_string(),
                            unconfirmed: false,
                        },
                    ),
                };
                self.send(GatewayEvent::Result(result)).await;
            }
            Route::Connector(command) => {
                let Some(name) = connector else {
                    return self.refuse(id, ErrorCode::ConnectorRequired, "").await;
                };
                let Some(handle) = self.handles.get(&name) else {
                    return self.refuse(id, ErrorCode::UnknownConnector, &name).await;
                };
                let timeout = timeout_ms.map(Duration::from_millis);
                let origin = Origin::Gateway(id);
                if let Err((rejected, Origin::Gateway(id))) =
                    handle.try_command(origin, command, timeout)
                {
                    self.log
                        .board()
                        .update(handle.index, |c| c.commands.rejected += 1);
                    let code = match rejected {
                        Rejected::QueueFull => ErrorCode::QueueFull,
                        Rejected::ShuttingDown => ErrorCode::ShuttingDown,
                    };
                    self.refuse(id, code, &name).await;
                }
            }
        }
    }

    async fn refuse(&self, id: String, code: ErrorCode, connector: &str) {
        let body = ErrorBody {
            code: code.as_str().into(),
            message: code.message(
                connector,
                bridge_protocol::gateway::ConnectorStateName::Running,
            ),
            unconfirmed: false,
        };
        self.send(GatewayEvent::Result(CommandResult::err(id, body)))
            .await;
    }

    async fn send(&self, event: GatewayEvent) {
        // Waiting here is the backpressure on a gateway that writes but does not read.
        let _ = self.events.send(event).await;
    }
}

/// Writes events to the gateway in batches until every sender is gone. If the gateway stops
/// reading (broken pipe), the daemon shuts down, and inbound messages in the batch whose write
/// failed and all still queued are moved from delivered to failed in the ledger: whether the
/// gateway read any of that batch cannot be known, so none of it counts as delivered.
/// `first_written` fires once the first lines (the `ready` event) are written and flushed.
pub async fn write_events<W: AsyncWrite + Unpin>(
    mut output: W,
    mut events: mpsc::Receiver<GatewayEvent>,
    max_line_bytes: usize,
    log: EventLog,
    shutdown: CancellationToken,
    mut first_written: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES);
    // The events whose lines are in `buf`, kept until the write succeeded.
    let mut batch: Vec<GatewayEvent> = Vec::new();
    let mut broken = false;
    while let Some(first) = events.recv().await {
        let mut next = Some(first);
        while let Some(event) = next.take() {
            if broken {
                retract_if_inbound(&log, &event);
            } else if let Err(e) = append_line(&event, &mut buf, max_line_bytes) {
                // Only an event over the gateway's line limit gets here (a huge inbound text).
                log.emit(
                    None,
                    &Event::GatewayWriteFailed {
                        error: e.to_string(),
                    },
                );
                retract_if_inbound(&log, &event);
            } else {
                batch.push(event);
            }
            if buf.len() < WRITE_BATCH_BYTES {
                next = events.try_recv().ok();
            }
        }
        if buf.is_empty() {
            continue;
        }
        let written = async {
            output.write_all(&buf).await?;
            output.flush().await
        }
        .await;
        buf.clear();
        if written.is_ok()
            && let Some(tx) = first_written.take()
        {
            let _ = tx.send(());
        }
        if let Err(e) = written {
            log.emit(
                None,
                &Event::GatewayWriteFailed {
                    error: e.to_string(),
                },
            );
            for event in &batch {
                retract_if_inbound(&log, event);
            }
            broken = true;
            shutdown.cancel();
        }
        batch.clear();
    }
}

/// Why a pairing request from the gateway failed.
#[derive(Debug, thiserror::Error)]
enum PairingFailure {
    #[error(transparent)]
    Approve(#[from] ApproveError),
    #[error(transparent)]
    Store(#[from] crate::pairing::StoreError),
    #[error("the pairing store task failed: {0}")]
    Task(String),
}

impl PairingFailure {
    /// The `result.error.code` on the gateway link.
    fn code(&self) -> &'static str {
        match self {
            Self::Approve(ApproveError::LockedOut { .. }) => "pairing_locked",
            Self::Approve(ApproveError::NoMatch { .. }) => "pairing_no_match",
            Self::Approve(ApproveError::Store(_)) | Self::Store(_) | Self::Task(_) => {
                "pairing_store_error"
            }
        }
    }
}

/// Answers a pairing request from the gateway: the same operations as `bridgekeeper pairing`.
fn pairing_request(
    store: &PairingStore,
    request: PairingRequest,
) -> Result<serde_json::Value, PairingFailure> {
    let now = crate::util::time::unix_secs();
    match request {
        PairingRequest::List(r) => {
            let listing = store.list(r.platform.as_deref(), now)?;
            let platforms: Vec<serde_json::Value> = listing
                .platforms
                .into_iter()
                .map(|p| {
                    serde_json::json!({
                        "platform": p.platform,
                        "locked_until": p.locked_until,
                        "pending": p.pending.iter().map(|r| serde_json::json!({
                            "approve_with": r.approve_with, "user_id": r.user_id,
                            "user_name": r.user_name, "created_at": r.created_at,
                        })).collect::<Vec<_>>(),
                        "approved": p.approved.iter().map(|a| serde_json::json!({
                            "user_id": a.user_id, "user_name": a.user_name,
                            "approved_at": a.approved_at,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Ok(serde_json::json!({ "platforms": platforms }))
        }
        PairingRequest::Approve(r) => {
            let a = store.approve(&r.platform, &r.code, now)?;
            Ok(serde_json::json!({"user_id": a.user_id, "user_name": a.user_name}))
        }
        PairingRequest::Revoke(r) => {
            let revoked = store.revoke(&r.platform, &r.user)?;
            Ok(serde_json::json!({
                "was_approved": revoked.was_approved,
                "pending_removed": revoked.pending_removed,
                "rate_limit_removed": revoked.rate_limit_removed,
            }))
        }
    }
}

fn retract_if_inbound(log: &EventLog, event: &GatewayEvent) {
    if let GatewayEvent::Inbound { connector, message } = event {
        log.retract(connector, &message.id, FailReason::GatewayClosed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::record::board::StatusBoard;
    use crate::record::ledger::Outcome;
    use bridge_protocol::message::InboundMessage;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A gateway that has closed its end: every write fails.
    struct Closed;

    impl AsyncWrite for Closed {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn messages_in_a_batch_whose_write_failed_are_not_counted_as_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let board = StatusBoard::new(dir.path().join("status.json"), &["wa"]);
        let cfg = LogConfig {
            path: dir.path().join("bridge.log"),
            max_bytes: 1 << 20,
            keep: 1,
            debug: false,
        };
        let log = EventLog::open(&cfg, board.clone()).unwrap();
        let (tx, rx) = mpsc::channel(16);
        for i in 0..3 {
            let message: InboundMessage = serde_json::from_value(serde_json::json!({
                "id": format!("M{i}"), "chat": "1@s.whatsapp.net", "sender": "1@s.whatsapp.net",
                "timestamp": 1
            }))
            .unwrap();
            board.record(0, Outcome::Delivered(crate::policy::Reason::OpenPolicy));
            tx.send(GatewayEvent::Inbound {
                connector: "wa".into(),
                message: Box::new(message),
            })
            .await
            .unwrap();
        }
        drop(tx);
        let shutdown = CancellationToken::new();
        write_events(Closed, rx, 1 << 20, log, shutdown.clone(), None).await;
        assert!(shutdown.is_cancelled());
        let ledger = board.snapshot().connectors[0].ledger.clone();
        assert_eq!(ledger.delivered, 0, "{ledger:?}");
        assert_eq!(ledger.failed.get("gateway_closed"), Some(&3), "{ledger:?}");
    }
}
