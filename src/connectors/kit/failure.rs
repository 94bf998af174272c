//! What a failed call to a platform's API means, whatever the platform. Each API client's
//! error says which `Failure` it is; from that alone the kit makes a command's error and
//! tells a connection whether it ends (and in which terminal state) or waits and tries again.

use std::time::Duration;

use bridge_protocol::message::ErrorBody;

use super::link::{Link, error};
use super::terminal::Terminal;
use crate::connectors::description::Description;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer (refused, reset, timed out): the call may or may not have been carried out.
    Unanswered,
    /// Too many calls: wait (as long as the platform said, when it did) and try again.
    RateLimited(Option<Duration>),
    /// The credentials (a bot token, an app secret) were refused: only a new one mends it.
    CredentialsRefused,
    /// The account's login is gone: only linking again mends it.
    LoginGone,
    /// Another client holds what this connection needs (a second poller, a webhook).
    Conflict,
    /// This call was refused; the next may not be.
    Refused,
}

/// An API client's error that knows which `Failure` it is (its text carries no secret).
pub trait Classified: std::fmt::Display {
    fn failure(&self) -> Failure;
}

impl Failure {
    /// The state a connection that met this failure ends in; `None`: it waits and tries again.
    pub fn terminal(self) -> Option<Terminal> {
        match self {
            Self::CredentialsRefused => Some(Terminal::NeedsToken),
            Self::LoginGone => Some(Terminal::NeedsRelink),
            Self::Conflict => Some(Terminal::Conflict),
            Self::Unanswered | Self::RateLimited(_) | Self::Refused => None,
        }
    }
}

/// Ends the connection in `terminal`, saying why and what mends it (the platform's
/// description names the fix); the exit code to end the process with.
pub fn end(link: &Link, terminal: Terminal, why: &dyn std::fmt::Display, d: &Description) -> i32 {
    let fix = match terminal {
        Terminal::NeedsToken => d.builtin.as_ref().map(|b| b.token_fix),
        Terminal::NeedsRelink => Some(d.relink_fix),
        Terminal::Conflict => None,
    };
    match fix {
        Some(fix) => link.end(terminal, &format!("{why}; {fix}")),
        None => link.end(terminal, &why.to_string()),
    }
}

/// The error a command's result carries when its call failed: the same codes on every
/// platform, and `refused` (the platform's own, `telegram_error`) for what only it refused.
/// A call with no answer may have been carried out: `unconfirmed`.
pub fn command_error(e: &dyn Classified, refused: &str) -> ErrorBody {
    let text = e.to_string();
    match e.failure() {
        Failure::Unanswered => error("network_error", &text, true),
        Failure::RateLimited(_) => error("rate_limited", &text, false),
        Failure::LoginGone => error("session_expired", &text, false),
        Failure::CredentialsRefused | Failure::Conflict | Failure::Refused => {
            error(refused, &text, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Said(Failure);

    impl std::fmt::Display for Said {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    impl Classified for Said {
        fn failure(&self) -> Failure {
            self.0
        }
    }

    #[test]
    fn each_failure_has_one_code_and_one_next_step() {
        let code = |f| command_error(&Said(f), "x_error");
        assert_eq!(
            (
                code(Failure::Unanswered).code,
                code(Failure::Unanswered).unconfirmed
            ),
            ("network_error".into(), true)
        );
        assert_eq!(code(Failure::RateLimited(None)).code, "rate_limited");
        assert_eq!(code(Failure::LoginGone).code, "session_expired");
        assert_eq!(code(Failure::Refused).code, "x_error");
        assert_eq!(
            Failure::CredentialsRefused.terminal(),
            Some(Terminal::NeedsToken)
        );
        assert_eq!(Failure::LoginGone.terminal(), Some(Terminal::NeedsRelink));
        assert_eq!(Failure::Conflict.terminal(), Some(Terminal::Conflict));
        assert_eq!(Failure::RateLimited(None).terminal(), None);
        assert_eq!(Failure::Unanswered.terminal(), None);
    }
}
