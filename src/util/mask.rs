//! Masking of personal identifiers for `bridge.log` outside debug mode: phone numbers and LIDs
//! keep their last 4 digits, so an operator can still tell chats apart.

/// Masks the user part of a chat/sender id: `15551234567:3@s.whatsapp.net` →
/// `…4567:3@s.whatsapp.net`; bare numbers and `+` numbers likewise. Short ids stay as they are.
pub fn mask_id(id: &str) -> String {
    LogId::masked(id).to_string()
}

/// An identity as `bridge.log` shows it — masked (see `mask_id`), or whole in debug mode —
/// written straight into the log line: the log writes two per message, so no `String` is built.
#[derive(Debug, Clone, Copy)]
pub struct LogId<'a> {
    id: &'a str,
    masked: bool,
}

impl<'a> LogId<'a> {
    pub fn masked(id: &'a str) -> Self {
        Self { id, masked: true }
    }

    pub fn whole(id: &'a str) -> Self {
        Self { id, masked: false }
    }
}

impl LogId<'_> {
    /// The last four digits of the user part and what follows it; `None` when the id is shown
    /// as it is (debug mode, or four digits or fewer).
    fn masked_parts(&self) -> Option<([u8; 4], &str)> {
        if !self.masked {
            return None;
        }
        let (user, rest) = match self.id.find(['@', ':']) {
            Some(at) => self.id.split_at(at),
            None => (self.id, ""),
        };
        let mut last4 = [0u8; 4];
        for (seen, b) in user.bytes().rev().filter(u8::is_ascii_digit).enumerate() {
            if seen == 4 {
                // A fifth digit: there is something to hide.
                return Some((last4, rest));
            }
            last4[3 - seen] = b;
        }
        None
    }
}

const ELLIPSIS: &str = "…";

impl std::fmt::Display for LogId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some((last4, rest)) = self.masked_parts() else {
            return f.write_str(self.id);
        };
        f.write_str(ELLIPSIS)?;
        // Four ASCII digits.
        f.write_str(std::str::from_utf8(&last4).unwrap_or_default())?;
        f.write_str(rest)
    }
}

impl serde::Serialize for LogId<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some((last4, rest)) = self.masked_parts() else {
            return serializer.serialize_str(self.id);
        };
        // Built on the stack: the log writes two per message.
        let mut buf = [0u8; 96];
        let len = ELLIPSIS.len() + 4 + rest.len();
        if len > buf.len() {
            return serializer.collect_str(self);
        }
        buf[..ELLIPSIS.len()].copy_from_slice(ELLIPSIS.as_bytes());
        buf[ELLIPSIS.len()..ELLIPSIS.len() + 4].copy_from_slice(&last4);
        buf[ELLIPSIS.len() + 4..len].copy_from_slice(rest.as_bytes());
        match std::str::from_utf8(&buf[..len]) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serializer.collect_str(self),
        }
    }
}

/// Masks the identities in free text (stderr lines, excerpts) to their last 4 digits: a digit
/// run that is the user part of an id (`15551234567@s.whatsapp.net`, `…:12@…`, `…@lid`,
/// `…-1600000000@g.us`) or a `+` number. Other numbers — byte counts, ports, timestamps,
/// message ids like `3EB0…` — are not identities and stay as they are.
pub fn mask_digit_runs(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            let c = text[i..].chars().next().unwrap_or_default();
            out.push(c);
            i += c.len_utf8().max(1);
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = &text[start..i];
        let glued_before = start > 0 && bytes[start - 1].is_ascii_alphanumeric();
        let glued_after = bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
        let plus = start > 0 && bytes[start - 1] == b'+';
        if run.len() >= 5 && !glued_before && !glued_after && (plus || is_id_user(&text[i..])) {
            out.push('…');
            out.push_str(&run[run.len() - 4..]);
        } else {
            out.push_str(run);
        }
    }
    out
}

/// What follows a digit run when it is the user part of an id: `@`, `:<device>@`, or
/// `-<digits>@` (old group ids).
fn is_id_user(rest: &str) -> bool {
    let after_digits = |s: &str| {
        s.trim_start_matches(|c: char| c.is_ascii_digit())
            .starts_with('@')
    };
    rest.starts_with('@')
        || rest.strip_prefix(':').is_some_and(after_digits)
        || rest.strip_prefix('-').is_some_and(after_digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_only_the_last_four_digits() {
        assert_eq!(
            mask_id("15551234567@s.whatsapp.net"),
            "…4567@s.whatsapp.net"
        );
        assert_eq!(
            mask_id("15551234567:12@s.whatsapp.net"),
            "…4567:12@s.whatsapp.net"
        );
        assert_eq!(mask_id("98765432109876@lid"), "…9876@lid");
        assert_eq!(mask_id("+1 555 123 4567"), "…4567");
        assert_eq!(mask_id("status@broadcast"), "status@broadcast");
        assert_eq!(mask_id("1234"), "1234");
        assert_eq!(mask_id("12345"), "…2345");
        assert_eq!(mask_id("1a2b3c4d5e:7@x"), "…2345:7@x");
        assert_eq!(
            LogId::whole("15551234567@lid").to_string(),
            "15551234567@lid"
        );
        for id in [
            "15551234567@lid",
            "1234@lid",
            &format!("15551234567@{}", "x".repeat(200)),
        ] {
            let json = serde_json::to_string(&LogId::masked(id)).unwrap();
            assert_eq!(json, format!("\"{}\"", mask_id(id)));
        }
    }

    #[test]
    fn identities_in_text_are_masked_and_other_numbers_kept() {
        assert_eq!(
            mask_digit_runs("send to 15551234567@s.whatsapp.net failed (code 428, port 3000)"),
            "send to …4567@s.whatsapp.net failed (code 428, port 3000)"
        );
        assert_eq!(
            mask_digit_runs("from 98765432109876@lid and 15551234567:12@s.whatsapp.net"),
            "from …9876@lid and …4567:12@s.whatsapp.net"
        );
        assert_eq!(mask_digit_runs("call +15551234567 now"), "call +…4567 now");
        assert_eq!(
            mask_digit_runs("ünïcode 15551234567@lid"),
            "ünïcode …4567@lid"
        );
        assert_eq!(
            mask_digit_runs("group 15551234567-1600000000@g.us"),
            "group …4567-…0000@g.us"
        );
        for kept in [
            "line 3: too_long (over 4194304 bytes)",
            "at 1767225600 (1767225600123 ms)",
            "message 3EB0123456789ABCDEF was sent",
            "id ABCD1234567",
        ] {
            assert_eq!(mask_digit_runs(kept), kept);
        }
    }
}
