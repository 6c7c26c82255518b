"""What used to end in a traceback ends in one clear line and a non-zero exit.

The real command line in a subprocess, as an operator or a terminal user meets it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import BOT, run

ERROR_EXIT = 1


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|DEBUG) ")


def one_clear_line(stderr: str, expected: str) -> None:
    """Nothing but the log's INFO lines and one line that says what is wrong."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1, stderr[-2000:]
    assert lines[0].startswith("Error: ") and expected in lines[0], lines[0]


def test_a_nul_byte_in_a_file_path_gets_an_answer_and_the_chat_goes_on(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    lines = ["/start", "/photo evidence\x00.jpg", "/file \x00", "/video a\x00b", "/menu"]
    result = run(["chat", "--user", "nul", "--db", db], "\n".join(lines) + "\n", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert "(file not readable: 'evidence\\x00.jpg')" in result.stdout
    assert result.stdout.count("file not readable") == 3
    assert "Was möchten Sie tun?" in result.stdout.rsplit("file not readable", 1)[1]


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        ("99999999999999999999", "no broadcast #99999999999999999999"),
        ("2147483648", "no broadcast #2147483648"),
        ("²", "not a broadcast number: '²'"),
        ("٣", "not a broadcast number"),  # an Arabic-Indic three: a digit, not ASCII
        ("12abc", "not a broadcast number"),
    ],
)
def test_broadcast_export_refuses_numbers_it_cannot_look_up(
    tmp_path: Path, cap: str, message: str
) -> None:
    db = tmp_path / "bot.db"
    assert run(["db", "upgrade", "--db", str(db)]).returncode == 0
    result = run(["broadcast", "export", "--db", str(db), "--cap", cap])
    assert result.returncode == ERROR_EXIT
    one_clear_line(result.stderr, message)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[limits]\nmax_attachment_mb = inf\n", "limits.max_attachment_mb"),
        ("[limits]\nmax_attachment_mb = nan\n", "limits.max_attachment_mb"),
        ("[limits]\nmax_attachment_mb = 1e300\n", "limits.max_attachment_mb"),
        ("[matrix]\nmessages_per_second = inf\n", "matrix.messages_per_second"),
    ],
)
def test_an_endless_number_is_a_config_error_not_a_crash_at_start(
    tmp_path: Path, toml: str, key: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[bot]\ndata_dir = '{tmp_path / 'data'}'\n{toml}", encoding="utf-8")
    checked = run(["config", "check", str(path)])
    assert checked.returncode == ERROR_EXIT
    one_clear_line(checked.stderr, f"config error in {key}")
    started = run(["chat", "--config", str(path), "--user", "x"], "/start\n", tmp_path)
    assert started.returncode == ERROR_EXIT
    one_clear_line(started.stderr, f"config error in {key}")


@pytest.mark.parametrize(
    "nested",
    [
        "a = " + "[" * 5000 + "]" * 5000,
        "a = " + "{b = " * 5000 + "1" + "}" * 5000,
    ],
)
def test_a_config_nested_5000_deep_is_one_line(tmp_path: Path, nested: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(nested + "\n", encoding="utf-8")
    checked = run(["config", "check", str(path)])
    assert checked.returncode == ERROR_EXIT
    one_clear_line(checked.stderr, "is nested too deeply to be a config file")
    started = run(["run", "--config", str(path)])
    assert started.returncode == ERROR_EXIT
    one_clear_line(started.stderr, "is nested too deeply")


def on_a_full_disk(directory: Path, args: list[str], stdin: str = "") -> tuple[int, str]:
    """Run the command line with `directory` a 64 KiB tmpfs (a mount namespace of its own,
    gone with the process): SQLite runs out of space while it creates the schema."""
    assert shutil.which("unshare"), "util-linux's unshare is needed for this test"
    script = 'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"'
    result = run_raw(["unshare", "-rm", "sh", "-c", script, str(directory), *BOT, *args], stdin)
    return result.returncode, result.stderr


def run_raw(command: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.mark.parametrize("command", ["chat", "run", "db upgrade"])
def test_a_full_disk_at_start_up_is_one_line(tmp_path: Path, command: str) -> None:
    full = tmp_path / "full"
    full.mkdir()
    args = [*command.split(), "--db", str(full / "bot.db")]
    if command == "run":
        config = tmp_path / "config.toml"
        config.write_text(f"[database]\nurl = 'sqlite+aiosqlite:///{full / 'bot.db'}'\n")
        args = ["run", "--config", str(config)]
    code, stderr = on_a_full_disk(full, args, "/start\n")
    assert code == ERROR_EXIT
    one_clear_line(stderr, "cannot use the database: database or disk is full")


SECRETS = [
    ('[telegram]\ntoken = "123456:AAFsecretsecret"\n', "telegram.token", "TELEGRAM__TOKEN"),
    ('[telegram]\nwebhook_secret = "hook-secret-1"\n', "telegram.webhook_secret",
     "TELEGRAM__WEBHOOK_SECRET"),
    ('[matrix]\npassword = "correct horse"\n', "matrix.password", "MATRIX__PASSWORD"),
    ('[matrix]\naccess_token = "syt_abcdefghijk"\n', "matrix.access_token",
     "MATRIX__ACCESS_TOKEN"),
    ('[database]\nurl = "postgresql+asyncpg://bot:hunter22@127.0.0.1/bot"\n', "database.url",
     "DATABASE__URL"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "key", "variable"), SECRETS)
def test_a_secret_in_the_config_file_is_refused_naming_the_variable_to_use(
    tmp_path: Path, toml: str, key: str, variable: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml, encoding="utf-8")
    secret = toml.split('"')[1].split(":")[-1].split("@")[0]
    for args in (["config", "check", str(path)], ["chat", "--config", str(path)]):
        result = run(args, "/start\n", tmp_path)
        assert result.returncode == ERROR_EXIT
        one_clear_line(result.stderr, f"config error in {key}")
        assert f"set SICHERHEITSBOT_{variable} in the environment" in result.stderr
        assert secret not in result.stdout + result.stderr


def test_a_database_password_from_the_environment_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[bot]\nemergency_number = '112'\n", encoding="utf-8")
    url = "postgresql+asyncpg://bot:hunter22@127.0.0.1/bot"
    env = {**os.environ, "SICHERHEITSBOT_DATABASE__URL": url}
    result = subprocess.run(
        [*BOT, "config", "check", str(path)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "hunter22" not in result.stdout + result.stderr
