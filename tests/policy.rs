//! The access policy end to end: the daemon with a fake WhatsApp connector, Hermes files in a
//! temporary HERMES_HOME, and the real CLI for pairing and `config --explain`. Each test is one
//! of the situations users of the old bridge ran into.

use std::path::PathBuf;
use std::process::Command;

use bridge_protocol::gateway::GatewayEvent;
use bridge_protocol::message::{Command as ConnectorCmd, ConnectorCommand};
use bridgekeeper::record::board::ConnectorStatus;
use serde_json::{Value, json};

use crate::support::{BRIDGEKEEPER, TestDaemon, connector, events_named, wait_for};

const ME: &str = "15550001111";
const STRANGER: &str = "15557654321@s.whatsapp.net";

struct Scene {
    d: TestDaemon,
    inbound: PathBuf,
    commands: PathBuf,
    hermes: PathBuf,
}

impl Scene {
    /// A connector named `whatsapp`; `policy` is its `policy:` line (`policy: {}` = none, so the
    /// Hermes files decide); `top` is extra top-level config; `hermes` writes Hermes files.
    async fn start(policy: &str, top: &str, hermes: &[(&str, &str)]) -> Self {
        let files = tempfile::tempdir().unwrap().keep();
        let inbound = files.join("inbound.jsonl");
        let commands = files.join("commands.jsonl");
        std::fs::write(&inbound, "").unwrap();
        let account = format!("{ME}:111222333444555");
        let args = [
            "--inbound-file",
            inbound.to_str().unwrap(),
            "--command-log",
            commands.to_str().unwrap(),
            "--account",
            &account,
        ];
        let hermes_files: Vec<(String, String)> = hermes
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let d = TestDaemon::start_full(
            &[connector("whatsapp", &args, policy)],
            top,
            64 * 1024,
            |home| {
                for (name, text) in hermes_files {
                    std::fs::write(home.join(name), text).unwrap();
                }
            },
        )
        .await;
        let hermes = d.dir.path().join("hermes");
        let mut scene = Self {
            d,
            inbound,
            commands,
            hermes,
        };
        scene.wait_running().await;
        scene
    }

    async fn wait_running(&mut self) {
        self.d
            .wait_state(
                "whatsapp",
                bridge_protocol::gateway::ConnectorStateName::Running,
            )
            .await;
    }

    fn inject(&self, event: Value) {
        crate::support::append_json(&self.inbound, &event);
    }

    /// Waits until the ledger has seen `n` messages, and returns the connector's status.
    async fn decided(&mut self, n: u64) -> ConnectorStatus {
        loop {
            let status = self.d.status().await.connectors.remove(0);
            assert_eq!(status.ledger.unaccounted(), 0, "{:?}", status.ledger);
            if status.ledger.received >= n {
                assert_eq!(status.ledger.received, n);
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Texts the connector was told to send, with their chats.
    fn sent(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.commands)
            .unwrap_or_default()
            .lines()
            .filter_map(
                |l| match serde_json::from_str::<ConnectorCommand>(l).ok()?.command {
                    ConnectorCmd::SendText(s) => Some((s.chat, s.text)),
                    _ => None,
                },
            )
            .collect()
    }

    async fn wait_sent(&self, n: usize) -> Vec<(String, String)> {
        wait_for(&format!("{n} sends"), || self.sent().len() >= n).await;
        self.sent()
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BRIDGEKEEPER)
            .args(args)
            .arg("--hermes-home")
            .arg(&self.hermes)
            .env_remove("HERMES_HOME")
            .output()
            .unwrap()
    }

    fn alerts(&self, code: &str) -> usize {
        self.d
            .seen
            .iter()
            .filter(|e| matches!(e, GatewayEvent::Alert { code: c, .. } if c == code))
            .count()
    }
}

/// The code in a pairing message: "Your pairing code: ABCD 2345".
pub(crate) fn code_in(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("Your pairing code: "))
        .expect("a code line");
    line["Your pairing code: ".len()..].replace(' ', "")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

// 1. Default mode: a stranger's DM is ignored with a reason, the operator is told once how to
//    switch modes, and the stranger receives nothing.
#[tokio::test]
async fn a_stranger_in_self_chat_mode_is_ignored_and_the_operator_told_once() {
    let mut s = Scene::start("policy: {}", "", &[]).await;
    s.inject(json!({"sender": STRANGER}));
    s.inject(json!({"sender": "15559990000@s.whatsapp.net"}));
    s.inject(
        json!({"sender": format!("{ME}@s.whatsapp.net"), "from_me": true, "text": "note to self"}),
    );
    let status = s.decided(3).await;
    assert_eq!(
        status.ledger.ignored.get("self_chat_mode_rejects_non_self"),
        Some(&2)
    );
    assert_eq!(status.ledger.delivered, 1, "the own chat is served");
    s.d.wait_event("the explanation", |e| matches!(e, GatewayEvent::Alert { code, .. } if code == "self_chat_mode_ignored_message")).await;
    let _ = s.d.status().await;
    assert_eq!(s.alerts("self_chat_mode_ignored_message"), 1);
    let GatewayEvent::Alert { message, .. } =
        s.d.seen
            .iter()
            .find(|e| matches!(e, GatewayEvent::Alert { .. }))
            .unwrap()
    else {
        unreachable!()
    };
    assert!(
        message.contains("WHATSAPP_MODE=bot") && message.contains("…4321"),
        "{message}"
    );
    assert!(
        s.sent().is_empty(),
        "nothing may be sent to a stranger: {:?}",
        s.sent()
    );
    s.d.stop().await;
    let log = s.d.log();
    let reasons: Vec<&str> = events_named(&log, "decision", "whatsapp")
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "self_chat_mode_rejects_non_self",
            "self_chat_mode_rejects_non_self",
            "self_chat"
        ]
    );
}

// 2. Bot mode with `dm_policy: pairing` set only in config.yaml: a stranger receives a code.
#[tokio::test]
async fn dm_policy_pairing_from_config_yaml_sends_a_stranger_a_code() {
    let mut s = Scene::start(
        "policy: {}",
        "",
        &[
            (".env", "WHATSAPP_MODE=bot\n"),
            (
                "config.yaml",
                "platforms:\n  whatsapp:\n    dm_policy: pairing\n",
            ),
        ],
    )
    .await;
    s.inject(json!({"sender": STRANGER, "push_name": "Stranger"}));
    let status = s.decided(1).await;
    assert_eq!((status.ledger.paired, status.ledger.delivered), (1, 0));
    let sent = s.wait_sent(1).await;
    assert_eq!(sent[0].0, STRANGER);
    let code = code_in(&sent[0].1);
    assert!(
        sent[0]
            .1
            .contains(&format!("bridgekeeper pairing approve whatsapp {code}"))
    );
    let pending =
        std::fs::read_to_string(s.hermes.join("platforms/pairing/whatsapp-pending.json")).unwrap();
    assert!(
        pending.contains("15557654321") && !pending.contains(&code),
        "stored hashed: {pending}"
    );
    s.d.stop().await;
}

// 3. `dm_policy: pairing` plus `WHATSAPP_ALLOWED_USERS=*`: still a code, not access; and
//    `config --explain` warns about the contradiction.
#[tokio::test]
async fn a_star_allowlist_does_not_bypass_pairing_and_explain_warns() {
    let hermes = [
        (".env", "WHATSAPP_MODE=bot\nWHATSAPP_ALLOWED_USERS=*\n"),
        (
            "config.yaml",
            "platforms:\n  whatsapp:\n    dm_policy: pairing\n",
        ),
    ];
    let mut s = Scene::start("policy: {}", "", &hermes).await;
    s.inject(json!({"sender": STRANGER}));
    let status = s.decided(1).await;
    assert_eq!((status.ledger.paired, status.ledger.delivered), (1, 0));
    assert_eq!(s.wait_sent(1).await[0].0, STRANGER);

    let out = s.cli(&["config", "--explain"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("dm_policy") && text.contains("config.yaml (platforms.whatsapp.dm_policy)"),
        "{text}"
    );
    assert!(text.contains("warning: dm_policy is pairing"), "{text}");
    assert!(text.contains("(WHATSAPP_ALLOWED_USERS)"), "{text}");
    s.d.stop().await;
    assert_eq!(
        s.d.log()
            .iter()
            .filter(|e| e["event"] == "config_warning")
            .count(),
        1
    );
}

// 4. The code — lower case, with spaces — approves the user while the daemon runs; five wrong
//    codes lock the platform and `approve` says so.
#[tokio::test]
async fn the_sent_code_approves_in_any_case_and_wrong_codes_lock() {
    let mut s = Scene::start("policy: {mode: bot, dm_policy: pairing}", "", &[]).await;
    s.inject(json!({"sender": STRANGER}));
    s.decided(1).await;
    let code = code_in(&s.wait_sent(1).await[0].1);
    // The gateway hears of the request, to tell its owner.
    let requested =
        s.d.wait_event("pairing_requested", |e| {
            matches!(e, GatewayEvent::PairingRequested { .. })
        })
        .await;
    let GatewayEvent::PairingRequested {
        user, request_id, ..
    } = requested
    else {
        unreachable!()
    };
    assert_eq!(user, "15557654321");
    assert!(!request_id.is_empty());
    let typed = format!("{} {}", code[..4].to_lowercase(), code[4..].to_lowercase());
    let out = s.cli(&["pairing", "approve", "whatsapp", &typed]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("approved 15557654321"));
    // The daemon sees the approval without a restart.
    s.inject(json!({"sender": STRANGER, "text": "now?"}));
    let status = s.decided(2).await;
    assert_eq!(status.ledger.delivered, 1);

    // Another stranger; `pairing list` shows what approves them.
    s.inject(json!({"sender": "15552223333@s.whatsapp.net"}));
    s.decided(3).await;
    let listed = stdout(&s.cli(&["pairing", "list", "whatsapp"]));
    assert!(listed.contains("15552223333"), "{listed}");
    for attempt in 1..=5 {
        let out = s.cli(&["pairing", "approve", "whatsapp", "WRONG234"]);
        assert!(!out.status.success());
        let text = stdout(&out);
        if attempt < 5 {
            assert!(text.contains("no pending request"), "{text}");
        } else {
            assert!(text.contains("locked"), "{text}");
        }
    }
    let id = listed
        .lines()
        .find(|l| l.contains("15552223333"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let locked = s.cli(&["pairing", "approve", "whatsapp", &id]);
    assert!(
        !locked.status.success() && stdout(&locked).contains("locked"),
        "{}",
        stdout(&locked)
    );
    assert!(stdout(&s.cli(&["pairing", "list"])).contains("LOCKED"));
    s.d.stop().await;
    let logged = events_named(&s.d.log(), "pairing_requested", "whatsapp")
        .into_iter()
        .map(|e| e["user"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(logged, vec!["…4321", "…3333"], "masked in bridge.log");
}

// 5. After `revoke`, the user's next DM gets a fresh code at once, and no old code approves.
#[tokio::test]
async fn after_revoke_a_fresh_code_comes_at_once_and_old_codes_are_dead() {
    let mut s = Scene::start("policy: {mode: bot, dm_policy: pairing}", "", &[]).await;
    s.inject(json!({"sender": STRANGER}));
    s.decided(1).await;
    let first = code_in(&s.wait_sent(1).await[0].1);
    assert!(
        s.cli(&["pairing", "approve", "whatsapp", &first])
            .status
            .success()
    );
    let out = s.cli(&["pairing", "revoke", "whatsapp", "+1 555 765 4321"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("approval removed"),
        "{}",
        stdout(&out)
    );
    s.inject(json!({"sender": STRANGER, "text": "again"}));
    let status = s.decided(2).await;
    assert_eq!(
        (status.ledger.paired, status.ledger.delivered),
        (2, 0),
        "a fresh code, within the old 10-minute window"
    );
    let second = code_in(&s.wait_sent(2).await[1].1);
    assert_ne!(first, second);
    let reuse = s.cli(&["pairing", "approve", "whatsapp", &first]);
    assert!(!reuse.status.success(), "{}", stdout(&reuse));
    assert!(
        s.cli(&["pairing", "approve", "whatsapp", &second])
            .status
            .success()
    );
    s.d.stop().await;
}

// 6. A sender known only by LID matches a phone-number allowlist once the mapping is known,
//    and through the alternate id on first contact.
#[tokio::test]
async fn lid_senders_match_a_phone_allowlist() {
    let mut s = Scene::start(
        "policy: {mode: bot, dm_policy: allowlist, allow_from: ['+1 555 123 4567', '15553334444']}",
        "",
        &[],
    )
    .await;
    s.inject(json!({"sender": "98765432109876@lid", "text": "before the mapping"}));
    s.inject(json!({"type": "lid_mapping", "lid": "98765432109876@lid", "phone": "15551234567@s.whatsapp.net"}));
    s.inject(json!({"sender": "98765432109876:4@lid", "text": "after the mapping"}));
    s.inject(json!({"sender": "55555555555555@lid", "sender_alt": "15553334444@s.whatsapp.net"}));
    let status = s.decided(3).await;
    assert_eq!(status.ledger.delivered, 2);
    assert_eq!(status.ledger.ignored.get("allowlist_mismatch"), Some(&1));
    let delivered: Vec<String> =
        s.d.seen
            .iter()
            .filter_map(|e| match e {
                GatewayEvent::Inbound { message, .. } => Some(message.text.clone().unwrap()),
                _ => None,
            })
            .collect();
    s.d.stop().await;
    assert!(
        delivered.contains(&"after the mapping".to_owned()),
        "{delivered:?}"
    );
}

// 7. An internal alert, with a send policy that denies WhatsApp direct chats, never reaches the
//    connector; without an operator target it goes only to the log and the gateway link.
#[tokio::test]
async fn alerts_go_only_to_operator_targets_the_send_policy_allows() {
    let target =
        "operator_targets:\n  - {connector: whatsapp, chat: '15550002222@s.whatsapp.net'}\n";
    let deny = "send_policy:\n  rules:\n    - {action: deny, platform: whatsapp, chat_type: direct, kinds: [alert]}\n";

    // Denied by the send policy.
    let mut s = Scene::start("policy: {}", &format!("{target}{deny}"), &[]).await;
    s.inject(json!({"sender": STRANGER}));
    s.decided(1).await;
    s.d.wait_event("alert", |e| matches!(e, GatewayEvent::Alert { .. }))
        .await;
    s.d.stop().await;
    assert!(s.sent().is_empty(), "{:?}", s.sent());
    let log = s.d.log();
    let denied = events_named(&log, "outbound_denied", "whatsapp");
    assert_eq!(
        (
            denied.len(),
            denied[0]["kind"].as_str(),
            denied[0]["rule"].as_u64()
        ),
        (1, Some("alert"), Some(0))
    );

    // No operator target: the log and the gateway link only — not the chat that spoke last.
    let mut s = Scene::start("policy: {}", "", &[]).await;
    s.inject(json!({"sender": STRANGER}));
    s.decided(1).await;
    s.d.wait_event("alert", |e| matches!(e, GatewayEvent::Alert { .. }))
        .await;
    s.d.stop().await;
    assert!(s.sent().is_empty(), "{:?}", s.sent());
    assert_eq!(events_named(&s.d.log(), "alert", "whatsapp").len(), 1);

    // The control: an allowed operator target does receive it.
    let mut s = Scene::start("policy: {}", target, &[]).await;
    s.inject(json!({"sender": STRANGER}));
    s.decided(1).await;
    let sent = s.wait_sent(1).await;
    assert_eq!(sent[0].0, "15550002222@s.whatsapp.net");
    assert!(
        sent[0]
            .1
            .starts_with("[bridgekeeper] whatsapp: A message from …4321"),
        "{}",
        sent[0].1
    );
    s.d.stop().await;
}

// Invariant 1 under a random stream: every message ends in exactly one recorded decision.
#[tokio::test]
async fn a_random_stream_keeps_the_ledger_balanced() {
    let mut s = Scene::start(
        "policy: {mode: bot, dm_policy: pairing, group_policy: open, allow_from: ['15551234567']}",
        "",
        &[],
    )
    .await;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let chats = [
        STRANGER,
        "15551234567@s.whatsapp.net",
        "98765432109876@lid",
        "120363000000000001@g.us",
        "status@broadcast",
        "1234@newsletter",
        "15550001111@s.whatsapp.net",
    ];
    const N: u64 = 300;
    for i in 0..N {
        let chat = chats[(next() % chats.len() as u64) as usize];
        let mut m = json!({
            "chat": chat,
            "sender": if chat.ends_with("@g.us") { STRANGER } else { chat },
            "from_me": next() % 5 == 0,
            "text": if next() % 6 == 0 { "" } else { "hi" },
        });
        if next() % 4 == 0 {
            m["id"] = json!(format!("dup-{}", next() % 10)); // repeats: duplicates
        } else {
            m["id"] = json!(format!("r-{i}"));
        }
        if next() % 3 == 0 {
            m["mentions"] = json!(["15550001111@s.whatsapp.net"]);
        }
        s.inject(m);
    }
    let status = s.decided(N).await;
    let l = &status.ledger;
    assert!(
        l.delivered > 0 && l.ignored_total() > 0 && l.paired > 0,
        "{l:?}"
    );
    assert!(l.ignored.contains_key("duplicate"), "{l:?}");
    s.d.stop().await;
    assert_eq!(
        events_named(&s.d.log(), "decision", "whatsapp").len() as u64,
        N
    );
}

// The gateway can manage pairing over its link, with the same rules as the CLI.
#[tokio::test]
async fn the_gateway_manages_pairing_over_its_link() {
    let mut s = Scene::start("policy: {mode: bot, dm_policy: pairing}", "", &[]).await;
    s.inject(json!({"sender": STRANGER, "push_name": "Ana"}));
    s.decided(1).await;
    let code = code_in(&s.wait_sent(1).await[0].1);
    let list =
        s.d.request(json!({"type": "pairing_list", "platform": "whatsapp"}))
            .await;
    let pending = &list.data.unwrap()["platforms"][0]["pending"];
    assert_eq!(pending[0]["user_name"], "Ana");
    let wrong =
        s.d.request(json!({"type": "pairing_approve", "platform": "whatsapp", "code": "WRONG234"}))
            .await;
    assert_eq!(wrong.error.unwrap().code, "pairing_no_match");
    let ok =
        s.d.request(
            json!({"type": "pairing_approve", "platform": "whatsapp", "code": code.to_lowercase()}),
        )
        .await;
    assert_eq!(ok.data.unwrap()["user_id"], "15557654321");
    let revoked =
        s.d.request(json!({"type": "pairing_revoke", "platform": "whatsapp", "user": STRANGER}))
            .await;
    assert_eq!(revoked.data.unwrap()["was_approved"], true);
    s.d.stop().await;
}

// A corrupt pending-pairing file must not lock out people who are already in: approved users
// and the allowlist are still delivered; a stranger fails closed (no code, failed, an alert).
#[tokio::test]
async fn a_corrupt_pending_file_keeps_approved_and_allowlisted_users_in() {
    let mut s = Scene::start(
        "policy: {mode: bot, dm_policy: pairing, allow_from: [\"15553334444\"]}",
        "",
        &[],
    )
    .await;
    s.inject(json!({"sender": STRANGER}));
    s.decided(1).await;
    let code = code_in(&s.wait_sent(1).await[0].1);
    let out = s.cli(&["pairing", "approve", "whatsapp", &code]);
    assert!(out.status.success(), "{}", stdout(&out));
    let pending = s.hermes.join("platforms/pairing/whatsapp-pending.json");
    std::fs::write(&pending, "{\"broken\": ").unwrap();

    s.inject(json!({"id": "A1", "sender": STRANGER, "text": "approved"}));
    s.inject(json!({"id": "A2", "sender": "15553334444@s.whatsapp.net", "text": "allowlisted"}));
    s.inject(json!({"id": "A3", "sender": "15559998888@s.whatsapp.net", "text": "stranger"}));
    let status = s.decided(4).await;
    assert_eq!(status.ledger.delivered, 2, "{:?}", status.ledger);
    assert_eq!(
        status.ledger.failed.get("pairing_store_error"),
        Some(&1),
        "{:?}",
        status.ledger
    );
    assert_eq!(s.sent().len(), 1, "no code for the new stranger");
    assert!(s.alerts("pairing_store_error") >= 1);
    s.d.stop().await;
    let delivered: Vec<String> = s.d.inbound_ids();
    assert_eq!(delivered, vec!["A1", "A2"]);
}
