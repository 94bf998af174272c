//! The supervisor's own liveness check (issue "Liveness"): a connector that stops answering
//! pings, or goes silent, is restarted as `hung` with an alert; a healthy one never is.

use bridge_protocol::gateway::{ConnectorStateName, GatewayEvent};

use crate::support::{TestDaemon, connector, events_named};

const FAST: &str = "liveness: {ping_interval_ms: 200, ping_timeout_ms: 300, silence_ms: 0}";

async fn wait_hung_restart(d: &mut TestDaemon) {
    d.wait_event(
        "the hung alert",
        |e| matches!(e, GatewayEvent::Alert { code, .. } if code == "connector_hung"),
    )
    .await;
    d.wait_event("running again", |e| {
        matches!(
            e,
            GatewayEvent::ConnectorState {
                state: ConnectorStateName::Running,
                restarts: 1,
                ..
            }
        )
    })
    .await;
}

/// A connector that keeps its stdout open but answers nothing (a stuck event loop).
#[tokio::test]
async fn a_connector_that_stops_answering_pings_is_restarted_as_hung() {
    let mut d = TestDaemon::start(&[connector("stuck", &["--no-answer"], FAST)]).await;
    d.wait_state("stuck", ConnectorStateName::Running).await;
    wait_hung_restart(&mut d).await;
    let status = d.status().await;
    let c = &status.connectors[0];
    assert_eq!(c.last_exit.as_ref().unwrap().exit.reason, "hung");
    d.stop().await;
    let log = d.log();
    let hung = events_named(&log, "connector_hung", "stuck");
    assert_eq!(hung[0]["reason"], "no_ping_answer");
    assert!(
        events_named(&log, "connector_exited", "stuck")
            .iter()
            .any(|e| e["reason"] == "hung")
    );
}

/// With pings off, a connector that writes nothing for the silence limit is hung too.
#[tokio::test]
async fn a_silent_connector_is_restarted_as_hung() {
    let mut d = TestDaemon::start(&[connector(
        "quiet",
        &[],
        "liveness: {ping_interval_ms: 0, silence_ms: 300}",
    )])
    .await;
    d.wait_state("quiet", ConnectorStateName::Running).await;
    wait_hung_restart(&mut d).await;
    d.stop().await;
    let log = d.log();
    assert_eq!(
        events_named(&log, "connector_hung", "quiet")[0]["reason"],
        "silent"
    );
}

/// A healthy connector answers every ping: never restarted, and the pings are neither counted
/// as the gateway's commands nor logged line by line.
#[tokio::test]
async fn a_healthy_connector_is_never_taken_for_hung() {
    let mut d = TestDaemon::start(&[connector("fine", &[], FAST)]).await;
    d.wait_state("fine", ConnectorStateName::Running).await;
    // Seven ping intervals.
    tokio::time::sleep(std::time::Duration::from_millis(1_400)).await;
    let status = d.status().await;
    let c = &status.connectors[0];
    assert_eq!((c.restarts, c.state), (0, ConnectorStateName::Running));
    assert_eq!(
        c.commands.accepted, 0,
        "pings are not counted: {:?}",
        c.commands
    );
    d.stop().await;
    let log = d.log();
    assert!(events_named(&log, "connector_hung", "fine").is_empty());
    assert!(
        events_named(&log, "command_written", "fine").is_empty(),
        "pings are not logged"
    );
}
