//! Messages whose answers go elsewhere (a webhook route's target): commands for a routed chat
//! handed to the target platform's connector, and `deliver_only` texts sent there directly.

use std::time::Duration;

use bridge_protocol::gateway::GatewayEvent;
use bridge_protocol::message::{Command, CommandResult, Deliver, InboundMessage, SendText};

use super::ConnectorTask;
use crate::policy::send::SendKind;
use crate::record::ledger::FailReason;
use crate::record::log::Event;
use crate::supervisor::handle::{ConnectorHandle, ErrorCode, Origin, Rejected};

impl ConnectorTask {
    /// Hands a command for a routed chat to the connector its delivery target names: that
    /// task's outbound gate, pacing and queue judge it, and it answers the origin. A command
    /// that means nothing in another chat (`read`, `react`) is answered here, sent nowhere.
    pub(super) fn deliver_elsewhere(
        &mut self,
        origin: Origin,
        command: Command,
        timeout: Option<Duration>,
        target: &Deliver,
    ) -> Result<(), ErrorCode> {
        let Some(peer) = self.peers.for_platform(&target.platform) else {
            return Err(ErrorCode::DeliverUnavailable);
        };
        let Some(command) = command.retargeted(&target.chat, target.thread.as_deref()) else {
            if let Origin::Gateway(id) = origin {
                let data = serde_json::json!({"sent": false});
                self.push(GatewayEvent::Result(CommandResult::ok(id, Some(data))));
            }
            return Ok(());
        };
        match self.hand_to(peer, origin, command, timeout, &target.chat) {
            Ok(()) => Ok(()),
            Err(Rejected::QueueFull) => Err(ErrorCode::QueueFull),
            Err(Rejected::ShuttingDown) => Err(ErrorCode::ShuttingDown),
        }
    }

    /// Gives `command` (already written into `chat`) to another connector's task, said in the
    /// log; that task answers its origin.
    fn hand_to(
        &self,
        peer: &ConnectorHandle,
        origin: Origin,
        command: Command,
        timeout: Option<Duration>,
        chat: &str,
    ) -> Result<(), Rejected> {
        self.log.emit(
            Some(&self.name),
            &Event::DeliveredElsewhere {
                command: command.type_name(),
                connector: &peer.name,
                chat: self.log.id(chat),
            },
        );
        peer.try_command(origin, command, timeout)
            .map_err(|(rejected, _)| rejected)
    }

    /// A `deliver_only` message: its text goes to its target connector as an internal send
    /// (its result is logged), judged by that connector's outbound gate like a reply.
    pub(super) fn send_direct(
        &mut self,
        message: &InboundMessage,
        target: &Deliver,
    ) -> Result<(), FailReason> {
        let peer = self
            .peers
            .for_platform(&target.platform)
            .filter(|_| !target.chat.is_empty())
            .ok_or(FailReason::DeliverUnavailable)?;
        let command = Command::SendText(SendText {
            chat: target.chat.clone(),
            text: message.text.clone().unwrap_or_default(),
            reply_to: None,
            thread: target.thread.clone(),
        });
        self.hand_to(
            peer,
            Origin::Internal(SendKind::Reply),
            command,
            None,
            &target.chat,
        )
        .map_err(|_| FailReason::DeliverUnavailable)
    }
}
