//! The webhook receiver: `bridgekeeper connector webhook`, run by the supervisor like any
//! connector. It serves Hermes' webhook routes on a loopback HTTP listener (through
//! `crate::listener`, like every listener of the executable) and turns each POST that proves
//! its route's secret into one inbound message, answering the provider only once the supervisor
//! recorded it. Answers to a webhook chat go where the route's `deliver` says: the supervisor
//! hands them to that platform's connector (`routed.deliver`); only `log` and unsupported
//! targets reach this process, which answers them itself.
//!
//! Settings: `platforms.webhook` in `$HERMES_HOME/config.yaml`, `WEBHOOK_PORT`,
//! `WEBHOOK_SECRET`, `WEBHOOK_HOST` (default 127.0.0.1), and the routes in
//! `$HERMES_HOME/webhook_subscriptions.json`, both files watched and reloaded on change.

pub mod doctor;
pub mod receive;
pub mod render;
pub mod routes;
pub mod signature;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bridge_protocol::exit;
use bridge_protocol::message::{Command, ConnectionState};
use serde_json::json;

use super::description::{Description, TextUnit};
use super::kit::{CommandOutcome, Link, error};
use super::{Builtin, Setting};
use crate::policy::{AccessPolicy, DmPolicy, Mode};
use receive::Receiver;
use routes::{DeliverTo, Routes, Settings};

/// What the operator's alert says when the receiver cannot start as configured.
pub const CONFIG_FIX: &str = "fix platforms.webhook in config.yaml or the route in webhook_subscriptions.json (see bridge.log)";
/// Connections the receiver holds at once unless `BRIDGEKEEPER_LISTEN_MAX_CONNECTIONS` says
/// otherwise: more than other listeners, so a thousand slow clients cannot starve a provider.
const DEFAULT_MAX_CONNECTIONS: &str = "4096";
/// How often a route with INSECURE_NO_AUTH is said again in the log.
const INSECURE_WARNING_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Accepted for symmetry with the other built-in connectors (payloads travel inline).
    #[arg(long)]
    pub media_dir: Option<PathBuf>,
}

/// The webhook receiver's facts. Answers go out through the route's target connector, which
/// cuts them to its own limit; nothing is edited. Its senders are machines that proved the
/// route's secret: its policy is open (the signature is the access check, made before anything
/// is recorded).
pub const DESCRIPTION: Description = Description {
    platform: "webhook",
    label: "Webhook",
    text_limit: 4096,
    text_unit: TextUnit::Chars,
    markdown: "plain",
    edits: false,
    self_chat: false,
    groups: false,
    paced: true,
    direct_chat_type: "webhook",
    access: || AccessPolicy {
        mode: Mode::Bot,
        dm_policy: DmPolicy::Open,
        ..AccessPolicy::default()
    },
    allowlist_prefixes: &[],
    ops: &[
        "send_text",
        "send_media",
        "typing",
        "read",
        "ping",
        "recorded",
    ],
    doctor: Some(doctor::checks),
    relink_fix: CONFIG_FIX,
    builtin: Some(Builtin {
        name: "webhook",
        settings: &[
            Setting::plain("WEBHOOK_ENABLED"),
            Setting::plain("WEBHOOK_PORT"),
            Setting::secret("WEBHOOK_SECRET"),
            Setting::plain("WEBHOOK_HOST"),
        ],
        enabled_by: "WEBHOOK_ENABLED",
        saved_login: Some((
            routes::enabled_in_yaml,
            "platforms.webhook.enabled in config.yaml",
        )),
        token_fix: CONFIG_FIX,
    }),
};

/// Runs until stdin closes (exit 0); a route or setting it cannot serve safely ends it with
/// exit 14 (not restarted: the config must change), a port it cannot bind with exit 11.
pub fn run(_args: WebhookArgs) -> i32 {
    let link = Link::start(DESCRIPTION.platform, DESCRIPTION.ops);
    // The supervisor always says where Hermes' home is, and passes the settings of `.env`
    // this connector reads (its description's `builtin.env`).
    let Some(home) = std::env::var_os("HERMES_HOME").map(PathBuf::from) else {
        eprintln!("webhook: HERMES_HOME is not set");
        link.status(
            ConnectionState::Closed,
            Some("config: HERMES_HOME is not set".into()),
        );
        return exit::FATAL;
    };
    let lookup = |key: &str| std::env::var(key).ok();
    let (settings, routes) = match load(&home, &lookup) {
        Ok(loaded) => loaded,
        Err(why) => {
            eprintln!("webhook: {why}");
            link.status(ConnectionState::Closed, Some(format!("config: {why}")));
            return exit::FATAL;
        }
    };
    let Some(runtime) = super::kit::runtime("webhook") else {
        return bridge_protocol::exit::RESTART_BACKOFF;
    };
    raise_open_files_limit();
    let home_channel = Box::new(move |platform: &str| {
        let key = format!("{}_HOME_CHANNEL", platform.to_ascii_uppercase());
        let chat = lookup(&key).filter(|c| !c.trim().is_empty())?;
        let thread = lookup(&format!("{key}_THREAD_ID")).filter(|t| !t.trim().is_empty());
        Some((chat.trim().to_owned(), thread))
    });
    let receiver = Arc::new(Receiver::new(
        link.clone(),
        routes,
        settings.max_body_bytes,
        home_channel,
    ));
    runtime.block_on(serve(link, receiver, settings, home))
}

fn load(
    home: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Settings, Routes), String> {
    let yaml = routes::read_yaml(home)?;
    let settings = routes::settings(yaml.as_ref(), lookup)?;
    let routes = reload_routes(home, &settings)?;
    Ok((settings, routes))
}

/// The routes from config.yaml (as read at start) and the subscriptions file (as it is now).
fn reload_routes(home: &Path, settings: &Settings) -> Result<Routes, String> {
    let path = home.join(routes::SUBSCRIPTIONS_FILE);
    let subscriptions = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let (routes, warnings) = routes::routes(settings, subscriptions.as_deref())?;
    for w in warnings {
        eprintln!("webhook: {w}");
    }
    Ok(routes)
}

async fn serve(link: Arc<Link>, receiver: Arc<Receiver>, settings: Settings, home: PathBuf) -> i32 {
    let bound = match super::kit::receiver::bind(
        &link,
        "webhook",
        &settings.host,
        settings.port,
        Some(DEFAULT_MAX_CONNECTIONS),
    )
    .await
    {
        Ok(b) => b,
        Err(code) => return code,
    };
    eprintln!(
        "webhook: listening on {} — routes: {}",
        bound.base_url,
        route_names(&receiver)
    );
    {
        let receiver = receiver.clone();
        link.start_commands(move |command| execute(&receiver, command));
    }
    link.start_heartbeats();
    spawn_route_reloader(receiver.clone(), settings, home);
    tokio::spawn(warn_about_insecure_routes(receiver.clone()));
    let url = bound.base_url.clone();
    bound.serve(link, receiver.router(), &url).await
}

fn route_names(receiver: &Receiver) -> String {
    let routes = receiver.routes.read().unwrap_or_else(|p| p.into_inner());
    let mut names: Vec<&str> = routes.by_name.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "(none yet)".into()
    } else {
        names.join(", ")
    }
}

/// Every minute while a route has no signature check: said again in the log.
async fn warn_about_insecure_routes(receiver: Arc<Receiver>) {
    let mut tick = tokio::time::interval(INSECURE_WARNING_EVERY);
    loop {
        tick.tick().await;
        let insecure: Vec<String> = {
            let routes = receiver.routes.read().unwrap_or_else(|p| p.into_inner());
            routes
                .by_name
                .values()
                .filter(|r| r.insecure())
                .map(|r| r.name.clone())
                .collect()
        };
        if !insecure.is_empty() {
            eprintln!(
                "webhook: WARNING route(s) {} accept POSTs without any signature (secret {}): for local tests only",
                insecure.join(", "),
                routes::INSECURE_NO_AUTH
            );
        }
    }
}

/// Reloads the routes when config.yaml or the subscriptions file changes (inotify; without it,
/// every 2 s): a route added by `webhook subscribe` is served without a restart, one removed
/// stops. A file that cannot be used leaves the routes in force, said in the log.
fn spawn_route_reloader(receiver: Arc<Receiver>, settings: Settings, home: PathBuf) {
    let files = [
        home.join("config.yaml"),
        home.join(routes::SUBSCRIPTIONS_FILE),
    ];
    std::thread::spawn(move || {
        let watch = crate::util::watch::FileWatch::start(&files);
        let mut seen = watch.as_ref().map_or(0, |w| w.changes());
        let mut settings = settings;
        loop {
            std::thread::sleep(Duration::from_millis(if watch.is_some() {
                100
            } else {
                2000
            }));
            let now = watch.as_ref().map_or(seen + 1, |w| w.changes());
            if now == seen {
                continue;
            }
            seen = now;
            // config.yaml's routes and secret may have changed too; the listener's address
            // and body limit stay as started.
            if let Ok(Some(yaml)) = routes::read_yaml(&home)
                && let Ok(fresh) = routes::settings(Some(&yaml), &|k| std::env::var(k).ok())
            {
                settings.static_routes = fresh.static_routes;
                settings.secret = fresh.secret.or(settings.secret.clone());
                settings.rate_limit = fresh.rate_limit;
            }
            match reload_routes(&home, &settings) {
                Ok(routes) => {
                    let changed = {
                        let mut current =
                            receiver.routes.write().unwrap_or_else(|p| p.into_inner());
                        let before = current.by_name.len();
                        *current = Arc::new(routes);
                        before != current.by_name.len()
                    };
                    if changed || watch.is_some() {
                        eprintln!("webhook: routes reloaded: {}", route_names(&receiver));
                    }
                }
                Err(e) => eprintln!("webhook: routes not reloaded, those in force stay: {e}"),
            }
        }
    });
}

/// Commands the supervisor did not deliver elsewhere: answers to chats whose route logs them
/// or names a target bridgekeeper cannot send to.
fn execute(receiver: &Receiver, command: &Command) -> CommandOutcome {
    match command {
        Command::Ping(_) => Ok(None),
        Command::Typing(_) | Command::Read(_) => Ok(Some(json!({"sent": false}))),
        Command::SendText(c) => answer_for(receiver, &c.chat, c.text.chars().count()),
        Command::SendMedia(c) => answer_for(receiver, &c.chat, 0),
        other => Err(super::kit::unsupported("webhook", other)),
    }
}

fn answer_for(receiver: &Receiver, chat: &str, chars: usize) -> CommandOutcome {
    // `webhook:<route>:<delivery id>`
    let route = chat
        .strip_prefix("webhook:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(route, _)| route);
    let Some(route) = route.and_then(|name| {
        let routes = receiver.routes.read().unwrap_or_else(|p| p.into_inner());
        routes.by_name.get(name).cloned()
    }) else {
        return Err(error(
            "unknown_chat",
            "this is not the chat of a webhook route that is served now",
            false,
        ));
    };
    match &route.deliver {
        DeliverTo::Log => {
            eprintln!(
                "webhook: answer for route {:?} logged ({chars} characters, text not kept)",
                route.name
            );
            Ok(Some(json!({"logged": true})))
        }
        DeliverTo::Unsupported(target) => Err(error(
            "unsupported",
            &format!(
                "route {:?} delivers to {target}, which bridgekeeper has no connector for; the answer was not sent",
                route.name
            ),
            false,
        )),
        DeliverTo::Platform(platform) => Err(error(
            "unknown_delivery",
            &format!(
                "no {platform} chat is known for this delivery: it is over an hour old, bridgekeeper restarted since, or route {:?} has no deliver_extra.chat_id and {}_HOME_CHANNEL is not set",
                route.name,
                platform.to_ascii_uppercase()
            ),
            false,
        )),
    }
}

/// A thousand slow clients are a thousand descriptors: the soft limit goes up to the hard one.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
