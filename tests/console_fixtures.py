"""The coordinator console for tests: the bot's HTTP server on a free loopback port with the
console on, a report made through the terminal chat, and login links printed by the real
`sicherheitsbot console-link` command."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.runtime import Runtime
from bot.web.server import create_app, serving
from tests.chat import Chat

REFERENCE = re.compile(r"SP-\d{4}-\d{6}")
COORDINATOR = "console:leitstelle"  # a coordinator in the tests' settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def png(
    path: Path, width: int = 96, height: int = 64, rgb: tuple[int, int, int] = (190, 30, 45)
) -> Path:
    """A real PNG image (a browser shows it): one colour."""
    row = b"\x00" + bytes(rgb) * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )  # fmt: skip
    return path


@dataclass
class ConsoleSite:
    """The running server and what a test needs to reach it."""

    runtime: Runtime
    base: str
    config: Path

    def url(self, path: str) -> str:
        return self.base + path

    def link(self, identity: str) -> str:
        """A login link from `sicherheitsbot console-link --config FILE IDENTITY`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SICHERHEITSBOT_")}
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "console-link", "--config", str(self.config),
             identity],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        link = done.stdout.strip().splitlines()[-1]
        assert link.startswith(f"{self.base}/console/login/"), done.stdout
        return link


@pytest.fixture
async def console_site(runtime: Runtime, tmp_path: Path) -> AsyncIterator[ConsoleSite]:
    port = free_port()
    settings = runtime.settings
    settings.web.listen = f"127.0.0.1:{port}"
    settings.web.enabled = True
    settings.web.tile_url = ""  # a closed network: the markers show on a blank map
    config = tmp_path / "console.toml"
    config.write_text(
        f'[bot]\ndata_dir = "{settings.bot.data_dir}"\n'
        f'[database]\nurl = "{settings.database_url}"\n'
        f'[web]\nlisten = "{settings.web.listen}"\nenabled = true\n',
        encoding="utf-8",
    )
    app = create_app(settings.web, runtime.engine, [], runtime)
    async with serving(app, settings.web):
        yield ConsoleSite(runtime, f"http://127.0.0.1:{port}", config)


async def report_with_photo(runtime: Runtime, tmp_path: Path, user: str = "driver") -> str:
    """A report made through the terminal chat — words, a location, a photo, sent with
    contact allowed; its reference."""
    reporter = Chat(runtime.core, user)
    await reporter.onboard()
    await reporter.send("/report")
    await reporter.send("2")  # not happening now
    await reporter.send("Zwei Männer schlitzen auf dem Parkplatz Planen auf")
    await reporter.send("/location 51.1435 7.0267")
    await reporter.send(f"/photo {png(tmp_path / 'plane.png')}")
    await reporter.press("Rückfragen erlaubt")  # send, contact allowed
    found = REFERENCE.search(reporter.screen)
    assert found is not None, reporter.screen
    return found.group(0)


async def logged_in(site: ConsoleSite, identity: str = COORDINATOR) -> aiohttp.ClientSession:
    """An HTTP client with a console session (log in with a fresh link)."""
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    token = site.link(identity).rsplit("/", 1)[1]
    async with client.post(site.url("/console/login"), data={"token": token},
                           allow_redirects=False) as answer:  # fmt: skip
        assert answer.status == 303, await answer.text()
    return client


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, f"no hidden field {name}"
    return found.group(1)
