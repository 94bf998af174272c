//! Fault tests: the connector SIGKILLed mid-flood with sends in flight, a gateway that stops
//! reading mid-flood, a full disk under the log, unusable state and pairing directories.
//! (SIGKILLing the supervisor, crash loops and corrupt credentials are covered in cli.rs,
//! supervisor.rs and node-bridge's session tests.)

use std::collections::HashSet;

use bridge_protocol::gateway::{ConnectorStateName, GatewayEvent};
use serde_json::json;

use crate::support::{TestDaemon, connector};

/// Every message the connector wrote before dying is in the ledger (none lost from the pipe),
/// and every send accepted before, during and after the crash gets exactly one explicit result.
#[tokio::test]
async fn a_connector_killed_mid_flood_loses_nothing_silently() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("starts");
    let pid_file = dir.path().join("pids");
    let mut d = TestDaemon::start(&[connector(
        "flood",
        &[
            "--emit",
            "200000",
            "--text-bytes",
            "64",
            "--answer-delay-ms",
            "5",
            "--counter",
            counter.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        "restart: {initial_backoff_ms: 200, max_backoff_ms: 1000, jitter: 0.0}",
    )])
    .await;
    d.wait_state("flood", ConnectorStateName::Running).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(d.send(json!({"type": "send_text", "connector": "flood", "chat": "1@s.whatsapp.net", "text": format!("s{i}")})).await);
    }
    // Mid-flood: some messages are through, many are not.
    while d.inbound_ids().len() < 1000 {
        d.next_event().await;
    }
    let pid = crate::support::pids(&pid_file)[0].1;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_state("flood", ConnectorStateName::Backoff).await;
    for i in 20..30 {
        ids.push(d.send(json!({"type": "send_text", "connector": "flood", "chat": "1@s.whatsapp.net", "text": format!("s{i}")})).await);
    }
    let mut outcomes = Vec::new();
    for id in &ids {
        let r = d.result_of(id).await;
        outcomes.push(match (r.ok, r.error) {
            (true, _) => "ok".to_owned(),
            (false, Some(e)) => {
                assert!(
                    e.code != "connector_exited" || e.unconfirmed,
                    "an in-flight send must be marked unconfirmed"
                );
                e.code
            }
            (false, None) => panic!("a failure without an error body"),
        });
    }
    assert_eq!(outcomes.len(), 30, "one result per send");
    assert!(
        outcomes[20..].iter().all(|o| o == "ok"),
        "sends queued during the restart go out after it: {outcomes:?}"
    );
    let status = d.status().await;
    let ledger = &status.connectors[0].ledger;
    assert_eq!(ledger.unaccounted(), 0);
    // What the first process wrote before it died: a gap-free prefix m1-0 … m1-(k-1).
    let first: Vec<u64> = d
        .inbound_ids()
        .iter()
        .filter_map(|id| id.strip_prefix("m1-").and_then(|n| n.parse().ok()))
        .collect();
    let unique: HashSet<u64> = first.iter().copied().collect();
    assert_eq!(unique.len(), first.len(), "no duplicates");
    assert_eq!(
        first.iter().max().map(|m| m + 1),
        Some(first.len() as u64),
        "no gaps before the kill point"
    );
    assert!(first.len() < 200_000, "the kill landed mid-flood");
    d.stop().await;
}

/// A disk that is full under the log: messages still flow, the ledger stays exact, the failure
/// is reported, and nothing crashes.
#[tokio::test]
async fn a_full_disk_under_the_log_does_not_stop_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        crate::support::write_config(dir.path(), &[connector("wa", &["--emit", "50"], "")]);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("log: {max_bytes: 50000000}", "log: {path: /dev/full}");
    std::fs::write(&config, text).unwrap();
    let mut cfg = bridgekeeper::config::SupervisorConfig::load(&config).unwrap();
    cfg.resolve_access(&Default::default()).unwrap();
    let (mut gw_in, daemon_in) = tokio::io::duplex(64 * 1024);
    let (daemon_out, gw_out) = tokio::io::duplex(1 << 20);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let daemon = tokio::spawn(bridgekeeper::daemon::run(
        cfg,
        daemon_in,
        daemon_out,
        shutdown.clone(),
    ));
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(gw_out).lines();
    let mut inbound = 0;
    while inbound < 50 {
        let line = crate::support::within("events", lines.next_line())
            .await
            .unwrap()
            .unwrap();
        if let Ok(GatewayEvent::Inbound { .. }) = serde_json::from_str(&line) {
            inbound += 1;
        }
    }
    use tokio::io::AsyncWriteExt;
    gw_in
        .write_all(b"{\"type\":\"status\",\"id\":\"s\"}\n")
        .await
        .unwrap();
    let status = loop {
        let line = crate::support::within("status", lines.next_line())
            .await
            .unwrap()
            .unwrap();
        if let Ok(GatewayEvent::Result(r)) = serde_json::from_str(&line) {
            break r.data.unwrap();
        }
    };
    assert_eq!(status["connectors"][0]["ledger"]["delivered"], 50);
    drop(gw_in);
    crate::support::within("stop", daemon)
        .await
        .unwrap()
        .unwrap();
}

/// State that cannot be written: a clear startup error naming the directory, no partial start.
#[test]
fn an_unwritable_state_directory_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::write_config(dir.path(), &[connector("wa", &[], "")]);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("state_dir: state", "state_dir: /proc/bridgekeeper-state");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(crate::support::BRIDGEKEEPER)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create directory /proc/bridgekeeper-state"),
        "{err}"
    );
}

/// Pairing files that cannot be written: the stranger's message is recorded as failed with its
/// reason, the operator is alerted with the path, and the daemon keeps serving.
#[tokio::test]
async fn an_unwritable_pairing_store_fails_visibly_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let inbound = dir.path().join("in.jsonl");
    std::fs::write(&inbound, "").unwrap();
    let mut d = TestDaemon::start_full(
        &[connector(
            "wa",
            &["--inbound-file", inbound.to_str().unwrap()],
            "policy: {mode: bot, dm_policy: pairing}",
        )],
        "",
        64 * 1024,
        |home| {
            // Where the pairing directory should be, a file: nothing can be created there.
            std::fs::write(home.join("platforms"), "not a directory").unwrap();
        },
    )
    .await;
    d.wait_state("wa", ConnectorStateName::Running).await;
    std::fs::write(&inbound, "{\"sender\": \"15557654321@s.whatsapp.net\"}\n").unwrap();
    let alert = d
        .wait_event(
            "alert",
            |e| matches!(e, GatewayEvent::Alert { code, .. } if code == "pairing_store_error"),
        )
        .await;
    let GatewayEvent::Alert { message, .. } = alert else {
        unreachable!()
    };
    assert!(message.contains("platforms"), "{message}");
    let status = d.status().await;
    assert_eq!(
        status.connectors[0]
            .ledger
            .failed
            .get("pairing_store_error"),
        Some(&1)
    );
    let pong = d.request(json!({"type": "ping", "connector": "wa"})).await;
    assert!(pong.ok);
    d.stop().await;
}

/// A gateway that stops reading mid-flood (closes its end of our stdout): the daemon notices on
/// its next write, says so in bridge.log, stops its connector and exits; the ledger still
/// accounts for every message it read, the unwritten ones as failed, not delivered.
#[test]
fn a_gateway_that_stops_reading_mid_flood_ends_the_run_and_unwritten_messages_are_failed() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let config = crate::support::write_config(
        dir.path(),
        &[connector(
            "flood",
            &["--emit", "200000", "--pid-file", pid_file.to_str().unwrap()],
            "",
        )],
    );
    let mut daemon = Command::new(crate::support::BRIDGEKEEPER)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let mut read = 0;
    while read < 2_000 {
        let line = lines.next().expect("the link ended early").unwrap();
        read += usize::from(line.starts_with(r#"{"type":"inbound""#));
    }
    drop(lines); // the gateway stops reading; stdin stays open

    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    let exit = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon kept running"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        exit.success(),
        "a closed gateway is a shutdown, not a crash: {exit}"
    );
    let connector_pid = crate::support::pids(&pid_file)[0].1;
    assert!(
        !crate::support::alive(connector_pid),
        "the connector was stopped"
    );

    let state = dir.path().join("state");
    let status = bridgekeeper::record::board::read_status_file(&state.join("status.json")).unwrap();
    let ledger = &status.connectors[0].ledger;
    assert_eq!(ledger.unaccounted(), 0, "{ledger:?}");
    assert!(
        ledger.received < 200_000,
        "the flood was cut short: {ledger:?}"
    );
    let failed = ledger.failed.get("gateway_closed").copied().unwrap_or(0);
    assert!(failed > 0, "unwritten messages are failed: {ledger:?}");
    let events = crate::support::log_events(&state);
    assert!(events.iter().any(|e| e["event"] == "gateway_write_failed"));
    let retracted = events
        .iter()
        .filter(|e| e["event"] == "delivery_retracted" && e["reason"] == "gateway_closed")
        .count() as u64;
    // Failed at once (decided after the close) or retracted after being counted delivered.
    assert!(
        retracted <= failed && retracted > 0,
        "{retracted} retracted, {failed} failed"
    );
}
