"""The package as an operator gets it: the wheel is built from the sources, its file list is
exactly what the README says, and installed into a fresh virtual environment (where the
checkout cannot be imported) it chats, and serves /healthz and /readyz with the start
command and the health check of docs/deploy/Dockerfile."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.peers.botapi import BotApiServer
from tests.test_web import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docs" / "deploy" / "Dockerfile"
IMAGE_CONFIG = "/etc/sicherheitsbot/config.toml"
TOKEN = "777:WHEEL"
# What the wheel is built from (as in the Dockerfile's build stage).
SOURCES = ("pyproject.toml", "README.md", "bot", "handlers", "content")
# Files of the sources that belong in the wheel: code, the texts, the migrations' template.
SHIPPED = ("*.py", "*.yaml", "*.mako", "py.typed", "*.html", "*.js", "*.css")
# Where the installed code and texts come from.
PRINT_FILES = (
    "import bot, handlers, bot.core.i18n as i18n; "
    "print(bot.__file__, handlers.__file__, i18n.DEFAULT_CONTENT_DIR)"
)


def run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=180, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the bot's settings nor the test venv's Python paths."""
    skip = ("SICHERHEITSBOT_", "PYTHON", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build --wheel` on a copy of the sources (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, source])
    (built,) = dist.glob("sicherheitsbot-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed, and nothing of the checkout.

    The dependencies come from the test environment's site-packages, added as a plain path
    (a .pth line): the .pth files there, among them the editable install's finder that maps
    `bot` to the checkout, are not run for a path added that way."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", "--clear", venv])
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", "--no-deps", "--no-index", wheel])
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    dependencies = sysconfig.get_paths()["purelib"]
    (Path(site.stdout.strip()) / "zz_test_dependencies.pth").write_text(dependencies + "\n")
    return venv


def test_the_wheel_holds_bot_and_handlers_with_their_files_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = wheel.name.split("-py3")[0] + ".dist-info"
    assert {name.split("/")[0] for name in names} == {"bot", "handlers", dist_info}
    top_level = zipfile.ZipFile(wheel).read(f"{dist_info}/top_level.txt").decode()
    assert top_level.split() == ["bot", "handlers"]
    # Every source file is in it, where the code looks for it, and nothing else is.
    expected = set()
    for package in ("bot", "handlers"):
        for pattern in SHIPPED:
            expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob(pattern)}
    for path in (ROOT / "content").rglob("*.yaml"):
        expected.add("bot/content/" + path.relative_to(ROOT / "content").as_posix())
    shipped = {name for name in names if not name.startswith(dist_info)}
    missing = sorted(expected - shipped)
    assert not missing, f"not in the wheel (add the package to pyproject.toml): {missing}"
    assert sorted(shipped - expected) == []
    assert "bot/storage/migrations/versions/0001_foundation_users_dialogue_state_logs_.py" in names


def test_the_installed_wheel_chats_in_german_without_the_checkout(
    venv: Path, tmp_path: Path
) -> None:
    python, bot = venv / "bin" / "python", venv / "bin" / "sicherheitsbot"
    where = run(
        [python, "-c", "import bot, handlers, json, sys; print(json.dumps(sys.path))"],
        cwd=tmp_path,
        env=clean_env(),
    )
    assert str(ROOT) not in json.loads(where.stdout)
    imported = run([python, "-c", PRINT_FILES], cwd=tmp_path, env=clean_env()).stdout.split()
    assert imported and all(Path(found).is_relative_to(venv) for found in imported), imported
    assert run([bot, "content", "check"], cwd=tmp_path, env=clean_env()).stdout == "content ok\n"
    # Onboarding in German (the database is migrated on the way), the menu, the tips.
    chat = run(
        [bot, "chat", "--user", "alice"],
        input="/start\n1\n1\n4\n/tips\n",
        cwd=tmp_path,
        env=clean_env(),
    )
    out = chat.stdout
    for said in (
        "Sind Sie einverstanden?",
        "[3] 🇬🇧 English",
        "Was machen Sie beruflich?",
        "Was möchten Sie tun? Bei Gefahr oder wenn etwas gerade passiert: 110 anrufen.",
        "Ladungsdiebstahl: sicher parken",
    ):
        assert said in out
    assert "Traceback" not in out + chat.stderr
    assert (tmp_path / "data" / "sicherheitsbot.db").is_file()


def dockerfile_instruction(name: str) -> list[str]:
    """The exec form (a JSON array) of a Dockerfile instruction, continuation lines joined."""
    joined = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found = re.search(rf"^{name}\b[^\[\n]*(\[.*\])\s*$", joined, re.MULTILINE)
    assert found is not None, f"no {name} in exec form in {DOCKERFILE}"
    value = json.loads(found.group(1))
    assert isinstance(value, list)
    return [str(part) for part in value]


@pytest.fixture
async def botapi() -> AsyncIterator[BotApiServer]:
    peer = BotApiServer()
    peer.add_bot(TOKEN)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


async def get(url: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as client, client.get(url) as answer:
            return answer.status, await answer.text()
    except aiohttp.ClientConnectionError:
        return 0, ""


async def health_check(python: Path, env: dict[str, str], cwd: Path) -> int:
    """Run the Dockerfile's HEALTHCHECK command with the venv's Python; its exit code."""
    command = dockerfile_instruction("HEALTHCHECK")
    assert command[0] == "python"
    process = await asyncio.create_subprocess_exec(
        python,
        *command[1:],
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_image_start_command_serves_health_from_the_installed_wheel(
    venv: Path, tmp_path: Path, botapi: BotApiServer
) -> None:
    # ENTRYPOINT + CMD as the image runs them, with the config at a place of the test's.
    command = dockerfile_instruction("ENTRYPOINT") + dockerfile_instruction("CMD")
    assert command == ["sicherheitsbot", "run", "--config", IMAGE_CONFIG]
    config = tmp_path / "config.toml"
    config.write_text(
        "[bot]\n"
        f'data_dir = "{tmp_path / "data"}"\n'
        "[telegram]\n"
        "enabled = true\n"
        "coordinators = [9001]\n"
        f'base_url = "{botapi.base_url}"\n'
        f'base_file_url = "{botapi.base_file_url}"\n',
        encoding="utf-8",
    )
    port = free_port()
    env = clean_env(
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        SICHERHEITSBOT_TELEGRAM__TOKEN=TOKEN,
        SICHERHEITSBOT_WEB__LISTEN=f"127.0.0.1:{port}",
    )
    assert await health_check(venv / "bin" / "python", env, tmp_path) != 0  # nothing runs yet
    args = [str(config) if part == IMAGE_CONFIG else part for part in command]
    assert shutil.which(args[0], path=env["PATH"]) == str(venv / "bin" / "sicherheitsbot")
    process = await asyncio.create_subprocess_exec(
        *args, env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with asyncio.timeout(60):
            while (ready := await get(base + "/readyz"))[0] != 200:
                assert process.returncode is None, "sicherheitsbot run exited"
                await asyncio.sleep(0.2)
        assert json.loads(ready[1])["checks"]["transport:telegram"] == "connected"
        assert await get(base + "/healthz") == (200, "ok\n")
        assert await health_check(venv / "bin" / "python", env, tmp_path) == 0
        # It really serves Telegram: a /start from the fake human is answered in German.
        botapi.send_text(4711, "/start")
        await botapi.wait_for_message(
            4711, lambda message: "Willkommen" in (message.plain_text or ""), timeout=20
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
