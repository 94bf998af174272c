//! Connectors built into the bridgekeeper executable. The supervisor runs each as a child
//! process (`bridgekeeper connector NAME`) that speaks PROTOCOL.md over its stdio, exactly like
//! node-bridge: one file to install, and the same supervision, policy and ledger.

pub mod telegram;
