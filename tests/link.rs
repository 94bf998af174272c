//! `bridgekeeper whatsapp link`: the QR code in the terminal and as PNG, refreshed and expiring;
//! "already linked" with how to re-link; and the old bridge's `--pair-json` events.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::whatsapp::{FakeWhatsApp, node_bridge_dir};
use crate::support::{BRIDGEKEEPER, append_json, connector, write_config};

/// A config whose `whatsapp` connector is the fake one, fed from `inbound`, never "open" by itself.
fn link_config(dir: &Path, inbound: &Path, session: &Path) -> std::path::PathBuf {
    let extra = format!("session_dir: {:?}", session.to_str().unwrap());
    write_config(
        dir,
        &[connector(
            "whatsapp",
            &["--no-open", "--inbound-file", inbound.to_str().unwrap()],
            &extra,
        )],
    )
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + crate::support::PATIENCE;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_qr_code_is_shown_and_saved_until_the_account_is_linked() {
    let dir = tempfile::tempdir().unwrap();
    let (inbound, session, png) = (
        dir.path().join("in.jsonl"),
        dir.path().join("session"),
        dir.path().join("qr.png"),
    );
    std::fs::write(&inbound, "").unwrap();
    let config = link_config(dir.path(), &inbound, &session);
    let mut child = Command::new(BRIDGEKEEPER)
        .args(["whatsapp", "link", "--config"])
        .arg(&config)
        .arg("--png")
        .arg(&png)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let mut seen = Vec::new();
    let read_until = |needle: &str, seen: &mut Vec<String>| loop {
        let line = rx.recv_timeout(crate::support::PATIENCE).expect(needle);
        seen.push(line.clone());
        if line.contains(needle) {
            break;
        }
    };
    read_until("using session directory", &mut seen);
    read_until("bridgekeeper's state goes to", &mut seen);
    assert!(seen.last().unwrap().contains("bridge.log"), "{seen:#?}");
    append_json(
        &inbound,
        &json!({"type": "qr", "data": "2@first,qr,payload", "expires_in_ms": 60000}),
    );
    read_until("It expires in 60 s", &mut seen);
    assert!(
        seen.iter().any(|l| l.contains('▄') || l.contains('▀')),
        "QR art in the terminal: {seen:#?}"
    );
    wait_until("the PNG", || png.exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&png).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // WhatsApp rotates the code: a new one is drawn.
    append_json(
        &inbound,
        &json!({"type": "qr", "data": "2@second,qr,payload", "expires_in_ms": 20000}),
    );
    read_until("It expires in 20 s", &mut seen);
    append_json(&inbound, &json!({"type": "status", "state": "open"}));
    append_json(
        &inbound,
        &json!({"type": "account", "phone": "15550001111@s.whatsapp.net", "name": "Bot"}),
    );
    read_until("Linked as …1111", &mut seen);
    assert!(child.wait().unwrap().success());
    assert!(!png.exists(), "the QR image is removed once it is useless");
}

/// Runs `whatsapp link` to completion over a fake connector that reports `events`.
fn link_with(events: &[serde_json::Value], extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let (inbound, session) = (dir.path().join("in.jsonl"), dir.path().join("session"));
    std::fs::write(&inbound, "").unwrap();
    for event in events {
        append_json(&inbound, event);
    }
    let config = link_config(dir.path(), &inbound, &session);
    Command::new(BRIDGEKEEPER)
        .args(["whatsapp", "link"])
        .args(extra)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap()
}

#[test]
fn an_unscanned_qr_code_expires_with_a_clear_message() {
    let out = link_with(
        &[
            json!({"type": "qr", "data": "2@abc", "expires_in_ms": 60000}),
            json!({"type": "status", "state": "closed", "code": 408, "reason": "QR refs attempts ended"}),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the QR code expired before it was scanned; run the command again"),
        "{err}"
    );
}

/// An open connection without an account is not a link: no "Linked.", a clear error, exit 1.
#[test]
fn an_open_connection_without_an_account_is_not_reported_as_linked() {
    for extra in [&[][..], &["--phone", "15550001111"][..]] {
        let out = link_with(&[json!({"type": "status", "state": "open"})], extra);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(!out.status.success(), "{extra:?}: {stdout}");
        assert!(!stdout.contains("Linked"), "{extra:?}: {stdout}");
        // With --phone, the fake connector also refuses link_by_phone: whichever comes first
        // is the one error of the run.
        assert!(
            stderr.contains("did not confirm an account")
                || (!extra.is_empty() && stderr.contains("linking by phone number failed")),
            "{extra:?}: {stderr}"
        );
        assert_eq!(
            stderr.matches("bridgekeeper:").count(),
            1,
            "one outcome: {stderr}"
        );
    }
}

#[test]
fn json_progress_matches_the_old_pair_json_events() {
    let out = link_with(
        &[
            json!({"type": "qr", "data": "2@abc", "expires_in_ms": 60000}),
            json!({"type": "status", "state": "closed", "code": 515}),
            json!({"type": "status", "state": "open"}),
            json!({"type": "account", "phone": "15550001111@s.whatsapp.net", "name": "Bot"}),
        ],
        &["--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["started", "qr", "disconnected", "connected"]);
    assert!(events.iter().all(|e| e["ts"].is_u64()));
    assert_eq!(events[1]["qr"], "2@abc");
    assert_eq!(events[2]["reason"], 515);
    assert_eq!(
        events[3]["user"],
        json!({"id": "15550001111@s.whatsapp.net", "name": "Bot"})
    );
}

#[test]
fn legacy_pair_only_on_a_linked_session_says_connected() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeWhatsApp::start(dir.path());
    let session = dir.path().join("session");
    server.seed_session(&session);
    let out = Command::new(BRIDGEKEEPER)
        .args(["legacy", "--pair-only", "--pair-json", "--session"])
        .arg(&session)
        .arg("--node-bridge")
        .arg(node_bridge_dir().join("src/index.js"))
        .env("HERMES_HOME", dir.path().join("hermes"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (line["event"].as_str(), line["alreadyLinked"].as_bool()),
        (Some("connected"), Some(true))
    );
    assert_eq!(line["user"]["id"], server.self_jid);
}

#[test]
fn an_already_linked_session_is_reported_with_how_to_relink() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeWhatsApp::start(dir.path());
    let session = dir.path().join("session");
    server.seed_session(&session);
    let out = Command::new(BRIDGEKEEPER)
        .args(["whatsapp", "link", "--session"])
        .arg(&session)
        .arg("--node-bridge")
        .arg(node_bridge_dir().join("src/index.js"))
        .env("HERMES_HOME", dir.path().join("hermes"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("already linked (account …0000"), "{text}");
    assert!(
        text.contains("bridgekeeper whatsapp link --relink"),
        "{text}"
    );
    assert!(
        text.contains(session.to_str().unwrap()),
        "says which directory it used: {text}"
    );
}
