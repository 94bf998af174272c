//! Secrets (bot tokens, app secrets, session tokens) appear in URLs and request bodies, so an
//! HTTP client's error text can carry them: every error that leaves a connector goes through
//! `redact` first.

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<(String, &'static str)>,
}

impl Redactor {
    /// `secret` is replaced by `<label>` wherever it appears (empty secrets are ignored).
    pub fn with(mut self, secret: &str, label: &'static str) -> Self {
        let secret = secret.trim();
        if !secret.is_empty() {
            self.secrets.push((secret.to_owned(), label));
            // Longest first: a secret that contains another is replaced whole.
            self.secrets
                .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        }
        self
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (secret, label) in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), &format!("<{label}>"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_replaced_wherever_it_appears() {
        let r = Redactor::default()
            .with("12345:abc", "token")
            .with("", "empty")
            .with("s3cr3t", "secret");
        assert_eq!(
            r.redact("GET https://x/bot12345:abc/getMe?k=s3cr3t failed: s3cr3t"),
            "GET https://x/bot<token>/getMe?k=<secret> failed: <secret>"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
    }
}
