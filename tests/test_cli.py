"""The real command line in a subprocess: scripted chats, restarts, config errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BOT = [sys.executable, "-m", "bot.cli"]


def run(
    args: list[str], stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
    return subprocess.run(
        [*BOT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        check=False,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    # The subprocess tests stay on SQLite files: PostgreSQL is covered by the in-process suite.
    return str(tmp_path / "chat.db")


def test_scripted_terminal_session_through_onboarding_and_menu(db: str, tmp_path: Path) -> None:
    result = run(["chat", "--user", "alice", "--db", db], "/start\n3\n1\n4\n4\n/menu\n", tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Sind Sie einverstanden?" in out and "[3] 🇬🇧 English" in out
    assert "Do you agree?" in out
    assert "What would you like to do?" in out and "call 110" in out
    assert "Traceback" not in out + result.stderr


@pytest.mark.parametrize(
    ("choice", "menu"),
    [
        ("", "Was möchten Sie tun?"),  # greeted in German, the deployment's default
        ("3\n", "What would you like to do?"),
        ("4\n", "Co chcesz zrobić?"),
    ],
)
def test_terminal_onboarding_in_every_language(
    db: str, tmp_path: Path, choice: str, menu: str
) -> None:
    result = run(["chat", "--user", "bob", "--db", db], f"/start\n{choice}1\n1\n1\n", tmp_path)
    assert result.returncode == 0 and menu in result.stdout


def test_deep_link_flag_preselects_taxi(db: str, tmp_path: Path) -> None:
    result = run(["chat", "--user", "t", "--db", db, "--start", "taxi"], "1\n1\n4\n", tmp_path)
    assert "Was machen Sie beruflich?" not in result.stdout
    assert "Was möchten Sie tun?" in result.stdout


def test_a_new_process_continues_the_dialogue_at_the_same_step(db: str, tmp_path: Path) -> None:
    first = run(["chat", "--user", "carol", "--db", db], "/start\n4\n", tmp_path)
    assert "Czy się zgadzasz?" in first.stdout
    second = run(["chat", "--user", "carol", "--db", db], "1\n", tmp_path)
    assert "Jaki jest Twój zawód?" in second.stdout


def test_report_reaches_the_coordinator_waiting_in_the_terminal(db: str, tmp_path: Path) -> None:
    photo = tmp_path / "plane.jpg"
    photo.write_bytes(b"\xff\xd8\xff tarpaulin")
    script = "\n".join(
        [
            "/start", "1", "1", "4",  # consent, truck driver, Köln
            "/report", "2", "3",  # not urgent, cargo theft
            "Zwei Männer haben die Plane aufgeschnitten",  # in own words
            "/location 51.1435 7.0267", f"/photo {photo}",
            "3", "/skip", "/skip", "1", "A3", "Richtung Oberhausen", "/done",  # details
            "/summary", "2",  # to the summary; send anonymously
        ]
    )  # fmt: skip
    driver = run(["chat", "--user", "driver", "--db", db], script + "\n", tmp_path)
    assert "SP-" in driver.stdout and "angekommen" in driver.stdout, driver.stdout[-2000:]
    coordinator = run(["chat", "--user", "leitstelle", "--db", db], "2\n", tmp_path)
    assert "Ladungsdiebstahl" in coordinator.stdout
    assert "📍 51.14350, 7.02670" in coordinator.stdout
    assert "📎 photo: plane.jpg" in coordinator.stdout
    assert "an die Polizei gegeben" in coordinator.stdout


def test_bad_lines_get_answers_and_never_a_traceback(db: str, tmp_path: Path) -> None:
    lines = ["", "/frobnicate", "x" * 10_000, "\x1b[2J\x07", "/location abc", "/photo /nonexistent"]
    result = run(["chat", "--user", "eve", "--db", db], "\n".join(lines) + "\n", tmp_path)
    assert result.returncode == 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "/frobnicate" in result.stdout and "zu lang" in result.stdout


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[bot\nx = 1", "is not valid TOML"),
        ("[limits]\nreports_per_hour = 0\n", "limits.reports_per_hour"),
        ("[limits]\nreport_per_hour = 3\n", "limits.report_per_hour: unknown key"),
        ("[bot]\nemergency_number = 'call me'\n", "bot.emergency_number"),
        ("[bot]\ntimezone = 'Mars/Olympus'\n", "unknown time zone"),
        ("[telegram]\nenabled = true\n", "SICHERHEITSBOT_TELEGRAM__TOKEN"),
        ("[database]\nurl = 'mysql://x'\n", "database.url"),
    ],
)
def test_a_wrong_config_stops_with_one_clear_line(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml, encoding="utf-8")
    result = run(["config", "check", str(path)], cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    chat = run(["chat", "--config", str(path)], "/start\n", tmp_path)
    assert chat.returncode != 0 and message in chat.stderr and "Traceback" not in chat.stderr


@pytest.mark.parametrize(
    "toml",
    [
        # Telegram runs, the terminal does not: its coordinators would never read a report.
        "[telegram]\nenabled = true\n",
        "[matrix]\nenabled = true\nhomeserver = 'http://127.0.0.1:1'\nuser_id = '@b:x'\n",
        "[console]\ncoordinators = []\n",
    ],
)
def test_a_deployment_whose_reports_reach_no_one_does_not_start(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml, encoding="utf-8")
    env = {
        **os.environ,
        "SICHERHEITSBOT_TELEGRAM__TOKEN": "123:SECRET",
        "SICHERHEITSBOT_MATRIX__ACCESS_TOKEN": "syt_secret",
    }
    for command in (["config", "check", str(path)], ["run", "--config", str(path)]):
        result = subprocess.run(
            [*BOT, *command], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert result.returncode != 0, command
        [line] = result.stderr.strip().splitlines()
        assert "reports would reach no one" in line and "Traceback" not in result.stderr
    fixed = toml.replace("[telegram]\n", "[telegram]\ncoordinators = [9001]\n")
    if fixed != toml:
        path.write_text(fixed, encoding="utf-8")
        result = subprocess.run(
            [*BOT, "config", "check", str(path)], capture_output=True, text=True, env=env,
            timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


def test_config_check_accepts_the_example_and_refuses_secrets(tmp_path: Path) -> None:
    example = Path(__file__).parents[1] / "config.example.toml"
    assert run(["config", "check", str(example)]).returncode == 0
    leaky = tmp_path / "leaky.toml"
    leaky.write_text('[telegram]\ntoken = "123:ABC"\n', encoding="utf-8")
    result = run(["config", "check", str(leaky)])
    assert result.returncode != 0
    assert "config error in telegram.token" in result.stderr
    assert "SICHERHEITSBOT_TELEGRAM__TOKEN" in result.stderr
    assert "123:ABC" not in result.stdout + result.stderr


def test_missing_config_file_and_bad_flags_are_plain_errors(tmp_path: Path) -> None:
    result = run(["chat", "--config", str(tmp_path / "nope.toml")])
    assert result.returncode != 0 and "does not exist" in result.stderr
    result = run(["chat", "--user", "   "])
    assert result.returncode != 0 and "--user" in result.stderr
    result = run(["chat", "--frobnicate"])
    assert result.returncode != 0 and "No such option" in result.stderr


def test_environment_overrides_the_file(tmp_path: Path, db: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[bot]\nemergency_number = '110'\n", encoding="utf-8")
    env = {**os.environ, "SICHERHEITSBOT_BOT__EMERGENCY_NUMBER": "112"}
    result = subprocess.run(
        [*BOT, "chat", "--config", str(path), "--db", db, "--user", "x"],
        input="/menu\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert "112 anrufen" in result.stdout


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    target = tmp_path / "fresh.db"
    result = run(["db", "upgrade", "--db", str(target)])
    assert result.returncode == 0 and "up to date" in result.stdout
    assert target.exists()


def test_content_check_command_is_green() -> None:
    result = run(["content", "check"])
    assert result.returncode == 0 and "content ok" in result.stdout
