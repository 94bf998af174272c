//! Is a running connector alive? The supervisor's own check, for every connector whatever its
//! language: it pings on an interval (the protocol's `ping`), and a connector that does not
//! answer within the timeout, or writes no line at all for the silence limit, is hung. The
//! task acts on the verdict (stop ladder, restart with reason `hung`, an alert).

use std::time::Duration;

/// The thresholds (config `connectors[].liveness`). A zero interval or silence turns that rule
/// off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessPolicy {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub silence: Duration,
}

impl Default for LivenessPolicy {
    /// A ping every 30 s answered within 10 s; two minutes without any line is hung. A healthy
    /// connector answers in milliseconds (node-bridge answers from its event loop, outside the
    /// send queue), so these only catch a connector that is really stuck, at the cost of one
    /// short line each way per 30 s.
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(10),
            silence: Duration::from_secs(120),
        }
    }
}

impl LivenessPolicy {
    pub fn is_off(&self) -> bool {
        self.ping_interval.is_zero() && self.silence.is_zero()
    }

    /// How often the task looks: often enough to see a missed answer soon after its timeout.
    pub fn check_every(&self) -> Duration {
        let shortest = [self.ping_interval, self.ping_timeout, self.silence]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(Duration::from_secs(1));
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
    }
}

/// Why a connector was found hung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HungReason {
    /// A ping went unanswered past the timeout.
    NoPingAnswer,
    /// No line at all for the silence limit.
    Silent,
}

impl HungReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoPingAnswer => "no_ping_answer",
            Self::Silent => "silent",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    SendPing,
    Hung(HungReason),
}

/// What the clock says about a ready connector. `since_line`: since its last line of any
/// kind; `ping_age`: how long the outstanding ping has waited (none outstanding: `None`);
/// `since_ping`: since the last ping was sent (or the process became ready).
pub fn assess(
    p: &LivenessPolicy,
    since_line: Duration,
    ping_age: Option<Duration>,
    since_ping: Duration,
) -> Verdict {
    if let Some(age) = ping_age
        && !p.ping_interval.is_zero()
        && age >= p.ping_timeout
    {
        return Verdict::Hung(HungReason::NoPingAnswer);
    }
    if !p.silence.is_zero() && since_line >= p.silence {
        return Verdict::Hung(HungReason::Silent);
    }
    if !p.ping_interval.is_zero() && ping_age.is_none() && since_ping >= p.ping_interval {
        return Verdict::SendPing;
    }
    Verdict::Alive
}

#[cfg(test)]
mod tests {
    use super::*;
    use HungReason::*;
    use Verdict::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_liveness_table() {
        let p = LivenessPolicy::default();
        let pings_off = LivenessPolicy {
            ping_interval: Duration::ZERO,
            ..p
        };
        let off = LivenessPolicy {
            ping_interval: Duration::ZERO,
            silence: Duration::ZERO,
            ..p
        };
        /// name, policy, since the last line, the waiting ping's age, since the last ping.
        type Row = (
            &'static str,
            LivenessPolicy,
            Duration,
            Option<Duration>,
            Duration,
            Verdict,
        );
        let rows: [Row; 10] = [
            ("just ready", p, S(0), None, S(0), Alive),
            ("interval not yet over", p, S(5), None, S(29), Alive),
            ("interval over: ping", p, S(5), None, S(30), SendPing),
            (
                "a ping is waiting, in time",
                p,
                S(5),
                Some(S(9)),
                S(31),
                Alive,
            ),
            (
                "the ping timed out",
                p,
                S(15),
                Some(S(10)),
                S(40),
                Hung(NoPingAnswer),
            ),
            (
                "lines flow but no answer",
                p,
                S(0),
                Some(S(11)),
                S(41),
                Hung(NoPingAnswer),
            ),
            ("silent too long", p, S(120), None, S(10), Hung(Silent)),
            (
                "pings off: only silence",
                pings_off,
                S(119),
                None,
                S(500),
                Alive,
            ),
            (
                "pings off, silent",
                pings_off,
                S(120),
                Some(S(99)),
                S(500),
                Hung(Silent),
            ),
            (
                "everything off",
                off,
                S(9999),
                Some(S(9999)),
                S(9999),
                Alive,
            ),
        ];
        for (name, policy, since_line, ping_age, since_ping, want) in rows {
            assert_eq!(
                assess(&policy, since_line, ping_age, since_ping),
                want,
                "{name}"
            );
        }
        assert!(off.is_off() && !p.is_off());
        assert_eq!(p.check_every(), Duration::from_millis(2500));
    }
}

/// When an open connection counts as deaf (config `connectors[].liveness`), judged from the
/// connector's heartbeats. A zero duration turns that rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogPolicy {
    /// No frame at all from the network's server this long while open.
    pub transport_inactive: Duration,
    /// No application message this long while open (off by default: a quiet account is
    /// normal).
    pub app_silent: Duration,
    /// The same, measured from the reconnect, right after a forced reconnect (0: `app_silent`).
    pub app_silent_after_reconnect: Duration,
    /// At least this long between two forced reconnects.
    pub cooldown: Duration,
    /// More forced reconnects than this within an hour: the connector is failed, not looped.
    pub max_per_hour: u32,
}

impl Default for WatchdogPolicy {
    fn default() -> Self {
        Self {
            transport_inactive: Duration::from_secs(300),
            app_silent: Duration::ZERO,
            app_silent_after_reconnect: Duration::ZERO,
            cooldown: Duration::from_secs(60),
            max_per_hour: 3,
        }
    }
}

/// Why an open connection was taken for deaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeafReason {
    TransportInactive,
    AppSilent,
}

impl DeafReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportInactive => "transport_inactive",
            Self::AppSilent => "app_silent",
        }
    }
}

/// What one heartbeat says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionFacts {
    pub open: bool,
    /// Since the connection opened.
    pub open_for: Duration,
    /// Since the last server frame (`None`: none since it opened).
    pub since_frame: Option<Duration>,
    /// Since the last application message (`None`: none since it opened).
    pub since_message: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogVerdict {
    Fine,
    /// Force a reconnect (the connector is restarted).
    Reconnect(DeafReason),
    /// Deaf again past the hourly cap: stop trying, mark it failed.
    GiveUp(DeafReason),
}

/// The watchdog. `forced_ago`: how long ago each forced reconnect of the last hour was, newest
/// last; `after_forced`: this connection is the one a forced reconnect made. Idle times count
/// from the connection's own opening, so a reconnect always starts them afresh.
pub fn watchdog(
    p: &WatchdogPolicy,
    c: ConnectionFacts,
    forced_ago: &[Duration],
    after_forced: bool,
) -> WatchdogVerdict {
    if !c.open {
        return WatchdogVerdict::Fine;
    }
    let idle = |since: Option<Duration>| since.unwrap_or(c.open_for).min(c.open_for);
    let app_limit = if after_forced && !p.app_silent_after_reconnect.is_zero() {
        p.app_silent_after_reconnect
    } else {
        p.app_silent
    };
    let reason = if !p.transport_inactive.is_zero() && idle(c.since_frame) >= p.transport_inactive {
        DeafReason::TransportInactive
    } else if !app_limit.is_zero() && idle(c.since_message) >= app_limit {
        DeafReason::AppSilent
    } else {
        return WatchdogVerdict::Fine;
    };
    let hour = Duration::from_secs(3600);
    let in_hour = forced_ago.iter().filter(|ago| **ago < hour).count();
    if in_hour >= p.max_per_hour as usize {
        return WatchdogVerdict::GiveUp(reason);
    }
    if forced_ago.iter().any(|ago| *ago < p.cooldown) {
        return WatchdogVerdict::Fine;
    }
    WatchdogVerdict::Reconnect(reason)
}

#[cfg(test)]
mod watchdog_tests {
    use super::*;
    use WatchdogVerdict::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn open(open_for: u64, frame: Option<u64>, message: Option<u64>) -> ConnectionFacts {
        ConnectionFacts {
            open: true,
            open_for: S(open_for),
            since_frame: frame.map(S),
            since_message: message.map(S),
        }
    }

    #[test]
    fn the_watchdog_table() {
        let p = WatchdogPolicy::default();
        let app = WatchdogPolicy {
            app_silent: S(3600),
            app_silent_after_reconnect: S(600),
            ..p
        };
        type Row = (
            &'static str,
            WatchdogPolicy,
            ConnectionFacts,
            Vec<Duration>,
            bool,
            WatchdogVerdict,
        );
        let rows: Vec<Row> = vec![
            (
                "frames flow",
                p,
                open(9999, Some(10), Some(9000)),
                vec![],
                false,
                Fine,
            ),
            (
                "not open: not judged",
                p,
                ConnectionFacts {
                    open: false,
                    ..open(9999, None, None)
                },
                vec![],
                false,
                Fine,
            ),
            (
                "server silent 5 min",
                p,
                open(9999, Some(300), None),
                vec![],
                false,
                Reconnect(DeafReason::TransportInactive),
            ),
            (
                "no frame since a fresh open, not yet",
                p,
                open(200, None, None),
                vec![],
                false,
                Fine,
            ),
            (
                "no frame since opening 5 min ago",
                p,
                open(300, None, None),
                vec![],
                false,
                Reconnect(DeafReason::TransportInactive),
            ),
            (
                "quiet account, app_silent off",
                p,
                open(99_999, Some(1), Some(99_000)),
                vec![],
                false,
                Fine,
            ),
            (
                "app silent past its limit",
                app,
                open(99_999, Some(1), Some(3600)),
                vec![],
                false,
                Reconnect(DeafReason::AppSilent),
            ),
            // The idle timer counts from this connection's opening: an old last message from
            // before the reconnect cannot trigger another at once (OpenClaw's reconnect loop).
            (
                "after a reconnect the timer restarts",
                app,
                open(10, Some(1), Some(5000)),
                vec![S(12)],
                true,
                Fine,
            ),
            (
                "after a reconnect: the shorter limit",
                app,
                open(600, Some(1), None),
                vec![S(700)],
                true,
                Reconnect(DeafReason::AppSilent),
            ),
            (
                "in the cooldown: wait",
                p,
                open(9999, Some(400), None),
                vec![S(30)],
                false,
                Fine,
            ),
            (
                "past the hourly cap: give up",
                p,
                open(9999, Some(400), None),
                vec![S(3000), S(2000), S(1000)],
                false,
                GiveUp(DeafReason::TransportInactive),
            ),
            (
                "an old reconnect does not count",
                p,
                open(9999, Some(400), None),
                vec![S(4000), S(2000), S(1000)],
                false,
                Reconnect(DeafReason::TransportInactive),
            ),
        ];
        for (name, policy, facts, forced, after, want) in rows {
            assert_eq!(watchdog(&policy, facts, &forced, after), want, "{name}");
        }
    }
}
