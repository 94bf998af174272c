//! WeCom: the fake WeCom (`tests/fakes/wecom.py`) held to the real clients — Hermes' own AI Bot
//! and self-built-app adapters from the test venv — and bridgekeeper's two connectors against
//! the same fake.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::wecom::FakeWecom;
use crate::support::whatsapp::FakeWhatsApp;

/// Hermes' own AI Bot adapter subscribes to our fake with the bot's id and secret, gets a DM
/// pushed as `aibot_msg_callback`, and its reply is recorded by the fake as an
/// `aibot_respond_msg` under that callback's `req_id`: the fake speaks what the real client
/// speaks.
#[test]
fn hermes_own_ai_bot_adapter_works_against_the_fake() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWecom::start(dir.path());
    let (_adapter, rx) = crate::support::hermes::script(
        "hermes_wecom.py",
        &dir.path().join("hermes-adapter"),
        &[
            ("MODE", "bot".into()),
            ("WECOM_BOT_ID", fake.get("bot_id")),
            ("WECOM_SECRET", fake.get("bot_secret")),
            ("WECOM_WS_URL", fake.get("ws_url")),
        ],
    );
    let next = || crate::support::hermes::next(&rx);
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
}

/// Hermes' own self-built-app adapter serves its callback; our fake encrypts a message with the
/// app's keys and POSTs it there (Hermes decrypts it and answers `success`), and Hermes' reply
/// goes through `gettoken` and `message/send`, which the fake records.
#[test]
fn hermes_own_callback_adapter_works_against_the_fake() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWecom::start(dir.path());
    let port = crate::support::free_port();
    let (_adapter, rx) = crate::support::hermes::script(
        "hermes_wecom.py",
        &dir.path().join("hermes-adapter"),
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
    let next = || crate::support::hermes::next(&rx);
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
}

const ALLOWED: &str = "zhangsan";
const STRANGER: &str = "wangwu";
const WA_FRIEND: &str = "15551234567";

struct CallbackScene {
    dir: tempfile::TempDir,
    fake: FakeWecom,
    whatsapp: FakeWhatsApp,
    config: std::path::PathBuf,
}

/// The self-built app connector against the fake, beside WhatsApp (node-bridge, the fake
/// server) under one `run`. Its secrets reach it from the environment only.
fn callback_scene(policy: &str) -> CallbackScene {
    callback_scene_on(policy, 0)
}

/// `port`: the callback's port (0: any free one, a new one each start).
fn callback_scene_on(policy: &str, port: u16) -> CallbackScene {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWecom::start(dir.path());
    let whatsapp = FakeWhatsApp::start(dir.path());
    let restart = "restart: {initial_backoff_ms: 50, max_backoff_ms: 500, jitter: 0.0, max_restarts: 20, window_ms: 60000}";
    let connectors = vec![
        whatsapp.node_bridge_connector(
            dir.path(),
            &format!("policy: {{mode: bot, dm_policy: allowlist, allow_from: ['{WA_FRIEND}']}}"),
            "",
        ),
        format!(
            "  - name: wecom_callback\n    builtin: wecom_callback\n    env: {{WECOM_CALLBACK_PORT: '{port}', WECOM_CALLBACK_API_ROOT: {:?}, WECOM_CALLBACK_CORP_ID: {:?}, WECOM_CALLBACK_AGENT_ID: '{}'}}\n    {policy}\n    {restart}\n",
            fake.get("api_root"),
            fake.get("corp_id"),
            fake.get("agent_id"),
        ),
    ];
    let config = crate::support::write_config_with(dir.path(), &connectors, "");
    CallbackScene {
        dir,
        fake,
        whatsapp,
        config,
    }
}

impl CallbackScene {
    fn secrets(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WECOM_CALLBACK_CORP_SECRET", self.fake.get("corp_secret")),
            ("WECOM_CALLBACK_TOKEN", self.fake.get("callback_token")),
            ("WECOM_CALLBACK_ENCODING_AES_KEY", self.fake.get("aes_key")),
        ]
    }

    fn daemon(&self) -> crate::support::daemon::Daemon {
        let env = self.secrets();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        crate::support::daemon::Daemon::start(&self.config, &env)
    }

    /// The daemon with both connectors open, and the callback URL.
    fn start(&self) -> (crate::support::daemon::Daemon, String) {
        let mut d = self.daemon();
        d.wait("whatsapp open", |v| {
            v["type"] == "connection"
                && v["connector"] == "whatsapp"
                && v["status"]["state"] == "open"
        });
        let open = d.wait("wecom_callback open", |v| {
            v["type"] == "connection"
                && v["connector"] == "wecom_callback"
                && v["status"]["state"] == "open"
        });
        let url = crate::support::listening_url(&open);
        (d, url)
    }

    fn status(&self) -> Value {
        crate::support::status_json(&self.config)
    }

    fn sent_to(&self, user: &str) -> Vec<String> {
        self.fake
            .recorded("message_send")
            .iter()
            .filter(|v| v["body"]["touser"] == user)
            .map(|v| {
                v["body"]["text"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
}

/// The self-built app end to end beside WhatsApp: an allowed user's message is answered
/// `success` once recorded and reaches the gateway; the reply goes out through `gettoken` and
/// `message/send` (a token WeCom expired is fetched again); a stranger is sent a pairing code,
/// and approving it lets the next message through; WeCom's retry of a callback is answered and
/// not delivered twice; every refusal (size, signature, stale timestamp, repeated nonce, DTD,
/// another corp) costs nothing and is counted; the ledger balances; no secret is written.
#[test]
fn a_self_built_app_end_to_end_beside_whatsapp() {
    let s = callback_scene(&format!(
        "policy: {{dm_policy: pairing, allow_from: ['wecom:user:{ALLOWED}']}}"
    ));
    let (mut d, url) = s.start();
    let posted = s.fake.callback(
        &url,
        ALLOWED,
        "hello from the app",
        json!({"msgid": "9001"}),
    );
    assert_eq!(
        (posted["status"].clone(), posted["body"].clone()),
        (json!(200), json!("success")),
        "{posted}"
    );
    let inbound = d.wait("the message", |v| {
        v["type"] == "inbound" && v["connector"] == "wecom_callback"
    });
    let chat = inbound["message"]["chat"].as_str().unwrap().to_owned();
    assert_eq!(chat, format!("{}:{ALLOWED}", s.fake.get("corp_id")));
    assert_eq!(inbound["message"]["text"], "hello from the app");
    s.fake.admin("api/expire", &json!({}));
    d.send(json!({"type": "send_text", "id": "r1", "connector": "wecom_callback", "chat": chat, "text": "the reply"}));
    let r = d.wait("r1", |v| v["type"] == "result" && v["id"] == "r1");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(s.sent_to(ALLOWED), ["the reply"]);
    assert!(
        s.fake.recorded("gettoken").len() >= 2,
        "the expired token was fetched again"
    );
    // A long reply is cut at 2,048 bytes.
    let long = "字".repeat(1000);
    d.send(json!({"type": "send_text", "id": "r2", "connector": "wecom_callback", "chat": chat, "text": long}));
    let r = d.wait("r2", |v| v["type"] == "result" && v["id"] == "r2");
    assert_eq!(r["data"]["message_ids"].as_array().unwrap().len(), 2, "{r}");
    assert!(s.sent_to(ALLOWED).iter().all(|t| t.len() <= 2048));

    // WhatsApp goes on beside it.
    s.whatsapp.inject_dm(WA_FRIEND, "from whatsapp");
    d.wait("the WhatsApp DM", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "from whatsapp"
    });

    // WeCom's retry of the same MsgId: answered, not delivered again.
    let retry = s.fake.callback(
        &url,
        ALLOWED,
        "hello from the app",
        json!({"msgid": "9001"}),
    );
    assert_eq!(retry["status"], 200);

    // A stranger gets a pairing code, and is let in once approved.
    s.fake.callback(&url, STRANGER, "let me in", json!({}));
    crate::support::wait_blocking("the pairing code", || !s.sent_to(STRANGER).is_empty());
    let code_text = s.sent_to(STRANGER).remove(0);
    let code = code_text
        .split_whitespace()
        .find(|w| w.len() == 8 && w.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| panic!("no code in {code_text:?}"))
        .to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
        .args(["pairing", "approve", "wecom_callback", &code, "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    s.fake.callback(&url, STRANGER, "approved now", json!({}));
    d.wait("the approved message", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "approved now"
    });

    // Refusals.
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let path = format!(
        "/{}",
        url.trim_start_matches("http://").split_once('/').unwrap().1
    );
    let big = "x".repeat(70 * 1024);
    let fresh = bridgekeeper::util::time::unix_secs() as u64;
    let r = crate::support::http::request(
        &addr,
        "POST",
        &format!("{path}?msg_signature=a&timestamp={fresh}&nonce=n"),
        Some(&addr),
        &[("Content-Type", "text/xml")],
        Some(&big),
    );
    assert_eq!(r.status, 413);
    let forged = s.fake.callback(
        &url,
        ALLOWED,
        "forged",
        json!({"sign_with": "not-the-token"}),
    );
    assert_eq!(forged["status"], 403, "{forged}");
    let stale = s.fake.callback(
        &url,
        ALLOWED,
        "stale",
        json!({"timestamp": (bridgekeeper::util::time::unix_secs() as i64) - 600}),
    );
    assert_eq!(stale["status"], 403, "{stale}");
    let first = s
        .fake
        .callback(&url, ALLOWED, "nonce once", json!({"nonce": "n-fixed"}));
    assert_eq!(first["status"], 200);
    let replayed = s
        .fake
        .callback(&url, ALLOWED, "nonce twice", json!({"nonce": "n-fixed"}));
    assert_eq!(replayed["status"], 403, "{replayed}");
    let other_corp = s.fake.callback(
        &url,
        ALLOWED,
        "other corp",
        json!({"corp_id": "wwsomeoneelse"}),
    );
    assert_eq!(other_corp["status"], 403, "{other_corp}");
    let dtd =
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><xml><Encrypt>&a;</Encrypt></xml>";
    let now = (bridgekeeper::util::time::unix_secs() as i64).to_string();
    let r = crate::support::http::request(
        &addr,
        "POST",
        &format!("{path}?msg_signature=a&timestamp={now}&nonce=n2"),
        Some(&addr),
        &[("Content-Type", "text/xml")],
        Some(dtd),
    );
    assert_eq!(r.status, 400);

    d.settle(std::time::Duration::from_millis(1500));
    let texts = d.inbound_texts("wecom_callback");
    assert_eq!(
        texts,
        ["hello from the app", "approved now", "nonce once"],
        "nothing refused got through"
    );
    let status = s.status();
    let c = crate::support::status_connector(&status, "wecom_callback");
    crate::support::assert_ledger_balanced(&c["ledger"]);
    assert_eq!(c["ledger"]["ignored"]["duplicate"], 1, "{}", c["ledger"]);
    for what in [
        "refused_too_large",
        "refused_signature",
        "refused_stale",
        "refused_replayed",
        "refused_corp",
        "refused_xml_declaration",
    ] {
        assert!(
            c["counts"][what].as_u64().unwrap_or(0) >= 1,
            "{what}: {}",
            c["counts"]
        );
    }
    let (out, err) = d.stop();
    let status_text = status.to_string();
    for (_, secret) in s.secrets() {
        crate::support::assert_secret_nowhere(
            &secret,
            &s.dir.path().join("state"),
            &[&out, &err, &status_text],
        );
    }
}

/// A corp secret WeCom refuses is `needs_token`: reported with its fix, started once, never
/// restarted.
#[test]
fn a_refused_corp_secret_is_needs_token_started_once() {
    let s = callback_scene("policy: {dm_policy: open}");
    s.fake.admin("api/refuse", &json!({"on": true}));
    let mut d = s.daemon();
    let closed = d.wait("the refusal", |v| {
        v["type"] == "connection"
            && v["connector"] == "wecom_callback"
            && v["status"]["state"] == "closed"
    });
    let reason = closed["status"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("needs_token") && reason.contains("WECOM_CALLBACK_CORP_SECRET"),
        "{reason}"
    );
    d.wait("needs_token", |v| {
        v["type"] == "connector_state"
            && v["connector"] == "wecom_callback"
            && v["state"] == "needs_token"
    });
    d.settle(std::time::Duration::from_millis(1500));
    let starts = d
        .seen
        .iter()
        .filter(|v| {
            v["type"] == "connector_state"
                && v["connector"] == "wecom_callback"
                && v["state"] == "starting"
        })
        .count();
    assert_eq!(starts, 1, "started once, never again");
    let (out, err) = d.stop();
    assert!(!out.contains(&s.fake.get("corp_secret")) && !err.contains(&s.fake.get("corp_secret")));
}

struct BotScene {
    dir: tempfile::TempDir,
    fake: FakeWecom,
    whatsapp: Option<FakeWhatsApp>,
    config: std::path::PathBuf,
}

/// The AI Bot connector against the fake (pings every `ping_ms`), with WhatsApp beside it when
/// `with_whatsapp`; `top` is more top-level config (a `relay:` section).
fn bot_scene(policy: &str, ping_ms: u64, with_whatsapp: bool, top: &str) -> BotScene {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeWecom::start(dir.path());
    let restart = "restart: {initial_backoff_ms: 50, max_backoff_ms: 500, jitter: 0.0, max_restarts: 20, window_ms: 60000}";
    let mut connectors = vec![format!(
        "  - name: wecom\n    builtin: wecom\n    args: [--media-dir, {:?}]\n    env: {{WECOM_WEBSOCKET_URL: {:?}, WECOM_BOT_ID: {:?}, BRIDGEKEEPER_WECOM_PING_MS: '{ping_ms}'}}\n    {policy}\n    {restart}\n",
        dir.path().join("wecom-media"),
        fake.get("ws_url"),
        fake.get("bot_id"),
    )];
    let whatsapp =
        with_whatsapp.then(|| FakeWhatsApp::beside(dir.path(), &mut connectors, WA_FRIEND));
    let config = crate::support::write_config_with(dir.path(), &connectors, top);
    BotScene {
        dir,
        fake,
        whatsapp,
        config,
    }
}

impl BotScene {
    fn daemon(&self) -> crate::support::daemon::Daemon {
        let secret = self.fake.get("bot_secret");
        crate::support::daemon::Daemon::start(&self.config, &[("WECOM_SECRET", secret.as_str())])
    }

    fn start(&self) -> crate::support::daemon::Daemon {
        let mut d = self.daemon();
        d.opened("wecom", 1);
        if self.whatsapp.is_some() {
            d.wait("whatsapp open", |v| {
                v["type"] == "connection"
                    && v["connector"] == "whatsapp"
                    && v["status"]["state"] == "open"
            });
        }
        d
    }

    /// `(cmd, req_id, markdown)` of every message the bot sent.
    fn sent(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for cmd in ["aibot_respond_msg", "aibot_send_msg"] {
            for v in self.fake.recorded(cmd) {
                out.push((
                    cmd.to_owned(),
                    v["req_id"].as_str().unwrap_or_default().to_owned(),
                    v["body"]["markdown"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
        }
        out
    }
}

/// The AI Bot end to end beside WhatsApp: an allowed DM arrives and its reply goes out as a
/// reply (`aibot_respond_msg` under the callback's `req_id`), a message the bot starts as
/// `aibot_send_msg`; in a group only a message that mentions the bot is delivered (the other
/// ignored `no_mention`), and an answer there is a reply under the group's latest callback; a
/// stranger is sent a pairing code; an event is recorded; a long text is cut at 4,000
/// characters; an image sent is uploaded in chunks (MD5 checked by the fake) and an encrypted
/// one received is decrypted into the media dir; the ledger balances; no secret is written.
#[test]
fn the_ai_bot_end_to_end_beside_whatsapp() {
    use std::os::unix::fs::PermissionsExt;
    let s = bot_scene(
        &format!(
            "policy: {{dm_policy: pairing, allow_from: ['wecom:user:{ALLOWED}'], group_policy: open}}"
        ),
        30_000,
        true,
        "",
    );
    let mut d = s.start();
    let pushed = s.fake.dm(ALLOWED, "hello bot");
    let m = d.wait("the DM", |v| {
        v["type"] == "inbound" && v["connector"] == "wecom"
    });
    assert_eq!(
        (m["message"]["text"].clone(), m["message"]["chat"].clone()),
        (json!("hello bot"), json!(ALLOWED))
    );
    let msgid = pushed["msgid"].as_str().unwrap();
    d.send(json!({"type": "send_text", "id": "r1", "connector": "wecom", "chat": ALLOWED, "text": "a reply", "reply_to": msgid}));
    assert_eq!(d.result("r1")["data"]["replied"], true);
    d.send(json!({"type": "send_text", "id": "r2", "connector": "wecom", "chat": ALLOWED, "text": "a new message"}));
    assert_eq!(d.result("r2")["data"]["replied"], false);
    let sent = s.sent();
    assert!(
        sent.contains(&(
            "aibot_respond_msg".into(),
            pushed["req_id"].as_str().unwrap().into(),
            "a reply".into()
        )),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|(cmd, _, text)| cmd == "aibot_send_msg" && text == "a new message"),
        "{sent:?}"
    );

    // Groups: a mention is needed; an answer there goes under the group's latest callback.
    s.fake.group("wr-team", ALLOWED, "no mention here");
    let g = s.fake.group("wr-team", ALLOWED, "@HermesBot what is up");
    let gm = d.wait("the mention", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "@HermesBot what is up"
    });
    assert_eq!(gm["message"]["is_group"], true);
    d.send(json!({"type": "send_text", "id": "r3", "connector": "wecom", "chat": "wr-team", "text": "group answer"}));
    assert_eq!(d.result("r3")["ok"], true);
    assert!(s.sent().contains(&(
        "aibot_respond_msg".into(),
        g["req_id"].as_str().unwrap().into(),
        "group answer".into()
    )));

    // A stranger is sent a code.
    s.fake.dm(STRANGER, "who are you");
    crate::support::wait_blocking("the pairing code", || {
        s.sent()
            .iter()
            .any(|(_, _, text)| text.contains("pair") || text.contains("code"))
    });
    // An event, recorded.
    s.fake.admin(
        "bot/event",
        &json!({"from": ALLOWED, "eventtype": "enter_chat"}),
    );

    // A long text in 4,000-character parts.
    let long = "段".repeat(9000);
    d.send(json!({"type": "send_text", "id": "r4", "connector": "wecom", "chat": ALLOWED, "text": long}));
    assert_eq!(
        d.result("r4")["data"]["message_ids"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Media: an image sent in chunks, an encrypted one received.
    let photo: Vec<u8> = (0..1_200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let path = s.dir.path().join("photo.png");
    std::fs::write(&path, &photo).unwrap();
    d.send(json!({"type": "send_media", "id": "r5", "connector": "wecom", "chat": ALLOWED, "path": path, "kind": "image", "caption": "here"}));
    let r5 = d.result("r5");
    assert_eq!(r5["ok"], true, "{r5}");
    let upload = &s.fake.recorded("upload")[0];
    assert_eq!(
        (
            upload["ok"].clone(),
            upload["chunks"].clone(),
            upload["size"].clone()
        ),
        (json!(true), json!(3), json!(photo.len())),
        "{upload}"
    );
    use base64::Engine;
    let small: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    s.fake.admin("bot/inject", &json!({"from": ALLOWED, "text": "see this", "image": base64::engine::general_purpose::STANDARD.encode(&small)}));
    let im = d.wait("the image", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "see this"
    });
    let media = &im["message"]["media"];
    let file = media["path"].as_str().unwrap_or_else(|| panic!("{media}"));
    assert_eq!(std::fs::read(file).unwrap(), small);
    assert_eq!(
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // WhatsApp goes on beside it.
    s.whatsapp
        .as_ref()
        .unwrap()
        .inject_dm(WA_FRIEND, "from whatsapp");
    d.wait("the WhatsApp DM", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "from whatsapp"
    });

    d.settle(std::time::Duration::from_millis(1500));
    let texts = d.inbound_texts("wecom");
    assert!(!texts.contains(&"no mention here".to_owned()), "{texts:?}");
    d.send(json!({"type": "status", "id": "st"}));
    let st = d.result("st");
    let c = st["data"]["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "wecom")
        .unwrap()
        .clone();
    crate::support::assert_ledger_balanced(&c["ledger"]);
    assert_eq!(c["ledger"]["ignored"]["no_mention"], 1, "{}", c["ledger"]);
    assert_eq!(
        c["ledger"]["ignored"]["empty_message"], 1,
        "the event: {}",
        c["ledger"]
    );
    assert_eq!(c["ledger"]["paired"], 1, "{}", c["ledger"]);
    let (out, err) = d.stop();
    crate::support::assert_secret_nowhere(
        &s.fake.get("bot_secret"),
        &s.dir.path().join("state"),
        &[&out, &err, &st.to_string()],
    );
}

/// A secret WeCom refuses is `needs_token`, started once; a connection the server drops is
/// dialled again; a server that stops answering pings is found deaf and dialled again too.
#[test]
fn refused_dropped_and_deaf_connections() {
    let s = bot_scene("policy: {dm_policy: open}", 300, false, "");
    s.fake.admin("bot/refuse", &json!({"on": true}));
    let mut d = s.daemon();
    let closed = d.wait("the refusal", |v| {
        v["type"] == "connection" && v["connector"] == "wecom" && v["status"]["state"] == "closed"
    });
    assert!(
        closed["status"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("needs_token"),
        "{closed}"
    );
    d.settle(std::time::Duration::from_millis(1500));
    assert_eq!(d.starts(), 1, "started once");
    d.stop();

    s.fake.admin("bot/refuse", &json!({"on": false}));
    let mut d = s.start();
    s.fake.admin("bot/drop", &json!({}));
    d.opened("wecom", 2);
    s.fake.dm(ALLOWED, "after the drop");
    d.wait("a DM after the drop", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "after the drop"
    });
    s.fake.admin("bot/deaf", &json!({"on": true}));
    d.wait("deaf", |v| {
        v["type"] == "connection"
            && v["connector"] == "wecom"
            && v["status"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("deaf"))
    });
    s.fake.admin("bot/deaf", &json!({"on": false}));
    d.opened("wecom", 3);
    s.fake.dm(ALLOWED, "after deafness");
    d.wait("a DM after deafness", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "after deafness"
    });
    d.stop();
}

/// The figures in docs/benchmarks.md ("WeCom"): inject → gateway latency for the AI Bot and a
/// self-built app beside WhatsApp's, in one run; each connector's RSS idle and at its peak over
/// a burst of 1,000 messages. `bash scripts/bench/wecom.sh`.
#[test]
#[ignore = "benchmark: bash scripts/bench/wecom.sh"]
fn bench_wecom_beside_whatsapp() {
    use crate::support::bench::{BURST, drain, latency_side_by_side};
    let s = bot_scene("policy: {dm_policy: open}", 30_000, true, "");
    // The self-built app's connector in the same run.
    let config = std::fs::read_to_string(&s.config).unwrap();
    let callback = format!(
        "  - name: wecom_callback\n    builtin: wecom_callback\n    env: {{WECOM_CALLBACK_PORT: '0', WECOM_CALLBACK_API_ROOT: {:?}, WECOM_CALLBACK_CORP_ID: {:?}, WECOM_CALLBACK_AGENT_ID: '{}'}}\n    policy: {{dm_policy: open}}\n",
        s.fake.get("api_root"),
        s.fake.get("corp_id"),
        s.fake.get("agent_id"),
    );
    std::fs::write(&s.config, config + &callback).unwrap();
    let secrets = [
        ("WECOM_SECRET", s.fake.get("bot_secret")),
        ("WECOM_CALLBACK_CORP_SECRET", s.fake.get("corp_secret")),
        ("WECOM_CALLBACK_TOKEN", s.fake.get("callback_token")),
        ("WECOM_CALLBACK_ENCODING_AES_KEY", s.fake.get("aes_key")),
    ];
    let env: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = crate::support::daemon::Daemon::start(&s.config, &env);
    d.opened("wecom", 1);
    d.wait("whatsapp open", |v| {
        v["type"] == "connection" && v["connector"] == "whatsapp" && v["status"]["state"] == "open"
    });
    let open = d.wait("wecom_callback open", |v| {
        v["type"] == "connection"
            && v["connector"] == "wecom_callback"
            && v["status"]["state"] == "open"
    });
    let url = crate::support::listening_url(&open);
    let wa = s.whatsapp.as_ref().unwrap();
    latency_side_by_side(
        &mut d,
        "wecom",
        &[
            ("wecom", &|text| drop(s.fake.dm(ALLOWED, text))),
            ("wecom_callback", &|text| {
                drop(s.fake.callback(&url, ALLOWED, text, json!({})))
            }),
            ("whatsapp", &|text| drop(wa.inject_dm(WA_FRIEND, text))),
        ],
    );
    let (bot, app) = (d.pid("wecom"), d.pid("wecom_callback"));
    let idle = (
        crate::support::rss_mib(bot, "VmRSS:"),
        crate::support::rss_mib(app, "VmRSS:"),
    );
    let started = std::time::Instant::now();
    for i in 0..BURST {
        s.fake.dm(ALLOWED, &format!("burst-{i}"));
    }
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (fake, url) = (&s.fake, &url);
            scope.spawn(move || {
                for i in (t..BURST).step_by(4) {
                    fake.callback(url, ALLOWED, &format!("cburst-{i}"), json!({}));
                }
            });
        }
    });
    let drained = drain(&mut d, "burst-", 2 * BURST);
    eprintln!(
        "wecom bench: bursts of {BURST} to each connector: {} delivered in {:.2} s",
        drained,
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "wecom bench: connector RSS idle / peak over the burst (MiB): wecom {:.1} / {:.1}, wecom_callback {:.1} / {:.1}",
        idle.0,
        crate::support::rss_mib(bot, "VmHWM:"),
        idle.1,
        crate::support::rss_mib(app, "VmHWM:")
    );
    d.stop();
}

/// A stranger trickles bodies at the callback URL (8 connections, a byte per segment, 20 s,
/// with a fresh timestamp, so the head passes): the receiver grows by a few MiB at most, each
/// slow body is cut, and WeCom's signed callback meanwhile is answered at once. A request
/// without the signed query, or with a stale timestamp, is refused from its head.
#[test]
fn a_stranger_trickling_callbacks_costs_what_they_weigh() {
    use crate::support::attack::{answer_to_head, head, trickle_and_measure};
    let s = callback_scene(&format!(
        "policy: {{dm_policy: allowlist, allow_from: ['wecom:user:{ALLOWED}']}}"
    ));
    let (mut d, url) = s.start();
    let warm = s.fake.callback(&url, ALLOWED, "warm", json!({}));
    assert_eq!(warm["status"], 200, "{warm}");
    let status = s.status();
    let pid = crate::support::status_connector(&status, "wecom_callback")["pid"]
        .as_u64()
        .unwrap() as u32;
    let (addr, path) = url.trim_start_matches("http://").split_once('/').unwrap();
    let fresh = bridgekeeper::util::time::unix_secs() as u64;
    let signed_path = format!("/{path}?msg_signature=x&timestamp={fresh}&nonce=t");
    let trickling = head("POST", &signed_path, 60_000, &["Content-Type: text/xml"]);
    trickle_and_measure("wecom_callback", addr, &trickling, pid, || {
        let posted = s
            .fake
            .callback(&url, ALLOWED, "during the attack", json!({}));
        assert_eq!(posted["status"], 200, "{posted}");
    });
    let unsigned = head("POST", &format!("/{path}"), 60_000, &[]);
    assert_eq!(answer_to_head(addr, &unsigned), 400);
    let stale = head(
        "POST",
        &format!("/{path}?msg_signature=x&timestamp=1&nonce=n"),
        60_000,
        &[],
    );
    assert_eq!(answer_to_head(addr, &stale), 403);
    d.settle(std::time::Duration::from_millis(500));
    let texts = d.inbound_texts("wecom_callback");
    assert!(texts.iter().any(|t| t == "during the attack"), "{texts:?}");
}

/// Two senders' files of one name both survive with their own bytes (a file is named by the
/// connector, the message and a random part, never by the sender; the sender's name travels as
/// `file_name`), and the media dir is held to the retention rules while the connector runs:
/// a file older than `BRIDGEKEEPER_MEDIA_MAX_AGE` is removed at start, and past
/// `BRIDGEKEEPER_MEDIA_MAX_MB` the oldest go first.
#[test]
fn same_named_files_both_survive_and_old_media_are_removed() {
    use base64::Engine;
    let s = bot_scene("policy: {dm_policy: open}", 30_000, false, "");
    let media_dir = s.dir.path().join("wecom-media");
    std::fs::create_dir_all(&media_dir).unwrap();
    let stale = media_dir.join("wecom-old-1-aaaa.pdf");
    std::fs::write(&stale, b"last week").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400))
        .unwrap();
    let foreign = media_dir.join("not-ours.pdf");
    std::fs::write(&foreign, b"someone else's").unwrap();
    let secret = s.fake.get("bot_secret");
    let mut d = crate::support::daemon::Daemon::start(
        &s.config,
        &[
            ("WECOM_SECRET", secret.as_str()),
            ("BRIDGEKEEPER_MEDIA_MAX_AGE", "1d"),
            ("BRIDGEKEEPER_MEDIA_MAX_MB", "1"),
        ],
    );
    d.opened("wecom", 1);
    crate::support::wait_blocking("the stale file removed at start", || !stale.exists());
    assert!(foreign.exists(), "only the connector's own files are swept");

    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    // A file message carries no text: each is the inbound with a file not seen before.
    let mut known: Vec<String> = Vec::new();
    let mut file_of = |from: &str, bytes: &[u8]| -> (String, Value) {
        s.fake.admin(
            "bot/inject",
            &json!({"from": from, "file": b64(bytes), "filename": "report.pdf"}),
        );
        let m = d.wait("a file", |v| {
            v["type"] == "inbound"
                && v["message"]["sender"]
                    .as_str()
                    .is_some_and(|x| x.contains(from))
                && v["message"]["media"]["path"]
                    .as_str()
                    .is_some_and(|p| !known.iter().any(|k| k == p))
        });
        let media = m["message"]["media"].clone();
        let path = media["path"].as_str().unwrap().to_owned();
        known.push(path.clone());
        (path, media)
    };
    let (alice, alice_media) = file_of(ALLOWED, b"alice's numbers");
    let (mallory, _) = file_of(STRANGER, b"mallory's numbers");
    assert_ne!(alice, mallory);
    assert_eq!(std::fs::read(&alice).unwrap(), b"alice's numbers");
    assert_eq!(std::fs::read(&mallory).unwrap(), b"mallory's numbers");
    assert_eq!(alice_media["file_name"], "report.pdf");
    assert!(
        !alice.contains("report"),
        "the sender's name is not the file's: {alice}"
    );

    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let (first_big, _) = file_of(ALLOWED, &big);
    let (second_big, _) = file_of(ALLOWED, &big);
    for gone in [&alice, &mallory, &first_big] {
        assert!(
            !std::path::Path::new(gone).exists(),
            "{gone} kept past 1 MiB"
        );
    }
    assert_eq!(std::fs::read(&second_big).unwrap(), big);
    d.stop();
}
