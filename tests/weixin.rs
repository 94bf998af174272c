//! Weixin (personal WeChat through iLink): the fake iLink server (`tests/fakes/ilink.py`) held
//! to the real client — Hermes' own Weixin adapter from the test venv — and bridgekeeper's
//! connector against the same fake.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::daemon::Daemon;
use crate::support::ilink::FakeIlink;
use crate::support::whatsapp::FakeWhatsApp;
use crate::support::{PATIENCE, wait_blocking, write_config_with};

const ALICE: &str = "alice@im.wechat";
const BOB: &str = "bob@im.wechat";

struct Scene {
    ilink: FakeIlink,
    whatsapp: Option<FakeWhatsApp>,
    config: PathBuf,
    dir: tempfile::TempDir,
}

const WA_FRIEND: &str = "15551234567";

/// The fake iLink server and a config running the Weixin connector against it; `policy` is
/// the connector's `policy:` line. The token reaches the connector from the environment only.
fn scene(policy: &str) -> Scene {
    scene_with(policy, "", false)
}

/// `top`: more top-level config (a `relay:` section); `with_whatsapp`: the fake WhatsApp
/// server and node-bridge in the same run (a friend's DMs allowed).
fn scene_with(policy: &str, top: &str, with_whatsapp: bool) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    // The fake's own files (its ready file holds the token) apart from ours.
    let fake_dir = dir.path().join("fake-ilink");
    std::fs::create_dir_all(&fake_dir).unwrap();
    let ilink = FakeIlink::start(&fake_dir, 1_000);
    let connector = format!(
        "  - name: weixin\n    builtin: weixin\n    args: [--media-dir, {:?}]\n    env: {{WEIXIN_BASE_URL: {:?}, WEIXIN_CDN_BASE_URL: {:?}, WEIXIN_ACCOUNT_ID: {:?}}}\n    {policy}\n    restart: {{initial_backoff_ms: 50, max_backoff_ms: 500, jitter: 0.0, max_restarts: 20, window_ms: 60000}}\n",
        dir.path().join("wx-media"),
        ilink.base_url,
        ilink.cdn_base_url,
        ilink.account_id
    );
    let mut connectors = vec![connector];
    let whatsapp =
        with_whatsapp.then(|| FakeWhatsApp::beside(dir.path(), &mut connectors, WA_FRIEND));
    let config = write_config_with(dir.path(), &connectors, top);
    Scene {
        ilink,
        whatsapp,
        config,
        dir,
    }
}

impl Scene {
    fn start(&self) -> Daemon {
        let mut d = Daemon::start(&self.config, &[("WEIXIN_TOKEN", self.ilink.token.as_str())]);
        d.wait("weixin open", |v| {
            v["type"] == "connection"
                && v["connector"] == "weixin"
                && v["status"]["state"] == "open"
        });
        d
    }

    /// The texts the fake accepted for `to`, with the context token each carried.
    fn sent_to(&self, to: &str) -> Vec<(String, Option<String>)> {
        self.ilink
            .sent("sendmessage")
            .iter()
            .filter(|v| v["to"] == to)
            .map(|v| {
                (
                    v["text"].as_str().unwrap_or_default().to_owned(),
                    v["context_token"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    fn pairing(&self, args: &[&str]) {
        let out = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
            .arg("pairing")
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

/// Hermes' own adapter (`gateway/platforms/weixin.py`) long-polls our fake, gets a DM, and its
/// reply is recorded by the fake with the context token that DM carried: the fake speaks the
/// protocol the real client speaks.
#[test]
fn hermes_own_weixin_adapter_works_against_the_fake() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeIlink::start(dir.path(), 2_000);
    let home = dir.path().join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    let (mut child, rx) = crate::support::hermes::script(
        "hermes_weixin.py",
        &home,
        &[
            ("ILINK_BASE_URL", fake.base_url.clone()),
            ("ILINK_TOKEN", fake.token.clone()),
            ("ILINK_ACCOUNT_ID", fake.account_id.clone()),
            ("REPLY", "hi from hermes".into()),
        ],
    );
    let next = || crate::support::hermes::next(&rx);
    assert_eq!(next()["event"], "connected");
    fake.dm(ALICE, "hello from weixin", "ctx-alice-1");
    let message = next();
    assert_eq!(message["event"], "message", "{message}");
    assert_eq!(message["text"], "hello from weixin");
    assert_eq!(message["chat_id"], ALICE);
    let sent = next();
    assert_eq!(sent["success"], true, "{sent}");
    assert!(child.wait().unwrap().success());
    let recorded = fake.sent("sendmessage");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["to"], ALICE);
    assert_eq!(recorded[0]["text"], "hi from hermes");
    assert_eq!(recorded[0]["context_token"], "ctx-alice-1");
}

/// What a user sees: an allowed DM arrives, and the reply (and typing) go out carrying that
/// peer's context token; a stranger is sent a code (with the stranger's token), approved with
/// the CLI, and their next DM arrives. The token is in nothing the run wrote or printed.
#[test]
fn a_dm_and_its_reply_with_the_context_token_and_a_stranger_paired() {
    let s = scene(&format!(
        "policy: {{dm_policy: pairing, allow_from: ['{ALICE}']}}"
    ));
    let mut d = s.start();
    s.ilink.dm(ALICE, "hello from weixin", "ctx-alice-1");
    let m = d.wait("the DM", |v| {
        v["type"] == "inbound" && v["connector"] == "weixin"
    });
    assert_eq!(m["message"]["text"], "hello from weixin");
    assert_eq!(m["message"]["chat"], ALICE);
    d.send(json!({"type": "send_text", "id": "r1", "connector": "weixin", "chat": ALICE, "text": "hi alice"}));
    assert_eq!(d.result("r1")["ok"], true);
    assert_eq!(
        s.sent_to(ALICE),
        vec![("hi alice".to_owned(), Some("ctx-alice-1".to_owned()))]
    );
    d.send(json!({"type": "typing", "id": "t1", "connector": "weixin", "chat": ALICE}));
    assert_eq!(d.result("t1")["ok"], true);
    let typing = s.ilink.sent("sendtyping");
    assert_eq!(typing[0]["typing_ticket"], format!("ticket-{ALICE}"));

    s.ilink.dm(BOB, "who is this?", "ctx-bob-1");
    let mut code = String::new();
    wait_blocking("a pairing code", || {
        if let Some((text, token)) = s.sent_to(BOB).first() {
            assert_eq!(
                token.as_deref(),
                Some("ctx-bob-1"),
                "the code carries bob's token"
            );
            code = crate::policy::code_in(text);
        }
        !code.is_empty()
    });
    s.pairing(&["approve", "weixin", &code.to_lowercase()]);
    s.ilink.dm(BOB, "approved now?", "ctx-bob-2");
    d.wait("bob's DM", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "approved now?"
    });
    assert_eq!(
        d.inbound_texts("weixin"),
        ["hello from weixin", "approved now?"]
    );
    let (stdout, stderr) = d.stop();
    crate::support::assert_secret_nowhere(
        &s.ilink.token,
        &s.dir.path().join("state"),
        &[&stdout, &stderr],
    );
    // Hermes' home got the pairing files and the allowlist mirror: no token either.
    let mut dirs = vec![s.dir.path().join("hermes")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                assert!(
                    !text.contains(&s.ilink.token),
                    "the token is in {}",
                    path.display()
                );
            }
        }
    }
}

/// An expired session (`errcode -14`) is the terminal state `needs_relink`: said with an
/// alert naming how to log in again, and the connector is not restarted.
#[test]
fn an_expired_session_needs_relink_and_is_not_restarted() {
    let s = scene("policy: {dm_policy: open}");
    let mut d = s.start();
    s.ilink.expire();
    d.wait("needs_relink", |v| {
        v["type"] == "connector_state" && v["connector"] == "weixin" && v["state"] == "needs_relink"
    });
    d.settle(std::time::Duration::from_millis(1500));
    let starts = d.starts();
    assert_eq!(starts, 1, "started once, never again");
    let alert = d.wait("the alert", |v| {
        v["type"] == "alert" && v["connector"] == "weixin"
    });
    assert!(
        alert["message"].as_str().unwrap().contains("WEIXIN_TOKEN"),
        "{alert}"
    );
    d.stop();
}

/// iLink's rate limit (`ret -2`) on sends: each waits and goes again, in order, none lost.
#[test]
fn a_rate_limit_delays_sends_keeps_their_order_and_loses_none() {
    let s = scene("policy: {dm_policy: open}");
    let mut d = s.start();
    s.ilink.dm(ALICE, "hi", "ctx-alice-1");
    d.wait("the DM", |v| v["type"] == "inbound");
    s.ilink.rate_limit(2);
    for i in 0..3 {
        d.send(json!({"type": "send_text", "id": format!("s{i}"), "connector": "weixin", "chat": ALICE, "text": format!("reply {i}")}));
    }
    for i in 0..3 {
        assert_eq!(d.result(&format!("s{i}"))["ok"], true);
    }
    let texts: Vec<String> = s.sent_to(ALICE).into_iter().map(|(t, _)| t).collect();
    assert_eq!(texts, ["reply 0", "reply 1", "reply 2"]);
    d.stop();
}

/// `bridgekeeper weixin link` against the fake saves the account where Hermes keeps it (0600,
/// Hermes' format, the token never printed); `bridgekeeper run` without a config then starts
/// the Weixin connector from that login alone — no token in the environment, no Node — with
/// its settings from Hermes' `.env`, and a DM arrives.
#[test]
fn weixin_link_saves_the_account_and_run_uses_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake_dir = dir.path().join("fake-ilink");
    std::fs::create_dir_all(&fake_dir).unwrap();
    let ilink = FakeIlink::start(&fake_dir, 1_000);
    let home = dir.path().join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".env"),
        format!("WEIXIN_DM_POLICY=allowlist\nWEIXIN_ALLOWED_USERS={ALICE}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
        .args([
            "weixin",
            "link",
            "--timeout-secs",
            "30",
            "--base-url",
            &ilink.base_url,
        ])
        .arg("--hermes-home")
        .arg(&home)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains(&format!("linked Weixin account {}", ilink.account_id)),
        "{printed}"
    );
    assert!(!printed.contains(&ilink.token), "the token was printed");
    let file = home.join(format!("weixin/accounts/{}.json", ilink.account_id));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["token"], ilink.token.as_str());
    assert_eq!(saved["base_url"], ilink.base_url.as_str());

    let mut child = crate::support::hermes_run(&home).spawn().unwrap();
    let rx = crate::support::json_lines(child.stdout.take().unwrap());
    let wait =
        |what: &str, pred: &dyn Fn(&Value) -> bool| crate::support::next_matching(&rx, what, pred);
    wait("weixin open", &|v| {
        v["type"] == "connection" && v["connector"] == "weixin" && v["status"]["state"] == "open"
    });
    ilink.dm(BOB, "not on the list", "ctx-b");
    ilink.dm(ALICE, "from a saved login", "ctx-a");
    let m = wait("the DM", &|v| v["type"] == "inbound");
    assert_eq!(m["message"]["text"], "from a saved login");
    let stderr = crate::support::finish_run(child);
    assert!(
        stderr.contains("running weixin (a saved weixin login)"),
        "{stderr}"
    );
    assert!(!stderr.contains(&ilink.token));
}

/// An image round trip through the encrypted CDN: the gateway sends a photo (uploaded
/// AES-128-ECB encrypted; the fake decrypts it with the key the message names and finds the
/// MD5 `getuploadurl` was told), and the same item coming back inbound is fetched, decrypted
/// and written to the media dir (0600) byte for byte.
#[test]
fn an_image_round_trip_through_the_encrypted_cdn() {
    use std::os::unix::fs::PermissionsExt;
    let s = scene("policy: {dm_policy: open}");
    let mut d = s.start();
    s.ilink.dm(ALICE, "send me a picture", "ctx-alice-1");
    d.wait("the DM", |v| v["type"] == "inbound");
    let photo: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = s.dir.path().join("photo.png");
    std::fs::write(&path, &photo).unwrap();
    d.send(
        json!({"type": "send_media", "id": "m1", "connector": "weixin", "chat": ALICE,
        "path": path, "kind": "image", "caption": "here it is"}),
    );
    let r = d.result("m1");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["data"]["message_ids"].as_array().unwrap().len(), 2);
    let sent = s.ilink.sent("sendmessage");
    let caption = sent.iter().find(|v| v["text"] == "here it is").unwrap();
    assert_eq!(caption["context_token"], "ctx-alice-1");
    let image = sent
        .iter()
        .find(|v| !v["media"].as_array().unwrap().is_empty())
        .unwrap();
    assert_eq!(image["context_token"], "ctx-alice-1");
    assert_eq!(image["media"][0]["md5_ok"], true, "{image}");
    assert_eq!(image["media"][0]["size"], photo.len());

    s.ilink.inject_items(ALICE, image["items"].clone());
    let m = d.wait("the image", |v| {
        v["type"] == "inbound" && v["message"]["media"].is_object()
    });
    let media = &m["message"]["media"];
    assert_eq!(media["kind"], "image", "{m}");
    assert!(media.get("download_error").is_none(), "{m}");
    let file = std::path::PathBuf::from(media["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), photo);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Another sender's file: its own name, so Alice's is not replaced (every file was once
    // saved as `wx-<pid>-media`).
    s.ilink.dm(BOB, "mine too", "ctx-bob-1");
    d.wait("Bob's DM", |v| {
        v["type"] == "inbound" && v["message"]["text"] == "mine too"
    });
    let other: Vec<u8> = (0..3000u32).map(|i| (i * 11 % 241) as u8).collect();
    let other_path = s.dir.path().join("other.png");
    std::fs::write(&other_path, &other).unwrap();
    d.send(
        json!({"type": "send_media", "id": "m2", "connector": "weixin", "chat": BOB,
        "path": other_path, "kind": "image"}),
    );
    assert_eq!(d.result("m2")["ok"], true);
    let items = s
        .ilink
        .sent("sendmessage")
        .into_iter()
        .rfind(|v| !v["media"].as_array().unwrap().is_empty())
        .unwrap()["items"]
        .clone();
    s.ilink.inject_items(BOB, items);
    let first = media["path"].as_str().unwrap().to_owned();
    let m = d.wait("Bob's image", |v| {
        v["type"] == "inbound"
            && v["message"]["media"]["path"]
                .as_str()
                .is_some_and(|p| p != first)
    });
    let bobs = m["message"]["media"]["path"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read(&bobs).unwrap(), other);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        photo,
        "Alice's file kept its bytes"
    );
    d.stop();
}

/// Benchmark, run by `scripts/bench/weixin.sh` (ignored otherwise): in one run with WhatsApp
/// beside, inject → gateway link latency for Weixin and WhatsApp side by side (DMs
/// alternating), and a burst of 1,000 DMs queued at the fake while the connector is frozen,
/// then drained.
#[test]
#[ignore = "benchmark: scripts/bench/weixin.sh runs it"]
fn bench_weixin_beside_whatsapp() {
    use crate::support::bench::{BURST, drain, latency_side_by_side};
    use std::time::Instant;
    let s = scene_with(
        "policy: {dm_policy: open}\n    liveness: {ping_interval_ms: 0, silence_ms: 0}",
        "",
        true,
    );
    let mut d = s.start();
    d.wait("whatsapp open", |v| {
        v["type"] == "connection" && v["connector"] == "whatsapp" && v["status"]["state"] == "open"
    });
    let wa = s.whatsapp.as_ref().unwrap();
    latency_side_by_side(
        &mut d,
        "weixin",
        &[
            ("weixin", &|text| drop(s.ilink.dm(ALICE, text, "ctx-bench"))),
            ("whatsapp", &|text| drop(wa.inject_dm(WA_FRIEND, text))),
        ],
    );
    let target = nix::unistd::Pid::from_raw(d.pid("weixin"));
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP).unwrap();
    for i in 0..BURST {
        s.ilink.dm(ALICE, &format!("burst-{i}"), "ctx-burst");
    }
    let started = Instant::now();
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGCONT).unwrap();
    let drained = drain(&mut d, "burst-", BURST);
    let took = started.elapsed();
    eprintln!(
        "weixin bench: a burst of {} DMs drained in {:.2} s = {:.0} msg/s",
        drained,
        took.as_secs_f64(),
        drained as f64 / took.as_secs_f64()
    );
    d.stop();
}

/// A batch larger than the connector's stdin queue (iLink serves 100 messages at a time; the
/// queue holds 64 lines) is confirmed whole: the supervisor writes a batch's `recorded` notes
/// together, so no wait for a note runs out (the connector would say so in bridge.log).
#[test]
fn a_large_batch_is_confirmed_whole() {
    let s = scene("policy: {dm_policy: open}");
    for i in 0..250 {
        s.ilink.dm(ALICE, &format!("q{i}"), "ctx-q");
    }
    let mut d = s.start();
    let deadline = std::time::Instant::now() + PATIENCE;
    while d.inbound_texts("weixin").len() < 250 && std::time::Instant::now() < deadline {
        d.settle(std::time::Duration::from_millis(100));
    }
    assert_eq!(d.inbound_texts("weixin").len(), 250);
    d.stop();
    let log = crate::support::log_events(&s.dir.path().join("state"));
    let unconfirmed: Vec<&Value> = log
        .iter()
        .filter(|e| {
            e["line"]
                .as_str()
                .is_some_and(|l| l.contains("not confirmed recorded"))
        })
        .collect();
    assert!(unconfirmed.is_empty(), "{unconfirmed:?}");
}

/// Groups go through the group policy with Hermes' Weixin defaults: off unless
/// `WEIXIN_GROUP_POLICY` says otherwise (ignored as `group_disabled`); an allowed room is
/// answered without a mention (iLink reports none), another room is not.
#[test]
fn groups_follow_weixins_group_policy() {
    let s = scene("policy: {dm_policy: open}");
    let mut d = s.start();
    s.ilink.group("room-1", BOB, "off by default");
    // The account's own message is decided too (recorded as from_owner), never dropped unsaid.
    s.ilink.dm(&s.ilink.account_id, "our own", "ctx-own");
    s.ilink.dm(ALICE, "after the group", "ctx-a");
    d.wait("the DM", |v| v["type"] == "inbound");
    d.stop();
    let log = crate::support::log_events(&s.dir.path().join("state"));
    let reasons: Vec<&str> = crate::support::events_named(&log, "decision", "weixin")
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["group_disabled", "from_owner", "open_policy"]);

    let s =
        scene("policy: {dm_policy: open, group_policy: allowlist, group_allow_from: ['room-1']}");
    let mut d = s.start();
    s.ilink.group("room-2", BOB, "not this room");
    s.ilink.group("room-1", BOB, "this room, no mention");
    let m = d.wait("the group message", |v| v["type"] == "inbound");
    assert_eq!(m["message"]["text"], "this room, no mention");
    assert_eq!(m["message"]["chat"], "room-1");
    assert_eq!(m["message"]["is_group"], true);
    assert_eq!(d.inbound_texts("weixin"), ["this room, no mention"]);
    d.stop();
}
