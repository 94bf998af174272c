//! `bridgekeeper weixin link`: log a personal WeChat account in through iLink's QR code
//! (terminal and PNG), then save it where Hermes keeps it
//! (`$HERMES_HOME/weixin/accounts/<account_id>.json`, 0600, Hermes' format), so either tool
//! can use it. The token is never printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::config::hermes::default_hermes_home;
use crate::connectors::kit::Redactor;
use crate::connectors::weixin::DEFAULT_BASE_URL;
use crate::connectors::weixin::account::accounts_dir;
use crate::connectors::weixin::api::{ApiError, get};

/// How long one status poll may wait (iLink holds it).
const POLL_TIMEOUT: Duration = Duration::from_secs(35);
/// How often an expired QR code is replaced before giving up.
const MAX_REFRESHES: u32 = 3;

#[derive(Debug, clap::Args)]
pub struct WeixinArgs {
    #[command(subcommand)]
    pub action: WeixinAction,
}

#[derive(Debug, Subcommand)]
pub enum WeixinAction {
    /// Log in: scan the QR code with WeChat and confirm on the phone.
    Link(LinkArgs),
}

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
    /// The iLink API (default: WEIXIN_BASE_URL, else Tencent's).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Where to write the QR code as PNG (default: beside the saved accounts).
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 480)]
    pub timeout_secs: u64,
}

pub fn run(args: WeixinArgs) -> anyhow::Result<()> {
    let WeixinAction::Link(args) = args.action;
    let home = args.hermes_home.clone().unwrap_or_else(default_hermes_home);
    let base = args
        .base_url
        .clone()
        .or_else(|| std::env::var("WEIXIN_BASE_URL").ok())
        .or_else(|| {
            crate::config::hermes::dotenv_value(&home.join(".env"), "WEIXIN_BASE_URL")
                .ok()
                .flatten()
        })
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_BASE_URL.into());
    let dir = accounts_dir(&home);
    let png = args.png.clone().unwrap_or_else(|| dir.join("login-qr.png"));
    let confirmed = login(&base, &png, Duration::from_secs(args.timeout_secs))?;
    let saved = save(&dir, &confirmed, &base)?;
    println!(
        "linked Weixin account {} (saved in {}); `bridgekeeper run` now starts the Weixin connector",
        saved.0,
        saved.1.display()
    );
    Ok(())
}

/// One QR code: what to scan, and the code to ask about.
fn new_code(base: &str, png: &Path) -> anyhow::Result<String> {
    let qr = get(
        base,
        "ilink/bot/get_bot_qrcode",
        &[("bot_type", "3")],
        POLL_TIMEOUT,
    )
    .context("cannot get a login QR code from iLink")?;
    let code = qr
        .get("qrcode")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .context("iLink's QR answer has no qrcode")?
        .to_owned();
    let scan = qr
        .get("qrcode_img_content")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .unwrap_or(&code);
    println!("Scan this QR code with WeChat, then confirm on the phone:");
    println!("{}", super::qr::render_terminal(scan)?);
    if let Some(dir) = png.parent() {
        crate::util::fs::ensure_private_dir(dir)?;
    }
    super::qr::write_png(scan, png)?;
    println!("(also written to {})", png.display());
    Ok(code)
}

/// Polls the code's status until it is confirmed: the answer with the account and its token.
fn login(base: &str, png: &Path, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut code = new_code(base, png)?;
    let mut host = base.to_owned();
    let mut refreshes = 0;
    while Instant::now() < deadline {
        // The code is the QR's payload: kept out of every message.
        let hide = Redactor::default().with(&code, "qr code");
        let status = match get(
            &host,
            "ilink/bot/get_qrcode_status",
            &[("qrcode", &code)],
            POLL_TIMEOUT,
        ) {
            Ok(s) => s,
            Err(ApiError::Network(e)) => {
                eprintln!("bridgekeeper: waiting for iLink ({})", hide.redact(&e));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Err(e) => bail!("{}", hide.redact(&e.to_string())),
        };
        match status
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("wait")
        {
            "scaned" => println!("scanned; confirm on the phone…"),
            "scaned_but_redirect" => {
                if let Some(h) = status.get("redirect_host").and_then(Value::as_str) {
                    host = format!("https://{h}");
                }
            }
            "expired" => {
                refreshes += 1;
                if refreshes > MAX_REFRESHES {
                    bail!(
                        "the QR code expired {MAX_REFRESHES} times; run `bridgekeeper weixin link` again"
                    );
                }
                println!("the QR code expired; a new one ({refreshes}/{MAX_REFRESHES}):");
                code = new_code(base, png)?;
            }
            "confirmed" => {
                let _ = std::fs::remove_file(png);
                return Ok(status);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    bail!("no confirmation within {} s", timeout.as_secs())
}

/// Writes the account as Hermes does; returns its id and file.
fn save(dir: &Path, confirmed: &Value, base: &str) -> anyhow::Result<(String, PathBuf)> {
    let field = |k: &str| {
        confirmed
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (Some(account_id), Some(token)) = (field("ilink_bot_id"), field("bot_token")) else {
        bail!("iLink confirmed the login but gave no account id or token");
    };
    if account_id.contains(['/', '\\']) || account_id.starts_with('.') {
        bail!("iLink gave an account id that cannot name a file: {account_id:?}");
    }
    let saved_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let body = json!({
        "token": token,
        "base_url": field("baseurl").unwrap_or_else(|| base.to_owned()),
        "user_id": field("ilink_user_id").unwrap_or_default(),
        "saved_at": saved_at,
    });
    crate::util::fs::ensure_private_dir(dir)?;
    let path = dir.join(format!("{account_id}.json"));
    crate::util::fs::write_atomic(&path, serde_json::to_string_pretty(&body)?.as_bytes())?;
    Ok((account_id, path))
}
