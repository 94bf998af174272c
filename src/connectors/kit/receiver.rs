//! What a connector that receives over HTTP (webhooks, WeCom's callbacks) does around its
//! routes: bind its address, take the listener limits from the environment, and serve through
//! `crate::listener` — reporting the listener's counts with its heartbeats and, each second,
//! that its runtime is alive (a receiver has no server to hear from).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge_protocol::exit;
use bridge_protocol::message::{ConnectionState, InboundMessage};

use super::Link;
use super::link::Recorded;
use crate::listener::{BodyError, Limits, Listener, ListenerCounters};

/// A bound receiver, not yet serving.
pub struct Bound {
    listener: tokio::net::TcpListener,
    limits: Limits,
    /// `http://<address it is bound to>`.
    pub base_url: String,
}

/// Binds `host:port` (port 0: any free one) with the listener limits of the environment
/// (`default_max_connections` unless `BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS` says otherwise).
/// `Err` is the exit code, said first on stderr and in the connection's status.
pub async fn bind(
    link: &Link,
    connector: &str,
    host: &str,
    port: u16,
    default_max_connections: Option<&str>,
) -> Result<Bound, i32> {
    let limits = Limits::from_lookup(|key| {
        std::env::var(key).ok().or_else(|| {
            (key == "BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS")
                .then(|| default_max_connections.map(str::to_owned))
                .flatten()
        })
    })
    .map_err(|e| {
        eprintln!("{connector}: {e}");
        link.status(ConnectionState::Closed, Some(format!("config: {e}")));
        exit::FATAL
    })?;
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = tokio::net::TcpListener::bind(&address).await.map_err(|e| {
        eprintln!("{connector}: cannot listen on {address}: {e}");
        link.status(
            ConnectionState::Closed,
            Some(format!("cannot listen on {address}: {e}")),
        );
        exit::RESTART_BACKOFF
    })?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(address);
    Ok(Bound {
        listener,
        limits,
        base_url: format!("http://{bound}"),
    })
}

impl Bound {
    /// Says the connection is open (`listening on <url>`) and serves `router` until the
    /// process ends.
    pub async fn serve(self, link: Arc<Link>, router: axum::Router, url: &str) -> i32 {
        let counters = Arc::new(ListenerCounters::default());
        tokio::spawn(report(link.clone(), counters.clone()));
        link.status(ConnectionState::Open, Some(format!("listening on {url}")));
        Listener {
            router,
            limits: self.limits,
            counters,
            health_paths: &["/health"],
            connect_info: crate::listener::peer_address,
        }
        .serve(self.listener, tokio_util::sync::CancellationToken::new())
        .await;
        exit::CLEAN
    }
}

/// Every second: the listener's counts into the heartbeat's, and a sign of life.
async fn report(link: Arc<Link>, counters: Arc<ListenerCounters>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        link.heard();
        link.set_count("connections_open", counters.open.load(Relaxed));
        link.set_count("connections_refused", counters.refused.load(Relaxed));
        link.set_count("connections_timed_out", counters.timed_out.load(Relaxed));
        link.set_count(
            "connections_refused_per_client",
            counters.refused_per_client.load(Relaxed),
        );
        link.set_count("bodies_too_slow", counters.slow_body.load(Relaxed));
    }
}

/// Hands `message` to the supervisor and waits (off the runtime's workers, at most `max`) for
/// what it recorded: a receiver answers its sender only from that.
pub async fn record(link: &Arc<Link>, message: InboundMessage, max: Duration) -> Option<Recorded> {
    let link = link.clone();
    let id = message.id.clone();
    tokio::task::spawn_blocking(move || {
        link.inbound(message);
        link.wait_outcome(&id, max)
    })
    .await
    .ok()
    .flatten()
}

/// How a receiver refuses a body `listener::body::read` would not take: its counted kind and
/// status.
pub fn body_refusal(e: BodyError) -> (&'static str, axum::http::StatusCode) {
    let what = match e {
        BodyError::TooLarge => "refused_too_large",
        BodyError::TooSlow => "refused_too_slow",
        BodyError::Broken => "refused_broken_body",
    };
    (what, e.status())
}

/// A refusal of one kind in one scope (a route) is written to the log at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// A receiver's refusals: each counted (`status`, through the heartbeat's counts) and said in
/// the log without the request's body, at most once a minute per kind and scope, with how many
/// there were — a flood is one line a minute.
pub struct Refusals {
    connector: &'static str,
    /// What one request is called in the log line (`POST`, `callback`).
    noun: &'static str,
    logged: Mutex<RefusalLog>,
}

/// By kind and scope: when last written to the log, and how many refusals since.
type RefusalLog = HashMap<(&'static str, String), (Option<Instant>, u64)>;

impl Refusals {
    pub fn new(connector: &'static str, noun: &'static str) -> Self {
        Self {
            connector,
            noun,
            logged: Mutex::default(),
        }
    }

    /// Counts a refusal of kind `what` (answered `status`); `scope` names where (a route),
    /// empty for the whole receiver.
    pub fn note(&self, link: &Link, what: &'static str, scope: &str, status: u16) {
        link.count(what);
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // `None` until the first is logged: an Instant a minute back may not exist yet (the
        // clock starts near boot).
        let entry = logged.entry((what, scope.to_owned())).or_insert((None, 0));
        entry.1 += 1;
        if entry
            .0
            .is_none_or(|last| now.duration_since(last) >= REFUSAL_LOG_EVERY)
        {
            let scope = if scope.is_empty() {
                String::new()
            } else {
                format!(" to route {scope:?}")
            };
            eprintln!(
                "{}: refused {} {}(s){scope} ({what}, HTTP {status}) in the last minute",
                self.connector, entry.1, self.noun
            );
            *entry = (Some(now), 0);
        }
    }
}
