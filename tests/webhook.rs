//! Webhooks: the signing provider (`support::webhook`) held to the real receiver — Hermes' own
//! webhook adapter from the test venv — and bridgekeeper's receiver under one `run` beside
//! WhatsApp and Telegram.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::PATIENCE;
use crate::support::webhook::{SCHEMES, deliver};

const SECRET: &str = "route-secret-5d41402abc4b2a76";
const SVIX_SECRET: &str = "whsec_c3ZpeC1zaWduaW5nLWtleS0xMjM0NTY3OA==";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Hermes' own adapter (`gateway/platforms/webhook.py`) takes a delivery signed by our provider
/// under every scheme, refuses one signed with another secret (401) and a repeated delivery id,
/// hands the message to its gateway with the prompt rendered, and records the reply (`log`):
/// what our provider sends is what the real receiver accepts.
#[test]
fn hermes_own_webhook_adapter_accepts_our_signed_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    let port = free_port();
    let routes = json!({
        "gh": {"secret": SECRET, "events": ["pull_request"], "prompt": "PR {pull_request.title} by {sender.login}", "deliver": "log"},
        "svix": {"secret": SVIX_SECRET, "prompt": "mail {data.subject}", "deliver": "log"},
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hermes_webhook.py");
    let mut child = Command::new(crate::relay::hermes_python())
        .arg(script)
        .env("HERMES_HOME", &home)
        .env("WEBHOOK_PORT", port.to_string())
        .env("ROUTES", routes.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = crate::support::json_lines(child.stdout.take().unwrap());
    let next = || rx.recv_timeout(PATIENCE).expect("the adapter said nothing");
    assert_eq!(next()["event"], "listening");
    let addr = format!("127.0.0.1:{port}");
    let pr = json!({"pull_request": {"title": "Fix the bridge"}, "sender": {"login": "octo"}})
        .to_string();
    for (i, scheme) in SCHEMES.into_iter().enumerate() {
        let id = format!("hermes-{i}");
        let reply = deliver(&addr, "gh", scheme, SECRET, &id, Some("pull_request"), &pr);
        assert_eq!(reply.status, 202, "{scheme:?}: {}", reply.body);
        let message = next();
        assert_eq!(message["event"], "message", "{message}");
        assert_eq!(message["text"], "PR Fix the bridge by octo");
        assert_eq!(message["chat_id"], format!("webhook:gh:{id}"));
        assert_eq!(message["message_id"], id);
        let sent = next();
        assert_eq!(sent["success"], true, "{sent}");
        let forged = deliver(
            &addr,
            "gh",
            scheme,
            "another-secret",
            &format!("f-{i}"),
            Some("pull_request"),
            &pr,
        );
        assert_eq!(forged.status, 401, "{scheme:?}: {}", forged.body);
    }
    // A whsec_ secret, as Svix and AgentMail hand them out.
    let mail = json!({"data": {"subject": "Invoice"}}).to_string();
    let reply = deliver(
        &addr,
        "svix",
        crate::support::webhook::SCHEMES[2],
        SVIX_SECRET,
        "msg_1",
        None,
        &mail,
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(next()["text"], "mail Invoice");
    assert_eq!(next()["success"], true);
    // The same delivery again: Hermes answers it without a second run.
    let again = deliver(
        &addr,
        "gh",
        SCHEMES[0],
        SECRET,
        "hermes-0",
        Some("pull_request"),
        &pr,
    );
    assert_eq!(
        (again.status, again.json()["status"].clone()),
        (200, json!("duplicate"))
    );
    // An event the route does not take.
    let push = deliver(&addr, "gh", SCHEMES[0], SECRET, "p-1", Some("push"), &pr);
    assert_eq!(
        (push.status, push.json()["status"].clone()),
        (200, json!("ignored"))
    );
    // `bridgekeeper webhook test` signs as GitHub does: Hermes takes it.
    std::fs::write(
        home.join("webhook_subscriptions.json"),
        json!({"cli": {"secret": SECRET, "deliver": "log"}}).to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
        .args(["webhook", "test", "cli", "--url"])
        .arg(format!("http://{addr}/webhooks/cli"))
        .arg("--hermes-home")
        .arg(&home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HTTP 202"),
        "{out:?}"
    );
    let message: Value = next();
    assert_eq!(
        message["chat_id"].as_str().unwrap().split(':').nth(1),
        Some("cli")
    );
    drop(child.stdin.take());
    let _ = child.wait();
}
