//! The liveness check of one connector's task: pings on an interval, the connector's
//! heartbeats, and what to do when the process is hung or its connection deaf (the decisions
//! are `policy::liveness`'s).

use std::time::{Duration, Instant};

use bridge_protocol::gateway::Severity;
use bridge_protocol::message::Command;

use super::commands::Seq;
use super::{ConnectorTask, StopCause};
use crate::policy::exit::ExitReason;
use crate::policy::liveness;
use crate::record::log::{AlertCode, Event};
use crate::supervisor::handle::Origin;

impl ConnectorTask {
    /// The supervisor's own liveness check (`policy::liveness`): ping when due; a connector
    /// that does not answer, or is silent too long, is stopped and restarted as hung.
    pub(super) fn on_liveness_check(&mut self) {
        let policy = self.cfg.liveness;
        let now = Instant::now();
        self.liveness.next_check = tokio::time::Instant::now() + policy.check_every();
        let verdict = liveness::assess(
            &policy,
            now.duration_since(self.liveness.last_line),
            self.liveness.ping.map(|(_, at)| now.duration_since(at)),
            now.duration_since(self.liveness.last_ping),
        );
        match verdict {
            liveness::Verdict::Alive => {}
            liveness::Verdict::SendPing => {
                self.liveness.last_ping = now;
                // The book's own deadline stays out of the way: the verdict decides.
                let timeout = Some(policy.ping_timeout * 2);
                let ping = Command::Ping(Default::default());
                if let Ok(seq) = self.queue_command(Origin::Housekeeping, ping, timeout) {
                    self.liveness.ping = Some((seq, now));
                }
            }
            liveness::Verdict::Hung(reason) => self.on_hung(reason),
        }
    }

    /// A heartbeat: shown in `status`, and judged by the watchdog.
    pub(super) fn on_heartbeat(&mut self, beat: bridge_protocol::message::Heartbeat) {
        let now = Instant::now();
        let now_ms = crate::util::time::unix_ms(std::time::SystemTime::now());
        self.liveness
            .forced
            .retain(|t| now.duration_since(*t) < Duration::from_secs(3600));
        let forced_last_hour = self.liveness.forced.len() as u32;
        let ago = |ms: Option<u64>| ms.map(|ms| now_ms.saturating_sub(ms));
        self.log.board().update(self.index, |c| {
            c.liveness.last_heartbeat_ms = Some(now_ms);
            c.liveness.last_frame_ms = ago(beat.last_frame_ms_ago);
            c.liveness.last_message_ms = ago(beat.last_message_ms_ago);
            c.liveness.forced_reconnects_last_hour = forced_last_hour;
            if !beat.counts.is_empty() {
                c.counts = beat.counts.clone();
            }
        });
        if self.stopping.is_some() {
            return;
        }
        let facts = liveness::ConnectionFacts {
            open: beat.open,
            open_for: Duration::from_millis(beat.open_ms_ago.unwrap_or(0)),
            since_frame: beat.last_frame_ms_ago.map(Duration::from_millis),
            since_message: beat.last_message_ms_ago.map(Duration::from_millis),
        };
        let forced_ago: Vec<Duration> = self
            .liveness
            .forced
            .iter()
            .map(|t| now.duration_since(*t))
            .collect();
        let verdict = liveness::watchdog(
            &self.cfg.watchdog,
            facts,
            &forced_ago,
            self.liveness.after_forced,
        );
        let (reason, give_up) = match verdict {
            liveness::WatchdogVerdict::Fine => return,
            liveness::WatchdogVerdict::Reconnect(r) => (r, false),
            liveness::WatchdogVerdict::GiveUp(r) => (r, true),
        };
        let exit_reason = match reason {
            liveness::DeafReason::TransportInactive => ExitReason::TransportInactive,
            liveness::DeafReason::AppSilent => ExitReason::AppSilent,
        };
        self.log.emit(
            Some(&self.name),
            &Event::ConnectionDeaf {
                reason: reason.as_str(),
                action: if give_up { "give_up" } else { "reconnect" },
                forced_last_hour,
            },
        );
        let name = self.name.clone();
        let what = match reason {
            liveness::DeafReason::TransportInactive => "the server has sent nothing",
            liveness::DeafReason::AppSilent => "no message has arrived",
        };
        if give_up {
            self.alert(
                Severity::Critical,
                AlertCode::ConnectionDeaf,
                format!(
                    "connector {name}: {what} for too long again after {forced_last_hour} forced reconnects this hour; it is not reconnected any more (failed). Check the network and the account, then restart bridgekeeper"
                ),
            );
            self.begin_stop(StopCause::Fatal(exit_reason));
            return;
        }
        self.liveness.forced.push(now);
        self.log.board().update(self.index, |c| {
            c.liveness.forced_reconnects_last_hour = forced_last_hour + 1;
            c.liveness.last_forced_reason = Some(reason.as_str().to_owned());
        });
        self.alert(
            Severity::Warning,
            AlertCode::ConnectionDeaf,
            format!(
                "connector {name}: the connection says it is open but {what} for too long ({}); reconnecting",
                reason.as_str()
            ),
        );
        // `finish_exit` marks the next connection as one a forced reconnect made.
        self.begin_stop(StopCause::Reconnect(exit_reason));
    }

    pub(super) fn on_hung(&mut self, reason: liveness::HungReason) {
        let Some(pid) = self.process.as_ref().map(|p| p.pid) else {
            return;
        };
        self.log.emit(
            Some(&self.name),
            &Event::ConnectorHung {
                pid,
                reason: reason.as_str(),
            },
        );
        let name = self.name.clone();
        let why = match reason {
            liveness::HungReason::NoPingAnswer => format!(
                "did not answer a ping within {} ms",
                self.cfg.liveness.ping_timeout.as_millis()
            ),
            liveness::HungReason::Silent => format!(
                "wrote nothing for {} ms",
                self.cfg.liveness.silence.as_millis()
            ),
        };
        self.alert(
            Severity::Warning,
            AlertCode::ConnectorHung,
            format!("connector {name} (pid {pid}) {why}: it is hung; restarting it"),
        );
        self.begin_stop(StopCause::Hung);
    }
}

/// The state of the liveness check for the current process.
pub(super) struct Liveness {
    /// Forced reconnects (deaf connections), kept for an hour; survives restarts.
    pub(super) forced: Vec<Instant>,
    /// The current process was started by a forced reconnect.
    pub(super) after_forced: bool,
    pub(super) last_line: Instant,
    pub(super) last_ping: Instant,
    /// The outstanding ping and when it was queued.
    pub(super) ping: Option<(Seq, Instant)>,
    pub(super) next_check: tokio::time::Instant,
}

impl Liveness {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Self {
            forced: Vec::new(),
            after_forced: false,
            last_line: now,
            last_ping: now,
            ping: None,
            next_check: tokio::time::Instant::now(),
        }
    }

    /// A new process: everything starts from now, but the forced reconnects are remembered.
    pub(super) fn reset(&mut self) {
        let forced = std::mem::take(&mut self.forced);
        let after_forced = std::mem::take(&mut self.after_forced);
        *self = Self::new();
        self.forced = forced;
        self.after_forced = after_forced;
    }

    pub(super) fn answered(&mut self, seq: Seq) {
        if self.ping.is_some_and(|(s, _)| s == seq) {
            self.ping = None;
        }
    }
}
