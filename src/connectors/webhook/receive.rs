//! The HTTP side: `GET /health` and `POST /webhooks/<route>`, each POST taken in Hermes'
//! order — the route, its size (by `Content-Length`, then while reading), its signature, its
//! rate, its payload, its events and filters — and refused at the first step that fails,
//! before any work the next step would do. A POST that passes becomes one inbound message, and
//! is answered only once the supervisor says what it recorded (202 when delivered).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bridge_protocol::message::{Deliver, InboundMessage, RouteFilter, Routed};
use serde_json::{Map, Value, json};

use super::render;
use super::routes::{DeliverTo, Route, Routes};
use super::signature::{self, Refusal};
use crate::connectors::kit::Link;
use crate::connectors::kit::link::Recorded;
use crate::connectors::kit::receiver::{self, Refusals};
use crate::listener;

/// How long a POST waits for the supervisor to record its message before answering 503.
const RECORDED_WAIT: Duration = Duration::from_secs(30);
/// Longest delivery id taken from a header; a longer one is replaced by a generated one.
const MAX_DELIVERY_ID: usize = 200;

/// A platform's home channel (chat, thread), as Hermes' `<PLATFORM>_HOME_CHANNEL` settings say.
pub type HomeChannel = Box<dyn Fn(&str) -> Option<(String, Option<String>)> + Send + Sync>;

pub struct Receiver {
    pub link: Arc<Link>,
    pub routes: RwLock<Arc<Routes>>,
    pub max_body_bytes: usize,
    /// `<PLATFORM>_HOME_CHANNEL` and `_THREAD_ID`: where a route without `deliver_extra.chat_id`
    /// delivers, as Hermes does.
    pub home_channel: HomeChannel,
    rate: Mutex<HashMap<String, VecDeque<Instant>>>,
    refusals: Refusals,
    /// Routes already warned about body-only (V1) signatures.
    v1_warned: Mutex<HashSet<String>>,
}

impl Receiver {
    pub fn new(
        link: Arc<Link>,
        routes: Routes,
        max_body_bytes: usize,
        home_channel: HomeChannel,
    ) -> Self {
        Self {
            link,
            routes: RwLock::new(Arc::new(routes)),
            max_body_bytes,
            home_channel,
            rate: Mutex::default(),
            refusals: Refusals::new("webhook", "POST"),
            v1_warned: Mutex::default(),
        }
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/webhooks/{route}", post(receive))
            .with_state(self)
    }

    fn route(&self, name: &str) -> Option<Arc<Route>> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes.by_name.get(name).cloned()
    }

    /// Counts a refusal and says it in the log (`Refusals`), never with the body.
    fn refuse(&self, what: &'static str, route: &str, status: StatusCode, error: &str) -> Response {
        self.refusals.note(&self.link, what, route, status.as_u16());
        (status, axum::Json(json!({"error": error}))).into_response()
    }

    /// Whether the route may take one more delivery this minute (fixed window, as Hermes);
    /// `take` counts it in.
    fn within_rate(&self, route: &Route, now: Instant, take: bool) -> bool {
        let mut rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        let window = rate.entry(route.name.clone()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if window.len() >= route.rate_limit as usize {
            return false;
        }
        if take {
            window.push_back(now);
        }
        true
    }

    fn rate_limited(&self, route: &str) -> Response {
        self.refuse(
            "refused_rate_limited",
            route,
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded",
        )
    }

    /// Where answers to a delivery on `route` go, with `deliver_extra` rendered over `payload`.
    fn deliver_target(&self, route: &Route, payload: &Value) -> Option<Deliver> {
        let DeliverTo::Platform(platform) = &route.deliver else {
            return None;
        };
        let extra = render::deliver_extra(&route.deliver_extra, payload);
        let text = |key: &str| {
            extra.get(key).and_then(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let thread = text("message_thread_id").or_else(|| text("thread_id"));
        let (chat, thread) = match text("chat_id") {
            Some(chat) => (chat, thread),
            None => match (self.home_channel)(platform) {
                Some((chat, home_thread)) => (chat, thread.or(home_thread)),
                // Direct delivery then fails with its reason; an agent's answer is refused.
                None => (String::new(), thread),
            },
        };
        Some(Deliver {
            platform: platform.clone(),
            chat,
            thread,
            direct: route.deliver_only,
        })
    }
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok", "platform": "webhook"})).into_response()
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(route) = r.route(&name) else {
        return r.refuse(
            "refused_unknown_route",
            "?",
            StatusCode::NOT_FOUND,
            "unknown route",
        );
    };
    if !route.enabled {
        return r.refuse(
            "refused_disabled",
            &name,
            StatusCode::FORBIDDEN,
            "route disabled",
        );
    }
    // Without a signature check a browser's cross-site POST could start agent runs; a browser
    // always says where it comes from, a webhook provider does not.
    if route.insecure() && headers.contains_key(header::ORIGIN) {
        return r.refuse(
            "refused_browser",
            &name,
            StatusCode::FORBIDDEN,
            "browser requests are refused",
        );
    }
    // A full window is answered from the head: the body of a delivery that cannot be taken
    // is never read. Signed deliveries are counted in only once verified, as Hermes does.
    if !r.within_rate(&route, Instant::now(), false) {
        return r.rate_limited(&name);
    }
    let body = match listener::body::read(body, r.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let (what, status) = receiver::body_refusal(e);
            let error = match e {
                listener::BodyError::TooLarge => "payload too large",
                listener::BodyError::TooSlow => "body too slow",
                listener::BodyError::Broken => "incomplete body",
            };
            return r.refuse(what, &name, status, error);
        }
    };
    let now_secs = crate::util::time::unix_secs() as i64;
    let mut scheme = None;
    if !route.insecure() {
        match signature::verify(&headers, &body, &route.secret, now_secs) {
            Ok(verified) => {
                if verified == signature::Scheme::GenericV1 {
                    warn_v1(&r, &name);
                }
                scheme = Some(verified);
            }
            Err(refusal) => {
                let what = match refusal {
                    Refusal::Missing => "refused_signature_missing",
                    Refusal::Mismatch => "refused_signature",
                    Refusal::Stale => "refused_signature_stale",
                };
                return r.refuse(what, &name, StatusCode::UNAUTHORIZED, "invalid signature");
            }
        }
    }
    if !r.within_rate(&route, Instant::now(), true) {
        return r.rate_limited(&name);
    }
    let Some(payload) = render::parse_payload(&body) else {
        return r.refuse(
            "refused_unparseable",
            &name,
            StatusCode::BAD_REQUEST,
            "cannot parse body",
        );
    };
    let message_id = scheme.map(|s| signature::replay_id(&name, s, &headers, &body));
    drop(body);
    let header_text = |key: &str| headers.get(key).and_then(|v| v.to_str().ok());
    let event = render::event_type(
        header_text("x-github-event"),
        header_text("x-gitlab-event"),
        &payload,
    );
    let filtered = if !route.events.is_empty() && !route.events.contains(&event) {
        Some(RouteFilter::EventNotAccepted)
    } else if !render::filters_match(&route.filters, &payload, &event, &header_map(&headers)) {
        Some(RouteFilter::FilterRejected)
    } else {
        None
    };
    let delivery_id = delivery_id(&headers);
    // The duplicate window keys on chat and id, so both come from what a replay cannot change.
    let key = message_id.unwrap_or_else(|| delivery_id.clone());
    let message = InboundMessage {
        chat: format!("webhook:{name}:{key}"),
        id: key,
        sender: format!("webhook:{name}"),
        sender_alt: None,
        is_group: false,
        chat_name: None,
        sender_is_bot: false,
        edited: false,
        from_me: false,
        push_name: Some(name.clone()),
        text: Some(render::prompt(&route.prompt, &payload, &event, &name)),
        media: None,
        mentions: Vec::new(),
        quoted: None,
        thread: None,
        timestamp: now_secs as u64,
        routed: Some(Box::new(Routed {
            filtered,
            deliver: if filtered.is_none() {
                r.deliver_target(&route, &payload)
            } else {
                None
            },
            payload: Some(payload),
        })),
        context: Vec::new(),
    };
    let recorded = receiver::record(&r.link, message, RECORDED_WAIT).await;
    answer(&r, recorded, &route, &event, &delivery_id)
}

/// The provider's answer from what the supervisor recorded.
fn answer(
    r: &Receiver,
    recorded: Option<Recorded>,
    route: &Route,
    event: &str,
    id: &str,
) -> Response {
    let Some(Recorded { outcome, reason }) = recorded else {
        r.link.count("unconfirmed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unconfirmed", "delivery_id": id})),
        )
            .into_response();
    };
    let body = |status: &str| json!({"status": status, "route": route.name, "event": event, "delivery_id": id, "reason": reason});
    match (outcome.as_str(), reason.as_str()) {
        ("delivered", _) => {
            r.link.count("accepted");
            let mut b = body("accepted");
            if route.deliver_only {
                b["mode"] = json!("direct");
                b["target"] = json!(route.deliver.name());
            }
            (StatusCode::ACCEPTED, axum::Json(b)).into_response()
        }
        ("ignored", "duplicate") => {
            r.link.count("duplicate");
            (StatusCode::OK, axum::Json(body("duplicate"))).into_response()
        }
        ("ignored", _) => {
            r.link.count("ignored");
            (StatusCode::OK, axum::Json(body("ignored"))).into_response()
        }
        _ => {
            r.link.count("failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body(&outcome))).into_response()
        }
    }
}

/// The provider's delivery id (GitHub's, Svix's, the generic request id, GitLab's event
/// UUID), else one made here. It names the delivery in the answer to the provider; the message
/// id and the chat (Hermes' session key, `webhook:<route>:<id>`) of a signed delivery come from
/// `signature::replay_id`, which a replay cannot change.
fn delivery_id(headers: &HeaderMap) -> String {
    [
        "x-github-delivery",
        "svix-id",
        "x-request-id",
        "x-gitlab-event-uuid",
    ]
    .iter()
    .filter_map(|k| headers.get(*k)?.to_str().ok())
    .map(str::trim)
    .find(|v| {
        !v.is_empty() && v.len() <= MAX_DELIVERY_ID && v.chars().all(|c| c.is_ascii_graphic())
    })
    .map(str::to_owned)
    .unwrap_or_else(|| {
        format!(
            "{}-{}",
            crate::util::time::unix_ms(std::time::SystemTime::now()),
            crate::util::random::hex::<4>()
        )
    })
}

/// Headers for filters (`headers.x-github-event`), names in lower case.
fn header_map(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect()
}

/// The body-only signature is replayable: said once per route and run.
fn warn_v1(r: &Receiver, route: &str) {
    let mut warned = r.v1_warned.lock().unwrap_or_else(|p| p.into_inner());
    if warned.insert(route.to_owned()) {
        eprintln!(
            "webhook: route {route:?} is signed with X-Webhook-Signature over the body alone, which a captured request can replay; switch the sender to X-Webhook-Signature-V2 with X-Webhook-Timestamp"
        );
    }
}
