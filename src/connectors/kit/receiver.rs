//! What a connector that receives over HTTP (webhooks, WeCom's callbacks) does around its
//! routes: bind its address, take the listener limits from the environment, and serve through
//! `crate::listener` — reporting the listener's counts with its heartbeats and, each second,
//! that its runtime is alive (a receiver has no server to hear from).

use std::sync::Arc;
use std::time::Duration;

use bridge_protocol::exit;
use bridge_protocol::message::ConnectionState;

use super::Link;
use crate::listener::{Limits, Listener, ListenerCounters};

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
    }
}
