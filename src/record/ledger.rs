//! The message ledger: per connector, every inbound message ends in exactly one outcome, so
//! `received = delivered + paired + replied + ignored + failed` holds at every moment (the
//! receive and its outcome are recorded under one lock, see `record::log::EventLog::decision`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::Reason;

/// Why a message that was received could not be handled as decided. Closed list; stable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The gateway link closed before the message could be handed to it.
    GatewayClosed,
    /// The pairing store could not be read or written (see the alert for the file).
    PairingStore,
    /// The send policy denies the pairing code or reply this message called for.
    SendDenied,
    /// The connector's command queue had no room for the pairing code or reply.
    SendQueueFull,
    /// The legacy HTTP API's inbound queue was full (nobody polled `/messages`).
    HttpQueueFull,
    /// The connector's line was longer than its `max_line_bytes`.
    TooLong,
    /// Answered to a `GET /messages` whose client neither acknowledged nor refused it.
    HttpUnconfirmed,
    /// The relay buffer was full (no gateway acked for a long time).
    RelayBufferFull,
    /// Still in the drop-in API's inbox when bridgekeeper stopped: never polled.
    HttpNotPolled,
    /// A route's direct delivery names a platform no connector serves, or its queue was full.
    DeliverUnavailable,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GatewayClosed => "gateway_closed",
            Self::PairingStore => "pairing_store_error",
            Self::SendDenied => "send_denied",
            Self::SendQueueFull => "send_queue_full",
            Self::HttpQueueFull => "http_queue_full",
            Self::TooLong => "too_long",
            Self::HttpUnconfirmed => "http_unconfirmed",
            Self::RelayBufferFull => "relay_buffer_full",
            Self::HttpNotPolled => "http_not_polled",
            Self::DeliverUnavailable => "deliver_unavailable",
        }
    }
}

/// The recorded end of one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to the gateway link, and why it was let in.
    Delivered(Reason),
    /// An unknown sender was sent a pairing code.
    PairingCodeSent,
    /// A fixed reply was sent instead (pairing locked, too many pending), and why.
    ReplySent(Reason),
    Ignored(Reason),
    Failed(FailReason),
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Delivered(_) => "delivered",
            Self::PairingCodeSent => "pairing_code_sent",
            Self::ReplySent(_) => "reply_sent",
            Self::Ignored(_) => "ignored",
            Self::Failed(_) => "failed",
        }
    }

    /// Why: the policy's reason, or the failure's.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Delivered(r) | Self::ReplySent(r) | Self::Ignored(r) => r.as_str(),
            Self::PairingCodeSent => Reason::UnknownSender.as_str(),
            Self::Failed(f) => f.as_str(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounts {
    pub received: u64,
    pub delivered: u64,
    /// With the relay: let in by the policy and kept in the relay buffer, not yet acked by a
    /// gateway. An ack moves it to `delivered`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub awaiting_ack: u64,
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
            Outcome::Delivered(_) => self.delivered += 1,
            Outcome::PairingCodeSent => self.paired += 1,
            Outcome::ReplySent(_) => self.replied += 1,
            Outcome::Ignored(r) => *self.ignored.entry(r.as_str().to_owned()).or_default() += 1,
            Outcome::Failed(r) => *self.failed.entry(r.as_str().to_owned()).or_default() += 1,
        }
    }

    /// A message counted as delivered turned out not to reach the gateway after all.
    pub fn retract_delivery(&mut self, reason: FailReason) {
        self.delivered = self.delivered.saturating_sub(1);
        *self.failed.entry(reason.as_str().to_owned()).or_default() += 1;
    }

    /// A delivered message went into the relay buffer: delivered only once a gateway acks it.
    pub fn hold_for_ack(&mut self) {
        self.delivered = self.delivered.saturating_sub(1);
        self.awaiting_ack += 1;
    }

    /// A gateway acked a message held for it.
    pub fn acked(&mut self) {
        self.awaiting_ack = self.awaiting_ack.saturating_sub(1);
        self.delivered += 1;
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
                + self.awaiting_ack
                + self.paired
                + self.replied
                + self.ignored_total()
                + self.failed_total()) as i128
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcome_strategy() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Delivered(Reason::OpenPolicy)),
            Just(Outcome::PairingCodeSent),
            Just(Outcome::ReplySent(Reason::PairingLocked)),
            proptest::sample::select(Reason::ALL.to_vec()).prop_map(Outcome::Ignored),
            proptest::sample::select(vec![
                FailReason::GatewayClosed,
                FailReason::PairingStore,
                FailReason::SendDenied,
                FailReason::SendQueueFull,
                FailReason::HttpQueueFull,
            ])
            .prop_map(Outcome::Failed),
        ]
    }

    proptest! {
        #[test]
        fn any_sequence_of_outcomes_and_retractions_balances(
            steps in proptest::collection::vec((outcome_strategy(), any::<bool>()), 0..200)
        ) {
            let mut l = LedgerCounts::default();
            for (outcome, retract) in steps {
                l.record(outcome);
                if retract && outcome == Outcome::Delivered(Reason::OpenPolicy) {
                    l.retract_delivery(FailReason::GatewayClosed);
                }
                prop_assert_eq!(l.unaccounted(), 0);
            }
        }
    }

    #[test]
    fn every_record_keeps_the_ledger_balanced() {
        let mut l = LedgerCounts::default();
        for i in 0..10 {
            l.record(if i % 3 == 0 {
                Outcome::Failed(FailReason::GatewayClosed)
            } else {
                Outcome::Delivered(Reason::OpenPolicy)
            });
            assert_eq!(l.unaccounted(), 0);
        }
        l.retract_delivery(FailReason::GatewayClosed);
        assert_eq!(l.unaccounted(), 0);
        assert_eq!((l.received, l.delivered, l.failed_total()), (10, 5, 5));
    }
}
