//! Outbound pacing: how fast one account may send, so that an agent answering many chats at
//! once does not look like spam to WhatsApp. Pure: the clock and the jitter come in as
//! arguments; the connector task holds the next send until `ready_at`.
//!
//! The defaults are conservative choices, not measured thresholds (WhatsApp publishes none):
//! community guidance around Baileys, WAHA and OpenWA is to avoid bursts to many chats, to keep
//! a few seconds of random delay between messages to different people, and to stay well under
//! a message a second overall. A single conversation is not slowed: a short burst to one chat
//! goes out at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The limits (config `connectors[].pacing`). `per_minute: 0` turns pacing off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingPolicy {
    /// Sends per minute for the whole account, with up to `burst` at once.
    pub per_minute: u32,
    pub burst: u32,
    /// Sends per minute to one chat, with up to `chat_burst` at once.
    pub chat_per_minute: u32,
    pub chat_burst: u32,
    /// Between sends to different chats: a gap drawn between these two.
    pub gap_min: Duration,
    pub gap_max: Duration,
    /// Show "typing…" before a text, for a time that grows with its length (off by default).
    pub simulate_typing: bool,
    pub typing_per_char: Duration,
    pub typing_max: Duration,
}

impl Default for PacingPolicy {
    fn default() -> Self {
        Self {
            simulate_typing: false,
            // About 40 characters a second, never more than 4 s.
            typing_per_char: Duration::from_millis(25),
            typing_max: Duration::from_secs(4),
            per_minute: 20,
            burst: 5,
            chat_per_minute: 12,
            chat_burst: 5,
            gap_min: Duration::from_millis(1_000),
            gap_max: Duration::from_millis(3_000),
        }
    }
}

impl PacingPolicy {
    pub fn is_off(&self) -> bool {
        self.per_minute == 0
    }

    /// How long "typing…" shows before a text of `chars` characters (zero when off).
    pub fn typing_time(&self, chars: usize) -> Duration {
        if !self.simulate_typing {
            return Duration::ZERO;
        }
        self.typing_per_char
            .saturating_mul(chars.min(u32::MAX as usize) as u32)
            .min(self.typing_max)
    }
}

/// A token bucket: `rate` tokens a minute, holding at most `capacity`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(capacity),
            at: now,
        }
    }

    fn level(&self, per_minute: u32, capacity: u32, now: Instant) -> f64 {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() * f64::from(per_minute) / 60.0;
        (self.tokens + refill).min(f64::from(capacity))
    }

    /// When one token will be there.
    fn ready_at(&self, per_minute: u32, capacity: u32, now: Instant) -> Instant {
        let level = self.level(per_minute, capacity, now);
        if level >= 1.0 || per_minute == 0 {
            return now;
        }
        now + Duration::from_secs_f64((1.0 - level) * 60.0 / f64::from(per_minute))
    }

    fn take(&mut self, per_minute: u32, capacity: u32, now: Instant) {
        self.tokens = (self.level(per_minute, capacity, now) - 1.0).max(0.0);
        self.at = now;
    }
}

/// Chats remembered for their own bucket; the least recently used are forgotten (a forgotten
/// chat starts with a full bucket again, which only errs on the side of a single conversation).
const CHATS_REMEMBERED: usize = 1_000;

/// The pacing state of one account.
#[derive(Debug, Default)]
pub struct Pacer {
    account: Option<Bucket>,
    chats: HashMap<String, Bucket>,
    /// The last send: when, and to which chat.
    last: Option<(Instant, String)>,
    /// The gap drawn for the next send to another chat (drawn once, so waiting does not
    /// re-roll it).
    gap: Option<Duration>,
}

impl Pacer {
    /// When a send to `chat` may go. `jitter` gives a number uniform in [0, 1) that draws the
    /// gap between different chats; it is called only when a gap is drawn (once per send to
    /// another chat), not on every look.
    pub fn ready_at(
        &mut self,
        p: &PacingPolicy,
        chat: &str,
        now: Instant,
        jitter: impl FnOnce() -> f64,
    ) -> Instant {
        if p.is_off() {
            return now;
        }
        let account = self
            .account
            .unwrap_or_else(|| Bucket::full(p.burst.max(1), now))
            .ready_at(p.per_minute, p.burst.max(1), now);
        let per_chat = self.chats.get(chat).map_or(now, |b| {
            b.ready_at(p.chat_per_minute, p.chat_burst.max(1), now)
        });
        let after_gap = match &self.last {
            Some((at, last_chat)) if last_chat != chat => {
                let spread = p.gap_max.saturating_sub(p.gap_min);
                let gap = *self
                    .gap
                    .get_or_insert_with(|| p.gap_min + spread.mul_f64(jitter().clamp(0.0, 1.0)));
                *at + gap
            }
            _ => now,
        };
        account.max(per_chat).max(after_gap).max(now)
    }

    /// A send to `chat` went out at `now`.
    pub fn record(&mut self, p: &PacingPolicy, chat: &str, now: Instant) {
        if p.is_off() {
            return;
        }
        let capacity = p.burst.max(1);
        let mut account = self.account.unwrap_or_else(|| Bucket::full(capacity, now));
        account.take(p.per_minute, capacity, now);
        self.account = Some(account);
        if self.chats.len() >= CHATS_REMEMBERED && !self.chats.contains_key(chat) {
            let oldest = self
                .chats
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.chats.remove(&k);
            }
        }
        let chat_capacity = p.chat_burst.max(1);
        let bucket = self
            .chats
            .entry(chat.to_owned())
            .or_insert_with(|| Bucket::full(chat_capacity, now));
        bucket.take(p.chat_per_minute, chat_capacity, now);
        self.last = Some((now, chat.to_owned()));
        self.gap = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PacingPolicy {
        PacingPolicy {
            per_minute: 60, // one a second
            burst: 3,
            chat_per_minute: 30, // one every two seconds per chat
            chat_burst: 2,
            gap_min: Duration::from_millis(500),
            gap_max: Duration::from_millis(1_500),
            ..PacingPolicy::default()
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Sends `chats` in order, each as soon as allowed, from `t0`; returns the send times in ms.
    fn schedule(p: &PacingPolicy, chats: &[&str], jitter: f64) -> Vec<u64> {
        let t0 = Instant::now();
        let mut pacer = Pacer::default();
        let mut now = t0;
        chats
            .iter()
            .map(|chat| {
                now = pacer.ready_at(p, chat, now, || jitter);
                pacer.record(p, chat, now);
                now.duration_since(t0).as_millis() as u64
            })
            .collect()
    }

    #[test]
    fn the_pacing_table() {
        let p = policy();
        /// name, policy, the chats in order, the jitter, the send times (ms).
        type Row = (&'static str, PacingPolicy, Vec<&'static str>, f64, Vec<u64>);
        let rows: [Row; 6] = [
            (
                "a short reply to one chat goes at once",
                p,
                vec!["a", "a"],
                0.0,
                vec![0, 0],
            ),
            (
                "one chat past its burst waits for its own bucket",
                p,
                vec!["a", "a", "a"],
                0.0,
                vec![0, 0, 2_000],
            ),
            (
                "different chats: the jittered gap (low end)",
                p,
                vec!["a", "b", "c"],
                0.0,
                vec![0, 500, 1_000],
            ),
            (
                "different chats: the jittered gap (high end)",
                p,
                vec!["a", "b"],
                0.999,
                vec![0, 1_499],
            ),
            (
                "the account's burst, then one a second",
                PacingPolicy {
                    gap_min: Duration::ZERO,
                    gap_max: Duration::ZERO,
                    ..p
                },
                vec!["a", "b", "c", "d", "e"],
                0.0,
                vec![0, 0, 0, 1_000, 2_000],
            ),
            (
                "off",
                PacingPolicy { per_minute: 0, ..p },
                vec!["a", "b", "a", "c"],
                0.5,
                vec![0, 0, 0, 0],
            ),
        ];
        for (name, policy, chats, jitter, want) in rows {
            assert_eq!(schedule(&policy, &chats, jitter), want, "{name}");
        }
    }

    #[test]
    fn typing_time_grows_with_the_text_up_to_a_limit() {
        let on = PacingPolicy {
            simulate_typing: true,
            ..policy()
        };
        assert_eq!(policy().typing_time(100), Duration::ZERO, "off by default");
        assert_eq!(on.typing_time(0), Duration::ZERO);
        assert_eq!(on.typing_time(40), MS(1_000));
        assert_eq!(on.typing_time(100_000), Duration::from_secs(4));
    }

    #[test]
    fn a_wait_does_not_re_roll_the_gap() {
        let p = policy();
        let t0 = Instant::now();
        let mut pacer = Pacer::default();
        pacer.record(&p, "a", t0);
        let first = pacer.ready_at(&p, "b", t0, || 0.0);
        let again = pacer.ready_at(&p, "b", t0 + MS(100), || 0.99);
        assert_eq!(first, again);
    }

    #[test]
    fn forgotten_chats_keep_memory_bounded() {
        let p = PacingPolicy {
            per_minute: 1_000_000,
            burst: 1_000_000,
            gap_min: Duration::ZERO,
            gap_max: Duration::ZERO,
            ..policy()
        };
        let mut pacer = Pacer::default();
        let t0 = Instant::now();
        for i in 0..CHATS_REMEMBERED + 50 {
            pacer.record(&p, &format!("chat{i}"), t0 + MS(i as u64));
        }
        assert_eq!(pacer.chats.len(), CHATS_REMEMBERED);
    }
}
