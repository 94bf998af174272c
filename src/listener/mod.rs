//! The one way bridgekeeper serves HTTP: every listener (the relay, the drop-in API, and the
//! callback and webhook receivers of built-in connectors) goes through `serve`, so every one
//! keeps the same rules whatever its clients do:
//!
//! - a connection waiting for a request — new and silent, half-sent, or idle between
//!   requests — is closed after `header_timeout` (hyper's header timer, which starts as soon as
//!   the connection waits for a request head);
//! - a request's handler gets `request_timeout` (a body that trickles in, a handler that
//!   hangs): then 408, and the connection is closed;
//! - at most `max_connections` at once; past that a newcomer is answered at once on a side lane
//!   (a few connections, one request each, a short deadline): health paths are served there,
//!   anything else is refused with 503, and beyond the side lane the connection is closed
//!   unread. Each refusal is counted (`status`);
//! - on stop: no new connections; requests in flight get `stop_grace` to finish, idle
//!   connections close at once, and whatever is left then is dropped. The caller's own stop
//!   sequence always runs after a bounded wait.
//!
//! Upgraded connections (the relay's WebSockets) leave hyper here; their owner bounds them.

pub mod counters;
pub mod limits;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use counters::ListenerCounters;
pub use limits::{Limits, LimitsError};

/// Connections served on the side lane when the main one is full.
const SIDE_LANE: usize = 8;
/// The side lane's deadline for a request head.
const SIDE_LANE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// One listener's routes and rules.
pub struct Listener<I> {
    pub router: Router,
    pub limits: Limits,
    pub counters: Arc<ListenerCounters>,
    /// Paths still answered when the listener is full (`GET /health`).
    pub health_paths: &'static [&'static str],
    /// What handlers find as `ConnectInfo<I>`, made from each accepted connection.
    pub connect_info: fn(&TcpStream, SocketAddr) -> I,
}

impl<I: Clone + Send + Sync + 'static> Listener<I> {
    /// Serves until `shutdown`, then stops as the module says. Accept errors (out of file
    /// descriptors, say) are waited out, never fatal.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        let main_lane = Arc::new(Semaphore::new(self.limits.max_connections));
        let side_lane = Arc::new(Semaphore::new(SIDE_LANE));
        let stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            let info = (self.connect_info)(&stream, peer);
            let lane = if let Ok(slot) = main_lane.clone().try_acquire_owned() {
                Lane {
                    side: false,
                    _slot: slot,
                }
            } else if let Ok(slot) = side_lane.clone().try_acquire_owned() {
                Lane {
                    side: true,
                    _slot: slot,
                }
            } else {
                self.counters.count(&self.counters.refused);
                drop(stream);
                continue;
            };
            let connection = Connection {
                router: self.router.clone(),
                limits: self.limits,
                counters: self.counters.clone(),
                health_paths: self.health_paths,
                info,
            };
            connections.spawn(connection.run(stream, lane, stop.clone()));
        }
        drop(listener);
        stop.cancel();
        let drained = tokio::time::timeout(self.limits.stop_grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            let left = connections.len();
            connections.shutdown().await;
            tracing::warn!(
                left,
                "connections still open at the end of the stop grace were closed"
            );
        }
    }
}

/// A connection's slot: on the main lane, or (over the cap) on the side lane.
struct Lane {
    side: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

struct Connection<I> {
    router: Router,
    limits: Limits,
    counters: Arc<ListenerCounters>,
    health_paths: &'static [&'static str],
    info: I,
}

impl<I: Clone + Send + Sync + 'static> Connection<I> {
    async fn run(self, stream: TcpStream, lane: Lane, stop: CancellationToken) {
        let side = lane.side;
        let open = OpenGuard::new(&self.counters, side);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(if side {
                SIDE_LANE_HEADER_TIMEOUT
            } else {
                self.limits.header_timeout
            })
            .keep_alive(!side);
        let Self {
            router,
            limits,
            counters,
            health_paths,
            info,
        } = self;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let router = router.clone();
            let counters = counters.clone();
            let info = info.clone();
            async move {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(info));
                if side && !health_paths.contains(&request.uri().path()) {
                    counters.count(&counters.refused);
                    return Ok::<_, Infallible>(too_many_connections());
                }
                let answered = tokio::time::timeout(
                    limits.request_timeout,
                    tower::ServiceExt::oneshot(router, request),
                )
                .await;
                Ok(match answered {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        counters.count(&counters.timed_out);
                        request_timed_out()
                    }
                })
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            _ = stop.cancelled() => {
                // Finishes a request in flight, closes an idle connection; the listener's
                // grace bounds the rest.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = ended
            && e.is_timeout()
        {
            open.counters.count(&open.counters.timed_out);
        }
        drop(lane);
    }
}

/// Counts a connection open for as long as it lives.
struct OpenGuard {
    counters: Arc<ListenerCounters>,
    side: bool,
}

impl OpenGuard {
    fn new(counters: &Arc<ListenerCounters>, side: bool) -> Self {
        if !side {
            counters.open.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            counters: counters.clone(),
            side,
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if !self.side {
            self.counters.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn json_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

fn too_many_connections() -> Response<Body> {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"error":"too_many_connections","message":"this listener has as many connections open as it allows; try again shortly"}"#,
    )
}

fn request_timed_out() -> Response<Body> {
    json_response(
        StatusCode::REQUEST_TIMEOUT,
        r#"{"error":"request_timeout","message":"the request was not read and answered in time"}"#,
    )
}

/// `connect_info` for listeners whose handlers want the peer's address.
pub fn peer_address(_: &TcpStream, peer: SocketAddr) -> SocketAddr {
    peer
}
