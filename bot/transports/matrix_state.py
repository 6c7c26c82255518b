"""What the Matrix transport remembers between runs, in one small file in its store dir.

- `next_batch`: the sync position, saved only once every event before it was handled, so
  a restart neither replays old messages nor misses those sent while the bot was down.
- per room: the ids of the last handled events and, per sender, the time of the last one
  handled; a replayed sync (Synapse caches /sync answers) is recognised and skipped.
- encrypted events whose keys have not arrived yet, so they survive a restart.
- per room, who was told that a message of theirs could not be decrypted, so that they are
  told once (also across a restart) until they send something readable again; a mark is
  forgotten after a week.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO, Any

STATE_FILE = "sync_state.json"
IDS_PER_ROOM = 20
FORGET_ROOM_AFTER_S = 2 * 24 * 3600
FORGET_TOLD_AFTER_S = 7 * 24 * 3600


class SyncState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_batch = ""
        self.rooms: dict[str, dict[str, Any]] = {}
        self.undecrypted: list[dict[str, Any]] = []
        # room id -> {sender: when they were told a message could not be decrypted}
        self.told_unreadable: dict[str, dict[str, int]] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def load(cls, path: Path) -> SyncState:
        """Read the file (blocking: call in a thread); a missing or broken file is empty."""
        state = cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return state
        if isinstance(data, dict):
            state.next_batch = str(data.get("next_batch", ""))
            state.rooms = dict(data.get("rooms", {}))
            state.undecrypted = list(data.get("undecrypted", []))
            state.told_unreadable = dict(data.get("told_unreadable", {}))
        return state

    def is_new(self, room_id: str, event_id: str, sender: str, ts: int, in_order: bool) -> bool:
        """False for an event handled before, or older than the last one handled from the
        same sender in the room (`in_order=False` for late-decrypted events)."""
        room = self.rooms.get(room_id)
        if room is None:
            return True
        if event_id in room.get("ids", []):
            return False
        return not in_order or ts >= int(room.get("senders", {}).get(sender, 0))

    def mark(self, room_id: str, event_id: str, sender: str, ts: int) -> None:
        room = self.rooms.setdefault(room_id, {"ids": [], "senders": {}})
        room["ids"] = [*room.get("ids", [])[-(IDS_PER_ROOM - 1) :], event_id]
        senders = room.setdefault("senders", {})
        senders[sender] = max(ts, int(senders.get(sender, 0)))
        room["at"] = int(time.time())

    def was_told(self, room_id: str, sender: str) -> bool:
        """Whether `sender` was told in the room that a message could not be decrypted."""
        return sender in self.told_unreadable.get(room_id, {})

    def tell(self, room_id: str, sender: str) -> None:
        self.told_unreadable.setdefault(room_id, {})[sender] = int(time.time())

    def readable(self, room_id: str, sender: str) -> None:
        """`sender` sent something readable: a later unreadable message is told again."""
        told = self.told_unreadable.get(room_id)
        if told is not None and told.pop(sender, None) is not None and not told:
            del self.told_unreadable[room_id]

    async def save(self) -> None:
        """Write the file atomically (in a thread); rooms quiet for two days are forgotten."""
        async with self._lock:
            cutoff = int(time.time()) - FORGET_ROOM_AFTER_S
            self.rooms = {k: v for k, v in self.rooms.items() if int(v.get("at", 0)) >= cutoff}
            told_cutoff = int(time.time()) - FORGET_TOLD_AFTER_S
            for room_id, told in list(self.told_unreadable.items()):
                kept = {who: at for who, at in told.items() if int(at) >= told_cutoff}
                if kept:
                    self.told_unreadable[room_id] = kept
                else:
                    del self.told_unreadable[room_id]
            text = json.dumps(
                {
                    "next_batch": self.next_batch,
                    "rooms": self.rooms,
                    "undecrypted": self.undecrypted,
                    "told_unreadable": self.told_unreadable,
                }
            )
            await asyncio.to_thread(_write, self.path, text)


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def read_json(path: Path) -> dict[str, Any]:
    """A small JSON file as a dict ({} if missing or broken); blocking."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file only the owner can read (the saved login); blocking."""
    partial = path.with_suffix(".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(partial, path)


class StoreInUse(RuntimeError):
    """Another process runs Matrix on the same store directory."""


def hold_store(directory: Path) -> IO[str]:
    """An exclusive lock on the store directory for as long as the returned file is open:
    two processes must not share one encryption store and sync position (the operating
    system frees the lock when the process ends, however it ends). Events are handled once
    by construction anyway (the database records each event id); this keeps the keys safe."""
    handle = (directory / "lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise StoreInUse(f"matrix: another process uses the store {directory}") from exc
    return handle
