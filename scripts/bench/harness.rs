//! The benchmark harness (`bash scripts/bench/run.sh`): every figure is measured side by side
//! with its baseline in the same run, on this machine, and reported as a ratio.
//!
//! Paths measured: the fake connector flooding stamped messages through (a) `cat` (the pipe's
//! physical ceiling), (b) a minimal relay that parses and re-serialises each line, (c)
//! bridgekeeper with policy, ledger and log on, and (d) the old design — the legacy HTTP API
//! polled once a second. Then memory, respawn and start-up times, and the real WhatsApp path
//! (fake server → Baileys → node-bridge → bridgekeeper) against node-bridge read directly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The emit time a stamped message carries in its text (`"text":"t=<ns>"`).
fn stamp_of(line: &str) -> Option<u128> {
    let at = line.find("\"text\":\"t=")? + 10;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

struct Sample {
    count: usize,
    elapsed: Duration,
    latencies_us: Vec<f64>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies_us.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }
}

/// Reads until `n` stamped messages arrived: first-to-last time and each one's latency.
fn collect(reader: impl Read, n: usize) -> Sample {
    let mut lines = BufReader::with_capacity(1 << 16, reader).lines();
    let mut first = None;
    let mut latencies_us = Vec::with_capacity(n);
    while latencies_us.len() < n {
        let line = lines.next().expect("the stream ended early").unwrap();
        if let Some(t) = stamp_of(&line) {
            first.get_or_insert_with(Instant::now);
            latencies_us.push((now_ns().saturating_sub(t)) as f64 / 1000.0);
        }
    }
    Sample {
        count: n,
        elapsed: first.unwrap().elapsed(),
        latencies_us,
    }
}

struct Bench {
    fake: PathBuf,
    bridgekeeper: PathBuf,
    harness: PathBuf,
    work: PathBuf,
    next: u32,
}

impl Bench {
    fn dir(&mut self, name: &str) -> PathBuf {
        self.next += 1;
        let d = self.work.join(format!("{}-{name}", self.next));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn fake(&self, args: &[String]) -> Child {
        Command::new(&self.fake)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A config: `connectors` fake connectors with `args`, policy open (every message delivered).
    fn config(&mut self, name: &str, connectors: usize, args: &[String], extra: &str) -> PathBuf {
        let dir = self.dir(name);
        std::fs::create_dir_all(dir.join("hermes")).unwrap();
        let mut text = format!(
            "state_dir: {dir:?}\nhermes_home: {:?}\nconnectors:\n",
            dir.join("hermes")
        );
        for i in 0..connectors {
            text.push_str(&format!(
                "  - name: c{i}\n    command: {:?}\n    args: {:?}\n    policy: {{mode: bot, dm_policy: open}}\n    restart: {{initial_backoff_ms: 0, max_backoff_ms: 0, jitter: 0.0, max_restarts: 100000, window_ms: 1000}}\n{extra}",
                self.fake, args
            ));
        }
        let path = dir.join("bench.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn bridgekeeper(&self, config: &Path) -> Child {
        Command::new(&self.bridgekeeper)
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

fn kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn stop(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// fake → cat → us.
fn through_cat(b: &Bench, args: &[String], n: usize) -> Sample {
    let mut fake = b.fake(args);
    let mut cat = Command::new("cat")
        .stdin(fake.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let s = collect(cat.stdout.take().unwrap(), n);
    drop(fake.stdin.take());
    let _ = fake.wait();
    let _ = cat.wait(); // its input closed with the connector
    s
}

/// fake → minimal relay (parse + re-serialise each line) → us. Also its peak RSS.
fn through_relay(b: &Bench, args: &[String], n: usize) -> (Sample, u64) {
    let mut fake = b.fake(args);
    let mut relay = Command::new(&b.harness)
        .arg("relay")
        .stdin(fake.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let s = collect(relay.stdout.take().unwrap(), n);
    let rss = kib(relay.id(), "VmHWM:");
    drop(fake.stdin.take());
    let _ = fake.wait();
    let _ = relay.wait();
    (s, rss)
}

/// fake → bridgekeeper (policy, ledger, log) → us. Also bridgekeeper's peak RSS.
fn through_bridgekeeper(b: &mut Bench, args: &[String], n: usize) -> (Sample, u64) {
    through_bridgekeeper_with(b, args, n, "")
}

/// The same with more connector config (`extra`: indented connector keys).
fn through_bridgekeeper_with(
    b: &mut Bench,
    args: &[String],
    n: usize,
    extra: &str,
) -> (Sample, u64) {
    let config = b.config("flood", 1, args, extra);
    let mut bk = b.bridgekeeper(&config);
    let pid = bk.id();
    let s = collect(bk.stdout.take().unwrap(), n);
    let rss = kib(pid, "VmHWM:");
    stop(bk);
    (s, rss)
}

fn relay() {
    // The minimal relay: parse each line as JSON and write it back out, flushing whenever the
    // input has nothing more buffered (as bridgekeeper's gateway writer does).
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            serde_json::to_writer(&mut out, &v).unwrap();
            out.write_all(b"\n").unwrap();
        }
        if input.buffer().is_empty() {
            out.flush().unwrap();
        }
    }
    let _ = out.flush();
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The old design: the legacy HTTP API, polled once a second as the Hermes adapter does.
fn polled_legacy(b: &mut Bench, rate: u64, n: usize) -> Sample {
    let config_path = b.config(
        "legacy",
        1,
        &args(&[
            "--emit",
            &n.to_string(),
            "--stamp",
            "--rate",
            &rate.to_string(),
        ]),
        "",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = bridgekeeper::config::SupervisorConfig::load(&config_path).unwrap();
    config.resolve_access(&Default::default()).unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let options =
        bridgekeeper::legacy::HttpOptions::from_env(b.work.join("session"), String::new())
            .expect("listener limits");
    let server = rt.spawn(bridgekeeper::legacy::serve(
        config,
        options,
        listener,
        shutdown.clone(),
    ));
    let mut latencies_us = Vec::new();
    let mut first = None;
    while latencies_us.len() < n {
        std::thread::sleep(Duration::from_secs(1));
        let body = http_get(port, "/messages");
        let polled = now_ns();
        for m in serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap_or_default() {
            if let Some(t) = m["body"]
                .as_str()
                .and_then(|b| b.strip_prefix("t="))
                .and_then(|t| t.parse::<u128>().ok())
            {
                first.get_or_insert_with(Instant::now);
                latencies_us.push(polled.saturating_sub(t) as f64 / 1000.0);
            }
        }
    }
    shutdown.cancel();
    let _ = rt.block_on(server);
    Sample {
        count: n,
        elapsed: first.unwrap().elapsed(),
        latencies_us,
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Connector exit → replacement running, read from the fake's own timeline (ns clocks).
fn respawn(b: &mut Bench, restarts: usize) -> Vec<f64> {
    let timeline = b.work.join(format!("timeline-{}", b.next));
    let config = b.config(
        "respawn",
        1,
        &args(&[
            "--exit-after-ms",
            "20",
            "--timeline",
            timeline.to_str().unwrap(),
        ]),
        "",
    );
    let bk = b.bridgekeeper(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&timeline).unwrap_or_default();
        if text.lines().filter(|l| l.starts_with("start")).count() > restarts
            || Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(bk);
    let mut gaps = Vec::new();
    let mut exit_at = None;
    for line in std::fs::read_to_string(&timeline).unwrap().lines() {
        let (what, ns) = line.split_once(' ').unwrap();
        let ns: u128 = ns.parse().unwrap();
        match (what, exit_at) {
            ("exit", _) => exit_at = Some(ns),
            ("start", Some(e)) => {
                gaps.push((ns - e) as f64 / 1e6);
                exit_at = None;
            }
            _ => {}
        }
    }
    gaps
}

/// Spawning the fake directly: spawn call → its first instruction (the same clock).
fn direct_spawn(b: &mut Bench, times: usize) -> Vec<f64> {
    let timeline = b.work.join("timeline-direct");
    (0..times)
        .map(|_| {
            let _ = std::fs::remove_file(&timeline);
            let before = now_ns();
            let mut c = b.fake(&args(&["--timeline", timeline.to_str().unwrap()]));
            let mut line = String::new();
            BufReader::new(c.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            drop(c.stdin.take());
            let _ = c.wait();
            let started: u128 = std::fs::read_to_string(&timeline)
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            (started - before) as f64 / 1e6
        })
        .collect()
}

/// Time to the first line: bridgekeeper's `ready`, or the fake connector's `hello`.
fn first_line_ms(mut child: Child) -> f64 {
    let started = Instant::now();
    let mut line = String::new();
    let stdout: &mut ChildStdout = child.stdout.as_mut().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    stop(child);
    ms
}

struct Row {
    what: String,
    ours: String,
    baseline: String,
    ratio: String,
}

fn row(what: &str, ours: String, baseline: String, ratio: f64, ratio_label: &str) -> Row {
    Row {
        what: what.into(),
        ours,
        baseline,
        ratio: format!("{ratio:.2} {ratio_label}"),
    }
}

mod real;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("relay") {
        return relay();
    }
    let out_file = std::env::args().nth(1).map(PathBuf::from);
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap();
    let work = std::env::temp_dir().join(format!("bridgekeeper-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let mut b = Bench {
        fake: bin.join("fake-connector"),
        bridgekeeper: bin.join("bridgekeeper"),
        harness: exe.clone(),
        work: work.clone(),
        next: 0,
    };
    let mut rows = Vec::new();

    // 1. Throughput: a flood of N messages, in alternating rounds so that a burst of load from
    // elsewhere on a shared machine hits all three paths alike; the median round counts.
    const N: usize = 200_000;
    const ROUNDS: usize = 5;
    let flood = args(&["--emit", &N.to_string(), "--stamp"]);
    eprintln!("throughput: cat, relay, bridgekeeper ({N} messages each, {ROUNDS} rounds)…");
    let (mut cat, mut relay, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    // The liveness checks (on by default, as in `ours`) against the same run with them off.
    let mut unchecked = Vec::new();
    const LIVENESS_OFF: &str = "    liveness: {ping_interval_ms: 0, silence_ms: 0}\n";
    let mut flood_rss = 0;
    let mut relay_rss = 0;
    for _ in 0..ROUNDS {
        cat.push(through_cat(&b, &flood, N).rate());
        let (r, rss) = through_relay(&b, &flood, N);
        relay.push(r.rate());
        relay_rss = relay_rss.max(rss);
        let (o, rss) = through_bridgekeeper(&mut b, &flood, N);
        ours.push(o.rate());
        flood_rss = flood_rss.max(rss);
        let (u, _) = through_bridgekeeper_with(&mut b, &flood, N, LIVENESS_OFF);
        unchecked.push(u.rate());
    }
    let (cat, relay, ours) = (median(cat), median(relay), median(ours));
    let unchecked = median(unchecked);
    rows.push(row(
        "inbound throughput (msg/s) vs minimal relay",
        format!("{ours:.0}"),
        format!("{relay:.0}"),
        ours / relay,
        "× relay",
    ));
    rows.push(row(
        "inbound throughput (msg/s) vs raw pipe (cat)",
        format!("{ours:.0}"),
        format!("{cat:.0}"),
        ours / cat,
        "× cat",
    ));
    rows.push(row(
        "inbound throughput (msg/s), liveness checks on vs off",
        format!("{ours:.0}"),
        format!("{unchecked:.0}"),
        ours / unchecked,
        "× off",
    ));
    if std::env::var("BENCH_ONLY").as_deref() == Ok("throughput") {
        // For iterating on the hot path: the throughput rows alone.
        print!("{}", render(&rows));
        let _ = std::fs::remove_dir_all(&work);
        return;
    }

    // 2. Latency at 1,000 messages/s.
    const PACED: usize = 5_000;
    let paced = args(&["--emit", &PACED.to_string(), "--stamp", "--rate", "1000"]);
    eprintln!("latency at 1000 msg/s: relay, bridgekeeper…");
    let (relay_l, _) = through_relay(&b, &paced, PACED);
    let (ours_l, _) = through_bridgekeeper(&mut b, &paced, PACED);
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        rows.push(row(
            &format!("latency {name} at 1,000 msg/s (µs) vs relay"),
            format!("{:.0}", ours_l.percentile(p)),
            format!("{:.0}", relay_l.percentile(p)),
            ours_l.percentile(p) / relay_l.percentile(p).max(1.0),
            "× relay",
        ));
    }
    eprintln!("the old design: legacy HTTP polled once a second (500 messages at 100/s)…");
    let old = polled_legacy(&mut b, 100, 500);
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        rows.push(row(
            &format!("latency {name} (ms) vs the old design (1 s polling)"),
            format!("{:.2}", ours_l.percentile(p) / 1000.0),
            format!("{:.0}", old.percentile(p) / 1000.0),
            old.percentile(p) / ours_l.percentile(p).max(1.0),
            "× faster",
        ));
    }

    // 3. Memory.
    eprintln!("memory: idle with 1 and 10 connectors…");
    let idle = |b: &mut Bench, n: usize| {
        let config = b.config("idle", n, &[], "");
        let mut bk = b.bridgekeeper(&config);
        let mut line = String::new();
        BufReader::new(bk.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let rss = kib(bk.id(), "VmHWM:");
        stop(bk);
        rss
    };
    let idle1 = idle(&mut b, 1);
    let idle10 = idle(&mut b, 10);
    rows.push(row(
        "peak RSS idle, 1 connector (MiB) vs relay under flood",
        format!("{:.1}", idle1 as f64 / 1024.0),
        format!("{:.1}", relay_rss as f64 / 1024.0),
        idle1 as f64 / relay_rss as f64,
        "× relay",
    ));
    rows.push(row(
        "peak RSS idle, 10 connectors (MiB) vs 1 connector",
        format!("{:.1}", idle10 as f64 / 1024.0),
        format!("{:.1}", idle1 as f64 / 1024.0),
        idle10 as f64 / idle1 as f64,
        "× 1 connector",
    ));
    rows.push(row(
        "peak RSS during the flood (MiB) vs idle",
        format!("{:.1}", flood_rss as f64 / 1024.0),
        format!("{:.1}", idle1 as f64 / 1024.0),
        flood_rss as f64 / idle1 as f64,
        "× idle",
    ));

    // 4. Respawn and start-up.
    eprintln!("respawn and start-up…");
    let gaps = respawn(&mut b, 40);
    let direct = direct_spawn(&mut b, 20);
    rows.push(row(
        "connector exit → replacement running (ms, median) vs a plain spawn",
        format!("{:.2}", median(gaps.clone())),
        format!("{:.2}", median(direct.clone())),
        median(gaps) / median(direct).max(1e-3),
        "× plain spawn",
    ));
    let starts: Vec<f64> = (0..10)
        .map(|_| {
            let c = b.config("start", 1, &[], "");
            first_line_ms(b.bridgekeeper(&c))
        })
        .collect();
    let hellos: Vec<f64> = (0..10).map(|_| first_line_ms(b.fake(&[]))).collect();
    rows.push(row(
        "start → gateway link ready (ms, median) vs connector start → hello",
        format!("{:.2}", median(starts.clone())),
        format!("{:.2}", median(hellos.clone())),
        median(starts) / median(hellos).max(1e-3),
        "× connector start",
    ));

    // 5. The real path.
    eprintln!("the real path: fake WhatsApp server → Baileys → node-bridge (→ bridgekeeper)…");
    match real::measure(&mut b, 100) {
        Ok((ours, direct)) => {
            rows.push(row(
                "real path: messages/s vs node-bridge read directly",
                format!("{:.1}", ours.rate()),
                format!("{:.1}", direct.rate()),
                ours.rate() / direct.rate(),
                "× direct",
            ));
            for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
                rows.push(row(
                    &format!("real path: latency {name} (ms) vs node-bridge read directly"),
                    format!("{:.2}", ours.percentile(p) / 1000.0),
                    format!("{:.2}", direct.percentile(p) / 1000.0),
                    ours.percentile(p) / direct.percentile(p).max(1.0),
                    "× direct",
                ));
            }
        }
        Err(e) => eprintln!("real path skipped: {e}"),
    }

    let table = render(&rows);
    print!("{table}");
    if let Some(path) = out_file {
        std::fs::write(&path, table).unwrap();
    }
    let _ = std::fs::remove_dir_all(&work);
}

fn render(rows: &[Row]) -> String {
    let mut t =
        String::from("| measurement | bridgekeeper | baseline | ratio |\n|---|---:|---:|---:|\n");
    for r in rows {
        t.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what, r.ours, r.baseline, r.ratio
        ));
    }
    t
}
