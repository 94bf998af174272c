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
