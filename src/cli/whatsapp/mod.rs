//! `bridgekeeper whatsapp link`: link a WhatsApp account with a QR code (terminal and PNG) or a
//! phone-number code, using the same session directory as `run` / `legacy`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::config::SupervisorConfig;
use crate::config::builtin::{WHATSAPP as CONNECTOR, find_node_bridge, whatsapp_config};
use crate::config::hermes::default_hermes_home;
use crate::connectors::whatsapp::session_dir;
pub mod link;

use link::{LinkRequest, link};

#[derive(Debug, clap::Args)]
pub struct WhatsappArgs {
    #[command(subcommand)]
    pub action: WhatsappAction,
}

#[derive(Debug, Subcommand)]
pub enum WhatsappAction {
    /// Link an account: scan a QR code, or enter a code with --phone.
    Link(LinkArgs),
}

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// Link by phone number (with country code) with an 8-character code instead of a QR code.
    #[arg(long)]
    pub phone: Option<String>,
    /// Where to write the QR code as PNG (default: beside the session directory).
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Move the current session aside and link again.
    #[arg(long)]
    pub relink: bool,
    /// Progress as JSON lines (`started`, `qr`, `code`, `connected`, `disconnected`, `error`),
    /// as the old bridge's `--pair-json` printed them.
    #[arg(long)]
    pub json: bool,
    /// A bridgekeeper config: link the session of its connector (see --connector).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = CONNECTOR)]
    pub connector: String,
    /// Without --config: the session directory (default: Hermes' own).
    #[arg(long)]
    pub session: Option<PathBuf>,
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
    #[arg(long)]
    pub node_bridge: Option<PathBuf>,
}

pub async fn run(args: WhatsappArgs) -> anyhow::Result<()> {
    let WhatsappAction::Link(args) = args.action;
    let (mut config, session) = match &args.config {
        Some(path) => {
            let config = SupervisorConfig::load(path)?;
            let c = config
                .connectors
                .iter()
                .find(|c| c.name == args.connector)
                .with_context(|| {
                    format!(
                        "{} has no connector named {:?}",
                        path.display(),
                        args.connector
                    )
                })?;
            let session = c.session_dir.clone().with_context(|| {
                format!(
                    "connector {:?} in {} has no session_dir to link",
                    args.connector,
                    path.display()
                )
            })?;
            (config, session)
        }
        None => {
            let home = args.hermes_home.clone().unwrap_or_else(default_hermes_home);
            let session = args.session.clone().unwrap_or_else(|| session_dir(&home));
            let node_bridge = find_node_bridge(args.node_bridge.as_deref())?;
            (
                whatsapp_config(
                    &home,
                    &session,
                    &node_bridge,
                    "the WhatsApp connector for linking",
                )?,
                session,
            )
        }
    };
    // Linking needs the connector only: the access policy does not matter while nobody writes.
    config.connectors.retain(|c| c.name == args.connector);
    let request = LinkRequest {
        connector: args.connector,
        session,
        phone: args.phone,
        png: args.png,
        relink: args.relink,
        json: args.json,
    };
    link(config, request).await
}
