//! Masking of personal identifiers for `bridge.log` outside debug mode: phone numbers and LIDs
//! keep their last 4 digits, so an operator can still tell chats apart.

/// Masks the user part of a chat/sender id: `15551234567:3@s.whatsapp.net` →
/// `…4567:3@s.whatsapp.net`; bare numbers and `+` numbers likewise. Short ids stay as they are.
pub fn mask_id(id: &str) -> String {
    let (user, rest) = match id.find(['@', ':']) {
        Some(at) => id.split_at(at),
        None => (id, ""),
    };
    let digits: Vec<char> = user.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() <= 4 {
        return id.to_owned();
    }
    let last4: String = digits[digits.len() - 4..].iter().collect();
    format!("…{last4}{rest}")
}

/// Masks every run of 7 or more digits in free text (stderr lines, excerpts) to its last 4.
/// Shorter runs (ports, counts, status codes) stay readable.
pub fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7 {
            out.push('…');
            out.push_str(&run[run.len() - 4..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
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
    }

    #[test]
    fn long_digit_runs_in_text_are_masked() {
        assert_eq!(
            mask_digit_runs("send to 15551234567 failed (code 428, port 3000)"),
            "send to …4567 failed (code 428, port 3000)"
        );
        assert_eq!(mask_digit_runs("ünïcode 1234567"), "ünïcode …4567");
    }
}
