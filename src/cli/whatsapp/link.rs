//! Linking a WhatsApp account: run the connector under the supervisor and show what it reports
//! — a QR code in the terminal (and as a PNG), refreshed as WhatsApp rotates it, or an
//! 8-character code for linking by phone number — until the connection opens.
//!
//! Serves `bridgekeeper whatsapp link` and the old bridge's `--pair-only` / `--pair-json`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bridge_protocol::gateway::{ConnectorStateName, GatewayCommand, GatewayEvent};
use bridge_protocol::message::{ConnectionState, LinkByPhone};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::SupervisorConfig;
use crate::daemon::start_in_process;
use crate::gateway::in_process::GatewayClient;
use crate::util::mask::mask_id;

/// Linking gives up after this long without an open connection.
const LINK_DEADLINE: Duration = Duration::from_secs(300);
/// How long the connection stays up after opening, so the first credential and key writes land.
const SETTLE: Duration = Duration::from_secs(2);

pub struct LinkRequest {
    pub connector: String,
    pub session: PathBuf,
    /// Link by phone number (8-character code) instead of a QR code.
    pub phone: Option<String>,
    /// Where to write the QR PNG (default: beside the session directory).
    pub png: Option<PathBuf>,
    /// Move an existing session aside and link again.
    pub relink: bool,
    /// Progress as JSON lines (the old bridge's `--pair-json`).
    pub json: bool,
}

/// The account a session is linked to, if any (`creds.json` with `me.id`).
pub fn linked_account(session: &Path) -> Option<String> {
    let text = std::fs::read_to_string(session.join("creds.json")).ok()?;
    let creds: serde_json::Value = serde_json::from_str(&text).ok()?;
    creds
        .pointer("/me/id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

fn now_ms() -> u64 {
    crate::util::time::unix_ms(SystemTime::now())
}

fn json_line(value: serde_json::Value) {
    println!("{value}");
}

pub async fn link(config: SupervisorConfig, req: LinkRequest) -> anyhow::Result<()> {
    if let Some(account) = linked_account(&req.session) {
        if !req.relink {
            if req.json {
                json_line(
                    json!({"ts": now_ms(), "event": "connected", "user": {"id": account}, "alreadyLinked": true}),
                );
            } else {
                println!(
                    "This session is already linked (account {}), in {}.\nTo link again, run `bridgekeeper whatsapp link --relink`: it moves this session aside first.",
                    mask_id(&account),
                    req.session.display()
                );
            }
            return Ok(());
        }
        let aside = PathBuf::from(format!(
            "{}.replaced-{}",
            req.session.display(),
            now_ms() / 1000
        ));
        std::fs::rename(&req.session, &aside)
            .with_context(|| format!("cannot move {} aside", req.session.display()))?;
        println!("The old session was moved to {}.", aside.display());
    }
    let png = req.png.clone().unwrap_or_else(|| {
        req.session
            .parent()
            .unwrap_or(Path::new("."))
            .join("whatsapp-qr.png")
    });
    if req.json {
        json_line(json!({"ts": now_ms(), "event": "started"}));
    } else {
        println!(
            "Linking WhatsApp using session directory {}\n(bridgekeeper's state goes to {}, its log to {})",
            req.session.display(),
            config.state_dir.display(),
            config.log.path.display()
        );
    }

    let shutdown = CancellationToken::new();
    let started = start_in_process(config, 16, shutdown.clone()).await?;
    let (client, mut events, daemon) = (started.client, started.events, started.daemon);

    let outcome = follow(&client, &mut events, &req, &png).await;
    shutdown.cancel();
    let _ = daemon.await;
    let _ = std::fs::remove_file(&png); // an old QR must not linger
    outcome
}

async fn follow(
    client: &std::sync::Arc<GatewayClient>,
    events: &mut tokio::sync::broadcast::Receiver<GatewayEvent>,
    req: &LinkRequest,
    png: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + LINK_DEADLINE;
    let mut qr_seen = false;
    let mut code_requested = false;
    // The answer to the phone-number link request: a failure ends the run (one outcome).
    let (phone_tx, mut phone_rx) = tokio::sync::mpsc::channel::<String>(1);
    loop {
        let next = tokio::select! {
            failure = phone_rx.recv(), if code_requested => match failure {
                Some(why) => {
                    if req.json {
                        json_line(json!({"ts": now_ms(), "event": "error", "error": why}));
                    }
                    anyhow::bail!("linking by phone number failed: {why}");
                }
                None => continue,
            },
            next = tokio::time::timeout_at(deadline.into(), events.recv()) => next,
        };
        let event = match next {
            Err(_) => anyhow::bail!(
                "not linked within {} s; run the command again",
                LINK_DEADLINE.as_secs()
            ),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(_)) => anyhow::bail!("bridgekeeper stopped before the account was linked"),
            Ok(Ok(e)) => e,
        };
        match event {
            GatewayEvent::ConnectorState {
                state: ConnectorStateName::Running,
                ..
            } if req.phone.is_some() && !code_requested => {
                code_requested = true;
                let client = client.clone();
                let phone = req.phone.clone().unwrap_or_default();
                let phone_tx = phone_tx.clone();
                tokio::spawn(async move {
                    let cmd = GatewayCommand::LinkByPhone(LinkByPhone { phone });
                    let failure = match client.call(cmd, Duration::from_secs(60)).await {
                        Ok(r) if !r.ok => Some(r.error.map(|e| e.message).unwrap_or_default()),
                        Err(e) => Some(e.to_string()),
                        Ok(_) => None,
                    };
                    if let Some(why) = failure {
                        let _ = phone_tx.send(why).await;
                    }
                });
            }
            GatewayEvent::ConnectorState {
                state: s @ (ConnectorStateName::Failed | ConnectorStateName::Conflict),
                exit,
                ..
            } => {
                let why = exit
                    .map(|e| e.reason)
                    .unwrap_or_else(|| s.as_str().to_owned());
                if req.json {
                    json_line(json!({"ts": now_ms(), "event": "error", "error": why}));
                }
                anyhow::bail!("the WhatsApp connector stopped ({why}); see `bridgekeeper logs`");
            }
            GatewayEvent::Qr {
                data,
                expires_in_ms,
                ..
            } if req.phone.is_none() => {
                qr_seen = true;
                if req.json {
                    json_line(json!({"ts": now_ms(), "event": "qr", "qr": data}));
                    continue;
                }
                let art = crate::cli::qr::render_terminal(&data)?;
                crate::cli::qr::write_png(&data, png)?;
                let secs = expires_in_ms.unwrap_or(20_000) / 1000;
                println!(
                    "\n{art}Scan this with WhatsApp on your phone: Settings → Linked devices → Link a device.\nIt expires in {secs} s; a new one follows. Also saved as {} for headless hosts.",
                    png.display()
                );
            }
            GatewayEvent::LinkCode { code, .. } => {
                if req.json {
                    json_line(json!({"ts": now_ms(), "event": "code", "code": code}));
                } else {
                    let shown = if code.len() == 8 {
                        format!("{}-{}", &code[..4], &code[4..])
                    } else {
                        code
                    };
                    println!(
                        "\nOn your phone: WhatsApp → Settings → Linked devices → Link a device → Link with phone number instead, and enter:\n\n    {shown}\n"
                    );
                }
            }
            GatewayEvent::Connection { status, .. } => match status.state {
                ConnectionState::Open => {
                    let account = wait_account(events).await;
                    // Open without an account is a session WhatsApp has not confirmed (a link
                    // that did not finish): not linked, whatever the socket says.
                    if account.0.is_none() {
                        if req.json {
                            json_line(
                                json!({"ts": now_ms(), "event": "error", "error": "no_account"}),
                            );
                        }
                        anyhow::bail!(
                            "the connection opened but WhatsApp did not confirm an account, so {} is not linked; run the command again to start over",
                            req.session.display()
                        );
                    }
                    if req.json {
                        json_line(
                            json!({"ts": now_ms(), "event": "connected", "user": {"id": account.0, "name": account.1}}),
                        );
                    } else {
                        println!(
                            "Linked{}. The session is saved in {}.",
                            account
                                .0
                                .as_deref()
                                .map(|a| format!(" as {}", mask_id(a)))
                                .unwrap_or_default(),
                            req.session.display()
                        );
                    }
                    tokio::time::sleep(SETTLE).await;
                    return Ok(());
                }
                ConnectionState::LoggedOut => {
                    if req.json {
                        json_line(json!({"ts": now_ms(), "event": "error", "error": "logged_out"}));
                    }
                    anyhow::bail!("WhatsApp refused the link (logged out); run the command again");
                }
                ConnectionState::Closed => {
                    if req.json {
                        json_line(
                            json!({"ts": now_ms(), "event": "disconnected", "reason": status.code}),
                        );
                    }
                    if qr_seen && status.code == Some(408) {
                        anyhow::bail!(
                            "the QR code expired before it was scanned; run the command again"
                        );
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// The account identity follows the open status; wait briefly for it.
async fn wait_account(
    events: &mut tokio::sync::broadcast::Receiver<GatewayEvent>,
) -> (Option<String>, Option<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let GatewayEvent::Account { account, .. } = event {
            return (account.phone, account.name);
        }
    }
    (None, None)
}
