//! The Hermes plugin (`hermes-plugin/`) inside the real Hermes 0.19.0 gateway, offline (its
//! model a local fake): one `bridgekeeper run` child serves every platform bridgekeeper runs,
//! bridgekeeper's policy is the one access decision, and the child is restarted when it dies and
//! never outlives the gateway. Each platform's own run through the plugin is a case of the
//! conformance suite.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::gateway::{Gateway, Home, bridgekeepers_for, signal};
use crate::support::telegram::FakeTelegram;
use crate::support::webhook::{SCHEMES, deliver};

const ALLOWED: i64 = 100001;
const STRANGER: i64 = 100777;
const ROUTE_SECRET: &str = "route-secret-7c4a8d09ca3762af";

/// Telegram (crabline) turned on in Hermes' `.env`, allowing `ALLOWED`.
fn telegram_home(dir: &Path) -> (FakeTelegram, Home) {
    let tg = FakeTelegram::start(dir);
    let home = dir.join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    let env = format!(
        "TELEGRAM_BOT_TOKEN={}\nTELEGRAM_API_ROOT={}\nTELEGRAM_ALLOWED_USERS={ALLOWED}\n",
        tg.bot_token, tg.api_root
    );
    std::fs::write(home.join(".env"), env).unwrap();
    let home = Home::new(dir);
    (tg, home)
}

fn answered(tg: &FakeTelegram, chat: i64, word: &str) -> bool {
    tg.sent()
        .contains(&(chat.to_string(), format!("answer:{word}")))
}

fn started(home: &Home) -> Gateway {
    let gateway = home.gateway(true, &[]);
    gateway.connected("telegram");
    gateway
}

/// A stranger is sent bridgekeeper's pairing code and the agent is never asked; once the
/// operator approves that code with Hermes' own `hermes pairing approve`, the stranger's next
/// DM is answered.
#[test]
fn a_stranger_gets_bridgekeepers_code_and_hermes_pairing_lets_them_in() {
    let dir = tempfile::tempdir().unwrap();
    let (tg, home) = telegram_home(dir.path());
    let gateway = started(&home);
    tg.dm(STRANGER, "who are you ask:stranger");
    let mut code = None;
    gateway.wait("a pairing code", || {
        code = tg
            .sent()
            .into_iter()
            .find(|(to, text)| *to == STRANGER.to_string() && text.contains("Your pairing code: "))
            .map(|(_, text)| crate::policy::code_in(&text));
        code.is_some()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(home.completions(), 0, "the agent was asked for a stranger");
    assert!(
        !gateway.log().contains("ask:stranger"),
        "Hermes saw the stranger's text"
    );

    let hermes = crate::support::hermes::python().with_file_name("hermes");
    let approve = std::process::Command::new(hermes)
        .args(["pairing", "approve", "telegram", code.as_deref().unwrap()])
        .env("HERMES_HOME", &home.path)
        .output()
        .unwrap();
    assert!(approve.status.success(), "{approve:?}");
    tg.dm(STRANGER, "now ask:paired");
    gateway.wait("the paired stranger's answer", || {
        answered(&tg, STRANGER, "paired")
    });
}

/// The `bridgekeeper run` child SIGKILLed: the plugin starts a new one, Hermes' log says so,
/// and the next DM is answered.
#[test]
fn a_killed_bridgekeeper_is_started_again_and_the_next_dm_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (tg, home) = telegram_home(dir.path());
    let gateway = started(&home);
    let first = gateway.bridgekeeper();
    tg.dm(ALLOWED, "before ask:before");
    gateway.wait("the first answer", || answered(&tg, ALLOWED, "before"));
    signal(first, nix::sys::signal::Signal::SIGKILL);
    let mut second = first;
    gateway.wait("a new bridgekeeper", || {
        second = gateway.bridgekeepers().first().copied().unwrap_or(first);
        second != first
    });
    assert!(
        gateway.log().contains("exited unasked"),
        "{}",
        gateway.log()
    );
    tg.dm(ALLOWED, "after ask:after");
    gateway.wait("the answer after the restart", || {
        answered(&tg, ALLOWED, "after")
    });
    assert_eq!(gateway.bridgekeepers(), [second]);
}

/// SIGTERM to the gateway: it and bridgekeeper are both gone within 15 s.
#[test]
fn sigterm_stops_the_gateway_and_bridgekeeper_within_15_s() {
    let dir = tempfile::tempdir().unwrap();
    let (tg, home) = telegram_home(dir.path());
    let mut gateway = started(&home);
    gateway.bridgekeeper();
    tg.dm(ALLOWED, "hi ask:up");
    gateway.wait("an answer", || answered(&tg, ALLOWED, "up"));
    let took = gateway.terminate(Duration::from_secs(15));
    assert!(took < Duration::from_secs(15), "the gateway took {took:?}");
    crate::support::wait_blocking("bridgekeeper to be gone", || {
        bridgekeepers_for(&home.path).is_empty()
    });
}

/// The gateway SIGKILLed (no `disconnect`, no cleanup): its bridgekeeper sees its stdin close
/// and leaves, so none is orphaned.
#[test]
fn a_killed_gateway_leaves_no_bridgekeeper_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (_tg, home) = telegram_home(dir.path());
    let mut gateway = started(&home);
    let child = gateway.bridgekeeper();
    gateway.kill();
    crate::support::wait_blocking("the orphan to leave", || {
        !crate::support::alive(child) && bridgekeepers_for(&home.path).is_empty()
    });
}

/// A linked WhatsApp session bridgekeeper could run, in a home whose Hermes does not enable
/// WhatsApp (no `WHATSAPP_ENABLED`): the child runs Telegram only (`run --platforms`), says
/// why, and never connects to WhatsApp; Telegram is answered as ever.
#[test]
fn a_platform_hermes_leaves_off_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let whatsapp = crate::support::whatsapp::FakeWhatsApp::start(dir.path());
    whatsapp.seed_session(&dir.path().join("hermes/platforms/whatsapp/session"));
    let (tg, home) = telegram_home(dir.path());
    let gateway = started(&home);
    gateway.wait("the log to say why", || {
        gateway
            .log()
            .contains("not running whatsapp: bridgekeeper could, but Hermes does not enable it")
    });
    tg.dm(ALLOWED, "hi ask:only");
    gateway.wait("the Telegram answer", || answered(&tg, ALLOWED, "only"));
    let status = home.status();
    let names: Vec<&str> = status["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["telegram"], "{status}");
    let connected = crate::support::recorded(&whatsapp.recorder)
        .iter()
        .any(|e| e["method"] == "WEBSOCKET");
    assert!(!connected, "bridgekeeper connected to WhatsApp");
}

/// Hermes' home turns on Telegram and a webhook route: one `bridgekeeper run`, the gateway's
/// child, serves both, and the agent answers on each.
#[test]
fn one_child_serves_every_platform() {
    let dir = tempfile::tempdir().unwrap();
    let hermes = dir.path().join("hermes");
    std::fs::create_dir_all(&hermes).unwrap();
    let routes = json!({"platforms": {"webhook": {"enabled": true, "extra": {"routes":
        {"gh": {"secret": ROUTE_SECRET, "prompt": "{text}", "deliver": "log"}}}}}});
    std::fs::write(hermes.join("config.yaml"), routes.to_string()).unwrap();
    let (tg, home) = telegram_home(dir.path());
    let gateway = home.gateway(true, &[("WEBHOOK_PORT", "0".into())]);
    gateway.connected("telegram");
    gateway.connected("webhook");
    let child = gateway.bridgekeeper();
    tg.dm(ALLOWED, "hi ask:telegram");
    let url = crate::support::listening_url(&gateway.connection("webhook"));
    let body = json!({"text": "hook ask:webhook"}).to_string();
    let posted = deliver(
        url.trim_start_matches("http://"),
        "gh",
        SCHEMES[3],
        ROUTE_SECRET,
        "d-1",
        None,
        &body,
    );
    assert_eq!(posted.status, 202, "{}", posted.head);
    gateway.wait("the Telegram answer", || answered(&tg, ALLOWED, "telegram"));
    gateway.wait("the webhook's answer", || {
        std::fs::read_to_string(home.state_dir().with_file_name("bridge.log"))
            .is_ok_and(|log| log.contains("answer for route \\\"gh\\\" logged"))
    });
    assert_eq!(gateway.bridgekeepers(), [child]);
    assert_eq!(
        bridgekeepers_for(&home.path),
        [child],
        "no other bridgekeeper"
    );
}

/// Without a bridgekeeper binary the plugin registers nothing: Hermes' own adapter serves the
/// platform (its webhook receiver here), no bridgekeeper runs, and the log says why.
#[test]
fn without_the_binary_hermes_own_adapters_run_and_the_log_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let hermes = dir.path().join("hermes");
    std::fs::create_dir_all(&hermes).unwrap();
    let port = crate::support::free_port();
    let routes = json!({"platforms": {"webhook": {"enabled": true, "extra": {"port": port,
        "routes": {"gh": {"secret": ROUTE_SECRET, "prompt": "{text}", "deliver": "log"}}}}}});
    std::fs::write(hermes.join("config.yaml"), routes.to_string()).unwrap();
    let home = Home::new(dir.path());
    let gateway = home.gateway(false, &[]);
    gateway.connected("webhook");
    let log = gateway.log();
    assert!(
        log.contains("no bridgekeeper binary found, so Hermes' own adapters run"),
        "{log}"
    );
    assert!(gateway.bridgekeepers().is_empty());
    assert!(bridgekeepers_for(&home.path).is_empty());
    assert!(!log.contains("bridgekeeper: serving"), "{log}");
    // Hermes' own receiver answers on the port.
    assert!(log.contains("[webhook] Listening on"), "{log}");
    let addr = format!("127.0.0.1:{port}");
    let health = crate::support::http::request(&addr, "GET", "/health", Some(&addr), &[], None);
    assert_eq!(health.status, 200, "{}", health.head);
}

/// The resident memory (MiB) of `pid` and every process under it.
fn tree_rss_mib(pid: u32) -> f64 {
    let mut total = 0.0;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        total += crate::support::rss_mib(p as i32, "VmRSS:");
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        todo.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    total
}

/// Benchmark, run by `scripts/bench/plugin.sh` (ignored otherwise): the same Telegram DM
/// (crabline) answered by the agent through the plugin and through Hermes' own Telegram adapter
/// (python-telegram-bot, pointed at the fake by `platforms.telegram.extra.base_url`), two
/// gateways side by side in one run, DMs alternating; inject to the fake's recorded answer,
/// and the resident memory of each gateway's process tree after the rounds. Rounds are 5 s
/// apart, or `BENCH_PLUGIN_PAUSE_MS` (0: back to back, where pacing would show).
#[test]
#[ignore = "benchmark: scripts/bench/plugin.sh runs it"]
fn bench_plugin_beside_hermes_own_telegram() {
    const ROUNDS: usize = 10;
    let plugin_dir = tempfile::tempdir().unwrap();
    let (plugin_tg, plugin_home) = telegram_home(plugin_dir.path());
    let plugin = started(&plugin_home);

    let own_dir = tempfile::tempdir().unwrap();
    let own_tg = FakeTelegram::start(own_dir.path());
    let (_own_home, own) = crate::support::gateway::hermes_own_telegram(
        own_dir.path(),
        &own_tg.bot_token,
        &own_tg.api_root,
        ALLOWED,
    );

    let pause = Duration::from_millis(
        std::env::var("BENCH_PLUGIN_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000),
    );
    let mut latencies = crate::support::Latencies::default();
    for round in 0..=ROUNDS {
        for (name, tg, gateway) in [
            ("through the plugin", &plugin_tg, &plugin),
            ("Hermes' own adapter", &own_tg, &own),
        ] {
            let word = format!("r{round}");
            let ask = || {
                tg.dm(ALLOWED, &format!("round ask:{word}"));
                gateway.wait("the answer", || answered(tg, ALLOWED, &word));
            };
            // The first round warms both up (sessions, the model's first call) and is not kept.
            if round == 0 {
                ask();
            } else {
                latencies.time(name, ask);
            }
        }
        // Rounds apart (5 s unless BENCH_PLUGIN_PAUSE_MS says), as people write.
        std::thread::sleep(pause);
    }
    latencies.report(
        "plugin bench",
        "Telegram DM to the agent's answer at the fake",
    );
    eprintln!(
        "plugin bench: RSS of the gateway's process tree, through the plugin {:.1} MiB, Hermes' own adapter {:.1} MiB",
        tree_rss_mib(plugin.pid()),
        tree_rss_mib(own.pid())
    );
}

/// The plugin's pure mappings, unit by unit (`tests/hermes_plugin_translate.py`, with the
/// test venv's Python), and its send results put through Hermes 0.19.0's own resend logic: an
/// unconfirmed send (it may have gone out) is not sent again, nor as plain text.
#[test]
fn the_plugins_translations_hold_field_by_field() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hermes_plugin_translate.py");
    let out = std::process::Command::new(crate::support::hermes::python())
        .arg(script)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
