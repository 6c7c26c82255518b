"""A reference shown to a reporter survives a power failure.

SQLite runs in WAL mode with synchronous=NORMAL: a commit reaches the WAL file, not the
disk, and a power failure may take the last commits with it. For most events that costs
a repeated question; for a report it would cost a reference the person wrote down for a
report that no longer exists. So the report's commit is synced to disk before its
reference is shown.

The test watches the real command line with strace: the last write of WAL frames before
the reference reaches the terminal (the report's commit) must be followed by an fsync of
the WAL file before that output.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.test_cli import BOT

SCRIPT = [
    "/start", "1", "1", "4",  # consent, truck driver, Köln
    "/report", "2", "Plane aufgeschlitzt", "Rastplatz", "/skip",  # quick
    "2",  # send anonymously
]  # fmt: skip
SYNC = re.compile(r"\b(fsync|fdatasync)\(\d+<(?P<path>[^>]*)>\)")
WRITE = re.compile(r"\b(pwrite64|write)\(\d+<(?P<path>[^>]*)>")


def traced_chat(tmp_path: Path) -> list[str]:
    """The system calls of a scripted terminal report: syncs and writes, with paths."""
    assert shutil.which("strace"), "strace (Debian's strace) is needed for this test"
    trace = tmp_path / "trace.txt"
    command = [
        "strace", "-f", "-y", "-s", "80", "-e", "trace=fsync,fdatasync,write,pwrite64",
        "-e", "signal=none", "-o", str(trace),
        *BOT, "chat", "--db", str(tmp_path / "bot.db"), "--user", "durable",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        input="\n".join(SCRIPT) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "angekommen" in done.stdout
    return trace.read_text(encoding="utf-8", errors="replace").splitlines()


def test_the_reports_commit_is_on_disk_before_its_reference_is_shown(tmp_path: Path) -> None:
    lines = traced_chat(tmp_path)
    wal = str(tmp_path / "bot.db-wal")
    shown = next(i for i, line in enumerate(lines) if "== Meldung gesendet ==" in line)
    frames = [
        i for i, line in enumerate(lines[:shown])
        if (match := WRITE.search(line)) and match["path"] == wal
    ]  # fmt: skip
    assert frames, "the report's commit wrote no WAL frames"
    commit = frames[-1]
    synced = [
        line
        for line in lines[commit:shown]
        if (match := SYNC.search(line)) and match["path"] == wal
    ]
    assert synced, "\n".join(lines[commit : shown + 1])[-3000:]
