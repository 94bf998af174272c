//! Edge defects a hostile tester found (issue "Hardening"): each test feeds the bad input and
//! checks that nothing is lost without a word and nothing leaks.

use bridge_protocol::gateway::{ConnectorStateName, GatewayEvent};
use serde_json::json;

use crate::support::{TestDaemon, append_json, connector};

/// Every request gets exactly one result, even a malformed one, as long as its id can be read.
#[tokio::test]
async fn a_malformed_request_that_names_an_id_still_gets_its_one_result() {
    let mut d = TestDaemon::start(&[connector("wa", &[], "")]).await;
    d.wait_state("wa", ConnectorStateName::Running).await;
    let cases = [
        (
            r#"{"type":"send_text","id":"4","connector":"wa"}"#,
            "4",
            "invalid_request",
        ),
        (r#"{"type":"frobnicate","id":"3"}"#, "3", "unknown_type"),
        (
            r#"{"type":"send_text","id":"5","connector":"nope","chat":"1@s.whatsapp.net","text":"x"}"#,
            "5",
            "unknown_connector",
        ),
        (r#"{"type":"status","id":7}"#, "7", "invalid_request"),
        (
            r#"{"type":"send_text","id":"9","connector":"wa","text":"TOPSECRET one"}"#,
            "9",
            "invalid_request",
        ),
    ];
    for (line, id, code) in cases {
        d.send_line(line.as_bytes()).await;
        let result = d.result_of(id).await;
        assert!(!result.ok, "{line}");
        assert_eq!(result.error.unwrap().code, code, "{line}");
    }
    // No id to answer: a line_error, as before.
    d.send_line(b"say TOPSECRET two").await;
    d.wait_event("line_error", |e| {
        matches!(e, GatewayEvent::LineError { .. })
    })
    .await;
    let pong = d.request(json!({"type": "ping"})).await;
    assert!(pong.ok);
    let line_errors = d
        .seen
        .iter()
        .filter(|e| matches!(e, GatewayEvent::LineError { .. }))
        .count();
    assert_eq!(line_errors, 1, "only the line without an id: {:?}", d.seen);
    let results = |id: &str| {
        d.seen
            .iter()
            .filter(|e| matches!(e, GatewayEvent::Result(r) if r.id == id))
            .count()
    };
    assert_eq!([results("4"), results("3"), results("5")], [1, 1, 1]);
    d.stop().await;
    // bridge.log has the lines' shape, never their text.
    let log = std::fs::read_to_string(d.state_dir.join("bridge.log")).unwrap();
    assert!(!log.contains("TOPSECRET"), "message text in bridge.log");
    assert!(log.contains("gateway_line_error"));
}

/// A connector line over `max_line_bytes` that was an inbound message is a received message:
/// the ledger records it as failed (too_long) under the id its first bytes gave, with an alert.
#[tokio::test]
async fn an_inbound_message_over_the_line_limit_is_in_the_ledger_and_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let inbound = dir.path().join("in.jsonl");
    std::fs::write(&inbound, "").unwrap();
    let mut d = TestDaemon::start(&[connector(
        "wa",
        &["--inbound-file", inbound.to_str().unwrap()],
        "max_line_bytes: 2048",
    )])
    .await;
    d.wait_state("wa", ConnectorStateName::Running).await;
    let sender = "15551234567@s.whatsapp.net";
    append_json(
        &inbound,
        &json!({"id": "BIG1", "sender": sender, "text": "TOPSECRET ".repeat(500)}),
    );
    append_json(
        &inbound,
        &json!({"id": "SMALL2", "sender": sender, "text": "ok"}),
    );
    let alert = d
        .wait_event(
            "alert",
            |e| matches!(e, GatewayEvent::Alert { code, .. } if code == "inbound_too_long"),
        )
        .await;
    let GatewayEvent::Alert { message, .. } = alert else {
        unreachable!()
    };
    assert!(
        message.contains("BIG1") && message.contains("2048"),
        "{message}"
    );
    d.wait_event(
        "the next message",
        |e| matches!(e, GatewayEvent::Inbound { message, .. } if message.id == "SMALL2"),
    )
    .await;
    let ledger = d.status().await.connectors[0].ledger.clone();
    assert_eq!(ledger.received, 2, "{ledger:?}");
    assert_eq!(ledger.delivered, 1, "{ledger:?}");
    assert_eq!(ledger.failed.get("too_long"), Some(&1), "{ledger:?}");
    d.stop().await;
    let log = d.log();
    let decision = log
        .iter()
        .find(|e| e["event"] == "decision" && e["message_id"] == "BIG1")
        .expect("a decision for the oversized message");
    assert_eq!(decision["outcome"], "failed");
    assert_eq!(decision["reason"], "too_long");
    assert_eq!(decision["sender"], "…4567@s.whatsapp.net");
    let raw = std::fs::read_to_string(d.state_dir.join("bridge.log")).unwrap();
    assert!(!raw.contains("TOPSECRET"), "message text in bridge.log");
}

fn cli(args: &[&str], hermes_home: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new(crate::support::BRIDGEKEEPER)
        .args(args)
        .env("HERMES_HOME", hermes_home)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// `pairing`, `doctor` and `status` take `--config` like `logs` and `config`, and without any
/// flag they all default to the Hermes home; a locked-out owner has a way out.
#[test]
fn every_command_takes_the_config_and_defaults_to_the_hermes_home() {
    use bridgekeeper::pairing::{MAX_FAILED_APPROVALS, PairingStore, locate};
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::write_config(dir.path(), &[connector("whatsapp", &[], "")]);
    let config = config.to_str().unwrap();
    let home = dir.path().join("hermes");
    let elsewhere = dir.path().join("elsewhere"); // $HERMES_HOME: must not be used with --config
    let store = PairingStore::new(locate(&home));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let issued = store.issue("whatsapp", "15557654321", "Ana", now).unwrap();
    let (code, text) = cli(&["pairing", "list", "--config", config], &elsewhere);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("15557654321"), "{text}");

    for _ in 0..MAX_FAILED_APPROVALS {
        cli(
            &[
                "pairing", "approve", "whatsapp", "WRONG234", "--config", config,
            ],
            &elsewhere,
        );
    }
    let (code, text) = cli(
        &["pairing", "approve", "whatsapp", &issued.code, "-c", config],
        &elsewhere,
    );
    assert_ne!(code, 0);
    assert!(
        text.contains("bridgekeeper pairing unlock whatsapp"),
        "{text}"
    );
    let (code, text) = cli(
        &["pairing", "unlock", "whatsapp", "--config", config],
        &elsewhere,
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = cli(
        &["pairing", "approve", "whatsapp", &issued.code, "-c", config],
        &elsewhere,
    );
    assert_eq!(code, 0, "{text}");

    let (_, text) = cli(&["doctor", "--config", config], &elsewhere);
    assert!(
        text.contains(&format!("Hermes home {}", home.display())),
        "{text}"
    );

    // No flag: the state dir of `run` without a config, under $HERMES_HOME; not a usage error.
    let (code, text) = cli(&["status"], &home);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            &home
                .join("platforms/whatsapp/bridgekeeper")
                .display()
                .to_string()
        ),
        "{text}"
    );
}

/// The demo's own helpers: the binary is found under $CARGO_TARGET_DIR, and `approve CODE`
/// approves against the demo's state (not ~/.hermes), `link` looks at the demo's session.
#[test]
fn the_demo_approves_against_its_own_state_and_honours_cargo_target_dir() {
    use bridgekeeper::pairing::{PairingStore, locate};
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere-target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::os::unix::fs::symlink(
        crate::support::BRIDGEKEEPER,
        target.join("release/bridgekeeper"),
    )
    .unwrap();
    let demo = dir.path().join("demo");
    std::fs::create_dir_all(demo.join("session")).unwrap();
    std::fs::write(
        demo.join("session/creds.json"),
        r#"{"me": {"id": "15550000000:1@s.whatsapp.net"}}"#,
    )
    .unwrap();
    std::fs::write(
        demo.join("bridgekeeper.yaml"),
        format!(
            "state_dir: {0}\nhermes_home: {0}/hermes\nconnectors:\n  - name: whatsapp\n    command: sh\n    session_dir: {0}/session\n",
            demo.display()
        ),
    )
    .unwrap();
    let store = PairingStore::new(locate(&demo.join("hermes")));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let issued = store.issue("whatsapp", "15557654321", "Ana", now).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/run-demo.sh");
    let demo_cmd = |args: &[&str]| {
        let out = std::process::Command::new("bash")
            .arg(&script)
            .args(args)
            .env("CARGO_TARGET_DIR", &target)
            .env("BRIDGEKEEPER_DEMO_DIR", &demo)
            .env("HERMES_HOME", dir.path().join("not-this-one"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = demo_cmd(&["approve", &issued.code.to_lowercase()]);
    assert!(ok, "{text}");
    assert!(text.contains("approved 15557654321"), "{text}");
    let (ok, text) = demo_cmd(&["link"]);
    assert!(ok, "{text}");
    assert!(text.contains("already linked"), "{text}");
}

/// A CLI holding the pairing store's lock (here `flock` on its lock file, for 2 s) stalls only
/// the connector that needs the store — a stranger's DM waits for the lock — never another
/// connector's messages. One worker thread, so a blocked worker would stall everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_cli_holding_the_pairing_lock_does_not_stall_another_connector() {
    let dir = tempfile::tempdir().unwrap();
    let (a_in, b_in) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&a_in, "").unwrap();
    std::fs::write(&b_in, "").unwrap();
    let mut d = TestDaemon::start(&[
        connector(
            "a",
            &["--inbound-file", a_in.to_str().unwrap()],
            "policy: {mode: bot, dm_policy: pairing}",
        ),
        connector("b", &["--inbound-file", b_in.to_str().unwrap()], ""),
    ])
    .await;
    d.wait_state("a", ConnectorStateName::Running).await;
    d.wait_state("b", ConnectorStateName::Running).await;
    let pairing = d.dir.path().join("hermes/platforms/pairing");
    std::fs::create_dir_all(&pairing).unwrap();
    let (held, released) = (dir.path().join("held"), dir.path().join("released"));
    let mut holder = std::process::Command::new("flock")
        .arg(pairing.join(".lock"))
        .arg("-c")
        .arg(format!(
            "touch {}; sleep 2; touch {}",
            held.display(),
            released.display()
        ))
        .spawn()
        .unwrap();
    crate::support::wait_for("the lock to be held", || held.exists()).await;
    append_json(
        &a_in,
        &json!({"id": "S1", "sender": "15557654321@s.whatsapp.net"}),
    );
    // Give connector a a moment to block on the lock before b's message comes.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    append_json(
        &b_in,
        &json!({"id": "B1", "sender": "15551234567@s.whatsapp.net", "text": "hi"}),
    );
    d.wait_event(
        "b's message",
        |e| matches!(e, GatewayEvent::Inbound { message, .. } if message.id == "B1"),
    )
    .await;
    assert!(
        !released.exists(),
        "b's message arrived only after the lock was released"
    );
    holder.wait().unwrap();
    d.wait_event(
        "a's stranger is sent a code",
        |e| matches!(e, GatewayEvent::PairingRequested { connector, .. } if connector == "a"),
    )
    .await;
    d.stop().await;
}
