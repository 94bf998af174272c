//! What happens after a connector process ends: a pure function of the policy, the restart
//! history, how it ended, how long it ran, the time and a random sample. No I/O, no clock.
//!
//! | exit class                       | next                                                   |
//! |----------------------------------|--------------------------------------------------------|
//! | `RestartNow` (exit code 10)      | restart after 0 ms (backoff step not increased)        |
//! | `Backoff` (crash, 11, signal, …) | restart after `initial × multiplier^n ± jitter`, capped |
//! | `LoggedOut` (12 / status report) | `needs_relink`, no restart                             |
//! | `Conflict` (13 / status report)  | `conflict`, no restart                                 |
//! | `Fatal` (14, protocol mismatch)  | `failed`, no restart                                   |
//! | `NeedsToken` (15)                | `needs_token`, no restart                              |
//!
//! Before any restart: if `max_restarts` restarts already happened within `window`, the
//! connector goes to `failed` instead (restart-intensity limit). `n` (consecutive failures)
//! goes back to 0 when the process had run for at least `healthy_after`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub multiplier: f64,
    /// Fraction of the delay added or removed at random (0.2 = ±20 %), so that many
    /// supervisors restarting after a shared outage do not reconnect in lockstep.
    pub jitter: f64,
    pub healthy_after: Duration,
    pub max_restarts: u32,
    pub window: Duration,
}

/// How a connector process ended, as the supervisor classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    RestartNow,
    Backoff,
    LoggedOut,
    Conflict,
    Fatal,
    NeedsToken,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Restart {
        after: Duration,
    },
    /// The restart-intensity limit tripped.
    RestartLimit {
        restarts: u32,
        window: Duration,
    },
    NeedsRelink,
    Conflict,
    Fatal,
    NeedsToken,
}

/// Restart history of one connector (owned by its task).
#[derive(Debug, Default, Clone)]
pub struct RestartHistory {
    /// Times of restarts still inside the window.
    recent: VecDeque<Instant>,
    /// Consecutive unhealthy exits: the backoff exponent.
    consecutive: u32,
    /// Restarts since the supervisor started (for `status`).
    pub total: u32,
}

impl RestartPolicy {
    /// Decides what follows an exit. `random` is uniform in `[0, 1)`.
    pub fn next(
        &self,
        history: &mut RestartHistory,
        class: ExitClass,
        uptime: Duration,
        now: Instant,
        random: f64,
    ) -> Next {
        match class {
            ExitClass::LoggedOut => return Next::NeedsRelink,
            ExitClass::NeedsToken => return Next::NeedsToken,
            ExitClass::Conflict => return Next::Conflict,
            ExitClass::Fatal => return Next::Fatal,
            ExitClass::RestartNow | ExitClass::Backoff => {}
        }
        while history
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            history.recent.pop_front();
        }
        if history.recent.len() as u32 >= self.max_restarts {
            return Next::RestartLimit {
                restarts: history.recent.len() as u32,
                window: self.window,
            };
        }
        if uptime >= self.healthy_after {
            history.consecutive = 0;
        }
        let after = match class {
            ExitClass::RestartNow => Duration::ZERO,
            _ => {
                let delay = self.backoff(history.consecutive, random);
                history.consecutive = history.consecutive.saturating_add(1);
                delay
            }
        };
        history.recent.push_back(now);
        history.total += 1;
        Next::Restart { after }
    }

    /// `initial × multiplier^step`, capped at `max_backoff`, then ± `jitter`.
    pub fn backoff(&self, step: u32, random: f64) -> Duration {
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.powi(step.min(64) as i32);
        let capped = base.min(self.max_backoff.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * random - 1.0);
        Duration::from_secs_f64((capped * spread).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            multiplier: 2.0,
            jitter: 0.0,
            healthy_after: Duration::from_secs(10),
            max_restarts: 3,
            window: Duration::from_secs(60),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        let mut delays = Vec::new();
        let p = RestartPolicy {
            max_restarts: 100,
            ..p
        };
        for i in 0..6 {
            match p.next(&mut h, ExitClass::Backoff, ms(5), t0 + ms(i), 0.5) {
                Next::Restart { after } => delays.push(after.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RestartPolicy {
            jitter: 0.2,
            ..policy()
        };
        assert_eq!(p.backoff(0, 0.0), ms(80));
        assert_eq!(p.backoff(0, 0.5), ms(100));
        assert!(p.backoff(0, 0.999_999) <= ms(120));
    }

    #[test]
    fn a_healthy_run_resets_the_backoff() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        p.next(&mut h, ExitClass::Backoff, ms(1), t0, 0.5);
        p.next(&mut h, ExitClass::Backoff, ms(1), t0, 0.5);
        let after_healthy = p.next(&mut h, ExitClass::Backoff, Duration::from_secs(11), t0, 0.5);
        assert_eq!(after_healthy, Next::Restart { after: ms(100) });
    }

    #[test]
    fn the_intensity_limit_trips_after_max_restarts_in_the_window() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                p.next(&mut h, ExitClass::Backoff, ms(1), t0 + ms(i), 0.5),
                Next::Restart { .. }
            ));
        }
        assert_eq!(
            p.next(&mut h, ExitClass::Backoff, ms(1), t0 + ms(10), 0.5),
            Next::RestartLimit {
                restarts: 3,
                window: Duration::from_secs(60)
            }
        );
        // Once the old restarts leave the window, restarting is allowed again.
        assert!(matches!(
            p.next(
                &mut h,
                ExitClass::Backoff,
                ms(1),
                t0 + Duration::from_secs(61),
                0.5
            ),
            Next::Restart { .. }
        ));
    }

    #[test]
    fn restart_now_skips_the_delay_but_counts_towards_the_limit() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                p.next(&mut h, ExitClass::RestartNow, ms(1), t0, 0.5),
                Next::Restart {
                    after: Duration::ZERO
                }
            );
        }
        assert!(matches!(
            p.next(&mut h, ExitClass::RestartNow, ms(1), t0, 0.5),
            Next::RestartLimit { .. }
        ));
    }

    #[test]
    fn terminal_classes_are_never_restarted() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert_eq!(
            p.next(&mut h, ExitClass::LoggedOut, ms(1), t0, 0.5),
            Next::NeedsRelink
        );
        assert_eq!(
            p.next(&mut h, ExitClass::Conflict, ms(1), t0, 0.5),
            Next::Conflict
        );
        assert_eq!(
            p.next(&mut h, ExitClass::Fatal, ms(1), t0, 0.5),
            Next::Fatal
        );
        assert_eq!(h.total, 0);
    }
}
