//! The iLink Bot API (personal WeChat) over HTTPS: JSON POSTs with iLink's headers, answers
//! sorted by what the connector does about them. The bot token is a password: every error text
//! leaving this module has it replaced by `<token>`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::connectors::kit::failure::{Classified, Failure};
use crate::connectors::kit::{Redactor, http};

/// The version of the iLink channel protocol we speak (as Hermes 0.19.0 does).
const CHANNEL_VERSION: &str = "2.2.0";
const APP_ID: &str = "bot";
/// `(2 << 16) | (2 << 8) | 0`: client version 2.2.0.
const APP_CLIENT_VERSION: u32 = (2 << 16) | (2 << 8);
const SESSION_EXPIRED: i64 = -14;
const RATE_LIMITED: i64 = -2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// `-14`, or `-2` with "unknown error": the login is gone; link again.
    #[error("the iLink session expired ({0})")]
    SessionExpired(String),
    /// A real `-2`: too many calls; wait and try again.
    #[error("iLink rate limit ({0})")]
    RateLimited(String),
    /// Any other non-zero `ret`/`errcode`, or an HTTP error status.
    #[error("{endpoint} failed: {detail}")]
    Refused { endpoint: String, detail: String },
    /// No usable answer: connection refused, reset, timed out, not JSON…
    #[error("network error: {0}")]
    Network(String),
}

impl Classified for ApiError {
    fn failure(&self) -> Failure {
        match self {
            Self::SessionExpired(_) => Failure::LoginGone,
            Self::RateLimited(_) => Failure::RateLimited(None),
            Self::Refused { .. } => Failure::Refused,
            Self::Network(_) => Failure::Unanswered,
        }
    }
}

pub struct Api {
    base_url: String,
    token: String,
    agent: ureq::Agent,
    redactor: Redactor,
}

impl Api {
    pub fn new(base_url: &str, token: &str) -> Self {
        Self {
            base_url: base_url.trim().trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            agent: http::agent(),
            redactor: Redactor::default().with(token, "token"),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// POSTs `payload` (with iLink's `base_info`) to `endpoint`; `timeout` bounds the whole call
    /// (a long poll's wait included). Returns the answer when its `ret` and `errcode` are 0.
    pub fn post(
        &self,
        endpoint: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let mut body = payload;
        body["base_info"] = json!({"channel_version": CHANNEL_VERSION});
        let body = body.to_string();
        let url = format!("{}/{endpoint}", self.base_url);
        let sent = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("AuthorizationType", "ilink_bot_token")
            .header("Authorization", format!("Bearer {}", self.token))
            .header("X-WECHAT-UIN", random_uin())
            .header("iLink-App-Id", APP_ID)
            .header("iLink-App-ClientVersion", APP_CLIENT_VERSION.to_string())
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body.as_bytes());
        let mut response = sent.map_err(|e| ApiError::Network(self.redact(&e.to_string())))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| ApiError::Network(self.redact(&e.to_string())))?;
        if !(200..300).contains(&status) {
            let detail: String = self.redact(&text).chars().take(200).collect();
            return Err(ApiError::Refused {
                endpoint: endpoint.to_owned(),
                detail: format!("HTTP {status}: {detail}"),
            });
        }
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| ApiError::Network(format!("{endpoint}: the answer is not JSON ({e})")))?;
        classify(endpoint, answer).map_err(|e| match e {
            ApiError::Refused { endpoint, detail } => ApiError::Refused {
                endpoint,
                detail: self.redact(&detail),
            },
            other => other,
        })
    }
}

/// A GET of the login endpoints (no token yet) with `query` (encoded by the client): the
/// answer as JSON, whatever its content.
pub fn get(
    base_url: &str,
    endpoint: &str,
    query: &[(&str, &str)],
    timeout: Duration,
) -> Result<Value, ApiError> {
    let url = format!("{}/{endpoint}", base_url.trim().trim_end_matches('/'));
    let mut response = http::agent()
        .get(&url)
        .query_pairs(query.iter().copied())
        .header("iLink-App-Id", APP_ID)
        .header("iLink-App-ClientVersion", APP_CLIENT_VERSION.to_string())
        .config()
        .timeout_global(Some(timeout))
        .build()
        .call()
        .map_err(|e| ApiError::Network(e.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| ApiError::Network(e.to_string()))?;
    if !(200..300).contains(&status) {
        return Err(ApiError::Refused {
            endpoint: endpoint.to_owned(),
            detail: format!("HTTP {status}"),
        });
    }
    serde_json::from_str(&text)
        .map_err(|e| ApiError::Network(format!("{endpoint}: the answer is not JSON ({e})")))
}

/// Sorts an answer by its `ret` and `errcode` (Hermes' rules: `-14`, or `-2` saying "unknown
/// error", is an expired session; any other `-2` a rate limit).
pub fn classify(endpoint: &str, answer: Value) -> Result<Value, ApiError> {
    let code = |k: &str| answer.get(k).and_then(Value::as_i64).unwrap_or(0);
    let (ret, errcode) = (code("ret"), code("errcode"));
    if ret == 0 && errcode == 0 {
        return Ok(answer);
    }
    let message = answer
        .get("errmsg")
        .or_else(|| answer.get("msg"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let detail = format!("ret {ret}, errcode {errcode}: {message}");
    if ret == SESSION_EXPIRED
        || errcode == SESSION_EXPIRED
        || ((ret == RATE_LIMITED || errcode == RATE_LIMITED)
            && message.eq_ignore_ascii_case("unknown error"))
    {
        return Err(ApiError::SessionExpired(detail));
    }
    if ret == RATE_LIMITED || errcode == RATE_LIMITED {
        return Err(ApiError::RateLimited(detail));
    }
    Err(ApiError::Refused {
        endpoint: endpoint.to_owned(),
        detail,
    })
}

/// iLink's `X-WECHAT-UIN`: a random 32-bit number, in decimal, base64-encoded.
fn random_uin() -> String {
    use base64::Engine;
    let uin = u32::from_be_bytes(crate::util::random::bytes::<4>());
    base64::engine::general_purpose::STANDARD.encode(uin.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_what_to_do() {
        let ok = json!({"ret": 0, "msgs": []});
        assert_eq!(classify("x", ok.clone()), Ok(ok));
        assert!(classify("x", json!({"errcode": 0})).is_ok());
        assert!(matches!(
            classify("x", json!({"ret": -14, "errmsg": "session timeout"})),
            Err(ApiError::SessionExpired(_))
        ));
        assert!(matches!(
            classify("x", json!({"ret": 0, "errcode": -14})),
            Err(ApiError::SessionExpired(_))
        ));
        assert!(matches!(
            classify("x", json!({"ret": -2, "errmsg": "Unknown Error"})),
            Err(ApiError::SessionExpired(_))
        ));
        assert!(matches!(
            classify("x", json!({"ret": -2, "errmsg": "frequency limit"})),
            Err(ApiError::RateLimited(_))
        ));
        assert_eq!(
            classify("sendmessage", json!({"ret": -1, "errmsg": "bad"})),
            Err(ApiError::Refused {
                endpoint: "sendmessage".into(),
                detail: "ret -1, errcode 0: bad".into()
            })
        );
    }

    #[test]
    fn the_token_never_survives_in_an_error() {
        let api = Api::new("http://127.0.0.1:9", "tok-secret-123");
        let e = api
            .post("ilink/bot/getupdates", json!({}), Duration::from_secs(2))
            .unwrap_err();
        assert!(matches!(e, ApiError::Network(_)), "{e:?}");
        assert!(!e.to_string().contains("tok-secret-123"));
        assert_eq!(api.redact("Bearer tok-secret-123"), "Bearer <token>");
        use base64::Engine;
        let uin = base64::engine::general_purpose::STANDARD
            .decode(random_uin())
            .unwrap();
        assert!(String::from_utf8(uin).unwrap().parse::<u32>().is_ok());
    }
}
