//! One conformance suite, run by every connector against its fake. What is true of every
//! connector is written once, here; what a case needs of a platform (how its fake takes a
//! DM, what it recorded as sent, which Hermes settings turn it on) is that platform's file
//! beside this one, an implementation of `Platform`. Every case runs `bridgekeeper run` as a
//! process with the connector under it, and ends by checking that its ledger balances and
//! that no secret is in any file the run wrote or in anything it printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::Daemon;
use crate::support::{BRIDGEKEEPER, wait_blocking};

/// The suite's cases as tests of the module it is written in, for one `Platform`.
macro_rules! conformance {
    ($platform:ty) => {
        #[test]
        fn an_allowed_dm_is_delivered_once_and_its_reply_goes_out() {
            super::an_allowed_dm_is_delivered_once_and_its_reply_goes_out::<$platform>();
        }
        #[test]
        fn a_stranger_is_let_in_only_by_the_operator() {
            super::a_stranger_is_let_in_only_by_the_operator::<$platform>();
        }
        #[test]
        fn killed_mid_burst_each_message_arrives_once() {
            super::killed_mid_burst_each_message_arrives_once::<$platform>();
        }
        #[test]
        fn the_hermes_relay_client_fronts_it() {
            super::the_hermes_relay_client_fronts_it::<$platform>();
        }
        #[test]
        fn a_newer_relay_gateway_gets_every_op_it_is_offered() {
            super::a_newer_relay_gateway_gets_every_op_it_is_offered::<$platform>();
        }
        #[test]
        fn run_without_a_config_starts_it_from_hermes_settings_only() {
            super::run_without_a_config_starts_it_from_hermes_settings_only::<$platform>();
        }
        #[test]
        fn the_hermes_gateway_answers_through_the_plugin() {
            super::the_hermes_gateway_answers_through_the_plugin::<$platform>();
        }
        #[test]
        fn doctor_says_what_is_wrong_without_printing_secrets() {
            super::doctor_says_what_is_wrong_without_printing_secrets::<$platform>();
        }
    };
}

mod telegram;
mod webhook;
mod wecom;
mod wecom_callback;
mod weixin;
mod whatsapp;

/// A platform's connector and its fake, as the suite drives them.
pub trait Platform: Sized + Sync {
    /// The connector's name, the platform's as Hermes spells it.
    const NAME: &'static str;
    /// Whether the platform sends again what the connector did not confirm (an update offset,
    /// a cursor, an answer to its POST): then a kill loses nothing even of what was in flight.
    /// Without (a socket that only pushes), what was on the wire when the process died is the
    /// platform's to lose, and the burst waits while the connector is down.
    const REDELIVERS: bool;
    /// Whether a stranger is sent a pairing code (a chat) rather than refused (a webhook).
    const PAIRS: bool = true;
    /// A user, as an allowlist names them, and a stranger.
    const ALLOWED: &'static str;
    const STRANGER: &'static str;
    /// Why `run` without a config starts it, as it says: `running <name> (<why>)`.
    const STARTED_BECAUSE: &'static str;
    /// What `doctor` says of right settings, and of the wrong one `doctor_settings` writes.
    const DOCTOR_RIGHT: &'static str;
    const DOCTOR_WRONG: &'static str;

    /// Starts the fake, its files in `dir`.
    fn start(dir: &Path) -> Self;
    /// The `connectors:` entry running the connector against the fake; `policy` is what goes
    /// inside its `policy:` map.
    fn entry(&self, dir: &Path, policy: &str) -> String;
    /// The environment the run needs besides: its secrets (a config holds none).
    fn env(&self) -> Vec<(&'static str, String)>;
    /// A DM from `from` to the account; `open` is the connector's `connection` event (a
    /// receiver's names the URL its platform posts to).
    fn dm(&self, open: &Value, from: &str, text: &str);
    /// Whether `text` went out to `chat`; `state` is the run's state directory.
    fn sent(&self, state: &Path, chat: &str, text: &str) -> bool;
    /// The pairing code the fake recorded as sent to `user`, if any yet.
    fn code_sent_to(&self, user: &str) -> Option<String>;
    /// What must be in no file and no output.
    fn secrets(&self) -> Vec<String>;
    /// Writes into Hermes' home `home` the settings that turn the connector on (letting
    /// `allowed` in); the environment the run needs besides (where the fake is).
    fn hermes_settings(&self, home: &Path) -> Vec<(&'static str, String)>;
    /// Settings for `doctor` in `home`: right ones, or with one wrong; its environment.
    fn doctor_settings(&self, home: &Path, right: bool) -> Vec<(&'static str, String)>;
    /// What Hermes itself needs, beyond what bridgekeeper reads, to turn the platform on in its
    /// gateway (WhatsApp's `WHATSAPP_ENABLED`).
    fn hermes_gateway_env(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Whether the fake ends the platform connection after some ops a real network takes; an
    /// op that then finds it closed is tried again once the connector is back.
    const FAKE_DROPS_CONNECTION: bool = false;
    /// Whether `send_media`'s `result` shows the file reached the platform. By default, the
    /// result's `success`; a fake with no media host can say what it can check instead.
    fn media_sent(&self, _state: &Path, result: &Value) -> bool {
        result["success"] == true
    }
    /// After the connector was killed, before the rest of a burst goes to a platform that
    /// does not send again: by default, until it is connected again.
    fn after_kill(&self, d: &mut Daemon) {
        d.opened(Self::NAME, 2);
    }
}

/// A platform's fake and a config running its connector.
struct Stage<P> {
    p: P,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl<P: Platform> Stage<P> {
    fn new(policy: &str) -> Self {
        Self::with(policy, "")
    }

    /// `top`: more top-level config (a `relay:` section).
    fn with(policy: &str, top: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake");
        std::fs::create_dir_all(&fake).unwrap();
        let p = P::start(&fake);
        let entry = p.entry(dir.path(), policy);
        let config = crate::support::write_config_with(dir.path(), &[entry], top);
        Self { p, config, dir }
    }

    /// A run whose policy lets the allowed user in and pairs strangers.
    fn allowlisted(top: &str) -> Self {
        Self::with(
            &format!("dm_policy: pairing, allow_from: ['{}']", P::ALLOWED),
            top,
        )
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The run, once the connection is open; and its `connection` event.
    fn run(&self) -> (Daemon, Value) {
        let env = self.p.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut d = Daemon::start(&self.config, &env);
        let open = d.opened(P::NAME, 1);
        (d, open)
    }

    /// Ends the run: its ledger balances, and no secret is in what it wrote or `printed`.
    fn finish(&self, mut d: Daemon, printed: &[&str]) {
        d.send(json!({"type": "status", "id": "finish"}));
        let status = d.result("finish");
        let c = crate::support::status_connector(&status["data"], P::NAME);
        crate::support::assert_ledger_balanced(&c["ledger"]);
        let (out, err) = d.stop();
        let mut printed = printed.to_vec();
        printed.extend([out.as_str(), err.as_str()]);
        for secret in self.p.secrets() {
            crate::support::assert_secret_nowhere(&secret, &self.state(), &printed);
        }
    }

    fn approve(&self, code: &str) {
        let out = std::process::Command::new(BRIDGEKEEPER)
            .args(["pairing", "approve", P::NAME, code, "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

/// The pairing code in the first of `texts` that carries one.
fn code_in(texts: &[String]) -> Option<String> {
    texts
        .iter()
        .find(|t| t.contains("Your pairing code: "))
        .map(|t| crate::policy::code_in(t))
}

fn inbound<'a>(d: &'a mut Daemon, text: &'a str) -> Value {
    d.wait(text, |v| {
        v["type"] == "inbound" && v["message"]["text"] == text
    })
}

/// An allowed user's DM reaches the gateway once; the reply to it goes out and its result is
/// true.
pub fn an_allowed_dm_is_delivered_once_and_its_reply_goes_out<P: Platform>() {
    let s = Stage::<P>::allowlisted("");
    let (mut d, open) = s.run();
    s.p.dm(&open, P::ALLOWED, "hello there");
    let m = inbound(&mut d, "hello there");
    assert_eq!(m["connector"], P::NAME);
    d.settle(Duration::from_secs(1));
    assert_eq!(d.inbound_texts(P::NAME), ["hello there"], "once");
    let chat = m["message"]["chat"].as_str().unwrap().to_owned();
    d.send(
        json!({"type": "send_text", "id": "reply", "connector": P::NAME, "chat": chat,
        "text": "hello back", "reply_to": m["message"]["id"]}),
    );
    let r = d.result("reply");
    assert_eq!(r["ok"], true, "{r}");
    wait_blocking("the reply to go out", || {
        s.p.sent(&s.state(), &chat, "hello back")
    });
    s.finish(d, &[]);
}

/// A stranger's DM never reaches the gateway. On a chat platform they are sent a pairing code,
/// and once the operator approves it (typed in lower case with a space), their next DM is
/// delivered; a webhook's stranger (a forged signature) is refused.
pub fn a_stranger_is_let_in_only_by_the_operator<P: Platform>() {
    let s = Stage::<P>::allowlisted("");
    let (mut d, open) = s.run();
    let stranger = P::STRANGER;
    s.p.dm(&open, stranger, "who are you?");
    if P::PAIRS {
        let mut code = None;
        wait_blocking("a pairing code", || {
            code = s.p.code_sent_to(stranger);
            code.is_some()
        });
        let code = code.unwrap().to_lowercase();
        s.approve(&format!("{} {}", &code[..4], &code[4..]));
        s.p.dm(&open, stranger, "now paired");
        inbound(&mut d, "now paired");
    }
    d.settle(Duration::from_millis(500));
    let texts = d.inbound_texts(P::NAME);
    assert!(!texts.contains(&"who are you?".to_owned()), "{texts:?}");
    s.finish(d, &[]);
}

/// The connector SIGKILLed in the middle of 30 DMs: after its restart each reaches the
/// gateway exactly once (what was not recorded is sent again; what was is not repeated).
pub fn killed_mid_burst_each_message_arrives_once<P: Platform>() {
    const N: usize = 30;
    let s = Stage::<P>::new("dm_policy: open");
    let (mut d, open) = s.run();
    let pid = d.pid(P::NAME);
    let dm = |i: usize| s.p.dm(&open, P::ALLOWED, &format!("m{i}"));
    let delivered = |d: &mut Daemon, n: usize| {
        wait_blocking(&format!("{n} delivered"), || {
            d.settle(Duration::from_millis(20));
            d.inbound_texts(P::NAME).len() >= n
        })
    };
    let kill = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap()
    };
    if P::REDELIVERS {
        std::thread::scope(|scope| {
            let poster = scope.spawn(|| {
                for i in 0..N {
                    dm(i);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            delivered(&mut d, 10);
            kill();
            poster.join().unwrap();
        });
    } else {
        (0..N / 3).for_each(dm);
        delivered(&mut d, N / 3);
        kill();
        s.p.after_kill(&mut d);
        (N / 3..N).for_each(dm);
    }
    delivered(&mut d, N);
    d.settle(Duration::from_secs(1));
    crate::support::assert_each_once(d.inbound_texts(P::NAME), N);
    assert!(d.starts() >= 2, "the connector was killed and restarted");
    s.finish(d, &[]);
}

/// The unmodified Hermes relay client fronting the platform: the DM arrives tagged with it,
/// and the gateway's reply goes out through the connector.
pub fn the_hermes_relay_client_fronts_it<P: Platform>() {
    let s = Stage::<P>::allowlisted("relay: {listen: '127.0.0.1:0'}");
    let (d, open) = s.run();
    let home = s.dir.path().join("gateway-home");
    let mut h = crate::support::hermes::Relay::connected(d.relay_port(), &home, P::NAME);
    s.p.dm(&open, P::ALLOWED, "over the relay");
    let m = h.wait("message", |v| v["text"] == "over the relay");
    assert_eq!(m["platform"], P::NAME);
    let chat = m["chat_id"].as_str().unwrap().to_owned();
    h.cmd(json!({"cmd": "send", "chat_id": chat, "text": "relay reply"}));
    let sent = h.wait("sent", |_| true);
    assert_eq!(sent["success"], true, "{sent}");
    wait_blocking("the reply to go out", || {
        s.p.sent(&s.state(), &chat, "relay reply")
    });
    s.finish(d, &[]);
}

/// A relay gateway after Hermes 0.19.0 (`support::newer_gateway`, from its contract) is told
/// exactly the ops the connector carries out, and each succeeds once against the platform's
/// fake. Contract (hermes-relay-newer.md): §1.4 the gateway sends any listed op to any chat of
/// the platform, so none may answer `unsupported`; §1.7 the fields of `send` (its
/// `message_id`), `edit` of that message, `typing`, `get_chat_info` (`chat_info` or the
/// result itself: a DM here), `delete` of the message sent; §1.5 the reaction lifecycle, 👀
/// then the same with `remove: true`; §1.8 `send_media` naming an upload to `/relay/media`. A listed op this case
/// does not know fails it, so what is advertised and what is proven stay the same list.
pub fn a_newer_relay_gateway_gets_every_op_it_is_offered<P: Platform>() {
    use crate::support::newer_gateway::NewerGateway;
    let s = Stage::<P>::allowlisted("relay: {listen: '127.0.0.1:0'}");
    let (d, open) = s.run();
    let mut g = NewerGateway::dial(d.relay_port(), "gw-newer", P::NAME);
    s.p.dm(&open, P::ALLOWED, "hello newer gateway");
    let event = g.inbound();
    assert_eq!(event["text"], "hello newer gateway", "{event}");
    let chat = event["source"]["chat_id"].as_str().unwrap().to_owned();
    let theirs = event["message_id"].clone();
    let mut ops = g.supported_ops();
    // `send` first (`edit` needs its message), `delete` of it after the rest; `send_media`
    // last (a fake without a media host may end the connection there).
    ops.sort_by_key(|op| match op.as_str() {
        "send" => 0,
        "delete" => 2,
        "send_media" => 3,
        _ => 1,
    });
    // An op that finds the connection gone, where the fake is known to end it (the
    // platform's `FAKE_DROPS_CONNECTION`), is tried again once the connector is back.
    let op = |g: &mut NewerGateway, action: Value| {
        let deadline = std::time::Instant::now() + crate::support::PATIENCE;
        loop {
            let r = g.op(action.clone());
            let dropped = r["success"] == false
                && r["error"].as_str().is_some_and(|e| {
                    e.contains("Connection Closed")
                        || e.starts_with("connector_exited")
                        || e.starts_with("connector_unavailable")
                });
            if !(P::FAKE_DROPS_CONNECTION && dropped) || std::time::Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let mut mine = Value::Null;
    for name in &ops {
        let meta = json!({});
        match name.as_str() {
            "send" => {
                let r = op(
                    &mut g,
                    json!({"op": "send", "chat_id": chat,
                    "content": "a first answer", "reply_to": null, "metadata": meta}),
                );
                assert_eq!(r["success"], true, "send: {r}");
                mine = r["message_id"].clone();
            }
            "edit" => {
                let r = op(
                    &mut g,
                    json!({"op": "edit", "chat_id": chat, "message_id": mine,
                    "content": "a better answer", "metadata": meta}),
                );
                assert_eq!(r["success"], true, "edit: {r}");
            }
            "typing" => {
                let r = op(
                    &mut g,
                    json!({"op": "typing", "chat_id": chat, "metadata": meta}),
                );
                assert_eq!(r["success"], true, "typing: {r}");
            }
            "get_chat_info" => {
                let r = op(&mut g, json!({"op": "get_chat_info", "chat_id": chat}));
                let info = r.get("chat_info").unwrap_or(&r);
                assert_eq!(info["type"], "dm", "get_chat_info: {r}");
                assert!(info["name"].as_str().is_some_and(|n| !n.is_empty()), "{r}");
            }
            "react" => {
                for remove in [false, true] {
                    let r = op(
                        &mut g,
                        json!({"op": "react", "chat_id": chat, "message_id": theirs,
                        "emoji": "👀", "remove": remove, "metadata": meta}),
                    );
                    assert_eq!(r["success"], true, "react (remove: {remove}): {r}");
                }
            }
            "delete" => {
                let r = op(
                    &mut g,
                    json!({"op": "delete", "chat_id": chat, "message_id": mine,
                    "metadata": meta}),
                );
                assert_eq!(r["success"], true, "delete: {r}");
            }
            "send_media" => {
                let source = g.upload("gw-newer", "not really a png", "a.png");
                let r = op(
                    &mut g,
                    json!({"op": "send_media", "chat_id": chat,
                    "media_kind": "document", "source_url": source, "content": "the file",
                    "filename": "a.png", "reply_to": null, "metadata": meta}),
                );
                assert!(s.p.media_sent(&s.state(), &r), "send_media: {r}");
            }
            other => panic!("{other} is listed but this case does not prove it"),
        }
    }
    // Checked after the ops, not between.
    wait_blocking("the answer to go out", || {
        s.p.sent(&s.state(), &chat, "a first answer")
    });
    s.finish(d, &[]);
}

/// `run` without a config and with nothing in Hermes' home starts nothing; with the platform's
/// Hermes settings it starts the connector, says why, and applies the allowlist from them.
pub fn run_without_a_config_starts_it_from_hermes_settings_only<P: Platform>() {
    let dir = tempfile::tempdir().unwrap();
    let p = P::start(dir.path());
    let home = dir.path().join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    let nothing = crate::support::hermes_run(&home).output().unwrap();
    let said = String::from_utf8_lossy(&nothing.stderr);
    assert!(
        !nothing.status.success() && said.contains("nothing to run"),
        "{said}"
    );

    let env = p.hermes_settings(&home);
    let mut child = crate::support::hermes_run(&home)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .unwrap();
    let rx = crate::support::json_lines(child.stdout.take().unwrap());
    let wait =
        |what: &str, pred: &dyn Fn(&Value) -> bool| crate::support::next_matching(&rx, what, pred);
    let open = wait("the connection", &|v| {
        v["type"] == "connection" && v["connector"] == P::NAME && v["status"]["state"] == "open"
    });
    if P::PAIRS {
        p.dm(&open, P::STRANGER, "not on the list");
    }
    p.dm(&open, P::ALLOWED, "from hermes settings");
    let m = wait("the DM", &|v| v["type"] == "inbound");
    assert_eq!(m["message"]["text"], "from hermes settings", "{m}");
    let stderr = crate::support::finish_run(child);
    let why = format!("running {} ({})", P::NAME, P::STARTED_BECAUSE);
    assert!(stderr.contains(&why), "{stderr}");
    for secret in p.secrets() {
        assert!(!stderr.contains(&secret), "a secret was printed");
    }
}

/// The real Hermes gateway with this repository's plugin, on the platform's Hermes settings
/// only: the DM is answered by the agent (the fake model's `answer:` for its `ask:`) through
/// the gateway's one `bridgekeeper run` child, whose ledger counts it delivered.
pub fn the_hermes_gateway_answers_through_the_plugin<P: Platform>() {
    let dir = tempfile::tempdir().unwrap();
    let p = P::start(dir.path());
    std::fs::create_dir_all(dir.path().join("hermes")).unwrap();
    let mut env = p.hermes_settings(&dir.path().join("hermes"));
    env.extend(p.hermes_gateway_env());
    let home = crate::support::gateway::Home::new(dir.path());
    let gateway = home.gateway(true, &env);
    gateway.connected(P::NAME);
    let bridgekeeper = gateway.bridgekeeper();
    let open = gateway.connection(P::NAME);
    p.dm(&open, P::ALLOWED, "hello ask:plugin");
    let chat = gateway.chat_of(P::NAME, "ask:plugin");
    gateway.wait("the agent's answer to go out", || {
        p.sent(&home.state_dir(), &chat, "answer:plugin")
    });
    assert_eq!(
        gateway.bridgekeepers(),
        [bridgekeeper],
        "one child serves it"
    );
    let status = home.status();
    let c = crate::support::status_connector(&status, P::NAME);
    assert!(c["ledger"]["delivered"].as_u64() >= Some(1), "{c}");
    crate::support::assert_ledger_balanced(&c["ledger"]);
    let log = gateway.log();
    assert!(
        log.contains(&format!("bridgekeeper: serving {}", P::NAME)),
        "{log}"
    );
    for secret in p.secrets() {
        assert!(!log.contains(&secret), "a secret is in the gateway's log");
    }
}

/// `doctor` says the settings are right, then names the wrong one as a problem; it prints no
/// secret either time.
pub fn doctor_says_what_is_wrong_without_printing_secrets<P: Platform>() {
    let dir = tempfile::tempdir().unwrap();
    let p = P::start(dir.path());
    let home = dir.path().join("hermes");
    std::fs::create_dir_all(&home).unwrap();
    let doctor = |right: bool| {
        let env = p.doctor_settings(&home, right);
        let out = crate::support::hermes_command("doctor", &home)
            .args(["--port", "0"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, said) = doctor(true);
    assert!(said.contains(P::DOCTOR_RIGHT), "{said}");
    assert!(ok, "{said}");
    let (ok, wrong) = doctor(false);
    assert!(wrong.contains(P::DOCTOR_WRONG), "{wrong}");
    assert!(!ok, "a problem fails doctor: {wrong}");
    for secret in p.secrets() {
        assert!(
            !said.contains(&secret) && !wrong.contains(&secret),
            "a secret was printed"
        );
    }
}
