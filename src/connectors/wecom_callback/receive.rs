//! The callback endpoint: `GET <path>` (WeCom's URL check: the decrypted `echostr` back) and
//! `POST <path>` (one encrypted message). A POST is refused at the first check it fails, before
//! the next one's work: its query and its timestamp (±5 min), from the head; its size (64 KiB,
//! read at the listener's pace), its XML (no declarations), its signature (SHA-1, constant
//! time), its nonce (never twice in the window), its receiver (the corp id). Each refusal is counted (`status`) and logged without the body;
//! nothing a refused request carries reaches the supervisor. An accepted one is answered
//! `success` once the supervisor recorded it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bridge_protocol::message::InboundMessage;

use super::App;
use super::crypto::CryptoError;
use super::xml;
use crate::connectors::kit::Link;
use crate::connectors::kit::receiver::{self, Refusals};

pub const MAX_BODY: usize = 64 * 1024;
/// How far a request's timestamp may be from now.
pub const WINDOW_SECS: i64 = 300;
/// Nonces remembered (for twice the window), at most this many.
const NONCES: usize = 100_000;
const RECORDED_WAIT: Duration = Duration::from_secs(4);

pub struct Receiver {
    pub link: Arc<Link>,
    apps: Vec<App>,
    path: String,
    nonces: Mutex<Nonces>,
    refusals: Refusals,
}

#[derive(Default)]
struct Nonces {
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl Nonces {
    /// Whether `nonce` is new (and now remembered).
    fn fresh(&mut self, nonce: &str, now: Instant) -> bool {
        let keep = Duration::from_secs(2 * WINDOW_SECS as u64);
        while let Some((at, n)) = self.order.front() {
            if now.duration_since(*at) < keep && self.order.len() < NONCES {
                break;
            }
            if self.seen.get(n) == Some(at) {
                self.seen.remove(n);
            }
            self.order.pop_front();
        }
        if self.seen.contains_key(nonce) {
            return false;
        }
        self.seen.insert(nonce.to_owned(), now);
        self.order.push_back((now, nonce.to_owned()));
        true
    }
}

/// The query WeCom signs a request with.
#[derive(Default)]
pub struct Signed {
    msg_signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
}

impl Signed {
    fn from_uri(uri: &Uri) -> Self {
        let mut q = Self::default();
        for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            let slot = match k.as_ref() {
                "msg_signature" => &mut q.msg_signature,
                "timestamp" => &mut q.timestamp,
                "nonce" => &mut q.nonce,
                "echostr" => &mut q.echostr,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.into_owned());
        }
        q
    }
}

impl Receiver {
    pub fn new(link: Arc<Link>, apps: Vec<App>, path: &str) -> Self {
        Self {
            link,
            apps,
            path: path.to_owned(),
            nonces: Mutex::default(),
            refusals: Refusals::new("wecom_callback", "callback"),
        }
    }

    pub fn router(self: Arc<Self>) -> Router {
        let path = self.path.clone();
        Router::new()
            .route("/health", get(health))
            .route(&path, get(verify).post(callback))
            .with_state(self)
    }

    /// The app that serves `chat` (`<corp id>:<user>`) and the user to write to.
    pub fn app_for_chat(&self, chat: &str) -> Option<(&App, String)> {
        let (corp, user) = chat.split_once(':').unwrap_or(("", chat));
        let app = self
            .apps
            .iter()
            .find(|a| a.corp_id == corp)
            .or(self.apps.first())?;
        Some((app, user.to_owned()))
    }

    /// Counts a refusal and says it in the log (`Refusals`), never with the body.
    fn refuse(&self, what: &'static str, status: StatusCode) -> Response {
        self.refusals.note(&self.link, what, "", status.as_u16());
        (status, what).into_response()
    }

    /// The query's three signed values, with the timestamp inside the window.
    #[allow(clippy::result_large_err)]
    fn signed<'a>(&self, q: &'a Signed) -> Result<(&'a str, &'a str, &'a str), Response> {
        let (Some(sig), Some(ts), Some(nonce)) = (&q.msg_signature, &q.timestamp, &q.nonce) else {
            return Err(self.refuse("refused_bad_request", StatusCode::BAD_REQUEST));
        };
        let now = crate::util::time::unix_secs() as i64;
        match ts.trim().parse::<i64>() {
            Ok(t) if (now - t).abs() <= WINDOW_SECS => Ok((sig, ts, nonce)),
            _ => Err(self.refuse("refused_stale", StatusCode::FORBIDDEN)),
        }
    }

    /// The first app whose keys open `encrypted`.
    #[allow(clippy::result_large_err)]
    fn open(
        &self,
        sig: &str,
        ts: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<(&App, Vec<u8>), Response> {
        let mut wrong_corp = false;
        for app in &self.apps {
            match app.crypt.open(sig, ts, nonce, encrypted) {
                Ok(plain) => return Ok((app, plain)),
                Err(CryptoError::WrongReceiver) => wrong_corp = true,
                Err(CryptoError::Signature) => {}
                Err(_) => return Err(self.refuse("refused_undecryptable", StatusCode::BAD_REQUEST)),
            }
        }
        Err(if wrong_corp {
            self.refuse("refused_corp", StatusCode::FORBIDDEN)
        } else {
            self.refuse("refused_signature", StatusCode::FORBIDDEN)
        })
    }
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok", "platform": "wecom_callback"})).into_response()
}

async fn verify(State(r): State<Arc<Receiver>>, uri: Uri) -> Response {
    let q = Signed::from_uri(&uri);
    let (sig, ts, nonce) = match r.signed(&q) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let Some(echo) = q.echostr.as_deref() else {
        return r.refuse("refused_bad_request", StatusCode::BAD_REQUEST);
    };
    match r.open(sig, ts, nonce, echo) {
        Ok((_, plain)) => (
            [(header::CONTENT_TYPE, "text/plain")],
            String::from_utf8_lossy(&plain).into_owned(),
        )
            .into_response(),
        Err(refused) => refused,
    }
}

async fn callback(State(r): State<Arc<Receiver>>, uri: Uri, body: Body) -> Response {
    // The query and its timestamp are in the head: a request without them, or a stale one,
    // is refused before its body is read.
    let q = Signed::from_uri(&uri);
    let (sig, ts, nonce) = match r.signed(&q) {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let body = match crate::listener::body::read(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => {
            let (what, status) = receiver::body_refusal(e);
            return r.refuse(what, status);
        }
    };
    let envelope = match xml::fields(&String::from_utf8_lossy(&body)) {
        Ok(f) => f,
        Err(xml::XmlError::Declaration) => {
            return r.refuse("refused_xml_declaration", StatusCode::BAD_REQUEST);
        }
        Err(_) => return r.refuse("refused_bad_xml", StatusCode::BAD_REQUEST),
    };
    let Some(encrypted) = envelope.get("Encrypt") else {
        return r.refuse("refused_bad_xml", StatusCode::BAD_REQUEST);
    };
    // The signature before the nonce is remembered: a forged request cannot use up a nonce.
    if !r
        .apps
        .iter()
        .any(|a| a.crypt.signature_matches(sig, ts, nonce, encrypted))
    {
        return r.refuse("refused_signature", StatusCode::FORBIDDEN);
    }
    if !r
        .nonces
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .fresh(nonce, Instant::now())
    {
        return r.refuse("refused_replayed", StatusCode::FORBIDDEN);
    }
    let (app, plain) = match r.open(sig, ts, nonce, encrypted) {
        Ok(opened) => opened,
        Err(refused) => return refused,
    };
    let message = match xml::fields(&String::from_utf8_lossy(&plain)) {
        Ok(m) => m,
        Err(xml::XmlError::Declaration) => {
            return r.refuse("refused_xml_declaration", StatusCode::BAD_REQUEST);
        }
        Err(_) => return r.refuse("refused_bad_xml", StatusCode::BAD_REQUEST),
    };
    let inbound = inbound(&app.corp_id, &message);
    let recorded = receiver::record(&r.link, inbound, RECORDED_WAIT).await;
    match recorded {
        Some(_) => {
            r.link.count("accepted");
            ([(header::CONTENT_TYPE, "text/plain")], "success").into_response()
        }
        // Unanswered, WeCom sends it again; the duplicate window takes care of a repeat.
        None => {
            r.link.count("unconfirmed");
            (StatusCode::SERVICE_UNAVAILABLE, "not recorded yet").into_response()
        }
    }
}

/// A decrypted callback as an inbound message: the chat is `<corp id>:<user>` (as Hermes
/// scopes it), the id WeCom's `MsgId` (else the user and the time). Only texts carry text;
/// events and other kinds are reported without, and recorded by the supervisor as such.
pub fn inbound(corp: &str, m: &std::collections::BTreeMap<String, String>) -> InboundMessage {
    let user = m.get("FromUserName").cloned().unwrap_or_default();
    let created = m.get("CreateTime").cloned().unwrap_or_else(|| "0".into());
    let kind = m
        .get("MsgType")
        .map(|k| k.to_ascii_lowercase())
        .unwrap_or_default();
    let text = (kind == "text")
        .then(|| m.get("Content").map(|c| c.trim().to_owned()))
        .flatten()
        .filter(|c| !c.is_empty());
    InboundMessage {
        id: m
            .get("MsgId")
            .filter(|i| !i.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("{user}:{created}")),
        chat: format!("{corp}:{user}"),
        sender: user.clone(),
        sender_alt: None,
        is_group: false,
        chat_name: None,
        sender_is_bot: false,
        edited: false,
        from_me: false,
        push_name: None,
        text,
        media: None,
        mentions: Vec::new(),
        quoted: None,
        thread: None,
        timestamp: created.parse().unwrap_or(0),
        routed: None,
        context: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_taken_once_within_the_window() {
        let mut n = Nonces::default();
        let t0 = Instant::now();
        assert!(n.fresh("a", t0));
        assert!(!n.fresh("a", t0 + Duration::from_secs(1)));
        assert!(n.fresh("b", t0));
        assert!(n.fresh("a", t0 + Duration::from_secs(2 * WINDOW_SECS as u64)));
    }

    #[test]
    fn callbacks_become_messages_scoped_by_corp() {
        let m: std::collections::BTreeMap<String, String> = [
            ("FromUserName", "zhang"),
            ("CreateTime", "1700000000"),
            ("MsgType", "text"),
            ("Content", " hi "),
            ("MsgId", "77"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let i = inbound("ww1", &m);
        assert_eq!(
            (i.id.as_str(), i.chat.as_str(), i.sender.as_str()),
            ("77", "ww1:zhang", "zhang")
        );
        assert_eq!(i.text.as_deref(), Some("hi"));
        let mut event = m.clone();
        event.insert("MsgType".into(), "event".into());
        event.remove("MsgId");
        let e = inbound("ww1", &event);
        assert_eq!(
            (e.id.as_str(), e.text.as_deref()),
            ("zhang:1700000000", None)
        );
    }
}
