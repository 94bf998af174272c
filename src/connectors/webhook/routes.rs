//! The webhook's settings and routes, read as Hermes reads them: `platforms.webhook` in
//! `config.yaml` (`enabled`, `extra.{host, port, secret, rate_limit, max_body_bytes, routes}`),
//! `WEBHOOK_PORT`/`WEBHOOK_SECRET`/`WEBHOOK_HOST` over it, and the dynamic routes of
//! `$HERMES_HOME/webhook_subscriptions.json` (`webhook subscribe`, Hermes' CLI and agent).
//! Parsing and checking are pure; `load` reads the two files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 8644;
pub const DEFAULT_RATE_LIMIT: u32 = 30;
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// The secret that turns a route's signature check off (loopback only, a warning a minute).
pub const INSECURE_NO_AUTH: &str = "INSECURE_NO_AUTH";
pub const SUBSCRIPTIONS_FILE: &str = "webhook_subscriptions.json";

/// The listener's settings and the routes config.yaml declares.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub secret: Option<String>,
    pub rate_limit: u32,
    pub max_body_bytes: usize,
    pub static_routes: Map<String, Value>,
}

/// Where a route's answers go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverTo {
    /// Nowhere but bridgekeeper's own records (the length, never the text).
    Log,
    /// A chat on another platform, sent by its connector.
    Platform(String),
    /// A Hermes target bridgekeeper has no connector for (`github_comment`).
    Unsupported(String),
}

impl DeliverTo {
    fn parse(name: &str) -> Self {
        match name.trim() {
            "" | "log" => Self::Log,
            "github_comment" => Self::Unsupported("github_comment".into()),
            p if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Self::Platform(p.to_owned())
            }
            other => Self::Unsupported(other.to_owned()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Log => "log",
            Self::Platform(p) | Self::Unsupported(p) => p,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub secret: String,
    pub events: Vec<String>,
    pub prompt: String,
    pub deliver: DeliverTo,
    pub deliver_extra: Map<String, Value>,
    pub deliver_only: bool,
    pub enabled: bool,
    pub filters: Value,
    /// Accepted deliveries per minute.
    pub rate_limit: u32,
    /// From the subscriptions file rather than config.yaml.
    pub dynamic: bool,
}

impl Route {
    pub fn insecure(&self) -> bool {
        self.secret == INSECURE_NO_AUTH
    }
}

/// The routes in force, by name: config.yaml's win over the subscriptions file's.
#[derive(Debug, Default, Clone)]
pub struct Routes {
    pub by_name: HashMap<String, Arc<Route>>,
}

/// Reads the settings: `lookup` is the environment then `.env`; `yaml` is `platforms.webhook`.
pub fn settings(
    yaml: Option<&Value>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, String> {
    let extra = yaml
        .and_then(|w| w.get("extra"))
        .cloned()
        .unwrap_or(Value::Null);
    let text = |key: &str| crate::connectors::kit::settings::env(lookup, key);
    let host = text("WEBHOOK_HOST")
        .or_else(|| extra.get("host").and_then(Value::as_str).map(str::to_owned))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.into());
    let port = match text("WEBHOOK_PORT") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("WEBHOOK_PORT must be a port number, not {p:?}"))?,
        None => match extra.get("port") {
            None | Some(Value::Null) => DEFAULT_PORT,
            Some(v) => number(v)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    format!("platforms.webhook.extra.port must be a port number, not {v}")
                })?,
        },
    };
    let secret = text("WEBHOOK_SECRET").or_else(|| {
        extra
            .get("secret")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    });
    let positive = |key: &str, default: u64| -> Result<u64, String> {
        match extra.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => number(v).filter(|n| *n > 0).ok_or_else(|| {
                format!("platforms.webhook.extra.{key} must be a positive number, not {v}")
            }),
        }
    };
    let rate_limit = positive("rate_limit", DEFAULT_RATE_LIMIT.into())?.min(u32::MAX.into()) as u32;
    let max_body_bytes = positive("max_body_bytes", DEFAULT_MAX_BODY as u64)? as usize;
    let static_routes = match extra.get("routes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(v) => {
            return Err(format!(
                "platforms.webhook.extra.routes must be a mapping, not {v}"
            ));
        }
    };
    Ok(Settings {
        host,
        port,
        secret,
        rate_limit,
        max_body_bytes,
        static_routes,
    })
}

fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// Whether `host` serves only this machine.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    matches!(
        h.to_ascii_lowercase().as_str(),
        "localhost" | "ip6-localhost" | "ip6-loopback"
    ) || h
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// One route from its declaration; `Err` says what is wrong with it, naming it.
pub fn route(name: &str, v: &Value, s: &Settings, dynamic: bool) -> Result<Route, String> {
    let Some(o) = v.as_object() else {
        return Err(format!("route {name:?} must be a mapping"));
    };
    let text = |key: &str| o.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let secret = o
        .get("secret")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| s.secret.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!("route {name:?} has no secret: set `secret` on the route or WEBHOOK_SECRET ({INSECURE_NO_AUTH} for local tests only)")
        })?;
    if secret == INSECURE_NO_AUTH && !is_loopback(&s.host) {
        return Err(format!(
            "route {name:?} uses {INSECURE_NO_AUTH} but the listener is on {}, not loopback",
            s.host
        ));
    }
    let events = match o.get("events") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| e.as_str().map(str::to_owned).ok_or(()))
            .collect::<Result<_, _>>()
            .map_err(|()| format!("route {name:?}: events must be a list of names"))?,
        Some(Value::String(one)) => one.split(',').map(|e| e.trim().to_owned()).collect(),
        Some(_) => return Err(format!("route {name:?}: events must be a list of names")),
    };
    let deliver = DeliverTo::parse(&text("deliver"));
    let deliver_only = o
        .get("deliver_only")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if deliver_only && deliver == DeliverTo::Log {
        return Err(format!(
            "route {name:?} has deliver_only but deliver is log: direct delivery needs a target (telegram, whatsapp, …)"
        ));
    }
    if o.get("script")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
    {
        return Err(format!(
            "route {name:?} has a script: bridgekeeper does not run route scripts; use filters"
        ));
    }
    let filters = o.get("filters").cloned().unwrap_or(Value::Null);
    super::render::check_filters(&filters).map_err(|e| format!("route {name:?}: {e}"))?;
    let rate_limit = o
        .get("rate_limit")
        .and_then(number)
        .filter(|n| *n > 0)
        .map_or(s.rate_limit, |n| n.min(u32::MAX.into()) as u32);
    Ok(Route {
        name: name.to_owned(),
        secret,
        events,
        prompt: text("prompt"),
        deliver,
        deliver_extra: o
            .get("deliver_extra")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        deliver_only,
        enabled: o.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        filters,
        rate_limit,
        dynamic,
    })
}

/// The routes in force: every static route must be valid (`Err` lists what is not: the
/// connector does not start with a route it cannot protect), a dynamic one that is not is
/// skipped with a warning, as Hermes does.
pub fn routes(s: &Settings, subscriptions: Option<&str>) -> Result<(Routes, Vec<String>), String> {
    let mut by_name = HashMap::new();
    let mut problems = Vec::new();
    for (name, v) in &s.static_routes {
        match route(name, v, s, false) {
            Ok(r) => {
                by_name.insert(name.clone(), Arc::new(r));
            }
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let mut warnings = Vec::new();
    if let Some(text) = subscriptions {
        match serde_json::from_str::<BTreeMap<String, Value>>(text) {
            Ok(subs) => {
                for (name, v) in subs {
                    if by_name.contains_key(&name) {
                        continue;
                    }
                    match route(&name, &v, s, true) {
                        Ok(r) => {
                            by_name.insert(name, Arc::new(r));
                        }
                        Err(e) => warnings.push(format!("{SUBSCRIPTIONS_FILE}: {e}; skipped")),
                    }
                }
            }
            Err(e) => warnings.push(format!(
                "{SUBSCRIPTIONS_FILE} is not a JSON object of routes ({e}); its routes are not served"
            )),
        }
    }
    Ok((Routes { by_name }, warnings))
}

/// `platforms.webhook` of `$HERMES_HOME/config.yaml`, as JSON (missing: `None`).
pub fn read_yaml(hermes_home: &Path) -> Result<Option<Value>, String> {
    crate::connectors::kit::hermes::platform_section(hermes_home, "webhook")
}

/// Whether config.yaml turns the webhook platform on (`platforms.webhook.enabled: true`).
pub fn enabled_in_yaml(hermes_home: &Path) -> bool {
    crate::connectors::kit::settings::yaml_says(hermes_home, "webhook", |w| {
        w.get("enabled").and_then(Value::as_bool).unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(extra: Value, env: &[(&str, &str)]) -> Result<Settings, String> {
        let yaml = json!({"enabled": true, "extra": extra});
        let lookup = |k: &str| {
            env.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        };
        settings(Some(&yaml), &lookup)
    }

    #[test]
    fn settings_take_the_environment_over_config_yaml_and_default_to_loopback() {
        let d = s(json!({}), &[]).unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.rate_limit, d.max_body_bytes),
            ("127.0.0.1", 8644, 30, 1 << 20)
        );
        let e = s(
            json!({"port": 9000, "secret": "y", "rate_limit": "5"}),
            &[("WEBHOOK_PORT", "9100"), ("WEBHOOK_SECRET", "x")],
        )
        .unwrap();
        assert_eq!(
            (e.port, e.secret.as_deref(), e.rate_limit),
            (9100, Some("x"), 5)
        );
        assert!(
            s(json!({"port": "many"}), &[])
                .unwrap_err()
                .contains("extra.port")
        );
        assert!(
            s(json!({}), &[("WEBHOOK_PORT", "70000")])
                .unwrap_err()
                .contains("WEBHOOK_PORT")
        );
        assert!(
            s(json!({"rate_limit": 0}), &[])
                .unwrap_err()
                .contains("rate_limit")
        );
        assert!(
            s(json!({"routes": [1]}), &[])
                .unwrap_err()
                .contains("routes")
        );
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0") && !is_loopback("10.0.0.1"));
    }

    #[test]
    fn static_routes_must_be_protected_and_dynamic_ones_are_skipped_when_not() {
        let base = s(json!({"routes": {
            "gh": {"secret": "k", "events": ["push"], "deliver": "telegram", "deliver_extra": {"chat_id": "1"}},
            "mon": {"deliver": "log"}
        }}), &[("WEBHOOK_SECRET", "global")]).unwrap();
        let subs = r#"{"gh": {"secret": "shadowed"}, "new": {"secret": "n", "deliver": "github_comment"},
                       "bad": {"deliver": "telegram", "deliver_only": true, "secret": ""}}"#;
        let without_global = Settings {
            secret: None,
            ..base.clone()
        };
        let (routes, warnings) = routes(&base, Some(subs)).unwrap();
        assert_eq!(routes.by_name["gh"].secret, "k", "config.yaml wins");
        assert_eq!(routes.by_name["mon"].secret, "global");
        assert_eq!(
            routes.by_name["new"].deliver,
            DeliverTo::Unsupported("github_comment".into())
        );
        // An empty secret is no secret (as Hermes: it does not fall back to the global one).
        assert!(!routes.by_name.contains_key("bad"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let err = super::routes(&without_global, None).unwrap_err();
        assert!(err.contains("\"mon\" has no secret"), "{err}");
        let (r, warnings) = super::routes(
            &Settings {
                static_routes: Map::new(),
                ..without_global
            },
            Some(subs),
        )
        .unwrap();
        assert!(r.by_name.contains_key("gh") && r.by_name.contains_key("new"));
        assert!(
            warnings.iter().any(|w| w.contains("\"bad\" has no secret")),
            "{warnings:?}"
        );
    }

    #[test]
    fn contradictory_routes_are_refused_with_their_reason() {
        let set = |routes: Value, host: &str| {
            let mut st = s(json!({"routes": routes}), &[]).unwrap();
            st.host = host.into();
            super::routes(&st, None).map(|_| ())
        };
        assert!(set(json!({"a": {"secret": INSECURE_NO_AUTH}}), "127.0.0.1").is_ok());
        assert!(
            set(json!({"a": {"secret": INSECURE_NO_AUTH}}), "0.0.0.0")
                .unwrap_err()
                .contains("not loopback")
        );
        assert!(
            set(
                json!({"a": {"secret": "k", "deliver_only": true}}),
                "127.0.0.1"
            )
            .unwrap_err()
            .contains("deliver_only")
        );
        assert!(
            set(json!({"a": {"secret": "k", "script": "x.py"}}), "127.0.0.1")
                .unwrap_err()
                .contains("script")
        );
        assert!(
            set(
                json!({"a": {"secret": "k", "filters": [{"field": "x", "regex": "."}]}}),
                "127.0.0.1"
            )
            .unwrap_err()
            .contains("regex")
        );
        assert!(
            set(json!({"a": "k"}), "127.0.0.1")
                .unwrap_err()
                .contains("mapping")
        );
    }
}
