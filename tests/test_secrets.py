"""No secret sits in a file of the repository: the example config carries none."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from bot.config import SECRET_KEYS, secrets_in_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"
# Key names that would hold a secret, and values that look like one wherever they are.
SECRET_NAME = re.compile(r"token|password|secret|api_key|private", re.IGNORECASE)
SECRET_VALUE = [
    re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"),  # a Telegram bot token
    re.compile(r"\bsy[td]_[A-Za-z0-9_]{10,}"),  # a Matrix access token
    re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^/\s:@]+:[^@\s]+@"),  # a URL with a password
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]


def leaves(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found += leaves(value, f"{name}.")
        else:
            found.append((name, value))
    return found


def test_the_example_config_contains_no_secret_values() -> None:
    assert secrets_in_file(EXAMPLE) == []
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for section, key in SECRET_KEYS:
        assert key not in data.get(section, {}), f"{section}.{key} belongs in the environment"
    for name, value in leaves(data):
        if SECRET_NAME.search(name.rsplit(".", 1)[-1]):
            assert not value, f"{name} has a value in {EXAMPLE.name}"
    text = EXAMPLE.read_text(encoding="utf-8")
    for pattern in SECRET_VALUE:
        assert not pattern.search(text), pattern.pattern


def test_the_check_itself_finds_a_planted_secret(tmp_path: Path) -> None:
    planted = tmp_path / "config.toml"
    planted.write_text(
        EXAMPLE.read_text(encoding="utf-8").replace(
            'mode = "polling"',
            'mode = "polling"\ntoken = "123456789:' + "A" * 35 + '"',
        ),
        encoding="utf-8",
    )
    assert secrets_in_file(planted) == ["telegram.token"]
    assert SECRET_VALUE[0].search(planted.read_text(encoding="utf-8"))


def test_a_secret_file_named_like_the_variable_sets_a_nested_key(tmp_path: Path) -> None:
    # As systemd credentials and compose secrets provide them: one file per variable.
    (tmp_path / "SICHERHEITSBOT_TELEGRAM__TOKEN").write_text("123:FROM_A_FILE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    env.update(SICHERHEITSBOT_SECRETS_DIR=str(tmp_path), SICHERHEITSBOT_TELEGRAM__ENABLED="true")
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bot.config import load_settings; "
            "print(load_settings().telegram.token.get_secret_value())",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (shown.returncode, shown.stdout) == (0, "123:FROM_A_FILE\n"), shown.stderr
