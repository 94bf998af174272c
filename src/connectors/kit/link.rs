//! The connector's side of PROTOCOL.md for built-in connectors, which run on threads: one
//! writer of whole lines on stdout (shared under a lock), `hello`, connection states and the
//! timestamps heartbeats report, the thread that reads commands from stdin (answering each with
//! exactly one `result`), and the `recorded` notes at-least-once intake waits for.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bridge_protocol::exit;
use bridge_protocol::message::{
    Command, CommandResult, ConnectionState, ConnectionStatus, ConnectorCommand, ConnectorEvent,
    ErrorBody, Heartbeat, Hello, InboundMessage, Receipt, ReceiptStatus, SupervisorNote,
};
use serde_json::Value;

use super::terminal::Terminal;

/// What a command comes to: its `result` data, or the error it is answered with.
pub type CommandOutcome = Result<Option<Value>, ErrorBody>;

/// Notes for messages no batch waits on (after a restart) are not kept past this many.
const MAX_RECORDED_NOTES: usize = 10_000;

pub fn error(code: &str, message: &str, unconfirmed: bool) -> ErrorBody {
    ErrorBody {
        code: code.into(),
        message: message.into(),
        unconfirmed,
    }
}

/// The error of a text sent in parts that failed after `sent` of `total` went out: says so,
/// since the peer already has those.
pub fn after_parts(mut body: ErrorBody, sent: usize, total: usize) -> ErrorBody {
    if sent > 0 {
        body.message = format!("{} (after {sent} of {total} parts were sent)", body.message);
    }
    body
}

pub struct Link {
    out: Mutex<Box<dyn Write + Send>>,
    started: Instant,
    /// Milliseconds since `started` of the last frame from the network (any answer).
    last_frame: AtomicU64,
    last_message: AtomicU64,
    open: AtomicBool,
    opened_at: AtomicU64,
    /// Ids the supervisor said are in its ledger (`recorded`), with their outcome, until a
    /// waiter takes them.
    recorded: Mutex<HashMap<String, Recorded>>,
    recorded_changed: Condvar,
    /// The connector's own counts, reported with each heartbeat.
    counts: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Link {
    /// On stdout: says `hello` with `capabilities`, then `connecting`.
    pub fn start(connector: &str, capabilities: &[&str]) -> Arc<Self> {
        Self::start_on(Box::new(std::io::stdout()), connector, capabilities)
    }

    pub fn start_on(
        out: Box<dyn Write + Send>,
        connector: &str,
        capabilities: &[&str],
    ) -> Arc<Self> {
        let link = Arc::new(Self {
            out: Mutex::new(out),
            started: Instant::now(),
            last_frame: AtomicU64::new(0),
            last_message: AtomicU64::new(0),
            open: AtomicBool::new(false),
            opened_at: AtomicU64::new(0),
            recorded: Mutex::new(HashMap::new()),
            recorded_changed: Condvar::new(),
            counts: Mutex::default(),
        });
        link.emit(&ConnectorEvent::Hello(Hello {
            protocol: bridge_protocol::PROTOCOL_VERSION,
            connector: connector.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
        }));
        link.status(ConnectionState::Connecting, None);
        link
    }

    /// Writes one event as one line. The supervisor gone means this process is done.
    pub fn emit(&self, event: &ConnectorEvent) {
        let mut line = serde_json::to_vec(event).expect("events serialize");
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out.write_all(&line).and_then(|()| out.flush()).is_err() {
            std::process::exit(exit::CLEAN);
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The network answered (for the liveness check's "last server frame").
    pub fn heard(&self) {
        self.last_frame.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn status(&self, state: ConnectionState, reason: Option<String>) {
        let open = state == ConnectionState::Open;
        if open && !self.open.swap(true, Ordering::Relaxed) {
            self.opened_at.store(self.now_ms(), Ordering::Relaxed);
        }
        if !open {
            self.open.store(false, Ordering::Relaxed);
        }
        self.emit(&ConnectorEvent::Status(ConnectionStatus {
            state,
            code: None,
            reason,
        }));
    }

    /// Adds one to the connector's count `name` (reported with the next heartbeat).
    pub fn count(&self, name: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                counts.insert(name.to_owned(), 1);
            }
        }
    }

    /// Sets the connector's count `name` to `value` (a gauge, or a count kept elsewhere).
    pub fn set_count(&self, name: &str, value: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.insert(name.to_owned(), value);
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    pub fn inbound(&self, message: InboundMessage) {
        self.last_message.store(self.now_ms(), Ordering::Relaxed);
        self.emit(&ConnectorEvent::Inbound(Box::new(message)));
    }

    /// The network's server took a message we sent.
    pub fn server_ack(&self, message_id: &str, chat: &str) {
        self.emit(&ConnectorEvent::Receipt(Receipt {
            message_id: message_id.to_owned(),
            chat: chat.to_owned(),
            status: ReceiptStatus::ServerAck,
        }));
    }

    /// Reports the terminal state (`<state name>: <detail>`) and returns the exit code to end
    /// the process with.
    pub fn end(&self, terminal: Terminal, detail: &str) -> i32 {
        self.status(
            terminal.state(),
            Some(format!("{}: {detail}", terminal.name())),
        );
        terminal.exit_code()
    }

    /// Heartbeats every `BRIDGEKEEPER_HEARTBEAT_MS` (default 15 s), on a thread of their own.
    pub fn start_heartbeats(self: &Arc<Self>) {
        let every = std::env::var("BRIDGEKEEPER_HEARTBEAT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(15_000u64);
        let link = self.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(every));
                link.emit(&ConnectorEvent::Heartbeat(link.heartbeat()));
            }
        });
    }

    fn heartbeat(&self) -> Heartbeat {
        let now = self.now_ms();
        let open = self.is_open();
        let ago = |at: &AtomicU64| {
            let at = at.load(Ordering::Relaxed);
            (open && at > 0).then(|| now.saturating_sub(at))
        };
        Heartbeat {
            open,
            last_frame_ms_ago: ago(&self.last_frame),
            last_message_ms_ago: ago(&self.last_message),
            open_ms_ago: ago(&self.opened_at),
            counts: self
                .counts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Reads commands from stdin on a thread of their own, each answered through `handler`;
    /// the process ends (exit 0, the contract) when stdin closes or `shutdown` comes.
    pub fn start_commands(
        self: &Arc<Self>,
        handler: impl Fn(&Command) -> CommandOutcome + Send + 'static,
    ) {
        let link = self.clone();
        std::thread::spawn(move || {
            link.serve_commands(std::io::stdin().lock(), handler);
            std::process::exit(exit::CLEAN);
        });
    }

    /// Answers every command line of `input` until it ends or `shutdown` comes. A line that is
    /// not a command but names an id gets an `invalid_request` result; `recorded` notes are
    /// kept for `wait_recorded`.
    pub fn serve_commands(
        &self,
        input: impl BufRead,
        handler: impl Fn(&Command) -> CommandOutcome,
    ) {
        for line in input.lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            if let Some((id, recorded)) = recorded_note(&line) {
                self.note_recorded(id, recorded);
                continue;
            }
            let command: ConnectorCommand = match serde_json::from_str(&line) {
                Ok(c) => c,
                Err(e) => {
                    let id = serde_json::from_str::<Value>(&line)
                        .ok()
                        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
                    if let Some(id) = id {
                        self.answer(id, Err(error("invalid_request", &e.to_string(), false)));
                    }
                    continue;
                }
            };
            if matches!(command.command, Command::Shutdown(_)) {
                self.answer(command.id, Ok(None));
                return;
            }
            let outcome = handler(&command.command);
            self.answer(command.id, outcome);
        }
    }

    fn answer(&self, id: String, outcome: CommandOutcome) {
        let result = match outcome {
            Ok(data) => CommandResult::ok(id, data),
            Err(body) => CommandResult {
                id,
                ok: false,
                data: None,
                error: Some(body),
            },
        };
        self.emit(&ConnectorEvent::Result(result));
    }

    fn note_recorded(&self, id: String, note: Recorded) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        if recorded.len() > MAX_RECORDED_NOTES {
            recorded.clear();
        }
        recorded.insert(id, note);
        self.recorded_changed.notify_all();
    }

    /// Waits (at most `max`) until the supervisor said `id` is in its ledger, and returns what
    /// it recorded; `None` when it did not say so in time.
    pub fn wait_outcome(&self, id: &str, max: Duration) -> Option<Recorded> {
        let deadline = Instant::now() + max;
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(note) = recorded.remove(id) {
                return Some(note);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            recorded = self
                .recorded_changed
                .wait_timeout(recorded, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits (at most `max`) until the supervisor said every one of `ids` is in its ledger.
    /// Past the wait it goes on: a supervisor that does not answer must not stop the bot, and
    /// a crash then is no worse than without the check. Returns whether all were recorded.
    pub fn wait_recorded(&self, mut ids: Vec<String>, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            ids.retain(|id| recorded.remove(id).is_none());
            let left = deadline.saturating_duration_since(Instant::now());
            if ids.is_empty() {
                return true;
            }
            if left.is_zero() {
                // Said (stderr is in bridge.log): a supervisor that confirms nothing is a fault
                // to see, though not one to stop for.
                eprintln!(
                    "{} message(s) of a batch were not confirmed recorded within {} s; moving on",
                    ids.len(),
                    max.as_secs()
                );
                return false;
            }
            recorded = self
                .recorded_changed
                .wait_timeout(recorded, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// What the supervisor recorded of one inbound message (`delivered`, `ignored`, … and why).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recorded {
    pub outcome: String,
    pub reason: String,
}

/// A `recorded` note (`SupervisorNote::Recorded`): the supervisor has the message in its ledger.
fn recorded_note(line: &str) -> Option<(String, Recorded)> {
    // Most lines are commands: a cheap look before parsing.
    if !line.contains("\"recorded\"") {
        return None;
    }
    let SupervisorNote::Recorded(note) = serde_json::from_str(line).ok()?;
    Some((
        note.id,
        Recorded {
            outcome: note.outcome,
            reason: note.reason,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    #[test]
    fn every_command_gets_one_result_and_recorded_notes_release_waiters() {
        let out = Captured::default();
        let link = Link::start_on(Box::new(out.clone()), "test", &["send_text", "recorded"]);
        let input = [
            r#"{"type":"recorded","id":"m1"}"#,
            r#"{"type":"recorded","id":"m3","outcome":"ignored","reason":"duplicate"}"#,
            r#"{"type":"ping","id":"c1"}"#,
            r#"{"type":"bogus","id":"c2"}"#,
            "not json",
            r#"{"type":"send_text","id":"c3","chat":"1","text":"hi"}"#,
            r#"{"type":"shutdown","id":"c4"}"#,
            r#"{"type":"ping","id":"c5"}"#,
        ]
        .join("\n");
        link.serve_commands(input.as_bytes(), |c| match c {
            Command::Ping(_) => Ok(None),
            _ => Err(error("unsupported", "no", false)),
        });
        let lines = out.lines();
        assert_eq!(lines[0]["type"], "hello");
        assert_eq!(lines[0]["capabilities"][1], "recorded");
        assert_eq!(lines[1]["state"], "connecting");
        let results: Vec<(&str, bool)> = lines
            .iter()
            .filter(|l| l["type"] == "result")
            .map(|l| (l["id"].as_str().unwrap(), l["ok"].as_bool().unwrap()))
            .collect();
        // After shutdown nothing more is read.
        assert_eq!(
            results,
            [("c1", true), ("c2", false), ("c3", false), ("c4", true)]
        );
        assert!(link.wait_recorded(vec!["m1".into()], Duration::ZERO));
        let m3 = link.wait_outcome("m3", Duration::ZERO).unwrap();
        assert_eq!(
            (m3.outcome.as_str(), m3.reason.as_str()),
            ("ignored", "duplicate")
        );
        assert_eq!(link.wait_outcome("m3", Duration::from_millis(5)), None);
        assert!(!link.wait_recorded(vec!["m2".into()], Duration::from_millis(10)));
        assert_eq!(link.end(Terminal::NeedsToken, "refused"), 15);
        let last = out.lines().pop().unwrap();
        assert_eq!(last["reason"], "needs_token: refused");
    }
}
