"""Unit tests of the Hermes plugin's pure mappings (hermes-plugin/translate.py): the link's
lines as Hermes' types; and of its send results against Hermes' own resend logic
(`BasePlatformAdapter._send_with_retry`, from the test venv). Run by tests/hermes_plugin.rs with
the test venv's Python; the end-to-end proof is the conformance suite's plugin case on every
platform."""

import asyncio
import importlib
import importlib.util
import os
import sys
import unittest

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hermes-plugin")
sys.path.insert(0, PLUGIN)

import translate  # noqa: E402

TELEGRAM = translate.Facts.from_json(
    {"platform": "telegram", "text_limit": 4096, "text_unit": "utf16", "groups": True}
)
WEBHOOK = translate.Facts.from_json({"platform": "webhook", "direct_chat_type": "webhook"})


class SourceFields(unittest.TestCase):
    def test_a_dm_keeps_the_networks_ids_and_the_senders_name(self):
        m = {"id": "100001/5", "chat": "100001", "sender": "100001", "sender_alt": "@ann",
             "push_name": "Ann Lee", "text": "hi", "timestamp": 1}
        s = translate.source_fields(m, TELEGRAM)
        self.assertEqual(s["chat_id"], "100001")
        self.assertEqual(s["chat_type"], "dm")
        self.assertEqual(s["user_name"], "Ann Lee")
        self.assertEqual(s["chat_id_alt"], "@ann")
        self.assertEqual(s["chat_name"], "Ann Lee", "a DM is named after the person")
        self.assertFalse(s["is_bot"])

    def test_a_bots_group_message_names_the_group_and_no_chat_alt(self):
        m = {"id": "-100/9", "chat": "-100", "sender": "77", "sender_alt": "@ci", "is_group": True,
             "chat_name": "Ops", "sender_is_bot": True, "timestamp": 1}
        s = translate.source_fields(m, TELEGRAM)
        self.assertEqual((s["chat_type"], s["chat_name"], s["is_bot"]), ("group", "Ops", True))
        self.assertIsNone(s["chat_id_alt"])
        self.assertEqual(s["user_name"], "77", "no name: the id, as Hermes' own adapters do")

    def test_a_webhook_delivery_is_a_webhook_chat(self):
        m = {"id": "d1", "chat": "webhook:gh:d1", "sender": "webhook:gh", "timestamp": 1}
        self.assertEqual(translate.source_fields(m, WEBHOOK)["chat_type"], "webhook")


class EventFields(unittest.TestCase):
    def test_a_photo_with_a_caption(self):
        m = {"id": "1", "chat": "c", "sender": "c", "text": "look", "timestamp": 1,
             "media": {"kind": "image", "mime": "image/jpeg", "path": "/m/a.jpg"}}
        e = translate.event_fields(m, frozenset())
        self.assertEqual((e["text"], e["media_urls"], e["media_types"]),
                         ("look", ["/m/a.jpg"], ["image/jpeg"]))
        self.assertEqual(translate.message_type(m), "photo")

    def test_a_quote_of_the_agent_is_its_own_by_the_connectors_word_or_the_accounts_ids(self):
        said = {"id": "2", "chat": "c", "sender": "c", "text": "and?", "timestamp": 1,
                "quoted": {"id": "1", "sender": "42", "text": "an answer", "from_me": True}}
        e = translate.event_fields(said, frozenset())
        self.assertEqual((e["reply_to_message_id"], e["reply_to_text"]), ("1", "an answer"))
        self.assertTrue(e["reply_to_is_own_message"])
        by_id = dict(said, quoted={"id": "1", "sender": "15550001111@s.whatsapp.net"})
        own = translate.account_ids({"phone": "15550001111@s.whatsapp.net", "lid": "1@lid"})
        self.assertTrue(translate.event_fields(by_id, own)["reply_to_is_own_message"])
        self.assertFalse(translate.event_fields(by_id, frozenset())["reply_to_is_own_message"])

    def test_a_groups_held_back_lines_are_the_channel_context_oldest_first(self):
        m = {"id": "3", "chat": "g", "sender": "u", "is_group": True, "text": "@bot?", "timestamp": 1,
             "context": [{"text": "we ship friday", "sender": "u1", "sender_name": "Ann"},
                         {"text": "ok", "sender": "u2"}]}
        self.assertEqual(translate.event_fields(m, frozenset())["channel_context"],
                         "Ann: we ship friday\nu2: ok")

    def test_a_command_is_a_command(self):
        self.assertEqual(translate.message_type({"text": "/reset"}), "command")
        self.assertEqual(translate.message_type({"text": "hi"}), "text")


class Results(unittest.TestCase):
    def test_a_send_is_its_first_message_id(self):
        r = translate.send_outcome({"ok": True, "data": {"message_ids": ["m1", "m2"]}})
        self.assertEqual((r["success"], r["message_id"]), (True, "m1"))

    def test_a_failure_says_whether_it_may_have_gone_out_and_whether_to_retry(self):
        gone = translate.send_outcome(
            {"ok": False, "error": {"code": "connector_exited", "message": "network error: reset",
                                    "unconfirmed": True}})
        self.assertFalse(gone["success"] or gone["retryable"])
        self.assertIn("may have been sent", gone["error"])
        # Read by Hermes' _send_with_retry as a timeout (no resend, no plain-text fallback),
        # and not as a network error (which it resends).
        self.assertIn("timed out", gone["error"])
        self.assertNotIn("network", gone["error"])
        full = translate.send_outcome({"ok": False, "error": {"code": "queue_full", "message": "later"}})
        self.assertTrue(full["retryable"])

    def test_chat_info_of_a_group_a_dm_and_a_failure(self):
        group = translate.chat_info("g", {"ok": True, "data": {"name": "Ops", "is_group": True}})
        self.assertEqual((group["name"], group["type"]), ("Ops", "group"))
        failed = translate.chat_info("c", {"ok": False, "error": {"code": "x"}})
        self.assertEqual((failed["name"], failed["type"]), ("c", "dm"))

    def test_identities_are_masked_to_their_last_four(self):
        self.assertEqual(translate.mask("15551234567"), "…4567")
        self.assertEqual(translate.mask("abc"), "…")


def plugin_module(name):
    """A module of the plugin as the package Hermes loads it as (its folder has a hyphen)."""
    if "bk_plugin" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "bk_plugin", os.path.join(PLUGIN, "__init__.py"), submodule_search_locations=[PLUGIN]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["bk_plugin"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"bk_plugin.{name}")


class Child:
    """The `bridgekeeper run` child, answering every command with `result`."""

    def __init__(self, result):
        self.result = result
        self.commands = []

    async def request(self, kind, connector, **fields):
        self.commands.append((kind, fields.get("text") or fields.get("message_id")))
        return self.result


class HermesResends(unittest.TestCase):
    """What Hermes 0.19.0's own `_send_with_retry` does with the adapter's send results."""

    def sends(self, result):
        from gateway.config import PlatformConfig

        adapter_module = plugin_module("adapter")
        child = Child(result)
        adapter = adapter_module.BridgekeeperAdapter(PlatformConfig(enabled=True), TELEGRAM, child)
        sent = asyncio.run(adapter._send_with_retry("100001", "hello", max_retries=1, base_delay=0.01))
        return sent, child.commands

    def test_an_unconfirmed_send_is_not_sent_again(self):
        unconfirmed = {"ok": False, "error": {"code": "connector_exited", "unconfirmed": True,
                                              "message": "network error: connection reset"}}
        sent, commands = self.sends(unconfirmed)
        self.assertFalse(sent.success)
        self.assertEqual(commands, [("send_text", "hello")], "no resend, no plain-text copy")

    def test_a_send_never_written_is_tried_again(self):
        full = {"ok": False, "error": {"code": "queue_full", "message": "later"}}
        _, commands = self.sends(full)
        self.assertGreater(len(commands), 1)

    def test_delete_goes_to_a_connector_that_does_it_and_says_whether_it_did(self):
        from gateway.config import PlatformConfig

        adapter_module = plugin_module("adapter")
        deleting = translate.Facts.from_json({"platform": "telegram", "ops": ["send_text", "delete"]})
        child = Child({"ok": True})
        adapter = adapter_module.BridgekeeperAdapter(PlatformConfig(enabled=True), deleting, child)
        self.assertTrue(asyncio.run(adapter.delete_message("100001", "100001/7")))
        self.assertEqual(child.commands, [("delete", "100001/7")])
        child = Child({"ok": True})
        adapter = adapter_module.BridgekeeperAdapter(PlatformConfig(enabled=True), WEBHOOK, child)
        self.assertFalse(asyncio.run(adapter.delete_message("webhook:gh:d1", "m")))
        self.assertEqual(child.commands, [])

    def test_a_delivered_send_is_sent_once(self):
        sent, commands = self.sends({"ok": True, "data": {"message_ids": ["100001/7"]}})
        self.assertEqual((sent.success, sent.message_id, len(commands)), (True, "100001/7", 1))


if __name__ == "__main__":
    unittest.main()
