use super::*;
use std::path::Path;

const NOW: f64 = 1_800_000_100.0;
const WA: &str = "whatsapp";

fn store() -> (tempfile::TempDir, PairingStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = PairingStore::new(dir.path().join("platforms/pairing"));
    (dir, store)
}

fn copy_fixture(name: &str) -> (tempfile::TempDir, PairingStore) {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let dst = dir.path().join("pairing");
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    let store = PairingStore::new(dst);
    (dir, store)
}

#[test]
fn a_code_approves_in_any_case_and_spacing() {
    let (_d, s) = store();
    let issued = s.issue(WA, "+1 555 765 4321", "Stranger", NOW).unwrap();
    assert!(code::looks_like_code(&issued.code));
    let typed = format!(
        " {} {} ",
        issued.code[..4].to_lowercase(),
        &issued.code[4..]
    );
    let approved = s.approve(WA, &typed, NOW + 5.0).unwrap();
    assert_eq!(approved.user_id, "15557654321");
    let snap = s.snapshot(WA, NOW + 6.0).unwrap();
    assert!(snap.approved.contains("15557654321"));
    assert_eq!(snap.pending_total, 0);
    // The code is stored only as a hash.
    let text = std::fs::read_to_string(s.dir().join("whatsapp-pending.json")).unwrap();
    assert!(!text.contains(&issued.code));
}

#[test]
fn what_list_shows_is_what_approve_accepts() {
    let (_d, s) = store();
    let issued = s.issue(WA, "15557654321", "Stranger", NOW).unwrap();
    let listing = s.list(Some(WA), NOW).unwrap();
    let pending = &listing.platforms[0].pending;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].approve_with, issued.request_id);
    s.approve(WA, &pending[0].approve_with.to_uppercase(), NOW)
        .unwrap();
}

#[test]
fn five_wrong_codes_lock_the_platform_and_a_success_resets_the_count() {
    let (_d, s) = store();
    let issued = s.issue(WA, "15557654321", "Stranger", NOW).unwrap();
    for i in 0..2 {
        match s.approve(WA, "AAAAAAAA", NOW) {
            Err(ApproveError::NoMatch { remaining, .. }) => assert_eq!(remaining, 4 - i),
            other => panic!("{other:?}"),
        }
    }
    s.approve(WA, &issued.code, NOW).unwrap();
    let again = s.issue(WA, "15550009999", "Other", NOW).unwrap();
    for _ in 0..4 {
        assert!(matches!(
            s.approve(WA, "AAAAAAAA", NOW),
            Err(ApproveError::NoMatch { .. })
        ));
    }
    let err = s.approve(WA, "AAAAAAAA", NOW).unwrap_err();
    assert!(matches!(err, ApproveError::LockedOut { .. }), "{err:?}");
    assert!(err.to_string().contains("locked"), "{err}");
    // Locked: even the right code is refused, and nothing is counted.
    assert!(matches!(
        s.approve(WA, &again.code, NOW + 10.0),
        Err(ApproveError::LockedOut { .. })
    ));
    assert_eq!(
        s.snapshot(WA, NOW).unwrap().locked_until,
        Some(NOW + LOCKOUT_SECS)
    );
    // After the hour, approvals work again.
    s.approve(WA, &again.code, NOW + LOCKOUT_SECS - 1.0)
        .unwrap_err();
    assert!(
        s.approve(WA, &again.code, NOW + LOCKOUT_SECS + 1.0)
            .is_err(),
        "code expired by then"
    );
}

#[test]
fn revoke_clears_approval_pending_codes_and_the_rate_limit() {
    let (_d, s) = store();
    let second = s.issue(WA, "15557654321", "Stranger", NOW).unwrap();
    // Approved by another tool that left the user's pending code behind (Hermes approving by
    // user id): the code is still pending when the user is revoked.
    std::fs::write(
        s.approved_path(WA),
        r#"{"15557654321": {"user_name": "Stranger", "approved_at": 1800000100.0}}"#,
    )
    .unwrap();
    let revoked = s.revoke(WA, "15557654321@s.whatsapp.net").unwrap();
    assert_eq!(
        revoked,
        Revoked {
            mirrored: None,
            was_approved: true,
            pending_removed: 1,
            rate_limit_removed: true
        }
    );
    assert!(
        s.approve(WA, &second.code, NOW + RATE_LIMIT_SECS + 1.0)
            .is_err()
    );
    let snap = s.snapshot(WA, NOW + RATE_LIMIT_SECS + 2.0).unwrap();
    assert!(!snap.approved.contains("15557654321"));
    assert!(!snap.last_request.contains_key("15557654321"));
    // Asks again at once: a fresh code, immediately.
    s.issue(WA, "15557654321", "Stranger", NOW + RATE_LIMIT_SECS + 3.0)
        .unwrap();
}

#[test]
fn rate_limit_pending_cap_and_expiry() {
    let (_d, s) = store();
    s.issue(WA, "1", "", NOW).unwrap();
    assert!(matches!(
        s.issue(WA, "1", "", NOW + 599.0),
        Err(IssueError::RateLimited)
    ));
    // A second request replaces the user's first pending code.
    s.issue(WA, "1", "", NOW + 600.0).unwrap();
    assert_eq!(s.snapshot(WA, NOW + 600.0).unwrap().pending_total, 1);
    s.issue(WA, "2", "", NOW).unwrap();
    s.issue(WA, "3", "", NOW).unwrap();
    assert!(matches!(
        s.issue(WA, "4", "", NOW + 601.0),
        Err(IssueError::QueueFull)
    ));
    // An hour later the old ones have expired.
    s.issue(WA, "4", "", NOW + CODE_TTL_SECS + 1.0).unwrap();
}

#[test]
fn files_written_by_hermes_load_and_approve() {
    let (_d, s) = copy_fixture("hermes-pairing");
    let now = 1_800_000_100.0;
    let snap = s.snapshot(WA, now).unwrap();
    assert!(
        snap.approved.contains("15551234567"),
        "BOM-prefixed approved file"
    );
    assert_eq!(snap.pending_total, 1);
    assert_eq!(snap.last_request.get("15557654321"), Some(&1_800_000_000.5));
    let approved = s.approve(WA, "abcd 2345", now).unwrap();
    assert_eq!(approved.user_name, "Stranger");
    // The failure count Hermes recorded was reset by the success; other keys survive.
    let rates: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir().join("_rate_limits.json")).unwrap())
            .unwrap();
    assert!(rates.get("_failures:whatsapp").is_none());
    assert_eq!(rates["whatsapp:15557654321"], 1_800_000_000.5);
}

#[test]
fn the_old_plain_code_layout_is_read_listed_and_upgraded() {
    let (_d, s) = copy_fixture("hermes-pairing-legacy");
    let now = 1_800_000_100.0;
    let listing = s.list(Some(WA), now).unwrap();
    assert_eq!(listing.platforms[0].pending[0].approve_with, "XYZW6789");
    // Any write rewrites the file in the hashed layout only.
    s.issue(WA, "15550000000", "New", now).unwrap();
    let text = std::fs::read_to_string(s.dir().join("whatsapp-pending.json")).unwrap();
    assert!(!text.contains("XYZW6789"), "{text}");
    assert_eq!(
        s.approve(WA, "xyzw6789", now).unwrap().user_id,
        "15553334444"
    );
}

#[test]
fn corrupt_empty_and_unreadable_files_are_errors_that_name_the_file() {
    let (_d, s) = store();
    std::fs::create_dir_all(s.dir()).unwrap();
    let path = s.dir().join("whatsapp-approved.json");
    for (content, detail) in [
        (&b"{\"15551234567\": "[..], "EOF"),
        (&b""[..], "empty"),
        (&b"\xff\xfe"[..], "UTF-8"),
    ] {
        std::fs::write(&path, content).unwrap();
        let err = s.snapshot(WA, NOW).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("whatsapp-approved.json") && text.contains("corrupt"),
            "{text}"
        );
        assert!(text.contains(detail), "{text}");
        let StoreError::Corrupt { copy, .. } = err else {
            panic!()
        };
        assert_eq!(std::fs::read(&copy).unwrap(), content, "a copy is kept");
        // Reading the same broken file again keeps no second copy.
        let again = s.snapshot(WA, NOW).unwrap_err();
        let StoreError::Corrupt { copy: copy2, .. } = again else {
            panic!()
        };
        assert_eq!(copy2, copy);

        assert_eq!(std::fs::read(&path).unwrap(), content, "never reset");
        // Writes refuse too, rather than replacing what they cannot read.
        assert!(matches!(s.revoke(WA, "1"), Err(StoreError::Corrupt { .. })));
    }
    let copies = std::fs::read_dir(s.dir())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy()
                .starts_with("whatsapp-approved.json.corrupt-")
        })
        .count();
    assert_eq!(
        copies, 3,
        "one copy per distinct content, however often read"
    );
    // A directory where a file should be: a read error naming it.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = s.snapshot(WA, NOW).unwrap_err();
    assert!(matches!(err, StoreError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("whatsapp-approved.json"));
}

/// Only the pending file (or the rate-limit file) is broken: approvals still count, and the
/// error is carried so the caller can fail strangers closed.
#[test]
fn an_unreadable_pending_or_rate_file_keeps_approvals() {
    let (_d, s) = store();
    let issued = s.issue(WA, "15551234567", "Ana", NOW).unwrap();
    s.approve(WA, &issued.code, NOW + 1.0).unwrap();
    for broken in ["whatsapp-pending.json", "_rate_limits.json"] {
        let path = s.dir().join(broken);
        let before = std::fs::read(&path).ok();
        std::fs::write(&path, b"{not json").unwrap();
        let snap = s.snapshot(WA, NOW + 2.0).unwrap();
        assert!(snap.approved.contains("15551234567"), "{broken}");
        let why = snap.unreadable.expect("the error is carried");
        assert!(why.contains(broken), "{why}");
        match before {
            Some(b) => std::fs::write(&path, b).unwrap(),
            None => std::fs::remove_file(&path).unwrap(),
        }
    }
}

#[test]
fn unlock_lifts_the_lock_out_and_resets_the_count() {
    let (_d, s) = store();
    let issued = s.issue(WA, "15551234567", "Ana", NOW).unwrap();
    for _ in 0..MAX_FAILED_APPROVALS {
        let _ = s.approve(WA, "WRONG234", NOW + 1.0);
    }
    let locked = s.approve(WA, &issued.code, NOW + 2.0).unwrap_err();
    assert!(
        locked
            .to_string()
            .contains("bridgekeeper pairing unlock whatsapp"),
        "{locked}"
    );
    assert!(s.unlock(WA).unwrap());
    assert!(!s.unlock(WA).unwrap(), "nothing left to clear");
    s.approve(WA, &issued.code, NOW + 3.0).unwrap();
}

#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, s) = store();
    s.issue(WA, "1", "", NOW).unwrap();
    assert_eq!(
        std::fs::metadata(s.dir()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in ["whatsapp-pending.json", "_rate_limits.json"] {
        let mode = std::fs::metadata(s.dir().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

#[test]
fn concurrent_writers_never_exceed_the_cap() {
    let (_d, s) = store();
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || s.issue(WA, &format!("1555000{i:04}"), "", NOW).is_ok())
        })
        .collect();
    let ok = handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, MAX_PENDING_PER_PLATFORM);
    assert_eq!(
        s.snapshot(WA, NOW).unwrap().pending_total,
        MAX_PENDING_PER_PLATFORM
    );
}

#[test]
fn the_legacy_directory_is_used_only_when_it_holds_something_as_hermes_has_it() {
    let home = tempfile::tempdir().unwrap();
    let current = home.path().join("platforms/pairing");
    assert_eq!(locate(home.path()), current);
    // The gateway makes an empty `pairing/` at start: Hermes still uses the current one.
    std::fs::create_dir(home.path().join("pairing")).unwrap();
    assert_eq!(locate(home.path()), current);
    std::fs::write(home.path().join("pairing/telegram-approved.json"), "{}").unwrap();
    assert_eq!(locate(home.path()), home.path().join("pairing"));
    std::fs::create_dir_all(&current).unwrap();
    assert_eq!(locate(home.path()), home.path().join("pairing"));
}

/// The store reader against arbitrary file contents: never a panic, and a file it refuses is
/// never changed. `PROPTEST_CASES=20000 cargo test --release fuzz_store` for a longer run.
mod fuzz_store {
    use super::*;
    use proptest::prelude::*;

    fn contents() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            // JSON-ish: objects with wrong or partial shapes.
            "\\{(\"[a-z0-9:_]{0,12}\": (\\{\\}|\\[\\]|null|1|\"x\"|\\{\"user_id\": 1\\}), ?){0,4}\\}".prop_map(String::into_bytes),
            Just(b"\xef\xbb\xbf{}".to_vec()),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_files_never_panic_nor_get_overwritten(
            pending in contents(), approved in contents(), rates in contents(),
        ) {
            let (_d, s) = store();
            std::fs::create_dir_all(s.dir()).unwrap();
            let files = [
                (s.dir().join("whatsapp-pending.json"), pending),
                (s.dir().join("whatsapp-approved.json"), approved),
                (s.dir().join("_rate_limits.json"), rates),
            ];
            for (path, bytes) in &files {
                std::fs::write(path, bytes).unwrap();
            }
            let readable = s.snapshot(WA, NOW).is_ok();
            let _ = s.list(None, NOW);
            let _ = s.approve(WA, "ABCD2345", NOW);
            let _ = s.issue(WA, "15550001111", "x", NOW);
            let _ = s.revoke(WA, "15550001111");
            if !readable {
                // At least one file was refused; every refused file must be untouched.
                for (path, bytes) in &files {
                    let now = std::fs::read(path).unwrap_or_default();
                    let parses = std::str::from_utf8(bytes).ok().map(|t| t.trim_start_matches('\u{feff}'))
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                        .is_some_and(|v| v.is_object());
                    if !parses {
                        prop_assert_eq!(&now, bytes, "{} was changed", path.display());
                    }
                }
            }
        }
    }
}

/// A caller that decided on a snapshot from before an approval asks for a code: the store
/// says the user is in (not rate-limited), and changes nothing.
#[test]
fn issuing_for_a_user_approved_meanwhile_says_approved_and_writes_nothing() {
    let (_d, s) = store();
    let issued = s.issue(WA, "15557654321", "Stranger", NOW).unwrap();
    s.approve(WA, &issued.code, NOW + 1.0).unwrap();
    let before = s.snapshot(WA, NOW + 2.0).unwrap();
    assert!(matches!(
        s.issue(WA, "+1 555 765 4321", "Stranger", NOW + 2.0),
        Err(IssueError::AlreadyApproved)
    ));
    let after = s.snapshot(WA, NOW + 2.0).unwrap();
    assert_eq!(after.pending_total, before.pending_total);
    assert_eq!(after.last_request, before.last_request);
}
