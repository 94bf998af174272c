//! The connector's side of the gateway channel: events wait here, in order, while the channel
//! is full. While anything waits, the task does not read the connector's stdout, so a slow
//! gateway slows the connector instead of growing memory. When the gateway is gone, events
//! cannot be delivered: the outbox hands back the inbound messages among them, whose
//! delivery must be retracted in the ledger.

use std::collections::VecDeque;

use bridge_protocol::gateway::GatewayEvent;
use tokio::sync::mpsc;

pub struct Outbox {
    gateway: mpsc::Sender<GatewayEvent>,
    /// Events waiting for room in the channel, oldest first. Inbound messages among them are
    /// already counted delivered.
    waiting: VecDeque<GatewayEvent>,
    closed: bool,
    /// Within a batch of lines: events gather here and go out at its end (one wake-up of the
    /// writer per batch, not per line).
    batching: bool,
}

/// Ids of inbound messages that can no longer reach the gateway.
pub type Undeliverable = Vec<String>;

impl Outbox {
    pub fn new(gateway: mpsc::Sender<GatewayEvent>) -> Self {
        Self {
            gateway,
            waiting: VecDeque::new(),
            closed: false,
            batching: false,
        }
    }

    /// Events are waiting for room (stdout is not read meanwhile).
    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// A clone of the channel's sender, to wait for room outside `&mut self`.
    pub fn sender(&self) -> mpsc::Sender<GatewayEvent> {
        self.gateway.clone()
    }

    pub fn begin_batch(&mut self) {
        self.batching = true;
    }

    pub fn end_batch(&mut self) -> Undeliverable {
        self.batching = false;
        self.send_waiting()
    }

    pub fn push(&mut self, event: GatewayEvent) -> Undeliverable {
        if self.closed {
            return inbound_id(event).into_iter().collect();
        }
        let was_empty = self.waiting.is_empty();
        self.waiting.push_back(event);
        if was_empty && !self.batching {
            return self.send_waiting();
        }
        Vec::new()
    }

    /// Moves waiting events into the channel while it has room.
    pub fn send_waiting(&mut self) -> Undeliverable {
        while let Some(event) = self.waiting.pop_front() {
            match self.gateway.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.waiting.push_front(event);
                    return Vec::new();
                }
                Err(mpsc::error::TrySendError::Closed(event)) => {
                    self.waiting.push_front(event);
                    return self.close();
                }
            }
        }
        Vec::new()
    }

    /// The channel has room (`permit`), or is gone (`None`).
    pub fn flush(&mut self, permit: Option<mpsc::OwnedPermit<GatewayEvent>>) -> Undeliverable {
        let Some(permit) = permit else {
            return self.close();
        };
        let Some(first) = self.waiting.pop_front() else {
            return Vec::new();
        };
        permit.send(first);
        self.send_waiting()
    }

    /// The gateway is gone: nothing waiting can be delivered.
    pub fn close(&mut self) -> Undeliverable {
        self.closed = true;
        self.waiting.drain(..).filter_map(inbound_id).collect()
    }

    /// At the end of the task: waits for room for everything still waiting.
    pub async fn drain(&mut self) -> Undeliverable {
        let mut lost = Vec::new();
        while let Some(event) = self.waiting.pop_front() {
            if self.closed {
                lost.extend(inbound_id(event));
                continue;
            }
            if let Err(mpsc::error::SendError(event)) = self.gateway.send(event).await {
                self.closed = true;
                lost.extend(inbound_id(event));
            }
        }
        lost
    }
}

fn inbound_id(event: GatewayEvent) -> Option<String> {
    match event {
        GatewayEvent::Inbound { message, .. } => Some(message.id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_protocol::message::InboundMessage;

    fn inbound(id: &str) -> GatewayEvent {
        let message: InboundMessage = serde_json::from_value(serde_json::json!({
            "id": id, "chat": "1@s.whatsapp.net", "sender": "1@s.whatsapp.net", "timestamp": 1
        }))
        .unwrap();
        GatewayEvent::Inbound {
            connector: "wa".into(),
            message: Box::new(message),
        }
    }

    #[tokio::test]
    async fn a_full_channel_holds_events_in_order_and_a_closed_one_hands_back_inbound_ids() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(tx);
        assert!(outbox.push(inbound("A")).is_empty());
        assert!(!outbox.is_waiting(), "room for one");
        assert!(outbox.push(inbound("B")).is_empty());
        assert!(outbox.push(inbound("C")).is_empty());
        assert!(outbox.is_waiting(), "B and C wait");
        let first = rx.recv().await.unwrap();
        assert!(matches!(first, GatewayEvent::Inbound { ref message, .. } if message.id == "A"));
        let permit = outbox.sender().reserve_owned().await.ok();
        assert!(outbox.flush(permit).is_empty());
        let next = rx.recv().await.unwrap();
        assert!(matches!(next, GatewayEvent::Inbound { ref message, .. } if message.id == "B"));
        drop(rx);
        assert_eq!(outbox.send_waiting(), vec!["C".to_owned()]);
        assert!(outbox.is_closed());
        assert_eq!(outbox.push(inbound("D")), vec!["D".to_owned()]);
    }

    #[tokio::test]
    async fn a_batch_goes_out_at_its_end() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut outbox = Outbox::new(tx);
        outbox.begin_batch();
        outbox.push(inbound("A"));
        outbox.push(inbound("B"));
        assert!(rx.try_recv().is_err(), "nothing before the batch ends");
        assert!(outbox.end_batch().is_empty());
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok());
    }
}
