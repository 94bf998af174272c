//! Test fixtures: a temp dir per test, an in-process daemon driven over in-memory pipes, the
//! real binary for process-level tests, `wait_for` instead of sleeps, and a dump of the
//! `bridge.log` tail when a test fails.

#![allow(dead_code)]

pub mod attack;
pub mod bench;
pub mod bot_api;
pub mod daemon;
pub mod gateway;
pub mod hermes;
pub mod http;
pub mod ilink;
pub mod newer_gateway;
pub mod telegram;
pub mod webhook;
pub mod wecom;
pub mod whatsapp;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge_protocol::gateway::{ConnectorStateName, GatewayEvent};
use bridge_protocol::message::CommandResult;
use bridgekeeper::config::SupervisorConfig;
use bridgekeeper::daemon::StartError;
use bridgekeeper::record::board::StatusSnapshot;
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const FAKE: &str = env!("CARGO_BIN_EXE_fake-connector");
pub const BRIDGEKEEPER: &str = env!("CARGO_BIN_EXE_bridgekeeper");

/// Generous: the machines are shared and builds run beside tests.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Restarts quick enough for a test that kills a connector, and enough of them.
pub const QUICK_RESTARTS: &str = "restart: {initial_backoff_ms: 50, max_backoff_ms: 500, jitter: 0.0, max_restarts: 20, window_ms: 60000}";

/// A loopback port free now (for a listener that must keep its port across restarts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One fake-connector entry for a config: fast restarts and stops unless `extra` overrides them.
pub fn connector(name: &str, args: &[&str], extra: &str) -> String {
    connector_cmd(name, FAKE, args, extra)
}

/// A connector entry running `command`.
pub fn connector_cmd(name: &str, command: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    let mut entry = format!(
        "  - name: {name}\n    command: {command:?}\n    args: [{}]\n",
        args.join(", ")
    );
    if !extra.contains("restart:") {
        entry.push_str("    restart: {initial_backoff_ms: 20, max_backoff_ms: 200, jitter: 0.0, max_restarts: 10, window_ms: 60000}\n");
    }
    if !extra.contains("stop:") {
        entry.push_str("    stop: {stdin_grace_ms: 2000, term_grace_ms: 1000}\n");
    }
    if !extra.contains("pacing:") {
        // Tests send bursts on purpose; pacing has its own tests.
        entry.push_str("    pacing: {per_minute: 0}\n");
    }
    if !extra.contains("policy:") {
        // Supervision tests are about processes, not access: let every DM through.
        entry.push_str("    policy: {mode: bot, dm_policy: open}\n");
    }
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        entry.push_str("    ");
        entry.push_str(line.trim_start());
        entry.push('\n');
    }
    entry
}

/// A config in `dir` with its own Hermes home (`dir/hermes`), so no test reads `~/.hermes`.
pub fn write_config(dir: &Path, connectors: &[String]) -> PathBuf {
    write_config_with(dir, connectors, "")
}

/// `top` is extra top-level YAML (send_policy, operator_targets…).
pub fn write_config_with(dir: &Path, connectors: &[String], top: &str) -> PathBuf {
    let path = dir.join("bridgekeeper.yaml");
    std::fs::create_dir_all(dir.join("hermes")).unwrap();
    let text = format!(
        "state_dir: state\nhermes_home: hermes\nlog: {{max_bytes: 50000000}}\ngateway: {{buffer: 64}}\n{top}\nconnectors:\n{}",
        connectors.concat()
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub async fn wait_for<F: FnMut() -> bool>(what: &str, mut condition: F) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Appends one JSON line to `path` (created if missing): how tests feed the fake connector's
/// `--inbound-file`.
pub fn append_json(path: &Path, value: &Value) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{value}").unwrap();
}

/// Parsed `bridge.log` events.
pub fn log_events(state_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(state_dir.join("bridge.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
        .collect()
}

pub fn events_named<'a>(events: &'a [Value], name: &str, connector: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == name && e["connector"] == connector)
        .collect()
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// `(role, pid)` lines the fake connector wrote with `--pid-file`.
pub fn pids(file: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (role, pid) = l.split_once(' ')?;
            Some((role.to_owned(), pid.parse().ok()?))
        })
        .collect()
}

pub struct TestDaemon {
    pub dir: TempDir,
    pub state_dir: PathBuf,
    gateway_in: Option<DuplexStream>,
    gateway_out: Lines<BufReader<DuplexStream>>,
    shutdown: CancellationToken,
    join: Option<JoinHandle<Result<(), StartError>>>,
    /// Every event read so far, in order.
    pub seen: Vec<GatewayEvent>,
    next_id: u64,
}

impl TestDaemon {
    pub async fn start(connectors: &[String]) -> Self {
        Self::start_with(connectors, 64 * 1024).await
    }

    /// `pipe_bytes`: how much the gateway-out pipe buffers before the daemon feels it.
    pub async fn start_with(connectors: &[String], pipe_bytes: usize) -> Self {
        Self::start_full(connectors, "", pipe_bytes, |_| {}).await
    }

    /// `top`: extra top-level config; `prepare` runs on the Hermes home before the start.
    pub async fn start_full(
        connectors: &[String],
        top: &str,
        pipe_bytes: usize,
        prepare: impl FnOnce(&Path),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config_with(dir.path(), connectors, top);
        prepare(&dir.path().join("hermes"));
        let mut config = SupervisorConfig::load(&path).unwrap();
        config.resolve_access(&Default::default()).unwrap();
        let state_dir = config.state_dir.clone();
        let (gateway_in, daemon_in) = tokio::io::duplex(64 * 1024);
        let (daemon_out, gateway_out) = tokio::io::duplex(pipe_bytes);
        let shutdown = CancellationToken::new();
        let join = tokio::spawn(bridgekeeper::daemon::run(
            config,
            daemon_in,
            daemon_out,
            shutdown.clone(),
        ));
        let mut daemon = Self {
            dir,
            state_dir,
            gateway_in: Some(gateway_in),
            gateway_out: BufReader::new(gateway_out).lines(),
            shutdown,
            join: Some(join),
            seen: Vec::new(),
            next_id: 0,
        };
        let first = daemon.next_event().await;
        assert!(
            matches!(first, GatewayEvent::Ready { .. }),
            "first event: {first:?}"
        );
        daemon
    }

    pub async fn next_event(&mut self) -> GatewayEvent {
        self.try_next_event().await.expect("gateway link closed")
    }

    async fn try_next_event(&mut self) -> Option<GatewayEvent> {
        let line = within("a gateway event", self.gateway_out.next_line())
            .await
            .unwrap()?;
        let event: GatewayEvent = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("daemon wrote an invalid gateway line {line:?}: {e}"));
        self.seen.push(event.clone());
        Some(event)
    }

    /// Reads events until one matches.
    pub async fn wait_event(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&GatewayEvent) -> bool,
    ) -> GatewayEvent {
        if let Some(e) = self.seen.iter().find(|e| pred(e)) {
            return e.clone();
        }
        loop {
            let event = self.next_event().await;
            if pred(&event) {
                return event;
            }
            let _ = what;
        }
    }

    pub async fn wait_state(&mut self, connector: &str, state: ConnectorStateName) -> GatewayEvent {
        self.wait_event(&format!("{connector} {state:?}"), |e| {
            matches!(e, GatewayEvent::ConnectorState { connector: c, state: s, .. } if c == connector && *s == state)
        })
        .await
    }

    pub async fn send_line(&mut self, line: &[u8]) {
        let input = self.gateway_in.as_mut().expect("gateway input open");
        input.write_all(line).await.unwrap();
        input.write_all(b"\n").await.unwrap();
    }

    /// Sends a request (an `id` is added) and returns the id.
    pub async fn send(&mut self, mut request: Value) -> String {
        self.next_id += 1;
        let id = format!("t{}", self.next_id);
        request["id"] = Value::String(id.clone());
        self.send_line(request.to_string().as_bytes()).await;
        id
    }

    pub async fn result_of(&mut self, id: &str) -> CommandResult {
        match self
            .wait_event(
                "result",
                |e| matches!(e, GatewayEvent::Result(r) if r.id == id),
            )
            .await
        {
            GatewayEvent::Result(r) => r,
            _ => unreachable!(),
        }
    }

    pub async fn request(&mut self, request: Value) -> CommandResult {
        let id = self.send(request).await;
        self.result_of(&id).await
    }

    pub async fn status(&mut self) -> StatusSnapshot {
        let result = self.request(serde_json::json!({"type": "status"})).await;
        serde_json::from_value(result.data.expect("status data")).unwrap()
    }

    pub fn inbound_ids(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                GatewayEvent::Inbound { message, .. } => Some(message.id.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn log(&self) -> Vec<Value> {
        log_events(&self.state_dir)
    }

    /// Closes the gateway's end like a gateway would, reads the remaining events and waits for
    /// the daemon to finish.
    pub async fn stop(&mut self) {
        self.gateway_in = None;
        while self.try_next_event().await.is_some() {}
        let join = self.join.take().unwrap();
        within("the daemon to stop", join).await.unwrap().unwrap();
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.state_dir.join("bridge.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- bridge.log tail (newest last) ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            eprintln!("---- last gateway events ----");
            for e in self
                .seen
                .iter()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .iter()
                .rev()
            {
                eprintln!("{e:?}");
            }
        }
        self.shutdown.cancel();
    }
}

/// `wait_for` for tests without a runtime (the relay tests drive processes).
pub fn wait_blocking(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file below `dir` (an unreadable folder counts as empty), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// A secret (a bot token, a relay secret) in no file under `state_dir` (bridge.log, status,
/// buffers, offsets; the config and the fakes' files are outside it) and in none of `printed`.
pub fn assert_secret_nowhere(secret: &str, state_dir: &Path, printed: &[&str]) {
    assert!(secret.len() >= 8, "too short to search for");
    for text in printed {
        assert!(!text.contains(secret), "the secret was printed");
    }
    let files = files_under(state_dir);
    assert!(files.iter().any(|f| f.ends_with("bridge.log")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "the secret is in {}",
            f.display()
        );
    }
}

/// Every line of `out` that is JSON, on a channel (read on a thread of its own).
pub fn json_lines(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<Value> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

/// The next value on `rx` that `pred` accepts (others are passed over), within `PATIENCE`.
pub fn next_matching(
    rx: &std::sync::mpsc::Receiver<Value>,
    what: &str,
    pred: &dyn Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let v = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {what}"));
        if pred(&v) {
            return v;
        }
    }
}

/// The median and 99th percentile of `ms` (sorted in place), for the benchmarks' reports.
pub fn percentiles(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    (at(0.5), at(0.99))
}

/// Latencies by name, timed side by side in one run, for the benchmarks' reports.
#[derive(Default)]
pub struct Latencies(std::collections::BTreeMap<String, Vec<f64>>);

impl Latencies {
    /// Runs `f` and adds how long it took (ms) under `name`.
    pub fn time<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let t0 = std::time::Instant::now();
        let out = f();
        self.0
            .entry(name.to_owned())
            .or_default()
            .push(t0.elapsed().as_secs_f64() * 1e3);
        out
    }

    /// One line each: `<prefix>: <what>, <name>: n=… p50 … ms p99 … ms`, on stderr.
    pub fn report(mut self, prefix: &str, what: &str) {
        for (name, ms) in &mut self.0 {
            let (p50, p99) = percentiles(ms);
            eprintln!(
                "{prefix}: {what}, {name}: n={} p50 {p50:.2} ms p99 {p99:.2} ms",
                ms.len()
            );
        }
    }
}

/// `bridgekeeper run` without a config on Hermes' home `home`, stdio piped: no platform set in
/// this process's environment counts, and no `node` is on its PATH (only what `home` turns on
/// may start). More environment on the returned command.
pub fn hermes_run(home: &Path) -> std::process::Command {
    hermes_command("run", home)
}

/// `bridgekeeper <sub>` as `hermes_run` sets it up.
pub fn hermes_command(sub: &str, home: &Path) -> std::process::Command {
    let no_node = home.join("no-node");
    std::fs::create_dir_all(&no_node).unwrap();
    let mut command = std::process::Command::new(BRIDGEKEEPER);
    command
        .arg(sub)
        .env("HERMES_HOME", home)
        .env("PATH", &no_node);
    // Every built-in connector's settings, as their descriptions name them.
    let settings = bridgekeeper::connectors::builtins()
        .flat_map(|b| b.settings.iter().map(|s| s.env))
        .chain(["WHATSAPP_ENABLED", "BRIDGEKEEPER_METRICS"]);
    for key in settings {
        command.env_remove(key);
    }
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// A fake written in Python (`tests/fakes/<script>`, on the test venv's Python, which has what
/// the fakes need), started with `--ready-file` and `--recorder` in `dir` plus `args`; its
/// ready file once it serves, and the recorder's path.
// The caller kills and waits for the child (its fake's `Drop`).
#[allow(clippy::zombie_processes)]
pub fn start_python_fake(
    script: &str,
    dir: &Path,
    args: &[&str],
) -> (std::process::Child, serde_json::Value, std::path::PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fakes")
        .join(script);
    let stem = script.trim_end_matches(".py");
    let ready = dir.join(format!("{stem}-ready.json"));
    let recorder = dir.join(format!("{stem}-recorder.jsonl"));
    let mut child = std::process::Command::new(crate::support::hermes::python())
        .arg(path)
        .arg("--ready-file")
        .arg(&ready)
        .arg("--recorder")
        .arg(&recorder)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            return (child, v, recorder);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} did not become ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The admin endpoint of a fake written in Python: actions POSTed under its token.
pub struct Admin {
    url: String,
    token: String,
}

impl Admin {
    /// From the fake's ready file (`admin_url`, `admin_token`).
    pub fn of(manifest: &Value) -> Self {
        let s = |k: &str| manifest[k].as_str().unwrap().to_owned();
        Self {
            url: s("admin_url"),
            token: s("admin_token"),
        }
    }

    /// `action` done (asserted: 200); what the fake answered.
    pub fn post(&self, action: &str, body: &Value) -> Value {
        let (status, reply) = whatsapp::post_json(
            &format!("{}/{action}", self.url),
            &[("X-Admin-Token", &self.token)],
            body,
        );
        assert_eq!(status, 200, "{action} failed: {reply}");
        serde_json::from_str(&reply).unwrap()
    }
}

/// Every JSON line of a fake's recorder file so far.
pub fn recorded(recorder: &Path) -> Vec<Value> {
    std::fs::read_to_string(recorder)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// A connector's entry in a `status --json` snapshot.
pub fn status_connector<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no connector {name} in {status}"))
}

/// received = delivered + awaiting_ack + paired + replied + ignored + failed, from a status
/// snapshot's ledger.
pub fn assert_ledger_balanced(ledger: &serde_json::Value) {
    let n = |k: &str| ledger[k].as_u64().unwrap_or(0);
    let sum = |k: &str| {
        ledger[k].as_object().map_or(0, |m| {
            m.values()
                .filter_map(serde_json::Value::as_u64)
                .sum::<u64>()
        })
    };
    assert_eq!(
        n("received"),
        n("delivered")
            + n("awaiting_ack")
            + n("paired")
            + n("replied")
            + sum("ignored")
            + sum("failed"),
        "{ledger}"
    );
}

/// A process's resident memory from `/proc` (`field`: `VmRSS:` now, `VmHWM:` its peak), MiB.
pub fn rss_mib(pid: i32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// `bridgekeeper status --json --config <config>`, parsed.
pub fn status_json(config: &Path) -> serde_json::Value {
    let out = std::process::Command::new(BRIDGEKEEPER)
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The URL a receiver's open `connection` event says it listens on (`listening on <url>`).
pub fn listening_url(open: &serde_json::Value) -> String {
    let reason = open["status"]["reason"].as_str().unwrap_or_default();
    reason
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {open}"))
        .trim()
        .to_owned()
}

/// Exactly `n` texts, none of them twice.
pub fn assert_each_once(mut texts: Vec<String>, n: usize) {
    assert_eq!(texts.len(), n, "{texts:?}");
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), n, "none twice");
}

/// Closes a `run`'s stdin (the gateway goes away), waits for it to end, and gives its stderr.
pub fn finish_run(mut child: std::process::Child) -> String {
    drop(child.stdin.take());
    let _ = child.wait();
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
    }
    stderr
}

/// A child process that is killed and reaped when dropped, so a test that fails (panics) leaves
/// nothing running behind it.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
