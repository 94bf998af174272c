//! Property tests for the line codec (stable Rust cannot run cargo-fuzz here; proptest explores
//! the same space). CI runs the default case count; for a longer run:
//! `PROPTEST_CASES=100000 cargo test -p bridge-protocol --test fuzz_codec --release`.

use bridge_protocol::message::{ConnectionState, ConnectionStatus, ConnectorEvent};
use bridge_protocol::{JsonLinesCodec, LineError};
use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

type Codec = JsonLinesCodec<ConnectorEvent>;

/// Feeds `data` in pieces of the given sizes, then EOF; returns every item.
fn decode_all(
    codec: &mut Codec,
    data: &[u8],
    cuts: &[usize],
) -> Vec<Result<ConnectorEvent, LineError>> {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut cut = cuts.iter().cycle();
    while pos < data.len() {
        let n = (*cut.next().unwrap()).clamp(1, data.len() - pos);
        buf.extend_from_slice(&data[pos..pos + n]);
        pos += n;
        while let Some(item) = codec
            .decode(&mut buf)
            .expect("the decoder never fails on content")
        {
            items.push(item);
        }
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("nor at EOF") {
        items.push(item);
    }
    assert!(buf.is_empty());
    items
}

fn status_line(n: u16) -> Vec<u8> {
    let event = ConnectorEvent::Status(ConnectionStatus {
        state: ConnectionState::Closed,
        code: Some(n),
        reason: None,
    });
    let mut line = serde_json::to_vec(&event).unwrap();
    line.push(b'\n');
    line
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_lines_are_accounted_for(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(1usize..512, 1..8),
        limit in 8usize..256,
    ) {
        let mut codec = Codec::with_max_line_bytes(limit);
        let items = decode_all(&mut codec, &data, &cuts);
        // Every item is one line; line numbers only grow.
        let lines: Vec<u64> = items.iter().filter_map(|i| i.as_ref().err().map(|e| e.line())).collect();
        prop_assert!(lines.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(codec.lines_seen() as usize <= data.iter().filter(|b| **b == b'\n').count() + 1);
    }

    #[test]
    fn valid_lines_survive_any_garbage_around_them(
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_map(|b| if b == b'\n' { b'x' } else { b }), 0..300), 1..20),
        cuts in proptest::collection::vec(1usize..64, 1..6),
    ) {
        let limit = 128;
        let mut data = Vec::new();
        for (i, junk) in garbage.iter().enumerate() {
            data.extend_from_slice(junk);
            data.push(b'\n');
            data.extend(status_line(i as u16));
        }
        let mut codec = Codec::with_max_line_bytes(limit);
        let items = decode_all(&mut codec, &data, &cuts);
        let codes: Vec<u16> = items
            .iter()
            .filter_map(|i| match i {
                Ok(ConnectorEvent::Status(s)) => s.code,
                _ => None,
            })
            .collect();
        // A garbage line may by chance be a valid status line itself, so each valid line shows up
        // in order among the decoded ones.
        let mut expected = (0..garbage.len() as u16).peekable();
        for c in codes {
            if expected.peek() == Some(&c) {
                expected.next();
            }
        }
        prop_assert!(expected.next().is_none(), "a valid line was lost behind garbage");
        // Buffering is bounded by the limit, whatever the input.
        prop_assert!(codec.max_line_bytes() == limit);
    }
}
