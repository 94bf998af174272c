//! A relay gateway after Hermes 0.19.0, written from its connector contract as
//! `../shared/reference/hermes-relay-newer.md` records it (Hermes' main-branch
//! `gateway/relay/` and `docs/relay-connector-contract.md`). No newer Hermes installs from
//! PyPI, so this client stands in for it; the section each step follows is named beside it.
//! Blocking, for the suite's plain tests.

use std::collections::VecDeque;
use std::net::TcpStream;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message, WebSocket, client::IntoClientRequest};

use super::PATIENCE;
use super::hermes::token_for;
use super::http::{Reply, request};

pub struct NewerGateway {
    ws: WebSocket<TcpStream>,
    frames: VecDeque<Value>,
    /// `127.0.0.1:<port>`: where it dialled, the only place it sends its token to (§1.8).
    pub addr: String,
    pub descriptor: Value,
    requests: u32,
}

impl NewerGateway {
    /// §1.1: `ws://…/relay` with `Authorization: Bearer <upgrade token>`; §1.3: one `hello`;
    /// §1.4: the descriptor that answers it.
    pub fn dial(port: u16, gateway: &str, platform: &str) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let mut req = format!("ws://{addr}/relay").into_client_request().unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", token_for(gateway)).parse().unwrap(),
        );
        let stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let (ws, _) = tungstenite::client(req, stream).expect("the relay upgrade");
        let mut g = Self {
            ws,
            frames: VecDeque::new(),
            addr,
            descriptor: Value::Null,
            requests: 0,
        };
        g.send(&json!({"type": "hello", "platform": platform, "botId": "newer-gw"}));
        let d = g.frame_where("the descriptor", |v| v["type"] == "descriptor");
        assert_eq!(d["descriptor"]["contract_version"], 1, "{d}");
        g.descriptor = d["descriptor"].clone();
        g
    }

    /// §1.4 `supported_ops`: what the gateway may send beyond the legacy set.
    pub fn supported_ops(&self) -> Vec<String> {
        self.descriptor["supported_ops"]
            .as_array()
            .expect("supported_ops is listed")
            .iter()
            .map(|o| o.as_str().unwrap().to_owned())
            .collect()
    }

    fn send(&mut self, frame: &Value) {
        // §1.1: one JSON object and a newline per text message.
        self.ws.send(Message::text(format!("{frame}\n"))).unwrap();
    }

    /// The next frame, or the code the socket was closed with.
    pub fn next(&mut self) -> Result<Value, u16> {
        loop {
            if let Some(v) = self.frames.pop_front() {
                return Ok(v);
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    // §1.1: the reader splits on newlines.
                    for line in t.lines().filter(|l| !l.is_empty()) {
                        self.frames.push_back(serde_json::from_str(line).unwrap());
                    }
                }
                Ok(Message::Close(f)) => return Err(f.map_or(0, |f| f.code.into())),
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Err(0);
                }
                Err(e) => panic!("relay socket: {e}"),
            }
        }
    }

    fn frame_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next() {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(code) => panic!("closed ({code}) waiting for {what}"),
            }
        }
    }

    /// §1.6: the next inbound event, acked as the gateway does once it handled it.
    pub fn inbound(&mut self) -> Value {
        let frame = self.frame_where("an inbound event", |v| v["type"] == "inbound");
        if let Some(id) = frame.get("bufferId") {
            self.send(&json!({"type": "inbound_ack", "bufferId": id}));
        }
        frame["event"].clone()
    }

    /// §1.7: one `outbound` frame and the `result` of its `outbound_result`.
    pub fn op(&mut self, action: Value) -> Value {
        self.requests += 1;
        let id = format!("req{}", self.requests);
        let platform = self.descriptor["platform"].clone();
        self.send(
            &json!({"type": "outbound", "requestId": id, "action": action,
            "platform": platform, "botId": "newer-gw"}),
        );
        self.frame_where("the outbound result", |v| {
            v["type"] == "outbound_result" && v["requestId"] == id.as_str()
        })["result"]
            .clone()
    }

    /// §1.8: `POST /relay/media` with the bearer and `X-Media-Filename`; the reference a
    /// `send_media` names, `{base}/relay/media/{id}`.
    pub fn upload(&self, gateway: &str, bytes: &str, file_name: &str) -> String {
        let bearer = format!("Bearer {}", token_for(gateway));
        let up = request(
            &self.addr,
            "POST",
            "/relay/media",
            Some(&self.addr),
            &[
                ("Authorization", bearer.as_str()),
                ("X-Media-Filename", file_name),
                ("Content-Type", "application/octet-stream"),
            ],
            Some(bytes),
        );
        assert_eq!(up.status, 200, "{}", up.body);
        format!(
            "http://{}/relay/media/{}",
            self.addr,
            up.json()["id"].as_str().unwrap()
        )
    }

    /// §1.8 download: `GET <url>`, with the bearer only when the URL is on the dialled
    /// host and port (`with_token`).
    pub fn download(&self, gateway: &str, url: &str, with_token: bool) -> Reply {
        let base = format!("http://{}", self.addr);
        let path = url
            .strip_prefix(&base)
            .expect("a URL where the gateway dialled");
        let bearer = format!("Bearer {}", token_for(gateway));
        let auth = [("Authorization", bearer.as_str())];
        let headers: &[(&str, &str)] = if with_token { &auth } else { &[] };
        request(&self.addr, "GET", path, Some(&self.addr), headers, None)
    }
}
