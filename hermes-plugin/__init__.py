"""bridgekeeper as the Hermes gateway's connector layer.

At load, the plugin asks the bridgekeeper binary which platforms it would run from this Hermes
home (`bridgekeeper platforms --json`) and registers an adapter for each of them in place of
Hermes' own, keeping the fields of Hermes' entry (allowlist variables, home channel, cron's
sender, …). One `bridgekeeper run` child of the gateway serves them all. Without a binary it
registers nothing, so Hermes' own adapters run, and its log says why.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

from . import translate

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install bridgekeeper (bash scripts/install.sh in its checkout) and put it on PATH, "
    "or set BRIDGEKEEPER_BIN in the environment or in Hermes' .env"
)

# The fields of Hermes' own entry for a platform that the replacement keeps: what the gateway's
# authorization, cron deliveries, setup and status read from the registry.
KEPT_FIELDS = (
    "required_env",
    "setup_fn",
    "allowed_users_env",
    "allow_all_env",
    "pii_safe",
    "emoji",
    "allow_update_command",
    "platform_hint",
    "env_enablement_fn",
    "apply_yaml_config_fn",
    "cron_deliver_env_var",
    "standalone_sender_fn",
    "is_connected",
)


def _dotenv_value(home: Path, key: str) -> Optional[str]:
    """`key`'s value in Hermes' `.env`, read the simple way Hermes writes it."""
    try:
        lines = (home / ".env").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        name, sep, value = line.strip().partition("=")
        if sep and name.strip().removeprefix("export ").strip() == key:
            return value.strip().strip("'\"") or None
    return None


def find_binary(home: Path) -> Optional[str]:
    """`BRIDGEKEEPER_BIN` (the environment, else Hermes' `.env`), else `bridgekeeper` on PATH."""
    named = os.environ.get("BRIDGEKEEPER_BIN") or _dotenv_value(home, "BRIDGEKEEPER_BIN")
    if named:
        if os.path.isfile(named) and os.access(named, os.X_OK):
            return named
        logger.warning("bridgekeeper: BRIDGEKEEPER_BIN=%s is not an executable file", named)
        return None
    return shutil.which("bridgekeeper")


def ask_platforms(binary: str, home: Path) -> Optional[list]:
    """What `bridgekeeper run` would start from `home`, as bridgekeeper says it."""
    try:
        done = subprocess.run(
            [binary, "platforms", "--json", "--hermes-home", str(home)],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        logger.warning("bridgekeeper: cannot ask %s which platforms it runs: %s", binary, e)
        return None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        logger.warning("bridgekeeper: `%s platforms` failed: %s", binary, said[-1] if said else done.returncode)
        return None
    try:
        return translate.served(json.loads(done.stdout))
    except (ValueError, KeyError, TypeError) as e:
        logger.warning("bridgekeeper: `%s platforms --json` gave an answer this plugin cannot read: %s", binary, e)
        return None


def _kept(name: str) -> dict:
    """Hermes' own entry's fields for `name` (loading its bundled plugin), if it has one."""
    from gateway.platform_registry import platform_registry

    # A bundled plugin's loader runs on first use and registers every platform it holds (the
    # `wecom` one registers `wecom_callback` too). Run now each loader that may hold `name`, or
    # it would run after this plugin and its registration, the last, would win.
    pending = list(getattr(platform_registry, "_deferred", {}))
    try:
        for owner in pending:
            if name.startswith(owner + "_"):
                platform_registry.get(owner)
        entry = platform_registry.get(name)
    except Exception:  # noqa: BLE001 - a bundled plugin that fails to load keeps nothing
        return {}
    if entry is None:
        return {}
    return {field: getattr(entry, field) for field in KEPT_FIELDS if getattr(entry, field, None)}


def register(ctx: Any) -> None:
    from hermes_constants import get_hermes_home

    from .adapter import BridgekeeperAdapter
    from .child import Bridgekeeper

    home = Path(get_hermes_home())
    binary = find_binary(home)
    if binary is None:
        logger.warning("bridgekeeper: no bridgekeeper binary found, so Hermes' own adapters run: %s", INSTALL_HINT)
        return
    platforms = ask_platforms(binary, home)
    if not platforms:
        if platforms is not None:
            logger.info("bridgekeeper: no platform is turned on in %s; Hermes' own adapters run", home)
        return
    child = Bridgekeeper(binary, home, tuple(f.platform for f in platforms))
    for facts in platforms:
        kept = _kept(facts.platform)
        kept["max_message_length"] = facts.text_limit
        ctx.register_platform(
            name=facts.platform,
            label=facts.label,
            adapter_factory=lambda config, facts=facts: BridgekeeperAdapter(config, facts, child),
            check_fn=lambda: True,
            install_hint=INSTALL_HINT,
            **kept,
        )
    logger.info(
        "bridgekeeper: %s served by one `%s run` in place of Hermes' own adapters",
        ", ".join(f"{p.platform} ({p.because})" for p in platforms),
        binary,
    )
