//! `bridgekeeper doctor`: each problem found, with the command that fixes it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::BRIDGEKEEPER;
use crate::support::whatsapp::node_bridge_dir;

fn doctor(home: &std::path::Path, port: u16) -> (bool, String) {
    let out = Command::new(BRIDGEKEEPER)
        .args(["doctor", "--port", &port.to_string(), "--hermes-home"])
        .arg(home)
        .arg("--node-bridge")
        .arg(node_bridge_dir().join("src/index.js"))
        .env_remove("HERMES_HOME")
        .env_remove("WHATSAPP_MODE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn problems_are_reported_with_their_fixes() {
    let home = tempfile::tempdir().unwrap();
    let session = home.path().join("platforms/whatsapp/session");
    std::fs::create_dir_all(&session).unwrap();
    std::fs::set_permissions(&session, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        home.path().join(".env"),
        "WHATSAPP_MODE=bot\nWHATSAPP_ALLOWED_USERS=*\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join("config.yaml"),
        "platforms:\n  whatsapp:\n    dm_policy: pairing\n",
    )
    .unwrap();
    // Both pairing directories hold files: Hermes (and so bridgekeeper) uses the legacy one.
    std::fs::create_dir_all(home.path().join("pairing")).unwrap();
    std::fs::create_dir_all(home.path().join("platforms/pairing")).unwrap();
    std::fs::write(
        home.path().join("platforms/pairing/telegram-approved.json"),
        "{}",
    )
    .unwrap();
    std::fs::write(
        home.path().join("pairing/whatsapp-approved.json"),
        "{broken",
    )
    .unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();

    let (passed, text) = doctor(home.path(), port);
    assert!(!passed, "{text}");
    let shown = session.display().to_string();
    for expected in [
        "ok    node v",
        "ok    node-bridge dependencies installed (baileys 7.0.0-rc13)",
        &format!("FAIL  session directory {shown} has mode 0755"),
        &format!("fix: chmod 700 {shown}"),
        "WARN  not linked (no creds.json)",
        &format!("fix: bridgekeeper whatsapp link --session {shown}"),
        &format!("WARN  port {port} on 127.0.0.1 is taken"),
        "WARN  dm_policy is pairing",
        "WARN  both ",
        "FAIL  ",
        "whatsapp-approved.json is corrupt",
        // Settings for WhatsApp, but neither WHATSAPP_ENABLED nor a linked session.
        "FAIL  run without --config has no platform to start",
        "fix: set WHATSAPP_ENABLED=true",
        "3 problem(s)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn a_healthy_setup_passes() {
    let home = tempfile::tempdir().unwrap();
    let session = home.path().join("platforms/whatsapp/session");
    std::fs::create_dir_all(&session).unwrap();
    std::fs::set_permissions(&session, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        session.join("creds.json"),
        r#"{"me": {"id": "15550001111:2@s.whatsapp.net"}}"#,
    )
    .unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (passed, text) = doctor(home.path(), free);
    assert!(passed, "{text}");
    assert!(text.contains("linked as …1111:2@s.whatsapp.net"), "{text}");
    assert!(
        text.contains("run without --config starts whatsapp (a linked WhatsApp session)"),
        "{text}"
    );
    assert!(text.contains("0 problem(s), 0 warning(s)"), "{text}");
}

/// Node and node-bridge are checked only where WhatsApp would run: an installed binary with no
/// node-bridge beside it (a hard link outside the checkout) and a Hermes home without WhatsApp
/// is not told to install either; once `WHATSAPP_ENABLED=true`, it is.
#[test]
fn node_bridge_is_checked_only_where_whatsapp_would_run() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    let bin = dir.path().join("bin/bridgekeeper");
    std::fs::hard_link(BRIDGEKEEPER, &bin).unwrap();
    let home = dir.path().join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    let doctor = || {
        let out = Command::new(&bin)
            .args(["doctor", "--hermes-home"])
            .arg(&home)
            .env_remove("HERMES_HOME")
            .env_remove("BRIDGEKEEPER_NODE_BRIDGE")
            .env_remove("BRIDGEKEEPER_LEGACY_SCRIPT")
            .env_remove("WHATSAPP_ENABLED")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let without = doctor();
    assert!(without.contains("WhatsApp would not run"), "{without}");
    assert!(!without.contains("node-bridge ("), "{without}");
    assert!(!without.contains("cannot find node-bridge"), "{without}");
    std::fs::write(home.join(".env"), "WHATSAPP_ENABLED=true\n").unwrap();
    let with = doctor();
    assert!(with.contains("FAIL  cannot find node-bridge"), "{with}");
}
