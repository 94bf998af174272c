//! What the benchmarks that run a connector beside WhatsApp share (`scripts/bench/*.sh` run
//! them; they are ignored otherwise): the latency rounds, side by side in one run, and the
//! wait for a burst to drain.

use std::time::{Duration, Instant};

use super::Latencies;
use super::daemon::Daemon;

/// Sends one message with the given text to the account, through one platform's fake.
pub type Inject<'a> = &'a dyn Fn(&str);

/// Rounds of the latency measurement, and the messages in a burst.
pub const ROUNDS: usize = 100;
pub const BURST: usize = 1000;

/// Inject → gateway latency over `ROUNDS` rounds, each round one message through each of
/// `injectors` in turn (alternating, so each pair is measured under the same load); reported
/// as `<bench> bench: inject → gateway, <name>: …`.
pub fn latency_side_by_side(d: &mut Daemon, bench: &str, injectors: &[(&str, Inject)]) {
    let mut lat = Latencies::default();
    for i in 0..ROUNDS {
        for (name, inject) in injectors {
            let text = format!("{name}-lat-{i}");
            lat.time(name, || {
                inject(&text);
                d.wait(&text, |v| {
                    v["type"] == "inbound" && v["message"]["text"] == text.as_str()
                });
            });
        }
        d.seen.clear();
    }
    lat.report(&format!("{bench} bench"), "inject → gateway");
}

/// Collects events until `n` inbound messages whose text contains `marker` are in (at most two
/// minutes); how many are.
pub fn drain(d: &mut Daemon, marker: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    let count = |d: &Daemon| {
        d.seen
            .iter()
            .filter(|v| {
                v["type"] == "inbound"
                    && v["message"]["text"]
                        .as_str()
                        .is_some_and(|t| t.contains(marker))
            })
            .count()
    };
    while count(d) < n && Instant::now() < deadline {
        d.settle(Duration::from_millis(50));
    }
    count(d)
}
