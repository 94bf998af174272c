//! What a connector's exit means: from the facts the supervisor has — whether it was stopping
//! the connector itself, what the connector last reported, whether it ever said hello, its exit
//! code or signal — to the restart class and the reason shown in `status` and `bridge.log`.
//! The exit codes are the connector contract's (`bridge_protocol::exit`).

use bridge_protocol::exit;
use bridge_protocol::message::ConnectionState;

use super::restart::ExitClass;

/// Why a connector process ended. Closed list; `as_str` is the stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// Stopped by the supervisor (shutdown).
    Stopped,
    SpawnFailed,
    ProtocolMismatch,
    LoggedOut,
    Conflict,
    HelloTimeout,
    RestartRequested,
    TransientDisconnect,
    ConnectorFatal,
    ExitedUnexpectedly,
    Crashed,
    KilledBySignal,
    /// The supervisor found it hung (no answer to its ping, or silent) and stopped it.
    Hung,
    /// Its connection was open but deaf (no server frames, or no messages): restarted to
    /// reconnect.
    TransportInactive,
    AppSilent,
    /// The network refused the connector's token.
    BadToken,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::SpawnFailed => "spawn_failed",
            Self::ProtocolMismatch => "protocol_mismatch",
            Self::LoggedOut => "logged_out",
            Self::Conflict => "conflict",
            Self::HelloTimeout => "hello_timeout",
            Self::RestartRequested => "restart_requested",
            Self::TransientDisconnect => "transient_disconnect",
            Self::ConnectorFatal => "connector_fatal",
            Self::ExitedUnexpectedly => "exited_unexpectedly",
            Self::Crashed => "crashed",
            Self::KilledBySignal => "killed_by_signal",
            Self::Hung => "hung",
            Self::TransportInactive => "transport_inactive",
            Self::AppSilent => "app_silent",
            Self::BadToken => "bad_token",
        }
    }
}

/// The supervisor's own reason to stop the process, if it was stopping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    Shutdown,
    /// It was hung: stopped to be restarted.
    Hung,
    /// Its connection was deaf: stopped to reconnect at once.
    Reconnect(ExitReason),
    /// The connector cannot be used; it is not restarted.
    Fatal(ExitReason),
}

/// What is known when a connector process has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitFacts {
    pub stopping: Option<Stopping>,
    /// A terminal connection state the connector reported before it exited.
    pub reported: Option<ConnectionState>,
    pub hello_timed_out: bool,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// The one place an exit is classified. The supervisor's own stop wins, then what the
/// connector reported, then a missed hello, then the exit code.
pub fn classify_exit(f: ExitFacts) -> (ExitClass, ExitReason) {
    match f.stopping {
        Some(Stopping::Fatal(reason)) => return (ExitClass::Fatal, reason),
        Some(Stopping::Shutdown) => return (ExitClass::Backoff, ExitReason::Stopped),
        Some(Stopping::Hung) => return (ExitClass::Backoff, ExitReason::Hung),
        Some(Stopping::Reconnect(reason)) => return (ExitClass::RestartNow, reason),
        None => {}
    }
    match f.reported {
        Some(ConnectionState::LoggedOut) => return (ExitClass::LoggedOut, ExitReason::LoggedOut),
        Some(ConnectionState::Conflict) => return (ExitClass::Conflict, ExitReason::Conflict),
        _ => {}
    }
    if f.hello_timed_out {
        return (ExitClass::Backoff, ExitReason::HelloTimeout);
    }
    match (f.code, f.signal) {
        (Some(exit::RESTART_NOW), _) => (ExitClass::RestartNow, ExitReason::RestartRequested),
        (Some(exit::RESTART_BACKOFF), _) => (ExitClass::Backoff, ExitReason::TransientDisconnect),
        (Some(exit::LOGGED_OUT), _) => (ExitClass::LoggedOut, ExitReason::LoggedOut),
        (Some(exit::CONFLICT), _) => (ExitClass::Conflict, ExitReason::Conflict),
        (Some(exit::FATAL), _) => (ExitClass::Fatal, ExitReason::ConnectorFatal),
        (Some(exit::NEEDS_TOKEN), _) => (ExitClass::NeedsToken, ExitReason::BadToken),
        (Some(exit::CLEAN), _) => (ExitClass::Backoff, ExitReason::ExitedUnexpectedly),
        (Some(_), _) => (ExitClass::Backoff, ExitReason::Crashed),
        (None, Some(_)) => (ExitClass::Backoff, ExitReason::KilledBySignal),
        (None, None) => (ExitClass::Backoff, ExitReason::Crashed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionState as S;
    use ExitClass as C;
    use ExitReason as R;

    fn facts(code: Option<i32>, signal: Option<i32>) -> ExitFacts {
        ExitFacts {
            stopping: None,
            reported: None,
            hello_timed_out: false,
            code,
            signal,
        }
    }

    #[test]
    fn the_exit_table() {
        let rows: Vec<(&str, ExitFacts, (ExitClass, ExitReason))> = vec![
            (
                "restart now",
                facts(Some(10), None),
                (C::RestartNow, R::RestartRequested),
            ),
            (
                "transient",
                facts(Some(11), None),
                (C::Backoff, R::TransientDisconnect),
            ),
            (
                "logged out by code",
                facts(Some(12), None),
                (C::LoggedOut, R::LoggedOut),
            ),
            (
                "conflict by code",
                facts(Some(13), None),
                (C::Conflict, R::Conflict),
            ),
            (
                "fatal by code",
                facts(Some(14), None),
                (C::Fatal, R::ConnectorFatal),
            ),
            (
                "clean exit unasked",
                facts(Some(0), None),
                (C::Backoff, R::ExitedUnexpectedly),
            ),
            (
                "any other code",
                facts(Some(1), None),
                (C::Backoff, R::Crashed),
            ),
            (
                "a signal",
                facts(None, Some(9)),
                (C::Backoff, R::KilledBySignal),
            ),
            ("nothing known", facts(None, None), (C::Backoff, R::Crashed)),
            (
                "reported logged out, then crashed",
                ExitFacts {
                    reported: Some(S::LoggedOut),
                    ..facts(Some(1), None)
                },
                (C::LoggedOut, R::LoggedOut),
            ),
            (
                "reported conflict, then exited 0",
                ExitFacts {
                    reported: Some(S::Conflict),
                    ..facts(Some(0), None)
                },
                (C::Conflict, R::Conflict),
            ),
            (
                "a reported close is not terminal",
                ExitFacts {
                    reported: Some(S::Closed),
                    ..facts(Some(11), None)
                },
                (C::Backoff, R::TransientDisconnect),
            ),
            (
                "hello never came: killed",
                ExitFacts {
                    hello_timed_out: true,
                    ..facts(None, Some(9))
                },
                (C::Backoff, R::HelloTimeout),
            ),
            (
                "found hung: restarted with backoff, whatever the signal",
                ExitFacts {
                    stopping: Some(Stopping::Hung),
                    ..facts(None, Some(9))
                },
                (C::Backoff, R::Hung),
            ),
            (
                "our shutdown wins over the code",
                ExitFacts {
                    stopping: Some(Stopping::Shutdown),
                    ..facts(Some(12), None)
                },
                (C::Backoff, R::Stopped),
            ),
            (
                "our fatal stop wins over what it reported",
                ExitFacts {
                    stopping: Some(Stopping::Fatal(R::ProtocolMismatch)),
                    reported: Some(S::LoggedOut),
                    ..facts(None, Some(15))
                },
                (C::Fatal, R::ProtocolMismatch),
            ),
        ];
        let failed: Vec<String> = rows
            .iter()
            .filter(|(_, f, want)| classify_exit(*f) != *want)
            .map(|(name, f, want)| format!("{name}: got {:?}, want {want:?}", classify_exit(*f)))
            .collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }
}
