//! Where a platform's settings are read from — the command line, the config file, the
//! environment, Hermes' `.env` and `config.yaml`, the relay's declarations — each value kept with
//! its origin.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value as Yaml;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Cli {
        key: String,
    },
    ConfigFile {
        path: PathBuf,
        key: String,
    },
    Env {
        key: String,
    },
    DotEnv {
        path: PathBuf,
        key: String,
    },
    ConfigYaml {
        path: PathBuf,
        key: String,
    },
    /// What a relay gateway declared with `POST /relay/policy` (kept in the state dir).
    RelayPolicy {
        path: PathBuf,
        key: String,
    },
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cli { key } => write!(f, "command line (--set {key})"),
            Self::ConfigFile { path, key } => write!(f, "{} ({key})", path.display()),
            Self::Env { key } => write!(f, "environment ({key})"),
            Self::DotEnv { path, key } => write!(f, "{} ({key})", path.display()),
            Self::ConfigYaml { path, key } => write!(f, "{} ({key})", path.display()),
            Self::RelayPolicy { path, key } => {
                write!(f, "relay gateway's policy {} ({key})", path.display())
            }
            Self::Default => write!(f, "default"),
        }
    }
}

/// A raw value as a source holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Text(String),
    List(Vec<String>),
    Bool(bool),
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => write!(f, "{s}"),
            Self::List(l) => write!(f, "{}", l.join(",")),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Everything resolution reads, gathered first so resolution itself is a pure function.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub hermes_home: PathBuf,
    pub cli: BTreeMap<String, String>,
    pub file: Option<(PathBuf, BTreeMap<String, Raw>)>,
    pub env: BTreeMap<String, String>,
    pub dotenv: Option<(PathBuf, BTreeMap<String, String>)>,
    pub yaml: Option<(PathBuf, Yaml)>,
    /// `relay-policy.json`: per platform, what a relay gateway declared.
    pub relay: Option<(PathBuf, serde_json::Map<String, serde_json::Value>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {}: {detail}", path.display())]
    DotEnv { path: PathBuf, detail: String },
    #[error("{} is not valid YAML: {detail}", path.display())]
    Yaml { path: PathBuf, detail: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Sources {
    /// Reads `.env` and `config.yaml` under `hermes_home` (missing files are fine) and takes a
    /// copy of the process environment.
    pub fn gather(hermes_home: &Path, cli: BTreeMap<String, String>) -> Result<Self, SourceError> {
        let dotenv_path = hermes_home.join(".env");
        let dotenv = if dotenv_path.exists() {
            let iter = dotenvy::from_path_iter(&dotenv_path).map_err(|e| SourceError::DotEnv {
                path: dotenv_path.clone(),
                detail: e.to_string(),
            })?;
            let mut vars = BTreeMap::new();
            for item in iter {
                let (k, v) = item.map_err(|e| SourceError::DotEnv {
                    path: dotenv_path.clone(),
                    detail: e.to_string(),
                })?;
                vars.insert(k, v);
            }
            Some((dotenv_path, vars))
        } else {
            None
        };
        let yaml_path = hermes_home.join("config.yaml");
        let yaml = match std::fs::read_to_string(&yaml_path) {
            Ok(text) => {
                let value: Yaml =
                    serde_yaml_ng::from_str(&text).map_err(|e| SourceError::Yaml {
                        path: yaml_path.clone(),
                        detail: e.to_string(),
                    })?;
                Some((yaml_path, value))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(SourceError::Read {
                    path: yaml_path,
                    source,
                });
            }
        };
        Ok(Self {
            hermes_home: hermes_home.to_owned(),
            cli,
            file: None,
            env: std::env::vars().collect(),
            dotenv,
            yaml,
            relay: None,
        })
    }

    /// Adds what relay gateways declared (`relay-policy.json`, written by the relay). Missing
    /// is fine; an unreadable file is an error like any other source's.
    pub fn read_relay_policy(&mut self, path: &Path) -> Result<(), SourceError> {
        // No file (or no state dir yet, which `run` reports itself): nothing was declared.
        if !path.is_file() {
            return Ok(());
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(source) => {
                return Err(SourceError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let map = serde_json::from_str(&text).map_err(|e| SourceError::Yaml {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        self.relay = Some((path.to_owned(), map));
        Ok(())
    }
}

/// One key of a `.env` file: `None` when the file or the key is missing or the value empty; an
/// error only for a file that is there but cannot be read or parsed.
pub fn dotenv_value(path: &Path, key: &str) -> std::io::Result<Option<String>> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    Ok(iter
        .flatten()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .filter(|v| !v.trim().is_empty()))
}
