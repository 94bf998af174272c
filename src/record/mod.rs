//! What happened, recorded: `bridge.log` (`log`), the message ledger (`ledger`) and the status
//! board behind `status.json` and `/health` (`board`). Only this module counts; an inbound
//! message's outcome is recorded by one call (`log::EventLog::decision`).

pub mod board;
pub mod ledger;
pub mod log;
