//! The Hermes relay endpoint end to end with real components: the real Hermes relay client
//! (`hermes-agent==0.19.0` from PyPI, in the venv `scripts/test.sh` installs), `bridgekeeper
//! run` as a process, node-bridge with real Baileys, and the fake WhatsApp server.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::hermes::{Relay as Hermes, SECRET, token_for};
use crate::support::whatsapp::{FakeWhatsApp, node_bridge_dir};
use crate::support::{PATIENCE, connector_cmd, write_config_with};

/// A Hermes home for a gateway that keeps nothing in it.
fn unused_home() -> PathBuf {
    std::env::temp_dir().join("bk-relay-unused-hermes-home")
}

const FRIEND: &str = "15551234567";
const STRANGER: &str = "15557654321";
struct Bridgekeeper {
    child: Child,
    port: u16,
}

/// `bridgekeeper run --config CONFIG` with only the relay settings given here in its
/// environment (none inherited from the test's), stderr piped.
fn run_bridgekeeper(config: &Path, secret: Option<&str>, gateway_id: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"));
    cmd.args(["run", "--config"])
        .arg(config)
        .env_remove("GATEWAY_RELAY_SECRET")
        .env_remove("GATEWAY_RELAY_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(s) = secret {
        cmd.env("GATEWAY_RELAY_SECRET", s);
    }
    if let Some(id) = gateway_id {
        cmd.env("GATEWAY_RELAY_ID", id);
    }
    cmd.spawn().unwrap()
}

impl Bridgekeeper {
    fn start(config: &Path) -> Self {
        Self::start_for(config, Some("gw-test"))
    }

    /// `gateway_id`: the `GATEWAY_RELAY_ID` tokens must name (`None`: any).
    fn start_for(config: &Path, gateway_id: Option<&str>) -> Self {
        Self::listening(run_bridgekeeper(config, Some(SECRET), gateway_id))
    }

    /// Waits until `child` says where its relay listens.
    fn listening(mut child: Child) -> Self {
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("bridgekeeper exited before listening")
                .unwrap();
            if let Some(rest) = line.split("relay listening on http://127.0.0.1:").nth(1) {
                break rest.trim_end_matches("/relay").parse().unwrap();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, port }
    }

    /// SIGTERM, as systemd stops it; waits for the exit.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for Bridgekeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Stack {
    server: FakeWhatsApp,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Stack {
    fn new(relay: &str) -> Self {
        Self::with_policy(
            relay,
            &format!("policy: {{mode: bot, dm_policy: pairing, allow_from: ['{FRIEND}']}}"),
        )
    }

    /// `policy`: the connector's `policy:` line in the config file.
    fn with_policy(relay: &str, policy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = FakeWhatsApp::start(dir.path());
        let connector = server.node_bridge_connector(dir.path(), policy, "");
        let config = write_config_with(dir.path(), &[connector], relay);
        Self {
            server,
            config,
            dir,
        }
    }

    fn buffer_file(&self) -> PathBuf {
        self.dir.path().join("state/relay-buffer.jsonl")
    }

    /// The WhatsApp connector's ledger in `status.json`.
    fn ledger(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("state/status.json")).ok()?;
        let status: Value = serde_json::from_str(&text).ok()?;
        Some(status["connectors"][0]["ledger"].clone())
    }

    fn hermes_home(&self) -> PathBuf {
        self.dir.path().join("hermes")
    }

    /// The pairing code the fake server last accepted for `user`.
    fn code_for(&self, user: &str) -> String {
        let mut code = None;
        crate::support::wait_blocking("a pairing code", || {
            code = self
                .server
                .accepted_sends()
                .iter()
                .rev()
                .find(|(to, text)| to.starts_with(user) && text.contains("Your pairing code: "))
                .map(|(_, text)| crate::policy::code_in(text));
            code.is_some()
        });
        code.unwrap()
    }

    fn dotenv(&self) -> String {
        std::fs::read_to_string(self.hermes_home().join(".env")).unwrap_or_default()
    }

    fn bridgekeeper_cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const RELAY: &str = "relay: {listen: '127.0.0.1:0'}";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The upgrade request a gateway sends to the relay on `port`.
pub(crate) fn ws_request(
    port: u16,
    gateway: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}/relay")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", token_for(gateway)).parse().unwrap(),
    );
    req
}

async fn ws_dial(port: u16, gateway: &str) -> Ws {
    tokio_tungstenite::connect_async(ws_request(port, gateway))
        .await
        .unwrap()
        .0
}
const STRANGER_TWO: &str = "15550002222";
/// In the `.env` allowlist from the start.
const LISTED: &str = "15559990000";

/// Hermes declares its relevance policy (its own `send_relay_policy()`, from a config.yaml
/// bridgekeeper does not read): stored, applied as the lowest source, shown by `config
/// --explain` with its origin, and picked up by the running daemon.
#[test]
fn the_gateways_relevance_policy_is_applied_below_our_own_settings() {
    let s = Stack::new(RELAY);
    let bk = Bridgekeeper::start(&s.config);
    let gateway_home = s.dir.path().join("gateway-home");
    std::fs::create_dir_all(&gateway_home).unwrap();
    std::fs::write(
        gateway_home.join("config.yaml"),
        "whatsapp:\n  require_mention: true\n  free_response_channels: ['120363000000000000@g.us']\n",
    )
    .unwrap();
    let mut h = Hermes::start(bk.port, SECRET, &gateway_home, "whatsapp");
    connect(&mut h);
    h.cmd(json!({"cmd": "send_policy"}));
    assert_eq!(h.wait("policy", |_| true)["declared"], true);
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(s.dir.path().join("state/relay-policy.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["whatsapp"]["requireAddress"], true, "{stored}");
    assert_eq!(stored["whatsapp"]["gateway"], "gw-test");

    let explained = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
        .args(["config", "--explain", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let explained = String::from_utf8_lossy(&explained.stdout);
    let line = explained
        .lines()
        .find(|l| l.trim_start().starts_with("require_mention"))
        .unwrap();
    assert!(
        line.contains("true") && line.contains("relay gateway's policy"),
        "{explained}"
    );

    // The daemon takes it from the next message on, and says so.
    s.server.inject_dm(FRIEND, "after the policy");
    h.wait("message", |v| v["text"] == "after the policy");
    // (require_mention is on by default, so the free-response group is what changes.)
    crate::support::wait_blocking("policy_reloaded in bridge.log", || {
        std::fs::read_to_string(s.dir.path().join("state/bridge.log"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("policy_reloaded") && l.contains("free_response_chats"))
    });
    bk.stop();
}

/// Hermes' own `PairingStore` and bridgekeeper's pairing commands work on the same files while
/// the daemon runs, both keep the `.env` allowlist mirror, and the daemon follows every change
/// from the next message on: an approval lets the user in, a revoke (by either tool) shuts them
/// out, without a restart.
#[test]
fn pairing_by_hermes_or_bridgekeeper_takes_effect_at_once_and_keeps_the_allowlist_mirror() {
    let s = Stack::with_policy(RELAY, "policy: {mode: bot, dm_policy: pairing}");
    let home = s.hermes_home();
    std::fs::write(
        home.join(".env"),
        "WHATSAPP_ALLOWED_USERS=15559990000
",
    )
    .unwrap();
    let bk = Bridgekeeper::start(&s.config);
    let mut h = Hermes::start(bk.port, SECRET, &home, "whatsapp");
    connect(&mut h);
    let pairing = |h: &mut Hermes, op: &str, arg: &str| -> Value {
        h.cmd(json!({"cmd": "pairing", "op": op, "platform": "whatsapp", "arg": arg}));
        let v = h.wait("pairing", |v| v["op"] == op);
        h.seen.retain(|e| e["event"] != "pairing");
        v["result"].clone()
    };

    // Hermes approves the code bridgekeeper sent; the mirror puts the user in the allowlist.
    s.server.inject_dm(STRANGER, "hello?");
    let code = s.code_for(STRANGER);
    let approved = pairing(&mut h, "approve", &code);
    assert!(
        approved.is_object(),
        "Hermes did not accept the code: {approved}"
    );
    assert!(s.dotenv().contains(STRANGER), "{}", s.dotenv());
    s.server.inject_dm(STRANGER, "approved by hermes");
    h.wait("message", |v| v["text"] == "approved by hermes");

    // Hermes revokes: approval and mirror gone; the next DM is not delivered.
    let user_id = approved["user_id"].as_str().unwrap().to_owned();
    assert_eq!(pairing(&mut h, "revoke", &user_id), json!(true));
    assert!(!s.dotenv().contains(STRANGER), "{}", s.dotenv());
    // One connector decides in order: once the allowlisted marker is through, the DM before
    // it was decided too.
    s.server.inject_dm(STRANGER, "revoked by hermes");
    s.server.inject_dm(LISTED, "marker one");
    h.wait("message", |v| v["text"] == "marker one");
    assert_eq!(h.messages_with("revoked by hermes"), 0);

    // bridgekeeper approves (lower case, spaces), Hermes sees it, and the mirror is the same.
    s.server.inject_dm(STRANGER_TWO, "me too");
    let code = s.code_for(STRANGER_TWO).to_lowercase();
    let spaced = format!("{} {}", &code[..4], &code[4..]);
    let said = s.bridgekeeper_cli(&["pairing", "approve", "whatsapp", &spaced]);
    assert!(
        said.contains("also added to WHATSAPP_ALLOWED_USERS"),
        "{said}"
    );
    assert_eq!(pairing(&mut h, "is_approved", STRANGER_TWO), json!(true));
    assert!(s.dotenv().contains(STRANGER_TWO));
    s.server.inject_dm(STRANGER_TWO, "approved by bridgekeeper");
    h.wait("message", |v| v["text"] == "approved by bridgekeeper");

    // bridgekeeper revokes: Hermes no longer finds the approval, and the DM stays out.
    let said = s.bridgekeeper_cli(&["pairing", "revoke", "whatsapp", STRANGER_TWO]);
    assert!(
        said.contains("also removed from WHATSAPP_ALLOWED_USERS"),
        "{said}"
    );
    assert_eq!(pairing(&mut h, "is_approved", STRANGER_TWO), json!(false));
    assert_eq!(s.dotenv(), format!("WHATSAPP_ALLOWED_USERS={LISTED}\n"));
    s.server.inject_dm(STRANGER_TWO, "revoked by bridgekeeper");
    s.server.inject_dm(LISTED, "marker two");
    h.wait("message", |v| v["text"] == "marker two");
    assert_eq!(h.messages_with("revoked by bridgekeeper"), 0);
    // A text editor: FRIEND added to the allowlist counts from the next DM, and so does the
    // removal.
    std::fs::write(
        home.join(".env"),
        format!("WHATSAPP_ALLOWED_USERS={LISTED},{FRIEND}\n"),
    )
    .unwrap();
    s.server.inject_dm(FRIEND, "added by an editor");
    h.wait("message", |v| v["text"] == "added by an editor");
    std::fs::write(
        home.join(".env"),
        format!("WHATSAPP_ALLOWED_USERS={LISTED}\n"),
    )
    .unwrap();
    s.server.inject_dm(FRIEND, "removed by an editor");
    s.server.inject_dm(LISTED, "marker three");
    h.wait("message", |v| v["text"] == "marker three");
    assert_eq!(h.messages_with("removed by an editor"), 0);

    // Each change of the allowlist was logged with where the new value came from.
    let log = std::fs::read_to_string(s.dir.path().join("state/bridge.log")).unwrap_or_default();
    assert!(
        log.contains("policy_reloaded"),
        "no policy_reloaded in bridge.log"
    );
    bk.stop();
}

fn connect(h: &mut Hermes) -> Value {
    h.cmd(json!({"cmd": "connect"}));
    let v = h.wait("connected", |_| true);
    v["descriptor"].clone()
}

#[test]
fn the_real_hermes_client_gets_allowed_dms_never_a_strangers_and_its_reply_reaches_whatsapp() {
    let s = Stack::new(RELAY);
    let bk = Bridgekeeper::start(&s.config);
    let mut h = Hermes::start(bk.port, SECRET, &unused_home(), "whatsapp");
    let d = connect(&mut h);
    assert_eq!(d["platform"], "whatsapp");
    assert_eq!(d["max_message_length"], 4096);

    s.server.inject_dm(STRANGER, "let me in");
    s.server.inject_dm(FRIEND, "hello over the relay");
    let m = h.wait("message", |v| v["text"] == "hello over the relay");
    assert_eq!(m["platform"], "whatsapp");
    assert_eq!(m["chat_type"], "dm");
    assert_eq!(m["chat_id"], format!("{FRIEND}@s.whatsapp.net"));
    let chat = m["chat_id"].as_str().unwrap().to_owned();
    // The stranger's DM was decided first (one connector, in order): it never arrives.
    h.settle(Duration::from_millis(500));
    assert_eq!(h.messages_with("let me in"), 0, "{:?}", h.seen);
    assert_eq!(h.messages_with("hello over the relay"), 1);

    h.cmd(json!({"cmd": "send", "chat_id": chat, "text": "hello from hermes"}));
    let sent = h.wait("sent", |_| true);
    assert_eq!(sent["success"], true, "{sent}");
    assert!(sent["message_id"].as_str().is_some_and(|id| !id.is_empty()));
    crate::support::wait_blocking("the fake server to record the reply", || {
        s.server
            .accepted_sends()
            .iter()
            .any(|(to, text)| to.starts_with(FRIEND) && text == "hello from hermes")
    });
    // The stranger got a pairing code from bridgekeeper, not from Hermes.
    assert!(
        s.server
            .accepted_sends()
            .iter()
            .any(|(to, _)| to.starts_with(STRANGER)),
        "no pairing code sent"
    );

    h.cmd(json!({"cmd": "chat_info", "chat_id": chat}));
    let info = h.wait("chat_info", |_| true);
    assert_eq!(info["info"]["type"], "dm", "{info}");

    // `status` names the gateway, since when, its last ack and the buffer depth.
    let mut shown = String::new();
    crate::support::wait_blocking("status to show the gateway's ack", || {
        shown = s.bridgekeeper_cli(&["status"]);
        shown.contains("gateway gw-test [whatsapp] connected since")
            && !shown.contains("last ack -")
    });
    assert!(
        shown.contains("relay: 0 of 10000 buffered, 1 acked"),
        "{shown}"
    );
    bk.stop();
}

#[test]
fn bad_expired_and_browser_upgrades_are_refused() {
    let s = Stack::new(RELAY);
    let bk = Bridgekeeper::start(&s.config);
    let mut h = Hermes::start(bk.port, SECRET, &unused_home(), "whatsapp");
    h.cmd(json!({"cmd": "dial", "ttl": 300}));
    assert_eq!(h.wait("dial", |_| true)["status"], 101);
    h.cmd(json!({"cmd": "dial", "ttl": -10}));
    assert_eq!(h.wait("dial", |v| v["status"] != 101)["status"], 401);
    h.cmd(json!({"cmd": "dial", "ttl": 300, "origin": "https://evil.example"}));
    assert_eq!(h.wait("dial", |v| v["status"] == 403)["status"], 403);

    let mut wrong = Hermes::start(bk.port, "not-the-secret", &unused_home(), "whatsapp");
    wrong.cmd(json!({"cmd": "dial", "ttl": 300}));
    assert_eq!(wrong.wait("dial", |_| true)["status"], 401);
    wrong.cmd(json!({"cmd": "connect"}));
    let failed = wrong.wait("connect_failed", |_| true);
    assert!(
        failed["error"].as_str().unwrap().contains("401"),
        "{failed}"
    );
    bk.stop();
    crate::support::assert_secret_nowhere(SECRET, &s.dir.path().join("state"), &[]);
}

#[test]
fn a_dm_that_arrives_while_hermes_is_away_is_delivered_once_when_it_is_back() {
    let s = Stack::new(RELAY);
    let bk = Bridgekeeper::start(&s.config);
    let mut h = Hermes::start(bk.port, SECRET, &unused_home(), "whatsapp");
    connect(&mut h);
    h.cmd(json!({"cmd": "disconnect"}));
    h.wait("disconnected", |_| true);
    drop(h);

    s.server.inject_dm(FRIEND, "while you were away");
    crate::support::wait_blocking("the DM to wait in the relay buffer", || {
        std::fs::read_to_string(s.buffer_file())
            .unwrap_or_default()
            .contains("while you were away")
    });
    // The ledger: let in, not yet delivered.
    crate::support::wait_blocking("the ledger to show it awaiting an ack", || {
        s.ledger()
            .is_some_and(|l| l["awaiting_ack"] == 1 && l["delivered"] == 0)
    });
    let mut h = Hermes::start(bk.port, SECRET, &unused_home(), "whatsapp");
    connect(&mut h);
    h.wait("message", |v| v["text"] == "while you were away");
    h.settle(Duration::from_secs(1));
    assert_eq!(h.messages_with("while you were away"), 1);
    // Acked: nothing waits any more, and it counts as delivered.
    crate::support::wait_blocking("the buffer to empty after the ack", || {
        std::fs::read_to_string(s.buffer_file()).is_ok_and(|t| t.is_empty())
    });
    crate::support::wait_blocking("the ledger to count it delivered", || {
        s.ledger().is_some_and(|l| {
            l["delivered"] == 1 && l.get("awaiting_ack").is_none() && l["received"] == 1
        })
    });
    bk.stop();
}

#[test]
fn unacked_messages_survive_a_bridgekeeper_restart() {
    let s = Stack::new(RELAY);
    let bk = Bridgekeeper::start(&s.config);
    s.server.inject_dm(FRIEND, "kept across a restart");
    crate::support::wait_blocking("the DM to wait in the relay buffer", || {
        std::fs::read_to_string(s.buffer_file())
            .unwrap_or_default()
            .contains("kept across a restart")
    });
    bk.stop();

    let bk = Bridgekeeper::start(&s.config);
    let mut h = Hermes::start(bk.port, SECRET, &unused_home(), "whatsapp");
    connect(&mut h);
    h.wait("message", |v| v["text"] == "kept across a restart");
    h.settle(Duration::from_secs(1));
    assert_eq!(h.messages_with("kept across a restart"), 1);
    // Received in the first run, so it is in that run's ledger; this run's stays balanced.
    crate::support::wait_blocking("the status to show the ack", || {
        s.bridgekeeper_cli(&["status"]).contains("1 acked")
    });
    let ledger = s.ledger().unwrap();
    assert_eq!(
        (&ledger["received"], &ledger["delivered"]),
        (&json!(0), &json!(0)),
        "{ledger}"
    );
    bk.stop();
}

// ---- the frame contract, with a plain WebSocket client and the fake connector --------------

mod contract {
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message;

    use super::Bridgekeeper;
    use crate::support::{FAKE, connector_cmd, write_config_with};

    use super::Ws;

    use super::{token_for, ws_dial};

    fn token() -> String {
        token_for("gw-test")
    }

    async fn dial_as(port: u16, gateway: &str) -> Ws {
        ws_dial(port, gateway).await
    }

    async fn dial(port: u16) -> Ws {
        ws_dial(port, "gw-test").await
    }

    /// A socket that said hello for WhatsApp, and the descriptor it got.
    async fn hello_whatsapp(
        port: u16,
        queue: &mut std::collections::VecDeque<Value>,
    ) -> (Ws, Value) {
        let mut ws = dial(port).await;
        send(
            &mut ws,
            r#"{"type":"hello","platform":"whatsapp","botId":"b"}"#,
        )
        .await;
        let d = next(&mut ws, queue).await.unwrap();
        (ws, d)
    }

    async fn send(ws: &mut Ws, frame: &str) {
        ws.send(Message::text(format!("{frame}\n"))).await.unwrap();
    }

    /// The next frame (a text message may carry several lines), or the close code.
    async fn next(
        ws: &mut Ws,
        queue: &mut std::collections::VecDeque<Value>,
    ) -> Result<Value, u16> {
        loop {
            if let Some(v) = queue.pop_front() {
                return Ok(v);
            }
            let msg = tokio::time::timeout(crate::support::PATIENCE, ws.next())
                .await
                .expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    assert!(t.ends_with('\n'), "frames end in a newline: {t:?}");
                    for line in t.lines().filter(|l| !l.is_empty()) {
                        queue.push_back(serde_json::from_str(line).unwrap());
                    }
                }
                Some(Ok(Message::Close(Some(f)))) => return Err(f.code.into()),
                Some(Ok(Message::Close(None))) | None => return Err(0),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("{e}"),
            }
        }
    }

    /// Media over the relay's HTTP side, as gateways after 0.19.0 use it: an inbound file's URL
    /// points at `/relay/media/<id>` on the address the gateway dialled and serves the file to
    /// the socket's token only; an upload gets an id a `send_media` names, which reaches the
    /// connector as that file. Refused: no token (401, before the body), an id this relay did
    /// not issue (404), a body over 25 MiB (413, from its head), a `source_url` elsewhere
    /// (never fetched).
    #[tokio::test]
    async fn media_go_both_ways_through_relay_media_to_the_token_only() {
        use crate::support::http::request;
        let dir = tempfile::tempdir().unwrap();
        let inbound = dir.path().join("inbound.jsonl");
        let commands = dir.path().join("commands.jsonl");
        let photo = dir.path().join("tg-1-photo.jpg");
        std::fs::write(&photo, b"\xff\xd8 a jpeg, as far as anyone here knows").unwrap();
        let connector = connector_cmd(
            "whatsapp",
            FAKE,
            &[
                "--inbound-file",
                inbound.to_str().unwrap(),
                "--command-log",
                commands.to_str().unwrap(),
            ],
            "",
        );
        let config = write_config_with(dir.path(), &[connector], super::RELAY);
        let bk = Bridgekeeper::start_for(&config, None);
        let port = bk.port;
        let addr = format!("127.0.0.1:{port}");
        let bearer = format!("Bearer {}", token());
        let auth = [("Authorization", bearer.as_str())];

        let mut q = Default::default();
        let (mut ws, d) = hello_whatsapp(port, &mut q).await;
        let ops = d["descriptor"]["supported_ops"].as_array().unwrap().clone();
        assert!(ops.contains(&json!("send_media")), "{d}");
        crate::support::append_json(
            &inbound,
            &json!({"sender": "15551234567@s.whatsapp.net", "text": "see",
                "media": {"kind": "image", "mime": "image/jpeg", "path": photo, "size": 41}}),
        );
        let frame = loop {
            let v = next(&mut ws, &mut q).await.unwrap();
            if v["type"] == "inbound" {
                break v;
            }
        };
        let url = frame["event"]["media_urls"][0].as_str().unwrap().to_owned();
        let prefix = format!("http://{addr}/relay/media/");
        assert!(url.starts_with(&prefix), "{frame}");
        assert_eq!(frame["event"]["media"][0]["url"], url.as_str());
        assert_eq!(frame["event"]["media"][0]["mime"], "image/jpeg");
        let path = url.trim_start_matches(&format!("http://{addr}"));
        let got = request(&addr, "GET", path, Some(&addr), &auth, None);
        assert_eq!(got.status, 200, "{}", got.body);
        assert!(got.body.contains("a jpeg, as far as anyone here knows"));
        assert!(
            got.head
                .to_lowercase()
                .contains("filename=\"tg-1-photo.jpg\"")
        );
        assert_eq!(
            request(&addr, "GET", path, Some(&addr), &[], None).status,
            401
        );
        let forged = format!("/relay/media/{}.00", "L2V0Yy9zaGFkb3c");
        assert_eq!(
            request(&addr, "GET", &forged, Some(&addr), &auth, None).status,
            404
        );

        // An upload, named by a send_media.
        let mut headers = auth.to_vec();
        headers.extend([
            ("X-Media-Filename", "chart.png"),
            ("Content-Type", "application/octet-stream"),
        ]);
        let up = request(
            &addr,
            "POST",
            "/relay/media",
            Some(&addr),
            &headers,
            Some("PNG bytes"),
        );
        assert_eq!(up.status, 200, "{}", up.body);
        let id = up.json()["id"].as_str().unwrap().to_owned();
        assert_eq!(up.json()["size"], 9);
        let source = format!("http://{addr}/relay/media/{id}");
        send(
            &mut ws,
            &json!({"type": "outbound", "requestId": "m1", "action": {
            "op": "send_media", "chat_id": "15551234567@s.whatsapp.net", "media_kind": "image",
            "source_url": source, "content": "the chart", "filename": "chart.png",
            "reply_to": null, "metadata": {}}})
            .to_string(),
        )
        .await;
        let sent = loop {
            let v = next(&mut ws, &mut q).await.unwrap();
            if v["type"] == "outbound_result" {
                break v;
            }
        };
        assert_eq!(sent["result"]["success"], true, "{sent}");
        let logged = std::fs::read_to_string(&commands).unwrap();
        let line = logged.lines().find(|l| l.contains("send_media")).unwrap();
        let written: Value = serde_json::from_str(line).unwrap();
        let file = written["path"].as_str().unwrap();
        assert_eq!(std::fs::read(file).unwrap(), b"PNG bytes");
        assert_eq!(
            (written["kind"].as_str(), written["caption"].as_str()),
            (Some("image"), Some("the chart"))
        );

        send(
            &mut ws,
            &json!({"type": "outbound", "requestId": "m2", "action": {
            "op": "send_media", "chat_id": "15551234567@s.whatsapp.net", "media_kind": "image",
            "source_url": "https://example.com/cat.png", "content": ""}})
            .to_string(),
        )
        .await;
        let refused = loop {
            let v = next(&mut ws, &mut q).await.unwrap();
            if v["type"] == "outbound_result" {
                break v;
            }
        };
        assert_eq!(refused["result"]["success"], false);
        assert!(
            refused["result"]["error"]
                .as_str()
                .unwrap()
                .starts_with("source_url_not_allowed")
        );

        // Refused before the body: no token, and a body that says it is too large.
        assert_eq!(
            request(&addr, "POST", "/relay/media", Some(&addr), &[], Some("x")).status,
            401
        );
        let big = format!(
            "POST /relay/media HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {bearer}\r\nContent-Length: {}\r\n\r\n",
            26 * 1024 * 1024
        );
        assert_eq!(crate::support::attack::answer_to_head(&addr, &big), 413);
        drop(bk);
    }

    /// Every frame, error and close code: malformed, unknown, oversized, unsupported ops, a
    /// second owner, an unknown platform, and a gateway that never acks (the message comes
    /// again under the same buffer id, and stops once acked).
    #[tokio::test]
    async fn every_frame_error_and_close_code() {
        let dir = tempfile::tempdir().unwrap();
        let connector = connector_cmd("whatsapp", FAKE, &["--emit", "1"], "");
        let config = write_config_with(
            dir.path(),
            &[connector],
            "relay: {listen: '127.0.0.1:0', ack_timeout_ms: 700, max_frame_bytes: 4096}",
        );
        let bk = Bridgekeeper::start_for(&config, None);
        let port = bk.port;

        // No token: refused before the upgrade.
        let err = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/relay"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");

        let mut q = Default::default();
        let (mut ws, d) = hello_whatsapp(port, &mut q).await;
        assert_eq!(d["type"], "descriptor");
        assert_eq!(d["descriptor"]["contract_version"], 1);

        // The message emitted before anyone connected arrives with a buffer id …
        let first = next(&mut ws, &mut q).await.unwrap();
        assert_eq!(first["type"], "inbound", "{first}");
        let buffer_id = first["bufferId"].as_str().unwrap().to_owned();
        assert_eq!(first["event"]["source"]["platform"], "whatsapp");
        // … and, never acked, again after the ack timeout, under the same id.
        let again = next(&mut ws, &mut q).await.unwrap();
        assert_eq!(again["bufferId"], buffer_id.as_str());

        for (frame, code) in [
            ("{", "invalid_frame"),
            (r#"{"type":"teleport"}"#, "unknown_type"),
            (r#"{"type":"inbound_ack"}"#, "invalid_frame"),
            ("[]", "invalid_frame"),
        ] {
            send(&mut ws, frame).await;
            let e = loop {
                let v = next(&mut ws, &mut q).await.unwrap();
                if v["type"] != "inbound" {
                    break v;
                }
            };
            assert_eq!(
                (e["type"].as_str(), e["code"].as_str()),
                (Some("error"), Some(code)),
                "{frame}: {e}"
            );
        }
        send(
            &mut ws,
            &format!(r#"{{"type":"inbound_ack","bufferId":"{buffer_id}"}}"#),
        )
        .await;

        // Outbound: an unknown type with a request id still gets its one result.
        let mut results = std::collections::HashMap::new();
        send(&mut ws, r#"{"type":"teleport","requestId":"r0"}"#).await;
        send(&mut ws, r#"{"type":"outbound","requestId":"r1","action":{"op":"follow_up","chat_id":"c@s.whatsapp.net"}}"#).await;
        send(
            &mut ws,
            r#"{"type":"outbound","requestId":"r2","action":{"op":"send","content":"no chat"}}"#,
        )
        .await;
        send(&mut ws, r#"{"type":"outbound","requestId":"r3","action":{"op":"send","chat_id":"15551234567@s.whatsapp.net","content":"hi"}}"#).await;
        send(&mut ws, r#"{"type":"interrupt","session_key":"k"}"#).await;
        let mut interrupt_acked = false;
        while results.len() < 4 || !interrupt_acked {
            let v = next(&mut ws, &mut q).await.unwrap();
            match v["type"].as_str() {
                Some("outbound_result") => {
                    results.insert(
                        v["requestId"].as_str().unwrap().to_owned(),
                        v["result"].clone(),
                    );
                }
                Some("interrupt_ack") => interrupt_acked = true,
                Some("inbound") => panic!("acked message sent again: {v}"),
                _ => {}
            }
        }
        assert_eq!(results["r0"]["success"], false);
        assert_eq!(
            results["r1"],
            json!({"success": false, "error": "unsupported", "op": "follow_up"})
        );
        assert!(
            results["r2"]["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid_action")
        );
        assert_eq!(results["r3"]["success"], true, "{}", results["r3"]);
        assert_eq!(results["r3"]["status"], "written");

        // Another gateway for the same platform: refused, one owner.
        let mut q2 = Default::default();
        let mut second = dial_as(port, "gw-other").await;
        send(&mut second, r#"{"type":"hello","platform":"whatsapp"}"#).await;
        assert_eq!(next(&mut second, &mut q2).await, Err(4409));

        // A platform bridgekeeper does not run: an error frame, then the close.
        let mut q3 = Default::default();
        let mut third = dial(port).await;
        send(&mut third, r#"{"type":"hello","platform":"irc"}"#).await;
        let e = next(&mut third, &mut q3).await.unwrap();
        assert_eq!(e["code"], "unknown_platform");
        assert_eq!(next(&mut third, &mut q3).await, Err(4404));

        send(&mut ws, r#"{"type":"going_idle"}"#).await;
        assert_eq!(
            next(&mut ws, &mut q).await.unwrap()["type"],
            "going_idle_ack"
        );

        // POST /relay/policy: every bad request gets its status and a typed error.
        let addr = format!("127.0.0.1:{port}");
        let bearer = format!("Bearer {}", token());
        let post = |headers: &[(&str, &str)], body: &str| {
            crate::support::http::request(
                &addr,
                "POST",
                "/relay/policy",
                Some("x"),
                headers,
                Some(body),
            )
        };
        let auth = [("Authorization", bearer.as_str())];
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, u16, &'a str);
        let cases: [Case; 6] = [
            (&[], r#"{"platform":"whatsapp"}"#, 401, "missing_token"),
            (
                &[
                    ("Authorization", bearer.as_str()),
                    ("Content-Type", "text/plain"),
                ],
                "{}",
                415,
                "not_json",
            ),
            (&auth, "{", 400, "invalid_policy"),
            (&auth, r#"{"platform":"irc"}"#, 400, "invalid_policy"),
            (
                &auth,
                r#"{"platform":"whatsapp","requireAddress":"yes"}"#,
                400,
                "invalid_policy",
            ),
            (
                &[
                    ("Authorization", bearer.as_str()),
                    ("Origin", "https://evil.example"),
                ],
                "{}",
                403,
                "browser_origin",
            ),
        ];
        for (headers, body, status, error) in cases {
            let r = post(headers, body);
            assert_eq!(
                (r.status, r.json()["error"].as_str()),
                (status, Some(error)),
                "{body}"
            );
        }
        let ok = post(
            &auth,
            r#"{"platform":"whatsapp","requireAddress":true,"allowOtherBots":true}"#,
        );
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(ok.json()["not_applied"], json!(["allowOtherBots"]));

        // The same gateway again (a restart, a half-open socket): the new socket takes the
        // platform over and the old one is closed with 4408.
        let mut q4 = Default::default();
        let mut again = dial(port).await;
        send(&mut again, r#"{"type":"hello","platform":"whatsapp"}"#).await;
        assert_eq!(
            next(&mut again, &mut q4).await.unwrap()["type"],
            "descriptor"
        );
        assert_eq!(next(&mut ws, &mut q).await, Err(4408));

        // Oversized: a frame past max_frame_bytes closes the socket with 1009.
        again.send(Message::text("x".repeat(8192))).await.unwrap();
        assert_eq!(next(&mut again, &mut q4).await, Err(1009));
        bk.stop();
    }
}

/// Benchmark, run by `scripts/bench/relay.sh` (ignored otherwise): 20,000 delivered messages
/// waiting in the relay buffer while no gateway is connected (bridgekeeper's RSS then, beside
/// idle), then a WebSocket client that says hello and acks each: the drain rate with acks.
#[tokio::test]
#[ignore = "benchmark: scripts/bench/relay.sh runs it"]
async fn bench_relay_buffer_and_drain_with_acks() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const N: usize = 20_000;
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let connector = connector_cmd(
        "whatsapp",
        crate::support::FAKE,
        &["--emit", &N.to_string(), "--text-bytes", "100"],
        "",
    );
    let idle_dir = tempfile::tempdir().unwrap();
    let idle_config = write_config_with(
        idle_dir.path(),
        &[connector_cmd("whatsapp", crate::support::FAKE, &[], "")],
        "relay: {listen: '127.0.0.1:0'}",
    );
    let idle = Bridgekeeper::start(&idle_config);
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = rss(idle.child.id());
    idle.stop();

    let config = write_config_with(
        dir.path(),
        &[connector],
        "relay: {listen: '127.0.0.1:0', buffer: 30000}",
    );
    let bk = Bridgekeeper::start(&config);
    let buffer = dir.path().join("state/relay-buffer.jsonl");
    crate::support::wait_blocking("every message in the buffer", || {
        std::fs::read_to_string(&buffer).is_ok_and(|t| t.lines().count() >= N)
    });
    let buffered_rss = rss(bk.child.id());

    let (mut sink, mut stream) = ws_dial(bk.port, "gw-test").await.split();
    let started = Instant::now();
    sink.send(Message::text(
        "{\"type\":\"hello\",\"platform\":\"whatsapp\"}\n",
    ))
    .await
    .unwrap();
    let mut received = std::collections::HashSet::new();
    while received.len() < N {
        let Some(Ok(Message::Text(t))) = stream.next().await else {
            panic!("socket ended")
        };
        let mut acks = String::new();
        for line in t.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["type"] == "inbound" {
                received.insert(v["event"]["message_id"].as_str().unwrap().to_owned());
                acks.push_str(&format!(
                    "{{\"type\":\"inbound_ack\",\"bufferId\":{}}}\n",
                    v["bufferId"]
                ));
            }
        }
        if !acks.is_empty() {
            sink.send(Message::text(acks)).await.unwrap();
        }
    }
    crate::support::wait_blocking("the buffer to empty", || {
        std::fs::read_to_string(&buffer).is_ok_and(|t| t.is_empty())
    });
    let took = started.elapsed();
    eprintln!(
        "relay bench: {N} buffered; RSS idle {idle_rss} kB, with {N} buffered {buffered_rss} kB; drained with acks in {:.3}s = {:.0} msg/s",
        took.as_secs_f64(),
        N as f64 / took.as_secs_f64()
    );
    bk.stop();
}

/// Injects a warm-up DM and then `n` more, each once the previous one arrived (after
/// `pause(i)`), and returns each one's milliseconds from the inject call to its arrival on `rx`.
fn time_dms(
    server: &crate::support::whatsapp::FakeWhatsApp,
    rx: &mpsc::Receiver<(String, Instant)>,
    n: usize,
    pause: impl Fn(usize) -> Duration,
) -> Vec<f64> {
    server.inject_dm(FRIEND, "warm-up");
    rx.recv_timeout(Duration::from_secs(60)).expect("warm-up");
    let mut ms = Vec::new();
    for i in 0..n {
        std::thread::sleep(pause(i));
        let text = format!("lat-{i}");
        let t0 = Instant::now();
        server.inject_dm(FRIEND, &text);
        loop {
            let (got, at) = rx.recv_timeout(PATIENCE).expect("the DM in time");
            if got == text {
                ms.push(at.duration_since(t0).as_secs_f64() * 1e3);
                break;
            }
        }
    }
    ms
}

/// Benchmark, run by `scripts/bench/relay.sh`: the added latency from the fake WhatsApp server
/// to the gateway, the same DMs through three gateways in one run: the stdio link (a reader of
/// bridgekeeper's stdout), the relay (a WebSocket client that acks), and the drop-in HTTP API
/// polled once a second as Hermes' adapter does. Each DM is injected only after the previous
/// one arrived, at staggered offsets so the polling phase is sampled evenly.
#[tokio::test]
#[ignore = "benchmark: scripts/bench/relay.sh runs it"]
async fn bench_latency_relay_vs_stdio_vs_polling() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const N: usize = 200;
    const N_POLLED: usize = 30;

    fn stats(name: &str, mut ms: Vec<f64>) -> (f64, f64) {
        let (p50, p99) = crate::support::percentiles(&mut ms);
        eprintln!(
            "latency bench: {name}: n={} p50 {p50:.2} ms p99 {p99:.2} ms",
            ms.len()
        );
        (p50, p99)
    }
    let stagger = |i: usize| Duration::from_millis((i as u64 * 37) % 100);

    // 1. The stdio link.
    let stdio = {
        let s = Stack::new("");
        let mut child = Command::new(env!("CARGO_BIN_EXE_bridgekeeper"))
            .args(["run", "--config"])
            .arg(&s.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel::<(String, Instant)>();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                let v: Value = serde_json::from_str(&line).unwrap_or_default();
                if v["type"] == "inbound" {
                    let text = v["message"]["text"].as_str().unwrap_or_default().to_owned();
                    let _ = tx.send((text, at));
                }
            }
        });
        let ms = time_dms(&s.server, &rx, N, stagger);
        drop(child.stdin.take());
        let _ = child.wait();
        stats("stdio link", ms)
    };

    // 2. The relay.
    let relay = {
        let s = Stack::new(RELAY);
        let bk = Bridgekeeper::start(&s.config);
        let (mut sink, mut stream) = ws_dial(bk.port, "gw-test").await.split();
        sink.send(Message::text(
            "{\"type\":\"hello\",\"platform\":\"whatsapp\"}\n",
        ))
        .await
        .unwrap();
        let (tx, rx) = mpsc::channel::<(String, Instant)>();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = stream.next().await {
                let at = Instant::now();
                let mut acks = String::new();
                for line in t.lines() {
                    let v: Value = serde_json::from_str(line).unwrap_or_default();
                    if v["type"] == "inbound" {
                        let text = v["event"]["text"].as_str().unwrap_or_default().to_owned();
                        let _ = tx.send((text, at));
                        acks.push_str(&format!(
                            "{{\"type\":\"inbound_ack\",\"bufferId\":{}}}\n",
                            v["bufferId"]
                        ));
                    }
                }
                if !acks.is_empty() && sink.send(Message::text(acks)).await.is_err() {
                    break;
                }
            }
        });
        let ms = tokio::task::spawn_blocking(move || {
            let ms = time_dms(&s.server, &rx, N, stagger);
            bk.stop();
            ms
        })
        .await
        .unwrap();
        stats("relay", ms)
    };

    // 3. The drop-in API, polled every second like Hermes' adapter.
    let polled = tokio::task::spawn_blocking(|| {
        let dir = tempfile::tempdir().unwrap();
        let server = crate::support::whatsapp::FakeWhatsApp::start(dir.path());
        let hermes = dir.path().join("hermes");
        let session = hermes.join("platforms/whatsapp/session");
        server.seed_session(&session);
        std::fs::write(
            hermes.join(".env"),
            format!("WHATSAPP_DM_POLICY=allowlist\nWHATSAPP_ALLOWED_USERS={FRIEND}\n"),
        )
        .unwrap();
        let mut bridge = Command::new("node")
            .arg(node_bridge_dir().join("legacy-bridge.js"))
            .args(["--port", "0", "--mode", "bot", "--session"])
            .arg(&session)
            .env("HERMES_HOME", &hermes)
            .env("BRIDGEKEEPER_BIN", env!("CARGO_BIN_EXE_bridgekeeper"))
            .env("WHATSAPP_WEB_SOCKET_URL", &server.ws_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(bridge.stderr.take().unwrap()).lines();
        let port: u16 = loop {
            let line = lines.next().expect("listening").unwrap();
            if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                break rest.trim().parse().unwrap();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        let addr = format!("127.0.0.1:{port}");
        let (tx, rx) = mpsc::channel::<(String, Instant)>();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let polling = {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = crate::support::http::request(
                        &addr,
                        "GET",
                        "/messages",
                        Some("127.0.0.1"),
                        &[],
                        None,
                    );
                    let at = Instant::now();
                    if let Some(list) = serde_json::from_str::<Value>(&r.body)
                        .ok()
                        .and_then(|v| v.as_array().cloned())
                    {
                        for m in list {
                            let text = m["body"].as_str().unwrap_or_default().to_owned();
                            let _ = tx.send((text, at));
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        let ms = time_dms(&server, &rx, N_POLLED, |i| {
            Duration::from_millis((i as u64 * 337) % 1000)
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = polling.join();
        let _ = bridge.kill();
        let _ = bridge.wait();
        ms
    })
    .await
    .unwrap();
    let polled = stats("drop-in polled every 1 s", polled);
    eprintln!(
        "latency bench: relay − stdio: p50 {:+.2} ms, p99 {:+.2} ms; polled − stdio: p50 {:+.0} ms",
        relay.0 - stdio.0,
        relay.1 - stdio.1,
        polled.0 - stdio.0
    );
}

/// Without a secret the relay refuses to start, and says how to give it one; unauthenticated
/// mode is refused off loopback, and allowed on loopback with a warning in the log.
#[test]
fn the_relay_will_not_start_unprotected() {
    let dir = tempfile::tempdir().unwrap();
    let connector = connector_cmd("whatsapp", crate::support::FAKE, &[], "");
    let run = |top: &str, secret: Option<&str>| {
        let config = write_config_with(dir.path(), std::slice::from_ref(&connector), top);
        run_bridgekeeper(&config, secret, None)
    };
    let out = run(RELAY, None).wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("GATEWAY_RELAY_SECRET"), "{said}");

    let out = run("relay: {listen: '0.0.0.0:0', insecure_no_auth: true}", None)
        .wait_with_output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("only allowed on a loopback address"),
        "{said}"
    );

    // A secret file readable by others is refused too.
    let secret_file = dir.path().join("relay.secret");
    std::fs::write(&secret_file, "s3cret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(
        &format!("relay: {{listen: '127.0.0.1:0', secret_file: {secret_file:?}}}"),
        None,
    )
    .wait_with_output()
    .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("chmod 600"), "{said}");

    let mut child = run(
        "relay: {listen: '127.0.0.1:0', insecure_no_auth: true}",
        None,
    );
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("relay listening"))),
        "insecure loopback mode starts"
    );
    crate::support::wait_blocking("the insecure warning in bridge.log", || {
        std::fs::read_to_string(dir.path().join("state/bridge.log"))
            .is_ok_and(|l| l.contains("relay_insecure"))
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// The real client stays up while bridgekeeper restarts (same address): its own reconnect,
/// with backoff, brings it back, and the next DM arrives without anything done on its side.
#[test]
fn the_hermes_client_reconnects_by_itself_after_a_bridgekeeper_restart() {
    let s = Stack::new(RELAY);
    let bk = Bridgekeeper::start(&s.config);
    let port = bk.port;
    let mut h = Hermes::start(port, SECRET, &unused_home(), "whatsapp");
    connect(&mut h);
    bk.stop();
    // The same port this time, as a service restart would have it.
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        text.replace("127.0.0.1:0", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let bk = Bridgekeeper::start(&s.config);
    assert_eq!(bk.port, port);
    crate::support::wait_blocking("Hermes to be connected again", || {
        s.bridgekeeper_cli(&["status"])
            .contains("gateway gw-test [whatsapp]")
    });
    s.server.inject_dm(FRIEND, "after the restart");
    h.wait("message", |v| v["text"] == "after the restart");
    bk.stop();
}

/// A secret removed from `$HERMES_HOME/.env` while a gateway is connected: its socket is closed
/// with 4401 (Hermes reads that as "revoked"). A gateway after 0.19.0 dials once more with a
/// fresh token signed with the old secret and latches "revoked" only on a 4401 there: that dial
/// is upgraded and closed with 4401, not refused with HTTP 401 (which it would retry for ever).
/// An expired token of the old secret, or one of a secret never in force, stays an HTTP 401.
#[tokio::test]
async fn a_revoked_secret_closes_the_socket_with_4401() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let connector = connector_cmd("whatsapp", crate::support::FAKE, &[], "");
    let config = write_config_with(dir.path(), &[connector], RELAY);
    let dotenv = dir.path().join("hermes/.env");
    std::fs::write(&dotenv, format!("GATEWAY_RELAY_SECRET={SECRET}\n")).unwrap();
    let bk = Bridgekeeper::listening(run_bridgekeeper(&config, None, None));
    let port = bk.port;
    let mut ws = ws_dial(port, "gw").await;
    ws.send(Message::text(
        "{\"type\":\"hello\",\"platform\":\"whatsapp\"}\n",
    ))
    .await
    .unwrap();
    std::fs::write(&dotenv, "GATEWAY_RELAY_SECRET=a-new-secret\n").unwrap();
    let code = loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 4401);
    let (mut again, _) = tokio_tungstenite::connect_async(ws_request(port, "gw"))
        .await
        .expect("the re-dial is upgraded");
    let frame = loop {
        match tokio::time::timeout(PATIENCE, again.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (4401, "relay secret revoked")
    );
    let dial_with = |secret: &str, exp: u64| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let secret = bridgekeeper::relay::auth::Secret::new(secret).unwrap();
        let token = bridgekeeper::relay::auth::make("gw", &secret, exp);
        let mut req = format!("ws://127.0.0.1:{port}/relay")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    let now = bridgekeeper::util::time::unix_secs() as u64;
    for (secret, exp) in [(SECRET, now - 10), ("never-in-force-secret", now + 300)] {
        let refused = dial_with(secret, exp).await.unwrap_err();
        assert!(refused.to_string().contains("401"), "{refused}");
    }
    // The new secret works.
    let (_ok, _) = dial_with("a-new-secret", now + 300).await.unwrap();
    drop(bk);
}

/// No gateway for a long time and the buffer full: each message that does not fit is failed
/// `relay_buffer_full` in the ledger, with an alert, never silently dropped.
#[test]
fn a_full_relay_buffer_fails_messages_with_a_reason_and_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let connector = connector_cmd("whatsapp", crate::support::FAKE, &["--emit", "5"], "");
    let config = write_config_with(
        dir.path(),
        &[connector],
        "relay: {listen: '127.0.0.1:0', buffer: 2}",
    );
    let bk = Bridgekeeper::start(&config);
    let status = dir.path().join("state/status.json");
    crate::support::wait_blocking("the ledger to account for all five", || {
        let Ok(text) = std::fs::read_to_string(&status) else {
            return false;
        };
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let l = &v["connectors"][0]["ledger"];
        l["received"] == 5 && l["awaiting_ack"] == 2 && l["failed"]["relay_buffer_full"] == 3
    });
    crate::support::wait_blocking("the alert", || {
        std::fs::read_to_string(dir.path().join("state/bridge.log"))
            .is_ok_and(|l| l.contains("\"code\":\"relay_buffer_full\""))
    });
    bk.stop();
}
