//! The states a connector ends in without being restarted, each with its exit code
//! (PROTOCOL.md, "Exit codes"), the connection state it reports first, and the fix it names.

use bridge_protocol::exit;
use bridge_protocol::message::ConnectionState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// The network refused the credential (a bot token, an app secret): a new one is needed.
    NeedsToken,
    /// The session expired or was logged out: link again.
    NeedsRelink,
    /// Another client took the updates (a second poller, a webhook).
    Conflict,
}

impl Terminal {
    pub fn exit_code(self) -> i32 {
        match self {
            Self::NeedsToken => exit::NEEDS_TOKEN,
            Self::NeedsRelink => exit::LOGGED_OUT,
            Self::Conflict => exit::CONFLICT,
        }
    }

    pub fn state(self) -> ConnectionState {
        match self {
            Self::NeedsToken => ConnectionState::Closed,
            Self::NeedsRelink => ConnectionState::LoggedOut,
            Self::Conflict => ConnectionState::Conflict,
        }
    }

    /// The reason's prefix: the supervisor's alert names the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::NeedsToken => "needs_token",
            Self::NeedsRelink => "needs_relink",
            Self::Conflict => "conflict",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_terminal_state_has_its_code_and_state() {
        assert_eq!(Terminal::NeedsToken.exit_code(), 15);
        assert_eq!(Terminal::NeedsRelink.exit_code(), 12);
        assert_eq!(Terminal::Conflict.exit_code(), 13);
        assert_eq!(Terminal::NeedsRelink.state(), ConnectionState::LoggedOut);
    }
}
