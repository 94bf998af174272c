//! bridgekeeper: a supervisor for chat-network bridges.
//!
//! Data flow: connector process → `supervisor::task` (one per connector) → `events`
//! (`bridge.log` and the ledger) → `gateway` (the gateway link). Commands flow back the same
//! way. `daemon::run` wires it together; `cli` holds one file per subcommand.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod dedup;
pub mod events;
pub mod fsutil;
pub mod gateway;
pub mod ledger;
pub mod legacy;
pub mod link;
pub mod lock;
pub mod logview;
pub mod mask;
pub mod outbound;
pub mod pairing;
pub mod policy;
pub mod qr;
pub mod status;
pub mod supervisor;
