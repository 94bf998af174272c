//! The task that owns one connector: its process, stdin/stdout, the command queue, deadlines,
//! restart history and its side of the gateway link. Nothing else touches the child.
//!
//! Every `select!` arm in `run` is one method call. Backpressure: stdout is only read while the
//! outbox toward the gateway is empty, so a slow gateway slows the connector (its stdout pipe
//! fills) instead of growing memory here.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_protocol::gateway::{ConnectorStateName, ExitInfo, GatewayEvent, Severity};
use bridge_protocol::message::{
    Command, CommandResult, ConnectionState, ConnectorCommand, ConnectorEvent, ErrorBody,
    InboundMessage, Receipt, ReceiptStatus, RecordedNote, SendText, SupervisorNote,
};
use bridge_protocol::{EncodeError, JsonLinesCodec, encode_line};
use bytes::Bytes;
use tokio::process::{Child, ChildStdout};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

pub mod child;
pub mod commands;
mod paced;
use paced::paced_chat;
pub mod context;
pub mod dedup;
mod deliveries;
pub mod inbound;
mod lifecycle;
mod lines;
pub mod outbox;
mod routed;
mod watchdog;

use super::handle::{AlertRouter, Control, ErrorCode, Origin, Peers};
use crate::config::ConnectorConfig;
use crate::policy::exit::ExitReason;
use crate::policy::pacing::Pacer;
use crate::policy::restart::RestartHistory;
use crate::policy::send::{OutboundGate, Target, Verdict};
use crate::record::ledger::{FailReason, Outcome};
use crate::record::log::{AlertCode, Event, EventLog};
use commands::{CommandBook, Seq};
use inbound::InboundGate;
use inbound::PolicyReload;
use outbox::{Outbox, Undeliverable};
use watchdog::Liveness;

type Stdout = FramedRead<ChildStdout, JsonLinesCodec<ConnectorEvent>>;

/// The one timer a connector needs at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Hello,
    /// Shutting down: commands accepted before the shutdown may still finish until this fires.
    Flush,
    /// Exited, still reading what it wrote.
    Drain,
    /// Stop ladder: SIGTERM when this fires.
    Term,
    /// Stop ladder: SIGKILL when this fires.
    Kill,
    Respawn,
}

/// Why the supervisor is stopping the current process itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopCause {
    Shutdown,
    /// The connector cannot be used (e.g. protocol mismatch): stop it and do not restart.
    Fatal(ExitReason),
    /// It is hung (`policy::liveness`): stop it and restart it.
    Hung,
    /// Its connection is deaf (`policy::liveness::watchdog`): restart it at once to reconnect.
    Reconnect(ExitReason),
}

struct Process {
    child: Child,
    pid: u32,
    spawned: Instant,
    phase: Phase,
    /// A terminal state the connector reported before exiting.
    reported: Option<ConnectionState>,
    /// The ladder already sent SIGKILL to the whole group.
    group_killed: bool,
    /// It asked (capability `recorded`) to hear when each inbound message is in the ledger.
    acks_recorded: bool,
}

/// Where the current process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Spawned; its `hello` has not come (commands wait).
    AwaitingHello,
    /// The `hello` never came in time: it was killed.
    HelloTimedOut,
    /// `hello` received: commands are written.
    Ready,
    /// It exited; its stdout may still be read to the end.
    Exited {
        status: ExitStatus,
        hello_timed_out: bool,
    },
}

impl Process {
    fn exit(&self) -> Option<ExitStatus> {
        match self.phase {
            Phase::Exited { status, .. } => Some(status),
            _ => None,
        }
    }
}

pub struct ConnectorTask {
    index: usize,
    name: Arc<str>,
    cfg: Arc<ConnectorConfig>,
    state_dir: PathBuf,
    log: EventLog,
    /// The access policy's side of inbound messages.
    inbound_gate: InboundGate,
    outbound_gate: Arc<OutboundGate>,
    alerts: Arc<AlertRouter>,
    /// The other connectors, for answers delivered through them (webhook routes).
    peers: Arc<Peers>,
    /// Where answers to this connector's routed chats go.
    deliveries: deliveries::Deliveries,
    /// Toward the gateway writer; what waits here holds back reading stdout.
    outbox: Outbox,
    control: mpsc::Receiver<Control>,
    control_closed: bool,
    shutdown: CancellationToken,
    stopping: Option<StopCause>,

    state: ConnectorStateName,
    history: RestartHistory,
    timer: Option<(tokio::time::Instant, Timer)>,
    process: Option<Process>,
    stdout: Option<Stdout>,
    stdin: Option<mpsc::Sender<Bytes>>,

    /// Commands without their result yet, and sent messages without their server ack.
    commands: CommandBook,
    /// The supervisor's own check that the running process is alive.
    liveness: Liveness,
    /// How fast this account may send (`policy::pacing`).
    pacer: Pacer,
    /// The next send waits for pacing until then (the whole queue waits: order is kept).
    paced_until: Option<tokio::time::Instant>,
    /// The send pacing holds back now, and since when (for the status board's pacing time).
    paced_since: Option<(Seq, std::time::Instant)>,
    /// Simulated typing under way before this text, shown until then.
    typing: Option<(Seq, tokio::time::Instant)>,
    /// `recorded` notes not yet written to the connector's stdin (`tell_recorded`).
    recorded_notes: Vec<u8>,
}

pub struct TaskParts {
    pub index: usize,
    pub cfg: Arc<ConnectorConfig>,
    pub state_dir: PathBuf,
    pub log: EventLog,
    pub inbound_gate: InboundGate,
    pub outbound_gate: Arc<OutboundGate>,
    pub alerts: Arc<AlertRouter>,
    pub peers: Arc<Peers>,
    pub gateway: mpsc::Sender<GatewayEvent>,
    pub control: mpsc::Receiver<Control>,
    pub shutdown: CancellationToken,
}

impl ConnectorTask {
    pub fn new(p: TaskParts) -> Self {
        let deliveries = deliveries::Deliveries::open(
            &p.state_dir.join(format!("{}.deliveries", p.cfg.name)),
            crate::util::time::unix_secs() as u64,
        );
        Self {
            index: p.index,
            name: Arc::from(p.cfg.name.as_str()),
            commands: CommandBook::new(p.cfg.queue_capacity, p.cfg.command_timeout),
            cfg: p.cfg,
            state_dir: p.state_dir,
            log: p.log,
            inbound_gate: p.inbound_gate,
            outbound_gate: p.outbound_gate,
            alerts: p.alerts,
            peers: p.peers,
            deliveries,
            outbox: Outbox::new(p.gateway),
            control: p.control,
            control_closed: false,
            shutdown: p.shutdown,
            stopping: None,
            state: ConnectorStateName::Starting,
            history: RestartHistory::default(),
            timer: None,
            process: None,
            stdout: None,
            stdin: None,
            liveness: Liveness::new(),
            pacer: Pacer::default(),
            paced_until: None,
            paced_since: None,
            typing: None,
            recorded_notes: Vec::new(),
        }
    }

    pub async fn run(mut self) {
        self.spawn();
        loop {
            if self.stopping == Some(StopCause::Shutdown) && self.process.is_none() {
                break;
            }
            let timer_at = self.timer.map(|(at, _)| at);
            let outbox_waiting = self.outbox.is_waiting();
            let read_stdout = self.stdout.is_some() && !outbox_waiting;
            let running = self.process.as_ref().is_some_and(|p| p.exit().is_none());
            let ready = self
                .process
                .as_ref()
                .is_some_and(|p| p.phase == Phase::Ready);
            self.paced_until = if ready { self.pacing_wait() } else { None };
            if self.paced_until.is_some() {
                self.note_paced();
            }
            let can_write = ready
                && ((self.commands.has_unwritten() && self.paced_until.is_none())
                    || !self.recorded_notes.is_empty());
            let paced_until = self.paced_until;
            let stdin = self.stdin.clone();
            let gateway = self.outbox.sender();
            let check_liveness = ready && !self.cfg.liveness.is_off() && self.stopping.is_none();
            let liveness_at = self.liveness.next_check;

            tokio::select! {
                // Control first: a command the gateway sent before closing the link is accepted
                // before the shutdown that the close triggers.
                biased;
                control = self.control.recv(), if !self.control_closed => self.on_control(control),
                _ = self.shutdown.cancelled(), if self.stopping != Some(StopCause::Shutdown) => {
                    self.begin_stop(StopCause::Shutdown);
                }
                Some(seq) = self.commands.next_expired() => self.on_deadline(seq),
                permit = gateway.reserve_owned(), if outbox_waiting && !self.outbox.is_closed() => {
                    let lost = self.outbox.flush(permit.ok());
                    self.retract(lost);
                }
                frame = lines::next_frame(&mut self.stdout), if read_stdout => self.on_frames(frame),
                status = lifecycle::wait_child(&mut self.process), if running => self.on_exit(status),
                _ = sleep_until(timer_at), if timer_at.is_some() => self.on_timer(),
                _ = sleep_until(Some(liveness_at)), if check_liveness => self.on_liveness_check(),
                // Pacing's wait is over: the loop looks again.
                _ = sleep_until(paced_until), if paced_until.is_some() => {}
                permit = reserve(stdin), if can_write => self.write_next(permit),
            }

            if matches!(self.timer, Some((_, Timer::Flush))) && self.commands.is_idle() {
                self.close_stdin();
            }
            if self.process.as_ref().is_some_and(|p| p.exit().is_some()) && self.stdout.is_none() {
                self.finish_exit();
            }
        }
        self.finish().await;
    }

    // ---- commands ---------------------------------------------------------------------------

    fn on_control(&mut self, control: Option<Control>) {
        let (origin, command, timeout) = match control {
            Some(Control::Command {
                origin,
                command,
                timeout,
            }) => (origin, command, timeout),
            Some(Control::Pulse(alive)) => {
                let _ = alive.send(());
                return;
            }
            None => {
                self.control_closed = true;
                return;
            }
        };
        if let Err(code) = self.enqueue(origin.clone(), command, timeout) {
            self.refuse(origin, code);
        }
    }

    /// Every command, from the gateway or from the supervisor itself, enters here: refused when
    /// the connector cannot take it or the send policy forbids it, else queued with a deadline.
    fn enqueue(
        &mut self,
        origin: Origin,
        command: Command,
        timeout: Option<Duration>,
    ) -> Result<(), ErrorCode> {
        let now = crate::util::time::unix_secs() as u64;
        if let Some(target) = command
            .target_chat()
            .and_then(|chat| self.deliveries.target(chat, now))
        {
            let target = target.clone();
            return self.deliver_elsewhere(origin, command, timeout, &target);
        }
        if let Some(chat) = command.target_chat() {
            let kind = origin.kind();
            let target = Target {
                platform: self.inbound_gate.platform(),
                chat,
                is_self: self.inbound_gate.is_own_chat(chat),
                kind,
            };
            if let Verdict::Deny { rule } = self.outbound_gate.check(target) {
                self.log.emit(
                    Some(&self.name),
                    &Event::OutboundDenied {
                        kind: kind.as_str(),
                        chat: self.log.id(chat),
                        rule,
                    },
                );
                return Err(ErrorCode::SendDenied);
            }
        }
        self.queue_command(origin, command, timeout).map(|_| ())
    }

    /// Queues a command the outbound gate has already let through (the inbound path checks it
    /// before it issues a pairing code: a code that cannot be sent must not exist).
    fn queue_command(
        &mut self,
        origin: Origin,
        command: Command,
        timeout: Option<Duration>,
    ) -> Result<Seq, ErrorCode> {
        if self.stopping == Some(StopCause::Shutdown) {
            return Err(ErrorCode::ShuttingDown);
        }
        if self.state.is_terminal() {
            return Err(ErrorCode::ConnectorUnavailable);
        }
        if self.commands.is_full() {
            return Err(ErrorCode::QueueFull);
        }
        // Housekeeping is not the gateway's commands: not counted in `status`.
        if origin != Origin::Housekeeping {
            self.log
                .board()
                .update(self.index, |c| c.commands.accepted += 1);
        }
        let seq = self.commands.accept(origin, command, timeout);
        self.show_queue();
        Ok(seq)
    }

    /// The queue's depths on the status board (and so in `status` and the metrics).
    fn show_queue(&self) {
        let (waiting, in_flight) = self.commands.depths();
        self.log.board().update(self.index, |c| {
            c.commands.waiting = waiting;
            c.commands.in_flight = in_flight;
        });
    }

    /// The one result of a command that was never queued.
    fn refuse(&mut self, origin: Origin, code: ErrorCode) {
        self.log
            .board()
            .update(self.index, |c| c.commands.rejected += 1);
        if let Origin::Gateway(id) = origin {
            let error = self.error_body(code, false);
            self.push(GatewayEvent::Result(CommandResult::err(id, error)));
        }
    }

    /// Tells a connector that asked for it (`recorded` capability) that a message is in the
    /// ledger, so it may let the network forget it (Telegram's update offset, Weixin's
    /// cursor). The notes of a batch of lines go to its stdin together, as one write
    /// (`send_recorded_notes`): one per message could fill the stdin queue in a batch of 100.
    /// The note names the outcome and its reason: a receiver that answers its sender (a
    /// webhook's HTTP status) says what became of the message.
    fn tell_recorded(&mut self, id: &str, outcome: Outcome) {
        if !self.process.as_ref().is_some_and(|p| p.acks_recorded) {
            return;
        }
        let note = SupervisorNote::Recorded(RecordedNote {
            id: id.to_owned(),
            outcome: outcome.name().to_owned(),
            reason: outcome.reason().to_owned(),
        });
        // Written straight into the batch (no JSON tree); a struct of strings always encodes.
        if serde_json::to_writer(&mut self.recorded_notes, &note).is_ok() {
            self.recorded_notes.push(b'\n');
        }
    }

    /// Writes the pending `recorded` notes without waiting; with the stdin queue full they wait
    /// for its next free slot (the loop's write turn).
    fn send_recorded_notes(&mut self) {
        let Some(stdin) = &self.stdin else {
            self.recorded_notes.clear();
            return;
        };
        if self.recorded_notes.is_empty() {
            return;
        }
        let notes = Bytes::from(std::mem::take(&mut self.recorded_notes));
        match stdin.try_send(notes) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(notes)) => self.recorded_notes = notes.into(),
        }
    }

    fn on_inbound(&mut self, message: Box<InboundMessage>) {
        let now = crate::util::time::unix_secs();
        self.log.inbound_raw(&self.name, &message);
        match self.inbound_gate.refresh_policy() {
            Some(PolicyReload::Changed(changes)) => self.log.emit(
                Some(&self.name),
                &Event::PolicyReloaded {
                    platform: self.inbound_gate.platform(),
                    changes,
                },
            ),
            Some(PolicyReload::Invalid(message)) => self.log.emit(
                Some(&self.name),
                &Event::ConfigWarning {
                    platform: self.inbound_gate.platform(),
                    message: &format!("the settings changed but cannot be used; the policy in force stays: {message}"),
                },
            ),
            None => {}
        }
        let mut admission = self.inbound_gate.admit(&message, now);
        let queued = match admission.send.take() {
            Some((kind, text)) => {
                let command = Command::SendText(SendText {
                    chat: message.chat.clone(),
                    text,
                    reply_to: None,
                    thread: None,
                });
                self.queue_command(Origin::Internal(kind), command, None)
                    .map(|_| ())
            }
            None => Ok(()),
        };
        let mut outcome = inbound::settle(admission.outcome, queued, self.outbox.is_closed());
        let target = message.routed.as_ref().and_then(|r| r.deliver.clone());
        // A route's direct delivery: its text is the message, sent without the gateway.
        let direct = target.as_ref().is_some_and(|t| t.direct);
        if let (Outcome::Delivered(_), Some(target)) = (outcome, target) {
            if direct {
                if let Err(e) = self.send_direct(&message, &target) {
                    outcome = Outcome::Failed(e);
                }
            } else {
                self.deliveries.remember(
                    &message.chat,
                    target,
                    crate::util::time::unix_secs() as u64,
                );
            }
        }
        self.log.decision(self.index, &self.name, &message, outcome);
        self.tell_recorded(&message.id, outcome);
        if !direct && matches!(outcome, Outcome::Delivered(_)) {
            let connector = self.name.to_string();
            let mut message = message;
            message.context = std::mem::take(&mut admission.context);
            self.push(GatewayEvent::Inbound { connector, message });
        }
        if let Some((code, text)) = admission.alert {
            self.alert(Severity::Warning, code, text);
        }
        if let Some(request) = admission.pairing
            && outcome == Outcome::PairingCodeSent
        {
            self.log.emit(
                Some(&self.name),
                &Event::PairingRequested {
                    platform: &request.platform,
                    user: self.log.id(&request.user),
                    request_id: &request.request_id,
                },
            );
            self.push(GatewayEvent::PairingRequested {
                connector: self.name.to_string(),
                platform: request.platform,
                user: request.user,
                user_name: request.user_name,
                request_id: request.request_id,
            });
        }
    }

    fn write_next(&mut self, permit: Result<mpsc::OwnedPermit<Bytes>, mpsc::error::SendError<()>>) {
        let Ok(permit) = permit else { return }; // stdin writer gone: the exit follows
        if !self.recorded_notes.is_empty() {
            permit.send(Bytes::from(std::mem::take(&mut self.recorded_notes)));
            return;
        }
        let Some((seq, command)) = self.commands.take_next_to_write() else {
            return;
        };
        self.show_queue();
        // The typing shown before a paced send is written first: the send keeps its record.
        if let Some((_, since)) = self.paced_since.filter(|(held, _)| *held == seq) {
            self.paced_since = None;
            let ms = since.elapsed().as_millis() as u64;
            self.log.board().update(self.index, |c| {
                c.commands.paced += 1;
                c.commands.paced_ms += ms;
            });
        }
        if let Some(chat) = paced_chat(&command) {
            self.pacer
                .record(&self.cfg.pacing, chat, std::time::Instant::now());
            self.typing = None;
        }
        let line = ConnectorCommand {
            id: seq.wire_id(),
            command,
        };
        match encode_line(&line, self.cfg.max_line_bytes) {
            Ok(bytes) => {
                permit.send(Bytes::from(bytes));
                if self.commands.origin(seq) == Some(&Origin::Housekeeping) {
                    return; // pings and typing are not logged line by line
                }
                self.log.emit(
                    Some(&self.name),
                    &Event::CommandWritten {
                        id: &line.id,
                        command: line.command.type_name(),
                    },
                );
            }
            Err(e) => {
                let code = match e {
                    EncodeError::TooLong { .. } => ErrorCode::TooLarge,
                    EncodeError::Json(_) => ErrorCode::InvalidCommand,
                };
                let mut body = self.error_body(code, false);
                body.message = e.to_string();
                self.answer(seq, Err(body));
            }
        }
    }

    fn on_result(&mut self, result: CommandResult) {
        let Some(seq) = self.commands.seq_of(&result.id) else {
            self.log
                .emit(Some(&self.name), &Event::LateResult { id: &result.id });
            return;
        };
        self.liveness.answered(seq);
        let outcome = match (result.ok, result.error) {
            (true, _) => Ok(result.data),
            (false, Some(error)) => Err(error),
            (false, None) => Err(ErrorBody {
                code: "connector_error".into(),
                message: "the connector reported a failure without details".into(),
                unconfirmed: false,
            }),
        };
        self.answer(seq, outcome);
    }

    fn on_deadline(&mut self, seq: Seq) {
        let Some(written) = self.commands.written(seq) else {
            return;
        };
        self.log
            .board()
            .update(self.index, |c| c.commands.timed_out += 1);
        // Never written while pacing held the queue: held back, not lost.
        let code = if !written && self.paced_until.is_some() {
            ErrorCode::RateLimited
        } else {
            ErrorCode::Timeout
        };
        let body = self.error_body(code, written);
        self.answer(seq, Err(body));
    }

    /// Records the one result of command `seq` and sends it to the gateway when it asked.
    fn answer(&mut self, seq: Seq, outcome: Result<Option<serde_json::Value>, ErrorBody>) {
        let Some(answered) = self.commands.answer(seq, outcome) else {
            return;
        };
        self.show_queue();
        if answered.origin == Origin::Housekeeping {
            return; // housekeeping: its answer (or its deadline) concerns nobody else
        }
        let ok = answered.ok;
        self.log.emit(
            Some(&self.name),
            &Event::CommandResult {
                id: &answered.seq.wire_id(),
                command: answered.command,
                ok,
                error: answered.error_code.as_deref(),
            },
        );
        self.log.board().update(self.index, |c| {
            if ok {
                c.commands.ok += 1
            } else {
                c.commands.failed += 1
            }
        });
        for (id, chat) in answered.unconfirmed {
            self.report_unconfirmed(id, chat);
        }
        if !answered.sent_ids.is_empty() {
            self.inbound_gate.note_sent(answered.sent_ids);
        }
        if let Some(result) = answered.result {
            self.push(GatewayEvent::Result(result));
        }
    }

    /// A sent message whose fate is unknown: the connector can no longer report its ack.
    fn report_unconfirmed(&mut self, message_id: String, chat: String) {
        let status = ReceiptStatus::Unconfirmed;
        self.log.emit(
            Some(&self.name),
            &Event::Receipt {
                message_id: &message_id,
                chat: self.log.id(&chat),
                status,
            },
        );
        let receipt = Receipt {
            message_id,
            chat,
            status,
        };
        let connector = self.name.to_string();
        self.push(GatewayEvent::Receipt { connector, receipt });
    }

    /// The process died: commands it may have acted on get an explicit "unconfirmed" failure;
    /// unwritten ones stay queued for the next process.
    fn fail_written_commands(&mut self) {
        for seq in self.commands.written_seqs() {
            let body = self.error_body(ErrorCode::ConnectorExited, true);
            self.answer(seq, Err(body));
        }
    }

    fn fail_all_commands(&mut self, code: ErrorCode) {
        for (seq, written) in self.commands.all_seqs() {
            let body = self.error_body(code, written);
            self.answer(seq, Err(body));
        }
    }

    fn error_body(&self, code: ErrorCode, unconfirmed: bool) -> ErrorBody {
        ErrorBody {
            code: code.as_str().into(),
            message: code.message(&self.name, self.state),
            unconfirmed,
        }
    }

    // ---- toward the gateway -----------------------------------------------------------------

    fn set_state(&mut self, state: ConnectorStateName, exit: Option<ExitInfo>) {
        self.state = state;
        let restarts = self.history.total;
        let pid = self.process.as_ref().map(|p| p.pid);
        self.log.board().update(self.index, |c| c.state = state);
        self.log
            .emit(Some(&self.name), &Event::ConnectorState { state, restarts });
        self.push(GatewayEvent::ConnectorState {
            connector: self.name.to_string(),
            state,
            pid,
            restarts,
            exit,
        });
    }

    fn alert(&mut self, severity: Severity, code: AlertCode, message: String) {
        self.alerts.notify(&self.name, &message, &self.log);
        self.log.emit(
            Some(&self.name),
            &Event::Alert {
                severity,
                code,
                message: &message,
            },
        );
        self.push(GatewayEvent::Alert {
            connector: Some(self.name.to_string()),
            severity,
            code: code.as_str().to_owned(),
            message,
        });
    }

    fn push(&mut self, item: GatewayEvent) {
        let lost = self.outbox.push(item);
        self.retract(lost);
    }

    /// Inbound messages that cannot reach the gateway after all: failed, not delivered.
    fn retract(&mut self, lost: Undeliverable) {
        for message_id in lost {
            self.log
                .retract(&self.name, &message_id, FailReason::GatewayClosed);
        }
    }

    /// After the process is stopped: answer every command still open and hand the outbox over.
    async fn finish(mut self) {
        self.fail_all_commands(ErrorCode::ShuttingDown);
        self.control.close();
        while let Ok(control) = self.control.try_recv() {
            // A pulse now goes unanswered: the loop has ended.
            if let Control::Command { origin, .. } = control {
                self.refuse(origin, ErrorCode::ShuttingDown);
            }
        }
        let lost = self.outbox.drain().await;
        self.retract(lost);
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn reserve(
    stdin: Option<mpsc::Sender<Bytes>>,
) -> Result<mpsc::OwnedPermit<Bytes>, mpsc::error::SendError<()>> {
    match stdin {
        Some(tx) => tx.reserve_owned().await,
        None => std::future::pending().await,
    }
}
