//! The line codec: one UTF-8 JSON object per `\n`-terminated line, with a maximum length.
//!
//! The decoder's item is `Result<T, LineError>`: a bad line is an *item*, and the decoder's own
//! `Err` is kept for I/O. `FramedRead` yields `None` after any decoder error, which would end a
//! `while let Some(..)` loop on the first malformed line (tokio-util `FramedImpl`); reporting
//! bad lines as items keeps the link alive.

use std::io;
use std::marker::PhantomData;

use bytes::{Buf, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::Decoder;

use crate::error::LineError;
use crate::message::Message;

/// Default maximum line length: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// How much of a rejected line an error quotes.
const EXCERPT_CHARS: usize = 120;

/// Decodes `T` lines (encoding is `encode_line` / `append_line`).
#[derive(Debug)]
pub struct JsonLinesCodec<T> {
    max_line_bytes: usize,
    /// Bytes of the buffer already searched for a newline, so a long line is scanned once.
    scanned: usize,
    /// Inside an oversized line: drop bytes until the next newline.
    discarding: bool,
    /// Lines seen so far (including rejected and blank ones).
    line_no: u64,
    _item: PhantomData<fn() -> T>,
}

impl<T> JsonLinesCodec<T> {
    pub fn new() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }

    pub fn with_max_line_bytes(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes: max_line_bytes.max(1),
            scanned: 0,
            discarding: false,
            line_no: 0,
            _item: PhantomData,
        }
    }

    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Number of lines consumed so far.
    pub fn lines_seen(&self) -> u64 {
        self.line_no
    }
}

impl<T> Default for JsonLinesCodec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: DeserializeOwned + Message> JsonLinesCodec<T> {
    /// Decodes one complete line (without its `\n`), numbering it.
    fn parse_line(&mut self, raw: &[u8]) -> Option<Result<T, LineError>> {
        self.line_no += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return None; // blank lines are keep-alives, not errors
        }
        Some(parse_line(raw, self.line_no))
    }
}

/// Parses one line; on failure, works out which kind of failure it was.
pub fn parse_line<T: DeserializeOwned + Message>(raw: &[u8], line: u64) -> Result<T, LineError> {
    let text = std::str::from_utf8(raw).map_err(|e| LineError::InvalidUtf8 {
        line,
        valid_up_to: e.valid_up_to(),
    })?;
    let fast = match leading_type(text) {
        Some(type_name) => T::decode_tagged(type_name, text),
        None => serde_json::from_str::<crate::message::TypeTag<'_>>(text)
            .ok()
            .and_then(|tag| T::decode_tagged(&tag.type_name, text)),
    };
    fast.unwrap_or_else(|| serde_json::from_str::<T>(text))
        .map_err(|typed_err| classify::<T>(text, typed_err, line))
}

/// The `type` of a line that starts with it, as everything we ship writes lines, read without
/// a JSON pass. `None` — whitespace, an escape, another key first, or a second `"type"` further
/// on (a duplicate key must still be refused) — leaves it to the JSON parser.
fn leading_type(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(r#"{"type":""#)?;
    let end = rest.find(['"', '\\'])?;
    let (type_name, after) = rest.split_at(end);
    (after.starts_with('"') && !after.contains(r#""type""#)).then_some(type_name)
}

/// The slow path, taken only for a line that failed to decode.
fn classify<T: Message>(text: &str, typed_err: serde_json::Error, line: u64) -> LineError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return LineError::NotJson {
                line,
                detail: e.to_string(),
                excerpt: excerpt(text),
                len: text.len(),
            };
        }
    };
    let Some(object) = value.as_object() else {
        return LineError::NotAnObject {
            line,
            excerpt: excerpt(text),
            len: text.len(),
        };
    };
    let id = object.get("id").and_then(id_text);
    match object.get("type").and_then(|t| t.as_str()) {
        None => LineError::MissingType {
            line,
            excerpt: excerpt(text),
            id,
            len: text.len(),
        },
        Some(t) if !T::TYPES.contains(&t) => LineError::UnknownType {
            line,
            type_name: truncate_chars(t, EXCERPT_CHARS),
            id,
            len: text.len(),
        },
        Some(t) => LineError::InvalidMessage {
            line,
            type_name: t.to_owned(),
            detail: typed_err.to_string(),
            id,
            len: text.len(),
        },
    }
}

/// Ids longer than this are not taken from a rejected line (they could not be a real one).
const MAX_ID_CHARS: usize = 256;

/// An id given as a string or a number.
fn id_text(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty() && text.chars().count() <= MAX_ID_CHARS).then_some(text)
}

/// How far into an oversized line its fields are looked for.
const RECOVER_BYTES: usize = 16 * 1024;

/// Reads `type`, `id`, `chat` and `sender` from the start of a line too long to parse. Every
/// line we write starts with them (an inbound event: `{"type":"inbound","message":{"id":…,
/// "chat":…,"sender":…`). The first occurrence of each key is taken: inside a JSON string a
/// quote is always escaped, so `"id":` can only be a key.
pub fn recover_fields(head: &[u8]) -> crate::error::Recovered {
    let head = &head[..head.len().min(RECOVER_BYTES)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
    };
    crate::error::Recovered {
        type_name: scan_field(text, "type"),
        id: scan_field(text, "id"),
        chat: scan_field(text, "chat"),
        sender: scan_field(text, "sender"),
    }
}

/// The value of the first `"key": "value"` (or `"key": 123`) in `text`, without escapes.
fn scan_field(text: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let mut from = 0;
    while let Some(at) = text[from..].find(&needle) {
        let after = &text[from + at + needle.len()..];
        from += at + needle.len();
        let Some(value) = after.trim_start().strip_prefix(':') else {
            continue; // a value equal to the key's name, not the key
        };
        let value = value.trim_start();
        let found = if let Some(s) = value.strip_prefix('"') {
            let end = s.find(['"', '\\'])?;
            s[end..].starts_with('"').then(|| s[..end].to_owned())?
        } else {
            let end = value
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(value.len());
            value[..end].to_owned()
        };
        return (!found.is_empty() && found.chars().count() <= MAX_ID_CHARS).then_some(found);
    }
    None
}

/// The first characters of a rejected line, for the error message.
pub fn excerpt(text: &str) -> String {
    truncate_chars(text, EXCERPT_CHARS)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

impl<T: DeserializeOwned + Message> Decoder for JsonLinesCodec<T> {
    type Item = Result<T, LineError>;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        loop {
            // Never look further than one byte past the limit: a line that long is rejected
            // whatever follows.
            let search_end = buf.len().min(self.max_line_bytes.saturating_add(1));
            let newline = memchr::memchr(b'\n', &buf[self.scanned..search_end])
                .map(|offset| self.scanned + offset);

            match (self.discarding, newline) {
                (true, Some(end)) => {
                    buf.advance(end + 1);
                    self.scanned = 0;
                    self.discarding = false;
                }
                (true, None) => {
                    buf.advance(search_end);
                    self.scanned = 0;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                }
                (false, Some(end)) => {
                    let line = buf.split_to(end + 1);
                    self.scanned = 0;
                    if let Some(item) = self.parse_line(&line[..end]) {
                        return Ok(Some(item));
                    }
                }
                (false, None) if buf.len() > self.max_line_bytes => {
                    self.line_no += 1;
                    self.discarding = true;
                    self.scanned = 0;
                    return Ok(Some(Err(LineError::TooLong {
                        line: self.line_no,
                        limit: self.max_line_bytes,
                        // Only this line's bytes: no newline before `search_end`.
                        recovered: recover_fields(&buf[..search_end]),
                    })));
                }
                (false, None) => {
                    self.scanned = search_end;
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Self::Item>> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        // The peer closed in the middle of a line: decode what it sent.
        self.scanned = 0;
        if self.discarding || buf.is_empty() {
            self.discarding = false;
            buf.clear();
            return Ok(None);
        }
        let line = buf.split();
        Ok(self.parse_line(&line))
    }
}

/// Serialises one message as a line (with its `\n`), refusing one over `max_line_bytes`.
pub fn encode_line<M: Serialize>(item: &M, max_line_bytes: usize) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    append_line(item, &mut out, max_line_bytes)?;
    Ok(out)
}

/// Appends one message as a line to `out`; on an error nothing is appended. Serialising into
/// a `Vec` is what serde_json is fastest at (the gateway writer batches lines this way).
pub fn append_line<M: Serialize>(
    item: &M,
    out: &mut Vec<u8>,
    max_line_bytes: usize,
) -> Result<(), EncodeError> {
    let start = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, item) {
        out.truncate(start);
        return Err(EncodeError::Json(e.to_string()));
    }
    let len = out.len() - start;
    if len > max_line_bytes {
        out.truncate(start);
        return Err(EncodeError::TooLong {
            len,
            limit: max_line_bytes,
        });
    }
    out.push(b'\n');
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message is {len} bytes as a line, over the link's limit of {limit} bytes")]
    TooLong { len: usize, limit: usize },
    #[error("message cannot be serialised: {0}")]
    Json(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_recovered_from_the_start_of_an_oversized_line() {
        let head = br#"{"type":"inbound","message":{"id":"3EB0AA","chat":"1555@s.whatsapp.net","sender": "1555@s.whatsapp.net","text":"say \"id\":\"x\" "#;
        let r = recover_fields(head);
        assert_eq!(r.type_name.as_deref(), Some("inbound"));
        assert_eq!(r.id.as_deref(), Some("3EB0AA"));
        assert_eq!(r.chat.as_deref(), Some("1555@s.whatsapp.net"));
        assert_eq!(r.sender.as_deref(), Some("1555@s.whatsapp.net"));
        // An escaped quote inside text is never taken for a key; a cut-off value is not taken.
        let r = recover_fields(br#"{"type":"send_text","text":"\"id\":\"evil\"","id":12"#);
        assert_eq!(r.id.as_deref(), Some("12"));
        assert_eq!(
            recover_fields(br#"{"type":"inbound","message":{"id":"3EB0"#).id,
            None
        );
        assert_eq!(recover_fields(b"zzzz").id, None);
    }
    use crate::message::{ConnectionState, ConnectorEvent};

    type Codec = JsonLinesCodec<ConnectorEvent>;

    fn status_line(reason_len: usize) -> Vec<u8> {
        let mut line = br#"{"type":"status","state":"open","reason":""#.to_vec();
        line.extend(std::iter::repeat_n(b'x', reason_len));
        line.extend_from_slice(b"\"}");
        line
    }

    fn drain(codec: &mut Codec, buf: &mut BytesMut) -> Vec<Result<ConnectorEvent, LineError>> {
        let mut out = Vec::new();
        while let Some(item) = codec.decode(buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn the_leading_type_shortcut_decides_like_the_full_parse() {
        let lines = [
            r#"{"type":"status","state":"open"}"#,
            r#"{"type":"status","state":"open","type":"status"}"#,
            r#"{"type":"status","state":"open","reason":"a \"type\" word"}"#,
            r#"{"type":"stat\u0075s","state":"open"}"#,
            r#"{"type":"nope","state":"open"}"#,
            r#"{ "type":"status","state":"open"}"#,
            r#"{"state":"open","type":"status"}"#,
            r#"{"type":"status""#,
        ];
        for line in lines {
            let fast = parse_line::<ConnectorEvent>(line.as_bytes(), 1);
            // What the typed parse alone says, with the error classified the same way.
            let slow = serde_json::from_str::<ConnectorEvent>(line)
                .map_err(|e| classify::<ConnectorEvent>(line, e, 1));
            assert_eq!(fast, slow, "{line}");
        }
        assert_eq!(leading_type(r#"{"type":"status","x":1}"#), Some("status"));
        assert_eq!(leading_type(r#"{"type":"status","type":"qr"}"#), None);
        assert_eq!(leading_type(r#"{"type":"st\"x"}"#), None);
    }

    #[test]
    fn a_line_at_the_limit_decodes_and_one_byte_more_is_rejected() {
        let at_limit = status_line(10);
        let limit = at_limit.len();
        let mut codec = Codec::with_max_line_bytes(limit);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&at_limit);
        buf.extend_from_slice(b"\n");
        buf.extend_from_slice(&status_line(11));
        buf.extend_from_slice(b"\n");
        buf.extend_from_slice(&status_line(0));
        buf.extend_from_slice(b"\n");
        let items = drain(&mut codec, &mut buf);
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(items[0].is_ok());
        assert_eq!(
            items[1],
            Err(LineError::TooLong {
                line: 2,
                limit,
                recovered: crate::error::Recovered {
                    type_name: Some("status".into()),
                    ..Default::default()
                }
            })
        );
        assert!(matches!(
            &items[2],
            Ok(ConnectorEvent::Status(s)) if s.state == ConnectionState::Open
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn an_oversized_line_split_across_reads_is_reported_once_and_skipped() {
        let mut codec = Codec::with_max_line_bytes(16);
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        // 100 bytes of noise arriving 7 bytes at a time, then a good line.
        let mut stream = vec![b'a'; 100];
        stream.push(b'\n');
        stream.extend_from_slice(b"{\"type\":\"qr\",\n");
        for chunk in stream.chunks(7) {
            buf.extend_from_slice(chunk);
            items.extend(drain(&mut codec, &mut buf));
            assert!(buf.len() <= 17, "buffer grew to {} bytes", buf.len());
        }
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(
            items[0],
            Err(LineError::TooLong {
                line: 1,
                limit: 16,
                recovered: Default::default()
            })
        );
        assert_eq!(items[1].as_ref().unwrap_err().kind(), "not_json");
        assert_eq!(items[1].as_ref().unwrap_err().line(), 2);
    }

    #[test]
    fn a_line_split_across_reads_decodes_once_complete() {
        let mut codec = Codec::new();
        let mut buf = BytesMut::new();
        let line = b"{\"type\":\"link_code\",\"code\":\"ABCD2345\"}\n";
        for (i, byte) in line.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let item = codec.decode(&mut buf).unwrap();
            assert_eq!(item.is_some(), i == line.len() - 1);
        }
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let mut codec = Codec::new();
        let mut buf = BytesMut::from(&b"\n  \r\n{\"id\":1}\n"[..]);
        let items = drain(&mut codec, &mut buf);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap_err().line(), 3);
    }

    #[test]
    fn an_unterminated_last_line_is_decoded_at_eof() {
        let mut codec = Codec::new();
        let mut buf = BytesMut::from(&b"{\"type\":\"status\",\"state\":\"connecting\"}"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let item = codec.decode_eof(&mut buf).unwrap().unwrap();
        assert!(item.is_ok());
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn eof_inside_an_oversized_line_ends_quietly() {
        let mut codec = Codec::with_max_line_bytes(4);
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap().unwrap().unwrap_err().kind(),
            "too_long"
        );
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn the_encoder_refuses_a_line_over_the_limit_and_writes_nothing() {
        let mut dst = b"earlier line\n".to_vec();
        let event = ConnectorEvent::Qr(crate::message::QrCode {
            data: "x".repeat(50),
            expires_in_ms: None,
        });
        assert!(append_line(&event, &mut dst, 20).is_err());
        assert_eq!(dst, b"earlier line\n");
        assert_eq!(
            encode_line(&event, 20),
            Err(EncodeError::TooLong {
                len: serde_json::to_vec(&event).unwrap().len(),
                limit: 20
            })
        );
    }
}
