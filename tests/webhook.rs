//! Webhooks: the signing provider (`support::webhook`) held to the real receiver — Hermes' own
//! webhook adapter from the test venv — and bridgekeeper's receiver under one `run` beside
//! WhatsApp and Telegram.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::PATIENCE;
use crate::support::webhook::{SCHEMES, deliver};

const SECRET: &str = "route-secret-5d41402abc4b2a76";
const SVIX_SECRET: &str = "whsec_c3ZpeC1zaWduaW5nLWtleS0xMjM0NTY3OA==";

/// Hermes' own adapter (`gateway/platforms/webhook.py`) takes a delivery signed by our provider
/// under every scheme, refuses one signed with another secret (401) and a repeated delivery id,
/// hands the message to its gateway with the prompt rendered, and records the reply (`log`):
/// what our provider sends is what the real receiver accepts.
#[test]
fn hermes_own_webhook_adapter_accepts_our_signed_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    let port = crate::support::free_port();
    let routes = json!({
        "gh": {"secret": SECRET, "events": ["pull_request"], "prompt": "PR {pull_request.title} by {sender.login}", "deliver": "log"},
        "svix": {"secret": SVIX_SECRET, "prompt": "mail {data.subject}", "deliver": "log"},
    });
    let (mut child, rx) = hermes_adapter(&home, port, &routes, &[]);
    let next = || crate::support::hermes::next(&rx);
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

const TG_CHAT: &str = "-1005550001";
const WA_FRIEND: &str = "15551234567";
const GL_SECRET: &str = "gitlab-token-0b2c55aa19e3";
const GEN_SECRET: &str = "generic-secret-77d1c0f6a9";
const DYN_SECRET: &str = "dynamic-secret-3e9b1d2c44";

struct Scene {
    dir: tempfile::TempDir,
    telegram: crate::support::telegram::FakeTelegram,
    whatsapp: crate::support::whatsapp::FakeWhatsApp,
    config: std::path::PathBuf,
}

/// Telegram (crabline), WhatsApp (node-bridge against the fake server) and the webhook
/// receiver under one `run`, its routes in Hermes' config.yaml.
fn scene() -> Scene {
    scene_with("")
}

/// `top`: more top-level config (a `relay:` section).
fn scene_with(top: &str) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let telegram = crate::support::telegram::FakeTelegram::start(dir.path());
    let whatsapp = crate::support::whatsapp::FakeWhatsApp::start(dir.path());
    let restart = "restart: {initial_backoff_ms: 50, max_backoff_ms: 500, jitter: 0.0, max_restarts: 20, window_ms: 60000}";
    let connectors = vec![
        format!(
            "  - name: telegram\n    builtin: telegram\n    args: [--media-dir, {:?}]\n    env: {{TELEGRAM_API_ROOT: {:?}}}\n    policy: {{mode: bot, dm_policy: allowlist, allow_from: ['1']}}\n    {restart}\n",
            dir.path().join("tg-media"),
            telegram.api_root
        ),
        whatsapp.node_bridge_connector(
            dir.path(),
            &format!("policy: {{mode: bot, dm_policy: allowlist, allow_from: ['{WA_FRIEND}']}}"),
            "",
        ),
        format!(
            "  - name: webhook\n    builtin: webhook\n    env: {{WEBHOOK_PORT: '0'}}\n    {restart}\n"
        ),
    ];
    let config = crate::support::write_config_with(dir.path(), &connectors, top);
    let routes = json!({"platforms": {"webhook": {"enabled": true, "extra": {
        "max_body_bytes": 4096,
        "routes": {
            "gh": {"secret": SECRET, "events": ["pull_request"],
                   "prompt": "Review PR {pull_request.title} by {sender.login}",
                   "deliver": "telegram",
                   "deliver_extra": {"chat_id": TG_CHAT, "message_thread_id": "{thread}"}},
            "alert": {"secret": SECRET, "deliver_only": true, "deliver": "whatsapp",
                      "prompt": "ALERT {alert.name} is {alert.state}",
                      "deliver_extra": {"chat_id": format!("{WA_FRIEND}@s.whatsapp.net")}},
            "gl": {"secret": GL_SECRET, "deliver": "log", "prompt": "gitlab {object_kind}"},
            "svix": {"secret": SVIX_SECRET, "deliver": "log", "prompt": "svix {n}"},
            "gen": {"secret": GEN_SECRET, "deliver": "log", "prompt": "generic {n}"},
            "slow": {"secret": SECRET, "deliver": "log", "rate_limit": 2},
            "slow-free": {"secret": SECRET, "deliver": "log", "rate_limit": 1_000_000, "prompt": "free {n}"},
            "only-opened": {"secret": SECRET, "deliver": "log",
                            "filters": [{"field": "action", "equals": "opened"}]},
        }
    }}}});
    std::fs::write(
        dir.path().join("hermes/config.yaml"),
        serde_json::to_string(&routes).unwrap(),
    )
    .unwrap();
    Scene {
        dir,
        telegram,
        whatsapp,
        config,
    }
}

impl Scene {
    /// The daemon with every connector open, and the receiver's address.
    fn start(&self) -> (crate::support::daemon::Daemon, String) {
        let mut d = crate::support::daemon::Daemon::start(
            &self.config,
            &[("TELEGRAM_BOT_TOKEN", self.telegram.bot_token.as_str())],
        );
        let open = |name: &'static str| {
            move |v: &Value| {
                v["type"] == "connection"
                    && v["connector"] == name
                    && v["status"]["state"] == "open"
            }
        };
        d.wait("telegram open", open("telegram"));
        d.wait("whatsapp open", open("whatsapp"));
        let webhook = d.wait("webhook open", open("webhook"));
        let addr = crate::support::listening_url(&webhook)
            .trim_start_matches("http://")
            .to_owned();
        (d, addr)
    }

    fn status(&self) -> Value {
        crate::support::status_json(&self.config)
    }

    fn webhook_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
            .arg("webhook")
            .args(args)
            .arg("--hermes-home")
            .arg(self.dir.path().join("hermes"))
            .output()
            .unwrap()
    }
}

/// The capability end to end: signed deliveries reach the gateway with their prompt, the
/// gateway's answer goes out as a Telegram message into the route's topic, a `deliver_only`
/// route posts to WhatsApp with no gateway involved, every scheme is checked, retries are
/// delivered once (across a restart too), refusals cost nothing, routes come and go without a
/// restart, the ledger balances and no secret is written anywhere.
#[test]
fn webhook_deliveries_reach_the_gateway_and_answers_go_out_through_other_connectors() {
    let scene = scene();
    let (mut d, addr) = scene.start();
    let post = |route: &str, scheme, secret: &str, id: &str, event: Option<&str>, body: &Value| {
        deliver(&addr, route, scheme, secret, id, event, &body.to_string())
    };
    let [github, gitlab, svix, generic_v2, generic_v1] = SCHEMES;

    // A GitHub delivery: 202 once recorded, and at the gateway with its prompt rendered.
    let pr = json!({"action": "opened", "pull_request": {"title": "Fix the bridge"}, "sender": {"login": "octo"}, "thread": 7});
    let reply = post("gh", github, SECRET, "gh-1", Some("pull_request"), &pr);
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.json()["status"], "accepted");
    let inbound = d.wait("the PR at the gateway", |v| {
        v["type"] == "inbound" && v["connector"] == "webhook"
    });
    let message = &inbound["message"];
    assert_eq!(message["text"], "Review PR Fix the bridge by octo");
    // A GitHub delivery's id header is not signed: the chat is keyed by what the signature
    // covers, so a replay under another id header is the same chat and message.
    let gh_chat = message["chat"].as_str().unwrap().to_owned();
    assert!(gh_chat.starts_with("webhook:gh:github-"), "{gh_chat}");
    assert_eq!(message["sender"], "webhook:gh");
    assert_eq!(message["routed"]["payload"]["sender"]["login"], "octo");
    // The gateway answers the webhook chat: a Telegram message into the route's topic (the
    // fake Bot API knows a forum group once someone spoke in it).
    scene.telegram.inject(&json!({"chatId": TG_CHAT, "fromId": 99, "text": "hello group", "chatType": "supergroup", "isForum": true, "fromName": "Ops"}));
    d.send(json!({"type": "send_text", "id": "answer-1", "connector": "webhook", "chat": gh_chat, "text": "Looks good to me", "reply_to": message["id"].clone()}));
    let result = d.wait("the answer's result", |v| {
        v["type"] == "result" && v["id"] == "answer-1"
    });
    assert_eq!(result["ok"], true, "{result}");
    crate::support::wait_blocking("the Telegram message", || {
        scene
            .telegram
            .sent()
            .contains(&(TG_CHAT.to_owned(), "Looks good to me".to_owned()))
    });
    let recorded = std::fs::read_to_string(scene.telegram.recorder()).unwrap();
    let send = recorded
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["body"]["text"] == "Looks good to me")
        .unwrap();
    assert_eq!(
        send["body"]["message_thread_id"]
            .to_string()
            .trim_matches('"'),
        "7",
        "{send}"
    );

    // deliver_only: straight to WhatsApp, the gateway never sees it.
    let alert = json!({"alert": {"name": "disk", "state": "firing"}});
    let reply = post("alert", github, SECRET, "al-1", None, &alert);
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.json()["mode"], "direct");
    crate::support::wait_blocking("the WhatsApp push", || {
        scene.whatsapp.accepted_sends().contains(&(
            format!("{WA_FRIEND}@s.whatsapp.net"),
            "ALERT disk is firing".to_owned(),
        ))
    });

    // Each scheme: accepted when right, 401 when wrong.
    for (route, scheme, secret) in [
        ("gl", gitlab, GL_SECRET),
        ("svix", svix, SVIX_SECRET),
        ("gen", generic_v2, GEN_SECRET),
        ("gen", generic_v1, GEN_SECRET),
        ("gh", github, SECRET),
    ] {
        let body = json!({"n": format!("{scheme:?}"), "object_kind": "push"});
        let id = format!("{route}-{scheme:?}");
        let event = (route == "gh").then_some("pull_request");
        let forged = post(
            route,
            scheme,
            "not-the-secret",
            &format!("forged-{id}"),
            event,
            &body,
        );
        assert_eq!(forged.status, 401, "{scheme:?}: {}", forged.body);
        let good = post(route, scheme, secret, &id, event, &body);
        assert_eq!(good.status, 202, "{scheme:?}: {}", good.body);
    }
    let unsigned =
        crate::support::http::request(&addr, "POST", "/webhooks/gh", Some(&addr), &[], Some("{}"));
    assert_eq!(unsigned.status, 401);

    // A retry of a delivery: answered, not delivered again.
    let again = post("gh", github, SECRET, "gh-1", Some("pull_request"), &pr);
    assert_eq!(
        (again.status, again.json()["status"].clone()),
        (200, json!("duplicate"))
    );

    // 413 by Content-Length, 429 past the route's rate, events and filters ignored (200).
    let big = json!({"blob": "x".repeat(5000)});
    assert_eq!(
        post("gen", generic_v2, GEN_SECRET, "big-1", None, &big).status,
        413
    );
    let slow: Vec<u16> = (0..3)
        .map(|i| {
            post(
                "slow",
                github,
                SECRET,
                &format!("slow-{i}"),
                None,
                &json!({"i": i}),
            )
            .status
        })
        .collect();
    assert_eq!(slow, [202, 202, 429]);
    let push_body = json!({"ref": "refs/heads/main", "sender": {"login": "octo"}});
    let push = post("gh", github, SECRET, "push-1", Some("push"), &push_body);
    assert_eq!(
        (push.status, push.json()["status"].clone()),
        (200, json!("ignored"))
    );
    assert_eq!(push.json()["reason"], "event_not_accepted");
    let closed = post(
        "only-opened",
        github,
        SECRET,
        "f-1",
        None,
        &json!({"action": "closed"}),
    );
    assert_eq!(
        (closed.status, closed.json()["reason"].clone()),
        (200, json!("filter_rejected"))
    );
    let opened = post(
        "only-opened",
        github,
        SECRET,
        "f-2",
        None,
        &json!({"action": "opened"}),
    );
    assert_eq!(opened.status, 202);
    let unknown = post("nope", github, SECRET, "n-1", None, &json!({}));
    assert_eq!(unknown.status, 404);

    // A route added with `webhook subscribe` is served without a restart, and not after
    // `remove`.
    let out = scene.webhook_cli(&[
        "subscribe",
        "Deploys",
        "--events",
        "deploy",
        "--prompt",
        "deployed {service}",
        "--secret",
        DYN_SECRET,
    ]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("/webhooks/deploys") && printed.contains(DYN_SECRET),
        "{printed}"
    );
    let deploy = json!({"event_type": "deploy", "service": "api"});
    let mut n = 0;
    crate::support::wait_blocking("the new route", || {
        n += 1;
        // Each its own content: the same signed content again would be a replay.
        let mut deploy = deploy.clone();
        deploy["n"] = json!(n);
        post(
            "deploys",
            github,
            DYN_SECRET,
            &format!("dep-{n}"),
            None,
            &deploy,
        )
        .status
            == 202
    });
    let listed = scene.webhook_cli(&["list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("deploys") && !listed.contains(DYN_SECRET),
        "{listed}"
    );
    assert!(scene.webhook_cli(&["remove", "deploys"]).status.success());
    crate::support::wait_blocking("the route gone", || {
        n += 1;
        // Each its own content: the same signed content again would be a replay.
        let mut deploy = deploy.clone();
        deploy["n"] = json!(n);
        post(
            "deploys",
            github,
            DYN_SECRET,
            &format!("dep-{n}"),
            None,
            &deploy,
        )
        .status
            == 404
    });

    d.settle(std::time::Duration::from_millis(1500));
    let texts = d.inbound_texts("webhook");
    assert_eq!(
        texts.iter().filter(|t| t.starts_with("Review PR")).count(),
        2,
        "the PR and the gh scheme check, never the retry: {texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("ALERT")),
        "deliver_only never reaches the gateway"
    );
    let status = scene.status();
    let webhook = crate::support::status_connector(&status, "webhook");
    crate::support::assert_ledger_balanced(&webhook["ledger"]);
    assert_eq!(
        webhook["ledger"]["ignored"]["duplicate"], 1,
        "{}",
        webhook["ledger"]
    );
    assert_eq!(webhook["ledger"]["ignored"]["event_not_accepted"], 1);
    assert_eq!(webhook["ledger"]["ignored"]["filter_rejected"], 1);
    let counts = &webhook["counts"];
    assert!(
        counts["refused_signature"].as_u64().unwrap() >= 5,
        "{counts}"
    );
    assert_eq!(counts["refused_too_large"], 1, "{counts}");
    assert_eq!(counts["refused_rate_limited"], 1, "{counts}");
    assert_eq!(counts["refused_signature_missing"], 1, "{counts}");

    // The same delivery id after a restart: still answered as a duplicate.
    let (out, err) = d.stop();
    let (mut d2, addr2) = scene.start();
    let again = deliver(
        &addr2,
        "gh",
        github,
        SECRET,
        "gh-1",
        Some("pull_request"),
        &pr.to_string(),
    );
    assert_eq!(
        (again.status, again.json()["status"].clone()),
        (200, json!("duplicate"))
    );
    // An answer the agent finishes after the restart still reaches the route's chat.
    d2.send(json!({"type": "send_text", "id": "late", "connector": "webhook", "chat": gh_chat, "text": "a late answer"}));
    let late = d2.wait("the late answer", |v| {
        v["type"] == "result" && v["id"] == "late"
    });
    assert_eq!(late["ok"], true, "{late}");
    crate::support::wait_blocking("the late Telegram message", || {
        scene
            .telegram
            .sent()
            .contains(&(TG_CHAT.to_owned(), "a late answer".to_owned()))
    });
    let status = scene.status();
    crate::support::assert_ledger_balanced(
        &crate::support::status_connector(&status, "webhook")["ledger"],
    );
    let (out2, err2) = d2.stop();

    let status_text = status.to_string();
    for secret in [SECRET, GL_SECRET, SVIX_SECRET, GEN_SECRET, DYN_SECRET] {
        crate::support::assert_secret_nowhere(
            secret,
            &scene.dir.path().join("state"),
            &[&out, &err, &out2, &err2, &status_text],
        );
    }
}

/// A receiver alone under `run`, its routes in config.yaml: `routes` is the routes mapping.
fn receiver_scene(routes: Value) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let connectors =
        vec!["  - name: webhook\n    builtin: webhook\n    env: {WEBHOOK_PORT: '0'}\n".to_owned()];
    let config = crate::support::write_config_with(dir.path(), &connectors, "");
    let yaml = json!({"platforms": {"webhook": {"enabled": true, "extra": {"routes": routes}}}});
    std::fs::write(dir.path().join("hermes/config.yaml"), yaml.to_string()).unwrap();
    (dir, config)
}

fn start_receiver(config: &std::path::Path) -> (crate::support::daemon::Daemon, String) {
    let mut d = crate::support::daemon::Daemon::start(config, &[]);
    let open = d.wait("webhook open", |v| {
        v["type"] == "connection" && v["connector"] == "webhook" && v["status"]["state"] == "open"
    });
    let addr = crate::support::listening_url(&open)
        .trim_start_matches("http://")
        .to_owned();
    (d, addr)
}

/// 10,000 forged POSTs (4 threads) and 1,000 connections that send a header line at a time,
/// slower than any deadline, each reconnecting when the receiver closes it.
struct Hostile {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    forgers: Vec<std::thread::JoinHandle<u64>>,
    slow: Vec<std::thread::JoinHandle<u64>>,
}

impl Hostile {
    fn start(addr: &str) -> Self {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let slow = (0..4)
            .map(|_| {
                let (stop, addr) = (stop.clone(), addr.to_owned());
                std::thread::spawn(move || {
                    let mut most = 0;
                    let mut conns: Vec<std::net::TcpStream> = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        conns.retain_mut(|c| c.write_all(b"X-Slow: 1\r\n").is_ok());
                        while conns.len() < 250 {
                            let Ok(mut c) = std::net::TcpStream::connect(&addr) else {
                                break;
                            };
                            let _ = c.write_all(b"POST /webhooks/gh HTTP/1.1\r\nHost: x\r\n");
                            conns.push(c);
                        }
                        most = most.max(conns.len() as u64);
                        std::thread::sleep(std::time::Duration::from_millis(500));
                    }
                    most
                })
            })
            .collect();
        let forgers = (0..4)
            .map(|t| {
                let addr = addr.to_owned();
                std::thread::spawn(move || {
                    (0..2_500)
                        .filter(|i| {
                            let body = json!({"n": format!("forged-{t}-{i}")}).to_string();
                            deliver(
                                &addr,
                                "gh",
                                SCHEMES[0],
                                "guessed",
                                &format!("x-{t}-{i}"),
                                None,
                                &body,
                            )
                            .status
                                == 401
                        })
                        .count() as u64
                })
            })
            .collect();
        Self {
            stop,
            forgers,
            slow,
        }
    }

    /// Waits for the forgers, then stops the slow clients: forged POSTs refused with 401, and
    /// the fewest slow connections any of the 4 threads held at its most.
    fn finish(self) -> (u64, u64) {
        let refused = self.forgers.into_iter().map(|f| f.join().unwrap()).sum();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let slow = self
            .slow
            .into_iter()
            .map(|s| s.join().unwrap())
            .min()
            .unwrap_or(0);
        (refused, slow)
    }
}

/// 10,000 forged POSTs and 1,000 slow-header connections while real deliveries go on: every
/// real one is delivered (202, at the gateway once), every forged one refused, and the slow
/// ones cost the real ones nothing.
#[test]
fn forged_and_slow_clients_do_not_keep_real_deliveries_out() {
    let (_dir, config) = receiver_scene(
        json!({"gh": {"secret": SECRET, "deliver": "log", "rate_limit": 100000, "prompt": "real {n}"}}),
    );
    let (mut d, addr) = start_receiver(&config);
    let hostile = Hostile::start(&addr);
    // Meanwhile, the real ones.
    let mut statuses = Vec::new();
    for i in 0..200 {
        let body = json!({"n": i}).to_string();
        statuses.push(
            deliver(
                &addr,
                "gh",
                SCHEMES[0],
                SECRET,
                &format!("real-{i}"),
                None,
                &body,
            )
            .status,
        );
    }
    let (refused, slow_open) = hostile.finish();
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    assert_eq!(refused, 10_000);
    assert!(slow_open >= 250, "the slow clients were connected");
    d.settle(std::time::Duration::from_millis(1500));
    let mut texts = d.inbound_texts("webhook");
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 200, "every real delivery once, nothing forged");
    assert!(texts.iter().all(|t| t.starts_with("real ")));
    d.stop();
}

/// The unmodified Hermes relay client fronting `webhook` gets the delivery on its socket, and
/// its answer to the webhook chat goes out through the Telegram connector into the route's
/// topic.
#[test]
fn the_hermes_relay_client_fronts_webhooks() {
    let scene = scene_with("relay: {listen: '127.0.0.1:0'}");
    let (d, addr) = scene.start();
    let home = scene.dir.path().join("gateway-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut h = crate::support::hermes::Relay::start(
        d.relay_port(),
        crate::support::hermes::SECRET,
        &home,
        "webhook",
    );
    h.cmd(json!({"cmd": "connect"}));
    let connected = h.wait("connected", |_| true);
    assert_eq!(
        connected["descriptor"]["platform"], "webhook",
        "{connected}"
    );
    scene.telegram.inject(&json!({"chatId": TG_CHAT, "fromId": 99, "text": "hello group", "chatType": "supergroup", "isForum": true, "fromName": "Ops"}));
    let pr = json!({"pull_request": {"title": "Relay"}, "sender": {"login": "octo"}, "thread": 3});
    let reply = deliver(
        &addr,
        "gh",
        SCHEMES[0],
        SECRET,
        "relay-1",
        Some("pull_request"),
        &pr.to_string(),
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let m = h.wait("message", |v| v["text"] == "Review PR Relay by octo");
    assert_eq!(m["platform"], "webhook");
    let chat = m["chat_id"].as_str().unwrap().to_owned();
    assert!(chat.starts_with("webhook:gh:github-"), "{chat}");
    h.cmd(json!({"cmd": "send", "chat_id": chat, "text": "answered over the relay"}));
    let sent = h.wait("sent", |_| true);
    assert_eq!(sent["success"], true, "{sent}");
    crate::support::wait_blocking("the Telegram message", || {
        scene
            .telegram
            .sent()
            .contains(&(TG_CHAT.to_owned(), "answered over the relay".to_owned()))
    });
    d.stop();
}

/// Hermes' own adapter as a child, on `port`, with `routes` (and `env`); its JSON lines.
fn hermes_adapter(
    home: &std::path::Path,
    port: u16,
    routes: &Value,
    env: &[(&str, String)],
) -> (crate::support::Reaped, std::sync::mpsc::Receiver<Value>) {
    let mut env = env.to_vec();
    env.extend([
        ("WEBHOOK_PORT", port.to_string()),
        ("ROUTES", routes.to_string()),
    ]);
    crate::support::hermes::script("hermes_webhook.py", home, &env)
}

/// `threads` posters sending `n` signed deliveries in all to `addr`; the seconds it took and
/// how many were answered 202.
fn burst(addr: &str, route: &str, n: usize, threads: usize, tag: &str) -> (f64, usize) {
    let started = std::time::Instant::now();
    let posters: Vec<_> = (0..threads)
        .map(|t| {
            let (addr, route, tag) = (addr.to_owned(), route.to_owned(), tag.to_owned());
            std::thread::spawn(move || {
                (t..n)
                    .step_by(threads)
                    .filter(|i| {
                        let body = json!({"n": i}).to_string();
                        deliver(
                            &addr,
                            &route,
                            SCHEMES[0],
                            SECRET,
                            &format!("{tag}-{i}"),
                            None,
                            &body,
                        )
                        .status
                            == 202
                    })
                    .count()
            })
        })
        .collect();
    let accepted = posters.into_iter().map(|p| p.join().unwrap()).sum();
    (started.elapsed().as_secs_f64(), accepted)
}

/// The figures in docs/benchmarks.md ("Webhooks"): POST → gateway latency beside WhatsApp's
/// inject → gateway in one run, and beside Hermes' own adapter; accepted deliveries a second,
/// ours (202 only once recorded) and Hermes' (202 before its run starts); the receiver's RSS
/// idle and under 10,000 forged POSTs and 1,000 slow clients. `bash scripts/bench/webhook.sh`.
#[test]
#[ignore = "benchmark: bash scripts/bench/webhook.sh"]
fn bench_webhook_beside_whatsapp_and_hermes() {
    const N: usize = 100;
    const BURST: usize = 5_000;
    let scene = scene();
    let (mut d, addr) = scene.start();
    let hermes_home = scene.dir.path().join("hermes-adapter");
    std::fs::create_dir_all(&hermes_home).unwrap();
    let port = crate::support::free_port();
    let (mut hermes, hermes_rx) = hermes_adapter(
        &hermes_home,
        port,
        &json!({"gh": {"secret": SECRET, "deliver": "log", "prompt": "lat {n}"}}),
        &[("RATE_LIMIT", "1000000".into())],
    );
    assert_eq!(
        hermes_rx.recv_timeout(PATIENCE).unwrap()["event"],
        "listening"
    );
    let hermes_addr = format!("127.0.0.1:{port}");
    let mut lat = crate::support::Latencies::default();
    for i in 0..N {
        let body = json!({"n": i}).to_string();
        lat.time("bridgekeeper webhook", || {
            let r = deliver(
                &addr,
                "slow-free",
                SCHEMES[0],
                SECRET,
                &format!("lat-{i}"),
                None,
                &body,
            );
            assert_eq!(r.status, 202);
            let want = format!("free {i}");
            d.wait(&want, |v| {
                v["type"] == "inbound" && v["message"]["text"] == want.as_str()
            });
        });
        lat.time("bridgekeeper whatsapp", || {
            let text = format!("wa-lat-{i}");
            scene.whatsapp.inject_dm(WA_FRIEND, &text);
            d.wait(&text, |v| {
                v["type"] == "inbound" && v["message"]["text"] == text.as_str()
            });
        });
        lat.time("hermes webhook adapter", || {
            let r = deliver(
                &hermes_addr,
                "gh",
                SCHEMES[0],
                SECRET,
                &format!("lat-{i}"),
                None,
                &body,
            );
            assert_eq!(r.status, 202);
            let want = format!("lat {i}");
            crate::support::next_matching(&hermes_rx, &want, &|v| {
                v["event"] == "message" && v["text"] == want.as_str()
            });
        });
        d.seen.clear();
    }
    lat.report("webhook bench", "POST → gateway");
    // Throughput: 5,000 deliveries from 8 posters, each side in turn.
    let pid = crate::support::status_connector(&scene.status(), "webhook")["pid"]
        .as_i64()
        .unwrap() as i32;
    let idle = crate::support::rss_mib(pid, "VmRSS:");
    let (ours_s, ours_ok) = burst(&addr, "slow-free", BURST, 8, "tp");
    let (hermes_s, hermes_ok) = burst(&hermes_addr, "gh", BURST, 8, "tp");
    eprintln!(
        "webhook bench: {BURST} deliveries from 8 posters: bridgekeeper {ours_ok} accepted in {ours_s:.2} s = {:.0}/s (202 once recorded); hermes adapter {hermes_ok} in {hermes_s:.2} s = {:.0}/s (202 before the run); ratio {:.2}",
        ours_ok as f64 / ours_s,
        hermes_ok as f64 / hermes_s,
        (ours_ok as f64 / ours_s) / (hermes_ok as f64 / hermes_s)
    );
    let after_burst = crate::support::rss_mib(pid, "VmHWM:");
    let hostile = Hostile::start(&addr);
    let (_, real_ok) = burst(&addr, "slow-free", 500, 2, "under-attack");
    let (refused, slow) = hostile.finish();
    let under_attack = crate::support::rss_mib(pid, "VmHWM:");
    eprintln!(
        "webhook bench: under attack ({refused} forged POSTs refused, {} slow clients held): {real_ok}/500 real deliveries accepted; receiver RSS peak {under_attack:.1} MiB",
        slow * 4
    );
    drop(hermes.stdin.take());
    let _ = hermes.wait();
    d.stop();
    eprintln!(
        "webhook bench: receiver RSS idle {idle:.1} MiB, peak after the bursts {after_burst:.1} MiB"
    );
}

/// Raw bytes to `addr`; the status of the answer (0 when the connection closed unanswered).
fn raw_status(addr: &str, request: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// What a hostile or broken sender can send gets its typed answer and costs nothing: a
/// chunked body over the limit (no Content-Length) 413 while reading, a body that is neither
/// JSON nor a form 400, a non-ASCII signature 401, a disabled route 403, a browser's request to
/// a route without a signature check 403 (a direct one is taken, and the warning is in the
/// log); answers to a `log` route are logged by length, to `github_comment` `unsupported`;
/// `/health` answers as Hermes'.
#[test]
fn hostile_and_broken_requests_get_typed_answers() {
    let (dir, config) = receiver_scene(json!({
        "gh": {"secret": SECRET, "deliver": "log", "prompt": "ok {n}"},
        "off": {"secret": SECRET, "enabled": false},
        "local": {"secret": "INSECURE_NO_AUTH", "prompt": "local {n}"},
        "pr": {"secret": SECRET, "deliver": "github_comment", "prompt": "pr {n}"},
    }));
    let (mut d, addr) = start_receiver(&config);
    let health = crate::support::http::request(&addr, "GET", "/health", Some(&addr), &[], None);
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok", "platform": "webhook"}))
    );

    let chunk = "a".repeat(600_000);
    let chunked = format!(
        "POST /webhooks/gh HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    assert_eq!(raw_status(&addr, chunked.as_bytes()), 413);
    let binary = deliver_bytes(&addr, "gh", b"\xff\xfe\x00junk");
    assert_eq!(binary, 400);
    let odd = crate::support::http::request(
        &addr,
        "POST",
        "/webhooks/gh",
        Some(&addr),
        &[("X-Hub-Signature-256", "sha256=\u{e9}\u{e9}")],
        Some("{}"),
    );
    assert_eq!(odd.status, 401);
    assert_eq!(
        deliver(&addr, "off", SCHEMES[0], SECRET, "o-1", None, "{}").status,
        403
    );
    let from_browser = crate::support::http::request(
        &addr,
        "POST",
        "/webhooks/local",
        Some(&addr),
        &[("Origin", "https://evil.example")],
        Some(r#"{"n": 1}"#),
    );
    assert_eq!(from_browser.status, 403);
    let direct = crate::support::http::request(
        &addr,
        "POST",
        "/webhooks/local",
        Some(&addr),
        &[("X-Request-ID", "l-1")],
        Some(r#"{"n": 2}"#),
    );
    assert_eq!(direct.status, 202, "{}", direct.body);

    for (route, id) in [("gh", "g-1"), ("pr", "p-1")] {
        let r = deliver(&addr, route, SCHEMES[0], SECRET, id, None, r#"{"n": 3}"#);
        assert_eq!(r.status, 202, "{}", r.body);
        let prefix = format!("webhook:{route}:");
        let inbound = d.wait("the delivery", |v| {
            v["type"] == "inbound"
                && v["message"]["chat"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(&prefix))
        });
        let chat = inbound["message"]["chat"].as_str().unwrap().to_owned();
        d.send(json!({"type": "send_text", "id": format!("a-{route}"), "connector": "webhook", "chat": chat, "text": "the agent's answer"}));
    }
    let logged = d.wait("the log answer", |v| {
        v["type"] == "result" && v["id"] == "a-gh"
    });
    assert_eq!(
        (logged["ok"].clone(), logged["data"]["logged"].clone()),
        (json!(true), json!(true)),
        "{logged}"
    );
    let refused = d.wait("the github_comment answer", |v| {
        v["type"] == "result" && v["id"] == "a-pr"
    });
    assert_eq!(refused["error"]["code"], "unsupported", "{refused}");
    let texts = d.inbound_texts("webhook");
    assert!(
        !texts.iter().any(|t| t.contains("local 1")),
        "the browser's request reached the gateway"
    );
    let (_, stderr) = d.stop();
    let log = std::fs::read_to_string(dir.path().join("state/bridge.log")).unwrap_or_default();
    assert!(
        log.contains("accept POSTs without any signature")
            || stderr.contains("accept POSTs without any signature"),
        "the INSECURE_NO_AUTH warning"
    );
    assert!(
        !log.contains("the agent's answer"),
        "an answer's text was logged"
    );
}

/// A POST of raw `body` with a valid GitHub signature; its status.
fn deliver_bytes(addr: &str, route: &str, body: &[u8]) -> u16 {
    let now = bridgekeeper::util::time::unix_secs() as i64;
    let headers =
        bridgekeeper::connectors::webhook::signature::sign(SCHEMES[0], body, SECRET, "b-1", now);
    let mut request = format!(
        "POST /webhooks/{route} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    raw_status(addr, &bytes)
}

/// The receiver's process id, from `status --json`.
fn receiver_pid(config: &std::path::Path) -> u32 {
    let status = crate::support::status_json(config);
    crate::support::status_connector(&status, "webhook")["pid"]
        .as_u64()
        .expect("a pid") as u32
}

/// A stranger trickles bodies at a known route (8 connections, a byte per segment, 20 s): the
/// receiver grows by a few MiB at most, each slow body is cut and counted, and a signed
/// delivery meanwhile is answered at once. Unknown routes, disabled ones, a browser's request
/// to an unsigned route and a full rate window are answered from the head, no body sent.
#[test]
fn a_stranger_trickling_bodies_costs_what_they_weigh() {
    use crate::support::attack::{answer_to_head, head, trickle_and_measure};
    let (_dir, config) = receiver_scene(json!({
        "gh": {"secret": SECRET, "deliver": "log", "prompt": "real {n}"},
        "once": {"secret": SECRET, "deliver": "log", "rate_limit": 1},
        "off": {"secret": SECRET, "enabled": false},
        "local": {"secret": "INSECURE_NO_AUTH"},
    }));
    let (mut d, addr) = start_receiver(&config);
    let real = |n: &str| {
        deliver(
            &addr,
            "gh",
            SCHEMES[0],
            SECRET,
            n,
            None,
            &json!({"n": n}).to_string(),
        )
    };
    assert_eq!(real("warm").status, 202);
    let pid = receiver_pid(&config);
    let trickling = head(
        "POST",
        "/webhooks/gh",
        1_000_000,
        &["Content-Type: application/json"],
    );
    trickle_and_measure("webhook", &addr, &trickling, pid, || {
        let answer = real("during");
        assert_eq!(answer.status, 202, "{}", answer.body);
    });
    crate::support::wait_blocking("slow bodies counted", || {
        let status = crate::support::status_json(&config);
        let c = crate::support::status_connector(&status, "webhook");
        c["counts"]["refused_too_slow"].as_u64() >= Some(8)
    });

    assert_eq!(
        deliver(&addr, "once", SCHEMES[0], SECRET, "o-1", None, "{}").status,
        202
    );
    let announced =
        |path: &str, more: &[&str]| answer_to_head(&addr, &head("POST", path, 3_000_000, more));
    assert_eq!(
        announced("/webhooks/once", &[]),
        429,
        "a full window, from the head"
    );
    assert_eq!(announced("/webhooks/nowhere", &[]), 404);
    assert_eq!(announced("/webhooks/off", &[]), 403);
    assert_eq!(
        announced("/webhooks/local", &["Origin: https://evil.example"]),
        403
    );
    assert_eq!(
        announced("/webhooks/gh", &[]),
        413,
        "announced over the limit"
    );
    d.settle(std::time::Duration::from_millis(500));
    let texts = d.inbound_texts("webhook");
    assert!(texts.iter().any(|t| t.contains("real during")), "{texts:?}");
    d.stop();
}

/// A captured, correctly signed delivery replayed with a new id header is a duplicate: Svix's
/// signed id decides for Svix; for GitHub and generic V2, whose id header is not signed, what
/// the signature covers does.
#[test]
fn a_replayed_delivery_under_a_new_id_header_is_a_duplicate() {
    let (_dir, config) = receiver_scene(json!({
        "svix": {"secret": "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=", "deliver": "log"},
        "gh": {"secret": SECRET, "deliver": "log"},
        "v2": {"secret": SECRET, "deliver": "log"},
    }));
    let (mut d, addr) = start_receiver(&config);
    let now = bridgekeeper::util::time::unix_secs() as i64;
    let body = r#"{"event": "paid", "amount": 100}"#;
    for (route, scheme, secret) in [
        ("svix", SCHEMES[2], "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="),
        ("gh", SCHEMES[0], SECRET),
        ("v2", SCHEMES[3], SECRET),
    ] {
        let signed = bridgekeeper::connectors::webhook::signature::sign(
            scheme,
            body.as_bytes(),
            secret,
            &format!("{route}-first"),
            now,
        );
        let post = |extra: &[(&str, &str)]| {
            let mut headers: Vec<(&str, &str)> = signed
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for (k, v) in extra {
                headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
                headers.push((k, v));
            }
            crate::support::http::request(
                &addr,
                "POST",
                &format!("/webhooks/{route}"),
                Some(&addr),
                &headers,
                Some(body),
            )
        };
        assert_eq!(post(&[]).status, 202, "{route}: the first");
        for extra in [
            vec![("X-GitHub-Delivery", "anything")],
            vec![("X-Request-ID", "another")],
            vec![
                ("X-GitHub-Delivery", "x"),
                ("X-Request-ID", "y"),
                ("X-Gitlab-Event-UUID", "z"),
            ],
        ] {
            let replay = post(&extra);
            assert_eq!(
                (replay.status, replay.json()["status"].clone()),
                (200, json!("duplicate")),
                "{route} replayed with {extra:?}: {}",
                replay.body
            );
        }
    }
    d.settle(std::time::Duration::from_millis(500));
    assert_eq!(d.inbound_texts("webhook").len(), 3, "each delivery once");
    d.stop();
}
