//! `bridgekeeper pairing list | approve | revoke | clear-pending`: manages the pairing files
//! (shared with Hermes) while the daemon runs; the store's file lock keeps them consistent.

use std::path::PathBuf;

use clap::Subcommand;

use crate::pairing::{self, PairingStore};

#[derive(Debug, clap::Args)]
pub struct PairingArgs {
    /// Hermes home holding the pairing files (default: $HERMES_HOME, else ~/.hermes).
    #[arg(long, global = true)]
    pub hermes_home: Option<PathBuf>,
    /// The config file the daemon runs with: its `hermes_home` holds the pairing files.
    #[arg(long, short, global = true, conflicts_with = "hermes_home")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub action: PairingAction,
}

#[derive(Debug, Subcommand)]
pub enum PairingAction {
    /// Pending requests (with what to approve them with) and approved users.
    List { platform: Option<String> },
    /// Approve a request by its code (any case, spaces allowed) or its request id.
    Approve {
        platform: String,
        #[arg(num_args = 1.., required = true)]
        code_or_id: Vec<String>,
    },
    /// Remove a user's approval, pending codes and rate-limit entry.
    Revoke { platform: String, user: String },
    /// Drop every pending request (of one platform, or all).
    ClearPending { platform: Option<String> },
    /// Lift the lock on approvals after too many failed attempts (owner only, this machine).
    Unlock { platform: String },
}

fn now() -> f64 {
    crate::util::time::unix_secs()
}

pub fn run(args: PairingArgs) -> anyhow::Result<()> {
    let home = crate::cli::hermes_home(args.config.as_deref(), args.hermes_home)?;
    let store = PairingStore::for_hermes_home(&home);
    match args.action {
        PairingAction::List { platform } => {
            let listing = store.list(platform.as_deref(), now())?;
            if listing.platforms.is_empty() {
                println!("no pairing data in {}", store.dir().display());
            }
            let now = now();
            for p in listing.platforms {
                println!("{}:", p.platform);
                if let Some(until) = p.locked_until {
                    println!(
                        "  approvals LOCKED for {} more min after too many failed attempts",
                        ((until - now) / 60.0).ceil()
                    );
                }
                println!("  pending ({}):", p.pending.len());
                if !p.pending.is_empty() {
                    println!(
                        "    {:<18} {:<16} {:<20} {:>8}",
                        "APPROVE WITH", "USER", "NAME", "EXPIRES"
                    );
                }
                for r in &p.pending {
                    let left = (pairing::CODE_TTL_SECS - (now - r.created_at)).max(0.0);
                    println!(
                        "    {:<18} {:<16} {:<20} {:>6}min",
                        r.approve_with,
                        r.user_id,
                        r.user_name,
                        (left / 60.0).ceil()
                    );
                }
                println!("  approved ({}):", p.approved.len());
                for a in &p.approved {
                    println!("    {:<16} {}", a.user_id, a.user_name);
                }
            }
        }
        PairingAction::Approve {
            platform,
            code_or_id,
        } => {
            let input = code_or_id.join(" ");
            let approved = store.approve(&platform, &input, now())?;
            println!(
                "approved {} ({}) on {platform}",
                approved.user_id,
                if approved.user_name.is_empty() {
                    "no name"
                } else {
                    &approved.user_name
                }
            );
            if let Some(key) = approved.mirrored {
                println!(
                    "also added to {key} in {}/.env, as Hermes does",
                    home.display()
                );
            }
        }
        PairingAction::Revoke { platform, user } => {
            let r = store.revoke(&platform, &user)?;
            if !r.was_approved && r.pending_removed == 0 && !r.rate_limit_removed {
                anyhow::bail!(
                    "{user} has no approval, pending code or rate-limit entry on {platform}"
                );
            }
            println!(
                "revoked {user} on {platform}: approval {}, {} pending code(s) removed, rate limit {}",
                if r.was_approved { "removed" } else { "none" },
                r.pending_removed,
                if r.rate_limit_removed {
                    "cleared"
                } else {
                    "none"
                }
            );
            if let Some(key) = r.mirrored {
                println!(
                    "also removed from {key} in {}/.env, as Hermes does",
                    home.display()
                );
            }
        }
        PairingAction::Unlock { platform } => {
            if store.unlock(&platform)? {
                println!("approvals for {platform} are unlocked; failed attempts reset");
            } else {
                println!("approvals for {platform} were not locked");
            }
        }
        PairingAction::ClearPending { platform } => {
            let n = store.clear_pending(platform.as_deref())?;
            println!("cleared {n} pending request(s)");
        }
    }
    Ok(())
}
