//! WeCom: the fake WeCom (`tests/fakes/wecom.py`) held to the real clients — Hermes' own AI Bot
//! and self-built-app adapters from the test venv — and bridgekeeper's two connectors against
//! the same fake.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::PATIENCE;
use crate::support::wecom::FakeWecom;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One of Hermes' WeCom adapters (`MODE` bot or callback) as a child; its JSON lines.
fn hermes_wecom(
    dir: &std::path::Path,
    env: &[(&str, String)],
) -> (std::process::Child, std::sync::mpsc::Receiver<Value>) {
    let home = dir.join("hermes-adapter");
    std::fs::create_dir_all(&home).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hermes_wecom.py");
    let mut child = Command::new(crate::relay::hermes_python())
        .arg(script)
        .env("HERMES_HOME", &home)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = crate::support::json_lines(child.stdout.take().unwrap());
    (child, rx)
}

/// Hermes' own AI Bot adapter subscribes to our fake with the bot's id and secret, gets a DM
/// pushed as `aibot_msg_callback`, and its reply is recorded by the fake as an
/// `aibot_respond_msg` under that callback's `req_id`: the fake speaks what the real client
/// speaks.
#[test]
fn hermes_own_ai_bot_adapter_works_against_the_fake() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWecom::start(dir.path());
    let (mut child, rx) = hermes_wecom(
        dir.path(),
        &[
            ("MODE", "bot".into()),
            ("WECOM_BOT_ID", fake.get("bot_id")),
            ("WECOM_SECRET", fake.get("bot_secret")),
            ("WECOM_WS_URL", fake.get("ws_url")),
        ],
    );
    let next = || rx.recv_timeout(PATIENCE).expect("the adapter said nothing");
    assert_eq!(next()["event"], "connected");
    assert_eq!(fake.recorded("subscribe")[0]["ok"], true);
    let pushed = fake.dm("zhangsan", "hello from wecom");
    let message = next();
    assert_eq!(message["event"], "message", "{message}");
    assert_eq!(message["text"], "hello from wecom");
    assert_eq!(message["chat_id"], "zhangsan");
    assert_eq!(message["message_id"], pushed["msgid"]);
    let sent = next();
    assert_eq!(sent["success"], true, "{sent}");
    let replies = fake.recorded("aibot_respond_msg");
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["req_id"], pushed["req_id"]);
    assert_eq!(
        replies[0]["body"]["markdown"]["content"],
        "reply from hermes"
    );
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Hermes' own self-built-app adapter serves its callback; our fake encrypts a message with the
/// app's keys and POSTs it there (Hermes decrypts it and answers `success`), and Hermes' reply
/// goes through `gettoken` and `message/send`, which the fake records.
#[test]
fn hermes_own_callback_adapter_works_against_the_fake() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWecom::start(dir.path());
    let port = free_port();
    let (mut child, rx) = hermes_wecom(
        dir.path(),
        &[
            ("MODE", "callback".into()),
            ("CALLBACK_PORT", port.to_string()),
            ("API_ROOT", fake.get("api_root")),
            ("CORP_ID", fake.get("corp_id")),
            ("CORP_SECRET", fake.get("corp_secret")),
            ("AGENT_ID", fake.get("agent_id")),
            ("CALLBACK_TOKEN", fake.get("callback_token")),
            ("AES_KEY", fake.get("aes_key")),
        ],
    );
    let next = || rx.recv_timeout(PATIENCE).expect("the adapter said nothing");
    assert_eq!(next()["event"], "connected");
    let url = format!("http://127.0.0.1:{port}/wecom/callback");
    let posted = fake.callback(&url, "lisi", "hello from an app", json!({}));
    assert_eq!(
        (posted["status"].clone(), posted["body"].clone()),
        (json!(200), json!("success")),
        "{posted}"
    );
    let message = next();
    assert_eq!(message["event"], "message", "{message}");
    assert_eq!(message["text"], "hello from an app");
    assert_eq!(message["chat_id"], format!("{}:lisi", fake.get("corp_id")));
    let sent = next();
    assert_eq!(sent["success"], true, "{sent}");
    let sends = fake.recorded("message_send");
    assert_eq!(sends[0]["body"]["touser"], "lisi");
    assert_eq!(sends[0]["body"]["text"]["content"], "reply from hermes");
    assert_eq!(
        sends[0]["body"]["agentid"].to_string(),
        fake.get("agent_id")
    );
    // Signed with another token: Hermes refuses it too.
    let forged = fake.callback(
        &url,
        "lisi",
        "forged",
        json!({"sign_with": "not-the-token"}),
    );
    assert_ne!(forged["status"], 200, "{forged}");
    drop(child.stdin.take());
    let _ = child.wait();
}
