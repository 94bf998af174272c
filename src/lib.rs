//! bridgekeeper: a supervisor for chat-network bridges. `ARCHITECTURE.md` has the map.
//!
//! Data flow: connector process → `supervisor` (one task per connector; `policy` decides) →
//! `record` (`bridge.log`, the ledger, the status board) → `gateway` (the gateway link, or the
//! in-process client behind `legacy`'s HTTP API). Commands flow back the same way. `daemon::run`
//! wires it together; `cli` holds one file per subcommand; `util` the small shared helpers.

pub mod cli;
pub mod config;
pub mod connectors;
pub mod daemon;
pub mod gateway;
pub mod legacy;
pub mod listener;
pub mod pairing;
pub mod policy;
pub mod record;
pub mod relay;
pub mod supervisor;
pub mod util;
