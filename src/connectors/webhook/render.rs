//! What a delivery's payload becomes, as Hermes' webhook adapter makes it: the event type, the
//! route's `filters`, the prompt rendered from its template with `{dot.notation}` over the
//! payload, and `deliver_extra` rendered the same way. Pure.

use serde_json::{Map, Value};

/// Longest `{__raw__}` (and the whole payload when a route has no prompt), in characters.
const RAW_CHARS: usize = 4000;
/// Longest rendering of an object or array named by a placeholder.
const NESTED_CHARS: usize = 2000;

/// A body as JSON, or (failing that) as a form: `a=1&b=2` becomes `{"a":"1","b":"2"}`.
pub fn parse_payload(body: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Some(v);
    }
    let text = std::str::from_utf8(body).ok()?;
    let form: Map<String, Value> = form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Some(Value::Object(form))
}

/// The event type: GitHub's or GitLab's header, else the payload's `event_type` or `type`.
pub fn event_type(github: Option<&str>, gitlab: Option<&str>, payload: &Value) -> String {
    let from_payload = |key: &str| payload.get(key).map(python_str).filter(|s| !s.is_empty());
    github
        .filter(|s| !s.is_empty())
        .or(gitlab.filter(|s| !s.is_empty()))
        .map(str::to_owned)
        .or_else(|| from_payload("event_type"))
        .or_else(|| from_payload("type"))
        .unwrap_or_else(|| "unknown".into())
}

/// The prompt: `template` with each `{name}` or `{a.b.c}` replaced by the payload's value
/// (`{__raw__}`: the whole payload as JSON; `{event_type}`); a name the payload lacks stays
/// as written. No template: the event and the payload as a JSON block.
pub fn prompt(template: &str, payload: &Value, event: &str, route: &str) -> String {
    if template.is_empty() {
        return format!(
            "Webhook event '{event}' on route '{route}':\n\n```json\n{}\n```",
            pretty(payload, RAW_CHARS)
        );
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('}') {
            let name = &after[..name_len];
            out.push_str(&placeholder(name, payload, event));
            rest = &after[name_len + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn placeholder(name: &str, payload: &Value, event: &str) -> String {
    match name {
        "__raw__" => return pretty(payload, RAW_CHARS),
        "event_type" => return event.to_owned(),
        _ => {}
    }
    let mut value = payload;
    for part in name.split('.') {
        match value.as_object().and_then(|o| o.get(part)) {
            Some(v) => value = v,
            None => return format!("{{{name}}}"),
        }
    }
    match value {
        Value::Object(_) | Value::Array(_) => pretty(value, NESTED_CHARS),
        v => python_str(v),
    }
}

/// `deliver_extra` with each string value rendered over the payload (`chat_id: "{chat.id}"`).
pub fn deliver_extra(extra: &Map<String, Value>, payload: &Value) -> Map<String, Value> {
    extra
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k.clone(), Value::String(prompt(s, payload, "", ""))),
            v => (k.clone(), v.clone()),
        })
        .collect()
}

fn pretty(value: &Value, max_chars: usize) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text,
    }
}

/// A scalar as Python's `str()` writes it (Hermes renders with it): `True`, `None`, `3`.
fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        v => v.to_string(),
    }
}

/// The route's `filters` (a list, all must match, or one spec): `all`/`any`/`not`, and on a
/// `field` — `exists`, `missing`, `equals`, `not_equals`, `contains`, `in`. Unknown operators
/// fail closed (`FilterError` at load time names them; see `check_filters`).
pub fn filters_match(
    filters: &Value,
    payload: &Value,
    event: &str,
    headers: &Map<String, Value>,
) -> bool {
    match filters {
        Value::Null => true,
        Value::Array(specs) => specs.iter().all(|s| matches(s, payload, event, headers)),
        spec @ Value::Object(_) => matches(spec, payload, event, headers),
        _ => false,
    }
}

/// Names the first thing in `filters` that `filters_match` cannot evaluate (`regex` and
/// `in_file` are Hermes' and not ours), so a route is refused at start rather than silently
/// ignoring every delivery.
pub fn check_filters(filters: &Value) -> Result<(), String> {
    match filters {
        Value::Null => Ok(()),
        Value::Array(specs) => specs.iter().try_for_each(check_spec),
        spec @ Value::Object(_) => check_spec(spec),
        _ => Err("filters must be a list or an object".into()),
    }
}

const OPERATORS: [&str; 6] = [
    "exists",
    "missing",
    "equals",
    "not_equals",
    "contains",
    "in",
];

fn check_spec(spec: &Value) -> Result<(), String> {
    let Some(o) = spec.as_object() else {
        return Err(format!("a filter must be an object, not {spec}"));
    };
    for key in ["all", "any"] {
        if let Some(items) = o.get(key) {
            let Some(items) = items.as_array() else {
                return Err(format!("`{key}` must be a list"));
            };
            return items.iter().try_for_each(check_spec);
        }
    }
    if let Some(inner) = o.get("not") {
        return check_spec(inner);
    }
    if !o.get("field").is_some_and(Value::is_string) {
        return Err("a filter needs a `field`".into());
    }
    match OPERATORS.iter().find(|op| o.contains_key(**op)) {
        Some(_) => Ok(()),
        None => Err(format!(
            "filter on {} has no operator bridgekeeper evaluates (it has {}, `regex` and `in_file` are not supported)",
            o["field"],
            OPERATORS.join(", ")
        )),
    }
}

fn matches(spec: &Value, payload: &Value, event: &str, headers: &Map<String, Value>) -> bool {
    let Some(o) = spec.as_object() else {
        return false;
    };
    if let Some(items) = o.get("all") {
        return items
            .as_array()
            .is_some_and(|i| i.iter().all(|s| matches(s, payload, event, headers)));
    }
    if let Some(items) = o.get("any") {
        return items
            .as_array()
            .is_some_and(|i| i.iter().any(|s| matches(s, payload, event, headers)));
    }
    if let Some(inner) = o.get("not") {
        return !matches(inner, payload, event, headers);
    }
    let value = o
        .get("field")
        .and_then(Value::as_str)
        .and_then(|f| resolve(f, payload, event, headers));
    if let Some(exists) = o.get("exists") {
        return value.is_some() == exists.as_bool().unwrap_or(true);
    }
    if o.get("missing") == Some(&Value::Bool(true)) {
        return value.is_none();
    }
    if let Some(want) = o.get("equals") {
        return value.is_some_and(|v| same(&v, want));
    }
    if let Some(want) = o.get("not_equals") {
        return value.is_none_or(|v| !same(&v, want));
    }
    if let Some(needle) = o.get("contains") {
        return match value {
            None => false,
            Some(Value::Array(items)) => items.iter().any(|i| same(i, needle)),
            Some(Value::Object(map)) => needle.as_str().is_some_and(|k| map.contains_key(k)),
            Some(v) => stringify(&v).contains(&python_str(needle)),
        };
    }
    if let Some(haystack) = o.get("in") {
        return match (value, haystack.as_array()) {
            (Some(v), Some(items)) => items.iter().any(|i| same(&v, i)),
            _ => false,
        };
    }
    false
}

/// A dotted field over `payload`, `event`/`event_type` and `headers` (lower-case names), else
/// over the payload itself; list items by index.
fn resolve(
    field: &str,
    payload: &Value,
    event: &str,
    headers: &Map<String, Value>,
) -> Option<Value> {
    let mut parts = field.trim().split('.').filter(|p| !p.is_empty()).peekable();
    let first = *parts.peek()?;
    let headers = Value::Object(headers.clone());
    let mut value: Value = match first {
        "payload" => {
            parts.next();
            payload.get("payload").unwrap_or(payload).clone()
        }
        "event" | "event_type" => {
            parts.next();
            Value::String(event.to_owned())
        }
        "headers" => {
            parts.next();
            headers
        }
        _ => payload.clone(),
    };
    for part in parts {
        value = match value {
            Value::Object(mut o) => o
                .remove(part)
                .or_else(|| o.remove(&part.to_ascii_lowercase()))?,
            Value::Array(mut a) => {
                let i: usize = part.parse().ok()?;
                (i < a.len()).then(|| a.swap_remove(i))?
            }
            _ => return None,
        };
    }
    Some(value)
}

/// Equality as Python's: numbers by value (`1 == 1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn stringify(value: &Value) -> String {
    match value {
        Value::Object(_) | Value::Array(_) => value.to_string(),
        v => python_str(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompts_render_dot_notation_and_keep_unknown_names() {
        let p = json!({"pull_request": {"title": "Fix", "number": 7, "draft": false},
                       "labels": ["a"], "n": null});
        assert_eq!(
            prompt(
                "PR #{pull_request.number} {pull_request.title} draft={pull_request.draft} {n}",
                &p,
                "pull_request",
                "gh"
            ),
            "PR #7 Fix draft=False None"
        );
        assert_eq!(
            prompt("{missing.key} {event_type}", &p, "push", "gh"),
            "{missing.key} push"
        );
        assert_eq!(prompt("{labels}", &p, "e", "r"), "[\n  \"a\"\n]");
        assert_eq!(
            prompt("{ not a name } {}", &p, "e", "r"),
            "{ not a name } {}"
        );
        assert!(prompt("{__raw__}", &p, "e", "r").starts_with("{\n  \"labels\""));
        let bare = prompt("", &json!({"x": 1}), "ping", "mon");
        assert!(bare.starts_with("Webhook event 'ping' on route 'mon':\n\n```json\n{"));
        let long = json!({"s": "é".repeat(5000)});
        assert_eq!(
            prompt("{__raw__}", &long, "e", "r").chars().count(),
            RAW_CHARS
        );
    }

    #[test]
    fn event_types_and_bodies_are_read_as_hermes_reads_them() {
        let p = json!({"event_type": "deploy", "type": "x"});
        assert_eq!(event_type(Some("push"), None, &p), "push");
        assert_eq!(
            event_type(None, Some("Merge Request Hook"), &p),
            "Merge Request Hook"
        );
        assert_eq!(event_type(None, None, &p), "deploy");
        assert_eq!(event_type(None, None, &json!({"type": "alert"})), "alert");
        assert_eq!(event_type(Some(""), None, &json!({})), "unknown");
        assert_eq!(
            parse_payload(b"a=1&b=two+words").unwrap(),
            json!({"a":"1","b":"two words"})
        );
        assert_eq!(parse_payload(br#"{"a":1}"#).unwrap(), json!({"a":1}));
        assert!(parse_payload(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn filters_follow_hermes_semantics_and_unknown_operators_are_named() {
        let p = json!({"action": "opened", "pr": {"labels": ["bug", "ui"], "n": 3}});
        let h = Map::new();
        let m = |f: Value| filters_match(&f, &p, "pull_request", &h);
        assert!(m(json!([{"field": "action", "equals": "opened"}])));
        assert!(!m(json!([{"field": "action", "equals": "closed"}])));
        assert!(m(json!({"field": "pr.labels", "contains": "bug"})));
        assert!(m(json!({"field": "pr.labels.1", "equals": "ui"})));
        assert!(m(json!({"field": "pr.n", "in": [1, 3.0]})));
        assert!(m(json!({"field": "event", "equals": "pull_request"})));
        assert!(m(json!({"field": "pr.gone", "missing": true})));
        assert!(m(json!({"field": "pr.gone", "not_equals": 1})));
        assert!(m(
            json!({"any": [{"field": "action", "equals": "x"}, {"not": {"field": "pr", "exists": false}}]})
        ));
        assert!(!m(
            json!({"all": [{"field": "action", "equals": "opened"}, {"field": "pr.n", "equals": 4}]})
        ));
        assert!(
            !m(json!({"field": "action", "regex": "op.*"})),
            "unknown operators fail closed"
        );
        assert!(m(Value::Null));
        assert!(
            check_filters(
                &json!([{"field": "a", "equals": 1}, {"any": [{"field": "b", "exists": true}]}])
            )
            .is_ok()
        );
        assert!(
            check_filters(&json!([{"field": "a", "regex": "x"}]))
                .unwrap_err()
                .contains("regex")
        );
        assert!(check_filters(&json!("nope")).is_err());
    }

    #[test]
    fn deliver_extra_renders_string_values() {
        let p = json!({"chat": {"id": -100123}, "topic": 9});
        let extra = json!({"chat_id": "{chat.id}", "message_thread_id": "{topic}", "n": 5});
        let out = deliver_extra(extra.as_object().unwrap(), &p);
        assert_eq!(
            Value::Object(out),
            json!({"chat_id": "-100123", "message_thread_id": "9", "n": 5})
        );
    }
}
