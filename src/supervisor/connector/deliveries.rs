//! Where the gateway's answers to a routed chat go (a webhook delivery's `deliver` target):
//! remembered when the message is delivered, for as long as Hermes keeps its own delivery
//! info (an hour), and at most `CAPACITY` chats, the oldest forgotten first.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bridge_protocol::message::Deliver;

pub const TTL: Duration = Duration::from_secs(3600);
pub const CAPACITY: usize = 20_000;

#[derive(Default)]
pub struct Deliveries {
    targets: HashMap<String, (Instant, Deliver)>,
    order: VecDeque<(Instant, String)>,
}

impl Deliveries {
    pub fn remember(&mut self, chat: &str, target: Deliver, now: Instant) {
        self.forget_old(now);
        if self.targets.len() >= CAPACITY
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.targets.remove(&oldest);
        }
        self.targets.insert(chat.to_owned(), (now, target));
        self.order.push_back((now, chat.to_owned()));
    }

    /// The target of `chat`, if it was remembered within the TTL.
    pub fn target(&self, chat: &str, now: Instant) -> Option<&Deliver> {
        let (at, target) = self.targets.get(chat)?;
        (now.duration_since(*at) < TTL).then_some(target)
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some((at, chat)) = self.order.front() {
            if now.duration_since(*at) < TTL {
                break;
            }
            // A chat remembered again later has a newer stamp: keep that one.
            if self.targets.get(chat).is_some_and(|(t, _)| t == at) {
                self.targets.remove(chat);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(chat: &str) -> Deliver {
        Deliver {
            platform: "telegram".into(),
            chat: chat.into(),
            thread: None,
            direct: false,
        }
    }

    #[test]
    fn a_target_is_kept_for_the_ttl_and_the_newest_capacity() {
        let t0 = Instant::now();
        let mut d = Deliveries::default();
        d.remember("webhook:a:1", to("42"), t0);
        assert_eq!(d.target("webhook:a:1", t0).unwrap().chat, "42");
        assert!(d.target("webhook:a:2", t0).is_none());
        assert!(d.target("webhook:a:1", t0 + TTL).is_none());
        d.remember("webhook:a:2", to("43"), t0 + TTL);
        assert!(d.targets.len() == 1, "the expired one was dropped");
        for i in 0..CAPACITY + 5 {
            d.remember(&format!("c{i}"), to("1"), t0 + TTL);
        }
        assert_eq!(d.targets.len(), CAPACITY);
        assert!(d.target("c0", t0 + TTL).is_none());
        assert!(d.target(&format!("c{}", CAPACITY + 4), t0 + TTL).is_some());
    }
}
