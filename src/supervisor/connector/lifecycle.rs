//! The connector process's life: spawn, the handshake, exit and its classification, the
//! restart policy's answer, and the stop ladder (close stdin → SIGTERM the group → SIGKILL).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use bridge_protocol::gateway::{ConnectorStateName, ExitInfo, Severity};
use bridge_protocol::message::Hello;
use bridge_protocol::{JsonLinesCodec, PROTOCOL_VERSION};
use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use super::{ConnectorTask, Phase, Process, StopCause, Timer, child};
use crate::policy::exit::{ExitFacts, ExitReason, Stopping, classify_exit};
use crate::policy::restart::{ExitClass, Next};
use crate::record::board::{LastExit, unix_ms};
use crate::record::log::{AlertCode, Event};
use crate::supervisor::handle::ErrorCode;

/// How long to keep reading stdout after the process exited (a grandchild may hold the pipe).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Lines buffered toward the child's stdin writer.
const STDIN_BUFFER: usize = 64;
/// Bytes read from the connector's stdout at a time.
const READ_BUFFER: usize = 64 * 1024;

impl ConnectorTask {
    pub(super) fn spawn(&mut self) {
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
            child::secrets_of(&self.cfg),
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
            phase: Phase::AwaitingHello,
            reported: None,
            group_killed: false,
            acks_recorded: false,
        });
        self.log.board().update(self.index, |c| {
            c.pid = Some(pid);
            c.started_at_ms = Some(unix_ms(SystemTime::now()));
        });
        self.liveness.reset();
        self.set_state(ConnectorStateName::Starting, None);
        self.set_timer(self.cfg.hello_timeout, Timer::Hello);
    }

    pub(super) fn on_hello(&mut self, hello: Hello) {
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
        if process.phase == Phase::AwaitingHello {
            process.phase = Phase::Ready;
        }
        process.acks_recorded = hello.capabilities.iter().any(|c| c == "recorded");
        // Notes meant for a process that is gone mean nothing to this one.
        self.recorded_notes.clear();
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

    pub(super) fn on_exit(&mut self, status: io::Result<ExitStatus>) {
        let Some(process) = self.process.as_mut() else {
            return;
        };
        // An error from wait() means the child can no longer be observed; treat it as gone.
        let status = status.unwrap_or_else(|_| ExitStatus::from_raw(0xff00));
        let hello_timed_out = process.phase == Phase::HelloTimedOut;
        process.phase = Phase::Exited {
            status,
            hello_timed_out,
        };
        if self.stdout.is_some() && !matches!(self.timer, Some((_, Timer::Term | Timer::Kill))) {
            self.set_timer(DRAIN_AFTER_EXIT, Timer::Drain);
        }
    }

    /// The process has exited and its stdout is read to the end (or given up on).
    pub(super) fn finish_exit(&mut self) {
        let Some(status) = self.process.as_ref().and_then(Process::exit) else {
            return;
        };
        let Some(process) = self.process.take() else {
            return;
        };
        self.stdin = None;
        self.timer = None;
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
        // The watchdog's shorter limits apply to the connection a forced reconnect makes.
        self.liveness.after_forced = matches!(self.stopping, Some(StopCause::Reconnect(_)));
        match self.stopping {
            Some(StopCause::Shutdown) => {
                self.record_exit(&exit, uptime);
                self.set_state(ConnectorStateName::Stopped, Some(exit));
            }
            Some(StopCause::Fatal(_)) => {
                self.stopping = None;
                self.after_exit(exit, ExitClass::Fatal, uptime);
            }
            Some(StopCause::Hung | StopCause::Reconnect(_)) => {
                self.stopping = None;
                self.after_exit(exit, class, uptime);
            }
            None => self.after_exit(exit, class, uptime),
        }
    }

    pub(super) fn classify(
        &self,
        process: &Process,
        status: ExitStatus,
    ) -> (ExitClass, ExitReason) {
        classify_exit(ExitFacts {
            stopping: match self.stopping {
                None => None,
                Some(StopCause::Shutdown) => Some(Stopping::Shutdown),
                Some(StopCause::Fatal(reason)) => Some(Stopping::Fatal(reason)),
                Some(StopCause::Hung) => Some(Stopping::Hung),
                Some(StopCause::Reconnect(reason)) => Some(Stopping::Reconnect(reason)),
            },
            reported: process.reported,
            hello_timed_out: matches!(
                process.phase,
                Phase::Exited {
                    hello_timed_out: true,
                    ..
                }
            ),
            code: status.code(),
            signal: status.signal(),
        })
    }

    pub(super) fn record_exit(&self, exit: &ExitInfo, uptime: Duration) {
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
    pub(super) fn after_exit(&mut self, exit: ExitInfo, class: ExitClass, uptime: Duration) {
        self.record_exit(&exit, uptime);
        let next = self.cfg.restart.next(
            &mut self.history,
            class,
            uptime,
            Instant::now(),
            crate::util::random::unit(),
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
                    AlertCode::RestartLimit,
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
                    AlertCode::LoggedOut,
                    format!(
                        "connector {name}: the account was logged out; {}, then restart bridgekeeper",
                        relink_advice(&self.cfg.platform)
                    ),
                );
            }
            Next::NeedsToken => {
                self.set_state(ConnectorStateName::NeedsToken, Some(exit));
                self.alert(
                    Severity::Critical,
                    AlertCode::NeedsToken,
                    format!(
                        "connector {name}: the network refused its credentials; {}, then restart bridgekeeper",
                        token_advice(&self.cfg.platform)
                    ),
                );
            }
            Next::Conflict => {
                self.set_state(ConnectorStateName::Conflict, Some(exit));
                self.alert(
                    Severity::Critical,
                    AlertCode::SessionConflict,
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
                    AlertCode::ConnectorFatal,
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

    pub(super) fn on_timer(&mut self) {
        let Some((_, timer)) = self.timer.take() else {
            return;
        };
        match timer {
            Timer::Hello => {
                let Some(process) = self.process.as_mut() else {
                    return;
                };
                process.phase = Phase::HelloTimedOut;
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
    pub(super) fn begin_stop(&mut self, cause: StopCause) {
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
        let exited = process.exit().is_some();
        if cause == StopCause::Shutdown {
            self.set_state(ConnectorStateName::Stopping, None);
        }
        if exited {
            return; // already gone; its stdout drain is in progress
        }
        if cause == StopCause::Shutdown && !self.commands.is_idle() {
            self.set_timer(self.cfg.stop.stdin_grace, Timer::Flush);
        } else if matches!(cause, StopCause::Hung | StopCause::Reconnect(_)) {
            // A stuck process does not read its stdin: start at SIGTERM (a stopped one takes
            // only SIGKILL, which follows after term_grace).
            self.stdin = None;
            self.signal(Signal::SIGTERM, "sigterm");
            self.set_timer(self.cfg.stop.term_grace, Timer::Kill);
        } else {
            self.close_stdin();
        }
    }

    /// The stop ladder, first rung: close stdin and give the connector `stdin_grace` to exit.
    pub(super) fn close_stdin(&mut self) {
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

    pub(super) fn signal(&mut self, signal: Signal, step: &'static str) {
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

    pub(super) fn set_timer(&mut self, after: Duration, timer: Timer) {
        self.timer = Some((tokio::time::Instant::now() + after, timer));
    }
}

pub(super) async fn wait_child(process: &mut Option<Process>) -> io::Result<ExitStatus> {
    match process {
        Some(p) => p.child.wait().await,
        None => std::future::pending().await,
    }
}

/// How a logged-out account of `platform` is linked again (its description says).
fn relink_advice(platform: &str) -> &'static str {
    crate::connectors::description::describe(platform)
        .map_or("link the account again", |d| d.relink_fix)
}

/// Which credential of `platform` to replace.
fn token_advice(platform: &str) -> &'static str {
    crate::connectors::builtin(platform).map_or("set a valid token for it", |b| b.token_fix)
}
