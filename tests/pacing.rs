//! Outbound pacing through the daemon: a send held back past its timeout is answered
//! `rate_limited` (never silence, never sent late), and the rest go out in order.

use bridge_protocol::gateway::ConnectorStateName;
use serde_json::json;

use crate::support::{TestDaemon, connector};

#[tokio::test]
async fn sends_held_by_pacing_past_their_timeout_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("commands.jsonl");
    let mut d = TestDaemon::start(&[connector(
        "wa",
        &["--command-log", log.to_str().unwrap()],
        "pacing: {per_minute: 60, burst: 1, chat_per_minute: 60, chat_burst: 1, gap_min_ms: 0, gap_max_ms: 0}\ncommands: {timeout_ms: 400}",
    )])
    .await;
    d.wait_state("wa", ConnectorStateName::Running).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let chat = format!("1555000000{i}@s.whatsapp.net");
        ids.push(
            d.send(json!({"type": "send_text", "connector": "wa", "chat": chat, "text": "hi"}))
                .await,
        );
    }
    let mut codes = Vec::new();
    for id in &ids {
        let r = d.result_of(id).await;
        codes.push(r.error.map(|e| e.code).unwrap_or_else(|| "ok".into()));
    }
    // One a second: the first goes at once, the others would wait past their 400 ms.
    assert_eq!(
        codes,
        vec!["ok", "rate_limited", "rate_limited", "rate_limited"]
    );
    let written = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        written.matches("\"send_text\"").count(),
        1,
        "held sends were never written: {written}"
    );
    // Each request had exactly one result.
    for id in &ids {
        let n = d
            .seen
            .iter()
            .filter(
                |e| matches!(e, bridge_protocol::gateway::GatewayEvent::Result(r) if &r.id == id),
            )
            .count();
        assert_eq!(n, 1, "{id}");
    }
    d.stop().await;
}

/// `simulate_typing`: "typing…" goes to the chat first, and the text follows after a time that
/// grows with its length; the status board counts the send as paced, with the time it waited.
#[tokio::test]
async fn a_text_can_be_preceded_by_typing_for_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("commands.jsonl");
    let mut d = TestDaemon::start(&[connector(
        "wa",
        &["--command-log", log.to_str().unwrap()],
        "pacing: {per_minute: 600, burst: 5, simulate_typing: true, typing_ms_per_char: 20, typing_max_ms: 1000}",
    )])
    .await;
    d.wait_state("wa", ConnectorStateName::Running).await;
    let chat = "15551234567@s.whatsapp.net";
    let started = std::time::Instant::now();
    let r = d
        .request(json!({"type": "send_text", "connector": "wa", "chat": chat, "text": "twenty characters!!!"}))
        .await;
    let took = started.elapsed();
    assert!(r.ok, "{r:?}");
    assert!(
        took >= std::time::Duration::from_millis(400),
        "20 chars × 20 ms: {took:?}"
    );
    let kinds: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["chat"] == chat)
        .map(|v| v["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, vec!["typing", "send_text"]);
    let status = d.status().await;
    let commands = &status.connectors[0].commands;
    assert_eq!(commands.accepted, 1, "typing is housekeeping");
    // The send was held for its typing time, and `status` (and the metrics) say how long.
    assert_eq!(commands.paced, 1, "{commands:?}");
    assert!(commands.paced_ms >= 300, "{commands:?}");
    assert_eq!(
        (commands.waiting, commands.in_flight),
        (0, 0),
        "{commands:?}"
    );
    d.stop().await;
}
