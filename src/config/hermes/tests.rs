use super::*;
use std::path::PathBuf;

fn yaml(text: &str) -> Option<(PathBuf, Yaml)> {
    Some((
        PathBuf::from("/h/config.yaml"),
        serde_yaml_ng::from_str(text).unwrap(),
    ))
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sources() -> Sources {
    Sources {
        hermes_home: PathBuf::from("/nonexistent-hermes-home"),
        ..Sources::default()
    }
}

fn origin_of(r: &Resolved, name: &str) -> String {
    r.settings
        .iter()
        .find(|s| s.name == name)
        .unwrap()
        .origin
        .to_string()
}

#[test]
fn each_source_wins_over_the_ones_below_it() {
    let mut s = sources();
    s.yaml = yaml("platforms:\n  whatsapp:\n    extra:\n      mode: bot\n");
    assert_eq!(resolve(&s, "whatsapp").unwrap().policy.mode, Mode::Bot);
    s.dotenv = Some((
        PathBuf::from("/h/.env"),
        vars(&[("WHATSAPP_MODE", "self-chat")]),
    ));
    assert_eq!(resolve(&s, "whatsapp").unwrap().policy.mode, Mode::SelfChat);
    s.env = vars(&[("WHATSAPP_MODE", "bot")]);
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(
        (r.policy.mode, origin_of(&r, "mode")),
        (Mode::Bot, "environment (WHATSAPP_MODE)".into())
    );
    s.file = Some((
        PathBuf::from("/etc/bk.yaml"),
        [("mode".to_owned(), Raw::Text("self-chat".into()))].into(),
    ));
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(
        (r.policy.mode, origin_of(&r, "mode")),
        (Mode::SelfChat, "/etc/bk.yaml (policy.mode)".into())
    );
    s.cli = vars(&[("WHATSAPP_MODE", "bot")]);
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(
        (r.policy.mode, origin_of(&r, "mode")),
        (Mode::Bot, "command line (--set WHATSAPP_MODE)".into())
    );
    // The losers are named, so nobody edits the wrong file.
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("mode: /h/.env (WHATSAPP_MODE) says \"self-chat\"")),
        "{:#?}",
        r.warnings
    );
}

#[test]
fn nothing_set_gives_the_safe_defaults() {
    let r = resolve(&sources(), "whatsapp").unwrap();
    assert_eq!(r.policy, AccessPolicy::default());
    assert!(r.settings.iter().all(|s| s.origin == Origin::Default));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

// Bug: `dm_policy` written in config.yaml never reached the code that applies it.
#[test]
fn dm_policy_only_in_config_yaml_is_applied() {
    let mut s = sources();
    s.env = vars(&[("WHATSAPP_MODE", "bot")]);
    s.yaml = yaml("platforms:\n  whatsapp:\n    dm_policy: allowlist\n");
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(r.policy.dm_policy, DmPolicy::Allowlist);
    assert_eq!(
        origin_of(&r, "dm_policy"),
        "/h/config.yaml (platforms.whatsapp.dm_policy)"
    );
}

#[test]
fn config_yaml_places_have_an_order() {
    let mut s = sources();
    s.yaml = yaml(
        "unauthorized_dm_behavior: ignore\nwhatsapp:\n  dm_policy: open\n  require_mention: false\n  allow_from: ['+1 555 123 4567', '15559998888']\nplatforms:\n  whatsapp:\n    extra:\n      dm_policy: disabled\n",
    );
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(
        r.policy.dm_policy,
        DmPolicy::Disabled,
        "extra beats the top-level section"
    );
    assert_eq!(
        r.policy.unauthorized_dm,
        UnauthorizedDm::Ignore,
        "global key applies"
    );
    assert!(!r.policy.require_mention);
    assert_eq!(
        r.policy.allow_from,
        ["15551234567".to_owned(), "15559998888".to_owned()].into()
    );
    s.yaml = yaml(
        "unauthorized_dm_behavior: ignore\nplatforms:\n  whatsapp:\n    unauthorized_dm_behavior: pair\n",
    );
    assert_eq!(
        resolve(&s, "whatsapp").unwrap().policy.unauthorized_dm,
        UnauthorizedDm::Pair,
        "per platform over global"
    );
}

// Bug: the bridge needed `*`, and `*` bypassed pairing in the gateway.
#[test]
fn a_star_under_pairing_is_kept_but_warned_about() {
    let mut s = sources();
    s.env = vars(&[("WHATSAPP_MODE", "bot"), ("WHATSAPP_ALLOWED_USERS", "*")]);
    s.yaml = yaml("platforms:\n  whatsapp:\n    dm_policy: pairing\n");
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(r.policy.dm_policy, DmPolicy::Pairing);
    assert!(r.policy.allow_from.contains("*"));
    let w = r
        .warnings
        .iter()
        .find(|w| w.starts_with("dm_policy is pairing"))
        .expect("a warning");
    assert!(
        w.contains("environment (WHATSAPP_ALLOWED_USERS)") && w.contains("WHATSAPP_DM_POLICY=open"),
        "{w}"
    );
}

#[test]
fn gateway_wide_allowlists_join_the_platforms() {
    let mut s = sources();
    s.env = vars(&[
        ("WHATSAPP_ALLOWED_USERS", "15551112222"),
        ("GATEWAY_ALLOWED_USERS", "+1 555 333 4444"),
    ]);
    s.dotenv = Some((
        PathBuf::from("/h/.env"),
        vars(&[("GATEWAY_ALLOW_ALL_USERS", "yes")]),
    ));
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(
        r.policy.allow_from,
        ["*".to_owned(), "15551112222".into(), "15553334444".into()].into()
    );
}

#[test]
fn self_chat_with_other_numbers_is_warned_about() {
    let mut s = sources();
    s.env = vars(&[("WHATSAPP_ALLOWED_USERS", "15551112222,15553334444")]);
    let r = resolve(&s, "whatsapp").unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("self-chat")
            && w.contains("2 other number(s)")
            && w.contains("WHATSAPP_MODE=bot")),
        "{:#?}",
        r.warnings
    );
}

#[test]
fn invalid_values_are_all_reported_with_key_source_and_allowed_values() {
    let mut s = sources();
    s.dotenv = Some((
        PathBuf::from("/h/.env"),
        vars(&[("WHATSAPP_MODE", "robot")]),
    ));
    s.yaml = yaml("whatsapp:\n  dm_policy: sometimes\n  require_mention: perhaps\n");
    let err = resolve(&s, "whatsapp").unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 3, "{text}");
    assert!(
        text.contains(
            "mode = \"robot\" from /h/.env (WHATSAPP_MODE) is not valid; allowed: self-chat, bot"
        ),
        "{text}"
    );
    assert!(
        text.contains("dm_policy = \"sometimes\" from /h/config.yaml (whatsapp.dm_policy)"),
        "{text}"
    );
    assert!(text.contains("allowed: true, false"), "{text}");
}

#[test]
fn legacy_directories_that_disagree_are_warned_about() {
    let home = tempfile::tempdir().unwrap();
    for d in [
        "pairing",
        "platforms/pairing",
        "whatsapp/session",
        "platforms/whatsapp/session",
    ] {
        std::fs::create_dir_all(home.path().join(d)).unwrap();
    }
    let s = Sources {
        hermes_home: home.path().to_owned(),
        ..Sources::default()
    };
    // An empty legacy pairing directory is passed over, as Hermes does: no conflict.
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(r.warnings.len(), 1, "{:#?}", r.warnings);
    std::fs::write(home.path().join("pairing/whatsapp-approved.json"), "{}").unwrap();
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(r.warnings.len(), 2, "{:#?}", r.warnings);
    assert!(
        r.warnings[0].contains("/pairing is used"),
        "{}",
        r.warnings[0]
    );
    assert!(
        r.warnings[1].contains("whatsapp/session is used"),
        "{}",
        r.warnings[1]
    );
}

#[test]
fn gather_reads_dotenv_and_config_yaml() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".env"), "# comment\nexport WHATSAPP_MODE=bot\nWHATSAPP_ALLOWED_USERS=\"15551112222, 15553334444\"\n").unwrap();
    std::fs::write(
        home.path().join("config.yaml"),
        "platforms:\n  whatsapp:\n    dm_policy: allowlist\n",
    )
    .unwrap();
    let mut s = Sources::gather(home.path(), BTreeMap::new()).unwrap();
    s.env.clear(); // keep the test independent of the machine's environment
    let r = resolve(&s, "whatsapp").unwrap();
    assert_eq!(r.policy.mode, Mode::Bot);
    assert_eq!(r.policy.dm_policy, DmPolicy::Allowlist);
    assert_eq!(r.policy.allow_from.len(), 2);

    std::fs::write(home.path().join("config.yaml"), "platforms: [unclosed").unwrap();
    let err = Sources::gather(home.path(), BTreeMap::new()).unwrap_err();
    assert!(
        err.to_string().contains("config.yaml is not valid YAML"),
        "{err}"
    );
}

/// What a relay gateway declared ranks just above the default: it sets mention gating when
/// nothing of ours does, never over a value we were given, and what has no counterpart is said.
#[test]
fn the_relay_gateways_policy_is_the_lowest_source_and_says_what_it_cannot_apply() {
    let mut s = sources();
    let declared = serde_json::json!({"whatsapp": {
        "requireAddress": true, "freeResponseScopes": ["123-456@g.us"], "allowOtherBots": true}});
    s.relay = Some((
        PathBuf::from("/state/relay-policy.json"),
        declared.as_object().unwrap().clone(),
    ));
    let r = resolve(&s, "whatsapp").unwrap();
    assert!(r.policy.require_mention);
    assert_eq!(r.policy.free_response_chats.len(), 1);
    assert!(origin_of(&r, "require_mention").contains("relay gateway's policy"));
    assert!(
        r.warnings.iter().any(|w| w.contains("allowOtherBots")),
        "{:?}",
        r.warnings
    );
    // Ours wins.
    s.env
        .insert("WHATSAPP_REQUIRE_MENTION".into(), "false".into());
    let r = resolve(&s, "whatsapp").unwrap();
    assert!(!r.policy.require_mention);
    // Another platform's declaration changes nothing here.
    let r = resolve(&s, "telegram").unwrap();
    assert!(r.policy.free_response_chats.is_empty());
}

/// Telegram has no self-chat mode: the default is bot, and asking for self-chat is an error
/// that names the source. Its group chats have their own key, joined with the group users.
#[test]
fn telegram_is_always_a_bot_and_takes_its_own_key_names() {
    let mut s = sources();
    s.env
        .insert("TELEGRAM_ALLOWED_USERS".into(), "123456, @Alice".into());
    s.env.insert(
        "TELEGRAM_GROUP_ALLOWED_CHATS".into(),
        "-1001234567890".into(),
    );
    s.env
        .insert("TELEGRAM_GROUP_ALLOWED_USERS".into(), "555".into());
    let r = resolve(&s, "telegram").unwrap();
    assert_eq!(r.policy.mode, Mode::Bot);
    assert!(r.policy.allow_from.contains("123456") && r.policy.allow_from.contains("@alice"));
    assert_eq!(
        r.policy.group_allow_from.len(),
        2,
        "{:?}",
        r.policy.group_allow_from
    );
    // WhatsApp keeps its self-chat default.
    assert_eq!(resolve(&s, "whatsapp").unwrap().policy.mode, Mode::SelfChat);

    s.env.insert("TELEGRAM_MODE".into(), "self-chat".into());
    let e = resolve(&s, "telegram").unwrap_err().to_string();
    assert!(
        e.contains("no self-chat mode") && e.contains("TELEGRAM_MODE"),
        "{e}"
    );
}

#[test]
fn wecom_settings_by_hermes_names_with_its_allowlist_prefixes() {
    let mut s = sources();
    s.env = vars(&[
        (
            "WECOM_ALLOWED_USERS",
            "wecom:user:ZhangSan, user:lisi,wangwu",
        ),
        ("WECOM_DM_POLICY", "allowlist"),
        ("WECOM_CALLBACK_ALLOWED_USERS", "WeCom:User:chen"),
    ]);
    let r = resolve(&s, "wecom").unwrap();
    assert_eq!(r.policy.mode, Mode::Bot, "bot mode only");
    assert_eq!(r.policy.dm_policy, DmPolicy::Allowlist);
    let allowed: Vec<&str> = r.policy.allow_from.iter().map(String::as_str).collect();
    assert_eq!(allowed, ["ZhangSan", "lisi", "wangwu"]);
    let cb = resolve(&s, "wecom_callback").unwrap();
    assert_eq!(
        cb.policy.allow_from.iter().next().map(String::as_str),
        Some("chen")
    );
    assert_eq!(
        cb.policy.dm_policy,
        DmPolicy::Pairing,
        "the callback mode's own names"
    );
    s.env = vars(&[("WECOM_MODE", "self-chat")]);
    let err = resolve(&s, "wecom").unwrap_err().to_string();
    assert!(
        err.contains("WECOM_MODE") && err.contains("no self-chat"),
        "{err}"
    );
}
