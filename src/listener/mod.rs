//! The one way bridgekeeper serves HTTP: every listener (the relay, the drop-in API, and the
//! callback and webhook receivers of built-in connectors) goes through `serve`, so every one
//! keeps the same rules whatever its clients do:
//!
//! - a connection waiting for a request — new and silent, half-sent, or idle between
//!   requests — is closed after `header_timeout` (hyper's header timer, which starts as soon as
//!   the connection waits for a request head);
//! - a request's handler gets `request_timeout` (a handler that hangs): then 408, and the
//!   connection is closed;
//! - a request body must keep to the listener's `Pace` (`body.rs`), and handlers read it with
//!   `body::read`, which holds about the bytes that came, however they were cut up;
//! - at most `max_connections` at once, and at most `max_per_client` from one address; past
//!   either a newcomer is answered at once on a side lane (a few connections, one request
//!   each, a short deadline): health paths are served there, anything else is refused with
//!   503, and beyond the side lane the connection is closed unread. Each refusal is counted by
//!   its reason (`status`);
//! - on stop: no new connections; requests in flight get `stop_grace` to finish, idle
//!   connections close at once, and whatever is left then is dropped. The caller's own stop
//!   sequence always runs after a bounded wait.
//!
//! Upgraded connections (the relay's WebSockets) leave hyper here; their owner bounds them.

pub mod body;
pub mod counters;
pub mod limits;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

pub use body::{BodyError, Pace};
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
        let mut clients = Clients::default();
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
            let client = clients.take(peer.ip());
            let over_client_cap = Arc::strong_count(&client) - 1 > self.limits.max_per_client;
            let main = if over_client_cap {
                None
            } else {
                main_lane.clone().try_acquire_owned().ok()
            };
            let lane = if let Some(slot) = main {
                Lane {
                    side: None,
                    _slot: slot,
                    _client: client,
                }
            } else if let Ok(slot) = side_lane.clone().try_acquire_owned() {
                Lane {
                    side: Some(if over_client_cap {
                        Refused::PerClient
                    } else {
                        Refused::Full
                    }),
                    _slot: slot,
                    _client: client,
                }
            } else {
                let why = if over_client_cap {
                    Refused::PerClient
                } else {
                    Refused::Full
                };
                self.counters.count(why.counter(&self.counters));
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

/// A connection's slot: on the main lane, or (over a cap) on the side lane, with why; and its
/// place in its address's count.
struct Lane {
    side: Option<Refused>,
    _slot: tokio::sync::OwnedSemaphorePermit,
    _client: Arc<()>,
}

/// Why a connection is on the side lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The listener has `max_connections` open.
    Full,
    /// Its address has `max_per_client` open.
    PerClient,
}

impl Refused {
    /// Where a refusal for this reason is counted.
    fn counter(self, counters: &ListenerCounters) -> &std::sync::atomic::AtomicU64 {
        match self {
            Self::Full => &counters.refused,
            Self::PerClient => &counters.refused_per_client,
        }
    }
}

/// Connections open per client address, counted by the holders of each address's `Arc` (the
/// accept loop's own is not one), so no lock is taken and a closing connection counts itself
/// out by being dropped.
#[derive(Default)]
struct Clients {
    open: HashMap<IpAddr, Arc<()>>,
}

impl Clients {
    /// Entries of addresses with nothing open are let go past this many.
    const KEPT: usize = 1024;

    fn take(&mut self, ip: IpAddr) -> Arc<()> {
        if self.open.len() >= Self::KEPT {
            self.open.retain(|_, held| Arc::strong_count(held) > 1);
        }
        self.open.entry(ip).or_default().clone()
    }
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
        let open = OpenGuard::new(&self.counters, side.is_some());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(if side.is_some() {
                SIDE_LANE_HEADER_TIMEOUT
            } else {
                self.limits.header_timeout
            })
            .keep_alive(side.is_none());
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
                let (parts, incoming) = request.into_parts();
                let (paced, ended) = body::Paced::new(incoming, limits.pace(), counters.clone());
                let mut request = Request::from_parts(parts, Body::new(paced));
                request.extensions_mut().insert(ConnectInfo(info));
                if let Some(why) = side
                    && !health_paths.contains(&request.uri().path())
                {
                    counters.count(why.counter(&counters));
                    return Ok::<_, Infallible>(match why {
                        Refused::Full => too_many_connections(),
                        Refused::PerClient => too_many_from_client(),
                    });
                }
                let answered = tokio::time::timeout(
                    limits.request_timeout,
                    tower::ServiceExt::oneshot(router, request),
                )
                .await;
                Ok(match answered {
                    Ok(Ok(response)) => close_unless_read(response, &ended),
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

/// A response to a request whose body was not read to its end closes the connection: what is
/// left of the body is never read (a refusal from the head costs the sender's bytes nothing).
fn close_unless_read(mut response: Response<Body>, ended: &AtomicBool) -> Response<Body> {
    if !ended.load(Ordering::Relaxed) && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

fn too_many_from_client() -> Response<Body> {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"error":"too_many_connections_from_client","message":"this address has as many connections open as the listener allows one client; try again shortly"}"#,
    )
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
