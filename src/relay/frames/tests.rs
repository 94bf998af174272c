use super::*;

#[test]
fn every_gateway_frame_parses() {
    assert_eq!(
        parse(r#"{"type":"hello","platform":"whatsapp","botId":"b"}"#).unwrap(),
        GatewayFrame::Hello {
            platform: "whatsapp".into(),
            bot_id: Some("b".into())
        }
    );
    assert!(matches!(
        parse(r#"{"type":"outbound","requestId":"r1","action":{"op":"send"}}"#).unwrap(),
        GatewayFrame::Outbound { request_id, .. } if request_id == "r1"
    ));
    assert_eq!(
        parse(r#"{"type":"inbound_ack","bufferId":"x"}"#).unwrap(),
        GatewayFrame::InboundAck {
            buffer_id: "x".into()
        }
    );
    assert_eq!(
        parse(r#"{"type":"going_idle"}"#).unwrap(),
        GatewayFrame::GoingIdle
    );
    assert!(matches!(
        parse(r#"{"type":"interrupt","session_key":"k","reason":null}"#).unwrap(),
        GatewayFrame::Interrupt { .. }
    ));
}

#[test]
fn bad_frames_get_typed_errors_that_keep_the_request_id() {
    let cases = [
        ("{", "invalid_frame", None),
        ("[1]", "invalid_frame", None),
        (r#"{"platform":"x"}"#, "invalid_frame", None),
        (
            r#"{"type":"teleport","requestId":"r9"}"#,
            "unknown_type",
            Some("r9"),
        ),
        (
            r#"{"type":"outbound","requestId":"r2"}"#,
            "invalid_frame",
            Some("r2"),
        ),
        (r#"{"type":"hello"}"#, "invalid_frame", None),
        (
            r#"{"type":"inbound_ack","bufferId":7}"#,
            "invalid_frame",
            None,
        ),
    ];
    for (line, code, id) in cases {
        let (e, rid) = parse(line).unwrap_err();
        assert_eq!((e.code(), rid.as_deref()), (code, id), "{line}");
    }
}

#[test]
fn the_whatsapp_descriptor_has_every_required_field() {
    let d = descriptor("whatsapp").unwrap();
    for key in [
        "contract_version",
        "platform",
        "label",
        "max_message_length",
        "supports_draft_streaming",
        "supports_edit",
        "supports_threads",
        "markdown_dialect",
        "len_unit",
    ] {
        assert!(d["descriptor"].get(key).is_some(), "{key}");
    }
    assert_eq!(d["descriptor"]["max_message_length"], 4096);
    assert_eq!(
        descriptor("telegram").unwrap()["descriptor"]["len_unit"],
        "utf16"
    );
    assert!(descriptor("irc").is_none());
    assert!(line(&d).ends_with("}\n"));
}

/// A gateway sends a listed op to every chat of the platform: each must become a command
/// its connector carries out (its description's ops), never an `unsupported`.
#[test]
fn every_supported_op_is_one_the_connector_carries_out() {
    use bridge_protocol::gateway::Route;
    for d in crate::connectors::description::ALL {
        let ops = supported_ops(d);
        assert!(ops.contains(&"send"), "{}", d.platform);
        assert_eq!(ops.contains(&"edit"), d.edits, "{}", d.platform);
        for op in ops {
            let sample = json!({"op": op, "chat_id": "c", "content": "x", "message_id": "m",
                "media_kind": "image", "source_url": "/relay/media/id"});
            let Action::Command(command) = action(&sample) else {
                panic!("{op} is not a command");
            };
            let Route::Connector(command) = command.route(true) else {
                panic!("{op} does not reach the connector");
            };
            assert!(
                d.ops.contains(&command.type_name()),
                "{}: {op} → {} is not among its connector's ops",
                d.platform,
                command.type_name()
            );
        }
    }
    let listed = |p: &str| descriptor(p).unwrap()["descriptor"]["supported_ops"].clone();
    let everything = [
        "send",
        "edit",
        "typing",
        "get_chat_info",
        "react",
        "send_media",
        "delete",
    ];
    for platform in ["telegram", "whatsapp"] {
        assert_eq!(listed(platform), json!(everything), "{platform}");
    }
    assert_eq!(listed("wecom"), json!(["send", "typing", "send_media"]));
    assert_eq!(listed("wecom_callback"), json!(["send", "typing"]));
}

/// The README's table of what each platform advertises is the descriptors' lists.
#[test]
fn the_readme_says_what_each_descriptor_advertises() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let rows: Vec<(Vec<&str>, Vec<&str>)> = readme
        .lines()
        .skip_while(|l| !l.contains("| platform | `supported_ops` |"))
        .skip(2)
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].split(", ").collect(),
                cells[2].split(", ").collect(),
            )
        })
        .collect();
    let mut told: Vec<&str> = rows.iter().flat_map(|(p, _)| p.clone()).collect();
    told.sort_unstable();
    let mut all: Vec<&str> = crate::connectors::description::ALL
        .iter()
        .map(|d| d.platform)
        .collect();
    all.sort_unstable();
    assert_eq!(told, all, "every platform has a row");
    for (platforms, ops) in rows {
        for p in platforms {
            let d = crate::connectors::description::describe(p).unwrap();
            assert_eq!(supported_ops(d), ops, "{p}");
        }
    }
}

#[test]
fn inbound_media_go_out_as_relay_urls_made_absolute_per_gateway() {
    let m: InboundMessage = serde_json::from_value(json!({
        "id": "M4", "chat": "c", "sender": "c", "text": "look", "timestamp": 1,
        "media": {"kind": "image", "mime": "image/png", "path": "/m/a.png", "size": 3}
    }))
    .unwrap();
    let id = |p: &std::path::Path| format!("id-of-{}", p.display());
    let e = inbound_event("telegram", &m, Some(&id));
    assert_eq!(e["media_urls"], json!(["/relay/media/id-of-/m/a.png"]));
    assert_eq!(
        e["media"],
        json!([{"url": "/relay/media/id-of-/m/a.png", "kind": "image", "mime": "image/png",
            "size": 3, "caption": "look"}])
    );
    let line = json!({"type": "inbound", "event": e}).to_string() + "\n";
    let sent: Value = serde_json::from_str(&absolute_media_urls(&line, "http://h:1")).unwrap();
    assert_eq!(
        sent["event"]["media_urls"][0],
        "http://h:1/relay/media/id-of-/m/a.png"
    );
    assert_eq!(
        sent["event"]["media"][0]["url"],
        "http://h:1/relay/media/id-of-/m/a.png"
    );
    // Local paths for a 0.19.0 gateway on the same host; a line without media untouched.
    let local = inbound_event("telegram", &m, None);
    assert_eq!(local["media_urls"], json!(["/m/a.png"]));
    let plain = "{\"type\":\"inbound\",\"event\":{\"text\":\"/relay/media/ in words\"}}\n";
    assert_eq!(absolute_media_urls(plain, "http://h:1"), plain);
}

#[test]
fn send_media_takes_the_newer_contracts_fields_and_the_old_ones() {
    let newer = action(
        &json!({"op": "send_media", "chat_id": "c", "media_kind": "voice",
        "source_url": "http://h/relay/media/x", "content": "", "filename": "v.ogg"}),
    );
    let Action::Command(GatewayCommand::SendMedia(m)) = newer else {
        panic!("{newer:?}");
    };
    assert_eq!(
        (m.path.as_str(), m.kind, m.caption, m.file_name.as_deref()),
        (
            "http://h/relay/media/x",
            MediaKind::Voice,
            None,
            Some("v.ogg")
        )
    );
    let older = action(
        &json!({"op": "send_media", "chat_id": "c", "path": "/f.pdf",
        "media_type": "document", "caption": "doc"}),
    );
    assert!(
        matches!(older, Action::Command(GatewayCommand::SendMedia(ref m))
        if m.path == "/f.pdf" && m.caption.as_deref() == Some("doc"))
    );
}

#[test]
fn a_groups_unaddressed_talk_goes_out_as_context() {
    let m: InboundMessage = serde_json::from_value(json!({
        "id": "M3", "chat": "-100", "sender": "7", "is_group": true, "text": "@bot so?",
        "timestamp": 1, "context": [
            {"text": "lunch at one", "sender": "8", "sender_name": "Ann"},
            {"text": "or two", "sender": "9"}
        ]
    }))
    .unwrap();
    let e = inbound_event("telegram", &m, None);
    assert_eq!(
        e["context"],
        json!([
            {"text": "lunch at one", "source": {"user_name": "Ann"}},
            {"text": "or two", "source": {"user_id": "9"}}
        ])
    );
    assert_eq!(
        descriptor("telegram").unwrap()["descriptor"]["supports_context"],
        true
    );
    assert_eq!(
        descriptor("webhook").unwrap()["descriptor"]["supports_context"],
        false
    );
}

#[test]
fn a_quote_goes_out_as_the_reply_to_object_with_its_author() {
    let m: InboundMessage = serde_json::from_value(json!({
        "id": "M2", "chat": "-100", "sender": "7", "is_group": true, "text": "so?",
        "quoted": {"id": "Q2", "sender": "8", "text": "the plan"}, "timestamp": 1
    }))
    .unwrap();
    let e = inbound_event("telegram", &m, None);
    assert_eq!(e["reply_to"], json!({"text": "the plan", "author": "8"}));
    assert_eq!(e["reply_to_message_id"], "Q2");
    assert_eq!(
        (&e["source"]["is_bot"], &e["source"]["message_is_edit"]),
        (&json!(false), &json!(false))
    );
    assert!(
        e["source"].get("chat_name").is_none(),
        "a group without a title"
    );
}

#[test]
fn an_edit_by_a_bot_in_a_named_group_says_so_and_a_reply_to_us_is_own() {
    let m: InboundMessage = serde_json::from_value(json!({
        "id": "-100/9~1700000300", "chat": "-100", "sender": "7", "is_group": true,
        "chat_name": "Ops", "sender_is_bot": true, "edited": true, "text": "fixed",
        "quoted": {"id": "-100/3", "sender": "42", "text": "an answer", "from_me": true},
        "timestamp": 1
    }))
    .unwrap();
    let e = inbound_event("telegram", &m, None);
    assert_eq!(e["source"]["chat_name"], "Ops");
    assert_eq!(e["source"]["is_bot"], true);
    assert_eq!(e["source"]["message_is_edit"], true);
    assert_eq!(e["message_id"], "-100/9~1700000300");
    assert_eq!(
        e["reply_to"],
        json!({"text": "an answer", "author": "42", "is_own": true})
    );
}

#[test]
fn a_lid_sender_carries_its_phone_as_the_alt_id() {
    let m: InboundMessage = serde_json::from_value(json!({
        "id": "M1", "chat": "123@lid", "sender": "123@lid",
        "sender_alt": "15551234567@s.whatsapp.net", "push_name": "Ann",
        "text": "hi", "quoted": {"id": "Q1", "text": "before"}, "timestamp": 1
    }))
    .unwrap();
    let e = inbound_event("whatsapp", &m, None);
    assert_eq!(
        e["source"]["chat_name"], "Ann",
        "a DM is named after the person"
    );
    assert_eq!(e["source"]["user_id_alt"], "15551234567@s.whatsapp.net");
    assert_eq!(e["source"]["chat_id_alt"], "15551234567@s.whatsapp.net");
    assert_eq!(e["source"]["chat_type"], "dm");
    assert_eq!(e["reply_to_message_id"], "Q1");
    assert_eq!(e["reply_to"], json!({"text": "before"}));
    assert!(e.get("reply_to_text").is_none(), "read by no gateway");
    assert_eq!(e["message_type"], "text");
    assert_eq!(e["media_urls"], json!([]));
}

#[test]
fn a_failure_never_reads_as_an_egress_decline() {
    let r = failure("send_failed: Bad Request: EGRESS DECLINED: by the platform");
    let text = r["error"].as_str().unwrap();
    assert!(!text.to_lowercase().contains("egress declined"), "{text}");
    assert_eq!(
        text,
        "send_failed: Bad Request: egress refused: by the platform"
    );
    assert!(r.get("code").is_none());
    assert_eq!(r["success"], false);
}

#[test]
fn ops_map_to_commands_or_say_why_not() {
    let send = action(&json!({"op": "send", "chat_id": "c", "content": "hi", "reply_to": null}));
    assert!(
        matches!(send, Action::Command(GatewayCommand::SendText(ref t)) if t.text == "hi" && t.reply_to.is_none())
    );
    assert!(matches!(
        action(&json!({"op": "get_chat_info", "chat_id": "c"})),
        Action::Command(GatewayCommand::ChatInfo(_))
    ));
    assert!(matches!(
        action(&json!({"op": "react", "chat_id": "c", "message_id": "m", "emoji": "👍"})),
        Action::Command(GatewayCommand::React(_))
    ));
    assert!(matches!(
        action(&json!({"op": "react", "chat_id": "c"})),
        Action::Invalid(_)
    ));
    // Hermes takes its 👀 back with `remove: true`: the connector's empty emoji.
    let removed = action(&json!({"op": "react", "chat_id": "c", "message_id": "m",
        "emoji": "👀", "remove": true}));
    assert!(
        matches!(&removed, Action::Command(GatewayCommand::React(r)) if r.emoji.is_empty()),
        "{removed:?}"
    );
    assert_eq!(
        action(&json!({"op": "follow_up", "chat_id": "c"})),
        Action::Unsupported("follow_up".into())
    );
    assert!(matches!(
        action(&json!({"op": "send", "chat_id": "c"})),
        Action::Invalid(_)
    ));
    assert!(matches!(
        action(&json!({"op": "send", "content": "x"})),
        Action::Invalid(_)
    ));
}
