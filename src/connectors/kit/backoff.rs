//! Waits between attempts that failed: growing, capped, with jitter so that many connectors
//! (or many machines) do not retry in step.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    steps: Vec<Duration>,
    next: usize,
    /// ± this fraction of each wait, at random.
    jitter: f64,
}

impl Backoff {
    /// Doubling from `initial` up to `max`.
    pub fn doubling(initial: Duration, max: Duration) -> Self {
        let mut steps = vec![initial];
        while let Some(&last) = steps.last()
            && last < max
        {
            steps.push((last * 2).min(max));
        }
        Self::steps(&steps)
    }

    /// A fixed schedule (e.g. 2, 5, 10, 30, 60 s); the last step repeats.
    pub fn steps(steps: &[Duration]) -> Self {
        Self {
            steps: if steps.is_empty() {
                vec![Duration::from_secs(1)]
            } else {
                steps.to_vec()
            },
            next: 0,
            jitter: 0.2,
        }
    }

    /// The wait before the next attempt, with jitter from `unit` (a number in 0..1).
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let base = self.steps[self.next.min(self.steps.len() - 1)];
        self.next = (self.next + 1).min(self.steps.len());
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        base.mul_f64(factor)
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        self.next_with(crate::util::random::unit())
    }

    /// After a success: the next failure waits the first step again.
    pub fn reset(&mut self) {
        self.next = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> usize {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_with_jitter_and_start_over_after_a_success() {
        let s = Duration::from_secs;
        let mut b = Backoff::doubling(s(1), s(30));
        let middle: Vec<Duration> = (0..7).map(|_| b.next_with(0.5)).collect();
        assert_eq!(middle, [1, 2, 4, 8, 16, 30, 30].map(s));
        assert_eq!(b.failures(), 6);
        b.reset();
        assert_eq!(b.next_with(0.0), Duration::from_millis(800));
        assert_eq!(b.next_with(1.0), Duration::from_millis(2400));
        let mut w = Backoff::steps(&[2, 5, 10, 30, 60].map(s));
        let waits: Vec<Duration> = (0..6).map(|_| w.next_with(0.5)).collect();
        assert_eq!(waits, [2, 5, 10, 30, 60, 60].map(s));
        for _ in 0..100 {
            let j = Backoff::steps(&[s(10)]).next_wait();
            assert!(j >= s(8) && j <= s(12), "{j:?}");
        }
    }
}
