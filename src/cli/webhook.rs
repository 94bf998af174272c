//! `bridgekeeper webhook subscribe|list|remove|test`: the dynamic routes in
//! `$HERMES_HOME/webhook_subscriptions.json`, in Hermes' format (either tool manages them; the
//! running receiver picks a change up without a restart). A new route's secret is printed once,
//! at `subscribe`; `list` never prints secrets.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Subcommand;
use serde_json::{Map, Value, json};

use crate::config::hermes::default_hermes_home;
use crate::connectors::webhook::routes::{self, SUBSCRIPTIONS_FILE};
use crate::connectors::webhook::signature::{self, Scheme};

#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    #[arg(long, global = true)]
    pub hermes_home: Option<PathBuf>,
    #[command(subcommand)]
    pub action: WebhookAction,
}

#[derive(Debug, Subcommand)]
pub enum WebhookAction {
    /// Add (or update) a route: prints its URL and, once, its secret.
    #[command(alias = "add")]
    Subscribe(SubscribeArgs),
    /// The dynamic routes: URL, events, where answers go (no secrets).
    #[command(alias = "ls")]
    List,
    /// Remove a dynamic route (config.yaml's routes are edited there).
    #[command(alias = "rm")]
    Remove { name: String },
    /// Sign a test delivery with the route's secret and post it to the running receiver.
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
pub struct SubscribeArgs {
    pub name: String,
    /// Event types to accept, comma-separated (default: all).
    #[arg(long)]
    pub events: Option<String>,
    /// The prompt template (`{pull_request.title}`, `{__raw__}`).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Where answers go: log, telegram, whatsapp, weixin, …
    #[arg(long, default_value = "log")]
    pub deliver: String,
    /// The chat on the `--deliver` platform.
    #[arg(long)]
    pub deliver_chat_id: Option<String>,
    /// Send the rendered prompt itself to the target, without the agent.
    #[arg(long)]
    pub deliver_only: bool,
    /// Use this secret instead of a generated one.
    #[arg(long)]
    pub secret: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    pub name: String,
    /// The JSON body to send (default: a small test event).
    #[arg(long)]
    pub payload: Option<String>,
    /// Post here instead of the URL the settings give (a receiver on another port or host).
    #[arg(long)]
    pub url: Option<String>,
}

pub fn run(args: WebhookArgs) -> anyhow::Result<()> {
    let home = args.hermes_home.clone().unwrap_or_else(default_hermes_home);
    match args.action {
        WebhookAction::Subscribe(a) => subscribe(&home, a),
        WebhookAction::List => list(&home),
        WebhookAction::Remove { name } => remove(&home, &name),
        WebhookAction::Test(a) => test(&home, a),
    }
}

/// Hermes' rule for route names: lower case, spaces to hyphens, `[a-z0-9][a-z0-9_-]*`.
pub fn route_name(raw: &str) -> anyhow::Result<String> {
    let name = raw.trim().to_lowercase().replace(' ', "-");
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        bail!(
            "invalid route name {name:?}: use lower-case letters, digits, hyphens and underscores"
        );
    }
    Ok(name)
}

fn subscriptions_path(home: &Path) -> PathBuf {
    home.join(SUBSCRIPTIONS_FILE)
}

fn load(home: &Path) -> anyhow::Result<Map<String, Value>> {
    let path = subscriptions_path(home);
    match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => bail!(
                "{} is not a JSON object of routes; fix or move it, nothing was changed",
                path.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save(home: &Path, subs: &Map<String, Value>) -> anyhow::Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("cannot create {}", home.display()))?;
    let text = serde_json::to_string_pretty(subs)?;
    // Secrets inside: 0600, written whole or not at all.
    crate::util::fs::write_atomic(&subscriptions_path(home), text.as_bytes())?;
    Ok(())
}

/// The receiver's address as the settings give it (for the URLs printed and `test`).
fn base_url(home: &Path) -> anyhow::Result<String> {
    let settings = settings(home)?;
    let host = match settings.host.as_str() {
        "0.0.0.0" | "::" => "localhost".to_owned(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_owned(),
    };
    Ok(format!("http://{host}:{}", settings.port))
}

fn settings(home: &Path) -> anyhow::Result<routes::Settings> {
    let yaml = routes::read_yaml(home).map_err(anyhow::Error::msg)?;
    let lookup = |key: &str| {
        std::env::var(key).ok().or_else(|| {
            crate::config::hermes::dotenv_value(&home.join(".env"), key)
                .ok()
                .flatten()
        })
    };
    routes::settings(yaml.as_ref(), &lookup).map_err(anyhow::Error::msg)
}

fn subscribe(home: &Path, a: SubscribeArgs) -> anyhow::Result<()> {
    let name = route_name(&a.name)?;
    if a.deliver_only && a.deliver.trim() == "log" {
        bail!(
            "--deliver-only needs --deliver to name a real target (telegram, whatsapp, …), not log"
        );
    }
    let mut subs = load(home)?;
    let updated = subs.contains_key(&name);
    let secret = a.secret.clone().unwrap_or_else(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::util::random::bytes::<32>())
    });
    let events: Vec<String> = a
        .events
        .as_deref()
        .map(|e| {
            e.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut route = json!({
        "description": a.description.clone().unwrap_or_else(|| format!("Agent-created subscription: {name}")),
        "events": events,
        "secret": secret,
        "prompt": a.prompt.clone().unwrap_or_default(),
        "skills": [],
        "deliver": a.deliver.trim(),
        "created_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    if a.deliver_only {
        route["deliver_only"] = json!(true);
    }
    if let Some(chat) = &a.deliver_chat_id {
        route["deliver_extra"] = json!({"chat_id": chat});
    }
    // The receiver would skip a route it cannot serve; say so now instead.
    let s = settings(home)?;
    routes::route(&name, &route, &s, true).map_err(anyhow::Error::msg)?;
    subs.insert(name.clone(), route);
    save(home, &subs)?;
    let url = format!("{}/webhooks/{name}", base_url(home)?);
    println!(
        "{} webhook route {name}",
        if updated { "Updated" } else { "Created" }
    );
    println!("  URL:     {url}");
    println!("  Secret:  {secret}");
    println!(
        "  Events:  {}",
        if events_text(&subs[&name]).is_empty() {
            "(all)".into()
        } else {
            events_text(&subs[&name])
        }
    );
    println!(
        "  Deliver: {}{}",
        a.deliver.trim(),
        if a.deliver_only {
            " (direct, no agent)"
        } else {
            ""
        }
    );
    println!("The secret is shown only now: give it to the sender for HMAC-SHA256 signatures.");
    Ok(())
}

fn events_text(route: &Value) -> String {
    route
        .get("events")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn list(home: &Path) -> anyhow::Result<()> {
    let subs = load(home)?;
    if subs.is_empty() {
        println!("No dynamic webhook routes. Add one with: bridgekeeper webhook subscribe NAME");
        return Ok(());
    }
    let base = base_url(home)?;
    println!("{} webhook route(s):", subs.len());
    for (name, route) in &subs {
        let deliver = route
            .get("deliver")
            .and_then(Value::as_str)
            .unwrap_or("log");
        let direct = route.get("deliver_only").and_then(Value::as_bool) == Some(true);
        let events = events_text(route);
        println!("  {name}");
        println!("    URL:     {base}/webhooks/{name}");
        println!(
            "    Events:  {}",
            if events.is_empty() { "(all)" } else { &events }
        );
        println!(
            "    Deliver: {deliver}{}",
            if direct { " (direct, no agent)" } else { "" }
        );
    }
    Ok(())
}

fn remove(home: &Path, raw: &str) -> anyhow::Result<()> {
    let name = raw.trim().to_lowercase();
    let mut subs = load(home)?;
    if subs.remove(&name).is_none() {
        bail!("no dynamic route named {name:?} (routes in config.yaml are removed there)");
    }
    save(home, &subs)?;
    println!("Removed webhook route {name}");
    Ok(())
}

fn test(home: &Path, a: TestArgs) -> anyhow::Result<()> {
    let name = a.name.trim().to_lowercase();
    let settings = settings(home)?;
    let subs = load(home)?;
    let route = settings
        .static_routes
        .get(&name)
        .or_else(|| subs.get(&name))
        .with_context(|| format!("no route named {name:?}"))?;
    let secret = route
        .get("secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or(settings.secret.clone())
        .with_context(|| format!("route {name:?} has no secret to sign with"))?;
    let payload = a.payload.unwrap_or_else(|| {
        r#"{"test": true, "event_type": "test", "message": "Hello from bridgekeeper webhook test"}"#.into()
    });
    serde_json::from_str::<Value>(&payload).context("--payload is not JSON")?;
    let url = match a.url {
        Some(url) => url,
        None => format!("{}/webhooks/{name}", base_url(home)?),
    };
    let id = format!("test-{}", crate::util::random::hex::<8>());
    let now = crate::util::time::unix_secs() as i64;
    let agent = crate::connectors::kit::http::agent();
    let mut request = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "test");
    for (k, v) in signature::sign(Scheme::GitHub, payload.as_bytes(), &secret, &id, now) {
        request = request.header(k, v);
    }
    println!("Posting a signed test delivery to {url}");
    let mut response = request
        .send(payload.as_bytes())
        .with_context(|| format!("cannot reach {url}: is `bridgekeeper run` serving webhooks?"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    println!("HTTP {status}: {body}");
    if !(200..300).contains(&status) {
        bail!("the receiver answered {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_follow_hermes_rule() {
        assert_eq!(route_name(" GitHub PRs ").unwrap(), "github-prs");
        assert_eq!(route_name("alerts_2").unwrap(), "alerts_2");
        assert!(route_name("-x").is_err());
        assert!(route_name("a/b").is_err());
        assert!(route_name("").is_err());
    }
}
