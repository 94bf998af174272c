//! `/metrics` after a scripted run, read by Prometheus' own Python parser (`prometheus_client`
//! in the test venv): every ledger count `status --json` shows is its metric.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{BRIDGEKEEPER, Reaped, append_json, connector, wait_blocking};

/// The samples of `text` as Prometheus' parser (`parser`: `classic` or `openmetrics`) reads
/// them: `(name, labels) → value`.
fn parsed(text: &str, parser: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    use std::io::Write;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prometheus_parse.py");
    let mut child = Command::new(crate::support::hermes::python())
        .arg(script)
        .env("PARSER", parser)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{parser}: {out:?}\n{text}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let labels = v["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (
                (v["name"].as_str().unwrap().to_owned(), labels),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A run with an allowlisted connector (DMs from a friend delivered, from strangers ignored, a
/// reply sent) and one that crashes twice: `/metrics` parses with both of Prometheus' parsers,
/// and each count of `status --json` — the ledger by outcome and reason, commands by result,
/// restarts — is the metric of the same name and labels. A browser's request is refused.
#[test]
fn every_ledger_count_of_status_is_its_metric() {
    let dir = tempfile::tempdir().unwrap();
    let inbound = dir.path().join("inbound.jsonl");
    let counter = dir.path().join("starts");
    let config = crate::support::write_config_with(
        dir.path(),
        &[
            connector(
                "wa",
                &["--inbound-file", inbound.to_str().unwrap()],
                "policy: {mode: bot, dm_policy: allowlist, allow_from: ['15551234567']}",
            ),
            connector(
                "crashy",
                &[
                    "--exit-after-ms",
                    "200",
                    "--crash-first",
                    "2",
                    "--counter",
                    counter.to_str().unwrap(),
                ],
                "",
            ),
        ],
        "metrics: {listen: '127.0.0.1:0'}",
    );
    let mut child = Reaped(
        Command::new(BRIDGEKEEPER)
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("BRIDGEKEEPER_METRICS")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("no metrics address").unwrap();
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            break rest.trim_end_matches("/metrics").to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    for text in ["one", "two", "three"] {
        append_json(&inbound, &json!({"sender": "15551234567", "text": text}));
    }
    for text in ["who", "are you"] {
        append_json(&inbound, &json!({"sender": "15550000001", "text": text}));
    }
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        let send = json!({"type": "send_text", "id": "r", "connector": "wa",
            "chat": "15551234567@s.whatsapp.net", "text": "hello"});
        writeln!(stdin, "{send}").unwrap();
    }
    wait_blocking("the run to settle", || {
        let status = crate::support::status_json(&config);
        let wa = crate::support::status_connector(&status, "wa");
        let crashy = crate::support::status_connector(&status, "crashy");
        // Both settled: nothing changes between the status and the scrape.
        wa["ledger"]["received"] == 5
            && wa["commands"]["ok"] == 1
            && crashy["restarts"] == 2
            && crashy["state"] == "running"
            && wa["state"] == "running"
    });

    let status = crate::support::status_json(&config);
    let scrape =
        crate::support::http::request(&address, "GET", "/metrics", Some(&address), &[], None);
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    assert!(
        scrape.head.contains("application/openmetrics-text"),
        "{}",
        scrape.head
    );
    for parser in ["classic", "openmetrics"] {
        let metrics = parsed(&scrape.body, parser);
        let metric = |name: &str, pairs: &[(&str, &str)]| {
            *metrics
                .get(&(name.to_owned(), labels(pairs)))
                .unwrap_or_else(|| panic!("no {name} {pairs:?} ({parser})"))
        };
        for c in status["connectors"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let ledger = &c["ledger"];
            let n = |v: &Value| v.as_u64().unwrap_or(0) as f64;
            let who = [("connector", name)];
            assert_eq!(
                metric("bridgekeeper_messages_received_total", &who),
                n(&ledger["received"])
            );
            for outcome in ["delivered", "paired", "replied"] {
                assert_eq!(
                    metric(
                        "bridgekeeper_messages_outcome_total",
                        &[("connector", name), ("outcome", outcome)]
                    ),
                    n(&ledger[outcome]),
                    "{outcome}"
                );
            }
            for (family, metric_name) in [
                ("ignored", "bridgekeeper_messages_ignored_total"),
                ("failed", "bridgekeeper_messages_failed_total"),
            ] {
                for (reason, count) in ledger[family].as_object().unwrap() {
                    assert_eq!(
                        metric(metric_name, &[("connector", name), ("reason", reason)]),
                        n(count),
                        "{family} {reason}"
                    );
                }
            }
            let commands = &c["commands"];
            for result in ["accepted", "ok", "failed", "timed_out", "rejected"] {
                assert_eq!(
                    metric(
                        "bridgekeeper_commands_total",
                        &[("connector", name), ("result", result)]
                    ),
                    n(&commands[result]),
                    "commands {result}"
                );
            }
            for queue in ["waiting", "in_flight"] {
                assert_eq!(
                    metric(
                        "bridgekeeper_commands_queued",
                        &[("connector", name), ("queue", queue)]
                    ),
                    n(&commands[queue]),
                    "{queue}"
                );
            }
            assert_eq!(
                metric("bridgekeeper_sends_paced_total", &who),
                n(&commands["paced"])
            );
            assert_eq!(
                metric("bridgekeeper_connector_restarts_total", &who),
                n(&c["restarts"])
            );
            let running = f64::from(c["state"] == "running");
            assert_eq!(metric("bridgekeeper_connector_up", &who), running);
        }
        let wa = crate::support::status_connector(&status, "wa");
        assert_eq!(wa["ledger"]["delivered"], 3, "{wa}");
        assert!(metric("process_resident_memory_bytes", &[]) > 1e6);
    }

    let browser = crate::support::http::request(
        &address,
        "GET",
        "/metrics",
        Some(&address),
        &[("Origin", "http://evil.example")],
        None,
    );
    assert_eq!(browser.status, 403);
}
