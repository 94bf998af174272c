//! The Telegram connector end to end with real components: the fake Telegram Bot API
//! (`crabline serve telegram`) and, in the same run, the fake WhatsApp server with node-bridge
//! and Baileys, one `bridgekeeper run` process supervising both, driven over its gateway link.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::daemon::Daemon;
use crate::support::telegram::FakeTelegram;
use crate::support::whatsapp::{FakeWhatsApp, node_bridge_dir};
use crate::support::{PATIENCE, wait_blocking, write_config_with};

const ALLOWED: i64 = 100001;
const STRANGER: i64 = 100777;
const WA_FRIEND: &str = "15551234567";
const GROUP: &str = "-1001234567890";

struct Scene {
    telegram: FakeTelegram,
    whatsapp: Option<FakeWhatsApp>,
    config: PathBuf,
    dir: tempfile::TempDir,
}

/// The fake Telegram server (and with `with_whatsapp`, the fake WhatsApp server and
/// node-bridge), and a config running both connectors.
fn scene(telegram_policy: &str, with_whatsapp: bool) -> Scene {
    scene_with(telegram_policy, with_whatsapp, "")
}

/// `top`: more top-level config (a `relay:` section).
fn scene_with(telegram_policy: &str, with_whatsapp: bool, top: &str) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let telegram = FakeTelegram::start(dir.path());
    let mut connectors = vec![format!(
        "  - name: telegram\n    builtin: telegram\n    args: [--media-dir, {:?}]\n    env: {{TELEGRAM_API_ROOT: {:?}}}\n    {telegram_policy}\n    restart: {{initial_backoff_ms: 50, max_backoff_ms: 500, jitter: 0.0, max_restarts: 20, window_ms: 60000}}\n",
        dir.path().join("tg-media"),
        telegram.api_root
    )];
    let whatsapp =
        with_whatsapp.then(|| FakeWhatsApp::beside(dir.path(), &mut connectors, WA_FRIEND));
    let config = write_config_with(dir.path(), &connectors, top);
    Scene {
        telegram,
        whatsapp,
        config,
        dir,
    }
}

fn code_for(t: &FakeTelegram, chat: i64) -> String {
    let mut code = None;
    wait_blocking("a pairing code by sendMessage", || {
        code = t
            .sent()
            .iter()
            .find(|(to, text)| *to == chat.to_string() && text.contains("Your pairing code: "))
            .map(|(_, text)| crate::policy::code_in(text));
        code.is_some()
    });
    code.unwrap()
}

/// Everything a user sees, in one run with WhatsApp beside: an allowed DM and its reply, a
/// stranger paired with a code typed in lower case with spaces, group messages with and
/// without a mention, a WhatsApp DM; and the bot token in nothing the run wrote or printed.
#[test]
fn telegram_and_whatsapp_in_one_run() {
    let s = scene(
        &format!("policy: {{dm_policy: pairing, allow_from: ['{ALLOWED}'], group_policy: open}}"),
        true,
    );
    let mut d = Daemon::start(&s.config, &[("TELEGRAM_BOT_TOKEN", &s.telegram.bot_token)]);
    d.wait("telegram open", |v| {
        v["type"] == "connection" && v["connector"] == "telegram" && v["status"]["state"] == "open"
    });
    d.wait("whatsapp open", |v| {
        v["type"] == "connection" && v["connector"] == "whatsapp" && v["status"]["state"] == "open"
    });

    // An allowed DM arrives; the reply is recorded by the fake as sendMessage to that chat.
    s.telegram.dm(ALLOWED, "hello from telegram");
    let m = d.wait("the telegram DM", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "hello from telegram"
    });
    assert_eq!(m["connector"], "telegram");
    assert_eq!(m["message"]["chat"], ALLOWED.to_string());
    let quote = m["message"]["id"].as_str().unwrap().to_owned();
    d.send(
        json!({"type": "send_text", "id": "r1", "connector": "telegram",
        "chat": ALLOWED.to_string(), "text": "hello back", "reply_to": quote}),
    );
    let r = d.wait("the reply's result", |v| {
        v["type"] == "result" && v["id"] == "r1"
    });
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        s.telegram
            .sent()
            .contains(&(ALLOWED.to_string(), "hello back".into()))
    );

    // A reaction to the DM (setMessageReaction).
    d.send(json!({"type": "react", "id": "r3", "connector": "telegram",
        "chat": ALLOWED.to_string(), "message_id": quote, "emoji": "👍"}));
    let r = d.wait("the reaction's result", |v| {
        v["type"] == "result" && v["id"] == "r3"
    });
    assert_eq!(r["ok"], true, "{r}");

    // A photo from a local file, uploaded as multipart: the fake records a sendPhoto.
    let photo = s.dir.path().join("chart.png");
    std::fs::write(&photo, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    d.send(
        json!({"type": "send_media", "id": "r2", "connector": "telegram",
        "chat": ALLOWED.to_string(), "path": photo, "kind": "image", "caption": "the chart"}),
    );
    let r = d.wait("the photo's result", |v| {
        v["type"] == "result" && v["id"] == "r2"
    });
    assert_eq!(r["ok"], true, "{r}");
    let uploads = std::fs::read_to_string(s.telegram.recorder()).unwrap();
    assert!(
        uploads
            .lines()
            .any(|l| l.contains("/sendPhoto") && l.contains("\"accepted\":true")),
        "no accepted sendPhoto in the recorder"
    );

    // A stranger gets a code; approved in lower case with spaces, their next DM arrives.
    s.telegram.dm(STRANGER, "who are you?");
    let code = code_for(&s.telegram, STRANGER).to_lowercase();
    let spaced = format!("{} {}", &code[..4], &code[4..]);
    let approve = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
        .args(["pairing", "approve", "telegram", &spaced, "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(approve.status.success(), "{approve:?}");
    s.telegram.dm(STRANGER, "now paired");
    d.wait("the paired DM", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "now paired"
    });
    assert!(
        !d.inbound_texts("telegram")
            .contains(&"who are you?".to_owned())
    );

    // Groups: without a mention nothing; with the bot's @username, delivered.
    s.telegram.inject(
        &json!({"chatId": GROUP, "chatType": "supergroup", "fromId": ALLOWED,
        "text": "just chatting"}),
    );
    s.telegram.inject(
        &json!({"chatId": GROUP, "chatType": "supergroup", "fromId": ALLOWED,
        "text": "hey @crabline_bot", "entities": [{"type": "mention", "offset": 4, "length": 13}]}),
    );
    let g = d.wait("the mention", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "hey @crabline_bot"
    });
    assert_eq!(g["message"]["is_group"], true);
    assert!(
        !d.inbound_texts("telegram")
            .contains(&"just chatting".to_owned())
    );
    // What the group said without a mention comes along as the context of the mention.
    assert_eq!(
        g["message"]["context"],
        json!([{"text": "just chatting", "sender": ALLOWED.to_string(), "sender_name": "QA User"}]),
        "{g}"
    );

    // A forum topic: the message carries its thread, and the reply goes back into it.
    s.telegram.inject(
        &json!({"chatId": GROUP, "chatType": "supergroup", "isForum": true,
        "messageThreadId": 7, "fromId": ALLOWED, "text": "@crabline_bot in a topic",
        "entities": [{"type": "mention", "offset": 0, "length": 13}]}),
    );
    let t = d.wait("the topic message", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "@crabline_bot in a topic"
    });
    assert_eq!(t["message"]["thread"], "7", "{t}");
    d.send(
        json!({"type": "send_text", "id": "r4", "connector": "telegram",
        "chat": GROUP, "text": "answer in the topic", "thread": "7"}),
    );
    let r = d.wait("the topic reply's result", |v| {
        v["type"] == "result" && v["id"] == "r4"
    });
    assert_eq!(r["ok"], true, "{r}");
    let recorded = std::fs::read_to_string(s.telegram.recorder()).unwrap();
    assert!(
        recorded
            .lines()
            .any(|l| l.contains("answer in the topic") && l.contains("\"message_thread_id\":7")),
        "the reply did not go into the topic"
    );

    // And WhatsApp, in the same run.
    s.whatsapp
        .as_ref()
        .unwrap()
        .inject_dm(WA_FRIEND, "hello from whatsapp");
    let w = d.wait("the whatsapp DM", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "hello from whatsapp"
    });
    assert_eq!(w["connector"], "whatsapp");

    let status = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
        .args(["status", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("telegram") && status.contains("whatsapp"),
        "{status}"
    );

    let (stdout, stderr) = d.stop();
    // The token is a password: the part after the bot id is nowhere.
    let secret = s.telegram.bot_token.split(':').nth(1).unwrap();
    crate::support::assert_secret_nowhere(
        secret,
        &s.dir.path().join("state"),
        &[&stdout, &stderr, &status],
    );
}

/// A token Telegram refuses: `needs_token` (the connector's status says so), an alert, and no
/// restart loop.
#[test]
fn a_bad_token_needs_a_new_one_and_is_not_retried() {
    let s = scene("policy: {dm_policy: open}", false);
    let mut d = Daemon::start(&s.config, &[("TELEGRAM_BOT_TOKEN", "999999:not-the-token")]);
    let c = d.wait("the refusal", |v| {
        v["type"] == "connection"
            && v["connector"] == "telegram"
            && v["status"]["state"] == "closed"
    });
    assert!(
        c["status"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("needs_token"),
        "{c}"
    );
    d.wait("the state", |v| {
        v["type"] == "connector_state"
            && v["connector"] == "telegram"
            && v["state"] == "needs_token"
    });
    d.settle(Duration::from_secs(1));
    let starts = d.starts();
    assert_eq!(starts, 1, "started once, never again: {:#?}", d.seen);
    let (stdout, stderr) = d.stop();
    assert!(!stdout.contains("not-the-token") && !stderr.contains("not-the-token"));
}

/// A second poller on the same token: the connector reports `conflict` (saying it is another
/// poller, not a webhook) and is not restarted into a fight.
#[test]
fn a_second_poller_is_a_conflict_not_a_loop() {
    let s = scene("policy: {dm_policy: open}", false);
    let mut d = Daemon::start(&s.config, &[("TELEGRAM_BOT_TOKEN", &s.telegram.bot_token)]);
    d.wait("telegram open", |v| {
        v["type"] == "connection" && v["connector"] == "telegram" && v["status"]["state"] == "open"
    });
    // Someone else polls with the same token, again and again, as a second instance would
    // (whichever poll came last wins; the loser hears 409).
    let url = format!(
        "{}/bot{}/getUpdates",
        s.telegram.api_root, s.telegram.bot_token
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                crate::support::whatsapp::post_json(&url, &[], &json!({"timeout": 1}));
            }
        })
    };
    let c = d.wait("the conflict", |v| {
        v["type"] == "connection"
            && v["connector"] == "telegram"
            && v["status"]["state"] == "conflict"
    });
    assert!(
        c["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("another process"),
        "{c}"
    );
    d.wait("the state", |v| {
        v["type"] == "connector_state" && v["connector"] == "telegram" && v["state"] == "conflict"
    });
    d.wait("the alert", |v| {
        v["type"] == "alert" && v["connector"] == "telegram"
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = other.join();
    d.stop();
}

/// Benchmark, run by `scripts/bench/telegram.sh` (ignored otherwise): in one run with both
/// connectors, inject → gateway link latency for Telegram and WhatsApp side by side (DMs
/// alternating), the Telegram connector's RSS idle and at its peak under a burst of 1,000
/// DMs, and the burst's throughput (the fake keeps at most 1,000 unconfirmed updates; an inject
/// it refuses with 429 is retried).
#[test]
#[ignore = "benchmark: scripts/bench/telegram.sh runs it"]
fn bench_telegram_beside_whatsapp() {
    use crate::support::bench::{BURST, drain, latency_side_by_side};
    // The connector is frozen while the burst is queued at the fake: no liveness pings then.
    let s = scene(
        "policy: {dm_policy: open}\n    liveness: {ping_interval_ms: 0, silence_ms: 0}",
        true,
    );
    let mut d = Daemon::start(&s.config, &[("TELEGRAM_BOT_TOKEN", &s.telegram.bot_token)]);
    for c in ["telegram", "whatsapp"] {
        d.wait("open", |v| {
            v["type"] == "connection" && v["connector"] == c && v["status"]["state"] == "open"
        });
    }
    let wa = s.whatsapp.as_ref().unwrap();
    latency_side_by_side(
        &mut d,
        "telegram",
        &[
            ("telegram", &|text| drop(s.telegram.dm(ALLOWED, text))),
            ("whatsapp", &|text| drop(wa.inject_dm(WA_FRIEND, text))),
        ],
    );

    let pid = d.pid("telegram") as u32;
    let rss = move || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_secs(1));
    let idle = rss();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Queue the whole burst at the fake with the connector frozen, then let it go: the time to
    // drain is the connector's and the supervisor's, not the fake's inject rate.
    let target = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let queued = Instant::now();
    let mut refused = 0;
    for i in 0..BURST {
        while s.telegram.try_dm(ALLOWED, &format!("burst-{i}")) == 429 {
            refused += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let injected = queued.elapsed();
    let started = Instant::now();
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGCONT).unwrap();
    let drained = drain(&mut d, "burst-", BURST);
    let took = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    assert_eq!(drained, BURST);
    eprintln!(
        "telegram bench: connector RSS idle {:.1} MiB, peak under the burst {:.1} MiB",
        idle as f64 / 1024.0,
        peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0
    );
    eprintln!(
        "telegram bench: burst of {BURST}: queued at the fake in {:.2} s ({refused} refused 429), drained to the gateway in {:.2} s = {:.0} msg/s",
        injected.as_secs_f64(),
        took.as_secs_f64(),
        BURST as f64 / took.as_secs_f64()
    );
    d.stop();
}

/// `doctor` finds a webhook that would block polling (the token's check is the conformance
/// suite's).
#[test]
fn doctor_finds_a_webhook_that_blocks_polling() {
    let dir = tempfile::tempdir().unwrap();
    let t = FakeTelegram::start(dir.path());
    let home = dir.path().join("hermes");
    let doctor = || {
        let out = crate::support::hermes_command("doctor", &home)
            .env("TELEGRAM_BOT_TOKEN", &t.bot_token)
            .env("TELEGRAM_API_ROOT", &t.api_root)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(doctor().contains("no webhook set"));
    // A webhook, set the way another program would (the fake checks the URL answers).
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hook.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in hook.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let url = format!("{}/bot{}/setWebhook", t.api_root, t.bot_token);
    let (status, body) = crate::support::whatsapp::post_json(
        &url,
        &[],
        &json!({"url": format!("http://127.0.0.1:{port}/hook")}),
    );
    assert_eq!(status, 200, "{body}");
    let said = doctor();
    assert!(
        said.contains("a webhook (to 127.0.0.1:") && said.contains("FAIL"),
        "{said}"
    );
}

/// The update offset moves (and Telegram is told it may forget the updates) only once the
/// supervisor has said `recorded` for every message of the batch. The connector alone, with
/// the test as its supervisor.
#[test]
fn the_offset_waits_for_the_supervisors_recorded_note() {
    let dir = tempfile::tempdir().unwrap();
    let t = FakeTelegram::start(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
        .args(["connector", "telegram"])
        .env("TELEGRAM_BOT_TOKEN", &t.bot_token)
        .env("TELEGRAM_API_ROOT", &t.api_root)
        .env("BRIDGEKEEPER_STATE_DIR", dir.path())
        .env("BRIDGEKEEPER_CONNECTOR", "tg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, lines) = mpsc::channel::<Value>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap());
        }
    });
    let next = |what: &str, pred: &dyn Fn(&Value) -> bool| loop {
        let v = lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no {what}"));
        if pred(&v) {
            return v;
        }
    };
    let hello = next("hello", &|v| v["type"] == "hello");
    assert!(
        hello["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("recorded"))
    );
    next("open", &|v| v["type"] == "status" && v["state"] == "open");
    t.dm(ALLOWED, "keep me until recorded");
    let m = next("the inbound", &|v| v["type"] == "inbound");
    let offset = dir.path().join("tg.telegram-offset");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !offset.exists(),
        "the offset moved before the supervisor recorded the message"
    );
    writeln!(stdin, "{}", json!({"type": "recorded", "id": m["id"]})).unwrap();
    stdin.flush().unwrap();
    wait_blocking("the offset to move", || {
        std::fs::read_to_string(&offset).is_ok_and(|o| o.trim() == "2")
    });
    drop(stdin);
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "stdin closed: a clean exit"
    );
}

/// One unmodified Hermes gateway (the real relay client from PyPI) fronting both platforms on
/// one socket: a Telegram DM and a WhatsApp DM arrive tagged with their platform, and the reply
/// to the Telegram chat goes out through the Telegram connector.
#[test]
fn one_hermes_relay_socket_fronts_telegram_and_whatsapp() {
    let s = scene_with(
        &format!("policy: {{dm_policy: allowlist, allow_from: ['{ALLOWED}']}}"),
        true,
        "relay: {listen: '127.0.0.1:0'}",
    );
    let d = Daemon::start(&s.config, &[("TELEGRAM_BOT_TOKEN", &s.telegram.bot_token)]);
    let port = d.relay_port();
    let home = s.dir.path().join("gateway-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut h = crate::support::hermes::Relay::start(
        port,
        crate::support::hermes::SECRET,
        &home,
        "whatsapp,telegram",
    );
    h.cmd(json!({"cmd": "connect"}));
    h.wait("connected", |_| true);

    s.telegram.dm(ALLOWED, "telegram over the relay");
    let m = h.wait("message", |v| v["text"] == "telegram over the relay");
    assert_eq!(m["platform"], "telegram");
    assert_eq!(m["chat_id"], ALLOWED.to_string());
    s.whatsapp
        .as_ref()
        .unwrap()
        .inject_dm(WA_FRIEND, "whatsapp over the relay");
    let w = h.wait("message", |v| v["text"] == "whatsapp over the relay");
    assert_eq!(w["platform"], "whatsapp");

    h.cmd(json!({"cmd": "send", "chat_id": ALLOWED.to_string(), "text": "telegram reply"}));
    let sent = h.wait("sent", |_| true);
    assert_eq!(sent["success"], true, "{sent}");
    wait_blocking("the fake Telegram to record the reply", || {
        s.telegram
            .sent()
            .contains(&(ALLOWED.to_string(), "telegram reply".into()))
    });
    d.stop();
}

/// `bridgekeeper run` without a config, with `TELEGRAM_BOT_TOKEN` only in `$HERMES_HOME/.env`
/// and a linked WhatsApp session: both connectors start, in that order, each saying why
/// (Telegram alone, with no Node on `PATH`, is the conformance suite's).
#[test]
fn run_without_a_config_starts_telegram_beside_a_linked_whatsapp() {
    let dir = tempfile::tempdir().unwrap();
    let telegram = FakeTelegram::start(dir.path());
    let whatsapp = FakeWhatsApp::start(dir.path());
    let hermes = dir.path().join("hermes");
    whatsapp.seed_session(&hermes.join("platforms/whatsapp/session"));
    let env = format!(
        "TELEGRAM_BOT_TOKEN={}\nTELEGRAM_API_ROOT={}\n",
        telegram.bot_token, telegram.api_root
    );
    std::fs::write(hermes.join(".env"), env).unwrap();
    let mut child = crate::support::hermes_run(&hermes)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WHATSAPP_WEB_SOCKET_URL", &whatsapp.ws_url)
        .env(
            "BRIDGEKEEPER_NODE_BRIDGE",
            node_bridge_dir().join("src/index.js"),
        )
        .spawn()
        .unwrap();
    let rx = crate::support::json_lines(child.stdout.take().unwrap());
    let wait =
        |what: &str, pred: &dyn Fn(&Value) -> bool| crate::support::next_matching(&rx, what, pred);
    for name in ["telegram", "whatsapp"] {
        wait(name, &|v| {
            v["type"] == "connection" && v["connector"] == name && v["status"]["state"] == "open"
        });
    }
    writeln!(
        child.stdin.as_mut().unwrap(),
        r#"{{"type":"status","id":"s"}}"#
    )
    .unwrap();
    let status = wait("the status", &|v| v["type"] == "result" && v["id"] == "s");
    let names: Vec<&str> = status["data"]["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["whatsapp", "telegram"], "{status}");
    let stderr = crate::support::finish_run(child);
    for why in [
        "running telegram (TELEGRAM_BOT_TOKEN is set)",
        "running whatsapp (a linked WhatsApp session)",
    ] {
        assert!(stderr.contains(why), "{stderr}");
    }
}

/// Our own Bot API fake (`fakes/bot_api.py`, for what crabline does not serve) held to the real
/// client: Hermes 0.19.0's own Telegram adapter (python-telegram-bot), in `hermes gateway run`
/// pointed at the fake by `platforms.telegram.extra.base_url`, answers a DM, reads a photo
/// through `getFile` and the file URL, answers a reply to its own answer and an edited DM (an
/// `edited_message` update), and types as it does on Telegram, with no call refused.
#[test]
fn our_bot_api_fake_serves_hermes_own_telegram_adapter() {
    use crate::support::bot_api::BotApi;
    let dir = tempfile::tempdir().unwrap();
    let api = BotApi::start(dir.path());
    let (_home, gateway) = crate::support::gateway::hermes_own_telegram(
        dir.path(),
        &api.bot_token,
        &api.api_root,
        ALLOWED,
    );
    let me = ALLOWED.to_string();
    let answered = |word: &str| {
        api.sent()
            .iter()
            .any(|(chat, text)| *chat == me && text.contains(&format!("answer:{word}")))
    };

    let first = api.dm(&me, "hello ask:one");
    gateway.wait("the answer to a DM", || answered("one"));
    api.photo(&me, b"\xff\xd8\xff\xe0 not much of a jpeg", "look ask:two");
    gateway.wait("the answer to a photo", || answered("two"));
    assert!(!api.downloads().is_empty(), "the photo was never fetched");
    let answer = api
        .calls("sendMessage")
        .into_iter()
        .find(|c| c["result"]["text"].as_str().unwrap().contains("answer:one"))
        .unwrap();
    api.inject(&json!({"chat_id": me, "text": "and then? ask:three",
        "reply_to": answer["result"]["message_id"]}));
    gateway.wait("the answer to a reply", || answered("three"));
    let first_id = first["message"]["message_id"].as_i64().unwrap();
    api.edit(&me, first_id, "hello again ask:four");
    gateway.wait("the answer to an edit", || answered("four"));
    assert!(!api.calls("sendChatAction").is_empty());
    assert_eq!(api.refusals(), Vec::<String>::new());
}

/// A relay gateway after Hermes 0.19.0 (`support::newer_gateway`, from its contract) fronting
/// Telegram, against our Bot API fake (crabline's injects text only). Contract lines, from
/// `hermes-relay-newer.md` §1.6: a reply carries `reply_to {text, author, is_own}`; a photo's
/// `media_urls` and `media[]` point at `/relay/media/` on the dialled address and serve the
/// bytes to the token only (§1.8); an edit comes with `source.message_is_edit` and an id of
/// its own (the gateway drops an id it has seen), and a reaction to it lands on the message
/// it edits; a bot's group message says `source.is_bot` and the group's `chat_name`, and
/// carries as `context` what the group said before without a mention, which never arrives
/// alone. §1.7/§1.8: `send_media` of an upload with the contract's fields reaches Telegram as
/// a photo with its caption and the uploaded bytes; `get_chat_info` names the group.
#[test]
fn a_newer_relay_gateway_gets_replies_photos_edits_and_groups_from_telegram() {
    use crate::support::bot_api::BotApi;
    use crate::support::newer_gateway::NewerGateway;
    let dir = tempfile::tempdir().unwrap();
    let api = BotApi::start(dir.path());
    let entry = format!(
        "  - name: telegram\n    builtin: telegram\n    args: [--media-dir, {:?}]\n    env: {{TELEGRAM_API_ROOT: {:?}}}\n    policy: {{dm_policy: allowlist, allow_from: ['{ALLOWED}'], group_policy: open}}\n",
        dir.path().join("tg-media"),
        api.api_root
    );
    let config = write_config_with(dir.path(), &[entry], "relay: {listen: '127.0.0.1:0'}");
    let mut d = Daemon::start(&config, &[("TELEGRAM_BOT_TOKEN", &api.bot_token)]);
    d.opened("telegram", 1);
    let mut g = NewerGateway::dial(d.relay_port(), "gw-newer", "telegram");
    let me = ALLOWED.to_string();

    // A reply to the agent's answer.
    let first = api.dm(&me, "first thoughts");
    let e = g.inbound();
    assert_eq!(e["text"], "first thoughts");
    let answer = g.op(json!({"op": "send", "chat_id": me, "content": "an answer",
        "reply_to": e["message_id"], "metadata": {}}));
    assert_eq!(answer["success"], true, "{answer}");
    let answered = api.calls("sendMessage");
    let answer_id = answered[0]["result"]["message_id"].clone();
    api.inject(&json!({"chat_id": me, "text": "about that", "reply_to": answer_id}));
    let reply = g.inbound();
    assert_eq!(
        reply["reply_to"],
        json!({"text": "an answer", "author": api.bot_token.split(':').next().unwrap(),
            "is_own": true}),
        "{reply}"
    );
    assert_eq!(reply["reply_to_message_id"], answer["message_id"]);

    // A photo, fetched from /relay/media with the token only.
    api.photo(&me, b"JPEG-ish bytes, 0123456789", "a caption");
    let photo = g.inbound();
    assert_eq!(photo["text"], "a caption");
    assert_eq!(photo["message_type"], "photo");
    let url = photo["media_urls"][0].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("http://{}/relay/media/", g.addr)),
        "{photo}"
    );
    assert_eq!(photo["media"][0]["url"], url.as_str());
    assert_eq!(photo["media"][0]["caption"], "a caption");
    let got = g.download("gw-newer", &url, true);
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, "JPEG-ish bytes, 0123456789")
    );
    assert_eq!(g.download("gw-newer", &url, false).status, 401);

    // An edit of the first DM: a new turn with an id of its own; 👀 on it lands on the DM.
    let first_id = first["message"]["message_id"].as_i64().unwrap();
    api.edit(&me, first_id, "first thoughts, fixed");
    let edit = g.inbound();
    assert_eq!(edit["text"], "first thoughts, fixed");
    assert_eq!(edit["source"]["message_is_edit"], true, "{edit}");
    assert_ne!(edit["message_id"], e["message_id"]);
    assert_eq!(e["source"]["message_is_edit"], false);
    let r = g.op(
        json!({"op": "react", "chat_id": me, "message_id": edit["message_id"],
        "emoji": "👀", "remove": false, "metadata": {}}),
    );
    assert_eq!(r["success"], true, "{r}");
    let reacted = api.calls("setMessageReaction");
    assert_eq!(
        reacted[0]["params"]["message_id"].to_string(),
        first_id.to_string()
    );

    // A group: a line without a mention, then a bot's mention of ours.
    api.inject(
        &json!({"chat_id": GROUP, "from_id": 555, "first_name": "Ann",
        "title": "Ops", "chat_type": "supergroup", "text": "we ship on friday"}),
    );
    api.inject(
        &json!({"chat_id": GROUP, "from_id": 777, "first_name": "CI", "is_bot": true,
        "title": "Ops", "chat_type": "supergroup",
        "text": format!("@{} is the build green?", api.bot_username)}),
    );
    // The next event is the mention: the unmentioned line never arrives alone.
    let mention = g.inbound();
    assert!(
        mention["text"]
            .as_str()
            .unwrap()
            .ends_with("is the build green?")
    );
    assert_eq!(
        (
            &mention["source"]["chat_type"],
            &mention["source"]["chat_name"]
        ),
        (&json!("group"), &json!("Ops"))
    );
    assert_eq!(mention["source"]["is_bot"], true);
    assert_eq!(
        mention["context"],
        json!([{"text": "we ship on friday", "source": {"user_name": "Ann"}}]),
        "{mention}"
    );
    let info = g.op(json!({"op": "get_chat_info", "chat_id": GROUP}));
    let info = info.get("chat_info").unwrap_or(&info).clone();
    assert_eq!(
        (&info["name"], &info["type"]),
        (&json!("Ops"), &json!("group"))
    );

    // A photo out, from an upload, with the contract's fields.
    let source = g.upload("gw-newer", "PNG bytes, as it were", "chart.png");
    let sent = g.op(
        json!({"op": "send_media", "chat_id": me, "media_kind": "image",
        "source_url": source, "content": "the chart", "filename": "chart.png",
        "reply_to": null, "metadata": {}}),
    );
    assert_eq!(sent["success"], true, "{sent}");
    let photos = api.calls("sendPhoto");
    assert_eq!(photos.len(), 1, "{photos:?}");
    assert_eq!(photos[0]["params"]["caption"], "the chart");
    assert_eq!(
        photos[0]["params"]["photo"]["sha256"],
        sha256_hex(b"PNG bytes, as it were")
    );
    assert_eq!(api.refusals(), Vec::<String>::new());
    drop(g);
    d.stop();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `send_media` with the newer contract's fields (hermes-relay-newer.md §1.7: `media_kind`,
/// `source_url` naming an upload to `/relay/media` (§1.8), `content` as the caption) reaches
/// crabline's Telegram as a photo with its caption.
#[test]
fn a_newer_gateways_send_media_reaches_crablines_telegram_as_a_photo() {
    use crate::support::newer_gateway::NewerGateway;
    let s = scene_with(
        &format!("policy: {{dm_policy: allowlist, allow_from: ['{ALLOWED}']}}"),
        false,
        "relay: {listen: '127.0.0.1:0'}",
    );
    let mut d = Daemon::start(&s.config, &[("TELEGRAM_BOT_TOKEN", &s.telegram.bot_token)]);
    d.opened("telegram", 1);
    let mut g = NewerGateway::dial(d.relay_port(), "gw-newer", "telegram");
    s.telegram.dm(ALLOWED, "send me the chart");
    let asked = g.inbound();
    let source = g.upload("gw-newer", "PNG bytes, as it were", "chart.png");
    let r = g.op(
        json!({"op": "send_media", "chat_id": asked["source"]["chat_id"],
        "media_kind": "image", "source_url": source, "content": "the chart",
        "filename": "chart.png", "reply_to": null, "metadata": {}}),
    );
    assert_eq!(r["success"], true, "{r}");
    let photos: Vec<Value> = crate::support::recorded(s.telegram.recorder())
        .into_iter()
        .filter(|e| {
            e["accepted"] == true
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/sendPhoto"))
        })
        .collect();
    assert_eq!(photos.len(), 1, "{photos:?}");
    assert_eq!(photos[0]["body"]["caption"], "the chart", "{}", photos[0]);
    d.stop();
}
