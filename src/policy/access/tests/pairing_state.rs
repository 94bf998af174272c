//! Which decisions read the pairing store (`needs_pairing_state`).

use super::*;

/// The store is read only where its state can change the decision: a stranger's DM under
/// pairing (either unauthorized-DM choice); never an own echo, a duplicate, an allowlisted
/// sender, a group, or another DM policy.
#[test]
fn only_decisions_the_pairing_state_can_change_read_the_store() {
    let pairing = bot();
    let ignoring = AccessPolicy {
        unauthorized_dm: UnauthorizedDm::Ignore,
        ..bot()
    };
    let listed = AccessPolicy {
        allow_from: set(&["15551234567"]),
        ..bot()
    };
    let open = AccessPolicy {
        dm_policy: DmPolicy::Open,
        ..bot()
    };
    let echo = Seen {
        sent_by_us: true,
        ..Seen::default()
    };
    let repeat = Seen {
        duplicate: true,
        ..Seen::default()
    };
    let own = InboundMessage {
        from_me: true,
        ..dm(STRANGER)
    };
    let rows = [
        (
            "stranger, pairing",
            &pairing,
            dm(STRANGER),
            Seen::default(),
            true,
        ),
        (
            "stranger, ignore",
            &ignoring,
            dm(STRANGER),
            Seen::default(),
            true,
        ),
        ("own echo", &pairing, dm(STRANGER), echo, false),
        ("duplicate", &pairing, dm(STRANGER), repeat, false),
        ("from the owner", &pairing, own, Seen::default(), false),
        ("allowlisted", &listed, dm(FRIEND), Seen::default(), false),
        (
            "allowlisted by LID",
            &listed,
            dm(FRIEND_LID),
            Seen::default(),
            false,
        ),
        (
            "group",
            &pairing,
            in_group(STRANGER),
            Seen::default(),
            false,
        ),
        ("open DMs", &open, dm(STRANGER), Seen::default(), false),
        (
            "self-chat mode",
            &AccessPolicy::default(),
            dm(STRANGER),
            Seen::default(),
            false,
        ),
    ];
    for (name, policy, msg, seen, want) in rows {
        assert_eq!(
            needs_pairing_state(policy, &who(), &msg, seen),
            want,
            "{name}"
        );
    }
}
