//! The task that owns one connector: its process, stdin/stdout, the command queue, deadlines,
//! restart history and its side of the gateway link. Nothing else touches the child.
//!
//! Every `select!` arm in `run` is one method call. Backpressure: stdout is only read while the
//! outbox toward the gateway is empty, so a slow gateway slows the connector (its stdout pipe
//! fills) instead of growing memory here.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bridge_protocol::gateway::{ConnectorStateName, ExitInfo, GatewayEvent, Severity};
use bridge_protocol::message::{
    Command, CommandResult, ConnectionState, ConnectorCommand, ConnectorEvent, ErrorBody, Hello,
    InboundMessage, Receipt, ReceiptStatus, SendText,
};
use bridge_protocol::{EncodeError, JsonLinesCodec, LineError, PROTOCOL_VERSION, encode_line};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use tokio::process::{Child, ChildStdout};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

pub mod child;
pub mod commands;
pub mod dedup;
pub mod inbound;
pub mod outbox;

use super::handle::{AlertRouter, Control, ErrorCode, Origin};
use crate::config::ConnectorConfig;
use crate::policy::exit::{ExitFacts, ExitReason, Stopping, classify_exit};
use crate::policy::restart::{ExitClass, Next, RestartHistory};
use crate::policy::send::{OutboundGate, Target, Verdict};
use crate::record::board::{LastExit, unix_ms};
use crate::record::ledger::{FailReason, Outcome};
use crate::record::log::{Event, EventLog};
use commands::{CommandBook, Seq};
use inbound::Gatekeeper;
use outbox::{Outbox, Undeliverable};

/// How long to keep reading stdout after the process exited (a grandchild may hold the pipe).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Lines buffered toward the child's stdin writer.
const STDIN_BUFFER: usize = 64;
/// Lines handled in one turn of the loop when the connector wrote many at once: the events
/// they produce reach the gateway writer together (one wake-up, not one per line), and
/// commands and timers still get a turn between batches.
const FRAMES_PER_TURN: usize = 256;
/// Bytes read from the connector's stdout at a time.
const READ_BUFFER: usize = 64 * 1024;

type Stdout = FramedRead<ChildStdout, JsonLinesCodec<ConnectorEvent>>;
type Frame = Option<Result<Result<ConnectorEvent, LineError>, io::Error>>;

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
}

struct Process {
    child: Child,
    pid: u32,
    spawned: Instant,
    /// `hello` received: commands may be written.
    ready: bool,
    exit: Option<ExitStatus>,
    /// A terminal state the connector reported before exiting.
    reported: Option<ConnectionState>,
    hello_timed_out: bool,
    /// The ladder already sent SIGKILL to the whole group.
    group_killed: bool,
}

pub struct ConnectorTask {
    index: usize,
    name: Arc<str>,
    cfg: Arc<ConnectorConfig>,
    state_dir: PathBuf,
    log: EventLog,
    /// The access policy's side of inbound messages.
    gatekeeper: Gatekeeper,
    gate: Arc<OutboundGate>,
    alerts: Arc<AlertRouter>,
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
}

pub struct TaskParts {
    pub index: usize,
    pub cfg: Arc<ConnectorConfig>,
    pub state_dir: PathBuf,
    pub log: EventLog,
    pub gatekeeper: Gatekeeper,
    pub gate: Arc<OutboundGate>,
    pub alerts: Arc<AlertRouter>,
    pub gateway: mpsc::Sender<GatewayEvent>,
    pub control: mpsc::Receiver<Control>,
    pub shutdown: CancellationToken,
}

impl ConnectorTask {
    pub fn new(p: TaskParts) -> Self {
        Self {
            index: p.index,
            name: Arc::from(p.cfg.name.as_str()),
            commands: CommandBook::new(p.cfg.queue_capacity, p.cfg.command_timeout),
            cfg: p.cfg,
            state_dir: p.state_dir,
            log: p.log,
            gatekeeper: p.gatekeeper,
            gate: p.gate,
            alerts: p.alerts,
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
            let running = self.process.as_ref().is_some_and(|p| p.exit.is_none());
            let can_write = self
                .process
                .as_ref()
                .is_some_and(|p| p.ready && p.exit.is_none())
                && self.commands.has_unwritten();
            let stdin = self.stdin.clone();
            let gateway = self.outbox.sender();

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
                frame = next_frame(&mut self.stdout), if read_stdout => self.on_frames(frame),
                status = wait_child(&mut self.process), if running => self.on_exit(status),
                _ = sleep_until(timer_at), if timer_at.is_some() => self.on_timer(),
                permit = reserve(stdin), if can_write => self.write_next(permit),
            }

            if matches!(self.timer, Some((_, Timer::Flush))) && self.commands.is_idle() {
                self.close_stdin();
            }
            if self.process.as_ref().is_some_and(|p| p.exit.is_some()) && self.stdout.is_none() {
                self.finish_exit();
            }
        }
        self.finish().await;
    }

    // ---- process lifecycle ------------------------------------------------------------------

    fn spawn(&mut self) {
        self.timer = None;
        let program = self.cfg.program.display().to_string();
        let spawned = match child::spawn(&self.cfg, &self.state_dir) {
            Ok(s) => s,
            Err(e) => {
                self.log.emit(
                    Some(&self.name),
                    &Event::ConnectorSpawnFailed {
                        program,
                        error: e.to_string(),
                    },
                );
                let exit = ExitInfo {
                    code: None,
                    signal: None,
                    reason: ExitReason::SpawnFailed.as_str().into(),
                };
                self.after_exit(exit, ExitClass::Backoff, Duration::ZERO);
                return;
            }
        };
        let pid = spawned.pid;
        self.log
            .emit(Some(&self.name), &Event::ConnectorSpawned { pid, program });
        let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_BUFFER);
        tokio::spawn(child::write_stdin(spawned.stdin, stdin_rx));
        tokio::spawn(child::pump_stderr(
            spawned.stderr,
            self.log.clone(),
            self.index,
            self.name.clone(),
        ));
        self.stdin = Some(stdin_tx);
        self.stdout = Some(FramedRead::with_capacity(
            spawned.stdout,
            JsonLinesCodec::with_max_line_bytes(self.cfg.max_line_bytes),
            READ_BUFFER,
        ));
        self.process = Some(Process {
            child: spawned.child,
            pid,
            spawned: Instant::now(),
            ready: false,
            exit: None,
            reported: None,
            hello_timed_out: false,
            group_killed: false,
        });
        self.log.board().update(self.index, |c| {
            c.pid = Some(pid);
            c.started_at_ms = Some(unix_ms(SystemTime::now()));
        });
        self.set_state(ConnectorStateName::Starting, None);
        self.set_timer(self.cfg.hello_timeout, Timer::Hello);
    }

    fn on_hello(&mut self, hello: Hello) {
        let Some(process) = self.process.as_mut() else {
            return;
        };
        if hello.protocol != PROTOCOL_VERSION {
            self.log.emit(
                Some(&self.name),
                &Event::ProtocolMismatch {
                    expected: PROTOCOL_VERSION,
                    got: hello.protocol,
                },
            );
            self.begin_stop(StopCause::Fatal(ExitReason::ProtocolMismatch));
            return;
        }
        process.ready = true;
        let pid = process.pid;
        self.log.emit(
            Some(&self.name),
            &Event::ConnectorReady {
                pid,
                connector_kind: &hello.connector,
                version: &hello.version,
                capabilities: &hello.capabilities,
            },
        );
        if self.stopping.is_none() {
            self.timer = None;
            self.set_state(ConnectorStateName::Running, None);
        }
    }

    fn on_exit(&mut self, status: io::Result<ExitStatus>) {
        let Some(process) = self.process.as_mut() else {
            return;
        };
        // An error from wait() means the child can no longer be observed; treat it as gone.
        process.exit = Some(status.unwrap_or_else(|_| ExitStatus::from_raw(0xff00)));
        if self.stdout.is_some() && !matches!(self.timer, Some((_, Timer::Term | Timer::Kill))) {
            self.set_timer(DRAIN_AFTER_EXIT, Timer::Drain);
        }
    }

    /// The process has exited and its stdout is read to the end (or given up on).
    fn finish_exit(&mut self) {
        let Some(process) = self.process.take() else {
            return;
        };
        self.stdin = None;
        self.timer = None;
        let status = process.exit.expect("finish_exit after exit");
        let uptime = process.spawned.elapsed();
        // Stragglers in the group (grandchildren that ignored the stdin contract) must not
        // outlive their connector: they could keep a session in use.
        if !process.group_killed
            && let Ok(true) = child::signal_group(process.pid, Signal::SIGKILL)
        {
            self.log.emit(
                Some(&self.name),
                &Event::StopStep {
                    step: "reaped_group",
                    pid: process.pid,
                },
            );
        }
        self.fail_written_commands();
        for (id, chat) in self.commands.take_unacked() {
            self.report_unconfirmed(id, chat);
        }

        let (class, reason) = self.classify(&process, status);
        self.log.emit(
            Some(&self.name),
            &Event::ConnectorExited {
                pid: process.pid,
                code: status.code(),
                signal: status.signal(),
                reason: reason.as_str(),
                uptime_ms: uptime.as_millis() as u64,
            },
        );
        let exit = ExitInfo {
            code: status.code(),
            signal: status.signal(),
            reason: reason.as_str().into(),
        };
        match self.stopping {
            Some(StopCause::Shutdown) => {
                self.record_exit(&exit, uptime);
                self.set_state(ConnectorStateName::Stopped, Some(exit));
            }
            Some(StopCause::Fatal(_)) => {
                self.stopping = None;
                self.after_exit(exit, ExitClass::Fatal, uptime);
            }
            None => self.after_exit(exit, class, uptime),
        }
    }

    fn classify(&self, process: &Process, status: ExitStatus) -> (ExitClass, ExitReason) {
        classify_exit(ExitFacts {
            stopping: match self.stopping {
                None => None,
                Some(StopCause::Shutdown) => Some(Stopping::Shutdown),
                Some(StopCause::Fatal(reason)) => Some(Stopping::Fatal(reason)),
            },
            reported: process.reported,
            hello_timed_out: process.hello_timed_out,
            code: status.code(),
            signal: status.signal(),
        })
    }

    fn record_exit(&self, exit: &ExitInfo, uptime: Duration) {
        let last = LastExit {
            exit: exit.clone(),
            at_ms: unix_ms(SystemTime::now()),
            uptime_ms: uptime.as_millis() as u64,
        };
        self.log.board().update(self.index, |c| {
            c.pid = None;
            c.last_exit = Some(last);
        });
    }

    /// Applies the restart policy to an exit that the supervisor did not ask for.
    fn after_exit(&mut self, exit: ExitInfo, class: ExitClass, uptime: Duration) {
        self.record_exit(&exit, uptime);
        let next = self.cfg.restart.next(
            &mut self.history,
            class,
            uptime,
            Instant::now(),
            random_unit(),
        );
        let restarts = self.history.total;
        self.log
            .board()
            .update(self.index, |c| c.restarts = restarts);
        let name = self.name.clone();
        match next {
            Next::Restart { after } => {
                self.log.emit(
                    Some(&name),
                    &Event::RestartScheduled {
                        after_ms: after.as_millis() as u64,
                        restart: restarts,
                    },
                );
                self.set_state(ConnectorStateName::Backoff, Some(exit));
                self.set_timer(after, Timer::Respawn);
            }
            Next::RestartLimit { restarts, window } => {
                self.set_state(ConnectorStateName::Failed, Some(exit));
                self.alert(
                    Severity::Critical,
                    "restart_limit",
                    format!(
                        "connector {name} was restarted {restarts} times within {} s and exited again; \
                         it is not restarted any more. Its stderr is in bridge.log \
                         (`bridgekeeper logs --connector {name}`); fix the cause, then restart bridgekeeper",
                        window.as_secs()
                    ),
                );
            }
            Next::NeedsRelink => {
                self.set_state(ConnectorStateName::NeedsRelink, Some(exit));
                self.alert(
                    Severity::Critical,
                    "logged_out",
                    format!(
                        "connector {name}: the account was logged out; link it again \
                         (`bridgekeeper whatsapp link`), then restart bridgekeeper"
                    ),
                );
            }
            Next::Conflict => {
                self.set_state(ConnectorStateName::Conflict, Some(exit));
                self.alert(
                    Severity::Critical,
                    "session_conflict",
                    format!(
                        "connector {name}: another client took over this session (connection replaced); \
                         stop the other bridge using the same session, then restart bridgekeeper"
                    ),
                );
            }
            Next::Fatal => {
                let reason = exit.reason.clone();
                self.set_state(ConnectorStateName::Failed, Some(exit));
                self.alert(
                    Severity::Critical,
                    "connector_fatal",
                    format!(
                        "connector {name} cannot be used ({reason}); it is not restarted. \
                         Details are in bridge.log"
                    ),
                );
            }
        }
        if self.state.is_terminal() {
            self.fail_all_commands(ErrorCode::ConnectorUnavailable);
        }
    }

    fn on_timer(&mut self) {
        let Some((_, timer)) = self.timer.take() else {
            return;
        };
        match timer {
            Timer::Hello => {
                let Some(process) = self.process.as_mut() else {
                    return;
                };
                process.hello_timed_out = true;
                let pid = process.pid;
                self.log.emit(
                    Some(&self.name),
                    &Event::HelloTimeout {
                        pid,
                        waited_ms: self.cfg.hello_timeout.as_millis() as u64,
                    },
                );
                self.signal(Signal::SIGKILL, "sigkill");
            }
            Timer::Flush => self.close_stdin(),
            Timer::Drain => {
                // A grandchild still holds stdout open; the connector itself is gone.
                self.stdout = None;
            }
            Timer::Term => {
                self.signal(Signal::SIGTERM, "sigterm");
                self.set_timer(self.cfg.stop.term_grace, Timer::Kill);
            }
            Timer::Kill => {
                self.signal(Signal::SIGKILL, "sigkill");
                // After SIGKILL the pipes close with the group; give the drain a bound anyway.
                self.set_timer(DRAIN_AFTER_EXIT, Timer::Drain);
            }
            Timer::Respawn => self.spawn(),
        }
    }

    /// Starts stopping the current process. On shutdown, commands already accepted get up to
    /// `stdin_grace` to finish first; then the ladder starts by closing stdin.
    fn begin_stop(&mut self, cause: StopCause) {
        // A shutdown overrides a fatal stop in progress; a fatal stop never overrides a shutdown.
        if cause == StopCause::Shutdown || self.stopping.is_none() {
            self.stopping = Some(cause);
        }
        let Some(process) = self.process.as_ref() else {
            // Nothing runs (backoff or a terminal state): there is nothing to stop.
            if cause == StopCause::Shutdown && !self.state.is_terminal() {
                self.set_state(ConnectorStateName::Stopped, None);
            }
            return;
        };
        let exited = process.exit.is_some();
        if cause == StopCause::Shutdown {
            self.set_state(ConnectorStateName::Stopping, None);
        }
        if exited {
            return; // already gone; its stdout drain is in progress
        }
        if cause == StopCause::Shutdown && !self.commands.is_idle() {
            self.set_timer(self.cfg.stop.stdin_grace, Timer::Flush);
        } else {
            self.close_stdin();
        }
    }

    /// The stop ladder, first rung: close stdin and give the connector `stdin_grace` to exit.
    fn close_stdin(&mut self) {
        let Some(process) = self.process.as_ref() else {
            return;
        };
        let pid = process.pid;
        if self.stdin.take().is_some() {
            self.log.emit(
                Some(&self.name),
                &Event::StopStep {
                    step: "stdin_closed",
                    pid,
                },
            );
        }
        self.set_timer(self.cfg.stop.stdin_grace, Timer::Term);
    }

    fn signal(&mut self, signal: Signal, step: &'static str) {
        let Some(process) = self.process.as_mut() else {
            return;
        };
        let pid = process.pid;
        process.group_killed |= signal == Signal::SIGKILL;
        match child::signal_group(pid, signal) {
            Ok(_) => self
                .log
                .emit(Some(&self.name), &Event::StopStep { step, pid }),
            Err(e) => tracing::warn!(connector = %self.name, error = %e, "cannot signal connector"),
        }
    }

    // ---- stdout -----------------------------------------------------------------------------

    /// Handles `first` and then every line that is ready without waiting, up to a bound.
    fn on_frames(&mut self, first: Frame) {
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
        self.gatekeeper.flush();
        let lost = self.outbox.end_batch();
        self.retract(lost);
    }

    fn on_frame(&mut self, frame: Frame) {
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

    fn on_line_error(&mut self, error: LineError) {
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
    fn on_oversized_inbound(
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
            from_me: false,
            push_name: None,
            text: None,
            media: None,
            mentions: Vec::new(),
            quoted: None,
            timestamp: 0,
        };
        let failure = FailReason::TooLong;
        self.log.decision(
            self.index,
            &self.name,
            &message,
            Outcome::Failed(failure),
            failure.as_str(),
        );
        let id = if message.id.is_empty() {
            "whose id could not be read".to_owned()
        } else {
            format!("{:?}", message.id)
        };
        self.alert(
            Severity::Warning,
            "inbound_too_long",
            format!(
                "an inbound message {id} was longer than this connector's max_line_bytes ({limit} bytes) and was not delivered (ledger: failed too_long); raise connectors[].max_line_bytes to accept such messages"
            ),
        );
    }

    fn on_event(&mut self, event: ConnectorEvent) {
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
                self.gatekeeper.set_account(&account);
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
                self.gatekeeper.learn_mapping(&mapping.lid, &mapping.phone);
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
        }
    }

    // ---- commands ---------------------------------------------------------------------------

    fn on_control(&mut self, control: Option<Control>) {
        let Some(Control::Command {
            origin,
            command,
            timeout,
        }) = control
        else {
            self.control_closed = true;
            return;
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
        if self.stopping == Some(StopCause::Shutdown) {
            return Err(ErrorCode::ShuttingDown);
        }
        if self.state.is_terminal() {
            return Err(ErrorCode::ConnectorUnavailable);
        }
        if self.commands.is_full() {
            return Err(ErrorCode::QueueFull);
        }
        if let Some(chat) = command.target_chat() {
            let kind = origin.kind();
            let target = Target {
                platform: self.gatekeeper.platform(),
                chat,
                is_self: self.gatekeeper.is_own_chat(chat),
                kind,
            };
            if let Verdict::Deny { rule } = self.gate.check(target) {
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
        self.commands.accept(origin, command, timeout);
        self.log
            .board()
            .update(self.index, |c| c.commands.accepted += 1);
        Ok(())
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

    fn on_inbound(&mut self, message: Box<InboundMessage>) {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.log.inbound_raw(&self.name, &message);
        let admission = self.gatekeeper.admit(&message, now);
        let (mut outcome, mut reason) = (admission.outcome, admission.reason);
        if let Some((kind, text)) = admission.send {
            let command = Command::SendText(SendText {
                chat: message.chat.clone(),
                text,
                reply_to: None,
            });
            if let Err(code) = self.enqueue(Origin::Internal(kind), command, None) {
                let failure = match code {
                    ErrorCode::SendDenied => FailReason::SendDenied,
                    _ => FailReason::SendQueueFull,
                };
                (outcome, reason) = (Outcome::Failed(failure), failure.as_str());
            }
        }
        if outcome == Outcome::Delivered && self.outbox.is_closed() {
            let failure = FailReason::GatewayClosed;
            (outcome, reason) = (Outcome::Failed(failure), failure.as_str());
        }
        self.log
            .decision(self.index, &self.name, &message, outcome, reason);
        if outcome == Outcome::Delivered {
            let connector = self.name.to_string();
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
        let Some((seq, command)) = self.commands.take_next_to_write() else {
            return;
        };
        let line = ConnectorCommand {
            id: seq.wire_id(),
            command,
        };
        match encode_line(&line, self.cfg.max_line_bytes) {
            Ok(bytes) => {
                permit.send(Bytes::from(bytes));
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
        let body = self.error_body(ErrorCode::Timeout, written);
        self.answer(seq, Err(body));
    }

    /// Records the one result of command `seq` and sends it to the gateway when it asked.
    fn answer(&mut self, seq: Seq, outcome: Result<Option<serde_json::Value>, ErrorBody>) {
        let Some(answered) = self.commands.answer(seq, outcome) else {
            return;
        };
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
            self.gatekeeper.note_sent(answered.sent_ids);
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

    fn alert(&mut self, severity: Severity, code: &str, message: String) {
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
            code: code.to_owned(),
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
            let Control::Command { origin, .. } = control;
            self.refuse(origin, ErrorCode::ShuttingDown);
        }
        let lost = self.outbox.drain().await;
        self.retract(lost);
    }

    fn set_timer(&mut self, after: Duration, timer: Timer) {
        self.timer = Some((tokio::time::Instant::now() + after, timer));
    }
}

async fn next_frame(stdout: &mut Option<Stdout>) -> Frame {
    match stdout {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn wait_child(process: &mut Option<Process>) -> io::Result<ExitStatus> {
    match process {
        Some(p) => p.child.wait().await,
        None => std::future::pending().await,
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

/// Uniform in [0, 1) from the OS random source, for restart jitter.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
