//! End to end with the real WhatsApp stack: the local fake WhatsApp server, the real Baileys
//! library inside the real node-bridge, and the real supervisor. Nothing here is mocked.

use bridge_protocol::gateway::{ConnectorStateName, GatewayEvent};
use bridge_protocol::message::ConnectionState;
use serde_json::json;

use crate::support::whatsapp::{FakeWhatsApp, node_bridge_dir};
use crate::support::{TestDaemon, events_named, wait_for};

const FRIEND: &str = "15551234567";
const STRANGER: &str = "15557654321";

struct Stack {
    server: FakeWhatsApp,
    d: TestDaemon,
    session: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// The fake server, a linked session, and bridgekeeper running node-bridge with `policy`.
    async fn start(policy: &str) -> Self {
        Self::start_with(policy, "").await
    }

    /// `env`: more `KEY: value` pairs for node-bridge's environment.
    async fn start_with(policy: &str, env: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = FakeWhatsApp::start(dir.path());
        let session = dir.path().join("session");
        let extra = format!(
            "{policy}\nrestart: {{initial_backoff_ms: 100, max_backoff_ms: 1000, jitter: 0.0, max_restarts: 5, window_ms: 60000}}"
        );
        let connector = server.node_bridge_connector(dir.path(), &extra, env);
        let mut d = TestDaemon::start(&[connector]).await;
        d.wait_event("the WhatsApp connection to open", |e| {
            matches!(e, GatewayEvent::Connection { status, .. } if status.state == ConnectionState::Open)
        })
        .await;
        Self {
            server,
            d,
            session,
            _dir: dir,
        }
    }

    /// Waits until the WhatsApp connection has opened `n` times in all (a reconnect is the
    /// second).
    async fn wait_opens(&mut self, n: usize) {
        let opens = |d: &TestDaemon| {
            d.seen
                .iter()
                .filter(|e| matches!(e, GatewayEvent::Connection { status, .. } if status.state == ConnectionState::Open))
                .count()
        };
        while opens(&self.d) < n {
            self.d.next_event().await;
        }
    }

    async fn inbound_text(&mut self, text: &str) -> Box<bridge_protocol::message::InboundMessage> {
        match self
            .d
            .wait_event("an inbound message", |e| {
                matches!(e, GatewayEvent::Inbound { message, .. } if message.text.as_deref() == Some(text))
            })
            .await
        {
            GatewayEvent::Inbound { message, .. } => message,
            _ => unreachable!(),
        }
    }
}

#[tokio::test]
async fn an_allowed_dm_reaches_the_gateway_and_the_reply_is_accepted_by_the_server() {
    let mut s =
        Stack::start("policy: {mode: bot, dm_policy: allowlist, allow_from: ['15551234567']}")
            .await;
    s.server.inject_dm(FRIEND, "hello bridgekeeper");
    let message = s.inbound_text("hello bridgekeeper").await;
    assert_eq!(message.chat, format!("{FRIEND}@s.whatsapp.net"));
    assert_eq!(message.push_name.as_deref(), Some("Tester"));

    let reply = s
        .d
        .request(json!({"type": "send_text", "connector": "whatsapp", "chat": message.chat, "text": "hello from the agent"}))
        .await;
    assert!(reply.ok, "{reply:?}");
    let sent_id = reply.data.unwrap()["message_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    // The server acknowledged it: the send is confirmed beyond "written".
    s.d.wait_event("the server's ack", |e| {
        matches!(e, GatewayEvent::Receipt { receipt, .. }
            if receipt.message_id == sent_id && receipt.status == bridge_protocol::message::ReceiptStatus::ServerAck)
    })
    .await;
    wait_for("the server to record the reply", || {
        !s.server.accepted_sends().is_empty()
    })
    .await;
    assert_eq!(
        s.server.accepted_sends(),
        vec![(
            format!("{FRIEND}@s.whatsapp.net"),
            "hello from the agent".to_owned()
        )]
    );
    s.d.stop().await;
    let log = s.d.log();
    let decisions = events_named(&log, "decision", "whatsapp");
    assert_eq!(
        (
            decisions[0]["outcome"].as_str(),
            decisions[0]["reason"].as_str()
        ),
        (Some("delivered"), Some("allowlisted"))
    );
    assert!(
        events_named(&log, "connection", "whatsapp")
            .iter()
            .any(|e| e["state"] == "open")
    );
    assert!(
        events_named(&log, "command_result", "whatsapp")
            .iter()
            .any(|e| e["ok"] == true)
    );
    assert!(!sent_id.is_empty());
    // Baileys wrote its key files (sessions, device lists, LID mappings) during the exchange:
    // all of them private, like the directory.
    use std::os::unix::fs::PermissionsExt;
    let files: Vec<(String, u32)> = std::fs::read_dir(&s.session)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            (e.file_name().to_string_lossy().into_owned(), mode)
        })
        .collect();
    assert!(files.len() > 2, "{files:?}");
    assert!(files.iter().all(|(_, mode)| *mode == 0o600), "{files:?}");
}

#[tokio::test]
async fn a_strangers_dm_gets_a_pairing_code_through_the_real_server() {
    let mut s = Stack::start("policy: {mode: bot, dm_policy: pairing}").await;
    s.server.inject_dm(STRANGER, "who are you?");
    wait_for("the pairing code to be sent", || {
        !s.server.accepted_sends().is_empty()
    })
    .await;
    let sends = s.server.accepted_sends();
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0].0, format!("{STRANGER}@s.whatsapp.net"));
    assert!(sends[0].1.contains("Your pairing code: "), "{}", sends[0].1);
    let status = s.d.status().await;
    let ledger = &status.connectors[0].ledger;
    // Baileys may already have echoed our own send back: that is `ignored: own_echo`.
    assert_eq!(
        (ledger.paired, ledger.delivered, ledger.unaccounted()),
        (1, 0, 0),
        "{ledger:?}"
    );
    assert!(ledger.ignored.keys().all(|r| r == "own_echo"), "{ledger:?}");
    assert!(
        s.d.inbound_ids().is_empty(),
        "the stranger's message must not reach the gateway"
    );
    s.d.stop().await;
}

#[tokio::test]
async fn killing_node_bridge_mid_conversation_restarts_it_and_the_next_message_arrives() {
    let mut s = Stack::start("policy: {mode: bot, dm_policy: open}").await;
    s.server.inject_dm(FRIEND, "first");
    s.inbound_text("first").await;
    let pid = s.d.status().await.connectors[0]
        .pid
        .expect("node-bridge pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    s.d.wait_state("whatsapp", ConnectorStateName::Backoff)
        .await;
    s.d.wait_event("running again", |e| {
        matches!(
            e,
            GatewayEvent::ConnectorState {
                state: ConnectorStateName::Running,
                restarts: 1,
                ..
            }
        )
    })
    .await;
    // Wait for the second connection to open before the next message is sent.
    s.wait_opens(2).await;
    s.server.inject_dm(FRIEND, "second");
    let second = s.inbound_text("second").await;
    assert_eq!(second.chat, format!("{FRIEND}@s.whatsapp.net"));
    let status = s.d.status().await;
    let c = &status.connectors[0];
    assert_eq!(c.restarts, 1);
    assert_eq!(
        c.last_exit.as_ref().unwrap().exit.reason,
        "killed_by_signal"
    );
    assert_eq!(c.ledger.delivered, 2);
    s.d.stop().await;
}

// With no config file, `run` starts the WhatsApp connector with Hermes' paths and settings.
#[tokio::test]
async fn run_without_a_config_serves_the_hermes_account() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let server = FakeWhatsApp::start(dir.path());
    let hermes = dir.path().join("hermes");
    server.seed_session(&hermes.join("platforms/whatsapp/session"));
    std::fs::write(
        hermes.join(".env"),
        "WHATSAPP_MODE=bot\nWHATSAPP_DM_POLICY=open\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(crate::support::BRIDGEKEEPER)
        .arg("run")
        .env("HERMES_HOME", &hermes)
        .env("WHATSAPP_WEB_SOCKET_URL", &server.ws_url)
        .env(
            "BRIDGEKEEPER_NODE_BRIDGE",
            node_bridge_dir().join("src/index.js"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        move || serde_json::from_str::<GatewayEvent>(&lines.next().unwrap().unwrap()).unwrap();
    let opened = tokio::task::spawn_blocking(move || {
        while !matches!(next(), GatewayEvent::Connection { status, .. } if status.state == ConnectionState::Open)
        {
        }
        next
    });
    let mut next = crate::support::within("the connection to open", opened)
        .await
        .unwrap();
    server.inject_dm(FRIEND, "via hermes home");
    let arrived = tokio::task::spawn_blocking(move || {
        loop {
            if let GatewayEvent::Inbound { message, .. } = next() {
                return message.text;
            }
        }
    });
    assert_eq!(
        crate::support::within("the message", arrived)
            .await
            .unwrap()
            .as_deref(),
        Some("via hermes home")
    );
    assert!(
        hermes.join("platforms/whatsapp/bridge.log").exists(),
        "bridge.log where Hermes keeps it"
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// node-bridge frozen (SIGSTOP): its process and pipes are there, nothing answers. The
/// supervisor's ping goes unanswered, the connector is killed and restarted as `hung`, and the
/// next message arrives. Test-sized thresholds are config, not a test-only path.
#[tokio::test]
async fn a_frozen_node_bridge_is_found_hung_and_restarted() {
    let mut s = Stack::start(
        "policy: {mode: bot, dm_policy: open}\nliveness: {ping_interval_ms: 300, ping_timeout_ms: 600, silence_ms: 0}",
    )
    .await;
    s.server.inject_dm(FRIEND, "before");
    s.inbound_text("before").await;
    let pid = s.d.status().await.connectors[0]
        .pid
        .expect("node-bridge pid");
    let frozen_at = std::time::Instant::now();
    // If the test fails, the frozen process must not stay behind stopped (it would never see
    // its stdin close).
    struct Thaw(i32);
    impl Drop for Thaw {
        fn drop(&mut self) {
            let pid = nix::unistd::Pid::from_raw(self.0);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let _thaw = Thaw(pid as i32);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    s.d.wait_event(
        "the hung alert",
        |e| matches!(e, GatewayEvent::Alert { code, .. } if code == "connector_hung"),
    )
    .await;
    s.wait_opens(2).await;
    let recovered_in = frozen_at.elapsed();
    s.server.inject_dm(FRIEND, "after");
    s.inbound_text("after").await;
    let status = s.d.status().await;
    let c = &status.connectors[0];
    assert_eq!(c.restarts, 1);
    assert_eq!(c.last_exit.as_ref().unwrap().exit.reason, "hung");
    assert!(!crate::support::alive(pid), "the frozen process is gone");
    eprintln!(
        "frozen node-bridge: connection open again after {:.3}s",
        recovered_in.as_secs_f64()
    );
    s.d.stop().await;
}

/// 100 replies to many chats in one burst: all reach the fake server, paced — the account's
/// rate and burst, the gap between different chats — and every request gets its one result.
#[tokio::test]
async fn a_burst_of_replies_to_many_chats_is_paced_and_all_arrive() {
    const N_CHATS: usize = 10;
    let mut s = Stack::start(
        "policy: {mode: bot, dm_policy: open}\npacing: {per_minute: 600, burst: 5, chat_per_minute: 300, chat_burst: 3, gap_min_ms: 10, gap_max_ms: 30}",
    )
    .await;
    let chats: Vec<String> = (0..N_CHATS)
        .map(|i| format!("1555000{i:04}@s.whatsapp.net"))
        .collect();
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for i in 0..100 {
        let chat = &chats[i % chats.len()];
        ids.push(
            s.d.send(json!({"type": "send_text", "connector": "whatsapp", "chat": chat, "text": format!("reply {i}")}))
                .await,
        );
    }
    let mut sent = std::collections::HashSet::new();
    for id in &ids {
        let r = s.d.result_of(id).await;
        assert!(r.ok, "{r:?}");
        sent.insert(
            r.data.unwrap()["message_ids"][0]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let took = started.elapsed();
    // Every one reached the fake server: it acknowledged each.
    let acked = |d: &TestDaemon| {
        d.seen
            .iter()
            .filter(|e| {
                matches!(e, GatewayEvent::Receipt { receipt, .. }
                if receipt.status == bridge_protocol::message::ReceiptStatus::ServerAck
                    && sent.contains(&receipt.message_id))
            })
            .count()
    };
    while acked(&s.d) < 100 {
        s.d.next_event().await;
    }

    // 5 at once, then 10 a second: at least 95 / 10 s.
    assert!(took >= std::time::Duration::from_millis(9_400), "{took:?}");
    s.d.stop().await;
    let log = s.d.log();
    let written: Vec<(String, String)> = events_named(&log, "command_written", "whatsapp")
        .iter()
        .map(|e| {
            (
                e["ts"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(written.len(), 100);
    // No second within the burst window holds more than burst + rate sends.
    let secs: Vec<i64> = written
        .iter()
        .map(|(ts, _)| {
            let t: std::time::SystemTime = humantime::parse_rfc3339(ts).unwrap();
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
        })
        .collect();
    for (i, t) in secs.iter().enumerate() {
        let in_window = secs[i..].iter().take_while(|u| **u < t + 1_000).count();
        assert!(
            in_window <= 5 + 20 + 1,
            "{in_window} sends within 1 s from #{i}"
        );
    }
    eprintln!("100 paced replies to {N_CHATS} chats took {took:?}");
}

/// A deaf server: the fake WhatsApp server frozen (SIGSTOP) keeps its sockets open and sends
/// nothing. node-bridge's heartbeats show no server frame; the watchdog forces a reconnect; a
/// reply written into the silence is reported unconfirmed; once the server is back the
/// connection is re-established by itself and the next message arrives.
#[tokio::test]
async fn a_deaf_server_is_noticed_and_the_connection_recovers_by_itself() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut s = Stack::start_with(
        "policy: {mode: bot, dm_policy: open}\nliveness: {transport_inactive_ms: 2000, reconnect_cooldown_ms: 0, max_reconnects_per_hour: 10}",
        "BRIDGEKEEPER_HEARTBEAT_MS: '200', WHATSAPP_KEEPALIVE_MS: '400'",
    )
    .await;
    s.server.inject_dm(FRIEND, "before");
    s.inbound_text("before").await;
    // Healthy and idle for a while: server frames keep coming, no forced reconnect.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(
        s.d.status().await.connectors[0].restarts,
        0,
        "no reconnect while healthy"
    );

    let server = Pid::from_raw(s.server.pid() as i32);
    kill(server, Signal::SIGSTOP).unwrap();
    let reply = s
        .d
        .send(json!({"type": "send_text", "connector": "whatsapp", "chat": format!("{FRIEND}@s.whatsapp.net"), "text": "into the silence"}))
        .await;
    s.d.wait_event(
        "the deaf alert",
        |e| matches!(e, GatewayEvent::Alert { code, .. } if code == "connection_deaf"),
    )
    .await;
    let result = s.d.result_of(&reply).await;
    let error = result.error.expect("the send cannot be confirmed");
    assert!(error.unconfirmed, "{error:?}");
    let resumed = std::time::Instant::now();
    kill(server, Signal::SIGCONT).unwrap();
    s.wait_opens(2).await;
    let recovery = resumed.elapsed();
    s.server.inject_dm(FRIEND, "after");
    s.inbound_text("after").await;
    let status = s.d.status().await;
    let c = &status.connectors[0];
    assert!(c.restarts >= 1);
    assert!(
        c.liveness.forced_reconnects_last_hour >= 1,
        "{:?}",
        c.liveness
    );
    assert_eq!(
        c.liveness.last_forced_reason.as_deref(),
        Some("transport_inactive")
    );
    eprintln!(
        "deaf server: open again {:.3}s after it came back",
        recovery.as_secs_f64()
    );
    s.d.stop().await;
}

/// A quiet but healthy connection: server frames keep coming, no message arrives. With
/// `app_silent` on, the watchdog reconnects at most the capped number of times, then gives up
/// (failed, with a critical alert) — never a reconnect loop.
#[tokio::test]
async fn a_quiet_connection_is_reconnected_at_most_the_capped_number_of_times() {
    let mut s = Stack::start_with(
        "policy: {mode: bot, dm_policy: open}\nliveness: {app_silent_ms: 800, reconnect_cooldown_ms: 0, max_reconnects_per_hour: 2}",
        "BRIDGEKEEPER_HEARTBEAT_MS: '200', WHATSAPP_KEEPALIVE_MS: '400'",
    )
    .await;
    s.d.wait_state("whatsapp", ConnectorStateName::Failed).await;
    let status = s.d.status().await;
    let c = &status.connectors[0];
    assert_eq!(c.restarts, 2, "exactly the cap");
    assert_eq!(c.liveness.last_forced_reason.as_deref(), Some("app_silent"));
    s.d.stop().await;
    let log = s.d.log();
    let deaf = events_named(&log, "connection_deaf", "whatsapp");
    let actions: Vec<&str> = deaf.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["reconnect", "reconnect", "give_up"]);
}

/// Waits up to `limit` for an event matching `pred`, through quiet stretches longer than the
/// usual patience (the baselines below wait out Baileys' own timers). `None`: it did not come.
async fn event_within(
    d: &mut TestDaemon,
    limit: std::time::Duration,
    mut pred: impl FnMut(&GatewayEvent) -> bool,
) -> Option<std::time::Duration> {
    let started = std::time::Instant::now();
    if d.seen.iter().any(&mut pred) {
        return Some(std::time::Duration::ZERO);
    }
    while started.elapsed() < limit {
        let step = std::time::Duration::from_secs(5).min(limit - started.elapsed());
        if let Ok(event) = tokio::time::timeout(step, d.next_event()).await
            && pred(&event)
        {
            return Some(started.elapsed());
        }
    }
    None
}

/// Benchmark baseline, run by `scripts/bench/recovery.sh` (ignored otherwise: minutes long).
/// A deaf server with bridgekeeper's own checks off, which leaves what the old `bridge.js`
/// relies on: Baileys 7.0.0-rc13's keepalive at its default (30 s, the socket is ended once
/// nothing has come back for 35 s) and a reconnect whenever the socket closes.
#[tokio::test]
#[ignore = "benchmark baseline, minutes long: scripts/bench/recovery.sh runs it"]
async fn baseline_deaf_server_with_only_the_baileys_keepalive() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    const FREEZE: std::time::Duration = std::time::Duration::from_secs(90);
    let mut s = Stack::start(
        "policy: {mode: bot, dm_policy: open}\nliveness: {ping_interval_ms: 0, silence_ms: 0, transport_inactive_ms: 0}",
    )
    .await;
    s.server.inject_dm(FRIEND, "before");
    s.inbound_text("before").await;
    let server = Pid::from_raw(s.server.pid() as i32);
    kill(server, Signal::SIGSTOP).unwrap();
    let closed = event_within(&mut s.d, FREEZE, |e| {
        matches!(e, GatewayEvent::Connection { status, .. } if status.state == ConnectionState::Closed)
    })
    .await;
    if let Some(after) = closed {
        tokio::time::sleep(FREEZE.saturating_sub(after)).await;
    }
    kill(server, Signal::SIGCONT).unwrap();
    // Only an open after the resume counts (the server could not open anything while frozen).
    s.d.seen.clear();
    let open_again = event_within(&mut s.d, std::time::Duration::from_secs(300), |e| {
        matches!(e, GatewayEvent::Connection { status, .. } if status.state == ConnectionState::Open)
    })
    .await;
    let show = |d: Option<std::time::Duration>| {
        d.map_or("never".to_owned(), |d| format!("{:.3}s", d.as_secs_f64()))
    };
    eprintln!(
        "baseline deaf server: socket closed by Baileys {} into the freeze; open again {} after it came back",
        show(closed),
        show(open_again)
    );
    s.d.stop().await;
}

/// Benchmark baseline, run by `scripts/bench/recovery.sh`: a frozen connector with the ping
/// off. Nothing else watches a process that is alive but stuck (Hermes 0.19.0's adapter only
/// notices the bridge's exit), so this measures how long it stays stuck: the whole window.
#[tokio::test]
#[ignore = "benchmark baseline, minutes long: scripts/bench/recovery.sh runs it"]
async fn baseline_frozen_node_bridge_without_the_ping() {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
    let mut s = Stack::start(
        "policy: {mode: bot, dm_policy: open}\nliveness: {ping_interval_ms: 0, silence_ms: 0, transport_inactive_ms: 0}",
    )
    .await;
    let pid = s.d.status().await.connectors[0]
        .pid
        .expect("node-bridge pid");
    let target = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP).unwrap();
    s.server.inject_dm(FRIEND, "while frozen");
    let arrived = event_within(&mut s.d, WINDOW, |e| {
        matches!(e, GatewayEvent::Inbound { message, .. } if message.text.as_deref() == Some("while frozen"))
    })
    .await;
    let restarts = s.d.status().await.connectors[0].restarts;
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
    eprintln!(
        "baseline frozen node-bridge: {} within {}s, {restarts} restarts",
        if arrived.is_some() {
            "recovered"
        } else {
            "not recovered"
        },
        WINDOW.as_secs()
    );
    s.d.stop().await;
}

/// node-bridge's `hello` says exactly the ops WhatsApp's description lists (the relay will tell
/// Hermes these): the two are written in two languages and held together here.
#[test]
fn node_bridges_hello_names_the_ops_of_its_description() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("node")
        .arg(node_bridge_dir().join("src/index.js"))
        .arg("--session")
        .arg(dir.path().join("session"))
        .env("WHATSAPP_WEB_SOCKET_URL", "ws://127.0.0.1:9/ws")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let hello: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(
        hello["capabilities"],
        json!(bridgekeeper::connectors::whatsapp::DESCRIPTION.ops),
    );
}

/// Hermes' reaction lifecycle on WhatsApp (👀 while it works, taken back, then ✅): real Baileys
/// sends each as an encrypted `reaction` message to the DM's chat, and the server accepts all
/// three. (The fake server decrypts only text: that the take-back is an empty reaction to the
/// DM's key is node-bridge's own test.)
#[tokio::test]
async fn reactions_to_a_dm_are_sent_and_taken_back() {
    let mut s =
        Stack::start("policy: {mode: bot, dm_policy: allowlist, allow_from: ['15551234567']}")
            .await;
    s.server.inject_dm(FRIEND, "react to me");
    let message = s.inbound_text("react to me").await;
    for emoji in ["👀", "", "✅"] {
        let r =
            s.d.request(
                json!({"type": "react", "connector": "whatsapp", "chat": message.chat,
                "message_id": message.id, "emoji": emoji}),
            )
            .await;
        assert!(r.ok, "{emoji:?}: {r:?}");
    }
    let reactions = || {
        std::fs::read_to_string(&s.server.recorder)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                e["accepted"] == true
                    && e["body"]["tag"] == "message"
                    && e["body"]["attrs"]["type"] == "reaction"
                    && e["body"]["attrs"]["to"] == message.chat.as_str()
            })
            .count()
    };
    wait_for("the server to accept three reactions", || reactions() == 3).await;
    s.d.stop().await;
}

/// A group's message through real Baileys: before passing it on, node-bridge asks WhatsApp for
/// the group's subject (its `chat_name`), in bounded time and once per group (the asking is
/// `test/groups.test.js`'s). crabline cannot answer that query (it ends the connection), so
/// what is proven here is that the message still arrives, as a group's, without a name.
#[tokio::test]
async fn a_group_message_arrives_though_the_server_gives_no_subject() {
    const GROUP: &str = "120363000000000001@g.us";
    let mut s = Stack::start(
        "policy: {mode: bot, dm_policy: open, group_policy: open, require_mention: false}",
    )
    .await;
    s.server.inject_group(GROUP, FRIEND, "hello group");
    let m = s.inbound_text("hello group").await;
    assert!(m.is_group, "{m:?}");
    assert_eq!((m.chat.as_str(), m.chat_name.as_deref()), (GROUP, None));
}
