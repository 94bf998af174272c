//! Prometheus metrics on `GET /metrics` (OpenMetrics text, the official `prometheus-client`
//! crate), at the address the operator sets: `metrics: {listen: ADDR}` in a config file, else
//! `BRIDGEKEEPER_METRICS` in the environment or Hermes' `.env`. Every figure comes from the
//! status board at scrape time, so a metric and `status --json` never disagree; names follow
//! Prometheus' conventions (`_total` counters, base units). Served through `crate::listener`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::record::board::{StatusBoard, StatusSnapshot};

/// The setting that names the address when the config file does not.
pub const SETTING: &str = "BRIDGEKEEPER_METRICS";

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{SETTING}={0:?} is not an address like 127.0.0.1:9464")]
    Address(String),
    #[error("cannot read {0}: {1}")]
    Read(std::path::PathBuf, std::io::Error),
    #[error("cannot listen for metrics on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Limits(#[from] crate::listener::LimitsError),
}

/// Binds the metrics listener where `configured` or the settings say, if anywhere, and serves
/// it until `stop`; says where on stderr.
pub async fn start(
    configured: Option<SocketAddr>,
    hermes_home: &Path,
    board: &StatusBoard,
    stop: tokio_util::sync::CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, MetricsError> {
    let home = hermes_home.to_owned();
    let found =
        tokio::task::spawn_blocking(move || address(configured, &|k| std::env::var(k).ok(), &home))
            .await
            .unwrap_or(Ok(None))?;
    let Some(at) = found else {
        return Ok(None);
    };
    let limits = crate::listener::Limits::from_env()?;
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| MetricsError::Bind(at, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| MetricsError::Bind(at, e))?;
    if !bound.ip().is_loopback() {
        eprintln!(
            "bridgekeeper: warning: metrics are served on {bound}, reachable from other machines"
        );
    }
    eprintln!("bridgekeeper: metrics on http://{bound}/metrics");
    Ok(Some(tokio::spawn(serve(
        listener,
        board.clone(),
        limits,
        stop,
    ))))
}

/// Where metrics are served: the config file's address, else `SETTING` from `lookup` (the
/// environment), else from Hermes' `.env` (a blocking read: call off the async workers).
pub fn address(
    configured: Option<SocketAddr>,
    lookup: &dyn Fn(&str) -> Option<String>,
    hermes_home: &Path,
) -> Result<Option<SocketAddr>, MetricsError> {
    if configured.is_some() {
        return Ok(configured);
    }
    let dotenv = hermes_home.join(".env");
    let raw = match lookup(SETTING).filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(v),
        None => crate::config::hermes::dotenv_value(&dotenv, SETTING)
            .map_err(|e| MetricsError::Read(dotenv.clone(), e))?,
    };
    raw.filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().parse().map_err(|_| MetricsError::Address(v)))
        .transpose()
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    board: StatusBoard,
    limits: crate::listener::Limits,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let address = listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    let counters = board.listener("metrics", &address, limits.max_connections);
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(Arc::new(board));
    crate::listener::Listener {
        router,
        limits,
        counters,
        health_paths: &["/metrics"],
        connect_info: crate::listener::peer_address,
    }
    .serve(listener, shutdown)
    .await;
}

async fn scrape(State(board): State<Arc<StatusBoard>>, headers: HeaderMap) -> Response {
    // A page in a browser has no business here; a scraper sends no Origin.
    if headers.contains_key(header::ORIGIN) {
        return (StatusCode::FORBIDDEN, "cross-site requests are refused\n").into_response();
    }
    let snapshot = board.snapshot();
    // /proc is read for the process figures: a blocking read.
    let rendered = tokio::task::spawn_blocking(move || render(&snapshot, &Process::now())).await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded\n",
        )
            .into_response(),
    }
}

/// This process's own figures, from `/proc/self`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Process {
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub cpu_seconds: f64,
    pub start_time_seconds: f64,
}

impl Process {
    /// What `/proc` says now (zeros where it says nothing).
    pub fn now() -> Self {
        let page = 4096;
        let ticks = 100.0;
        let resident_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * page);
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command's closing parenthesis: utime is the 14th field of the line.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<f64>().ok());
        let cpu_seconds = (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / ticks;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let start_time_seconds = boot + field(19).unwrap_or(0.0) / ticks;
        Self {
            resident_bytes,
            open_fds,
            cpu_seconds,
            start_time_seconds,
        }
    }
}

type Labels = Vec<(&'static str, String)>;

fn counters(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

fn gauges(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

/// The metrics of `snapshot` and `process`, as OpenMetrics text. Pure.
pub fn render(snapshot: &StatusSnapshot, process: &Process) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    let bk = registry.sub_registry_with_prefix("bridgekeeper");
    let up = gauges(bk, "connector_up", "1 when the connector is running");
    let state = gauges(
        bk,
        "connector_state",
        "1 for the state the connector is in, 0 for the others",
    );
    let restarts = counters(
        bk,
        "connector_restarts",
        "Restarts of the connector process",
    );
    let received = counters(bk, "messages_received", "Messages the connector read");
    let outcomes = counters(
        bk,
        "messages_outcome",
        "Messages by what became of them: delivered, paired (a code sent), replied",
    );
    let awaiting = gauges(
        bk,
        "messages_awaiting_ack",
        "Messages kept for a relay gateway's ack",
    );
    let ignored = counters(bk, "messages_ignored", "Messages not delivered, by reason");
    let failed = counters(bk, "messages_failed", "Messages lost on the way, by reason");
    let commands = counters(bk, "commands", "Commands by result");
    let queue = gauges(
        bk,
        "commands_queued",
        "Commands now waiting to be written, or written and waiting for their result",
    );
    let paced = counters(bk, "sends_paced", "Sends outbound pacing held back");
    let paced_seconds = Family::<Labels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    bk.register_with_unit(
        "sends_paced_wait",
        "How long outbound pacing held sends back, in all",
        Unit::Seconds,
        paced_seconds.clone(),
    );
    let line_errors = counters(bk, "connector_line_errors", "Invalid lines, by kind");
    let stderr = counters(
        bk,
        "connector_stderr_lines",
        "Lines the connector wrote on stderr",
    );
    let reported = gauges(
        bk,
        "connector_reported",
        "The connector's own counts from its last heartbeat (a receiver's refusals by reason)",
    );
    let forced = gauges(
        bk,
        "connector_forced_reconnects_last_hour",
        "Reconnects forced because the connection was deaf",
    );
    let open = gauges(bk, "listener_connections_open", "Connections open now");
    let accepted = counters(bk, "listener_connections_accepted", "Connections accepted");
    let refused = counters(
        bk,
        "listener_refusals",
        "Connections or requests refused, by reason",
    );

    for c in &snapshot.connectors {
        let who = || vec![("connector", c.name.clone())];
        let with = |k: &'static str, v: &str| {
            let mut l = who();
            l.push((k, v.to_owned()));
            l
        };
        let running = c.state == bridge_protocol::gateway::ConnectorStateName::Running;
        up.get_or_create(&who()).set(i64::from(running));
        for s in ALL_STATES {
            let on = i64::from(c.state == s);
            state.get_or_create(&with("state", s.as_str())).set(on);
        }
        restarts.get_or_create(&who()).inc_by(u64::from(c.restarts));
        let ledger = &c.ledger;
        received.get_or_create(&who()).inc_by(ledger.received);
        for (outcome, n) in [
            ("delivered", ledger.delivered),
            ("paired", ledger.paired),
            ("replied", ledger.replied),
        ] {
            outcomes.get_or_create(&with("outcome", outcome)).inc_by(n);
        }
        awaiting
            .get_or_create(&who())
            .set(i64::try_from(ledger.awaiting_ack).unwrap_or(i64::MAX));
        for (reason, n) in &ledger.ignored {
            ignored.get_or_create(&with("reason", reason)).inc_by(*n);
        }
        for (reason, n) in &ledger.failed {
            failed.get_or_create(&with("reason", reason)).inc_by(*n);
        }
        let cmd = &c.commands;
        for (result, n) in [
            ("accepted", cmd.accepted),
            ("ok", cmd.ok),
            ("failed", cmd.failed),
            ("timed_out", cmd.timed_out),
            ("rejected", cmd.rejected),
        ] {
            commands.get_or_create(&with("result", result)).inc_by(n);
        }
        let depth = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        queue
            .get_or_create(&with("queue", "waiting"))
            .set(depth(cmd.waiting));
        queue
            .get_or_create(&with("queue", "in_flight"))
            .set(depth(cmd.in_flight));
        paced.get_or_create(&who()).inc_by(cmd.paced);
        paced_seconds
            .get_or_create(&who())
            .inc_by(cmd.paced_ms as f64 / 1000.0);
        for (kind, n) in &c.line_errors {
            line_errors.get_or_create(&with("kind", kind)).inc_by(*n);
        }
        stderr.get_or_create(&who()).inc_by(c.stderr_lines);
        for (name, n) in &c.counts {
            let n = i64::try_from(*n).unwrap_or(i64::MAX);
            reported.get_or_create(&with("count", name)).set(n);
        }
        forced
            .get_or_create(&who())
            .set(i64::from(c.liveness.forced_reconnects_last_hour));
    }
    for l in &snapshot.listeners {
        let who = || vec![("listener", l.name.clone())];
        open.get_or_create(&who())
            .set(i64::try_from(l.open).unwrap_or(i64::MAX));
        accepted.get_or_create(&who()).inc_by(l.accepted);
        for (reason, n) in [
            ("full", l.refused),
            ("per_client", l.refused_per_client),
            ("timed_out", l.timed_out),
            ("slow_body", l.slow_body),
        ] {
            let mut labels = who();
            labels.push(("reason", reason.to_owned()));
            refused.get_or_create(&labels).inc_by(n);
        }
    }

    if let Some(relay) = &snapshot.relay {
        relay_metrics(&mut registry, relay);
    }

    let resident = Gauge::<i64>::default();
    resident.set(i64::try_from(process.resident_bytes).unwrap_or(i64::MAX));
    registry.register_with_unit(
        "process_resident_memory",
        "Resident memory",
        Unit::Bytes,
        resident,
    );
    let fds = Gauge::<i64>::default();
    fds.set(i64::try_from(process.open_fds).unwrap_or(i64::MAX));
    registry.register("process_open_fds", "Open file descriptors", fds);
    let cpu = Counter::<f64, std::sync::atomic::AtomicU64>::default();
    cpu.inc_by(process.cpu_seconds);
    registry.register_with_unit("process_cpu", "CPU time used", Unit::Seconds, cpu);
    let start = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    start.set(process.start_time_seconds);
    registry.register_with_unit(
        "process_start_time",
        "When the process started, since the Unix epoch",
        Unit::Seconds,
        start,
    );

    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// The relay's figures (`relay::hub::Hub::status`, in the snapshot as JSON).
fn relay_metrics(registry: &mut Registry, relay: &serde_json::Value) {
    let bk = registry.sub_registry_with_prefix("bridgekeeper_relay");
    let n = |k: &str| relay[k].as_u64().unwrap_or(0);
    let gauge = |bk: &mut Registry, name: &str, help: &str, v: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        bk.register(name, help, g);
    };
    let counter = |bk: &mut Registry, name: &str, help: &str, v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        bk.register(name, help, c);
    };
    let connected = relay["gateways"].as_array().map_or(0, Vec::len) as u64;
    gauge(
        bk,
        "gateways_connected",
        "Hermes gateways connected now",
        connected,
    );
    gauge(
        bk,
        "buffered",
        "Delivered messages waiting for a gateway's ack",
        n("buffered"),
    );
    gauge(
        bk,
        "buffer_capacity",
        "How many the relay buffer holds",
        n("bufferCapacity"),
    );
    counter(bk, "acked", "Messages a gateway acked", n("acked"));
    counter(
        bk,
        "resent",
        "Messages sent again for want of an ack",
        n("resent"),
    );
    counter(
        bk,
        "failed_buffer_full",
        "Messages failed because the relay buffer was full",
        n("failedBufferFull"),
    );
}

const ALL_STATES: [bridge_protocol::gateway::ConnectorStateName; 9] = {
    use bridge_protocol::gateway::ConnectorStateName as S;
    [
        S::Starting,
        S::Running,
        S::Backoff,
        S::Stopping,
        S::Stopped,
        S::Failed,
        S::NeedsRelink,
        S::Conflict,
        S::NeedsToken,
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relays_figures_are_metrics_when_it_runs() {
        let board = StatusBoard::new(
            std::path::PathBuf::from("/nonexistent/status.json"),
            &["wa"],
        );
        let without = render(&board.snapshot(), &Process::default()).unwrap();
        assert!(!without.contains("bridgekeeper_relay_"));
        board.set_relay(
            serde_json::json!({"gateways": [{"gateway": "gw"}], "buffered": 3,
            "bufferCapacity": 10000, "acked": 7, "resent": 1, "failedBufferFull": 0}),
        );
        let text = render(&board.snapshot(), &Process::default()).unwrap();
        for line in [
            "bridgekeeper_relay_gateways_connected 1",
            "bridgekeeper_relay_buffered 3",
            "bridgekeeper_relay_acked_total 7",
            "bridgekeeper_relay_resent_total 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn an_address_comes_from_the_config_then_the_environment_then_dotenv() {
        let home = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let set = |_: &str| Some("127.0.0.1:9100".to_owned());
        let configured: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(
            address(Some(configured), &set, home.path()).unwrap(),
            Some(configured)
        );
        assert_eq!(
            address(None, &set, home.path()).unwrap(),
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert_eq!(address(None, &none, home.path()).unwrap(), None);
        std::fs::write(
            home.path().join(".env"),
            "BRIDGEKEEPER_METRICS=127.0.0.1:9200\n",
        )
        .unwrap();
        assert_eq!(
            address(None, &none, home.path()).unwrap(),
            Some("127.0.0.1:9200".parse().unwrap())
        );
        let bad = |_: &str| Some("port nine".to_owned());
        assert!(matches!(
            address(None, &bad, home.path()),
            Err(MetricsError::Address(_))
        ));
    }
}
