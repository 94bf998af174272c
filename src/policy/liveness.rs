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
