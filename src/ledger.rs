//! The message ledger: per connector, every inbound message ends in exactly one outcome, so
//! `received = delivered + paired + replied + ignored + failed` holds at every moment (the
//! receive and its outcome are recorded under one lock, see `events::EventLog::decision`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why a message that was received could not be handed on. Closed list; names are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The gateway link closed before the message could be handed to it.
    GatewayClosed,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GatewayClosed => "gateway_closed",
        }
    }
}

/// The recorded end of one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to the gateway link.
    Delivered,
    Failed(FailReason),
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed(_) => "failed",
        }
    }

    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::Delivered => None,
            Self::Failed(r) => Some(r.as_str()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounts {
    pub received: u64,
    pub delivered: u64,
    pub paired: u64,
    pub replied: u64,
    /// Ignored messages by reason.
    #[serde(default)]
    pub ignored: BTreeMap<String, u64>,
    /// Failed messages by reason.
    #[serde(default)]
    pub failed: BTreeMap<String, u64>,
}

impl LedgerCounts {
    pub fn record(&mut self, outcome: Outcome) {
        self.received += 1;
        match outcome {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Failed(r) => *self.failed.entry(r.as_str().to_owned()).or_default() += 1,
        }
    }

    /// A message counted as delivered turned out not to reach the gateway after all.
    pub fn retract_delivery(&mut self, reason: FailReason) {
        self.delivered = self.delivered.saturating_sub(1);
        *self.failed.entry(reason.as_str().to_owned()).or_default() += 1;
    }

    pub fn ignored_total(&self) -> u64 {
        self.ignored.values().sum()
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// `received` minus every outcome: zero when the ledger balances.
    pub fn unaccounted(&self) -> i128 {
        self.received as i128
            - (self.delivered
                + self.paired
                + self.replied
                + self.ignored_total()
                + self.failed_total()) as i128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_keeps_the_ledger_balanced() {
        let mut l = LedgerCounts::default();
        for i in 0..10 {
            l.record(if i % 3 == 0 {
                Outcome::Failed(FailReason::GatewayClosed)
            } else {
                Outcome::Delivered
            });
            assert_eq!(l.unaccounted(), 0);
        }
        l.retract_delivery(FailReason::GatewayClosed);
        assert_eq!(l.unaccounted(), 0);
        assert_eq!((l.received, l.delivered, l.failed_total()), (10, 5, 5));
    }
}
