"""The Matrix transport (matrix-nio, end-to-end encryption with vodozemac): translation only.

Start-up logs in (access token, or a password login once whose token and device are kept in
the store directory), resumes from the saved sync position and then syncs in the
background. A very first start syncs once *before* listening, so history from before the
bot existed is never answered. Every room event is handled in order per room, concurrently
across rooms; a failed event is logged with its id and never stops the sync loop.
Encrypted events whose keys have not arrived are kept, keys are requested, and decryption
is retried whenever a sync brings new keys. When a key has not come within
`matrix.unreadable_notice_seconds`, the sender is told once that the message could not be
read (their client may not have known the bot's device yet) and asked to send it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import IO, Any

import nio

from bot.core.events import Reply
from bot.delivery.outbox import RetryLater, TransientFailure, Unreachable
from bot.delivery.pacing import Limits
from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.db import transaction
from bot.transports.matrix_direct import DirectRooms
from bot.transports.matrix_inbound import Inbound
from bot.transports.matrix_outbound import TRANSPORT, MatrixSender, is_group_room
from bot.transports.matrix_state import (
    STATE_FILE,
    SyncState,
    hold_store,
    read_json,
    write_private_json,
)

log = logging.getLogger(__name__)
SYNC_TIMEOUT_MS = 30_000
SESSION_FILE = "session.json"
DEVICE_NAME = "sicherheitsbot"
MAX_UNDECRYPTED = 500
KEEP_UNDECRYPTED_S = 24 * 3600
STOP_TIMEOUT = 10.0
# /readyz: a sync loop that has not completed a sync for this long is not connected.
STALE_SYNC_S = 3 * SYNC_TIMEOUT_MS / 1000


class MatrixTransport:
    """A running Matrix connection: nio events in, neutral replies out."""

    name = TRANSPORT

    def __init__(self, runtime: Runtime) -> None:
        self.core = runtime.core
        self.settings = runtime.settings.matrix
        rate = self.settings.messages_per_second
        self.limits = Limits(overall_per_second=rate, per_chat_per_second=max(1.0, rate))
        self.store_dir = self.settings.store_dir or runtime.settings.bot.data_dir / "matrix"
        direct = DirectRooms(self.core, self.settings)
        self.sender = MatrixSender(self.core, self.settings, self.limits, direct)
        self.client: Any = None
        self.state = SyncState(self.store_dir / STATE_FILE)
        self.inbound: Inbound | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._store_lock: IO[str] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # Timers of kept encrypted events, until their sender is told they are unreadable.
        self._timers: set[asyncio.Task[None]] = set()
        self._invites: set[str] = set()
        self._synced_token = ""
        self._commits = 0
        self._committed = 0
        self._last_sync = 0.0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        await asyncio.to_thread(self.store_dir.mkdir, parents=True, exist_ok=True)
        self._store_lock = await asyncio.to_thread(hold_store, self.store_dir)
        self.state = await asyncio.to_thread(SyncState.load, self.store_dir / STATE_FILE)
        self.client = nio.AsyncClient(
            settings.homeserver,
            settings.user_id,
            device_id=settings.device_id or None,
            store_path=str(self.store_dir),
            config=_client_config(settings.encryption),
        )
        self.sender.client = self.client
        self.inbound = Inbound(self.client, self.core, settings, self.sender.own_events)
        try:
            await self._login()
            if settings.encryption and self.client.olm is None:
                log.error("matrix: end-to-end encryption is unavailable; encrypted rooms stay mute")
            await self.sender.crypto_upkeep()
            await self._first_sync()
        except BaseException:
            await self.client.close()
            raise
        for item in self.state.undecrypted:  # kept from before a restart
            if not item.get("checked"):
                self._watch_unreadable(item)
        self._sync_task = asyncio.create_task(self._sync_forever(), name="matrix-sync")
        log.info("matrix: %s syncing (device %s)", self.client.user_id, self.client.device_id)

    async def stop(self) -> None:
        if self.client is None:
            return
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
            self._sync_task = None
        for timer in list(self._timers):
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        try:
            await asyncio.wait_for(self.drain(), STOP_TIMEOUT)
        except TimeoutError:
            log.warning("matrix: %d events still in flight at stop", len(self._inflight))
        if self._synced_token and not self._inflight:
            self.state.next_batch = self._synced_token
        await self.state.save()
        await self.client.close()
        self.client = self.sender.client = None
        if self._store_lock is not None:
            self._store_lock.close()
            self._store_lock = None

    @property
    def connected(self) -> bool:
        """The sync loop runs and synced recently, for /readyz."""
        task = self._sync_task
        recent = time.monotonic() - self._last_sync < STALE_SYNC_S
        return task is not None and not task.done() and recent

    async def drain(self) -> None:
        """Wait until everything received so far has been handled."""
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    # -- login ------------------------------------------------------------------------------

    async def _login(self) -> None:
        settings, client = self.settings, self.client
        if settings.access_token is not None:
            token = settings.access_token.get_secret_value()
            device = settings.device_id or await self._device_of(token)
            client.restore_login(settings.user_id, device, token)
            return
        session_path = self.store_dir / SESSION_FILE
        saved = await asyncio.to_thread(read_json, session_path)
        if saved.get("user_id") == settings.user_id and saved.get("access_token"):
            token, device = str(saved["access_token"]), str(saved.get("device_id", ""))
            if await self._device_of(token, required=False) == device:
                client.restore_login(settings.user_id, device, token)
                return
            log.warning("matrix: the saved login is no longer valid; logging in again")
        if settings.password is None:
            raise RuntimeError("matrix: set SICHERHEITSBOT_MATRIX__ACCESS_TOKEN or __PASSWORD")
        response = await client.login(
            password=settings.password.get_secret_value(), device_name=DEVICE_NAME
        )
        if not isinstance(response, nio.LoginResponse):
            raise RuntimeError(f"matrix login failed: {getattr(response, 'status_code', '')}")
        session = {
            "user_id": settings.user_id,
            "device_id": response.device_id,
            "access_token": response.access_token,
        }
        await asyncio.to_thread(write_private_json, session_path, session)

    async def _device_of(self, token: str, required: bool = True) -> str:
        """The device an access token belongs to (whoami); '' if the token is invalid."""
        self.client.access_token = token
        response = await self.client.whoami()
        self.client.access_token = ""
        if isinstance(response, nio.WhoamiResponse) and response.device_id:
            return str(response.device_id)
        if required:
            raise RuntimeError(
                f"matrix: no device for the access token; set matrix.device_id ({response})"
            )
        return ""

    # -- syncing ----------------------------------------------------------------------------

    async def _first_sync(self) -> None:
        client = self.client
        token = self.state.next_batch or client.loaded_sync_token
        if token:
            self._listen()  # resume: what arrived while the bot was down is answered
        response = await client.sync(timeout=0, since=token or None, full_state=True)
        if not isinstance(response, nio.SyncResponse):
            raise RuntimeError(f"matrix: first sync failed: {response}")
        if not token:
            # A very first start: nothing from before is answered, but pending invites count.
            for room_id, room in list(client.invited_rooms.items()):
                self._on_invite(room_id, room.inviter or "")
            self._listen()
        for room in list(client.rooms.values()):
            self._schedule(room.room_id, self._leave_if_alone, room)
        await self._after_sync()

    def _listen(self) -> None:
        self.client.add_event_callback(
            self._on_event,
            (nio.RoomMessage, nio.MegolmEvent, nio.StickerEvent, nio.RoomMemberEvent),
        )
        self.client.add_event_callback(self._on_invite_event, (nio.InviteMemberEvent,))

    async def _sync_forever(self) -> None:
        delay = 1.0
        while True:
            try:
                response = await self.client.sync(timeout=SYNC_TIMEOUT_MS)
                if isinstance(response, nio.SyncResponse):
                    delay = 1.0
                    await self._after_sync(keys_arrived=bool(response.to_device_events))
                    continue
                log.warning("matrix: sync failed: %s", response)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("matrix: sync error; retrying in %.0f s", delay)
            await asyncio.sleep(delay)
            delay = min(60.0, delay * 2)

    async def _after_sync(self, keys_arrived: bool = True) -> None:
        self._synced_token = str(self.client.next_batch)
        self._last_sync = time.monotonic()
        await self.sender.crypto_upkeep()
        if keys_arrived and self.state.undecrypted:  # room keys come as to-device events
            self._retry_undecrypted()
        # Save the position only once everything before it was handled (at least once).
        self._commits += 1
        self._track(asyncio.create_task(self._commit(set(self._inflight), self._commits)))

    async def _commit(self, pending: set[asyncio.Task[None]], number: int) -> None:
        token = self._synced_token
        if pending:
            await asyncio.wait(pending)
        if number > self._committed:
            self._committed = number
            self.state.next_batch = token
            await self.state.save()

    # -- events -----------------------------------------------------------------------------

    async def _on_event(self, room: Any, event: Any) -> None:
        """An nio callback: only schedules; the work runs in order per room."""
        if event.sender == self.client.user_id:
            return
        if isinstance(event, nio.RoomMemberEvent):
            if event.membership in ("leave", "ban"):
                self._schedule(room.room_id, self._leave_if_alone, room)
        elif isinstance(event, nio.MegolmEvent):
            self._keep_undecrypted(room.room_id, event)
        else:
            self._schedule(room.room_id, self._handle, room, event, False)

    async def _on_invite_event(self, room: Any, event: Any) -> None:
        if event.state_key == self.client.user_id and event.membership == "invite":
            self._on_invite(room.room_id, event.sender)

    def _on_invite(self, room_id: str, inviter: str) -> None:
        if room_id in self._invites:
            return
        self._invites.add(room_id)
        server = inviter.partition(":")[2]
        allowed = self.settings.allowed_servers
        if allowed and server not in allowed:
            log.info("matrix: ignoring invite to %s from server %s (not allowed)", room_id, server)
            return
        self._schedule(room_id, self._join, room_id)

    def _schedule(self, room_id: str, work: Callable[..., Awaitable[None]], *args: Any) -> None:
        previous = self._tails.get(room_id)
        task = asyncio.create_task(self._run(previous, room_id, work, *args))
        self._tails[room_id] = task
        self._track(task)
        task.add_done_callback(lambda done: self._forget_tail(room_id, done))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _forget_tail(self, room_id: str, task: asyncio.Task[None]) -> None:
        if self._tails.get(room_id) is task:
            del self._tails[room_id]

    async def _run(
        self,
        previous: asyncio.Task[None] | None,
        room_id: str,
        work: Callable[..., Awaitable[None]],
        *args: Any,
    ) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        try:
            await work(*args)
        except Exception:
            event_id = next((a.event_id for a in args if hasattr(a, "event_id")), "-")
            log.exception("matrix: event %s in %s failed", event_id, room_id)

    async def _join(self, room_id: str) -> None:
        try:
            response = await self.client.join(room_id)
        finally:
            self._invites.discard(room_id)  # a later invite to the same room counts again
        if isinstance(response, nio.JoinResponse):
            log.info("matrix: joined %s", room_id)
        else:
            log.warning("matrix: could not join %s: %s", room_id, response)

    async def _leave_if_alone(self, room: Any) -> None:
        if room.room_id == self.settings.coordinator_room or room.room_id not in self.client.rooms:
            return
        if room.joined_count <= 1 and room.invited_count == 0:
            log.info("matrix: leaving %s, nobody else is there", room.room_id)
            await self.client.room_leave(room.room_id)
            await self.client.room_forget(room.room_id)

    async def _handle(self, room: Any, event: Any, late: bool) -> None:
        room_id, sender = room.room_id, event.sender
        if not self.state.is_new(room_id, event.event_id, sender, event.server_timestamp, not late):
            log.debug("matrix: %s in %s was handled before", event.event_id, room_id)
            return
        self.state.mark(room_id, event.event_id, sender, event.server_timestamp)
        if (event.source.get("unsigned") or {}).get("membership") == "leave":
            return  # sent before the bot was invited: history, not a message to the bot
        self.state.readable(room_id, sender)
        assert self.inbound is not None
        neutral = await self.inbound.translate(room, event)
        if neutral is None:
            return
        replies = await self.core.handle(neutral)
        await self._answer(room_id, replies, sender)

    async def _answer(self, room_id: str, replies: list[Reply], sender: str) -> None:
        """Send replies at once; what cannot go now goes through the outbox."""
        for index, reply in enumerate(replies):
            await self.sender.limiter.acquire(room_id, bulk=False)
            try:
                await self.sender.send_reply(room_id, reply)
            except Unreachable as exc:
                log.warning("matrix: cannot answer in %s: %s", room_id, exc)
                return
            except (RetryLater, TransientFailure) as exc:
                log.warning("matrix: answer in %s queued for later: %s", room_id, exc)
                async with transaction(self.core.sessions) as session:
                    # The answer carries the sender's data: erasing them reaches it.
                    person = await repos.get_user(session, TRANSPORT, sender)
                    await repos.queue_outbox(
                        session,
                        transport=TRANSPORT,
                        chat_id=room_id,
                        user_id=None,
                        kind="reply",
                        replies=replies[index:],
                        subject_user_id=person.id if person is not None else None,
                    )
                return

    # -- encrypted events without keys yet --------------------------------------------------

    def _keep_undecrypted(self, room_id: str, event: Any) -> None:
        if (event.source.get("unsigned") or {}).get("membership") == "leave":
            return  # history from before the bot was invited: never meant for it
        if self.client.olm is None:
            log.warning(
                "matrix: encrypted %s in %s unreadable: E2EE is off", event.event_id, room_id
            )
            return
        source = {**event.source, "room_id": room_id}
        item = {"source": source, "at": time.time()}
        self.state.undecrypted.append(item)
        del self.state.undecrypted[:-MAX_UNDECRYPTED]
        event.room_id = room_id
        self._schedule(room_id, self._request_key, event)
        self._watch_unreadable(item)

    async def _request_key(self, event: Any) -> None:
        with contextlib.suppress(nio.LocalProtocolError):  # already requested
            await self.client.request_room_key(event)

    def _watch_unreadable(self, item: dict[str, Any]) -> None:
        due = float(item["at"]) + self.settings.unreadable_notice_seconds
        timer = asyncio.create_task(self._unreadable_due(item, max(0.0, due - time.time())))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _unreadable_due(self, item: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        if not any(kept is item for kept in self.state.undecrypted):
            return  # decrypted meanwhile, or given up
        item["checked"] = True
        room_id, sender = str(item["source"]["room_id"]), str(item["source"]["sender"])
        self._schedule(room_id, self._tell_unreadable, room_id, sender)

    async def _tell_unreadable(self, room_id: str, sender: str) -> None:
        """Once per room and person, until they send something readable: the message could
        not be decrypted, please send it again. Otherwise they would hear nothing at all."""
        room = self.client.rooms.get(room_id)
        if room is None or self.state.was_told(room_id, sender):
            return
        coordinating = room_id == self.settings.coordinator_room
        if is_group_room(room, self.settings) and not (
            coordinating and self.core.is_configured_coordinator(TRANSPORT, sender)
        ):
            return  # in a group, an unreadable message need not have been for the bot
        async with transaction(self.core.sessions) as session:
            language = await repos.language_of(session, TRANSPORT, sender)
        bot = self.core.settings.bot
        text = self.core.content.text(
            language or bot.default_language, "core.unreadable", emergency=bot.emergency_number
        )
        self.state.tell(room_id, sender)
        await self.state.save()  # told before it is sent: never twice, even after a crash
        log.info("matrix: told a sender in %s that a message could not be decrypted", room_id)
        await self._answer(room_id, [Reply(text)], sender)

    def _retry_undecrypted(self) -> None:
        """Keys may arrive in a later sync than the message they unlock."""
        still: list[dict[str, Any]] = []
        now = int(time.time())
        for item in self.state.undecrypted:
            event = nio.MegolmEvent.from_dict(dict(item["source"]))
            ok = isinstance(event, nio.MegolmEvent)
            room = self.client.rooms.get(event.room_id) if ok else None
            if room is None or now - int(item["at"]) > KEEP_UNDECRYPTED_S:
                log.warning("matrix: gave up decrypting %s", item["source"].get("event_id"))
                continue
            try:
                decrypted = self.client.decrypt_event(event)
            except nio.EncryptionError:
                still.append(item)
                continue
            if isinstance(decrypted, (nio.RoomMessage, nio.StickerEvent)):
                self._schedule(room.room_id, self._handle, room, decrypted, True)
        self.state.undecrypted = still


def _client_config(encryption: bool) -> Any:
    """nio's settings; retries are bounded so a broken homeserver fails instead of hanging."""
    bounded = {"store_sync_tokens": True, "max_limit_exceeded": 3, "max_timeouts": 5}
    try:
        return nio.AsyncClientConfig(encryption_enabled=encryption, **bounded)
    except ImportWarning:
        log.error("matrix: E2EE is not installed (pip install 'matrix-nio[e2e]')")
        return nio.AsyncClientConfig(encryption_enabled=False, **bounded)
