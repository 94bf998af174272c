//! `bridgekeeper logs` over a recorded bridgekeeper log and an old mixed-format log, with
//! filters, `--json`, and following across rotation.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{BRIDGEKEEPER, PATIENCE};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn logs(args: &[&str]) -> Vec<String> {
    let out = Command::new(BRIDGEKEEPER)
        .arg("logs")
        .args(args)
        .env_remove("WHATSAPP_DEBUG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json_entries(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    logs(&all)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_recorded_bridgekeeper_log_reads_one_line_per_event() {
    let file = data("bridge-new.log");
    let recorded = std::fs::read_to_string(&file).unwrap().lines().count();
    let lines = logs(&["--file", file.to_str().unwrap()]);
    assert_eq!(lines.len(), recorded);
    let decision = lines
        .iter()
        .find(|l| l.contains("decision") && l.contains("pairing_code_sent"))
        .expect("a decision line");
    assert!(
        decision.contains("unknown_sender") && decision.contains("chat=…4321@s.whatsapp.net"),
        "{decision}"
    );
    assert!(
        lines[0].starts_with("05:54:15.549 -"),
        "time, then the connector column: {}",
        lines[0]
    );

    let echoes = logs(&[
        "--file",
        file.to_str().unwrap(),
        "--event",
        "decision",
        "--reason",
        "own_echo",
    ]);
    assert_eq!(echoes.len(), 2, "{echoes:#?}");
    let by_chat = logs(&[
        "--file",
        file.to_str().unwrap(),
        "--event",
        "decision",
        "--chat",
        "+1 555 123 4567",
    ]);
    assert!(
        !by_chat.is_empty() && by_chat.iter().all(|l| l.contains("…4567")),
        "{by_chat:#?}"
    );
    let entries = json_entries(&["--file", file.to_str().unwrap(), "--connector", "whatsapp"]);
    assert!(
        entries
            .iter()
            .all(|e| e["kind"] == "event" && e["connector"] == "whatsapp")
    );
    assert!(
        logs(&[
            "--file",
            file.to_str().unwrap(),
            "--since",
            "2099-01-01T00:00:00Z"
        ])
        .is_empty()
    );
}

#[test]
fn an_old_mixed_format_log_is_classified_line_by_line() {
    let file = data("bridge-old.log");
    let entries = json_entries(&["--file", file.to_str().unwrap()]);
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "status",
            "status",
            "qr",
            "pino",
            "status",
            "legacy_event",
            "legacy_event",
            "legacy_event",
            "pino",
            "status",
            "status",
            "status",
            "text"
        ]
    );
    let events: Vec<&str> = entries
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        &events[9..12],
        &["connection_closed", "restart_requested", "logged_out"]
    );
    assert_eq!(entries[9]["reason"], "428");
    let human = logs(&[
        "--file",
        file.to_str().unwrap(),
        "--reason",
        "self_chat_mode_rejects_non_self",
    ]);
    assert_eq!(human.len(), 1);
    assert!(
        human[0].contains("chat=…4321@s.whatsapp.net") && !human[0].contains("15557654321"),
        "masked: {}",
        human[0]
    );
}

#[test]
fn follow_keeps_reading_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bridge.log");
    std::fs::write(
        &log,
        "{\"ts\":\"2026-11-21T05:00:00.000Z\",\"event\":\"supervisor_started\"}\n",
    )
    .unwrap();
    let mut child = Command::new(BRIDGEKEEPER)
        .args(["logs", "-f", "--file"])
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let next = || rx.recv_timeout(PATIENCE).expect("a line in time");
    assert!(next().contains("supervisor_started"));
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(f, "{text}").unwrap();
    };
    append(
        "{\"ts\":\"2026-11-21T05:00:01.000Z\",\"connector\":\"wa\",\"event\":\"connector_spawned\"}",
    );
    assert!(next().contains("connector_spawned"));
    std::fs::rename(&log, dir.path().join("bridge.log.1")).unwrap();
    std::fs::write(&log, "{\"ts\":\"2026-11-21T05:00:02.000Z\",\"connector\":\"wa\",\"event\":\"connector_ready\"}\n").unwrap();
    assert!(
        next().contains("connector_ready"),
        "the new file after rotation"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
