//! The Bot API over HTTPS (rustls, no OpenSSL). The bot token is part of every URL, so it is a
//! password: every error text leaving this module has it replaced by `<token>`.

use std::time::Duration;

use serde_json::Value;

use crate::connectors::kit::failure::{Classified, Failure};
use crate::connectors::kit::{Redactor, http};

/// How a call failed, sorted by what the connector does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 401 (or 404 for `getMe`): the token is wrong or revoked.
    #[error("the bot token was refused ({0})")]
    BadToken(String),
    /// 409: another `getUpdates` poller, or a webhook is set.
    #[error("{0}")]
    Conflict(Conflict),
    /// 429: wait this long.
    #[error("rate limited: retry after {0} s")]
    RetryAfter(u64),
    /// Any other answer with `ok: false`.
    #[error("{method} failed ({code}): {description}")]
    Refused {
        method: String,
        code: u16,
        description: String,
    },
    /// No answer: connection refused, reset, timed out, TLS…
    #[error("network error: {0}")]
    Network(String),
}

impl Classified for ApiError {
    fn failure(&self) -> Failure {
        match self {
            Self::BadToken(_) => Failure::CredentialsRefused,
            Self::Conflict(_) => Failure::Conflict,
            Self::RetryAfter(s) => Failure::RateLimited(Some(Duration::from_secs(*s))),
            Self::Refused { .. } => Failure::Refused,
            Self::Network(_) => Failure::Unanswered,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Webhook,
    OtherPoller,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Webhook => {
                "a webhook is set for this bot, so getUpdates cannot be used (deleteWebhook first)"
            }
            Self::OtherPoller => {
                "another process is polling this bot's updates (getUpdates with the same token)"
            }
        })
    }
}

pub struct Api {
    root: String,
    token: String,
    agent: ureq::Agent,
    redactor: Redactor,
}

impl Api {
    pub fn new(root: &str, token: &str) -> Self {
        Self {
            root: root.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            agent: http::agent(),
            redactor: Redactor::default().with(token, "token"),
        }
    }

    /// Replaces the token wherever it appears (URLs in HTTP client errors, say).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// Calls `method` with a JSON body; `timeout` bounds the whole call (a long poll's wait
    /// included). Returns the `result`.
    pub fn call(&self, method: &str, body: &Value, timeout: Duration) -> Result<Value, ApiError> {
        let url = format!("{}/bot{}/{method}", self.root, self.token);
        let sent = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send_json(body);
        self.answer(method, sent)
    }

    /// Calls `method` with a file: `multipart/form-data` of `fields` and the file's bytes
    /// under `file_field` (sendPhoto's `photo`, sendDocument's `document`).
    pub fn upload(
        &self,
        method: &str,
        fields: &[(&str, String)],
        file_field: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<Value, ApiError> {
        let boundary = http::multipart_boundary();
        let mut body = Vec::with_capacity(bytes.len() + 512);
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        let file_name = file_name.replace(['"', '\r', '\n'], "_");
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = format!("{}/bot{}/{method}", self.root, self.token);
        let sent = self
            .agent
            .post(&url)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .config()
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .send(&body[..]);
        self.answer(method, sent)
    }

    fn answer(
        &self,
        method: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ApiError> {
        let mut response = sent.map_err(|e| ApiError::Network(self.redact(&e.to_string())))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ApiError::Network(self.redact(&e.to_string())))?;
        // A bot URL Telegram does not know answers a plain 404, not JSON.
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| serde_json::json!({"ok": false, "description": text.trim()}));
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
        let description = self.redact(
            answer
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("no description"),
        );
        Err(classify(method, status, description, &answer))
    }
}

/// A multipart boundary that no file is likely to contain.
impl Api {
    /// A file `getFile` named, at most `limit` bytes.
    pub fn download(&self, file_path: &str, limit: u64) -> Result<Vec<u8>, ApiError> {
        let url = format!("{}/file/bot{}/{file_path}", self.root, self.token);
        let mut response = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .call()
            .map_err(|e| ApiError::Network(self.redact(&e.to_string())))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ApiError::Refused {
                method: "file download".into(),
                code: status,
                description: "the file server refused".into(),
            });
        }
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| ApiError::Network(self.redact(&e.to_string())))
    }
}

/// What an `ok: false` answer means. Pure.
fn classify(method: &str, status: u16, description: String, answer: &Value) -> ApiError {
    match status {
        401 => ApiError::BadToken(format!("{status} {description}")),
        // Telegram answers 404 to every method of a token it does not know.
        404 if matches!(method, "getMe" | "getUpdates") => {
            ApiError::BadToken(format!("{status} {description}"))
        }
        409 if description.to_lowercase().contains("webhook") => {
            ApiError::Conflict(Conflict::Webhook)
        }
        409 => ApiError::Conflict(Conflict::OtherPoller),
        429 => ApiError::RetryAfter(
            answer
                .pointer("/parameters/retry_after")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1),
        ),
        code => ApiError::Refused {
            method: method.to_owned(),
            code,
            description,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_sorted_by_what_to_do() {
        let c = |method, status, description: &str, answer: Value| {
            classify(method, status, description.into(), &answer)
        };
        assert!(matches!(
            c("getUpdates", 401, "Unauthorized", json!({})),
            ApiError::BadToken(_)
        ));
        assert!(matches!(
            c("getMe", 404, "Not Found", json!({})),
            ApiError::BadToken(_)
        ));
        assert!(matches!(
            c("sendMessage", 404, "Not Found", json!({})),
            ApiError::Refused { code: 404, .. }
        ));
        assert_eq!(
            c(
                "getUpdates",
                409,
                "Conflict: can't use getUpdates method while webhook is active",
                json!({})
            ),
            ApiError::Conflict(Conflict::Webhook)
        );
        assert_eq!(
            c(
                "getUpdates",
                409,
                "Conflict: terminated by other getUpdates request",
                json!({})
            ),
            ApiError::Conflict(Conflict::OtherPoller)
        );
        assert_eq!(
            c(
                "sendMessage",
                429,
                "Too Many Requests",
                json!({"parameters": {"retry_after": 7}})
            ),
            ApiError::RetryAfter(7)
        );
    }

    #[test]
    fn the_token_never_survives_in_an_error() {
        let api = Api::new("http://127.0.0.1:1", "12345:secret-token");
        // Nothing listens on port 1: the client's error names the URL, token and all.
        let e = api
            .call("getMe", &json!({}), Duration::from_secs(2))
            .unwrap_err();
        assert!(matches!(e, ApiError::Network(_)), "{e:?}");
        assert!(!e.to_string().contains("secret-token"), "{e}");
        assert_eq!(
            api.redact("x/bot12345:secret-token/getMe"),
            "x/bot<token>/getMe"
        );
    }
}
