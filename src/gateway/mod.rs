//! The gateway end of the pipeline: the gateway link on the daemon's stdin/stdout (`link`:
//! the reader routing requests, the writer — the only writer of stdout) and the in-process
//! gateway client the drop-in HTTP API and `whatsapp link` use (`in_process`).

pub mod in_process;
pub mod link;
