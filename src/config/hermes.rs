//! Resolving a platform's access policy from the places Hermes users already keep it, once,
//! with a stated precedence (first source that has a key wins):
//!
//! 1. CLI: `--set KEY=VALUE` (environment-style keys, e.g. `WHATSAPP_MODE=bot`)
//! 2. the bridgekeeper config file: `connectors[].policy` (canonical keys, e.g. `mode: bot`)
//! 3. the process environment
//! 4. `$HERMES_HOME/.env`
//! 5. `$HERMES_HOME/config.yaml`: `platforms.<p>.<key>`, then `platforms.<p>.extra.<key>`, then
//!    `<p>.<key>`, and for `unauthorized_dm_behavior` also the global top-level key
//! 6. the default
//!
//! Every value keeps its origin for `config --explain`. Invalid values are reported together,
//! each with key, source and the allowed values. Contradictions become warnings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde_yaml_ng::Value as Yaml;

use crate::connectors::description::{allowlist_entry, describe};
use crate::policy::{AccessPolicy, DmPolicy, GroupPolicy, Mode, UnauthorizedDm, normalize};

mod sources;
pub use sources::{Origin, Raw, SourceError, Sources, dotenv_value};

/// The relay policy's generic names for our settings (`gateway/relay/__init__.py`,
/// `relay_relevance_policy`). `allowOtherBots` has no counterpart and is reported, not applied.
pub const RELAY_POLICY_KEYS: [(&str, &str); 2] = [
    ("requireAddress", "require_mention"),
    ("freeResponseScopes", "free_response_chats"),
];

fn relay_hit(sources: &Sources, platform: &str, key: &Key) -> Option<(Raw, Origin)> {
    let (path, map) = sources.relay.as_ref()?;
    let (wire, _) = RELAY_POLICY_KEYS
        .iter()
        .find(|(_, ours)| *ours == key.name)?;
    let value = map.get(platform)?.get(*wire)?;
    let raw = match value {
        serde_json::Value::Bool(b) => Raw::Bool(*b),
        serde_json::Value::Array(items) => Raw::List(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
        ),
        other => Raw::Text(other.to_string()),
    };
    Some((
        raw,
        Origin::RelayPolicy {
            path: path.clone(),
            key: format!("{platform}.{wire}"),
        },
    ))
}

/// `$HERMES_HOME`, else `~/.hermes`.
pub use super::hermes_paths::default_hermes_home;

/// One setting: canonical name, its environment key suffix, and its config.yaml key names.
/// Which policy field a key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Mode,
    DmPolicy,
    AllowFrom,
    AllowAllUsers,
    GroupPolicy,
    GroupAllowFrom,
    GroupAllowChats,
    RequireMention,
    FreeResponseChats,
    UnauthorizedDm,
    Debug,
}

struct Key {
    field: Field,
    name: &'static str,
    env: &'static str,
    yaml: &'static [&'static str],
    allowed: &'static str,
}

const KEYS: &[Key] = &[
    Key {
        field: Field::Mode,
        name: "mode",
        env: "MODE",
        yaml: &["mode"],
        allowed: "self-chat, bot",
    },
    Key {
        field: Field::DmPolicy,
        name: "dm_policy",
        env: "DM_POLICY",
        yaml: &["dm_policy"],
        allowed: "pairing, allowlist, open, disabled",
    },
    Key {
        field: Field::AllowFrom,
        name: "allow_from",
        env: "ALLOWED_USERS",
        yaml: &["allow_from", "allowed_users"],
        allowed: "comma-separated numbers, or *",
    },
    Key {
        field: Field::AllowAllUsers,
        name: "allow_all_users",
        env: "ALLOW_ALL_USERS",
        yaml: &["allow_all_users"],
        allowed: "true, false",
    },
    Key {
        field: Field::GroupPolicy,
        name: "group_policy",
        env: "GROUP_POLICY",
        yaml: &["group_policy"],
        allowed: "open, allowlist, disabled",
    },
    Key {
        field: Field::GroupAllowFrom,
        name: "group_allow_from",
        env: "GROUP_ALLOWED_USERS",
        yaml: &["group_allow_from", "group_allowed_users"],
        allowed: "comma-separated numbers or group ids, or *",
    },
    Key {
        field: Field::GroupAllowChats,
        name: "group_allow_chats",
        env: "GROUP_ALLOWED_CHATS",
        yaml: &["group_allow_chats", "group_allowed_chats"],
        allowed: "comma-separated chat ids, or *",
    },
    Key {
        field: Field::RequireMention,
        name: "require_mention",
        env: "REQUIRE_MENTION",
        yaml: &["require_mention"],
        allowed: "true, false",
    },
    Key {
        field: Field::FreeResponseChats,
        name: "free_response_chats",
        env: "FREE_RESPONSE_CHATS",
        yaml: &["free_response_chats"],
        allowed: "comma-separated group ids",
    },
    Key {
        field: Field::UnauthorizedDm,
        name: "unauthorized_dm_behavior",
        env: "UNAUTHORIZED_DM_BEHAVIOR",
        yaml: &["unauthorized_dm_behavior"],
        allowed: "pair, ignore",
    },
    Key {
        field: Field::Debug,
        name: "debug",
        env: "DEBUG",
        yaml: &["debug"],
        allowed: "true, false",
    },
];

pub fn is_policy_key(name: &str) -> bool {
    KEYS.iter().any(|k| k.name == name)
}

pub fn policy_keys() -> Vec<&'static str> {
    KEYS.iter().map(|k| k.name).collect()
}

/// Gateway-wide keys that apply to every platform.
const GATEWAY_ALLOWED: &str = "GATEWAY_ALLOWED_USERS";
const GATEWAY_ALLOW_ALL: &str = "GATEWAY_ALLOW_ALL_USERS";

/// An effective value and its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub name: &'static str,
    pub value: Raw,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    pub key: String,
    pub origin: String,
    pub value: String,
    pub allowed: &'static str,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {:?} from {} is not valid; allowed: {}",
            self.key, self.value, self.origin, self.allowed
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid policy settings for {platform}:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct PolicyError {
    pub platform: String,
    pub problems: Vec<InvalidValue>,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub platform: String,
    pub policy: AccessPolicy,
    pub debug: bool,
    /// Every setting with its origin, in `KEYS` order, then the gateway-wide ones.
    pub settings: Vec<Setting>,
    pub warnings: Vec<String>,
}

fn env_key(platform: &str, suffix: &str) -> String {
    format!("{}_{suffix}", platform.to_uppercase().replace('-', "_"))
}

fn yaml_get<'a>(yaml: &'a Yaml, path: &[&str]) -> Option<&'a Yaml> {
    path.iter().try_fold(yaml, |v, key| v.get(*key))
}

pub(crate) fn yaml_raw(v: &Yaml) -> Option<Raw> {
    match v {
        Yaml::Bool(b) => Some(Raw::Bool(*b)),
        Yaml::String(s) => Some(Raw::Text(s.clone())),
        Yaml::Number(n) => Some(Raw::Text(n.to_string())),
        Yaml::Sequence(items) => Some(Raw::List(
            items
                .iter()
                .filter_map(|i| match i {
                    Yaml::String(s) => Some(s.clone()),
                    Yaml::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
        )),
        _ => None,
    }
}

/// Every place in config.yaml that sets `key`, in precedence order.
fn yaml_hits(sources: &Sources, platform: &str, key: &Key) -> Vec<(Raw, Origin)> {
    let Some((path, yaml)) = &sources.yaml else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    let mut places: Vec<Vec<&str>> = Vec::new();
    for name in key.yaml {
        places.push(vec!["platforms", platform, name]);
        places.push(vec!["platforms", platform, "extra", name]);
        places.push(vec![platform, name]);
    }
    if key.name == "unauthorized_dm_behavior" {
        places.push(vec!["unauthorized_dm_behavior"]);
    }
    // Precedence is by place first, then by alternative name.
    places.sort_by_key(|p| match (p.first(), p.get(2)) {
        (Some(&"platforms"), Some(&"extra")) => 1,
        (Some(&"platforms"), _) => 0,
        _ if p.len() == 1 => 3,
        _ => 2,
    });
    for place in places {
        if let Some(raw) = yaml_get(yaml, &place).and_then(yaml_raw) {
            hits.push((
                raw,
                Origin::ConfigYaml {
                    path: path.clone(),
                    key: place.join("."),
                },
            ));
        }
    }
    hits
}

/// Every source that sets `key`, highest precedence first.
fn hits(sources: &Sources, platform: &str, key: &Key) -> Vec<(Raw, Origin)> {
    let env = env_key(platform, key.env);
    let mut out = Vec::new();
    if let Some(v) = sources.cli.get(&env) {
        out.push((Raw::Text(v.clone()), Origin::Cli { key: env.clone() }));
    }
    if let Some((path, map)) = &sources.file
        && let Some(v) = map.get(key.name)
    {
        out.push((
            v.clone(),
            Origin::ConfigFile {
                path: path.clone(),
                key: format!("policy.{}", key.name),
            },
        ));
    }
    if let Some(v) = sources.env.get(&env) {
        out.push((Raw::Text(v.clone()), Origin::Env { key: env.clone() }));
    }
    if let Some((path, vars)) = &sources.dotenv
        && let Some(v) = vars.get(&env)
    {
        out.push((
            Raw::Text(v.clone()),
            Origin::DotEnv {
                path: path.clone(),
                key: env.clone(),
            },
        ));
    }
    out.extend(yaml_hits(sources, platform, key));
    out.extend(relay_hit(sources, platform, key));
    out
}

fn gateway_hits(sources: &Sources, env: &str) -> Vec<(Raw, Origin)> {
    let mut out = Vec::new();
    if let Some(v) = sources.cli.get(env) {
        out.push((Raw::Text(v.clone()), Origin::Cli { key: env.into() }));
    }
    if let Some(v) = sources.env.get(env) {
        out.push((Raw::Text(v.clone()), Origin::Env { key: env.into() }));
    }
    if let Some((path, vars)) = &sources.dotenv
        && let Some(v) = vars.get(env)
    {
        out.push((
            Raw::Text(v.clone()),
            Origin::DotEnv {
                path: path.clone(),
                key: env.into(),
            },
        ));
    }
    out
}

fn parse_bool(raw: &Raw) -> Option<bool> {
    match raw {
        Raw::Bool(b) => Some(*b),
        Raw::Text(s) => match s.trim().to_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        Raw::List(_) => None,
    }
}

fn parse_list(raw: &Raw, platform: &str) -> Option<BTreeSet<String>> {
    let items: Vec<String> = match raw {
        Raw::Text(s) => s.split(',').map(str::to_owned).collect(),
        Raw::List(l) => l.clone(),
        Raw::Bool(_) => return None,
    };
    Some(
        items
            .iter()
            .map(|i| allowlist_entry(platform, i.trim()))
            .filter(|i| !i.is_empty())
            .map(|i| {
                if i == "*" {
                    "*".to_owned()
                } else {
                    normalize(i)
                }
            })
            .collect(),
    )
}

/// The value among `choices` that `raw` names (case-insensitive, `_` taken as `-`).
fn one_of<T: Copy>(raw: &Raw, choices: &[(&str, T)]) -> Option<T> {
    let Raw::Text(s) = raw else { return None };
    let word = s.trim().to_lowercase().replace('_', "-");
    choices
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, v)| *v)
}

/// Stores a parsed value; false when it did not parse.
fn assign<T>(slot: &mut T, value: Option<T>) -> bool {
    value.map(|v| *slot = v).is_some()
}

fn extend(list: &mut BTreeSet<String>, items: Option<BTreeSet<String>>) -> bool {
    items.map(|items| list.extend(items)).is_some()
}

/// `*_ALLOW_ALL_USERS=true` is a `*` in the allowlist.
fn star_if(list: &mut BTreeSet<String>, yes: Option<bool>) -> bool {
    yes.map(|yes| {
        if yes {
            list.insert("*".into());
        }
    })
    .is_some()
}

/// Resolves the policy of `platform`. Pure: reads only `sources`.
pub fn resolve(sources: &Sources, platform: &str) -> Result<Resolved, PolicyError> {
    let mut policy = platform_default(platform);
    let mut debug = false;
    let mut settings = Vec::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    for key in KEYS {
        let found = hits(sources, platform, key);
        warn_about_shadowing(&found, key.name, &mut warnings);
        let Some((raw, origin)) = found.into_iter().next() else {
            settings.push(Setting {
                name: key.name,
                value: default_raw(key.name, &policy),
                origin: Origin::Default,
            });
            continue;
        };
        let invalid = |problems: &mut Vec<InvalidValue>| {
            problems.push(InvalidValue {
                key: key.name.into(),
                origin: origin.to_string(),
                value: raw.to_string(),
                allowed: key.allowed,
            })
        };
        let valid = match key.field {
            Field::Mode => assign(
                &mut policy.mode,
                one_of(
                    &raw,
                    &[
                        ("self-chat", Mode::SelfChat),
                        ("selfchat", Mode::SelfChat),
                        ("self", Mode::SelfChat),
                        ("bot", Mode::Bot),
                    ],
                ),
            ),
            Field::DmPolicy => assign(
                &mut policy.dm_policy,
                one_of(
                    &raw,
                    &[
                        ("pairing", DmPolicy::Pairing),
                        ("allowlist", DmPolicy::Allowlist),
                        ("open", DmPolicy::Open),
                        ("disabled", DmPolicy::Disabled),
                    ],
                ),
            ),
            Field::GroupPolicy => assign(
                &mut policy.group_policy,
                one_of(
                    &raw,
                    &[
                        ("open", GroupPolicy::Open),
                        ("allowlist", GroupPolicy::Allowlist),
                        ("disabled", GroupPolicy::Disabled),
                    ],
                ),
            ),
            Field::UnauthorizedDm => assign(
                &mut policy.unauthorized_dm,
                one_of(
                    &raw,
                    &[
                        ("pair", UnauthorizedDm::Pair),
                        ("ignore", UnauthorizedDm::Ignore),
                    ],
                ),
            ),
            Field::AllowFrom => extend(&mut policy.allow_from, parse_list(&raw, platform)),
            Field::GroupAllowFrom => {
                assign(&mut policy.group_allow_from, parse_list(&raw, platform))
            }
            // Telegram's name for the groups themselves; one list with the users in groups.
            Field::GroupAllowChats => {
                extend(&mut policy.group_allow_from, parse_list(&raw, platform))
            }
            Field::FreeResponseChats => {
                assign(&mut policy.free_response_chats, parse_list(&raw, platform))
            }
            Field::AllowAllUsers => star_if(&mut policy.allow_from, parse_bool(&raw)),
            Field::RequireMention => assign(&mut policy.require_mention, parse_bool(&raw)),
            Field::Debug => assign(&mut debug, parse_bool(&raw)),
        };
        if !valid {
            invalid(&mut problems);
        }
        settings.push(Setting {
            name: key.name,
            value: raw,
            origin,
        });
    }

    for (env, name) in [
        (GATEWAY_ALLOWED, "gateway_allowed_users"),
        (GATEWAY_ALLOW_ALL, "gateway_allow_all_users"),
    ] {
        let Some((raw, origin)) = gateway_hits(sources, env).into_iter().next() else {
            continue;
        };
        let valid = if env == GATEWAY_ALLOWED {
            extend(&mut policy.allow_from, parse_list(&raw, platform))
        } else {
            star_if(&mut policy.allow_from, parse_bool(&raw))
        };
        if !valid {
            problems.push(InvalidValue {
                key: env.into(),
                origin: origin.to_string(),
                value: raw.to_string(),
                allowed: if env == GATEWAY_ALLOWED {
                    "comma-separated numbers, or *"
                } else {
                    "true, false"
                },
            });
        }
        settings.push(Setting {
            name,
            value: raw,
            origin,
        });
    }

    if !has_self_chat(platform) && policy.mode == Mode::SelfChat {
        let mode = settings
            .iter_mut()
            .find(|s| s.name == "mode")
            .expect("mode is always resolved");
        if mode.origin == Origin::Default {
            policy.mode = Mode::Bot;
            mode.value = Raw::Text("bot".into());
        } else {
            problems.push(InvalidValue {
                key: "mode".into(),
                origin: mode.origin.to_string(),
                value: mode.value.to_string(),
                allowed: "bot (this platform has no self-chat mode)",
            });
        }
    }

    if !problems.is_empty() {
        return Err(PolicyError {
            platform: platform.to_owned(),
            problems,
        });
    }
    if let Some((path, map)) = &sources.relay
        && map
            .get(platform)
            .and_then(|p| p.get("allowOtherBots"))
            .and_then(serde_json::Value::as_bool)
            == Some(true)
    {
        warnings.push(format!(
            "the relay gateway's allowOtherBots ({}) is not applied: bridgekeeper has no setting for messages from other bots",
            path.display()
        ));
    }
    warn_about_contradictions(platform, &policy, &settings, &mut warnings);
    warn_about_legacy_dirs(&sources.hermes_home, platform, &mut warnings);
    Ok(Resolved {
        platform: platform.to_owned(),
        policy,
        debug,
        settings,
        warnings,
    })
}

/// Whether `platform` has a self-chat mode (the owner's own account, talking to itself): its
/// description says; a platform only a config file knows is taken to have one.
pub fn has_self_chat(platform: &str) -> bool {
    describe(platform).is_none_or(|d| d.self_chat)
}

/// The defaults before any setting, as Hermes has them per platform (its description).
fn platform_default(platform: &str) -> AccessPolicy {
    describe(platform).map_or_else(AccessPolicy::default, |d| (d.access)())
}

fn default_raw(name: &str, p: &AccessPolicy) -> Raw {
    match name {
        "mode" => Raw::Text("self-chat".into()),
        "dm_policy" => Raw::Text(
            match p.dm_policy {
                DmPolicy::Pairing => "pairing",
                DmPolicy::Allowlist => "allowlist",
                DmPolicy::Open => "open",
                DmPolicy::Disabled => "disabled",
            }
            .into(),
        ),
        "group_policy" => Raw::Text("allowlist".into()),
        "unauthorized_dm_behavior" => Raw::Text("pair".into()),
        "require_mention" => Raw::Bool(p.require_mention),
        "allow_all_users" | "debug" => Raw::Bool(false),
        _ => Raw::List(Vec::new()),
    }
}

/// Two sources disagreeing is worth knowing about: the one that loses is easy to mistake for
/// the one in force.
fn warn_about_shadowing(found: &[(Raw, Origin)], name: &str, warnings: &mut Vec<String>) {
    let Some((winner, won_from)) = found.first() else {
        return;
    };
    for (raw, origin) in &found[1..] {
        if raw.to_string().trim() != winner.to_string().trim() {
            warnings.push(format!(
                "{name}: {origin} says {raw:?} but {won_from} says {winner:?}, which wins",
                raw = raw.to_string(),
                winner = winner.to_string(),
            ));
        }
    }
}

fn warn_about_contradictions(
    platform: &str,
    policy: &AccessPolicy,
    settings: &[Setting],
    warnings: &mut Vec<String>,
) {
    let origin_of = |name: &str| {
        settings
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.origin.to_string())
            .unwrap_or_default()
    };
    let upper = platform.to_uppercase();
    if policy.dm_policy == DmPolicy::Pairing && policy.allow_from.contains("*") {
        warnings.push(format!(
            "dm_policy is pairing ({}) but the allowlist contains * ({}): under pairing, * lets \
             nobody in without a code. To let everyone in, set {upper}_DM_POLICY=open; to require \
             approval, remove the *",
            origin_of("dm_policy"),
            [
                "allow_from",
                "allow_all_users",
                "gateway_allowed_users",
                "gateway_allow_all_users"
            ]
            .iter()
            .map(|n| origin_of(n))
            .filter(|o| !o.is_empty() && o != "default")
            .collect::<Vec<_>>()
            .join(", ")
        ));
    }
    let others = policy.allow_from.iter().filter(|a| *a != "*").count();
    if policy.mode == Mode::SelfChat && others > 0 {
        warnings.push(format!(
            "mode is self-chat ({}), which answers only your own chat, but the allowlist names {others} \
             other number(s): they will be ignored. To let them talk to the assistant, set {upper}_MODE=bot",
            origin_of("mode")
        ));
    }
    if policy.group_policy == GroupPolicy::Allowlist
        && policy.group_allow_from.is_empty()
        && settings
            .iter()
            .any(|s| s.name == "group_policy" && s.origin != Origin::Default)
    {
        warnings.push(format!(
            "group_policy is allowlist ({}) but group_allow_from is empty: no group will be answered",
            origin_of("group_policy")
        ));
    }
}

fn warn_about_legacy_dirs(home: &Path, platform: &str, warnings: &mut Vec<String>) {
    let pairs = [
        (
            home.join("pairing"),
            home.join("platforms/pairing"),
            "pairing files",
        ),
        (
            home.join(platform).join("session"),
            home.join("platforms").join(platform).join("session"),
            "session",
        ),
    ];
    for (legacy, current, what) in pairs {
        // An empty legacy pairing directory is passed over (Hermes' rule), so it is no conflict;
        // otherwise the legacy one is what both Hermes and bridgekeeper use.
        let passed_over = what != "session" && !super::hermes_paths::has_content(&legacy);
        if legacy.is_dir() && current.is_dir() && !passed_over {
            let used = &legacy;
            warnings.push(format!(
                "both {} and {} exist for the {what}; {} is used. Merge or remove the other one",
                legacy.display(),
                current.display(),
                used.display()
            ));
        }
    }
}

/// `--set KEY=VALUE` pairs.
pub fn parse_cli_sets(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("--set {p:?}: expected KEY=VALUE"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
