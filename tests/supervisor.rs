//! The supervisor driven in-process over the gateway link, with the fake connector as child.

use bridge_protocol::gateway::{ConnectorStateName, GatewayEvent, Severity};
use serde_json::{Value, json};

use crate::support::{TestDaemon, alive, connector, events_named, pids, wait_for};

fn ledger_balances(status: &bridgekeeper::record::board::StatusSnapshot) {
    for c in &status.connectors {
        assert_eq!(
            c.ledger.unaccounted(),
            0,
            "ledger of {} does not add up: {:?}",
            c.name,
            c.ledger
        );
    }
}

fn is_state(e: &GatewayEvent, name: &str, want: ConnectorStateName, want_restarts: u32) -> bool {
    matches!(e, GatewayEvent::ConnectorState { connector, state, restarts, .. }
        if connector == name && *state == want && *restarts == want_restarts)
}

fn alert_code(e: &GatewayEvent, name: &str) -> Option<String> {
    match e {
        GatewayEvent::Alert {
            connector: Some(c),
            code,
            severity,
            ..
        } if c == name => {
            assert_eq!(*severity, Severity::Critical);
            Some(code.clone())
        }
        _ => None,
    }
}

fn steps(log: &[Value], name: &str) -> Vec<String> {
    events_named(log, "stop_step", name)
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn forwards_inbound_messages_and_answers_commands() {
    let mut d = TestDaemon::start(&[connector("fake", &["--emit", "5", "--echo"], "")]).await;
    d.wait_state("fake", ConnectorStateName::Running).await;
    let result = d
        .request(json!({"type": "send_text", "connector": "fake", "chat": "15551234567@s.whatsapp.net", "text": "hi"}))
        .await;
    assert!(result.ok, "{result:?}");
    assert_eq!(result.data.unwrap()["message_ids"][0], "sent-1");
    d.wait_event(
        "echo",
        |e| matches!(e, GatewayEvent::Inbound { message, .. } if message.id == "echo-1"),
    )
    .await;
    let ids = d.inbound_ids();
    for i in 0..5 {
        assert!(ids.contains(&format!("m1-{i}")), "{ids:?}");
    }
    let status = d.status().await;
    let ledger = &status.connectors[0].ledger;
    assert_eq!((ledger.received, ledger.delivered), (6, 6));
    ledger_balances(&status);
    d.stop().await;
    assert_eq!(events_named(&d.log(), "decision", "fake").len(), 6);
}

#[tokio::test]
async fn crashes_are_restarted_with_growing_backoff_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("starts");
    let mut d = TestDaemon::start(&[connector(
        "fake",
        &["--exit-after-ms", "30", "--exit-code", "3", "--crash-first", "3", "--emit", "1",
          "--counter", counter.to_str().unwrap()],
        "restart: {initial_backoff_ms: 100, max_backoff_ms: 1000, multiplier: 2.0, jitter: 0.0, healthy_after_ms: 60000, max_restarts: 5, window_ms: 60000}",
    )])
    .await;
    d.wait_event("running after 3 restarts", |e| {
        is_state(e, "fake", ConnectorStateName::Running, 3)
    })
    .await;
    // The fourth process's message, so the ledger below has all four.
    d.wait_event(
        "m4-0",
        |e| matches!(e, GatewayEvent::Inbound { message, .. } if message.id == "m4-0"),
    )
    .await;
    let log = d.log();
    let delays: Vec<u64> = events_named(&log, "restart_scheduled", "fake")
        .iter()
        .map(|e| e["after_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, vec![100, 200, 400]);
    // The respawn really waited: spawn time minus exit time is at least the delay.
    let times = |name: &str| -> Vec<std::time::SystemTime> {
        events_named(&log, name, "fake")
            .iter()
            .map(|e| humantime::parse_rfc3339(e["ts"].as_str().unwrap()).unwrap())
            .collect()
    };
    let (exits, spawns) = (times("connector_exited"), times("connector_spawned"));
    for (i, delay) in delays.iter().enumerate() {
        let waited = spawns[i + 1].duration_since(exits[i]).unwrap();
        assert!(
            waited.as_millis() as u64 + 2 >= *delay,
            "restart {i} waited {waited:?}"
        );
    }
    let status = d.status().await;
    let c = &status.connectors[0];
    assert_eq!((c.state, c.restarts), (ConnectorStateName::Running, 3));
    let last = c.last_exit.as_ref().unwrap();
    assert_eq!(
        (last.exit.reason.as_str(), last.exit.code),
        ("crashed", Some(3))
    );
    // Each start emitted one message; all four are in the ledger.
    assert_eq!(c.ledger.received, 4);
    ledger_balances(&status);
    d.stop().await;
}

#[tokio::test]
async fn the_intensity_limit_fails_one_connector_and_spares_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("bad.pids");
    let mut d = TestDaemon::start(&[
        connector(
            "bad",
            &["--exit-after-ms", "5", "--pid-file", pid_file.to_str().unwrap()],
            "restart: {initial_backoff_ms: 10, max_backoff_ms: 50, jitter: 0.0, max_restarts: 3, window_ms: 60000}",
        ),
        connector("good", &[], ""),
    ])
    .await;
    d.wait_event("restart_limit alert", |e| {
        alert_code(e, "bad").as_deref() == Some("restart_limit")
    })
    .await;
    d.wait_state("bad", ConnectorStateName::Failed).await;
    assert_eq!(pids(&pid_file).len(), 4, "one start and three restarts");

    let pong = d
        .request(json!({"type": "ping", "connector": "good"}))
        .await;
    assert!(pong.ok, "{pong:?}");
    let refused = d.request(json!({"type": "ping", "connector": "bad"})).await;
    assert_eq!(refused.error.unwrap().code, "connector_unavailable");
    let status = d.status().await;
    assert_eq!(status.connectors[0].state, ConnectorStateName::Failed);
    assert_eq!(status.connectors[1].state, ConnectorStateName::Running);
    assert_eq!(status.connectors[1].restarts, 0);
    d.stop().await;
}

#[tokio::test]
async fn logged_out_and_replaced_connectors_are_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.pids"), dir.path().join("b.pids"));
    let mut d = TestDaemon::start(&[
        // Says so by exit code.
        connector(
            "relink",
            &[
                "--exit-after-ms",
                "20",
                "--exit-code",
                "12",
                "--pid-file",
                a.to_str().unwrap(),
            ],
            "",
        ),
        // Says so by a status report, then exits with a generic code.
        connector(
            "replaced",
            &[
                "--exit-after-ms",
                "20",
                "--exit-code",
                "1",
                "--report-state",
                "conflict",
                "--pid-file",
                b.to_str().unwrap(),
            ],
            "",
        ),
    ])
    .await;
    d.wait_event("logged_out alert", |e| {
        alert_code(e, "relink").as_deref() == Some("logged_out")
    })
    .await;
    d.wait_event("conflict alert", |e| {
        alert_code(e, "replaced").as_deref() == Some("session_conflict")
    })
    .await;
    d.wait_state("relink", ConnectorStateName::NeedsRelink)
        .await;
    d.wait_state("replaced", ConnectorStateName::Conflict).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(pids(&a).len(), 1);
    assert_eq!(pids(&b).len(), 1);
    let status = d.status().await;
    assert_eq!(
        status.connectors[0].last_exit.as_ref().unwrap().exit.reason,
        "logged_out"
    );
    assert_eq!(
        status.connectors[1].last_exit.as_ref().unwrap().exit.reason,
        "conflict"
    );
    assert_eq!(
        status.connectors[0].restarts + status.connectors[1].restarts,
        0
    );
    d.stop().await;
}

#[tokio::test]
async fn a_well_behaved_connector_stops_when_its_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let mut d = TestDaemon::start(&[connector(
        "fake",
        &["--grandchild", "--pid-file", pid_file.to_str().unwrap()],
        "stop: {stdin_grace_ms: 20000, term_grace_ms: 20000}",
    )])
    .await;
    d.wait_state("fake", ConnectorStateName::Running).await;
    d.stop().await;
    // It left on stdin close: no signal was needed (the grace before SIGTERM is 20 s).
    assert_eq!(steps(&d.log(), "fake"), vec!["stdin_closed"]);
    let exited = events_named(&d.log(), "connector_exited", "fake")[0].clone();
    assert_eq!(
        (exited["reason"].as_str(), exited["code"].as_i64()),
        (Some("stopped"), Some(0))
    );
    for (_, pid) in pids(&pid_file) {
        wait_for("connector and grandchild to be gone", || !alive(pid)).await;
    }
    let status =
        bridgekeeper::record::board::read_status_file(&d.state_dir.join("status.json")).unwrap();
    assert!(!status.running);
    assert_eq!(status.connectors[0].state, ConnectorStateName::Stopped);
}

#[tokio::test]
async fn a_stubborn_connector_gets_sigterm_then_sigkill_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let mut d = TestDaemon::start(&[connector(
        "stubborn",
        &[
            "--ignore-stdin-eof",
            "--ignore-sigterm",
            "--grandchild",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        "stop: {stdin_grace_ms: 200, term_grace_ms: 200}",
    )])
    .await;
    d.wait_state("stubborn", ConnectorStateName::Running).await;
    d.stop().await;
    assert_eq!(
        steps(&d.log(), "stubborn"),
        vec!["stdin_closed", "sigterm", "sigkill"]
    );
    let exited = events_named(&d.log(), "connector_exited", "stubborn")[0].clone();
    assert_eq!(exited["signal"], 9);
    let all = pids(&pid_file);
    assert_eq!(all.len(), 2);
    for (_, pid) in all {
        wait_for("connector and grandchild to be gone", || !alive(pid)).await;
    }
}

#[tokio::test]
async fn garbage_and_oversized_lines_are_counted_and_decoding_goes_on() {
    let mut d = TestDaemon::start(&[connector(
        "noisy",
        &[
            "--emit",
            "10",
            "--garbage",
            "--oversized",
            "5000",
            "--stderr-line",
            "dialing 15551234567@s.whatsapp.net on port 443, 4194304 bytes",
        ],
        "max_line_bytes: 1024",
    )])
    .await;
    wait_for_inbound(&mut d, 10).await;
    let status = d.status().await;
    let c = &status.connectors[0];
    let errors: Vec<(&str, u64)> = c
        .line_errors
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        errors,
        vec![
            ("invalid_message", 1),
            ("invalid_utf8", 1),
            ("not_json", 1),
            ("too_long", 1),
            ("unknown_type", 1)
        ]
    );
    assert_eq!(c.ledger.received, 10);
    assert_eq!(
        c.state,
        ConnectorStateName::Running,
        "bad lines do not kill the link"
    );
    d.stop().await;
    let log = d.log();
    assert_eq!(events_named(&log, "connector_line_error", "noisy").len(), 5);
    let stderr = events_named(&log, "connector_stderr", "noisy");
    assert_eq!(
        stderr[0]["line"], "dialing …4567@s.whatsapp.net on port 443, 4194304 bytes",
        "identities masked outside debug mode, other numbers kept"
    );
}

/// A connector that prints its own credential (a URL with its bot token, as an HTTP client's
/// error does): the secret settings its platform's description names are taken out of every
/// stderr line before bridge.log, whatever program it is.
#[tokio::test]
async fn a_connectors_secret_on_its_stderr_never_reaches_bridge_log() {
    let token = "123456:s3cr3t-value-xyz";
    let mut d = TestDaemon::start(&[connector(
        "tg",
        &[
            "--emit",
            "1",
            "--stderr-line",
            &format!("GET https://api.telegram.org/bot{token}/getUpdates failed"),
        ],
        &format!("platform: telegram\nenv: {{TELEGRAM_BOT_TOKEN: '{token}'}}"),
    )])
    .await;
    wait_for_inbound(&mut d, 1).await;
    d.stop().await;
    let log = d.log();
    let stderr = events_named(&log, "connector_stderr", "tg");
    assert_eq!(
        stderr[0]["line"],
        "GET https://api.telegram.org/bot<TELEGRAM_BOT_TOKEN>/getUpdates failed"
    );
    let text = std::fs::read_to_string(d.state_dir.join("bridge.log")).unwrap();
    assert!(!text.contains("s3cr3t-value-xyz"));
}

async fn wait_for_inbound(d: &mut TestDaemon, n: usize) {
    let mut count = d.inbound_ids().len();
    while count < n {
        if matches!(d.next_event().await, GatewayEvent::Inbound { .. }) {
            count += 1;
        }
    }
}

/// A daemon whose fake connector exits `after_ms` after its first start only (the starts are
/// counted in a file kept in the returned dir); later starts run normally.
async fn crashing_once(
    after_ms: &str,
    args: &[&str],
    extra: &str,
) -> (TestDaemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("starts");
    let mut all = vec![
        "--exit-after-ms",
        after_ms,
        "--crash-first",
        "1",
        "--counter",
        counter.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let d = TestDaemon::start(&[connector("fake", &all, extra)]).await;
    (d, dir)
}

#[tokio::test]
async fn commands_sent_during_a_restart_wait_in_the_queue_and_are_delivered() {
    let (mut d, _dir) = crashing_once(
        "50",
        &[],
        "restart: {initial_backoff_ms: 700, max_backoff_ms: 1000, jitter: 0.0}",
    )
    .await;
    d.wait_state("fake", ConnectorStateName::Backoff).await;
    let id = d.send(json!({"type": "ping", "connector": "fake"})).await;
    let result = d.result_of(&id).await;
    assert!(result.ok, "{result:?}");
    assert_eq!(
        result.data.unwrap()["pong"],
        2,
        "answered by the restarted process"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_command_in_flight_when_the_connector_dies_is_reported_unconfirmed() {
    let (mut d, _dir) = crashing_once("400", &["--no-answer"], "").await;
    d.wait_state("fake", ConnectorStateName::Running).await;
    let result = d
        .request(json!({"type": "send_text", "connector": "fake", "chat": "1@s.whatsapp.net", "text": "hello"}))
        .await;
    let error = result.error.expect("an explicit failure");
    assert_eq!(
        (error.code.as_str(), error.unconfirmed),
        ("connector_exited", true)
    );
    d.stop().await;
}

// Invariant 4: a sent message whose server ack was never reported is not left looking like a
// success when its connector dies: the supervisor reports it unconfirmed.
#[tokio::test]
async fn sends_without_a_server_ack_are_reported_unconfirmed_when_the_connector_dies() {
    let (mut d, _dir) = crashing_once("500", &[], "").await;
    d.wait_state("fake", ConnectorStateName::Running).await;
    let sent = d
        .request(json!({"type": "send_text", "connector": "fake", "chat": "15551234567@s.whatsapp.net", "text": "hi"}))
        .await;
    let id = sent.data.unwrap()["message_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let receipt = d
        .wait_event(
            "an unconfirmed receipt",
            |e| matches!(e, GatewayEvent::Receipt { receipt, .. } if receipt.message_id == id),
        )
        .await;
    let GatewayEvent::Receipt { receipt, .. } = receipt else {
        unreachable!()
    };
    assert_eq!(
        receipt.status,
        bridge_protocol::message::ReceiptStatus::Unconfirmed
    );
    assert_eq!(receipt.chat, "15551234567@s.whatsapp.net");
    d.stop().await;
    let log = d.log();
    assert!(
        events_named(&log, "receipt", "fake")
            .iter()
            .any(|e| e["status"] == "unconfirmed")
    );
}

#[tokio::test]
async fn a_full_queue_and_a_timeout_are_explicit_errors() {
    let mut d = TestDaemon::start(&[connector(
        "mute",
        &["--no-answer"],
        "commands: {queue: 2, timeout_ms: 300}",
    )])
    .await;
    d.wait_state("mute", ConnectorStateName::Running).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(d.send(json!({"type": "ping", "connector": "mute"})).await);
    }
    let third = d.result_of(&ids[2]).await;
    assert_eq!(third.error.unwrap().code, "queue_full");
    for id in &ids[..2] {
        let e = d.result_of(id).await.error.unwrap();
        assert_eq!((e.code.as_str(), e.unconfirmed), ("timeout", true));
    }
    // A per-request timeout overrides the default.
    let quick = d
        .request(json!({"type": "ping", "connector": "mute", "timeout_ms": 50}))
        .await;
    assert_eq!(quick.error.unwrap().code, "timeout");
    let status = d.status().await;
    let k = &status.connectors[0].commands;
    assert_eq!((k.accepted, k.timed_out, k.rejected), (3, 3, 1));
    d.stop().await;
}

#[tokio::test]
async fn a_connector_with_another_protocol_version_is_failed_not_looped() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let mut d = TestDaemon::start(&[connector(
        "future",
        &["--protocol", "99", "--pid-file", pid_file.to_str().unwrap()],
        "",
    )])
    .await;
    d.wait_event("fatal alert", |e| {
        alert_code(e, "future").as_deref() == Some("connector_fatal")
    })
    .await;
    d.wait_state("future", ConnectorStateName::Failed).await;
    assert_eq!(pids(&pid_file).len(), 1);
    let log = d.log();
    let mismatch = events_named(&log, "protocol_mismatch", "future");
    assert_eq!(
        (
            mismatch[0]["expected"].as_u64(),
            mismatch[0]["got"].as_u64()
        ),
        (Some(1), Some(99))
    );
    d.stop().await;
}

#[tokio::test]
async fn a_connector_that_never_says_hello_is_killed_and_restarted() {
    let mut d = TestDaemon::start(&[connector(
        "silent",
        &["--no-hello"],
        "hello_timeout_ms: 150\nrestart: {initial_backoff_ms: 10, max_backoff_ms: 10, jitter: 0.0, max_restarts: 2, window_ms: 60000}",
    )])
    .await;
    d.wait_state("silent", ConnectorStateName::Failed).await;
    let log = d.log();
    assert_eq!(events_named(&log, "hello_timeout", "silent").len(), 3);
    let reasons: Vec<&str> = events_named(&log, "connector_exited", "silent")
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, vec!["hello_timeout"; 3]);
    d.stop().await;
}

#[tokio::test]
async fn bad_gateway_lines_get_line_errors_and_the_link_goes_on() {
    let mut d = TestDaemon::start(&[connector("fake", &[], "")]).await;
    d.send_line(b"this is not json").await;
    d.send_line(br#"{"type":"format_disk","id":"x"}"#).await;
    d.send_line(b"{\"type\":\"status\",\"id\":\"\xff\"}").await;
    let kinds: Vec<(u64, String)> = {
        let mut kinds = Vec::new();
        while kinds.len() < 2 {
            if let GatewayEvent::LineError { kind, line, .. } = d.next_event().await {
                kinds.push((line, kind));
            }
        }
        kinds
    };
    assert_eq!(
        kinds,
        vec![(1, "not_json".into()), (3, "invalid_utf8".into())]
    );
    // A bad line that names its id is answered with a result instead.
    let unknown_type = d.result_of("x").await;
    assert_eq!(unknown_type.error.unwrap().code, "unknown_type");
    let no_connector = d
        .request(json!({"type": "send_text", "chat": "1@s.whatsapp.net", "text": "x"}))
        .await;
    assert_eq!(no_connector.error.unwrap().code, "connector_required");
    let unknown = d
        .request(json!({"type": "ping", "connector": "nope"}))
        .await;
    assert_eq!(unknown.error.unwrap().code, "unknown_connector");
    let pong = d.request(json!({"type": "ping"})).await;
    assert!(pong.ok);
    d.stop().await;
    assert_eq!(
        d.log()
            .iter()
            .filter(|e| e["event"] == "gateway_line_error")
            .count(),
        3
    );
}

#[tokio::test]
async fn a_slow_gateway_slows_the_connector_and_loses_nothing() {
    const N: usize = 20_000;
    // A 4 KiB pipe and a 64-event buffer: the flood cannot fit anywhere but in the connector.
    let mut d = TestDaemon::start_with(
        &[connector(
            "flood",
            &["--emit", &N.to_string(), "--text-bytes", "200"],
            "",
        )],
        4096,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // While the gateway does not read, the supervisor holds only a bounded backlog.
    let received = d.status_via_file().await;
    assert!(
        received < N as u64,
        "all {N} messages were taken in while the gateway was stalled"
    );
    wait_for_inbound(&mut d, N).await;
    let ids = d.inbound_ids();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), N);
    let status = d.status().await;
    assert_eq!(status.connectors[0].ledger.delivered, N as u64);
    ledger_balances(&status);
    d.stop().await;
}

impl TestDaemon {
    /// Messages received so far, from the status file (the gateway link may be stalled).
    async fn status_via_file(&self) -> u64 {
        let path = self.state_dir.join("status.json");
        wait_for("status.json", || path.exists()).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        bridgekeeper::record::board::read_status_file(&path)
            .unwrap()
            .connectors[0]
            .ledger
            .received
    }
}

#[tokio::test]
async fn commands_sent_just_before_the_gateway_closes_are_still_carried_out() {
    let mut d = TestDaemon::start(&[connector("slow", &["--answer-delay-ms", "300"], "")]).await;
    // Not even waiting for the connector to be ready: the request is queued, then the link closes.
    let id = d
        .send(json!({"type": "send_text", "connector": "slow", "chat": "1@s.whatsapp.net", "text": "last words"}))
        .await;
    d.stop().await;
    let result = d.seen.iter().find_map(|e| match e {
        GatewayEvent::Result(r) if r.id == id => Some(r.clone()),
        _ => None,
    });
    let result = result.expect("a result before the link closed");
    assert!(result.ok, "{result:?}");
    assert_eq!(steps(&d.log(), "slow"), vec!["stdin_closed"]);
}
