//! The webhook receiver, posted to as a provider does: signed with the route's secret, and
//! sent again until it is answered (a refused connection, a 5xx), as providers with retries
//! do. Its stranger is a delivery signed with another secret; answers to a route that
//! delivers to `log` are logged.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::webhook::{SCHEMES, deliver};

const SECRET: &str = "route-secret-5d41402abc4b2a76";

/// The webhook receiver's provider, and the fixed port the receiver listens on (a restarted
/// receiver is where the provider retries).
pub struct Provider {
    port: u16,
}

impl Provider {
    fn routes(extra: Value) -> Value {
        let mut routes = json!({"gh": {"secret": SECRET, "prompt": "{text}", "deliver": "log"}});
        if let (Some(r), Some(more)) = (routes.as_object_mut(), extra.as_object()) {
            r.extend(more.clone());
        }
        json!({"platforms": {"webhook": {"enabled": true, "extra": {"routes": routes}}}})
    }

    fn write_routes(home: &Path, extra: Value) {
        std::fs::create_dir_all(home).unwrap();
        std::fs::write(home.join("config.yaml"), Self::routes(extra).to_string()).unwrap();
    }
}

impl super::Platform for Provider {
    const NAME: &'static str = "webhook";
    const REDELIVERS: bool = true;
    const PAIRS: bool = false;
    const ALLOWED: &'static str = "signed";
    const STRANGER: &'static str = "forged";
    const STARTED_BECAUSE: &'static str = "platforms.webhook.enabled in config.yaml";
    const DOCTOR_RIGHT: &'static str = "ok    Webhooks: 1 route(s) can be served: gh";
    const DOCTOR_WRONG: &'static str = "FAIL  Webhooks: route \"open\" has no secret";

    fn start(_dir: &Path) -> Self {
        Self {
            port: crate::support::free_port(),
        }
    }

    fn entry(&self, dir: &Path, _policy: &str) -> String {
        // Routes, not users, say who may post: the access policy does not apply.
        Self::write_routes(&dir.join("hermes"), json!({}));
        format!(
            "  - name: webhook\n    builtin: webhook\n    env: {{WEBHOOK_PORT: '{}'}}\n    {}\n",
            self.port,
            crate::support::QUICK_RESTARTS,
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn dm(&self, open: &Value, from: &str, text: &str) {
        let url = crate::support::listening_url(open);
        let addr = url.trim_start_matches("http://");
        let body = json!({"text": text}).to_string();
        let id = format!("d-{text}");
        if from == <Self as super::Platform>::STRANGER {
            let forged = deliver(
                addr,
                "gh",
                SCHEMES[3],
                "not-the-secret-00",
                &id,
                None,
                &body,
            );
            assert_eq!(forged.status, 401);
            return;
        }
        crate::support::wait_blocking("the delivery to be taken", || {
            let status = deliver(addr, "gh", SCHEMES[3], SECRET, &id, None, &body).status;
            (1..500).contains(&status)
        });
    }

    fn sent(&self, state: &Path, _chat: &str, _text: &str) -> bool {
        // The text is not kept; the answer is said to be logged, in `bridge.log` inside the state
        // directory of a config's run, beside it for Hermes' home.
        [state.join("bridge.log"), state.with_file_name("bridge.log")]
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .any(|log| log.contains("answer for route \\\"gh\\\" logged"))
    }

    fn code_sent_to(&self, _user: &str) -> Option<String> {
        None
    }

    fn secrets(&self) -> Vec<String> {
        vec![SECRET.to_owned()]
    }

    fn hermes_settings(&self, home: &Path) -> Vec<(&'static str, String)> {
        Self::write_routes(home, json!({}));
        vec![("WEBHOOK_PORT", "0".into())]
    }

    fn doctor_settings(&self, home: &Path, right: bool) -> Vec<(&'static str, String)> {
        let more = if right {
            json!({})
        } else {
            json!({"open": {"prompt": "x"}})
        };
        Self::write_routes(home, more);
        Vec::new()
    }
}

conformance!(Provider);
