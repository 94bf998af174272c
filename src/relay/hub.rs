//! The relay's shared state: the buffer of delivered messages, the connected gateways and the
//! platform each owns, and which platform a chat belongs to. Every method takes the lock for a
//! short, await-free section; writing to a socket goes through each session's channel.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bridge_protocol::gateway::Severity;
use bridge_protocol::message::InboundMessage;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::buffer::{PushError, RelayBuffer};
use super::frames;
use crate::record::ledger::FailReason;
use crate::record::log::{AlertCode, Event, EventLog};

/// What a session's writer sends: a frame, or the close that ends it.
#[derive(Debug)]
pub enum Out {
    Frame(String),
    Close(u16, String),
}

/// Close codes (4401 is Hermes' "revoked"; the others are ours, in the private range).
pub mod close {
    pub const REVOKED: u16 = 4401;
    pub const UNKNOWN_PLATFORM: u16 = 4404;
    pub const PLATFORM_TAKEN: u16 = 4409;
    /// The same gateway connected again: its older socket gives way.
    pub const REPLACED: u16 = 4408;
    pub const TOO_BIG: u16 = 1009;
    pub const GOING_AWAY: u16 = 1001;
}

struct Session {
    gateway: String,
    since: SystemTime,
    platforms: Vec<String>,
    tx: mpsc::Sender<Out>,
    /// After `going_idle`: nothing is sent live; it waits in the buffer.
    idle: bool,
    last_ack: Option<SystemTime>,
    secret: Option<[u8; 32]>,
    /// `http://host:port` as this gateway dialled: where its inbound media URLs point.
    media_base: String,
}

struct State {
    buffer: RelayBuffer,
    sessions: HashMap<u64, Session>,
    owners: HashMap<String, u64>,
    chats: HashMap<String, String>,
}

/// Chats remembered for routing replies; the map starts over past this (routing then falls back
/// to the frame's `platform` or the session's first platform).
const MAX_CHATS: usize = 100_000;

#[derive(Debug, PartialEq, Eq)]
pub enum HelloError {
    UnknownPlatform,
    Taken { by: String },
}

pub struct Hub {
    state: Mutex<State>,
    /// platform → the connector that serves it; connector → its platform.
    by_platform: HashMap<String, String>,
    by_connector: HashMap<String, String>,
    log: EventLog,
    ack_timeout: Duration,
    /// Unacked messages in flight to one gateway at a time.
    window: usize,
    next_session: AtomicU64,
    pub acked: AtomicU64,
    pub resent: AtomicU64,
    pub full: AtomicU64,
    /// Names inbound media files for `/relay/media`; `None`: their local paths go out.
    media: Option<std::sync::Arc<super::media::MediaRoom>>,
}

impl Hub {
    pub fn new(
        buffer: RelayBuffer,
        connectors: &[(String, String)],
        log: EventLog,
        ack_timeout: Duration,
        media: Option<std::sync::Arc<super::media::MediaRoom>>,
    ) -> Self {
        let mut by_platform = HashMap::new();
        let mut by_connector = HashMap::new();
        for (name, platform) in connectors {
            by_platform
                .entry(platform.clone())
                .or_insert_with(|| name.clone());
            by_connector.insert(name.clone(), platform.clone());
        }
        Self {
            state: Mutex::new(State {
                buffer,
                sessions: HashMap::new(),
                owners: HashMap::new(),
                chats: HashMap::new(),
            }),
            by_platform,
            by_connector,
            log,
            ack_timeout,
            window: 256,
            next_session: AtomicU64::new(1),
            acked: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            full: AtomicU64::new(0),
            media,
        }
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Whether a connector here serves `platform`.
    pub fn serves(&self, platform: &str) -> bool {
        self.by_platform.contains_key(platform)
    }

    pub fn register(
        &self,
        gateway: &str,
        tx: mpsc::Sender<Out>,
        secret: Option<[u8; 32]>,
        media_base: String,
    ) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        lock(&self.state).sessions.insert(
            id,
            Session {
                gateway: gateway.to_owned(),
                since: SystemTime::now(),
                platforms: Vec::new(),
                tx,
                idle: false,
                last_ack: None,
                secret,
                media_base,
            },
        );
        id
    }

    /// The session ended: its platforms are free, and what it had not acked goes to the next.
    pub fn unregister(&self, session: u64) {
        let mut st = lock(&self.state);
        st.sessions.remove(&session);
        st.owners.retain(|_, s| *s != session);
        for e in st.buffer.entries_mut() {
            if e.sent.is_some_and(|(s, _)| s == session) {
                e.sent = None;
            }
        }
    }

    /// A `hello`: the platform's descriptor, and its waiting messages start flowing. A platform
    /// owned by another gateway is refused; one owned by an older socket of the *same* gateway
    /// (a restart, or a socket left half-open by the network) is taken over, and that socket
    /// closed, so a gateway can always come back.
    pub fn hello(&self, session: u64, platform: &str) -> Result<Value, HelloError> {
        let descriptor = frames::descriptor(platform)
            .filter(|_| self.by_platform.contains_key(platform))
            .ok_or(HelloError::UnknownPlatform)?;
        let mut st = lock(&self.state);
        if let Some(owner) = st.owners.get(platform).copied()
            && owner != session
        {
            let theirs = st.sessions.get(&owner).map(|s| s.gateway.clone());
            let ours = st.sessions.get(&session).map(|s| s.gateway.clone());
            if theirs.is_some() && theirs != ours {
                return Err(HelloError::Taken {
                    by: theirs.unwrap_or_default(),
                });
            }
            if let Some(old) = st.sessions.get(&owner) {
                let _ = old.tx.try_send(Out::Close(
                    close::REPLACED,
                    "replaced by a newer connection of the same gateway".into(),
                ));
            }
            st.owners.retain(|_, s| *s != owner);
            if let Some(old) = st.sessions.get_mut(&owner) {
                old.platforms.clear();
            }
            for e in st.buffer.entries_mut() {
                if e.sent.is_some_and(|(s, _)| s == owner) {
                    e.sent = None;
                }
            }
        }
        st.owners.insert(platform.to_owned(), session);
        if let Some(s) = st.sessions.get_mut(&session)
            && !s.platforms.iter().any(|p| p == platform)
        {
            s.platforms.push(platform.to_owned());
        }
        Ok(descriptor)
    }

    pub fn has_platforms(&self, session: u64) -> bool {
        lock(&self.state)
            .sessions
            .get(&session)
            .is_some_and(|s| !s.platforms.is_empty())
    }

    /// A message the policy delivered: stored, then offered to the gateway that owns its
    /// platform. When the buffer is full it is failed in the ledger, with an alert.
    pub fn offer(&self, connector: &str, message: &InboundMessage) {
        let platform = self
            .by_connector
            .get(connector)
            .cloned()
            .unwrap_or_else(|| connector.to_owned());
        let id =
            |path: &std::path::Path| self.media.as_ref().map(|m| m.id(path)).unwrap_or_default();
        let event = frames::inbound_event(
            &platform,
            message,
            self.media
                .is_some()
                .then_some(&id as &dyn Fn(&std::path::Path) -> String),
        );
        let raw = serde_json::value::to_raw_value(&event).expect("events serialize");
        let pushed = {
            let mut st = lock(&self.state);
            if st.chats.len() >= MAX_CHATS {
                st.chats.clear();
            }
            st.chats.insert(message.chat.clone(), platform.clone());
            let pushed = st.buffer.push(connector, &platform, &message.id, raw);
            if pushed.is_ok() {
                self.deliver(&mut st, |s| s.platforms.contains(&platform));
            }
            pushed
        };
        match pushed {
            Ok(_) => self.log.board().relay_delivery(connector, false),
            Err(PushError::Full(capacity)) => self.overflow(connector, &message.id, capacity),
            Err(PushError::Io(e)) => {
                self.log
                    .retract(connector, &message.id, FailReason::RelayBufferFull);
                let text = format!("the relay buffer cannot be written: {e}");
                self.alert(connector, AlertCode::RelayBufferFull, &text);
            }
        }
    }

    fn overflow(&self, connector: &str, message_id: &str, capacity: usize) {
        self.log
            .retract(connector, message_id, FailReason::RelayBufferFull);
        let n = self.full.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            let text = format!(
                "the relay buffer is full ({capacity} messages no gateway has acked): {n} message(s) could not be kept (ledger: failed relay_buffer_full)"
            );
            self.alert(connector, AlertCode::RelayBufferFull, &text);
        }
    }

    pub fn alert(&self, connector: &str, code: AlertCode, message: &str) {
        self.log.emit(
            Some(connector),
            &Event::Alert {
                severity: Severity::Critical,
                code,
                message,
            },
        );
    }

    /// Sends what is waiting and not yet in flight to every matching session, up to the window.
    fn deliver(&self, st: &mut State, which: impl Fn(&Session) -> bool) {
        let State {
            buffer, sessions, ..
        } = st;
        for (&sid, session) in sessions.iter() {
            if session.idle || !which(session) {
                continue;
            }
            // One pass in buffer order, ending at the window: what was sent sits before what
            // was not, so this touches about `window` entries, not the whole buffer.
            let mut in_flight = 0;
            for e in buffer.entries_mut() {
                if in_flight >= self.window {
                    break;
                }
                match e.sent {
                    Some((s, _)) if s == sid => in_flight += 1,
                    Some(_) => {}
                    None if session.platforms.contains(&e.platform) => {
                        if session
                            .tx
                            .try_send(Out::Frame(inbound_line(e, &session.media_base)))
                            .is_err()
                        {
                            break; // the socket is slow: the next ack or tick continues
                        }
                        e.sent = Some((sid, Instant::now()));
                        in_flight += 1;
                    }
                    None => {}
                }
            }
        }
    }

    /// Starts delivery after a hello (and whenever a session may have room again).
    pub fn pump(&self) {
        let mut st = lock(&self.state);
        self.deliver(&mut st, |_| true);
    }

    pub fn ack(&self, session: u64, buffer_id: &str) -> Result<bool, crate::util::fs::PathError> {
        let mut st = lock(&self.state);
        let released = st.buffer.ack(buffer_id)?;
        let Some(entry) = released else {
            return Ok(false);
        };
        self.acked.fetch_add(1, Ordering::Relaxed);
        let gateway = match st.sessions.get_mut(&session) {
            Some(s) => {
                s.last_ack = Some(SystemTime::now());
                s.gateway.clone()
            }
            None => String::new(),
        };
        self.deliver(&mut st, |_| true);
        drop(st);
        if !entry.carried {
            self.log.board().relay_delivery(&entry.connector, true);
        }
        self.log.emit(
            Some(&entry.connector),
            &Event::RelayAcked {
                message_id: &entry.message_id,
                gateway: &gateway,
            },
        );
        Ok(true)
    }

    pub fn going_idle(&self, session: u64) {
        let mut st = lock(&self.state);
        if let Some(s) = st.sessions.get_mut(&session) {
            s.idle = true;
        }
        for e in st.buffer.entries_mut() {
            if e.sent.is_some_and(|(s, _)| s == session) {
                e.sent = None;
            }
        }
    }

    /// Resends what was not acked in time (the gateway dedups by message id).
    pub fn tick(&self) {
        let mut st = lock(&self.state);
        let now = Instant::now();
        let State {
            buffer, sessions, ..
        } = &mut *st;
        for e in buffer.entries_mut() {
            let Some((sid, at)) = e.sent else { continue };
            if now.duration_since(at) < self.ack_timeout {
                continue;
            }
            match sessions.get(&sid) {
                Some(s) if !s.idle => {
                    if s.tx
                        .try_send(Out::Frame(inbound_line(e, &s.media_base)))
                        .is_ok()
                    {
                        e.sent = Some((sid, now));
                        self.resent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => e.sent = None,
            }
        }
        self.deliver(&mut st, |_| true);
    }

    /// The connector for an outbound frame: the frame's platform, else the chat's (learned from
    /// inbound), else the session's first. It must be one the session said hello for.
    pub fn route(
        &self,
        session: u64,
        platform: Option<&str>,
        chat: &str,
    ) -> Result<String, String> {
        let st = lock(&self.state);
        let s = st.sessions.get(&session).ok_or("the session has ended")?;
        let platform = platform
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .or_else(|| st.chats.get(chat).cloned())
            .or_else(|| s.platforms.first().cloned())
            .ok_or("no hello yet: say hello for a platform first")?;
        if !s.platforms.contains(&platform) {
            return Err(format!(
                "platform {platform:?} was not part of this connection's hello"
            ));
        }
        self.by_platform
            .get(&platform)
            .cloned()
            .ok_or_else(|| format!("platform {platform:?} is not served here"))
    }

    /// Sessions whose secret is no longer configured (revoked): to be closed with 4401.
    pub fn revoked(&self, secrets: &[[u8; 32]]) -> Vec<mpsc::Sender<Out>> {
        lock(&self.state)
            .sessions
            .values()
            .filter(|s| s.secret.is_some_and(|f| !secrets.contains(&f)))
            .map(|s| s.tx.clone())
            .collect()
    }

    pub fn gateway_of(&self, session: u64) -> String {
        lock(&self.state)
            .sessions
            .get(&session)
            .map(|s| s.gateway.clone())
            .unwrap_or_default()
    }

    /// Who is connected, since when, and how much waits (`/health`, `status`).
    pub fn status(&self) -> Value {
        let st = lock(&self.state);
        let gateways: Vec<Value> = st
            .sessions
            .values()
            .map(|s| {
                json!({
                    "gateway": s.gateway,
                    "platforms": s.platforms,
                    "since": humantime::format_rfc3339_seconds(s.since).to_string(),
                    "lastAck": s.last_ack.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    "idle": s.idle,
                })
            })
            .collect();
        json!({
            "gateways": gateways,
            "buffered": st.buffer.len(),
            "bufferCapacity": st.buffer.capacity(),
            "acked": self.acked.load(Ordering::Relaxed),
            "resent": self.resent.load(Ordering::Relaxed),
            "failedBufferFull": self.full.load(Ordering::Relaxed),
        })
    }
}

fn inbound_line(e: &super::buffer::Entry, media_base: &str) -> String {
    let line = format!(
        "{{\"type\":\"inbound\",\"event\":{},\"bufferId\":{}}}\n",
        e.event.get(),
        serde_json::to_string(&e.id).expect("strings serialize")
    );
    frames::absolute_media_urls(&line, media_base)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
