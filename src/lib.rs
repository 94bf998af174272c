//! bridgekeeper: a supervisor for chat-network bridges. `ARCHITECTURE.md` has the map.
//!
//! Data flow: connector process (node-bridge for WhatsApp, or a built-in one of `connectors`:
//! Telegram, Weixin, WeCom's AI Bot and self-built apps, webhooks) → `supervisor` (one task per
//! connector; `policy` decides) → `record` (`bridge.log`, the ledger, the status board) →
//! `gateway` (the gateway link, or an in-process client behind `relay`, Hermes' WebSocket, or
//! `legacy`'s HTTP API). Commands flow back the same way. Every HTTP listener serves through
//! `listener`. `daemon::run` wires it together; `cli` holds one file per subcommand; `util` the
//! small shared helpers; `service` what systemd and Prometheus are told.

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
pub mod service;
pub mod supervisor;
pub mod util;
