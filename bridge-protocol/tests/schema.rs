//! The committed JSON Schemas in `schema/` must match the Rust types. Regenerate with
//! `UPDATE_SCHEMA=1 cargo test -p bridge-protocol --test schema`.

use std::path::PathBuf;

use bridge_protocol::gateway::{GatewayEvent, GatewayRequest};
use bridge_protocol::message::{ConnectorCommand, ConnectorEvent, SupervisorNote};

fn check(file: &str, schema: schemars::Schema) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SCHEMA=1)", path.display()));
    assert!(
        committed == generated,
        "{} is out of date with the Rust types; rerun with UPDATE_SCHEMA=1",
        path.display()
    );
}

#[test]
fn schemas_match_the_types() {
    check(
        "connector-event.schema.json",
        schemars::schema_for!(ConnectorEvent),
    );
    check(
        "connector-command.schema.json",
        schemars::schema_for!(ConnectorCommand),
    );
    check(
        "gateway-request.schema.json",
        schemars::schema_for!(GatewayRequest),
    );
    check(
        "gateway-event.schema.json",
        schemars::schema_for!(GatewayEvent),
    );
    check(
        "supervisor-note.schema.json",
        schemars::schema_for!(SupervisorNote),
    );
}
