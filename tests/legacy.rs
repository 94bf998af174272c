//! The legacy HTTP API (drop-in for bridge.js): a contract test per endpoint — success and error
//! shapes, the Host check, the token, 503 while disconnected — over the real daemon with the
//! fake connector; and the Hermes adapter's behaviour (a stdlib Python script) against the real
//! stack: the shim, bridgekeeper, node-bridge, Baileys and the fake WhatsApp server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge_protocol::message::{Command as ConnectorCmd, ConnectorCommand};
use bridgekeeper::config::SupervisorConfig;
use bridgekeeper::legacy::{HttpOptions, serve};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::http::{Reply, request};
use crate::support::whatsapp::{FakeWhatsApp, node_bridge_dir};
use crate::support::{BRIDGEKEEPER, PATIENCE, connector, wait_for, write_config};

struct Legacy {
    addr: String,
    inbound: PathBuf,
    commands: PathBuf,
    state_dir: PathBuf,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

struct Setup {
    policy: &'static str,
    fake_args: Vec<&'static str>,
    token: Option<&'static str>,
    read_receipts: bool,
    max_len: usize,
    max_parts: usize,
    inbox: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            policy: "policy: {mode: bot, dm_policy: open}",
            fake_args: Vec::new(),
            token: None,
            read_receipts: true,
            max_len: 4096,
            max_parts: 32,
            inbox: 1000,
        }
    }
}

impl Legacy {
    async fn start(setup: Setup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inbound = dir.path().join("inbound.jsonl");
        let commands = dir.path().join("commands.jsonl");
        std::fs::write(&inbound, "").unwrap();
        let mut args = vec![
            "--inbound-file",
            inbound.to_str().unwrap(),
            "--command-log",
            commands.to_str().unwrap(),
            "--account",
            "15550001111:111222333",
        ];
        args.extend(setup.fake_args.iter());
        let path = write_config(dir.path(), &[connector("whatsapp", &args, setup.policy)]);
        let mut config = SupervisorConfig::load(&path).unwrap();
        config.resolve_access(&Default::default()).unwrap();
        let state_dir = config.state_dir.clone();
        let options = HttpOptions {
            session: dir.path().join("session"),
            script_hash: "0123456789abcdef".into(),
            send_read_receipts: setup.read_receipts,
            reply_prefix: "PREFIX ".into(),
            max_message_length: setup.max_len,
            max_parts: setup.max_parts,
            chunk_delay: Duration::from_millis(10),
            send_timeout: Duration::from_secs(10),
            token: setup.token.map(str::to_owned),
            inbox_capacity: setup.inbox,
            limits: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(config, options, listener, shutdown.clone()));
        let legacy = Self {
            addr,
            inbound,
            commands,
            state_dir,
            shutdown,
            task: Some(task),
            _dir: dir,
        };
        if !setup.fake_args.contains(&"--no-open") {
            let addr = legacy.addr.clone();
            let auth = setup
                .token
                .map(|t| format!("Bearer {t}"))
                .unwrap_or_default();
            let headers: Vec<(&str, &str)> = if auth.is_empty() {
                vec![]
            } else {
                vec![("Authorization", &auth)]
            };
            wait_for("connected", || {
                request(&addr, "GET", "/health", Some("localhost"), &headers, None).json()["status"]
                    == "connected"
            })
            .await;
        }
        legacy
    }

    fn get(&self, path: &str) -> Reply {
        call(&self.addr, "GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Reply {
        call(&self.addr, "POST", path, Some(&body.to_string()))
    }

    fn inject(&self, event: Value) {
        crate::support::append_json(&self.inbound, &event);
    }

    fn sent(&self) -> Vec<ConnectorCommand> {
        std::fs::read_to_string(&self.commands)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    async fn stop(self) -> Vec<Value> {
        self.stop_with_status().await.0
    }

    /// Stops, and also gives the final `status.json` (read before the temp dir goes).
    async fn stop_with_status(mut self) -> (Vec<Value>, Value) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(PATIENCE, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let status = std::fs::read_to_string(self.state_dir.join("status.json")).unwrap();
        (
            crate::support::log_events(&self.state_dir),
            serde_json::from_str(&status).unwrap(),
        )
    }
}

fn call(addr: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
    request(addr, method, path, Some("localhost"), &[], body)
}

fn assert_error(reply: &Reply, status: u16, message: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.json(), json!({"error": message}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_loopback_hosts_are_served() {
    let l = Legacy::start(Setup::default()).await;
    for host in [
        "localhost:3000",
        "127.0.0.1:3000",
        "[::1]:3000",
        "localhost",
    ] {
        assert_eq!(
            request(&l.addr, "GET", "/health", Some(host), &[], None).status,
            200,
            "{host}"
        );
    }
    let evil = request(&l.addr, "GET", "/messages", Some("evil.example"), &[], None);
    assert_error(
        &evil,
        400,
        "Invalid Host header. Bridge accepts loopback hosts only.",
    );
    let rebinding = request(
        &l.addr,
        "POST",
        "/send",
        Some("localhost.evil.example:3000"),
        &[],
        Some("{}"),
    );
    assert_eq!(rebinding.status, 400);
    let missing = request(&l.addr, "GET", "/health", None, &[], None);
    assert_error(&missing, 400, "Missing Host header");
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_optional_token_is_required_when_set() {
    let l = Legacy::start(Setup {
        token: Some("s3cret"),
        ..Setup::default()
    })
    .await;
    let none = request(&l.addr, "GET", "/messages", Some("localhost"), &[], None);
    assert_error(&none, 401, "Missing or invalid bridge token");
    let wrong = request(
        &l.addr,
        "GET",
        "/messages",
        Some("localhost"),
        &[("Authorization", "Bearer nope")],
        None,
    );
    assert_eq!(wrong.status, 401);
    let bearer = request(
        &l.addr,
        "GET",
        "/messages",
        Some("localhost"),
        &[("Authorization", "Bearer s3cret")],
        None,
    );
    assert_eq!(bearer.status, 200);
    let header = request(
        &l.addr,
        "GET",
        "/messages",
        Some("localhost"),
        &[("X-Bridge-Token", "s3cret")],
        None,
    );
    assert_eq!(header.status, 200);
    // The scheme is case-insensitive (RFC 9110).
    for scheme in ["bearer", "BEARER"] {
        let auth = format!("{scheme} s3cret");
        let r = request(
            &l.addr,
            "GET",
            "/messages",
            Some("localhost"),
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(r.status, 200, "{scheme}");
    }
    l.stop().await;
}

// A web page in the operator's browser can reach 127.0.0.1 without a CORS preflight ("simple
// requests"): none of those may send, edit, type, mark read or drain the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_browser_could_send_cross_site_never_act() {
    let l = Legacy::start(Setup::default()).await;
    let chat = "15551234567@s.whatsapp.net";
    l.inject(json!({"sender": chat, "text": "waiting for hermes"}));
    let addr = l.addr.clone();
    wait_for("one queued", || {
        call(&addr, "GET", "/health", None).json()["queueLength"] == 1
    })
    .await;
    let file = l._dir.path().join("photo.jpg");
    std::fs::write(&file, b"jpeg").unwrap();
    let bodies = [
        (
            "/send",
            json!({"chatId": chat, "message": "from a web page"}),
        ),
        (
            "/edit",
            json!({"chatId": chat, "messageId": "M1", "message": "x"}),
        ),
        ("/send-media", json!({"chatId": chat, "filePath": file})),
        ("/typing", json!({"chatId": chat})),
        (
            "/read",
            json!({"key": {"remoteJid": chat, "id": "M1", "fromMe": false}}),
        ),
    ];
    let json_ct = ("Content-Type", "application/json");
    let header_variants: [(&[(&str, &str)], u16); 7] = [
        (&[("Content-Type", "text/plain")], 415),
        (&[("Content-Type", "text/plain;charset=UTF-8")], 415),
        (
            &[("Content-Type", "application/x-www-form-urlencoded")],
            415,
        ),
        (&[("Content-Type", "multipart/form-data; boundary=x")], 415),
        (&[json_ct, ("Origin", "https://evil.example")], 403),
        (&[json_ct, ("Origin", "null")], 403),
        (&[json_ct, ("Sec-Fetch-Site", "cross-site")], 403),
    ];
    let mut refused = 0;
    for (path, body) in &bodies {
        for (headers, status) in header_variants
            .iter()
            .chain([(&[json_ct, ("Sec-Fetch-Site", "same-site")][..], 403)].iter())
        {
            let r = request(
                &l.addr,
                "POST",
                path,
                Some("localhost:3000"),
                headers,
                Some(&body.to_string()),
            );
            assert_eq!(r.status, *status, "{path} {headers:?}: {}", r.body);
            assert!(r.json()["error"].is_string(), "{path} {headers:?}");
            assert!(
                !r.head.to_ascii_lowercase().contains("access-control-allow"),
                "no CORS headers: {}",
                r.head
            );
            refused += 1;
        }
    }
    for headers in [
        &[("Origin", "https://evil.example")][..],
        &[("Origin", "null")],
        &[("Sec-Fetch-Site", "cross-site")],
        &[
            ("Sec-Fetch-Site", "same-site"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
    ] {
        let r = request(
            &l.addr,
            "GET",
            "/messages",
            Some("127.0.0.1:3000"),
            headers,
            None,
        );
        assert_eq!(r.status, 403, "{headers:?}: {}", r.body);
        refused += 1;
    }
    // A preflight gets no permission either.
    let preflight = request(
        &l.addr,
        "OPTIONS",
        "/send",
        Some("localhost"),
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert!(
        !preflight
            .head
            .to_ascii_lowercase()
            .contains("access-control-allow")
    );
    refused += 1;

    assert!(
        l.sent().iter().all(|c| !matches!(
            c.command.type_name(),
            "send_text" | "edit" | "send_media" | "typing" | "read"
        )),
        "a refused request reached the connector: {:?}",
        l.sent()
    );
    let h = l.get("/health").json();
    assert_eq!(h["queueLength"], 1, "nothing drained");
    assert_eq!(h["bridgekeeper"]["refusedCrossSite"], refused);
    // The legitimate client (JSON, no Origin; a loopback page's Origin too) still works.
    let polled = l.get("/messages").json();
    assert_eq!(polled[0]["body"], "waiting for hermes");
    assert_eq!(
        l.post("/send", json!({"chatId": chat, "message": "hi"}))
            .status,
        200
    );
    let local_page = request(
        &l.addr,
        "POST",
        "/typing",
        Some("localhost"),
        &[
            ("Origin", "http://localhost:3000"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        Some(&json!({"chatId": chat}).to_string()),
    );
    assert_eq!(local_page.status, 200, "{}", local_page.body);
    let log = l.stop().await;
    let logged: Vec<&Value> = log
        .iter()
        .filter(|e| e["event"] == "http_refused")
        .collect();
    assert_eq!(logged.len(), 1, "once a minute at most: {logged:?}");
    assert_eq!(logged[0]["reason"], "not_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_parts_or_too_large_a_body_is_413_in_json() {
    let l = Legacy::start(Setup {
        max_len: 10,
        max_parts: 3,
        ..Setup::default()
    })
    .await;
    let chat = "15551234567@s.whatsapp.net";
    let long = l.post(
        "/send",
        json!({"chatId": chat, "message": "aaaa bbbb cccc dddd eeee ffff gggg"}),
    );
    assert_eq!(long.status, 413, "{}", long.body);
    let message = long.json()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("the limit is 3"), "{message}");
    assert!(
        l.sent()
            .iter()
            .all(|c| c.command.type_name() != "send_text"),
        "nothing sent"
    );
    let three = l.post(
        "/send",
        json!({"chatId": chat, "message": "aaaa bbbb cccc"}),
    );
    assert_eq!(three.status, 200, "{}", three.body);
    let huge = "x".repeat(3 * 1024 * 1024);
    let body = json!({"chatId": chat, "message": huge}).to_string();
    let r = call(&l.addr, "POST", "/send", Some(&body));
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].is_string(), "{}", r.body);
    let wrong_method = call(&l.addr, "GET", "/send", None);
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.json()["error"].is_string());
    l.stop().await;
}

/// A client that sends `GET /messages` and closes at once never reads an answer: nothing may
/// be drained for it; the next poll gets the message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_whose_client_closed_at_once_drains_nothing() {
    use std::io::Write;
    let l = Legacy::start(Setup::default()).await;
    l.inject(json!({"id": "P1", "sender": "15551234567@s.whatsapp.net", "text": "keep me"}));
    let addr = l.addr.clone();
    wait_for("one queued", || {
        call(&addr, "GET", "/health", None).json()["queueLength"] == 1
    })
    .await;
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(&l.addr).unwrap();
        s.write_all(b"GET /messages HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        drop(s);
    }
    // Give the 20 connections a moment to be served. Each ends in one of three ways, all
    // without a loss: hyper sees the closed connection first and drops the request, our
    // handler finds the client gone (stalePolls), or the answer is never taken (returned).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polled = l.get("/messages").json();
    assert_eq!(polled.as_array().unwrap().len(), 1, "{polled}");
    assert_eq!(polled[0]["messageId"], "P1");
    assert_eq!(l.get("/messages").json(), json!([]), "exactly once");
    l.stop().await;
}

/// `success` from `/send` means the connector wrote the message; WhatsApp's acknowledgement
/// comes later or not at all. /health counts sends by how far they got, unconfirmed ones raise
/// one alert per burst, and `bridgekeeper logs --event receipt` lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_counted_by_outcome_and_unconfirmed_ones_alert_once_per_burst() {
    let l = Legacy::start(Setup::default()).await;
    let chat = "15551234567@s.whatsapp.net";
    for text in ["one", "two"] {
        let r = l.post("/send", json!({"chatId": chat, "message": text}));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let ids: Vec<String> = l
        .sent()
        .iter()
        .filter(|c| c.command.type_name() == "send_text")
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    l.inject(json!({"type": "receipt", "message_id": "A", "chat": chat, "status": "server_ack"}));
    for id in ["B", "C", "D"] {
        l.inject(
            json!({"type": "receipt", "message_id": id, "chat": chat, "status": "unconfirmed"}),
        );
    }
    let failed = l.post(
        "/send",
        json!({"chatId": "x", "message": "y", "replyTo": 5}),
    );
    let addr = l.addr.clone();
    wait_for("the receipts", || {
        call(&addr, "GET", "/health", None).json()["bridgekeeper"]["sends"]["unconfirmed"] == 3
    })
    .await;
    let sends = l.get("/health").json()["bridgekeeper"]["sends"].clone();
    assert_eq!(
        sends["accepted"].as_u64().unwrap() + sends["failed"].as_u64().unwrap(),
        3,
        "{sends} {}",
        failed.body
    );
    assert_eq!(sends["serverAcked"], 1, "{sends}");
    let log = l.stop().await;
    let copy = tempfile::NamedTempFile::new().unwrap();
    let lines: Vec<String> = log.iter().map(Value::to_string).collect();
    std::fs::write(copy.path(), lines.join("\n") + "\n").unwrap();
    let alerts = log
        .iter()
        .filter(|e| e["event"] == "alert" && e["code"] == "sends_unconfirmed")
        .count();
    assert_eq!(alerts, 1, "one alert for the burst");
    let out = std::process::Command::new(BRIDGEKEEPER)
        .args(["logs", "--json", "--event", "receipt", "--file"])
        .arg(copy.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for id in ["B", "C", "D"] {
        assert!(
            text.contains(&format!("message_id={id} status=unconfirmed")),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_has_the_old_fields_and_the_ledger() {
    let l = Legacy::start(Setup::default()).await;
    let h = l.get("/health").json();
    assert_eq!(h["status"], "connected");
    assert_eq!(h["queueLength"], 0);
    assert!(h["uptime"].as_f64().unwrap() >= 0.0);
    assert_eq!(h["scriptHash"], "0123456789abcdef");
    assert_eq!(h["sendReadReceipts"], true);
    assert!(h["session"].as_str().unwrap().ends_with("/session"));
    assert_eq!(h["bridgekeeper"]["connector"]["state"], "running");
    assert!(
        h["bridgekeeper"]["connector"]["liveness"]["forced_reconnects_last_hour"] == 0,
        "{h}"
    );
    assert_eq!(h["bridgekeeper"]["ledger"]["received"], 0);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_polled_once_in_the_old_shape() {
    let l = Legacy::start(Setup::default()).await;
    l.inject(json!({"sender": "15551234567@s.whatsapp.net", "text": "first", "push_name": "Ana"}));
    l.inject(json!({"sender": "15551234567@s.whatsapp.net", "text": "second"}));
    let addr = l.addr.clone();
    wait_for("two queued", || {
        call(&addr, "GET", "/health", None).json()["queueLength"] == 2
    })
    .await;
    let batch = l.get("/messages").json();
    let bodies: Vec<&str> = batch
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["first", "second"]);
    assert_eq!(batch[0]["senderName"], "Ana");
    assert_eq!(batch[0]["botIds"], json!(["15550001111", "111222333"]));
    assert_eq!(l.get("/messages").json(), json!([]), "drained");
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_chunks_long_text_quotes_once_and_validates() {
    let l = Legacy::start(Setup {
        max_len: 10,
        ..Setup::default()
    })
    .await;
    let ok = l.post("/send", json!({"chatId": "15551234567@s.whatsapp.net", "message": "aaaa bbbb cccc dddd", "replyTo": "Q1"}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let v = ok.json();
    assert_eq!(v["success"], true);
    assert_eq!(v["messageIds"].as_array().unwrap().len(), 2);
    assert_eq!(v["messageId"], v["messageIds"][1]);
    let texts: Vec<(String, Option<String>)> = l
        .sent()
        .into_iter()
        .filter_map(|c| match c.command {
            ConnectorCmd::SendText(s) => Some((s.text, s.reply_to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            ("aaaa bbbb".into(), Some("Q1".into())),
            ("cccc dddd".into(), None)
        ]
    );
    assert_error(
        &l.post("/send", json!({"chatId": "x"})),
        400,
        "chatId and message are required",
    );
    assert_error(
        &call(&l.addr, "POST", "/send", Some("not json")),
        400,
        "Request body must be a JSON object",
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_chat_replies_carry_the_prefix() {
    let l = Legacy::start(Setup {
        policy: "policy: {mode: self-chat}",
        ..Setup::default()
    })
    .await;
    assert_eq!(
        l.post(
            "/send",
            json!({"chatId": "15550001111@s.whatsapp.net", "message": "hi"})
        )
        .status,
        200
    );
    let texts: Vec<String> = l
        .sent()
        .into_iter()
        .filter_map(|c| match c.command {
            ConnectorCmd::SendText(s) => Some(s.text),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["PREFIX hi"]);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_while_disconnected_is_503() {
    let l = Legacy::start(Setup {
        fake_args: vec!["--no-open"],
        ..Setup::default()
    })
    .await;
    assert_eq!(l.get("/health").json()["status"], "disconnected");
    for (path, body) in [
        (
            "/send",
            json!({"chatId": "1@s.whatsapp.net", "message": "hi"}),
        ),
        (
            "/edit",
            json!({"chatId": "1@s.whatsapp.net", "messageId": "M", "message": "hi"}),
        ),
        ("/typing", json!({"chatId": "1@s.whatsapp.net"})),
        (
            "/send-poll",
            json!({"chatId": "1@s.whatsapp.net", "question": "q", "options": ["a", "b"]}),
        ),
        (
            "/send-location",
            json!({"chatId": "1@s.whatsapp.net", "latitude": 1.0, "longitude": 2.0}),
        ),
    ] {
        assert_error(&l.post(path, body), 503, "Not connected to WhatsApp");
    }
    assert_error(
        &l.get("/chat/1@s.whatsapp.net"),
        503,
        "Not connected to WhatsApp",
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_media_poll_location_typing_read_and_chat() {
    let l = Legacy::start(Setup::default()).await;
    let chat = "15551234567@s.whatsapp.net";
    let edit = l
        .post(
            "/edit",
            json!({"chatId": chat, "messageId": "M1", "message": "fixed"}),
        )
        .json();
    assert_eq!(edit["success"], true);
    assert_eq!(edit["messageIds"].as_array().unwrap().len(), 1);
    assert_error(
        &l.post("/edit", json!({"chatId": chat})),
        400,
        "chatId, messageId and message are required",
    );

    let file = l._dir.path().join("photo.jpg");
    std::fs::write(&file, b"jpeg").unwrap();
    let media = l
        .post(
            "/send-media",
            json!({"chatId": chat, "filePath": file, "caption": "look"}),
        )
        .json();
    assert_eq!(media["success"], true);
    assert!(media["messageId"].is_string());
    let missing = l.post(
        "/send-media",
        json!({"chatId": chat, "filePath": "/nope/x.png"}),
    );
    assert_error(&missing, 404, "File not found: /nope/x.png");
    assert_error(
        &l.post("/send-media", json!({"chatId": chat})),
        400,
        "chatId and filePath are required",
    );

    let poll = l.post("/send-poll", json!({"chatId": chat, "question": "Lunch?", "options": ["yes", "no"], "selectableCount": 1})).json();
    assert_eq!(poll["success"], true);
    let one = l.post(
        "/send-poll",
        json!({"chatId": chat, "question": "q", "options": ["only"]}),
    );
    assert_error(&one, 400, "options must have between 2 and 12 entries");

    let loc = l
        .post(
            "/send-location",
            json!({"chatId": chat, "latitude": 52.52, "longitude": 13.4, "name": "Berlin"}),
        )
        .json();
    assert_eq!(loc["success"], true);
    assert_error(
        &l.post("/send-location", json!({"chatId": chat, "latitude": 1.0})),
        400,
        "chatId, latitude and longitude are required",
    );

    assert_eq!(
        l.post("/typing", json!({"chatId": chat})).json(),
        json!({"success": true})
    );
    assert_error(&l.post("/typing", json!({})), 400, "chatId is required");

    let read = l
        .post(
            "/read",
            json!({"key": {"remoteJid": chat, "id": "M1", "participant": null, "fromMe": false}}),
        )
        .json();
    assert_eq!(read, json!({"success": true, "marked": true}));
    let own = l
        .post(
            "/read",
            json!({"key": {"remoteJid": chat, "id": "M2", "fromMe": true}}),
        )
        .json();
    assert_eq!(own, json!({"success": true, "marked": false}));
    assert_error(
        &l.post("/read", json!({"key": {}})),
        400,
        "key.remoteJid and key.id are required",
    );

    let info = l.get("/chat/120363000000000001@g.us").json();
    assert_eq!(
        info,
        json!({"name": "Team", "isGroup": true, "participants": ["120363000000000001@g.us"]})
    );
    assert_error(&l.get("/no/such/endpoint"), 404, "Not found");

    let kinds: Vec<&str> = l
        .sent()
        .iter()
        .map(|c| c.command.type_name())
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    for kind in [
        "edit",
        "send_media",
        "send_poll",
        "send_location",
        "typing",
        "read",
        "chat_info",
    ] {
        assert!(
            kinds.contains(&kind),
            "{kind} never reached the connector: {kinds:?}"
        );
    }
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_are_not_sent_when_disabled() {
    let l = Legacy::start(Setup {
        read_receipts: false,
        ..Setup::default()
    })
    .await;
    let r = l
        .post(
            "/read",
            json!({"key": {"remoteJid": "1@s.whatsapp.net", "id": "M1", "fromMe": false}}),
        )
        .json();
    assert_eq!(r, json!({"success": true, "marked": false}));
    assert!(l.sent().iter().all(|c| c.command.type_name() != "read"));
    l.stop().await;
}

// Improvement over the old bridge: a full inbox never drops silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_is_recorded_in_the_ledger_and_alerted() {
    let l = Legacy::start(Setup {
        inbox: 2,
        ..Setup::default()
    })
    .await;
    for i in 0..5 {
        l.inject(json!({"sender": "15551234567@s.whatsapp.net", "text": format!("m{i}")}));
    }
    let addr = l.addr.clone();
    wait_for("five decided", || {
        call(&addr, "GET", "/health", None).json()["bridgekeeper"]["ledger"]["received"] == 5
    })
    .await;
    let h = l.get("/health").json();
    let ledger = &h["bridgekeeper"]["ledger"];
    assert_eq!(
        (
            ledger["delivered"].as_u64(),
            ledger["failed"]["http_queue_full"].as_u64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(h["bridgekeeper"]["inbox"]["dropped"], 3);
    assert_eq!(l.get("/messages").json().as_array().unwrap().len(), 2);
    let log = l.stop().await;
    assert_eq!(
        log.iter()
            .filter(|e| e["event"] == "delivery_retracted" && e["reason"] == "http_queue_full")
            .count(),
        3
    );
    let alerts = log
        .iter()
        .filter(|e| e["event"] == "alert" && e["code"] == "http_queue_full")
        .count();
    assert_eq!(
        alerts, 2,
        "at the 1st and 2nd loss (powers of two), not at every message"
    );
}

/// Stopped with messages nobody polled: they never reached Hermes, so the final ledger says so
/// (failed `http_not_polled`, not delivered), with an alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_never_polled_before_a_stop_are_failed_not_delivered() {
    let l = Legacy::start(Setup::default()).await;
    for i in 0..2 {
        l.inject(json!({"sender": "15551234567@s.whatsapp.net", "text": format!("m{i}")}));
    }
    let addr = l.addr.clone();
    wait_for("both delivered into the inbox", || {
        call(&addr, "GET", "/health", None).json()["bridgekeeper"]["ledger"]["delivered"] == 2
    })
    .await;
    let (log, status) = l.stop_with_status().await;
    assert_eq!(
        log.iter()
            .filter(|e| e["event"] == "delivery_retracted" && e["reason"] == "http_not_polled")
            .count(),
        2
    );
    assert!(
        log.iter()
            .any(|e| e["event"] == "alert" && e["code"] == "http_not_polled")
    );
    let ledger = &status["connectors"][0]["ledger"];
    assert_eq!(ledger["delivered"], 0, "{ledger}");
    assert_eq!(ledger["failed"]["http_not_polled"], 2, "{ledger}");
}

// The Hermes adapter's way of using the bridge, as a stdlib Python script, against the whole
// real stack started the way Hermes starts it: `node legacy-bridge.js --port P --session S --mode M`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hermes_adapter_works_against_the_shim_and_the_real_stack() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeWhatsApp::start(dir.path());
    let hermes = dir.path().join("hermes");
    let session = hermes.join("platforms/whatsapp/session");
    server.seed_session(&session);
    std::fs::write(
        hermes.join(".env"),
        "WHATSAPP_DM_POLICY=allowlist\nWHATSAPP_ALLOWED_USERS=15551234567\n",
    )
    .unwrap();
    let media = dir.path().join("photo.png");
    std::fs::write(&media, b"\x89PNG").unwrap();

    let mut bridge = crate::support::Reaped(
        std::process::Command::new("node")
            .arg(node_bridge_dir().join("legacy-bridge.js"))
            .args(["--port", "0", "--mode", "bot", "--session"])
            .arg(&session)
            .env("HERMES_HOME", &hermes)
            .env("BRIDGEKEEPER_BIN", BRIDGEKEEPER)
            .env("WHATSAPP_WEB_SOCKET_URL", &server.ws_url)
            .env("WHATSAPP_SEND_TIMEOUT_MS", "10000")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let port = read_port(bridge.stderr.take().unwrap());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hermes_adapter.py");
    let adapter = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--port",
            &port.to_string(),
            "--expect",
            "hello from whatsapp",
            "--reply",
            "hello from hermes",
        ])
        .arg("--media")
        .arg(&media)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    // The adapter is polling; now a user writes.
    wait_for("bridge connected", || {
        request(
            &format!("127.0.0.1:{port}"),
            "GET",
            "/health",
            Some("localhost"),
            &[],
            None,
        )
        .json()["status"]
            == "connected"
    })
    .await;
    server.inject_dm("15551234567", "hello from whatsapp");
    let out = tokio::task::spawn_blocking(move || adapter.wait_with_output().unwrap())
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "adapter said {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(out.status.success(), "{report}");
    assert_eq!(report["polled"]["body"], "hello from whatsapp");
    assert_eq!(report["typing"], json!({"success": true}));
    assert_eq!(report["send"]["success"], true);
    // The fake server has no media upload host: the answer must still be a clean JSON error.
    assert!(
        report["send_media"]["success"] == true || report["send_media"]["error"].is_string(),
        "{report}"
    );
    wait_for("the reply to be recorded", || {
        server.accepted_sends().contains(&(
            "15551234567@s.whatsapp.net".into(),
            "hello from hermes".into(),
        ))
    })
    .await;

    // Killing the shim (as Hermes does) stops bridgekeeper and node-bridge too.
    bridge.kill().unwrap();
    bridge.wait().unwrap();
    let addr = format!("127.0.0.1:{port}");
    wait_for("the bridge to stop serving", || {
        std::net::TcpStream::connect(&addr).is_err()
    })
    .await;
}

fn read_port(stderr: std::process::ChildStderr) -> u16 {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("bridge exited before listening")
            .unwrap();
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    // Keep draining stderr so the bridge never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    port
}

/// The Hermes adapter gives a poll 30 s. A daemon frozen past that (SIGSTOP, a suspended VM)
/// finds the stale request when it resumes: the client has gone, so nothing may be drained
/// into its connection. The DM reaches the next poll exactly once. Real stack: bridgekeeper
/// legacy, node-bridge, Baileys and the fake WhatsApp server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_that_timed_out_while_the_daemon_was_frozen_loses_nothing() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let server = FakeWhatsApp::start(dir.path());
    let (mut cmd, _) = server.legacy_command(dir.path(), "WHATSAPP_DM_POLICY=open\n");
    let mut bridge = cmd.spawn().unwrap();
    let pid = Pid::from_raw(bridge.id() as i32);
    // Whatever happens in the test, the daemon (and with it node-bridge) does not outlive it,
    // even frozen.
    struct Reap(Pid);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
            let _ = kill(self.0, Signal::SIGTERM);
        }
    }
    let _reap = Reap(pid);
    let addr = format!("127.0.0.1:{}", read_port(bridge.stderr.take().unwrap()));
    wait_for("bridge connected", || {
        call(&addr, "GET", "/health", None).json()["status"] == "connected"
    })
    .await;
    server.inject_dm("15551234567", "while you were away");
    wait_for("the DM queued", || {
        call(&addr, "GET", "/health", None).json()["queueLength"] == 1
    })
    .await;

    kill(pid, Signal::SIGSTOP).unwrap();
    // The client polls, gives up after its timeout and closes, as aiohttp does (a few times:
    // hyper itself sometimes notices the closed connection before our handler runs).
    let polls: Vec<std::net::TcpStream> = (0..5)
        .map(|_| {
            let mut poll = std::net::TcpStream::connect(&addr).unwrap();
            poll.write_all(b"GET /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\r\n")
                .unwrap();
            poll
        })
        .collect();
    let mut first = &polls[0];
    first
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        first.read(&mut buf).is_err(),
        "a frozen daemon cannot answer"
    );
    drop(polls);
    kill(pid, Signal::SIGCONT).unwrap();

    // The stale connection is accepted first on resume; give its task a moment to run (hyper
    // either sees the end of file itself or our handler finds the client gone).
    assert_eq!(call(&addr, "GET", "/health", None).status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polled = call(&addr, "GET", "/messages", None).json();
    let bodies: Vec<&str> = polled
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["while you were away"]);
    assert_eq!(call(&addr, "GET", "/messages", None).json(), json!([]));
    let h = call(&addr, "GET", "/health", None).json();
    assert_eq!(h["bridgekeeper"]["ledger"]["delivered"], 1);
    kill(pid, Signal::SIGTERM).unwrap();
    bridge.wait().unwrap();
}

/// Issue 18's defect, as a new user met it through the drop-in API (real node-bridge, Baileys,
/// the fake WhatsApp server): a stranger is sent a code; the moment our own echo of that code
/// message has been decided, the owner approves (the code in lower case) and the stranger
/// writes again. That DM is delivered, not ignored as rate-limited. Then the owner revokes,
/// and the very next DM is not delivered (a fresh code goes out instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_or_revoke_counts_from_the_very_next_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeWhatsApp::start(dir.path());
    let (mut cmd, hermes) = server.legacy_command(dir.path(), "WHATSAPP_DM_POLICY=pairing\n");
    let mut bridge = crate::support::Reaped(cmd.spawn().unwrap());
    let addr = format!("127.0.0.1:{}", read_port(bridge.stderr.take().unwrap()));
    let ledger = || call(&addr, "GET", "/health", None).json()["bridgekeeper"]["ledger"].clone();
    wait_for("bridge connected", || {
        call(&addr, "GET", "/health", None).json()["status"] == "connected"
    })
    .await;
    let pairing = |args: &[&str]| {
        let out = std::process::Command::new(BRIDGEKEEPER)
            .arg("pairing")
            .args(args)
            .arg("--hermes-home")
            .arg(&hermes)
            .env_remove("HERMES_HOME")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let stranger = "15557654321";
    let chat = format!("{stranger}@s.whatsapp.net");

    server.inject_dm(stranger, "hello?");
    wait_for("the code sent", || {
        server.accepted_sends().iter().any(|(to, _)| *to == chat)
    })
    .await;
    let text = server.accepted_sends().remove(0).1;
    let code = crate::policy::code_in(&text);
    // Polled tightly: the approval lands within a few ms of the echo's decision.
    let deadline = std::time::Instant::now() + PATIENCE;
    while ledger()["ignored"]["own_echo"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no echo: {}",
            ledger()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    pairing(&["approve", "whatsapp", &code.to_lowercase()]);
    server.inject_dm(stranger, "approved now?");
    wait_for("the DM decided", || ledger()["received"] == 3).await;
    let l = ledger();
    assert_eq!(l["delivered"], 1, "{l}");
    assert_eq!(l["ignored"].get("pairing_rate_limited"), None, "{l}");
    // `delivered` is counted when the message is handed to the gateway link; the drop-in
    // client puts it in the inbox a moment later, so the poll waits for it as Hermes' does.
    let mut polled = Vec::new();
    wait_for("the DM in the inbox", || {
        polled.extend(
            call(&addr, "GET", "/messages", None)
                .json()
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        !polled.is_empty()
    })
    .await;
    assert_eq!(polled.len(), 1, "{polled:?}");
    assert_eq!(polled[0]["body"], "approved now?", "{polled:?}");

    // Revoke: the snapshot the last DM read said approved; the next DM must not pass.
    pairing(&["revoke", "whatsapp", stranger]);
    server.inject_dm(stranger, "still in?");
    wait_for("the DM decided", || ledger()["received"] == 4).await;
    let l = ledger();
    assert_eq!(l["delivered"], 1, "{l}");
    assert_eq!(l["paired"], 2, "a fresh code went out: {l}");
    assert_eq!(call(&addr, "GET", "/messages", None).json(), json!([]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bridge.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    bridge.wait().unwrap();
}
