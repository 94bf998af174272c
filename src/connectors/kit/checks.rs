//! What `bridgekeeper doctor` asks of a connector: its checks get the Hermes home and a lookup
//! of its settings as it would run (never config's types, so connectors do not depend on
//! config), and answer findings, each problem with the command that fixes it. No check prints
//! a secret.

use std::path::Path;

use super::failure::Classified;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub fix: Option<String>,
}

/// What asking the platform about a credential found, under `subject`: accepted (`accepted`
/// says how), refused for good (a problem, and `fix`), or no verdict (a warning to ask again).
pub fn verdict<E: Classified>(subject: &str, asked: Result<String, E>, fix: &str) -> Finding {
    match asked {
        Ok(accepted) => ok(format!("{subject}: {accepted}")),
        Err(e) if e.failure().terminal().is_some() => fail(format!("{subject}: {e}"), fix),
        Err(e) => warn(
            format!("{subject}: cannot check ({e})"),
            "run doctor again; if it persists, check this machine's network to the platform",
        ),
    }
}

pub fn ok(what: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        what: what.into(),
        fix: None,
    }
}

pub fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Warn,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Fail,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// What a connector's checks are given.
pub struct CheckInput<'a> {
    /// Hermes' home (`.env`, `config.yaml`, saved logins).
    pub home: &'a Path,
    /// A setting as the connector would get it: its config entry's `env`, else the environment,
    /// else Hermes' `.env`; empty counts as unset.
    pub setting: &'a dyn Fn(&str) -> Option<String>,
    /// Whether a config file lists a connector of this platform.
    pub configured: bool,
}

/// A connector's checks.
pub type Checks = fn(&CheckInput) -> Vec<Finding>;
