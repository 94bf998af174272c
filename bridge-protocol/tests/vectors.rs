//! Runs every test vector in `vectors/*.jsonl` through the codec of its link: each valid line
//! decodes to its type and survives a round trip; each invalid line yields its typed error; and
//! a stream of all of them decodes to the same outcomes in order, bad lines included.

use std::path::PathBuf;

use bridge_protocol::gateway::{GatewayEvent, GatewayRequest};
use bridge_protocol::message::{ConnectorCommand, ConnectorEvent};
use bridge_protocol::{DEFAULT_MAX_LINE_BYTES, JsonLinesCodec, LineError, Message};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, FramedRead};

#[derive(Debug, serde::Deserialize)]
struct Vector {
    name: String,
    line: Option<String>,
    line_hex: Option<String>,
    expect: String,
    #[serde(rename = "type")]
    type_name: Option<String>,
    error: Option<String>,
    max_line_bytes: Option<usize>,
    /// For a bad request line: the id its `result` answers (`null`: no result, only a
    /// `line_error`). Absent: not checked.
    #[serde(default, deserialize_with = "present")]
    result_id: Option<Option<String>>,
    result_error: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

impl Vector {
    fn bytes(&self) -> Vec<u8> {
        match (&self.line, &self.line_hex) {
            (Some(line), None) => line.as_bytes().to_vec(),
            (None, Some(hex)) => (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect(),
            _ => panic!(
                "vector {:?} needs exactly one of line / line_hex",
                self.name
            ),
        }
    }

    /// `Ok(type)` or `Err(error kind)`.
    fn expected(&self) -> Result<String, String> {
        match self.expect.as_str() {
            "ok" => Ok(self.type_name.clone().expect("ok vector names its type")),
            "error" => Err(self.error.clone().expect("error vector names its error")),
            other => panic!("vector {:?}: unknown expect {other:?}", self.name),
        }
    }
}

fn load(file: &str) -> Vec<Vector> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("vectors")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let vectors: Vec<Vector> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
        .collect();
    assert!(vectors.len() >= 5, "{file} has too few vectors");
    vectors
}

fn outcome<T: Serialize>(item: &Result<T, LineError>) -> Result<String, String> {
    match item {
        Ok(msg) => Ok(serde_json::to_value(msg).unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned()),
        Err(e) => Err(e.kind().to_owned()),
    }
}

fn check_each<T>(file: &str)
where
    T: DeserializeOwned + Serialize + Message + PartialEq + std::fmt::Debug,
{
    for v in load(file) {
        let limit = v.max_line_bytes.unwrap_or(DEFAULT_MAX_LINE_BYTES);
        let mut codec = JsonLinesCodec::<T>::with_max_line_bytes(limit);
        let mut buf = BytesMut::from(&v.bytes()[..]);
        buf.extend_from_slice(b"\n");
        let item = codec
            .decode(&mut buf)
            .unwrap()
            .expect("one item per vector");
        assert_eq!(
            outcome(&item),
            v.expected(),
            "vector {:?} in {file}",
            v.name
        );
        if let (Err(e), Some(result_id)) = (&item, &v.result_id) {
            assert_eq!(e.id(), result_id.as_deref(), "result id of {:?}", v.name);
            if let Some(code) = &v.result_error {
                assert_eq!(e.result_code(), code, "result error of {:?}", v.name);
            }
        }
        if let Ok(msg) = item {
            let reencoded = serde_json::to_vec(&msg).unwrap();
            let again: T = serde_json::from_slice(&reencoded).unwrap();
            assert_eq!(again, msg, "round trip of {:?}", v.name);
        }
    }
}

/// All vectors of a file as one stream, read in awkward chunk sizes, plus an oversized line:
/// every bad line is an item and decoding goes on to the end.
async fn check_stream<T>(file: &str)
where
    T: DeserializeOwned + Serialize + Message,
{
    let vectors: Vec<Vector> = load(file)
        .into_iter()
        .filter(|v| v.max_line_bytes.is_none())
        .collect();
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        if i == vectors.len() / 2 {
            stream.extend(std::iter::repeat_n(b'z', DEFAULT_MAX_LINE_BYTES + 10));
            stream.push(b'\n');
            expected.push(Err("too_long".to_owned()));
        }
        stream.extend(v.bytes());
        stream.push(b'\n');
        expected.push(v.expected());
    }
    let reader = tokio_test_reader(stream, 4093);
    let items: Vec<_> = FramedRead::new(reader, JsonLinesCodec::<T>::new())
        .map(|r| outcome(&r.expect("no I/O error")))
        .collect()
        .await;
    assert_eq!(items, expected, "stream of {file}");
}

/// A reader that hands out at most `chunk` bytes per read.
fn tokio_test_reader(data: Vec<u8>, chunk: usize) -> impl tokio::io::AsyncRead + Unpin {
    let (mut tx, rx) = tokio::io::duplex(chunk);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for piece in data.chunks(chunk) {
            tx.write_all(piece).await.unwrap();
        }
    });
    rx
}

#[test]
fn connector_events() {
    check_each::<ConnectorEvent>("connector-events.jsonl");
}

#[test]
fn connector_commands() {
    check_each::<ConnectorCommand>("connector-commands.jsonl");
}

#[test]
fn gateway_requests() {
    check_each::<GatewayRequest>("gateway-requests.jsonl");
}

#[test]
fn gateway_events() {
    check_each::<GatewayEvent>("gateway-events.jsonl");
}

#[tokio::test]
async fn streams_of_every_link_keep_decoding_after_bad_lines() {
    check_stream::<ConnectorEvent>("connector-events.jsonl").await;
    check_stream::<ConnectorCommand>("connector-commands.jsonl").await;
    check_stream::<GatewayRequest>("gateway-requests.jsonl").await;
    check_stream::<GatewayEvent>("gateway-events.jsonl").await;
}
