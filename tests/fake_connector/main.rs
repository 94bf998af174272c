//! A scriptable connector for the integration tests: it speaks the bridge protocol and can be
//! told (by flags) to misbehave in every way a real connector might: crash, hang, ignore
//! SIGTERM, print garbage or oversized lines, flood, fork a grandchild, never answer.
//!
//! Contract kept unless told otherwise: `hello` first; exit 0 when stdin closes; every command
//! answered once. `send_text` answers with a message id; with `--echo` the text also comes
//! back as an inbound message, which lets a test drive inbound traffic through the gateway.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge_protocol::message::{
    Command, CommandResult, ConnectionState, ConnectionStatus, ConnectorCommand, ConnectorEvent,
    ErrorBody, Hello, InboundMessage,
};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Do not send `hello` (the supervisor must time out and restart).
    #[arg(long)]
    no_hello: bool,
    #[arg(long, default_value_t = bridge_protocol::PROTOCOL_VERSION)]
    protocol: u32,
    /// Inbound messages to emit after `hello`.
    #[arg(long, default_value_t = 0)]
    emit: u64,
    /// Size of each emitted message's text.
    #[arg(long, default_value_t = 16)]
    text_bytes: usize,
    /// Prefix of emitted message ids (the start count is appended, so restarts differ).
    #[arg(long, default_value = "m")]
    id_prefix: String,
    /// Emit garbage between the messages: plain text, invalid UTF-8, unknown type, a bad field,
    /// and a line of this many bytes (0 = no oversized line).
    #[arg(long)]
    garbage: bool,
    #[arg(long, default_value_t = 0)]
    oversized: usize,
    /// Exit with `--exit-code` this long after `hello` (on every start, or see `--crash-first`).
    #[arg(long)]
    exit_after_ms: Option<u64>,
    #[arg(long, default_value_t = 1)]
    exit_code: i32,
    /// Only the first N starts exit (counted in `--counter`); later starts run normally.
    #[arg(long)]
    crash_first: Option<u32>,
    /// File counting starts across restarts.
    #[arg(long)]
    counter: Option<PathBuf>,
    /// Report this connection state before exiting (`logged_out`, `conflict`, `closed`).
    #[arg(long)]
    report_state: Option<String>,
    /// Keep running after stdin closes (breaks the contract on purpose).
    #[arg(long)]
    ignore_stdin_eof: bool,
    #[arg(long)]
    ignore_sigterm: bool,
    /// Start a grandchild in the same process group that sleeps forever.
    #[arg(long)]
    grandchild: bool,
    /// Append "<role> <pid>" lines here (role: connector / grandchild).
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Never answer commands.
    #[arg(long)]
    no_answer: bool,
    /// Answer commands after this delay.
    #[arg(long, default_value_t = 0)]
    answer_delay_ms: u64,
    /// Echo `send_text` back as an inbound message in the same chat.
    #[arg(long)]
    echo: bool,
    /// Write a stderr line at start (to test stderr capture).
    #[arg(long)]
    stderr_line: Option<String>,
    /// Emit every line appended to this file: a JSON connector event (with `type`) as it is,
    /// or a partial inbound message (`sender`, `text`, …; the rest is filled in).
    #[arg(long)]
    inbound_file: Option<PathBuf>,
    /// Report this account identity at start: `PHONE` or `PHONE:LID`.
    #[arg(long)]
    account: Option<String>,
    /// Append every command line received to this file.
    #[arg(long)]
    command_log: Option<PathBuf>,
    /// Emit at most this many messages per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Put the emit time in each message's text (`t=<unix ns>`), for latency benchmarks.
    #[arg(long)]
    stamp: bool,
    /// Append "start <unix ns>" at start and "exit <unix ns>" just before a scripted exit.
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Never report the connection open (the WhatsApp side stays down).
    #[arg(long)]
    no_open: bool,
    /// Run as the sleeping grandchild.
    #[arg(long, hide = true)]
    sleeper: bool,
}

type Out = Arc<Mutex<BufWriter<std::io::Stdout>>>;

fn send(out: &Out, event: &ConnectorEvent) {
    let mut out = out.lock().unwrap();
    serde_json::to_writer(&mut *out, event).unwrap();
    out.write_all(b"\n").unwrap();
    out.flush().unwrap();
}

fn inbound(id: String, chat: &str, text: String) -> ConnectorEvent {
    ConnectorEvent::Inbound(Box::new(InboundMessage {
        id,
        chat: chat.to_owned(),
        sender: chat.to_owned(),
        sender_alt: None,
        is_group: false,
        chat_name: None,
        sender_is_bot: false,
        edited: false,
        from_me: false,
        push_name: Some("Fake".into()),
        text: Some(text),
        media: None,
        mentions: Vec::new(),
        quoted: None,
        thread: None,
        timestamp: 1_767_225_600,
        routed: None,
        context: Vec::new(),
    }))
}

/// Appends one line to an optional file (pid files, timelines, the command log).
fn append_line(path: &Option<PathBuf>, line: &str) {
    if let Some(path) = path {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

fn record_pid(path: &Option<PathBuf>, role: &str, pid: u32) {
    append_line(path, &format!("{role} {pid}"));
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn note_timeline(path: &Option<PathBuf>, what: &str) {
    append_line(path, &format!("{what} {}", unix_nanos()));
}

fn bump_counter(path: &Option<PathBuf>) -> u32 {
    let Some(path) = path else { return 1 };
    let n = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(path, n.to_string()).unwrap();
    n
}

fn main() {
    let args = Args::parse();
    if args.sleeper {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if args.ignore_sigterm {
        // SAFETY: installing SIG_IGN has no handler code to be unsafe about.
        unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::SIGTERM,
                nix::sys::signal::SigHandler::SigIgn,
            )
            .unwrap();
        }
    }
    let start = bump_counter(&args.counter);
    note_timeline(&args.timeline, "start");
    record_pid(&args.pid_file, "connector", std::process::id());
    // Held to the end of main: however main ends (stdin closed, or a panic because the
    // supervisor is gone and a write failed), the grandchild goes with it.
    let _grandchild: Option<Grandchild> = args.grandchild.then(|| {
        let child = Process::new(std::env::current_exe().unwrap())
            .arg("--sleeper")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        record_pid(&args.pid_file, "grandchild", child.id());
        Grandchild(child)
    });
    if let Some(line) = &args.stderr_line {
        eprintln!("{line}");
    }

    let out: Out = Arc::new(Mutex::new(BufWriter::with_capacity(
        64 * 1024,
        std::io::stdout(),
    )));
    if !args.no_hello {
        send(
            &out,
            &ConnectorEvent::Hello(Hello {
                protocol: args.protocol,
                connector: "fake".into(),
                version: "0.0.1".into(),
                capabilities: vec!["send_text".into()],
            }),
        );
    }
    if !args.no_open {
        send(
            &out,
            &ConnectorEvent::Status(ConnectionStatus {
                state: ConnectionState::Open,
                code: None,
                reason: None,
            }),
        );
    }

    if let Some(account) = &args.account {
        let (phone, lid) = match account.split_once(':') {
            Some((p, l)) => (p.to_owned(), Some(l.to_owned())),
            None => (account.clone(), None),
        };
        send(
            &out,
            &ConnectorEvent::Account(bridge_protocol::message::Account {
                phone: Some(phone),
                lid,
                name: Some("Bot".into()),
                ..Default::default()
            }),
        );
    }
    if let Some(path) = args.inbound_file.clone() {
        let out = out.clone();
        std::thread::spawn(move || tail_inbound(&path, &out));
    }

    let chat = "15551234567@s.whatsapp.net";
    if args.emit > 0 || args.garbage {
        let text = "x".repeat(args.text_bytes);
        let begun = std::time::Instant::now();
        let mut out = out.lock().unwrap();
        for i in 0..args.emit {
            if args.garbage && i == args.emit / 2 {
                out.write_all(b"npm WARN this is not protocol\n").unwrap();
                out.write_all(b"{\"type\":\"inbound\",\"text\":\"\xff\xfe\"}\n")
                    .unwrap();
                out.write_all(b"{\"type\":\"teleport\"}\n").unwrap();
                out.write_all(b"{\"type\":\"inbound\",\"id\":7}\n").unwrap();
                if args.oversized > 0 {
                    out.write_all(&vec![b'{'; args.oversized]).unwrap();
                    out.write_all(b"\n").unwrap();
                }
            }
            if let Some(step) = (i * 1_000_000_000).checked_div(args.rate) {
                let due = begun + Duration::from_nanos(step);
                if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                    out.flush().unwrap();
                    std::thread::sleep(wait);
                }
            }
            let body = if args.stamp {
                format!("t={}", unix_nanos())
            } else {
                text.clone()
            };
            let event = inbound(format!("{}{start}-{i}", args.id_prefix), chat, body);
            serde_json::to_writer(&mut *out, &event).unwrap();
            out.write_all(b"\n").unwrap();
        }
        out.flush().unwrap();
    }

    let crashes = args.crash_first.is_none_or(|n| start <= n);
    if let (Some(ms), true) = (args.exit_after_ms, crashes) {
        let out = out.clone();
        let report = args.report_state.clone();
        let code = args.exit_code;
        let timeline = args.timeline.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            note_timeline(&timeline, "exit");
            if let Some(state) = report {
                let state: ConnectionState =
                    serde_json::from_value(serde_json::Value::String(state)).unwrap();
                send(
                    &out,
                    &ConnectorEvent::Status(ConnectionStatus {
                        state,
                        code: None,
                        reason: None,
                    }),
                );
            }
            std::process::exit(code);
        });
    }

    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        append_line(&args.command_log, &line);
        let Ok(cmd) = serde_json::from_str::<ConnectorCommand>(&line) else {
            eprintln!("fake-connector: cannot parse command: {line}");
            continue;
        };
        if args.no_answer {
            continue;
        }
        if args.answer_delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(args.answer_delay_ms));
        }
        let result = match &cmd.command {
            Command::SendText(s) => {
                if args.echo {
                    send(
                        &out,
                        &inbound(format!("echo-{}", cmd.id), &s.chat, s.text.clone()),
                    );
                }
                CommandResult::ok(
                    cmd.id.clone(),
                    Some(serde_json::json!({"message_ids": [format!("sent-{}", cmd.id)]})),
                )
            }
            Command::Ping(_) => {
                CommandResult::ok(cmd.id.clone(), Some(serde_json::json!({"pong": start})))
            }
            Command::Edit(_)
            | Command::SendMedia(_)
            | Command::SendPoll(_)
            | Command::SendLocation(_) => CommandResult::ok(
                cmd.id.clone(),
                Some(serde_json::json!({"message_ids": [format!("sent-{}", cmd.id)]})),
            ),
            Command::Typing(_) | Command::Read(_) => CommandResult::ok(cmd.id.clone(), None),
            Command::ChatInfo(c) => CommandResult::ok(
                cmd.id.clone(),
                Some(serde_json::json!({
                    "name": "Team", "is_group": c.chat.ends_with("@g.us"), "participants": [c.chat]
                })),
            ),
            Command::Shutdown(_) => {
                send(
                    &out,
                    &ConnectorEvent::Result(CommandResult::ok(cmd.id.clone(), None)),
                );
                break;
            }
            other => CommandResult::err(
                cmd.id.clone(),
                ErrorBody {
                    code: "unsupported".into(),
                    message: format!("fake connector does not do {}", other.type_name()),
                    unconfirmed: false,
                },
            ),
        };
        send(&out, &ConnectorEvent::Result(result));
    }
    // stdin closed: the contract says exit, taking our own children along.
    if args.ignore_stdin_eof {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// The sleeping grandchild, killed and reaped when dropped.
struct Grandchild(Child);

impl Drop for Grandchild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Follows `path`, emitting each complete line (see `--inbound-file`).
fn tail_inbound(path: &std::path::Path, out: &Out) {
    let mut offset = 0usize;
    let mut count = 0u64;
    loop {
        let data = std::fs::read(path).unwrap_or_default();
        if let Some(end) = data[offset.min(data.len())..]
            .iter()
            .rposition(|b| *b == b'\n')
        {
            let chunk = &data[offset..offset + end + 1];
            offset += end + 1;
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let mut value: serde_json::Value = serde_json::from_slice(line).unwrap();
                if value.get("type").is_none() {
                    count += 1;
                    let sender = value["sender"]
                        .as_str()
                        .unwrap_or("15551234567@s.whatsapp.net")
                        .to_owned();
                    let fill = serde_json::json!({
                        "type": "inbound", "id": format!("in-{}-{count}", std::process::id()),
                        "chat": sender, "sender": sender, "timestamp": 1_767_225_600u64,
                        "text": "hello",
                    });
                    for (k, v) in fill.as_object().unwrap() {
                        value
                            .as_object_mut()
                            .unwrap()
                            .entry(k.clone())
                            .or_insert(v.clone());
                    }
                }
                let event: ConnectorEvent = serde_json::from_value(value).unwrap();
                send(out, &event);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
