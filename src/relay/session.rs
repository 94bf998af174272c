//! One gateway's WebSocket, from the upgrade to the close: its frames read and answered (hello,
//! acks, outbound operations through the daemon link), its writes on a task of their own, and a
//! stop that never waits for a peer that stopped reading.

use super::*;

/// One gateway connection, from the upgrade to the close.
pub(super) async fn session(
    relay: Arc<Relay>,
    socket: WebSocket,
    gateway: String,
    secret: Option<[u8; 32]>,
    media_base: String,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Out>(512);
    let id = relay.hub.register(&gateway, tx.clone(), secret, media_base);
    relay.hub.log().emit(
        None,
        &Event::RelayGateway {
            change: "connected",
            gateway: &gateway,
            platform: None,
            reason: None,
        },
    );
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let sent = match out {
                Out::Frame(text) => sink.send(Message::Text(text.into())).await,
                Out::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let outbound = Arc::new(Semaphore::new(MAX_OUTBOUND_IN_FLIGHT));
    // On stop the reading ends wherever it waits (a send to a gateway that stopped reading
    // included): the stop never waits for a peer.
    let end_reason = tokio::select! {
        reason = read_frames(&relay, id, &tx, &mut stream, &outbound) => reason,
        _ = relay.shutdown.cancelled() => {
            let _ = tx.try_send(Out::Close(close::GOING_AWAY, "bridgekeeper is stopping".into()));
            "shutdown"
        }
    };
    relay.hub.unregister(id);
    drop(tx);
    // The close frame gets a moment; a socket that takes no more bytes is dropped after it.
    let mut writer = writer;
    if tokio::time::timeout(SOCKET_CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    relay.hub.log().emit(
        None,
        &Event::RelayGateway {
            change: "disconnected",
            gateway: &gateway,
            platform: None,
            reason: Some(end_reason),
        },
    );
}

/// Reads a gateway's frames until it closes or breaks the rules; returns why it ended.
async fn read_frames(
    relay: &Arc<Relay>,
    id: u64,
    tx: &mpsc::Sender<Out>,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    outbound: &Arc<Semaphore>,
) -> &'static str {
    let mut pending = String::new();
    let mut end_reason = "gateway closed";
    loop {
        let message = stream.next().await;
        let text = match message {
            None => break,
            Some(Err(e)) => {
                // tungstenite refuses a message over max_message_size before we see it.
                if e.to_string().to_lowercase().contains("too long")
                    || e.to_string().to_lowercase().contains("size")
                {
                    let _ = tx
                        .send(Out::Close(close::TOO_BIG, "frame too large".into()))
                        .await;
                    end_reason = "frame too large";
                } else {
                    end_reason = "socket error";
                }
                break;
            }
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(_))) => {
                frame_error(
                    relay,
                    id,
                    tx,
                    "invalid_frame",
                    "binary messages are not relay frames",
                    None,
                )
                .await;
                continue;
            }
            Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => continue, // ping/pong: answered by the library
        };
        pending.push_str(&text);
        while let Some(at) = pending.find('\n') {
            let line: String = pending.drain(..=at).collect();
            let line = line.trim();
            if !line.is_empty() {
                on_frame(relay, id, tx, line, outbound).await;
            }
        }
        if pending.len() > relay.max_frame_bytes {
            let _ = tx
                .send(Out::Close(close::TOO_BIG, "frame too large".into()))
                .await;
            end_reason = "frame too large";
            break;
        }
        if tx.is_closed() {
            end_reason = "closed by bridgekeeper";
            break;
        }
    }
    end_reason
}

async fn frame_error(
    relay: &Relay,
    session: u64,
    tx: &mpsc::Sender<Out>,
    code: &'static str,
    message: &str,
    request_id: Option<&str>,
) {
    let gateway = relay.hub.gateway_of(session);
    relay.hub.log().emit(
        None,
        &Event::RelayFrameError {
            gateway: &gateway,
            code,
        },
    );
    let _ = tx
        .send(Out::Frame(frames::line(&frames::error_frame(
            code, message, request_id,
        ))))
        .await;
    // An outbound the gateway is waiting for still gets its one result.
    if let Some(id) = request_id {
        let result = frames::outbound_result(id, frames::failure(&format!("{code}: {message}")));
        let _ = tx.send(Out::Frame(frames::line(&result))).await;
    }
}

async fn on_frame(
    relay: &Arc<Relay>,
    session: u64,
    tx: &mpsc::Sender<Out>,
    line: &str,
    outbound: &Arc<Semaphore>,
) {
    let frame = match frames::parse(line) {
        Ok(frame) => frame,
        Err((e, request_id)) => {
            frame_error(
                relay,
                session,
                tx,
                e.code(),
                &e.to_string(),
                request_id.as_deref(),
            )
            .await;
            return;
        }
    };
    match frame {
        frames::GatewayFrame::Hello { platform, .. } => {
            let gateway = relay.hub.gateway_of(session);
            match relay.hub.hello(session, &platform) {
                Ok(descriptor) => {
                    let _ = tx.send(Out::Frame(frames::line(&descriptor))).await;
                    relay.hub.log().emit(
                        None,
                        &Event::RelayGateway {
                            change: "hello",
                            gateway: &gateway,
                            platform: Some(&platform),
                            reason: None,
                        },
                    );
                    relay.hub.pump();
                }
                Err(HelloError::UnknownPlatform) => {
                    let message =
                        format!("bridgekeeper runs no connector for platform {platform:?}");
                    frame_error(relay, session, tx, "unknown_platform", &message, None).await;
                    if !relay.hub.has_platforms(session) {
                        let _ = tx.send(Out::Close(close::UNKNOWN_PLATFORM, message)).await;
                    }
                }
                Err(HelloError::Taken { by }) => {
                    let message = format!(
                        "platform {platform:?} already has a gateway ({by}); one owner per platform"
                    );
                    relay.hub.log().emit(
                        None,
                        &Event::RelayGateway {
                            change: "refused",
                            gateway: &gateway,
                            platform: Some(&platform),
                            reason: Some("platform already has a gateway"),
                        },
                    );
                    let _ = tx.send(Out::Close(close::PLATFORM_TAKEN, message)).await;
                }
            }
        }
        frames::GatewayFrame::InboundAck { buffer_id } => {
            if let Err(e) = relay.hub.ack(session, &buffer_id) {
                tracing::warn!(error = %e, "cannot record a relay ack");
            }
        }
        frames::GatewayFrame::GoingIdle => {
            relay.hub.going_idle(session);
            let _ = tx
                .send(Out::Frame(frames::line(&json!({"type": "going_idle_ack"}))))
                .await;
        }
        frames::GatewayFrame::Interrupt { session_key, .. } => {
            let gateway = relay.hub.gateway_of(session);
            relay
                .hub
                .log()
                .emit(None, &Event::RelayInterrupt { gateway: &gateway });
            let ack = json!({"type": "interrupt_ack", "session_key": session_key});
            let _ = tx.send(Out::Frame(frames::line(&ack))).await;
        }
        frames::GatewayFrame::Outbound {
            request_id,
            action,
            platform,
        } => {
            let Ok(permit) = outbound.clone().try_acquire_owned() else {
                let result = frames::outbound_result(&request_id, frames::failure("busy"));
                let _ = tx.send(Out::Frame(frames::line(&result))).await;
                return;
            };
            let (relay, tx) = (relay.clone(), tx.clone());
            tokio::spawn(async move {
                let result = run_outbound(&relay, session, platform.as_deref(), &action).await;
                let frame = frames::outbound_result(&request_id, result);
                let _ = tx.send(Out::Frame(frames::line(&frame))).await;
                drop(permit);
            });
        }
    }
}

/// One outbound op, answered truthfully: `success` means the connector wrote the message
/// (`status: "written"`); the network's acknowledgement follows as a receipt on the ledger.
async fn run_outbound(
    relay: &Relay,
    session: u64,
    platform: Option<&str>,
    action: &Value,
) -> Value {
    let chat = action
        .get("chat_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let command = match frames::action(action) {
        frames::Action::Command(bridge_protocol::gateway::GatewayCommand::SendMedia(mut m)) => {
            match media_source(relay, &m.path) {
                Ok(path) => m.path = path,
                Err(why) => return frames::failure(&why),
            }
            bridge_protocol::gateway::GatewayCommand::SendMedia(m)
        }
        frames::Action::Command(c) => c,
        frames::Action::Unsupported(op) => {
            return json!({"success": false, "error": "unsupported", "op": op});
        }
        frames::Action::Invalid(why) => return frames::failure(&format!("invalid_action: {why}")),
    };
    let connector = match relay.hub.route(session, platform, chat) {
        Ok(c) => c,
        Err(why) => return frames::failure(&why),
    };
    let is_chat_info = matches!(
        command,
        bridge_protocol::gateway::GatewayCommand::ChatInfo(_)
    );
    match relay
        .requests
        .call(&connector, command, OUTBOUND_TIMEOUT)
        .await
    {
        Ok(r) if r.ok && is_chat_info => chat_info(chat, &r),
        Ok(r) if r.ok => {
            let id = r
                .data
                .as_ref()
                .and_then(|d| d.pointer("/message_ids/0").or_else(|| d.get("message_id")))
                .and_then(Value::as_str);
            json!({"success": true, "message_id": id, "status": "written"})
        }
        Ok(CommandResult { error, .. }) => {
            let e = error.unwrap_or_else(|| bridge_protocol::message::ErrorBody {
                code: "failed".into(),
                message: "the connector gave no reason".into(),
                unconfirmed: false,
            });
            frames::failure_unconfirmed(&format!("{}: {}", e.code, e.message), e.unconfirmed)
        }
        Err(CallError::Timeout(_)) => {
            json!({"success": false, "error": "timeout: no answer from the connector in time", "unconfirmed": true})
        }
        Err(e) => frames::failure(&e.to_string()),
    }
}

fn chat_info(chat: &str, r: &CommandResult) -> Value {
    let data = r.data.clone().unwrap_or_default();
    let is_group = data
        .get("is_group")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let name = data
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(chat)
        .to_owned();
    let kind = if is_group { "group" } else { "dm" };
    json!({"success": true, "chat_info": {"name": name, "type": kind}, "name": name, "type": kind})
}

/// A gateway whose token a revoked secret signed: told so the way Hermes latches it (4401
/// after the upgrade), and nothing else.
pub async fn close_revoked(mut socket: WebSocket) {
    let frame = CloseFrame {
        code: close::REVOKED,
        reason: "relay secret revoked".into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// The file a `send_media` names: a `/relay/media/<id>` URL must be one this relay issued (an
/// upload, or an inbound file); any other URL is refused, so a token never makes bridgekeeper
/// fetch what someone else names. A plain path is 0.19.0's form, a file on this host.
fn media_source(relay: &Relay, source: &str) -> Result<String, String> {
    if let Some(id) = relay.media.id_in_url(source) {
        return relay
            .media
            .path(id)
            .map(|p| p.display().to_string())
            .ok_or_else(|| "unknown_media: no media of this relay has that id".to_owned());
    }
    if source.contains("://") {
        return Err(
            "source_url_not_allowed: only this relay's own /relay/media ids are sent (upload the file first)"
                .to_owned(),
        );
    }
    Ok(source.to_owned())
}
