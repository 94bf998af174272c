//! Every HTTP listener keeps the same rules whatever its clients do (`listener`): a request
//! head has a deadline, connections are capped (health still answered), and SIGTERM stops the
//! daemon in bounded time with nothing lost. Through the real listeners: `run --relay` (with
//! the scripted connector) and the drop-in API (`legacy`: node-bridge, Baileys and the fake
//! WhatsApp server).

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::whatsapp::FakeWhatsApp;
use crate::support::{BRIDGEKEEPER, connector, write_config_with};

/// A running daemon and the address of its listener.
struct Served {
    child: Child,
    addr: String,
    /// `status.json` of the daemon.
    status_file: PathBuf,
    _whatsapp: Option<FakeWhatsApp>,
}

impl Served {
    /// `run --config` with the relay on port 0; the connector emits `emit` messages of
    /// `text_bytes` each at start (kept in the relay buffer until a gateway acks them).
    fn relay(dir: &Path, env: &[(&str, &str)], emit: u64, text_bytes: usize) -> Self {
        let (emit, bytes) = (emit.to_string(), text_bytes.to_string());
        let fake = connector("whatsapp", &["--emit", &emit, "--text-bytes", &bytes], "");
        let config = write_config_with(dir, &[fake], "relay: {listen: '127.0.0.1:0'}");
        let mut cmd = Command::new(BRIDGEKEEPER);
        cmd.args(["run", "--config"])
            .arg(&config)
            .env("GATEWAY_RELAY_SECRET", crate::support::hermes::SECRET)
            .env_remove("GATEWAY_RELAY_ID");
        Self::spawn(
            cmd,
            env,
            "relay listening on http://",
            dir.join("state/status.json"),
            None,
        )
    }

    /// `legacy --port 0`: the drop-in API over the real WhatsApp stack.
    fn drop_in(dir: &Path, env: &[(&str, &str)]) -> Self {
        let server = FakeWhatsApp::start(dir);
        let (cmd, hermes) = server.legacy_command(dir, "WHATSAPP_DM_POLICY=open\n");
        let status = hermes.join("platforms/whatsapp/bridgekeeper/status.json");
        Self::spawn(cmd, env, "listening on http://", status, Some(server))
    }

    fn spawn(
        mut cmd: Command,
        env: &[(&str, &str)],
        says: &str,
        status_file: PathBuf,
        whatsapp: Option<FakeWhatsApp>,
    ) -> Self {
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("exited before listening").unwrap();
            if let Some(rest) = line.split(says).nth(1) {
                break rest.trim_end_matches("/relay").trim().to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            addr,
            status_file,
            _whatsapp: whatsapp,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// One request on a new connection: status and body.
    fn get(&self, path: &str, auth: bool) -> (u16, String) {
        let mut s = self.connect();
        let auth = if auth {
            format!(
                "Authorization: Bearer {}\r\n",
                crate::support::hermes::token_for("gw-test")
            )
        } else {
            String::new()
        };
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        (status, body)
    }

    fn sigterm(&self) -> Instant {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        Instant::now()
    }

    /// Waits for the exit (at most `limit`); its status and how long it took.
    fn wait_exit(
        &mut self,
        since: Instant,
        limit: Duration,
    ) -> (std::process::ExitStatus, Duration) {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, since.elapsed());
            }
            assert!(
                since.elapsed() < limit,
                "still running {limit:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn status(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.status_file).unwrap()).unwrap()
    }

    /// The first listener's entry in `status.json`, once `counter` has reached `at_least`.
    fn listener_counted(&self, counter: &str, at_least: u64) -> Value {
        crate::support::wait_blocking(&format!("{counter} >= {at_least} in status.json"), || {
            std::fs::read_to_string(&self.status_file)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|s| s["listeners"][0][counter].as_u64() >= Some(at_least))
        });
        self.status()["listeners"][0].clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long until the server closes `s` (end of file or reset), reading and dropping whatever
/// it answers first.
fn closed_after(mut s: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

/// A request line and one header, and nothing more.
fn half_open(served: &Served) -> TcpStream {
    let mut s = served.connect();
    s.write_all(b"GET /relay HTTP/1.1\r\nHost: x\r\n").unwrap();
    s
}

const SHORT_DEADLINE: [(&str, &str); 1] = [("BRIDGEKEEPER_LISTEN_HEADER_TIMEOUT_MS", "1000")];
/// Long enough that the connections are still open when the test stops the daemon.
const LONG_DEADLINE: [(&str, &str); 1] = [("BRIDGEKEEPER_LISTEN_HEADER_TIMEOUT_MS", "60000")];

/// A connection that asked once and keeps the connection alive, then says nothing more.
fn idle_after_a_request(served: &Served) -> TcpStream {
    let mut s = served.connect();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(s.read(&mut buf).unwrap() > 0, "an answer first");
    s
}

fn deadline_closes_half_open_and_silent_connections(served: &Served) {
    let half = half_open(served);
    let silent = served.connect();
    let idle = idle_after_a_request(served);
    for (what, s) in [
        ("half-open", half),
        ("silent", silent),
        ("idle kept-alive", idle),
    ] {
        let took = closed_after(s);
        assert!(
            took < Duration::from_secs(5),
            "{what} connection closed after {took:?}"
        );
    }
    // Counted, and the listener still serves.
    let (code, _) = served.get("/health", true);
    assert_eq!(code, 200);
}

#[test]
fn the_relay_closes_half_open_and_silent_connections_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::relay(dir.path(), &SHORT_DEADLINE, 0, 16);
    deadline_closes_half_open_and_silent_connections(&served);
}

#[test]
fn the_drop_in_api_closes_half_open_and_silent_connections_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::drop_in(dir.path(), &SHORT_DEADLINE);
    deadline_closes_half_open_and_silent_connections(&served);
    let listener = served.listener_counted("timed_out", 2);
    assert_eq!(listener["name"], "drop-in", "{listener}");
}

/// With a half-open request, a silent connection and a relay WebSocket whose peer stopped
/// reading (with a 15 MB backlog offered to it) all open, SIGTERM stops `run --relay` within a
/// few seconds, exit 0; every message is still in the relay buffer, and the ledger balances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_relay_whatever_its_clients_do_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let messages = 300;
    let mut served = Served::relay(dir.path(), &LONG_DEADLINE, messages, 50_000);
    let buffer = dir.path().join("state/relay-buffer.jsonl");
    crate::support::wait_for("the messages buffered", || {
        std::fs::read_to_string(&buffer).is_ok_and(|t| t.lines().count() as u64 >= messages)
    })
    .await;
    let port: u16 = served.addr.rsplit(':').next().unwrap().parse().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(crate::relay::ws_request(port, "gw-test"))
        .await
        .unwrap();
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        "{\"type\":\"hello\",\"platform\":\"whatsapp\"}\n",
    ))
    .await
    .unwrap();
    // From here on the gateway reads nothing: the relay's writes back up.
    let _half = half_open(&served);
    let _silent = served.connect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let since = served.sigterm();
    let (status, took) = served.wait_exit(since, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(8), "stopped after {took:?}");
    drop(ws);

    let status = served.status();
    let ledger = &status["connectors"][0]["ledger"];
    assert_eq!(ledger["received"], messages, "{ledger}");
    assert_eq!(
        ledger["awaiting_ack"], messages,
        "none acked, none lost: {ledger}"
    );
    assert_eq!(status["running"], false);
    // Every message is still in the buffer, for the next start to offer again.
    let restarted = Served::relay(dir.path(), &[], 0, 16);
    let (code, body) = restarted.get("/relay/health", true);
    assert_eq!(code, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["buffered"], messages, "{health}");
}

#[test]
fn sigterm_stops_the_drop_in_api_with_half_open_and_silent_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::drop_in(dir.path(), &LONG_DEADLINE);
    crate::support::wait_blocking("connected", || {
        served.get("/health", false).1.contains("\"connected\"")
    });
    let _half = half_open(&served);
    let _silent = served.connect();
    std::thread::sleep(Duration::from_millis(300));
    let since = served.sigterm();
    let (status, took) = served.wait_exit(since, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(8), "stopped after {took:?}");
    let status = served.status();
    assert_eq!(status["running"], false);
    let ledger = &status["connectors"][0]["ledger"];
    assert_eq!(ledger["failed"], serde_json::json!({}), "{ledger}");
}

/// Past the cap a newcomer is refused at once (503, counted in status), while `/health`
/// still answers.
#[test]
fn connections_over_the_cap_are_refused_while_health_answers() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BRIDGEKEEPER_LISTEN_HEADER_TIMEOUT_MS", "60000"),
        ("BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS", "3"),
        // Every test client is 127.0.0.1: this one is about the listener's own cap, so one
        // address may hold more than the listener has (a newcomer counts itself in).
        ("BRIDGEKEEPER_LISTEN_MAX_PER_CLIENT", "4"),
    ];
    let served = Served::relay(dir.path(), &env, 0, 16);
    let held: Vec<TcpStream> = (0..3).map(|_| served.connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (code, body) = served.get("/relay/policy", true);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("too_many_connections"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let (code, body) = served.get("/relay/health", true);
    assert_eq!(code, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert!(health.get("gateways").is_some(), "{health}");
    drop(held);
    let listener = served.listener_counted("refused", 1);
    assert_eq!(listener["name"], "relay");
    assert_eq!(listener["max_connections"], 3);
}

/// A stranger trickling request bodies (8 connections, a byte per segment, 20 s) costs the
/// daemon a few MiB at most on the relay's `/relay/policy` (here even with a valid token, so
/// the body is read) and each slow body is cut and counted; the gateway's requests meanwhile
/// are answered at once. Without a token, a POST announcing 3 MB gets 401 from its head.
#[test]
fn a_trickled_body_costs_the_relay_what_it_weighs() {
    relay_endpoint_under_trickle("/relay/policy", "application/json", 60_000);
}

/// The same attack on a media upload (a token holder trickling 20 MB): cut, counted, and the
/// relay's memory stays where it was.
#[test]
fn a_trickled_upload_costs_the_relay_what_it_weighs() {
    relay_endpoint_under_trickle("/relay/media", "application/octet-stream", 20_000_000);
}

/// Eight bodies of `length` trickled to `path` with the gateway's token: each is cut (408),
/// the relay grows by a few MiB at most, and its health answers at once meanwhile. Without the
/// token, or from a browser, the request is refused from its head.
fn relay_endpoint_under_trickle(path: &str, content_type: &str, length: usize) {
    use crate::support::attack::{answer_to_head, head, trickle_and_measure};
    let dir = tempfile::tempdir().unwrap();
    let served = Served::relay(dir.path(), &[], 0, 16);
    assert_eq!(served.get("/relay/health", true).0, 200);
    let bearer = format!(
        "Authorization: Bearer {}",
        crate::support::hermes::token_for("gw-test")
    );
    let content_type = format!("Content-Type: {content_type}");
    let trickling = head("POST", path, length, &[&content_type, &bearer]);
    trickle_and_measure("relay", &served.addr, &trickling, served.child.id(), || {
        let (code, body) = served.get("/relay/health", true);
        assert_eq!(code, 200, "{body}");
    });
    let listener = served.listener_counted("slow_body", 8);
    assert_eq!(listener["name"], "relay");
    let tokenless = head("POST", path, 3_000_000, &[&content_type]);
    assert_eq!(answer_to_head(&served.addr, &tokenless), 401);
    let browser = head(
        "POST",
        path,
        3_000_000,
        &[&bearer, "Origin: https://evil.example"],
    );
    assert_eq!(answer_to_head(&served.addr, &browser), 403);
}

/// The same attack on the drop-in API's `/send`: a few MiB at most, slow bodies cut, and the
/// Hermes adapter's requests meanwhile answered at once.
#[test]
fn a_trickled_body_costs_the_drop_in_api_what_it_weighs() {
    use crate::support::attack::{head, trickle_and_measure};
    let dir = tempfile::tempdir().unwrap();
    let served = Served::drop_in(dir.path(), &[]);
    assert_eq!(served.get("/health", false).0, 200);
    let trickling = head(
        "POST",
        "/send",
        500_000,
        &["Content-Type: application/json"],
    );
    trickle_and_measure(
        "drop-in API",
        &served.addr,
        &trickling,
        served.child.id(),
        || {
            let (code, body) = served.get("/health", false);
            assert_eq!(code, 200, "{body}");
        },
    );
    served.listener_counted("slow_body", 8);
}

/// One address may hold only its share of a listener's connections: with the cap at 4, a
/// client at 127.0.0.2 gets 2, its next ones 503 (counted by that reason), and the gateway at
/// 127.0.0.1 is still served.
#[test]
fn one_client_cannot_take_every_connection() {
    use crate::support::attack::{connect_from, status_of};
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BRIDGEKEEPER_LISTEN_HEADER_TIMEOUT_MS", "60000"),
        ("BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS", "4"),
    ];
    let served = Served::relay(dir.path(), &env, 0, 16);
    let port: u16 = served.addr.rsplit(':').next().unwrap().parse().unwrap();
    let stranger = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let held: Vec<TcpStream> = (0..2).map(|_| connect_from(stranger, port)).collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..2 {
        let mut extra = connect_from(stranger, port);
        extra
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        extra
            .write_all(b"GET /relay/policy HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = extra.read_to_end(&mut answer);
        assert_eq!(status_of(&answer), 503);
        assert!(
            String::from_utf8_lossy(&answer).contains("too_many_connections_from_client"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    let (code, body) = served.get("/relay/health", true);
    assert_eq!(code, 200, "the gateway's own address is served: {body}");
    drop(held);
    let listener = served.listener_counted("refused_per_client", 2);
    assert_eq!(listener["refused"], 0, "{listener}");
}
