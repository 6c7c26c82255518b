"""The package as an operator gets it: the wheel is built from the sources, its file list is
exactly what the README says, and installed into a fresh virtual environment (where the
checkout cannot be imported) it chats."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the wheel is built from (as in the Dockerfile's build stage).
SOURCES = ("pyproject.toml", "README.md", "bot", "handlers", "content")
# Files of the sources that belong in the wheel: code, the texts, the migrations' template.
SHIPPED = ("*.py", "*.yaml", "*.mako", "py.typed")
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
        input="/start\n1\n1\n1\n4\n/tips\n",
        cwd=tmp_path,
        env=clean_env(),
    )
    out = chat.stdout
    for said in (
        "[1] 🇩🇪 Deutsch",
        "Sind Sie einverstanden?",
        "Was machen Sie beruflich?",
        "Was möchten Sie tun? Bei Gefahr oder wenn etwas gerade passiert: 110 anrufen.",
        "Ladungsdiebstahl: sicher parken",
    ):
        assert said in out
    assert "Traceback" not in out + chat.stderr
    assert (tmp_path / "data" / "sicherheitsbot.db").is_file()
