//! WeCom's server API for a self-built app: `gettoken` (the access token, cached for its
//! `expires_in` and fetched again when WeCom says it expired) and `message/send`. The corp
//! secret and the access tokens are passwords: every error leaving this module has them
//! replaced.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::connectors::kit::failure::{Classified, Failure};
use crate::connectors::kit::{Redactor, http};

const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// A token is fetched again this long before WeCom says it expires.
const EARLY: Duration = Duration::from_secs(60);
/// WeCom's codes for a token that is no longer good: fetch a new one and try once more.
const TOKEN_GONE: [i64; 3] = [40001, 40014, 42001];
/// Codes for credentials WeCom will never accept: a new secret (or corp id) is needed.
const BAD_CREDENTIALS: [i64; 4] = [40001, 40013, 40091, 40056];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("WeCom refused the app's credentials ({0})")]
    BadCredentials(String),
    #[error("{call} failed: {detail}")]
    Refused { call: &'static str, detail: String },
    #[error("network error: {0}")]
    Network(String),
}

impl Classified for ApiError {
    fn failure(&self) -> Failure {
        match self {
            Self::BadCredentials(_) => Failure::CredentialsRefused,
            Self::Refused { .. } => Failure::Refused,
            Self::Network(_) => Failure::Unanswered,
        }
    }
}

pub struct Api {
    root: String,
    corp_id: String,
    secret: String,
    agent_id: i64,
    agent: ureq::Agent,
    redactor: Mutex<Redactor>,
    token: Mutex<Option<(String, Instant)>>,
}

impl Api {
    pub fn new(root: &str, corp_id: &str, secret: &str, agent_id: i64) -> Self {
        Self {
            root: root.trim().trim_end_matches('/').to_owned(),
            corp_id: corp_id.to_owned(),
            secret: secret.to_owned(),
            agent_id,
            agent: http::agent(),
            redactor: Mutex::new(Redactor::default().with(secret, "corp_secret")),
            token: Mutex::new(None),
        }
    }

    fn redact(&self, text: &str) -> String {
        self.redactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .redact(text)
    }

    /// A good access token: the cached one, or a new one.
    pub fn access_token(&self) -> Result<String, ApiError> {
        if let Some((token, until)) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && Instant::now() < until
        {
            return Ok(token);
        }
        let url = format!("{}/cgi-bin/gettoken", self.root);
        let answer = self.call("gettoken", || {
            self.agent
                .get(&url)
                .query("corpid", &self.corp_id)
                .query("corpsecret", &self.secret)
                .config()
                .timeout_global(Some(CALL_TIMEOUT))
                .build()
                .call()
        });
        let answer = match answer {
            Err(ApiError::Refused { detail, .. })
                if BAD_CREDENTIALS
                    .iter()
                    .any(|c| detail.starts_with(&format!("errcode {c}"))) =>
            {
                return Err(ApiError::BadCredentials(detail));
            }
            other => other?,
        };
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Refused {
                call: "gettoken",
                detail: "no access_token in the answer".into(),
            })?
            .to_owned();
        let expires = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(7200);
        let until = Instant::now() + Duration::from_secs(expires).saturating_sub(EARLY);
        {
            let mut redactor = self.redactor.lock().unwrap_or_else(|p| p.into_inner());
            *redactor = std::mem::take(&mut *redactor).with(&token, "access_token");
        }
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), until));
        Ok(token)
    }

    /// Sends one text to `user`; the message id WeCom gives it.
    pub fn send_text(&self, user: &str, text: &str) -> Result<String, ApiError> {
        let body = json!({
            "touser": user,
            "msgtype": "text",
            "agentid": self.agent_id,
            "text": {"content": text},
            "safe": 0,
        });
        let mut retried = false;
        loop {
            let token = self.access_token()?;
            let url = format!("{}/cgi-bin/message/send", self.root);
            let sent = self.call("message/send", || {
                self.agent
                    .post(&url)
                    .query("access_token", &token)
                    .config()
                    .timeout_global(Some(CALL_TIMEOUT))
                    .build()
                    .send_json(&body)
            });
            match sent {
                Err(ApiError::Refused { detail, .. })
                    if !retried
                        && TOKEN_GONE
                            .iter()
                            .any(|c| detail.starts_with(&format!("errcode {c}"))) =>
                {
                    retried = true;
                    *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Err(e) => return Err(e),
                Ok(answer) => {
                    return Ok(answer
                        .get("msgid")
                        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                        .unwrap_or_default());
                }
            }
        }
    }

    /// One call: its answer when `errcode` is 0, else why not (secrets redacted).
    fn call(
        &self,
        call: &'static str,
        send: impl FnOnce() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ApiError> {
        let mut response = send().map_err(|e| ApiError::Network(self.redact(&e.to_string())))?;
        let status = response.status().as_u16();
        let answer: Value = response.body_mut().read_json().map_err(|e| {
            ApiError::Network(self.redact(&format!("HTTP {status}, not JSON: {e}")))
        })?;
        let code = answer.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        if code != 0 || status >= 400 {
            let message = answer.get("errmsg").and_then(Value::as_str).unwrap_or("");
            return Err(ApiError::Refused {
                call,
                detail: self.redact(&format!("errcode {code}: {message} (HTTP {status})")),
            });
        }
        Ok(answer)
    }
}
