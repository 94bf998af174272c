//! The little XML WeCom callbacks carry: one `<xml>` element whose children are text or
//! CDATA (`<Encrypt>`, `<FromUserName>`, `<Content>`, …). Read by hand because the format is
//! that small, and so nothing here can ever expand an entity or read a DTD: a document with a
//! declaration of any kind (`<!DOCTYPE`, `<!ENTITY`) is refused before anything else is read,
//! and only XML's five predefined entities and numeric references are decoded. Pure.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("a DTD or entity declaration (never expanded)")]
    Declaration,
    #[error("not a WeCom callback document: {0}")]
    Shape(&'static str),
    #[error("an entity reference other than XML's own")]
    UnknownEntity,
}

/// The children of the root element, by name (the first of each name).
pub fn fields(doc: &str) -> Result<BTreeMap<String, String>, XmlError> {
    // Declarations first: nothing after a DTD is looked at.
    let mut rest = doc;
    while let Some(at) = rest.find("<!") {
        if !rest[at..].starts_with("<![CDATA[") {
            return Err(XmlError::Declaration);
        }
        let end = rest[at..]
            .find("]]>")
            .ok_or(XmlError::Shape("an unterminated CDATA"))?;
        rest = &rest[at + end + 3..];
    }
    let mut s = doc.trim_start_matches('\u{feff}').trim();
    if let Some(after) = s.strip_prefix("<?xml") {
        s = after[after
            .find("?>")
            .ok_or(XmlError::Shape("an unterminated declaration"))?
            + 2..]
            .trim_start();
    }
    let (root, mut body) = open_tag(s).ok_or(XmlError::Shape("no root element"))?;
    let close = format!("</{root}>");
    body = body
        .trim_end()
        .strip_suffix(close.as_str())
        .ok_or(XmlError::Shape("the root element is not closed"))?;
    let mut out = BTreeMap::new();
    loop {
        body = body.trim_start();
        if body.is_empty() {
            return Ok(out);
        }
        let (name, after) =
            open_tag(body).ok_or(XmlError::Shape("a child that is not an element"))?;
        let close = format!("</{name}>");
        let (value, rest) = if let Some(cdata) = after.strip_prefix("<![CDATA[") {
            let end = cdata
                .find("]]>")
                .ok_or(XmlError::Shape("an unterminated CDATA"))?;
            let rest = cdata[end + 3..]
                .strip_prefix(close.as_str())
                .ok_or(XmlError::Shape("a CDATA child is not closed"))?;
            (cdata[..end].to_owned(), rest)
        } else {
            let end = after
                .find(close.as_str())
                .ok_or(XmlError::Shape("a child is not closed"))?;
            (unescape(&after[..end])?, &after[end + close.len()..])
        };
        out.entry(name.to_owned()).or_insert(value);
        body = rest;
    }
}

/// `<name>` (no attributes matter) at the start of `s`: the name and what follows.
fn open_tag(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('<')?;
    let end = s.find('>')?;
    let name = s[..end].split_whitespace().next()?;
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') {
        return None;
    }
    Some((name, &s[end + 1..]))
}

fn unescape(text: &str) -> Result<String, XmlError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(';').ok_or(XmlError::UnknownEntity)?;
        let name = &after[..end];
        let ch = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or(XmlError::UnknownEntity)?,
            n if n.starts_with('#') => n[1..]
                .parse()
                .ok()
                .and_then(char::from_u32)
                .ok_or(XmlError::UnknownEntity)?,
            _ => return Err(XmlError::UnknownEntity),
        };
        out.push(ch);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The XML of an outer callback envelope (what WeCom POSTs and the tests' fake sends).
pub fn envelope(to: &str, encrypted: &str, agent_id: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{to}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wecom_documents_are_read_and_declarations_refused() {
        let doc = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[zhang]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[a < b & <c>]]></Content><MsgId>123</MsgId></xml>";
        let f = fields(doc).unwrap();
        assert_eq!(f["FromUserName"], "zhang");
        assert_eq!(f["Content"], "a < b & <c>");
        assert_eq!(f["CreateTime"], "1700000000");
        let escaped =
            fields("<?xml version=\"1.0\"?>\n<xml><Content>x &lt; y &#65;&#x42;</Content></xml>")
                .unwrap();
        assert_eq!(escaped["Content"], "x < y AB");
        let billion = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><xml><Content>&lol;</Content></xml>";
        assert_eq!(fields(billion), Err(XmlError::Declaration));
        let external = "<!DOCTYPE xml SYSTEM \"file:///etc/passwd\"><xml/>";
        assert_eq!(fields(external), Err(XmlError::Declaration));
        assert_eq!(
            fields("<xml><Content>&lol;</Content></xml>"),
            Err(XmlError::UnknownEntity)
        );
        assert!(matches!(fields("not xml"), Err(XmlError::Shape(_))));
        assert!(matches!(fields("<xml><A>1</A>"), Err(XmlError::Shape(_))));
        let env = envelope("ww1", "c2VhbGVk", "1000002");
        assert_eq!(fields(&env).unwrap()["Encrypt"], "c2VhbGVk");
    }
}
