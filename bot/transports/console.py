"""The terminal chat: a transport like any other, over stdin and stdout.

Choices print as numbered lines `[1] Label`; `/location LAT LON` sends a location
and `/photo PATH` (also /video, /voice, /file) an attachment. Messages queued for
this terminal user while they were away are shown when the chat opens.
"""

from __future__ import annotations

import asyncio
import mimetypes
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from bot.core.app import Core
from bot.core.events import (
    AttachmentKind,
    Event,
    EventKind,
    FileUnavailable,
    IncomingFile,
    Location,
    Reply,
    parse_command,
)
from bot.storage import repos
from bot.storage.db import transaction

TRANSPORT = "console"
FILE_COMMANDS = {
    "photo": AttachmentKind.PHOTO,
    "video": AttachmentKind.VIDEO,
    "voice": AttachmentKind.VOICE,
    "file": AttachmentKind.DOCUMENT,
}


def render(reply: Reply) -> str:
    """A reply as terminal text."""
    lines = [reply.lead, ""] if reply.lead else []
    if reply.title:
        # As written: upper case is the language's business (Turkish "i" is "İ", not "I").
        lines.append(f"== {reply.title} ==")
    if reply.text:
        lines.append(reply.text)
    if reply.location is not None:
        lines.append(f"📍 {reply.location.latitude:.5f}, {reply.location.longitude:.5f}")
    for attachment in reply.attachments:
        lines.append(f"📎 {attachment.kind}: {attachment.file_name or attachment.sha256[:12]}")
    if reply.request_location:
        lines.append("(/location LAT LON)")
    answers = [choice for choice in reply.choices if not choice.command]
    controls = [choice for choice in reply.choices if choice.command]
    lines.extend(f"[{index}] {choice.label}" for index, choice in enumerate(answers, 1))
    if controls:
        # Controls as commands: a number typed at the question is always an answer.
        lines.append(" · ".join(f"{choice.label}: /{choice.command}" for choice in controls))
    return "\n".join(lines)


class ConsoleChat:
    """One terminal user talking to the core."""

    def __init__(self, core: Core, user: str, write: Callable[[str], None]) -> None:
        self.core = core
        self.user = user
        self.write = write

    async def event_for(self, line: str) -> Event:
        """Translate one typed line into a neutral event."""
        base = Event(
            TRANSPORT, self.user, self.user, EventKind.TEXT, text=line, sender_handle=self.user
        )
        parsed = parse_command(line)
        if parsed is None:
            return base
        name, args = parsed
        if name == "location":
            try:
                lat_text, lon_text = args.replace(",", " ").split()
                location = Location(float(lat_text), float(lon_text))
            except ValueError:
                location = Location(999.0, 999.0)  # answered as an invalid location
            return replace(base, kind=EventKind.LOCATION, location=location, text="")
        if name in FILE_COMMANDS:
            return await self._attachment(FILE_COMMANDS[name], args, base)
        return replace(base, kind=EventKind.COMMAND, command=name, args=args)

    async def _attachment(self, kind: AttachmentKind, args: str, base: Event) -> Event:
        """A file named on the command line; read only when a dialogue step wants it."""
        base = replace(base, text="")
        path = Path(args.strip().strip("'\""))
        try:
            readable = await asyncio.to_thread(path.is_file)
        except (OSError, ValueError):  # ValueError: a NUL byte in the path
            readable = False
        if not readable:
            self.write(f"(file not readable: {str(path)!r})")
            return replace(base, kind=EventKind.UNSUPPORTED)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"

        async def fetch() -> bytes:
            try:
                return await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise FileUnavailable(str(exc)) from exc

        return replace(
            base, kind=EventKind.ATTACHMENT, file=IncomingFile(kind, path.name, mime, fetch)
        )

    async def send(self, line: str) -> None:
        replies = await self.core.handle(await self.event_for(line))
        self.show(replies)
        await self.show_waiting()

    def show(self, replies: list[Reply]) -> None:
        for reply in replies:
            self.write(render(reply))
            self.write("")

    async def show_waiting(self) -> None:
        """Show and mark sent what was queued for this terminal user."""
        async with transaction(self.core.sessions) as session:
            waiting = await repos.pending_outbox(session, TRANSPORT, self.user)
            shown: list[Reply] = []
            for message in waiting:
                self.write("📨 ---")
                replies = [Reply.from_json(item) for item in message.payload]
                self.show(replies)
                shown.extend(replies)
                await repos.mark_outbox_sent(session, message.id)
        if waiting:
            with_choices = [reply for reply in shown if reply.choices]
            choices = with_choices[-1].choices if with_choices else []
            self.show(await self.core.delivered(TRANSPORT, self.user, self.user, choices))


async def run_chat(core: Core, user: str, start: str | None, stream: TextIO) -> None:
    """Read lines until end of input; every line gets its replies printed."""
    chat = ConsoleChat(core, user, lambda text: print(text, flush=True))
    interactive = stream.isatty()
    await chat.show_waiting()
    if start is not None:
        await chat.send(f"/start {start}".strip())
    elif interactive:
        chat.write("(/start, /menu, /help – Ctrl-D to leave)")
    loop = asyncio.get_running_loop()
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = await loop.run_in_executor(None, stream.readline)
        if not line:
            break
        await chat.send(line.rstrip("\n"))


def main_stream() -> TextIO:
    return sys.stdin
